"""Issue 12's goals, measured side by side: raw model and served app, interleaved in rounds.

Each round runs the raw in-process baseline (a fresh process, one torch thread, as one
replica has), then the same work served by the stack as shipped (HAProxy ingress, one
replica per app, spec defaults), so the two sides see the same machine load. A goal's ratio
is computed per round; the report gives the median and the spread (min..max) over >= 3
rounds, so a ratio is not one lucky run. The last phase sweeps concurrency for the plot.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.catalog import CATALOG
from apps.classifier.spec import TILE_CLASSIFIER
from apps.embeddings.spec import EMBEDDER
from apps.spec import Batching
from benchmarks import raw
from benchmarks.cluster import BenchCluster
from benchmarks.loadgen import LoadResult, Workload, closed_loop, run
from benchmarks.machine import load_average
from benchmarks.served import VARIANTS, batching_patch, single_replica
from benchmarks.workloads import POOL, classifier_workload, embeddings_workload, sentences

EMBED_BATCH = 8
"""The issue's reference: the raw encoder at batch 8 and the served app at 8 texts/request."""
SWEEP = (1, 4, 16, 64)
"""Concurrency (served, one item per request) = batch size (raw) in the plot."""


@dataclass(frozen=True)
class Goal:
    key: str
    text: str
    target: float
    higher_is_better: bool
    unit: str = "x raw"

    def met(self, value: float) -> bool:
        return value >= self.target if self.higher_is_better else value <= self.target


def _wait_ms(spec_batching: Batching | None) -> float:
    return 1000 * (spec_batching.batch_wait_timeout_s if spec_batching else 0.0)


GOALS = (
    Goal("embed_8_per_request", "embeddings: served / raw texts/s, 8 texts/request (c=16)",
         0.90, True),
    Goal("embed_1_per_request", "embeddings: served / raw texts/s, 1 text/request (c=32)",
         0.70, True),
    Goal("embed_added_p50", "embeddings: added p50 at c=1, 1 text (ms over raw batch 1)",
         _wait_ms(EMBEDDER.batching) + 2.0, False, "ms"),
    Goal("classifier_added_p50", "classifier: added p50 at c=1, 1 tile (ms over raw batch 1)",
         2.0, False, "ms"),
    Goal("classifier_saturation", "classifier: served / raw tiles/s at saturation (c=64)",
         0.50, True),
    Goal("batching", "embeddings: served batched/unbatched over raw batch-8/batch-1", 0.80, True),
)


def _embed_workload(texts_per_request: int) -> Workload:
    route = CATALOG["embeddings"].route_prefix
    if texts_per_request == 1:
        return embeddings_workload(route)
    corpus = sentences(POOL * texts_per_request, seed=1)
    bodies = [{"texts": corpus[i:i + texts_per_request]}
              for i in range(0, len(corpus), texts_per_request)]
    return Workload.json(f"embeddings: {texts_per_request} texts/request", route, bodies,
                         items=texts_per_request)


def _raw_rows(app: str, sizes: Sequence[int], seconds: float) -> dict[int, Mapping[str, Any]]:
    document = raw.run_isolated(app, 1, sorted(set(sizes)), seconds)
    return {int(row["batch_size"]): row for row in document["rows"]}


def _p50(result: Mapping[str, Any]) -> float:
    return float((result.get("latency") or {}).get("p50_ms", float("nan")))


def _serve_both(cluster: BenchCluster, embed_batch_size: int | None = None) -> None:
    embed_patch = batching_patch("embeddings", embed_batch_size) if embed_batch_size else {}
    cluster.deploy([single_replica(CATALOG["embeddings"], embed_patch),
                    single_replica(CATALOG["classifier"], {})])


def _closed(cluster: BenchCluster, workload: Workload, concurrency: int,
            timing: tuple[float, float]) -> dict[str, Any]:
    warmup_s, window_s = timing
    result: LoadResult = run(closed_loop(cluster.base_url, workload, concurrency, window_s,
                                         warmup_s))
    record = result.to_json()
    record["load_average"] = load_average()
    return record


