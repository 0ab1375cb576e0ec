"""Served runs: each app behind Ray Serve on a local head, under closed- and open-loop load.

A variant is one set of Ray/Serve switches (each needs its own Ray start); a scenario is one
override of an app's spec deployed onto that head (batch size, num_cpus, ...); a run is one
load against it. Every app runs with one replica so numbers compare with one raw process.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import requests

from apps.catalog import CATALOG
from apps.classifier.spec import TILE_CLASSIFIER
from apps.embeddings.spec import EMBEDDER
from apps.spec import ApplicationSpec, Batching
from benchmarks.cluster import BenchCluster
from benchmarks.loadgen import LoadResult, Workload, closed_loop, open_loop, run
from benchmarks.machine import load_average
from benchmarks.raw import SEARCH_CORPUS
from benchmarks.workloads import (
    classifier_workload,
    embeddings_workload,
    search_documents,
    search_query_workload,
)
from infra.config import ServeOptions
from infra.ingress_environment import ingress_environment


def stack_environment(serve: ServeOptions) -> dict[str, str]:
    """What `servestack serve` gives Ray for these Serve options: the ingress layer and,
    with serve.haproxy, the HAProxy switch and its knobs."""
    return ingress_environment(CATALOG.values(), serve)


SHIPPED = stack_environment(ServeOptions())
VARIANTS: dict[str, dict[str, str]] = {
    "default": SHIPPED,  # as shipped: HAProxy ingress (serve.haproxy true)
    "python_proxy": stack_environment(ServeOptions(haproxy=False)),
    "throughput_optimized": {**SHIPPED, "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
}

SATURATION_CONCURRENCY = 64
"""In flight at saturation: twice the largest batch swept, so a batch can fill while the
previous one runs. The spec's max_ongoing_requests is raised to fit where it is lower."""


@dataclass(frozen=True)
class Timing:
    warmup_s: float
    window_s: float


FULL = Timing(warmup_s=2.0, window_s=6.0)
QUICK = Timing(warmup_s=1.0, window_s=3.0)


@dataclass(frozen=True)
class Scenario:
    """One deployment override of one app and the loads run against it."""

    app: str
    label: str
    patch: Mapping[str, Any]  # {deployment name: DeploymentSpec fields}
    latency_run: bool = True  # closed loop, concurrency 1
    saturation_run: bool = True  # closed loop, SATURATION_CONCURRENCY
    open_fractions: tuple[float, ...] = ()  # open loop at these fractions of saturation


def _ingress(app: str) -> str:
    """The deployment whose batching and threads decide the app's throughput."""
    return {"embeddings": EMBEDDER.name, "classifier": TILE_CLASSIFIER.name,
            "search": EMBEDDER.name}[app]


def single_replica(app: ApplicationSpec, patch: Mapping[str, Any]) -> ApplicationSpec:
    """The app with every deployment pinned to one replica, then the scenario's patch.

    Autoscaled deployments are pinned with min = max = 1, so the measured configuration
    keeps the autoscaled shape the defaults ship with."""
    pinned: dict[str, Any] = {}
    for dep in app.deployments:
        fields: dict[str, Any] = (
            {"autoscaling": {"min_replicas": 1, "max_replicas": 1, "initial_replicas": None}}
            if dep.autoscaling else {"num_replicas": 1})
        fields.update(patch.get(dep.name, {}))
        batching = fields.get("batching", dep.batching and dep.batching.model_dump())
        if batching:
            fields.setdefault("max_ongoing_requests", max(dep.max_ongoing_requests,
                                                          batching["max_batch_size"]))
        pinned[dep.name] = fields
    return app.with_overrides({"deployments": pinned})


def batching_patch(app: str, size: int, wait_s: float | None = None) -> dict[str, Any]:
    dep = CATALOG[app].deployment(_ingress(app))
    wait = wait_s if wait_s is not None else (dep.batching.batch_wait_timeout_s
                                             if dep.batching else 0.0)
    return {_ingress(app): {"batching": {"max_batch_size": size,
                                         "batch_wait_timeout_s": 0.0 if size == 1 else wait}}}


