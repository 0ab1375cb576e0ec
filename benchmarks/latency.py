"""Latency percentiles by the nearest-rank method, so every reported value was observed.

Interpolating percentiles (numpy's default "linear") invent latencies between two samples;
with a few hundred samples the p99 would then depend on the interpolation, not on the
requests. Nearest rank (numpy's method="inverted_cdf") returns the smallest sample with at
least p% of samples at or below it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def nearest_rank(samples: Sequence[float], percentile: float) -> float:
    """The value at rank ceil(p/100 * n) of the sorted samples (1-based); p in (0, 100]."""
    if not samples:
        raise ValueError("no samples: a percentile of nothing is undefined")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must lie in (0, 100], got {percentile}")
    ordered = sorted(samples)
    rank = max(1, math.ceil(percentile / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds; `count` says how much a tail percentile can be trusted (p99 needs >= 100)."""

    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencySummary | None:
        if not seconds:
            return None
        ms = [s * 1000 for s in seconds]
        return cls(
            count=len(ms),
            mean_ms=sum(ms) / len(ms),
            p50_ms=nearest_rank(ms, 50),
            p95_ms=nearest_rank(ms, 95),
            p99_ms=nearest_rank(ms, 99),
            max_ms=max(ms),
        )

    def to_json(self) -> dict[str, Any]:
        return {key: round(value, 3) if isinstance(value, float) else value
                for key, value in sorted(asdict(self).items())}