def one_round(cluster: BenchCluster, timing: tuple[float, float], raw_seconds: float,
              log: Callable[[str], None]) -> dict[str, Any]:
    """Raw first (Serve idle), then served; returns every number the goals need."""
    classifier_batch = (TILE_CLASSIFIER.batching or Batching()).max_batch_size
    raw_embed = _raw_rows("embeddings", (1, EMBED_BATCH), raw_seconds)
    raw_classifier = _raw_rows("classifier", (1, classifier_batch), raw_seconds)
    log(f"    raw: embed b1 {raw_embed[1]['items_per_s']}/s, b8 "
        f"{raw_embed[EMBED_BATCH]['items_per_s']}/s; classifier b1 "
        f"{raw_classifier[1]['items_per_s']}/s, b{classifier_batch} "
        f"{raw_classifier[classifier_batch]['items_per_s']}/s")
    _serve_both(cluster)  # spec defaults (the previous round ended unbatched)
    served = {
        "embed_c1": _closed(cluster, _embed_workload(1), 1, timing),
        "embed_8_c16": _closed(cluster, _embed_workload(EMBED_BATCH), 16, timing),
        "embed_1_c32": _closed(cluster, _embed_workload(1), 32, timing),
        "classifier_c1": _closed(cluster, classifier_workload(
            CATALOG["classifier"].route_prefix), 1, timing),
        "classifier_c64": _closed(cluster, classifier_workload(
            CATALOG["classifier"].route_prefix), 64, timing),
    }
    _serve_both(cluster, embed_batch_size=1)
    served["embed_1_c32_unbatched"] = _closed(cluster, _embed_workload(1), 32, timing)
    log("    served: " + ", ".join(f"{key} {value['items_per_s']}/s p50 {_p50(value):.1f} ms"
                                   for key, value in served.items()))
    return {"raw": {"embeddings": raw_embed, "classifier": raw_classifier,
                    "classifier_batch": classifier_batch}, "served": served}


def ratios(round_: Mapping[str, Any]) -> dict[str, float]:
    """Each goal's value in one round."""
    raw_embed = round_["raw"]["embeddings"]
    raw_classifier = round_["raw"]["classifier"]
    served = round_["served"]

    def items(key: str) -> float:
        return float(served[key]["items_per_s"])

    def raw_items(rows: Mapping[Any, Any], size: int) -> float:
        return float((rows.get(size) or rows[str(size)])["items_per_s"])

    def raw_p50(rows: Mapping[Any, Any]) -> float:
        return float((rows.get(1) or rows["1"])["batch_latency"]["p50_ms"])

    raw_b8 = raw_items(raw_embed, EMBED_BATCH)
    raw_batching = raw_b8 / raw_items(raw_embed, 1)
    served_batching = items("embed_1_c32") / max(items("embed_1_c32_unbatched"), 1e-9)
    return {
        "embed_8_per_request": items("embed_8_c16") / raw_b8,
        "embed_1_per_request": items("embed_1_c32") / raw_b8,
        "embed_added_p50": _p50(served["embed_c1"]) - raw_p50(raw_embed),
        "classifier_added_p50": _p50(served["classifier_c1"]) - raw_p50(raw_classifier),
        "classifier_saturation": items("classifier_c64") / raw_items(
            raw_classifier, int(round_["raw"]["classifier_batch"])),
        "batching": served_batching / raw_batching,
    }


