"""The goals' arithmetic, the report rows and the plot, from a hand-made round (no Ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import goals, plot, report


def _served(items_per_s: float, p50_ms: float) -> dict[str, Any]:
    return {"items_per_s": items_per_s, "latency": {"p50_ms": p50_ms}, "load_average": [1.0]}


def _round(scale: float) -> dict[str, Any]:
    """Raw encoder: 40 texts/s alone, 100 at batch 8; classifier 300 alone, 900 batched."""
    def raw_row(items: float, p50: float) -> dict[str, Any]:
        return {"items_per_s": items, "batch_latency": {"p50_ms": p50}}

    return {
        "raw": {"embeddings": {"1": raw_row(40, 25.0), "8": raw_row(100, 80.0)},
                "classifier": {"1": raw_row(300, 3.0), "16": raw_row(900, 18.0)},
                "classifier_batch": 16},
        "served": {"embed_c1": _served(30, 25.0 + 10 * scale),
                   "embed_8_c16": _served(95 * scale, 1300),
                   "embed_1_c32": _served(80 * scale, 400),
                   "embed_1_c32_unbatched": _served(40, 800),
                   "classifier_c1": _served(250, 4.0),
                   "classifier_c64": _served(400, 150)},
    }


def test_each_goal_is_the_median_of_its_per_round_ratios() -> None:
    rows = {row["key"]: row for row in goals.summarize([_round(0.8), _round(1.0), _round(1.2)])}
    assert rows["embed_8_per_request"]["median"] == 0.95  # 95 / 100
    assert (rows["embed_8_per_request"]["min"], rows["embed_8_per_request"]["max"]) == (
        0.76, 1.14)
    assert rows["embed_8_per_request"]["met"]
    assert rows["embed_1_per_request"]["median"] == 0.8
    assert rows["embed_added_p50"]["median"] == 10.0  # ms over raw batch 1
    assert rows["classifier_added_p50"]["median"] == 1.0 and rows["classifier_added_p50"]["met"]
    assert rows["classifier_saturation"]["median"] == round(400 / 900, 3)
    assert not rows["classifier_saturation"]["met"]
    assert rows["batching"]["median"] == 0.8  # served 80/40 = 2.0 over raw 100/40 = 2.5
    assert {row["rounds"] for row in rows.values()} == {3}


def test_the_report_names_unmet_goals_and_the_plot_is_a_png(tmp_path: Path) -> None:
    document = {"rounds": [_round(1.0)] * 3, "goals": goals.summarize([_round(1.0)] * 3)}
    section = report.goals_section({"goals": document})
    assert "| classifier: served / raw tiles/s at saturation (c=64) | ≥ 0.50 | 0.44 |" in section
    assert "**not met**" in section
    curve = {"concurrency": [1, 4], "raw": [40.0, 90.0], "served": [30.0, 70.0]}
    written = plot.write({"embeddings": curve, "classifier": curve}, "test", tmp_path / "t.png")
    assert written.read_bytes().startswith(b"\x89PNG")


def test_a_profile_charges_each_sample_to_the_innermost_known_layer() -> None:
    collapsed = "\n".join([
        "run (threading.py:1);encode (apps/embeddings/encoder.py:40);forward (torch/nn.py:9) 70",
        "handle (ray/serve/_private/replica.py:5);dumps (orjson) 20",
        "handle (ray/serve/_private/replica.py:5);send (ray/serve/_private/router.py:7) 10",
        "main (x.py:1);select (selectors.py:469) 500",  # idle: left out
    ])
    rows = goals.top_frames(collapsed)
    layers = {row["frame"]: row["share"] for row in rows if row["frame"].startswith("layer:")}
    assert layers == {"layer: model forward (torch)": 0.7,
                      "layer: HTTP server, FastAPI, JSON": 0.2,
                      "layer: Ray Serve request path": 0.1}
