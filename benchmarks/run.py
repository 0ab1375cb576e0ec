"""`python -m benchmarks.run [--quick | --report-only]`: every benchmark in one go, then RESULTS.md.

RESULTS.md is rewritten from the latest run of each kind (`report.latest`): a quick run
replaces the goals, the sweep sections stay those of the latest full run, each labelled with
its run. `--report-only` measures nothing and only rewrites RESULTS.md from results/*.json.

Order matters on two shared cores: the infra timings and the raw baselines run before any
Ray is started, and each served variant stops its Ray before the next one starts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from benchmarks import cli_time, goals, infra_scale, plot, raw, report
from benchmarks.machine import describe, load_average
from benchmarks.served import VARIANTS, run_variant

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RAW_APPS = ("embeddings", "classifier", "search")
RAW_THREADS = (1, 2)
BATCH_SIZES = [1, 8, 16, 32]

console = Console(stderr=True)
cli = typer.Typer(add_completion=False)


def _wait_for_quiet(max_load: float, max_wait_s: float) -> None:
    """Other engineers' tests share these cores: wait (bounded) for the 1-minute load to drop."""
    deadline = time.monotonic() + max_wait_s
    while (load := load_average()[0]) > max_load and time.monotonic() < deadline:
        console.print(f"load average {load} > {max_load}; waiting for a quieter machine…")
        time.sleep(15)


def _ensure_checkpoint() -> None:
    """The classifier's checkpoint (`servestack model build`); a no-op once it is built."""
    from apps.classifier.model_store import default_checkpoint_path
    from apps.classifier.training import build_checkpoint

    build_checkpoint(default_checkpoint_path())


@cli.command()
def main(
    quick: bool = typer.Option(False, "--quick", help="Issue 12's goals only: 3 interleaved "
                               "rounds, short windows, the plot (< 10 min)."),
    variants: str = typer.Option(",".join(VARIANTS), help="Comma-separated served variants."),
    skip_raw: bool = typer.Option(False, help="Skip the raw in-process baselines."),
    skip_served: bool = typer.Option(False, help="Skip the served runs (no Ray started)."),
    wait_quiet: float = typer.Option(
        0.0, help="Before starting, wait up to 10 min for the 1-min load average to fall "
        "below this (0: do not wait)."),
    output: Path | None = typer.Option(None, help="Results JSON [default: results/<mode>.json]."),
    report_only: bool = typer.Option(
        False, "--report-only", help="Measure nothing: rewrite RESULTS.md from the latest "
        "results/quick.json (goals) and results/full.json (sweeps)."),
) -> None:
    """Infra scale timings, raw baselines and served variants; writes JSON and RESULTS.md."""
    if report_only:
        console.print(f"wrote {report.write_latest(RESULTS_DIR)} (nothing measured)")
        return
    unknown = sorted(set(variants.split(",")) - set(VARIANTS))
    if unknown:
        raise typer.BadParameter(f"unknown variant(s) {unknown}; known: {sorted(VARIANTS)}",
                                 param_hint="--variants")
    if wait_quiet:
        _wait_for_quiet(wait_quiet, 600)
    _ensure_checkpoint()
    started = time.monotonic()
    results: dict[str, Any] = {"mode": "quick" if quick else "full", "machine": describe()}

    console.print("[bold]infra scale[/bold]: serve config, schema, YAML, capacity plan")
    results["infra_scale"] = infra_scale.measure(repeats=3 if quick else 7)
    console.print("[bold]CLI time[/bold]: render and plan in fresh processes → results/cli.json")
    cli_time.run(repeats=3 if quick else 5)
    path = output or RESULTS_DIR / f"{results['mode']}.json"

    if not skip_served:
        results["goals"] = goals.measure(quick, console.print)
        _save(path, results, started)
        sweep = results["goals"].get("sweep")
        if sweep:
            label = f"{results['machine']['cores']} cores, load {load_average()[0]}"
            console.print(f"wrote {plot.write(sweep, label)}")

    results["raw"] = []
    if not skip_raw and not quick:
        for app in RAW_APPS:
            for threads in RAW_THREADS:
                console.print(f"[bold]raw[/bold] {app}, {threads} thread(s)")
                document = raw.run_isolated(app, threads, BATCH_SIZES, 1.5 if quick else 4.0)
                document["load_average_after"] = load_average()
                results["raw"].append(document)

    _save(path, results, started)

    results["served"] = []
    if not skip_served and not quick:  # quick: the goals only, under 10 minutes
        for name in variants.split(","):
            results["served"].append(run_variant(name, quick, console.print))
            _save(path, results, started)
    written = report.write_latest(RESULTS_DIR, extra=[path])
    console.print(f"wrote {path} ({results['wall_time_s']} s), {written}")


def _save(path: Path, results: dict[str, Any], started: float) -> None:
    """Write after every phase, so an interrupted run keeps what it measured."""
    results["wall_time_s"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_at_end"] = load_average()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    cli()
