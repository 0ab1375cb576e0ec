"""Results JSON → markdown tables (benchmarks/RESULTS.md), from the latest runs of each kind.

A quick run measures issue 12's goals only; a full run measures the goals and every sweep.
RESULTS.md takes the goals (and their profiles) from the latest run that measured them and
the sweep sections from the latest full run, and heads each section with the run (file,
date, mode, load average) its numbers come from, so an older run is never read as the
current one. A section whose run has no data for it says so in one line.

Everything but the analysis block is generated; the analysis block (between the markers)
is written by a person after reading the tables and is carried over on regeneration.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

BENCH_DIR = Path(__file__).resolve().parent
ANALYSIS_START = "<!-- analysis:start -->"
ANALYSIS_END = "<!-- analysis:end -->"
RESULTS_DIR = BENCH_DIR / "results"
CLI_RESULTS = "cli.json"
SATURATION = "closed c=64"
LATENCY = "closed c=1"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table, or "" when there are no rows (the caller says why in one line)."""
    body = ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    if not body:
        return ""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + body)


@dataclass(frozen=True)
class Source:
    """One results JSON and where it lives (repository-relative when inside the repo)."""

    path: str
    results: Mapping[str, Any]

    @property
    def date(self) -> str:
        return str(self.results["machine"]["date"])

    def label(self) -> str:
        machine = self.results["machine"]
        start = machine.get("load_average_at_start") or ["?"]
        end = machine.get("load_average_at_end") or ["?"]
        return (f"`{self.path}`: {self.results['mode']} run of {self.date}, load average "
                f"(1 min) {start[0]} at start, {end[0]} at end")


def load(path: Path) -> Source | None:
    if not path.is_file():
        return None
    resolved = path.resolve()
    root = BENCH_DIR.parent
    shown = (resolved.relative_to(root).as_posix() if resolved.is_relative_to(root)
             else str(resolved))
    return Source(shown, json.loads(path.read_text()))


def has_goals(results: Mapping[str, Any]) -> bool:
    return bool((results.get("goals") or {}).get("goals"))


def has_sweeps(results: Mapping[str, Any]) -> bool:
    return bool(results.get("served") or results.get("raw"))


def latest(results_dir: Path = RESULTS_DIR,
           extra: Sequence[Path] = ()) -> tuple[Source | None, Source | None]:
    """(latest run with goals, latest full run with sweeps) among quick.json, full.json and
    `extra` (a run written elsewhere with --output)."""
    paths = [results_dir / "quick.json", results_dir / "full.json", *extra]
    sources = [s for s in {p.resolve(): load(p) for p in paths}.values() if s is not None]
    with_goals = [s for s in sources if has_goals(s.results)]
    full = [s for s in sources if s.results.get("mode") == "full" and has_sweeps(s.results)]
    return (max(with_goals, key=lambda s: s.date, default=None),
            max(full, key=lambda s: s.date, default=None))


def _sourced(source: Source | None, what: str,
             body: Callable[[Mapping[str, Any]], str]) -> str:
    """A section's "from which run" line, then its table, or one line saying why there is none."""
    if source is None:
        return f"_Not measured: no {what} in benchmarks/results/._"
    text = body(source.results)
    if not text:
        return f"_From {source.label()}: no data for this section in that run._"
    return f"_From {source.label()}._\n\n{text}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "0"
    return str(value)


