"""`python -m benchmarks.cli_time`: how long `servestack render` and `plan` take, next to
what their imports alone cost.

Every row is a fresh `servestack` process, as a user runs it: wall time and the CPU time it
used (user + system, from the children's rusage), the median of `repeats` runs. Ray is
measured both ways: "asked" runs with SERVESTACK_NO_CACHE=1, so Ray is imported and asked
every time (a first run after an install or a Ray upgrade); "remembered" reads the answers a
previous run stored (infra.ray_answers), as every later run does. Targets (issue 21): render
of the four shipped stacks ≤ 2 s, plan of one stack ≤ 1 s.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import typer

from benchmarks.machine import describe, load_average
from benchmarks.report import CLI_RESULTS, RESULTS_DIR
from infra.ray_answers import CACHE_DIR_ENV, NO_CACHE_ENV

ROOT = Path(__file__).resolve().parent.parent
RESULTS = RESULTS_DIR / CLI_RESULTS
CLI = "from servestack.cli import main; main()"
PLAN_STACK = "prod"
TARGETS_S = {"render": 2.0, "plan": 1.0}


def _run_once(argv: Sequence[str], env: Mapping[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], cwd=ROOT, env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _row(what: str, command: str, ray: str, argv: Sequence[str], env: Mapping[str, str],
         repeats: int, target: str | None = None) -> dict[str, Any]:
    runs = [_run_once(argv, env) for _ in range(repeats)]
    return {"what": what, "command": command, "ray": ray, "repeats": repeats,
            "wall_s": round(statistics.median(w for w, _ in runs), 2),
            "cpu_s": round(statistics.median(c for _, c in runs), 2),
            "wall_min_s": round(min(w for w, _ in runs), 2),
            "target_s": TARGETS_S.get(target) if target else None}


def measure(repeats: int = 5) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "render")
        asked = {NO_CACHE_ENV: "1"}
        remembered = {CACHE_DIR_ENV: str(Path(tmp) / "cache"), NO_CACHE_ENV: ""}
        render = ["-c", CLI, "render", "--out", out]
        plan = ["-c", CLI, "plan", "--stack", PLAN_STACK]
        _run_once(render, remembered)  # stores the answers the remembered rows read
        _run_once(plan, remembered)
        return [
            _row("Python start", "python -c pass", "-", ["-c", "pass"], {}, repeats),
            _row("render's imports alone", "import servestack.cli.render", "-",
                 ["-c", "import servestack.cli.render"], {}, repeats),
            _row("render, 4 stacks", "servestack render --out DIR", "asked", render, asked,
                 repeats, "render"),
            _row("render, 4 stacks", "servestack render --out DIR", "remembered", render,
                 remembered, repeats, "render"),
            _row("plan's imports alone", "import servestack.cli.plan", "-",
                 ["-c", "import servestack.cli.plan"], {}, repeats),
            _row("plan, 1 stack", f"servestack plan --stack {PLAN_STACK}", "asked", plan,
                 asked, repeats, "plan"),
            _row("plan, 1 stack", f"servestack plan --stack {PLAN_STACK}", "remembered", plan,
                 remembered, repeats, "plan"),
        ]


def run(repeats: int, output: Path = RESULTS) -> dict[str, Any]:
    """Measure and write `output` (the `cli` results RESULTS.md's CLI section reads)."""
    results: dict[str, Any] = {"mode": "cli", "machine": describe()}
    started = time.monotonic()
    results["cli_time"] = measure(repeats)
    results["wall_time_s"] = round(time.monotonic() - started, 1)
    results["machine"]["load_average_at_end"] = load_average()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


cli = typer.Typer(add_completion=False)


@cli.command()
def main(
    repeats: int = typer.Option(5, min=1, help="Median of this many fresh processes per row."),
    output: Path = typer.Option(RESULTS, help="Results JSON."),
) -> None:
    """Time `servestack render` (4 stacks) and `plan` (1 stack) beside their imports."""
    results = run(repeats, output)
    typer.echo(json.dumps(results["cli_time"], indent=2))


if __name__ == "__main__":
    cli()
