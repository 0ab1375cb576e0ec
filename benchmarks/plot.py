"""Throughput against concurrency, served vs raw, one panel per app (benchmarks/throughput.png).

Raw points are the model in-process at batch size = concurrency: the most a replica could
do with that many requests in hand. Served points are the stack as shipped, one item per
request, at that many clients. The gap between the two lines is what serving costs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PLOT = BENCH_DIR / "throughput.png"


def write(sweep: Mapping[str, Mapping[str, Any]], machine: str, path: Path = PLOT) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    apps = sorted(sweep)
    figure, axes = plt.subplots(1, len(apps), figsize=(5.5 * len(apps), 4), squeeze=False)
    for axis, app in zip(axes[0], apps, strict=True):
        curve = sweep[app]
        axis.plot(curve["concurrency"], curve["raw"], "o--", label="raw model (batch = c)")
        axis.plot(curve["concurrency"], curve["served"], "s-", label="served (c clients)")
        axis.set_xscale("log", base=2)
        axis.set_xticks(curve["concurrency"], [str(c) for c in curve["concurrency"]])
        axis.set_title(f"{app}: one item per request")
        axis.set_xlabel("concurrency (served) / batch size (raw)")
        axis.set_ylabel("items/s")
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(f"Served vs raw throughput, 1 replica, 1 torch thread — {machine}",
                    fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