def _run(scenario: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for run in scenario["runs"]:
        if run["kind"] == kind:
            return run  # type: ignore[no-any-return]
    return None


def _latency(run: Mapping[str, Any] | None, key: str) -> float | None:
    if run is None or run.get("latency") is None:
        return None
    value: float = run["latency"][key]
    return value


def _scenarios(results: Mapping[str, Any], variant: str) -> list[Mapping[str, Any]]:
    """The variant's scenarios that ran (failed ones are listed in `failures_section`)."""
    for served in results.get("served", []):
        if served["variant"] == variant:
            return [s for s in served["scenarios"] if "error" not in s]
    return []


def _scenario(results: Mapping[str, Any], variant: str, app: str,
              label: str) -> Mapping[str, Any] | None:
    for scenario in _scenarios(results, variant):
        if scenario["app"] == app and scenario["label"] == label:
            return scenario
    return None


def _raw_row(results: Mapping[str, Any], app: str, threads: int,
             batch: int) -> Mapping[str, Any] | None:
    for document in results.get("raw", []):
        if document["app"] == app and document["threads"] == threads:
            for row in document["rows"]:
                if row["batch_size"] == batch:
                    return row  # type: ignore[no-any-return]
    return None


def _ratio(served: float | None, raw: float | None) -> str:
    if not served or not raw:
        return "-"
    return f"{served / raw:.2f}"


def machine_section(results: Mapping[str, Any]) -> str:
    machine = results["machine"]
    versions = machine["versions"]
    rows = [
        ("date (UTC)", machine["date"]),
        ("CPU", f"{machine['cores']} cores, {machine['cpu_model']}"),
        ("memory", f"{machine['memory_gib']} GiB"),
        ("kernel", machine["kernel"]),
        ("load average (1/5/15 min) at start", machine["load_average_at_start"]),
        ("load average at end", machine.get("load_average_at_end")),
        ("run mode / wall time", f"{results['mode']} / {results.get('wall_time_s')} s"),
    ] + [(name, version) for name, version in sorted(versions.items())]
    return _table(("", ""), ((key, ", ".join(map(str, v)) if isinstance(v, list) else v)
                             for key, v in rows))


def summary_section(results: Mapping[str, Any]) -> str:
    rows = []
    for app in ("embeddings", "classifier", "search"):
        defaults = _scenario(results, "default", app, "spec defaults")
        if defaults is None:
            continue
        spec = defaults["spec"]
        batch = spec["max_batch_size"] or 1
        threads = max(1, int(spec["num_cpus"]))
        raw_batch = _raw_row(results, app, threads, min(batch, 32))
        raw_single = _raw_row(results, app, threads, 1)
        saturation, single = _run(defaults, SATURATION), _run(defaults, LATENCY)
        served_items = saturation["items_per_s"] if saturation else None
        raw_items = raw_batch["items_per_s"] if raw_batch else None
        raw_p50 = raw_single["batch_latency"]["p50_ms"] if raw_single else None
        served_p50 = _latency(single, "p50_ms")
        rows.append((
            app, f"{batch} / {threads}", raw_items, served_items, _ratio(served_items, raw_items),
            raw_p50, served_p50,
            None if served_p50 is None or raw_p50 is None else served_p50 - raw_p50,
        ))
    return _table(
        ("app", "max_batch_size / threads", "raw items/s (same batch, threads)",
         "served items/s (c=64)", "served / raw", "raw p50 ms (batch 1)",
         "served p50 ms (c=1)", "added p50 ms"),
        rows,
    )


def _spread(row: Mapping[str, Any]) -> str:
    unit = " ms" if row["unit"] == "ms" else ""
    return f"{row['min']:.2f}..{row['max']:.2f}{unit}"


def goals_section(results: Mapping[str, Any]) -> str:
    """Issue 12's goals: median and spread of per-round ratios, raw and served interleaved."""
    goals = results.get("goals") or {}
    if not goals.get("goals"):
        return ""
    loads = [run["load_average"][0] for round_ in goals["rounds"]
             for run in round_["served"].values()]
    rows = []
    for row in goals["goals"]:
        unit = " ms" if row["unit"] == "ms" else ""
        target = f"{'≥' if row['higher_is_better'] else '≤'} {row['target']:.2f}{unit}"
        rows.append((row["goal"], target, f"{row['median']:.2f}{unit}", _spread(row),
                     row["rounds"], "met" if row["met"] else "**not met**"))
    table = _table(("goal", "target", "median", "spread (min..max)", "rounds", ""), rows)
    return (f"{table}\n\nLoad average (1 min) during the served runs: {min(loads):.2f} to "
            f"{max(loads):.2f}. Plot: [throughput.png](throughput.png) "
            "(served vs raw items/s against concurrency, per app).")


def profiles_section(results: Mapping[str, Any]) -> str:
    """Where a replica's time goes under load, for goals not met (py-spy, inclusive)."""
    profiles = (results.get("goals") or {}).get("profiles") or {}
    if not profiles:
        return "_No profile: every goal was met, or none was measured._"
    parts = []
    for what, frames in profiles.items():
        parts.append(f"**{what}**: share of the replica's busy samples per layer (the innermost "
                     "frame naming a layer decides), then the frames with the most self time")
        parts.append(_table(("frame", "share"), ((f["frame"], f"{f['share']:.0%}")
                                                for f in frames)))
    return "\n\n".join(parts)


def raw_section(results: Mapping[str, Any]) -> str:
    rows = []
    for document in results.get("raw", []):
        for row in document["rows"]:
            latency = row["batch_latency"] or {}
            rows.append((document["app"], document["threads"], row["batch_size"],
                         row["items_per_s"], latency.get("p50_ms"), latency.get("p99_ms"),
                         row["batches"]))
    return _table(("app", "torch threads", "batch", "items/s", "batch p50 ms", "batch p99 ms",
                   "batches"), rows)


def sweep_section(results: Mapping[str, Any]) -> str:
    """One row per setting tried on the default variant (each row changes one setting)."""
    rows = []
    for scenario in _scenarios(results, "default"):
        if scenario["app"] == "search":
            continue
        run, single = _run(scenario, SATURATION), _run(scenario, LATENCY)
        spec = scenario["spec"]
        rows.append((scenario["app"], scenario["label"], spec["max_batch_size"],
                     spec["batch_wait_timeout_s"], spec["max_ongoing_requests"],
                     spec["num_cpus"], _latency(single, "p50_ms"),
                     (run or {}).get("throughput_rps"), (run or {}).get("mean_batch_size"),
                     _latency(run, "p50_ms"), _latency(run, "p99_ms"),
                     {**(single or {}).get("errors", {}), **(run or {}).get("errors", {})}))
    return _table(("app", "scenario", "max_batch_size", "batch_wait_timeout_s",
                   "max_ongoing_requests", "num_cpus", "p50 ms (c=1)", "req/s (c=64)",
                   "mean batch run (c=64)", "p50 ms (c=64)", "p99 ms (c=64)", "errors"), rows)


def threads_section(results: Mapping[str, Any]) -> str:
    rows = []
    for scenario in _scenarios(results, "default"):
        if scenario["label"] not in ("spec defaults", "num_cpus 2 (2 torch threads)"):
            continue
        if scenario["app"] == "search":
            continue
        cpus = int(scenario["spec"]["num_cpus"])
        batch = scenario["spec"]["max_batch_size"] or 1
        raw = _raw_row(results, scenario["app"], cpus, min(batch, 32))
        raw_one = _raw_row(results, scenario["app"], cpus, 1)
        rows.append((scenario["app"], cpus, _latency(_run(scenario, LATENCY), "p50_ms"),
                     raw_one["batch_latency"]["p50_ms"] if raw_one else None,
                     (_run(scenario, SATURATION) or {}).get("throughput_rps"),
                     raw["items_per_s"] if raw else None))
    rows.sort(key=lambda r: (r[0], r[1]))
    return _table(("app", "num_cpus (= torch threads)", "served p50 ms (c=1)",
                   "raw p50 ms (batch 1)", "served req/s (c=64)", "raw items/s (same batch)"),
                  rows)


def _ingress(served: Mapping[str, Any]) -> str:
    """What the variant's switches made the ingress: a variant's name means what it meant
    on the day of its run (`default` was the Python proxy before HAProxy became the default)."""
    switches = served.get("switches") or {}
    return "HAProxy" if switches.get("RAY_SERVE_ENABLE_HA_PROXY") == "1" else "Python proxy"


def variants_section(results: Mapping[str, Any]) -> str:
    rows = []
    for served in results.get("served", []):
        for scenario in served["scenarios"]:
            if scenario["label"] != "spec defaults" or "error" in scenario:
                continue
            single, saturation = _run(scenario, LATENCY), _run(scenario, SATURATION)
            rows.append((scenario["app"], served["variant"], _ingress(served),
                         served["ray_start_s"],
                         _latency(single, "p50_ms"), _latency(single, "p99_ms"),
                         (saturation or {}).get("throughput_rps"),
                         _latency(saturation, "p50_ms"), _latency(saturation, "p99_ms"),
                         (saturation or {}).get("client_cpu_share"),
                         {**(single or {}).get("errors", {}),
                          **(saturation or {}).get("errors", {})}))
    rows.sort(key=lambda r: (r[0], r[1]))
    return _table(("app", "variant", "ingress", "Ray+Serve start s", "p50 ms (c=1)",
                   "p99 ms (c=1)",
                   "req/s (c=64)", "p50 ms (c=64)", "p99 ms (c=64)", "client CPU share (c=64)",
                   "errors"), rows)


def open_loop_section(results: Mapping[str, Any]) -> str:
    rows = []
    for scenario in _scenarios(results, "default"):
        for run in scenario["runs"]:
            if run["mode"] != "open":
                continue
            latency = run["latency"] or {}
            rows.append((scenario["app"], run["offered_rps"],
                         round(run["requests"] / run["window_s"], 1), run["throughput_rps"],
                         latency.get("p50_ms"), latency.get("p95_ms"), latency.get("p99_ms"),
                         run["send_lag_p99_ms"], run["errors"]))
    return _table(("app", "target req/s", "sent req/s", "completed req/s", "p50 ms", "p95 ms",
                   "p99 ms", "client send lag p99 ms", "errors"), rows)


def failures_section(results: Mapping[str, Any]) -> str:
    """Variants that did not start and scenarios that failed, with Ray's last words."""
    if not results.get("served"):
        return ""  # no served variant ran: nothing to report, and no "None" to claim
    rows = []
    for served in results.get("served", []):
        if "error" in served:
            rows.append((served["variant"], "(Ray/Serve start)", _last_line(served["error"])))
        for scenario in served["scenarios"]:
            if "error" in scenario:
                rows.append((served["variant"], f"{scenario['app']}: {scenario['label']}",
                             _last_line(scenario["error"])))
    if not rows:
        return "None: every variant started and every scenario ran."
    return _table(("variant", "what", "error (last line)"), rows)


def _last_line(error: str) -> str:
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    return (lines[-1] if lines else error).replace("|", "\\|")[:300]


def cli_section(results: Mapping[str, Any]) -> str:
    """Fresh `servestack` processes beside their imports alone, then the machine they ran on."""
    rows = [(r["what"], f"`{r['command']}`", r["ray"], r["wall_s"], r["wall_min_s"], r["cpu_s"],
             "-" if r.get("target_s") is None else f"≤ {r['target_s']:g} s")
            for r in results.get("cli_time", [])]
    if not rows:
        return ""
    table = _table(("what", "command", "Ray", "wall s (median)", "wall s (min)",
                    "CPU s (median)", "target"), rows)
    return f"{table}\n\n{machine_section(results)}"


def infra_section(results: Mapping[str, Any]) -> str:
    rows = [(r["apps"], r["deployments"], r.get("resolve_overrides_ms"),
             r["build_serve_config_ms"], r["validate_serve_deploy_schema_ms"],
             r["render_yaml_ms"], r["plan_capacity_ms"], r.get("offline_program_ms"),
             round(r["serve_config_bytes"] / 1024, 1))
            for r in results.get("infra_scale", [])]
    return _table(("apps", "deployments", "resolve overrides ms", "build Serve config ms",
                   "ServeDeploySchema ms", "YAML render ms", "plan_capacity ms",
                   "Pulumi program (mocks) ms", "config KiB"), rows)


METHOD = """\
- **Load generator** (`benchmarks/loadgen.py`): asyncio + aiohttp on uvloop, one process.
  Closed loop = N workers, each sends its next request when the previous one returns.
  Open loop = Poisson arrivals at a fixed rate; each request's latency is measured from its
  *intended* send time, so when the server (or the client) stalls, the stall lands in the
  tail instead of silently lowering the offered rate (coordinated omission). The client's
  own lateness is reported as "send lag". Not wrk/locust: wrk's closed loop hides
  coordinated omission (wrk2 fixes it but is a C build, not on PyPI), locust is a
  closed-loop, heavyweight (gevent, web UI) client that would take more of the two cores
  than the 0.1-0.3 ms of CPU per request this client costs; both make JSON bodies per
  request awkward. The client shares the 2 cores with Ray: its CPU time is measured and
  shown as "client CPU share" (fraction of both cores), and it runs alone (no Ray driver
  in its process).
- **Percentiles**: nearest rank (the smallest sample with at least p% of samples at or
  below it; numpy's `method="inverted_cdf"`), so every reported latency was observed. With
  n samples a p99 is only meaningful for n ≥ 100; the JSON keeps `count` per run.
- **Raw baseline** (`benchmarks/raw.py`): the app's own model code in-process (embedding:
  `encode`; classifier: PNG decode + `predict_probabilities`; search: `encode` + numpy
  top-k over the same 500-document corpus), one fresh process per torch thread count,
  with the same inputs the served runs send. It is the ceiling Serve can approach.
- **Served**: one Ray head per variant (throughput switches are read at start), apps
  deployed through the dashboard REST API exactly as `servestack serve` and KubeRay do,
  every deployment pinned to one replica, one app deployed at a time. "c=64" is the
  saturation point (64 in flight = twice the largest batch swept). "Batching off" is
  `max_batch_size: 1`: the app's `@serve.batch` stays, but every forward pass is one item.
  Throughput counts successful responses whose request started in the measured window.
"""


REPRODUCE = "\n".join((
    "```bash",
    ". .venv/bin/activate && servestack model build   # the classifier checkpoint",
    "python -m benchmarks.run            # full: goals + sweeps, results/full.json + this file",
    "python -m benchmarks.run --quick    # < 10 min, goals only: results/quick.json + this file",
    "python -m benchmarks.run --report-only   # measures nothing: this file from results/*.json",
    "python -m benchmarks.infra_scale   # infra scale only",
    "python -m benchmarks.cli_time      # render/plan CLI time: results/cli.json + this file",
    "python -m benchmarks.raw embeddings --threads 1   # one raw baseline",
    "python -m benchmarks.loadgen http://127.0.0.1:8000 --path /embed --body "
    "'{\"texts\": [\"hi\"]}' --mode open --rate 20   # against `servestack serve`",
    "```",
))


def _sources_table(goals: Source | None, full: Source | None,
                   infra: Source | None) -> str:
    roles: dict[str, list[str]] = {}
    order: dict[str, Source] = {}
    for source, role in ((goals, "goals, profiles, plot"), (full, "every sweep section"),
                         (infra, "infra scale")):
        if source is not None:
            roles.setdefault(source.path, []).append(role)
            order[source.path] = source
    rows = []
    for path, source in order.items():
        machine = source.results["machine"]
        start, end = machine.get("load_average_at_start"), machine.get("load_average_at_end")
        rows.append((", ".join(roles[path]), f"`{path}`", source.results["mode"], source.date,
                     ", ".join(map(str, start or [])), ", ".join(map(str, end or []))))
    return _table(("sections", "results file", "mode", "date (UTC)",
                   "load average at start (1/5/15 min)", "at end"), rows) or (
        "_No results yet: run `python -m benchmarks.run --quick`._")


def _machines(goals: Source | None, full: Source | None) -> str:
    parts = []
    if goals is not None and full is not None and goals.path == full.path:
        return f"### Goals and sweeps: `{goals.path}`\n\n{machine_section(goals.results)}"
    for title, source in (("Goals run", goals), ("Sweep run (full)", full)):
        if source is not None:
            parts.append(f"### {title}: `{source.path}`\n\n{machine_section(source.results)}")
    return "\n\n".join(parts) or "_No results yet._"


def render(goals: Source | None, full: Source | None, analysis: str,
           cli: Source | None = None) -> str:
    """RESULTS.md: goals from `goals`, sweeps from `full` (either may be None or the same),
    CLI time from `cli`."""
    infra = max((s for s in (goals, full) if s is not None and s.results.get("infra_scale")),
                key=lambda s: s.date, default=None)
    generated = " and ".join(dict.fromkeys(s.path for s in (goals, full) if s is not None))
    parts = [
        "# Benchmark results",
        f"<!-- generated by `python -m benchmarks.report` (also at the end of "
        f"`python -m benchmarks.run [--quick]`) from {generated or 'no results'}; only the "
        "analysis block is hand-written and is kept on regeneration -->",
        "Each section names the run its numbers come from. The goals come from the latest run "
        "that measured them, the sweeps from the latest full run: they may be days apart, "
        "on a differently loaded machine and a different stack.",
        _sources_table(goals, full, infra),
        "## Machine", _machines(goals, full),
        "## Reproduce", REPRODUCE,
        "## Method", METHOD,
        "## Issue 12 goals (stack as shipped, raw and served interleaved)",
        _sourced(goals, "run measured the goals", goals_section),
        "## Where the time goes (goals not met)",
        _sourced(goals, "run measured the goals", profiles_section),
    ]
    for title, body in (
        ("Served vs raw (default variant, spec defaults, one replica)", summary_section),
        ("Settings sweep (default variant, one replica)", sweep_section),
        ("Threads per replica", threads_section),
        ("Ray Serve throughput switches", variants_section),
        ("Open loop (latency from intended send time)", open_loop_section),
        ("Failures", failures_section),
        ("Raw baselines", raw_section),
    ):
        parts += [f"## {title}", _sourced(full, "full run", body)]
    parts += [
        "## Infra scale", _sourced(infra, "run measured it", infra_section),
        "## CLI time (render, plan)", _sourced(cli, "`cli_time` run", cli_section),
        "## Analysis and chosen defaults",
        ANALYSIS_START + "\n" + analysis.strip() + "\n" + ANALYSIS_END,
    ]
    return "\n\n".join(parts) + "\n"


def existing_analysis(path: Path) -> str:
    if not path.is_file():
        return "_(to be written after reading the tables)_"
    text = path.read_text()
    if ANALYSIS_START in text and ANALYSIS_END in text:
        return text.split(ANALYSIS_START, 1)[1].split(ANALYSIS_END, 1)[0]
    return "_(to be written after reading the tables)_"


def write(goals: Source | None, full: Source | None,
          target: Path = BENCH_DIR / "RESULTS.md", cli: Source | None = None) -> Path:
    """Rewrite RESULTS.md from these runs, keeping its analysis block; measures nothing."""
    target.write_text(render(goals, full, existing_analysis(target), cli))
    return target


def write_latest(results_dir: Path = RESULTS_DIR, extra: Sequence[Path] = ()) -> Path:
    return write(*latest(results_dir, extra), cli=load(results_dir / CLI_RESULTS))


cli = typer.Typer(add_completion=False)


@cli.command()
def main(
    goals: Path | None = typer.Option(None, help="Results JSON for the goals section "
                                      "[default: the latest of results/{quick,full}.json "
                                      "that measured them]."),
    full: Path | None = typer.Option(None, help="Full-run JSON for the sweep sections "
                                     "[default: results/full.json]."),
) -> None:
    """Regenerate RESULTS.md from results JSON without measuring (keeps the analysis block)."""
    latest_goals, latest_full = latest()
    written = write(load(goals) if goals else latest_goals, load(full) if full else latest_full,
                    cli=load(RESULTS_DIR / CLI_RESULTS))
    typer.echo(f"wrote {written}")


if __name__ == "__main__":
    cli()
