"""RESULTS.md from a quick run (goals) and an older full run (sweeps), each section labelled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from benchmarks import goals, report, run
from tests.benchmarks.test_goals import _round

FULL_DATE = "2026-11-23T20:04:12+00:00"
QUICK_DATE = "2026-11-30T09:19:58+00:00"


def _machine(date: str, load: float) -> dict[str, Any]:
    return {"date": date, "cores": 2, "cpu_model": "test CPU", "memory_gib": 4.0,
            "kernel": "6.0", "load_average_at_start": [load, 1.0, 1.0],
            "load_average_at_end": [load + 1, 1.0, 1.0], "versions": {"ray": "2.60.0"}}


def _closed(kind: str, rps: float, p50: float) -> dict[str, Any]:
    return {"kind": kind, "mode": "closed", "throughput_rps": rps, "items_per_s": rps,
            "mean_batch_size": 4.0, "errors": {},
            "latency": {"p50_ms": p50, "p95_ms": p50, "p99_ms": p50 * 2}}


def _full() -> dict[str, Any]:
    spec = {"max_batch_size": 8, "batch_wait_timeout_s": 0.01, "max_ongoing_requests": 64,
            "num_cpus": 1.0}
    scenario = {"app": "embeddings", "label": "spec defaults", "spec": spec,
                "runs": [_closed("closed c=1", 26.0, 38.1), _closed("closed c=64", 57.8, 1089.0),
                         {"kind": "open 50%", "mode": "open", "offered_rps": 29.0,
                          "requests": 174, "window_s": 6.0, "throughput_rps": 28.9,
                          "latency": {"p50_ms": 40.0, "p95_ms": 60.0, "p99_ms": 80.0},
                          "send_lag_p99_ms": 1.0, "errors": 0}]}
    raw_rows = [{"batch_size": size, "items_per_s": items, "batches": 10,
                 "batch_latency": {"p50_ms": p50, "p99_ms": p50 * 1.1}}
                for size, items, p50 in ((1, 69.4, 14.4), (8, 71.4, 112.0))]
    return {"mode": "full", "machine": _machine(FULL_DATE, 1.6), "wall_time_s": 878.1,
            "infra_scale": [],
            "raw": [{"app": "embeddings", "threads": 1, "rows": raw_rows}],
            "served": [{"variant": "default", "switches": {}, "ray_start_s": 8.2,
                        "scenarios": [scenario]}]}


def _quick() -> dict[str, Any]:
    rounds = [_round(1.0)] * 3
    return {"mode": "quick", "machine": _machine(QUICK_DATE, 0.92), "wall_time_s": 264.6,
            "raw": [], "infra_scale": [],
            "goals": {"rounds": rounds, "goals": goals.summarize(rounds), "profiles": {}}}


def _write(directory: Path, name: str, results: dict[str, Any]) -> Path:
    path = directory / name
    path.write_text(json.dumps(results))
    return path


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


SWEEPS = ("Served vs raw (default variant, spec defaults, one replica)",
          "Settings sweep (default variant, one replica)", "Threads per replica",
          "Ray Serve throughput switches", "Open loop (latency from intended send time)",
          "Raw baselines")


def test_a_quick_run_keeps_the_full_runs_sweeps_each_labelled_with_its_run(
        tmp_path: Path) -> None:
    _write(tmp_path, "full.json", _full())
    _write(tmp_path, "quick.json", _quick())
    goals_run, full_run = report.latest(tmp_path)
    assert goals_run is not None and full_run is not None
    assert (goals_run.results["mode"], full_run.results["mode"]) == ("quick", "full")
    text = report.render(goals_run, full_run, "analysis")

    goals_text = _section(text, "Issue 12 goals (stack as shipped, raw and served interleaved)")
    assert f"quick run of {QUICK_DATE}" in goals_text and FULL_DATE not in goals_text
    assert "| embeddings: served / raw texts/s, 8 texts/request (c=16) |" in goals_text
    for title in SWEEPS:
        body = _section(text, title)
        assert f"full run of {FULL_DATE}, load average (1 min) 1.6 at start" in body, title
        assert "| embeddings |" in body, f"{title}: empty table"
        assert QUICK_DATE not in body
    assert "| embeddings | default | Python proxy |" in _section(
        text, "Ray Serve throughput switches")  # `default` meant the Python proxy that day
    machines = _section(text, "Machine")
    assert "Goals run: `" in machines and "Sweep run (full): `" in machines
    assert QUICK_DATE in machines and FULL_DATE in machines


def test_a_section_without_data_says_so_instead_of_an_empty_table(tmp_path: Path) -> None:
    _write(tmp_path, "quick.json", _quick())
    goals_run, full_run = report.latest(tmp_path)
    assert full_run is None
    text = report.render(goals_run, full_run, "analysis")
    for title in (*SWEEPS, "Failures", "Infra scale"):
        body = _section(text, title).strip()
        assert "|" not in body and body.startswith("_Not measured"), (title, body)
    only_goals_full = {**_quick(), "mode": "full"}  # a full run whose sweeps all failed early
    source = report.Source("results/full.json", only_goals_full)
    body = _section(report.render(source, source, ""), "Settings sweep (default variant, "
                    "one replica)").strip()
    assert body == (f"_From `results/full.json`: full run of {QUICK_DATE}, load average (1 min) "
                    "0.92 at start, 1.92 at end: no data for this section in that run._")


def test_the_goals_come_from_the_newest_run_that_measured_them(tmp_path: Path) -> None:
    newer_full = {**_full(), "machine": _machine("2026-12-01T00:00:00+00:00", 0.5),
                  "goals": _quick()["goals"]}
    _write(tmp_path, "quick.json", _quick())
    _write(tmp_path, "full.json", newer_full)
    goals_run, full_run = report.latest(tmp_path)
    assert goals_run is not None and goals_run.path.endswith("full.json")
    assert full_run is goals_run
    machines = _section(report.render(goals_run, full_run, ""), "Machine")
    assert machines.strip().startswith("### Goals and sweeps: `")


def test_report_only_rewrites_results_md_from_the_json_and_measures_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "full.json", _full())
    _write(tmp_path, "quick.json", _quick())
    target = tmp_path / "RESULTS.md"
    target.write_text(f"old\n{report.ANALYSIS_START}\nkept by hand\n{report.ANALYSIS_END}\n")

    def measuring(*_: object, **__: object) -> None:
        raise AssertionError("--report-only must not measure")

    monkeypatch.setattr(goals, "measure", measuring)
    monkeypatch.setattr(run, "_ensure_checkpoint", measuring)
    monkeypatch.setattr(run, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(report, "write_latest", lambda directory, extra=(): report.write(
        *report.latest(directory, extra), target=target))
    outcome = CliRunner().invoke(run.cli, ["--report-only"])
    assert outcome.exit_code == 0, outcome.output
    text = target.read_text()
    assert "kept by hand" in text and "old" not in text.split(report.ANALYSIS_START)[0]
    assert f"full run of {FULL_DATE}" in _section(text, "Threads per replica")
    assert "--report-only" in _section(text, "Reproduce")


def test_the_cli_section_shows_each_row_beside_its_target_and_machine() -> None:
    rows = [{"what": "render, 4 stacks", "command": "servestack render --out DIR",
             "ray": "remembered", "repeats": 5, "wall_s": 1.9, "wall_min_s": 1.8, "cpu_s": 1.7,
             "target_s": 2.0},
            {"what": "plan's imports alone", "command": "import servestack.cli.plan", "ray": "-",
             "repeats": 5, "wall_s": 0.3, "wall_min_s": 0.3, "cpu_s": 0.3, "target_s": None}]
    cli = report.Source("benchmarks/results/cli.json",
                        {"mode": "cli", "machine": _machine(QUICK_DATE, 1.0), "cli_time": rows})
    text = report.render(None, None, "", cli)
    section = text.split("## CLI time (render, plan)")[1].split("## Analysis")[0]
    assert "| render, 4 stacks | `servestack render --out DIR` | remembered | 1.90 |" in section
    assert "≤ 2 s" in section and "test CPU" in section