def threads_patch(app: str, cpus: int) -> dict[str, Any]:
    return {_ingress(app): {"resources": {"num_cpus": cpus}}}


def plan(variant: str, quick: bool) -> list[Scenario]:
    """Default variant: the full sweep; the other variants: the spec defaults only.

    Every sweep point changes one setting of the ingress deployment away from its spec
    default, so a row differs from the "spec defaults" row in exactly that setting."""
    defaults = {app: Scenario(app, "spec defaults", {},
                              open_fractions=(0.5, 0.8) if variant == "default" else ())
                for app in ("embeddings", "classifier", "search")}
    if variant != "default":
        return list(defaults.values())
    scenarios: list[Scenario] = []
    sizes = (1, 8, 32) if quick else (1, 8, 16, 32)
    waits = (0.0,) if quick else (0.0, 0.01, 0.05)
    for app in ("embeddings", "classifier"):
        ingress = CATALOG[app].deployment(_ingress(app))
        batching = ingress.batching or Batching()
        scenarios.append(defaults[app])  # grouped by app: one model load per app
        for size in sizes:
            if size == batching.max_batch_size:
                continue  # that is the "spec defaults" scenario
            label = "batching off (max_batch_size 1)" if size == 1 else f"max_batch_size {size}"
            scenarios.append(Scenario(app, label, batching_patch(app, size), latency_run=False))
        for wait in waits:
            if wait != batching.batch_wait_timeout_s:
                scenarios.append(Scenario(app, f"batch_wait_timeout_s {wait}",
                                          batching_patch(app, batching.max_batch_size, wait)))
        if not quick and ingress.max_ongoing_requests != batching.max_batch_size:
            scenarios.append(Scenario(
                app, f"max_ongoing_requests {batching.max_batch_size}",
                {ingress.name: {"max_ongoing_requests": batching.max_batch_size}},
                latency_run=False))
        scenarios.append(Scenario(app, "num_cpus 2 (2 torch threads)", threads_patch(app, 2)))
    return [*scenarios, defaults["search"]]


def workload_for(app: ApplicationSpec) -> Workload:
    builders: dict[str, Callable[[str], Workload]] = {
        "embeddings": embeddings_workload,
        "classifier": classifier_workload,
        "search": search_query_workload,
    }
    return builders[app.name](app.route_prefix)


def _index_corpus(cluster: BenchCluster, app: ApplicationSpec) -> None:
    """Adds within the app's own per-request limits (documents and the character budget)."""
    from apps.search.spec import SEARCH_INGRESS, IngressSettings

    limits = app.deployment(SEARCH_INGRESS.name).user_config
    assert isinstance(limits, IngressSettings)
    url = cluster.base_url + app.route_prefix.rstrip("/") + "/documents"
    batch: list[dict[str, str]] = []
    for document in [*search_documents(SEARCH_CORPUS), None]:
        if batch and (document is None or len(batch) == limits.max_documents_per_request or
                      sum(len(d["text"]) for d in [*batch, document]) > limits.max_request_chars):
            requests.post(url, json={"documents": batch}, timeout=120).raise_for_status()
            batch = []
        if document is not None:
            batch.append(document)


def _observed_batches(cluster: BenchCluster, app: ApplicationSpec) -> dict[str, int]:
    """Batch sizes the ingress deployment really ran (cumulative counters from the replica)."""
    if app.name == "search":
        return {}
    try:
        info = cluster.app_info(app.route_prefix)
    except requests.RequestException:
        return {}
    observed: dict[str, int] = info.get("batching", {}).get("observed_batch_sizes", {})
    return observed


def _difference(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    delta = {size: after[size] - before.get(size, 0) for size in after}
    return {size: count for size, count in sorted(delta.items(), key=lambda kv: int(kv[0]))
            if count}


def _mean_batch(histogram: Mapping[str, int]) -> float | None:
    batches = sum(histogram.values())
    if not batches:
        return None
    return round(sum(int(size) * count for size, count in histogram.items()) / batches, 2)


@dataclass
class ScenarioResult:
    app: str
    label: str
    spec: dict[str, Any]
    deploy_s: float
    runs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"app": self.app, "label": self.label, "spec": self.spec,
                "deploy_s": round(self.deploy_s, 1), "runs": self.runs}