def summarize(rounds: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per goal: median, min, max over rounds, and whether the median meets the target."""
    per_round = [ratios(round_) for round_ in rounds]
    rows = []
    for goal in GOALS:
        values = [r[goal.key] for r in per_round]
        median = statistics.median(values)
        rows.append({"key": goal.key, "goal": goal.text, "target": goal.target,
                     "higher_is_better": goal.higher_is_better, "unit": goal.unit,
                     "median": round(median, 3), "min": round(min(values), 3),
                     "max": round(max(values), 3), "rounds": len(values),
                     "met": goal.met(median)})
    return rows


def sweep(cluster: BenchCluster, timing: tuple[float, float], raw_seconds: float,
          log: Callable[[str], None]) -> dict[str, Any]:
    """Items/s against concurrency (served) and batch size (raw), per app, for the plot."""
    _serve_both(cluster)
    curves: dict[str, Any] = {}
    for app, workload in (("embeddings", _embed_workload(1)),
                          ("classifier", classifier_workload(CATALOG["classifier"].route_prefix))):
        raw_rows = _raw_rows(app, SWEEP, raw_seconds)
        served = {c: _closed(cluster, workload, c, timing)["items_per_s"] for c in SWEEP}
        curves[app] = {"concurrency": list(SWEEP),
                       "raw": [raw_rows[c]["items_per_s"] for c in SWEEP],
                       "served": [served[c] for c in SWEEP]}
        log(f"    sweep {app}: raw {curves[app]['raw']}, served {curves[app]['served']}")
    return curves


def replica_pid(cluster: BenchCluster, deployment: str) -> int | None:
    from ray.util.state import list_actors

    actors = list_actors(address=cluster.ports.dashboard_url, filters=[("state", "=", "ALIVE")],
                         limit=1000, raise_on_missing_output=False)
    for actor in actors:
        if actor.class_name.startswith("ServeReplica:") and actor.class_name.endswith(
                ":" + deployment) and actor.pid:
            return int(actor.pid)
    return None


def profile(cluster: BenchCluster, workload: Workload, concurrency: int, deployment: str,
            seconds: float) -> list[dict[str, Any]]:
    """py-spy on the replica under `concurrency` clients: the frames holding most samples,
    idle waits left out. Empty when py-spy cannot attach (no ptrace permission)."""
    import asyncio
    import threading

    pid = replica_pid(cluster, deployment)
    if pid is None:
        return []
    with tempfile.TemporaryDirectory() as workdir:
        out = Path(workdir) / "stacks.txt"
        load = threading.Thread(target=lambda: asyncio.run(closed_loop(
            cluster.base_url, workload, concurrency, seconds + 2, 1.0)), daemon=True)
        load.start()
        beside = Path(sys.executable).with_name("py-spy")
        py_spy = str(beside) if beside.is_file() else "py-spy"
        result = subprocess.run(
            [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
             "--format", "raw", "--output", str(out), "--nonblocking"],
            capture_output=True, text=True, check=False, timeout=seconds + 60)
        load.join(timeout=seconds + 30)
        if result.returncode != 0 or not out.exists():
            return [{"frame": f"py-spy failed: {result.stderr.strip()[-300:]}", "share": 0.0}]
        return top_frames(out.read_text())


IDLE_FRAMES = ("select (selectors.py", "_run_once (asyncio/base_events.py", "wait (threading.py",
               "_worker (concurrent/futures/thread.py", "get (queue.py")
CATEGORIES = (
    ("model forward (torch)", ("torch/", "sentence_transformers/", "transformers/",
                               "apps/classifier/model.py", "apps/embeddings/encoder.py")),
    ("input decoding (PNG, numpy)", ("PIL/", "apps/classifier/tile_input.py")),
    ("Ray Serve request path", ("ray/serve/", "ray/_private/", "ray/_raylet")),
    ("HTTP server, FastAPI, JSON", ("uvicorn/", "starlette/", "fastapi/", "h11/", "httptools",
                                    "pydantic", "orjson", "json/", "apps/json_io.py",
                                    "apps/http_contract.py", "apps/ingress.py")),
    ("asyncio", ("asyncio/",)),
)


def _category(frames: Sequence[str]) -> str:
    """The innermost frame that names a known layer decides where a sample's time went."""
    for frame in reversed(frames):
        for name, markers in CATEGORIES:
            if any(marker in frame for marker in markers):
                return name
    return "other"


def top_frames(collapsed: str, limit: int = 8) -> list[dict[str, Any]]:
    """Share of busy samples per layer, then the leaf frames (self time) that cost most."""
    layers: dict[str, int] = {}
    leaves: dict[str, int] = {}
    busy = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if any(frames[-1].startswith(idle) for idle in IDLE_FRAMES):
            continue
        count = int(count_text)
        busy += count
        layer = _category(frames)
        layers[layer] = layers.get(layer, 0) + count
        leaves[frames[-1]] = leaves.get(frames[-1], 0) + count
    if not busy:
        return []
    rows = [{"frame": f"layer: {name}", "share": round(count / busy, 3)}
            for name, count in sorted(layers.items(), key=lambda kv: -kv[1])]
    rows += [{"frame": f"self: {frame}", "share": round(count / busy, 3)}
             for frame, count in sorted(leaves.items(), key=lambda kv: -kv[1])[:limit]]
    return rows


def measure(quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """The whole goals phase on one private head running the stack as shipped."""
    rounds_wanted = 3 if quick else 5
    timing = (1.0, 3.0) if quick else (2.0, 6.0)
    raw_seconds = 1.5 if quick else 4.0
    cluster = BenchCluster(switches=VARIANTS["default"])
    document: dict[str, Any] = {"variant": "default", "rounds": [], "timing": {
        "warmup_s": timing[0], "window_s": timing[1], "raw_seconds": raw_seconds}}
    log("== goals: the stack as shipped (HAProxy ingress), raw and served interleaved")
    cluster.start()
    try:
        _serve_both(cluster)
        for index in range(rounds_wanted):
            log(f"  round {index + 1}/{rounds_wanted}")
            document["rounds"].append(one_round(cluster, timing, raw_seconds, log))
        document["goals"] = summarize(document["rounds"])
        document["sweep"] = sweep(cluster, timing, raw_seconds, log)
        unmet = {row["key"] for row in document["goals"] if not row["met"]}
        document["profiles"] = {}
        if unmet & {"embed_1_per_request", "embed_8_per_request", "batching"}:
            log("  profiling the Embedder replica at c=32 (py-spy)")
            document["profiles"]["Embedder, 1 text/request, c=32"] = profile(
                cluster, _embed_workload(1), 32, EMBEDDER.name, 4 if quick else 8)
        if "embed_added_p50" in unmet:
            log("  profiling the Embedder replica at c=1 (py-spy)")
            document["profiles"]["Embedder, 1 text/request, c=1"] = profile(
                cluster, _embed_workload(1), 1, EMBEDDER.name, 4 if quick else 8)
        for key, concurrency in (("classifier_added_p50", 1), ("classifier_saturation", 64)):
            if key in unmet:
                log(f"  profiling the TileClassifier replica at c={concurrency} (py-spy)")
                document["profiles"][f"TileClassifier, 1 tile/request, c={concurrency}"] = (
                    profile(cluster, classifier_workload(CATALOG["classifier"].route_prefix),
                            concurrency, TILE_CLASSIFIER.name, 4 if quick else 8))
    finally:
        cluster.stop()
    return document