def _run_record(kind: str, result: LoadResult, batches: Mapping[str, int],
                load_before: list[float]) -> dict[str, Any]:
    record = {"kind": kind, **result.to_json()}
    record["observed_batch_sizes"] = dict(batches)
    record["mean_batch_size"] = _mean_batch(batches)
    record["load_average"] = {"before": load_before, "after": load_average()}
    return record


def run_scenario(cluster: BenchCluster, scenario: Scenario, timing: Timing,
                 log: Callable[[str], None]) -> ScenarioResult:
    app = single_replica(CATALOG[scenario.app], scenario.patch)
    deploy_s = cluster.deploy([app])
    if app.name == "search":
        _index_corpus(cluster, app)
    ingress = app.deployment(_ingress(app.name))
    result = ScenarioResult(
        app=app.name, label=scenario.label, deploy_s=deploy_s,
        spec={"max_batch_size": ingress.batching.max_batch_size if ingress.batching else None,
              "batch_wait_timeout_s": ingress.batching.batch_wait_timeout_s
              if ingress.batching else None,
              "max_ongoing_requests": ingress.max_ongoing_requests,
              "num_cpus": ingress.resources.num_cpus},
    )
    workload = workload_for(app)

    def measured(kind: str, load: Callable[[], Any]) -> LoadResult:
        before_batches = _observed_batches(cluster, app)
        before_load = load_average()
        outcome: LoadResult = run(load())
        record = _run_record(kind, outcome, _difference(_observed_batches(cluster, app),
                                                        before_batches), before_load)
        result.runs.append(record)
        latency = record["latency"] or {}
        log(f"    {kind:<24} {record['throughput_rps']:8.1f} req/s  "
            f"p50 {latency.get('p50_ms', float('nan')):7.1f} ms  "
            f"p99 {latency.get('p99_ms', float('nan')):7.1f} ms  errors {record['errors']}  "
            f"batch {record['mean_batch_size']}  load {record['load_average']['after'][0]}")
        return outcome

    if scenario.latency_run:
        measured("closed c=1", lambda: closed_loop(
            cluster.base_url, workload, 1, timing.window_s, timing.warmup_s))
    saturation = None
    if scenario.saturation_run:
        saturation = measured(f"closed c={SATURATION_CONCURRENCY}", lambda: closed_loop(
            cluster.base_url, workload, SATURATION_CONCURRENCY, timing.window_s,
            timing.warmup_s))
    for fraction in scenario.open_fractions:
        if saturation is None or saturation.throughput_rps <= 0:
            break
        rate = max(1.0, math.floor(saturation.throughput_rps * fraction))
        measured(f"open {int(fraction * 100)}% ({rate:.0f} req/s)", partial(
            open_loop, cluster.base_url, workload, rate, timing.window_s * 1.5, "poisson", seed=7))
    return result


def run_variant(name: str, quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """Start a head with the variant's switches, run its scenarios, stop it.

    A variant or scenario that fails is recorded with its error and the run goes on: one
    broken switch must not cost the other measurements."""
    timing = QUICK if quick else FULL
    cluster = BenchCluster(switches=VARIANTS[name])
    document: dict[str, Any] = {
        "variant": name, "switches": VARIANTS[name], "ray_start_s": None,
        "timing": {"warmup_s": timing.warmup_s, "window_s": timing.window_s}, "scenarios": [],
    }
    log(f"== variant {name}: starting Ray with {VARIANTS[name] or 'no switches'}")
    try:
        cluster.start()
    except Exception as error:
        log(f"   variant {name} failed to start: {error}")
        document["error"] = str(error)[-2000:]
        return document
    document["ray_start_s"] = round(cluster.started_s, 1)
    try:
        for scenario in plan(name, quick):
            log(f"  {scenario.app}: {scenario.label}")
            try:
                document["scenarios"].append(run_scenario(cluster, scenario, timing, log).to_json())
            except Exception as error:
                log(f"   failed: {error}")
                document["scenarios"].append({"app": scenario.app, "label": scenario.label,
                                              "error": str(error)[-2000:], "runs": []})
    finally:
        cluster.stop()
    return document
