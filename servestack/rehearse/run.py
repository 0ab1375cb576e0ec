"""One rehearsal: start the fake cluster with the stack's ingress, deploy the Serve config
through the dashboard REST API as KubeRay does, watch Serve and the autoscaler, check where
every replica landed and, under HAProxy, that HAProxy sent every app's requests to its replicas.

A deployment the autoscaler cannot place ends the rehearsal as soon as the autoscaler says
so (its "No available node types can fulfill resource requests" event), naming the
deployment, its demand and what each node type lacks; nothing waits for the timeout.
"""

from __future__ import annotations

import ast
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from apps.spec import ApplicationSpec
from infra.autoscaler_fit import (
    NodeType,
    ReplicaDemand,
    demand_of,
    describe_lacks,
    format_labels,
    format_resources,
    selects,
)
from infra.capacity import CapacityPlan
from infra.config import ServeOptions
from infra.ingress_environment import ingress_environment
from infra.ray_internals import FAKE_HEAD_NODE_TYPE
from servestack.local.dashboard import DashboardError
from servestack.local.examples import example_requests
from servestack.local.serve_status import ServeSnapshot
from servestack.rehearse.cluster import FakeCluster, fake_cluster
from servestack.rehearse.ingress import ServedBy, haproxy_servers, ingress_name, served_by
from servestack.rehearse.probe import AutoscalerProbe, AutoscalerView
from servestack.rehearse.serve_copy import rehearsal_serve_config
from servestack.rehearse.translation import RehearsalTarget, fake_cluster_config

POLL_S = 2.0
LAUNCH_FAILURES_TO_FAIL = 3
"""Failed launches of one node type that end the rehearsal: the fake provider fails the same
way every time, and the autoscaler would retry for ever."""
LOAD_STEP_IDLE_TIMEOUT_S = 20.0
INGRESS_ROUNDS = 5
"""Rounds of one example request per app, each followed by a reading of HAProxy's statistics:
a reload (a replica added or removed) restarts HAProxy's counters between a request and the
reading."""
_INFEASIBLE = re.compile(r"(\{[^{}]*\})\*(\d+)")


class RehearsalFailedError(RuntimeError):
    """The rehearsal found a problem; the message is the plain account of it."""


@dataclass(frozen=True)
class Sample:
    """Replicas per deployment and nodes per group at one moment (the load-step timeline)."""

    at: float
    replicas: Mapping[str, int]  # "app.deployment" → running replicas
    nodes: Mapping[str, int]  # node type → running nodes
    pending: Mapping[str, int]  # node type → launching


@dataclass(frozen=True)
class Placement:
    app: str
    deployment: str
    demand: Mapping[str, float]
    label_selector: Mapping[str, str]  # the Serve config's, which keeps it on its group
    expected_group: str | None  # the capacity plan's group for it
    node_types: tuple[str, ...]  # node type of every running replica
    problems: tuple[str, ...]


@dataclass
class RehearsalResult:
    target: RehearsalTarget
    plan: CapacityPlan
    differences: list[str]
    snapshot: ServeSnapshot | None = None
    view: AutoscalerView | None = None
    placements: list[Placement] = field(default_factory=list)
    infeasible: list[str] = field(default_factory=list)
    timeline: list[Sample] = field(default_factory=list)
    load_summary: list[str] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)
    ingress: str = ""  # ingress_name: what served the requests
    served: list[ServedBy] = field(default_factory=list)  # HAProxy's servers → replicas
    unserved: list[str] = field(default_factory=list)  # apps HAProxy sent to no replica

    @property
    def problems(self) -> list[str]:
        found = [f"{p.app}.{p.deployment}: {problem}" for p in self.placements
                 for problem in p.problems]
        found += [f"application {app}: {self.ingress} sent none of its example requests to "
                  "its replicas" for app in self.unserved]
        if self.snapshot is not None:
            for name, app in sorted(self.snapshot.applications.items()):
                if app.status != "RUNNING":
                    found.append(f"application {name} is {app.status}")
        return found


def demands_of_config(serve_config: Mapping[str, Any],
                      max_replicas: Callable[[str, str], int]) -> list[ReplicaDemand]:
    """Serve's per-replica demand of every deployment in the Serve config that is deployed."""
    return [
        demand_of(str(app["name"]), str(dep["name"]), dep.get("ray_actor_options") or {},
                  max_replicas(str(app["name"]), str(dep["name"])))
        for app in serve_config.get("applications", [])
        for dep in app.get("deployments", [])
    ]


def infeasible_bundles(events: Iterable[str]) -> list[dict[str, float]]:
    """Every bundle the autoscaler said no node type can fulfil."""
    bundles: list[dict[str, float]] = []
    for message in events:
        if not message.startswith("No available node types can fulfill"):
            continue
        for raw, _count in _INFEASIBLE.findall(message):
            try:
                bundle = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                continue
            if isinstance(bundle, dict) and bundle not in bundles:
                bundles.append({str(k): float(v) for k, v in bundle.items()})
    return bundles


def repeated_launch_failures(failures: Iterable[str],
                             times: int = LAUNCH_FAILURES_TO_FAIL) -> dict[str, str]:
    """Node type → the provider's latest reason, for types whose launch failed `times` times."""
    counts: dict[str, int] = {}
    reasons: dict[str, str] = {}
    for failure in failures:
        node_type, _, reason = failure.partition(": ")
        counts[node_type] = counts.get(node_type, 0) + 1
        reasons[node_type] = reason
    return {t: reasons[t] for t, c in counts.items() if c >= times}


def _same(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return set(a) == set(b) and all(abs(a[k] - b[k]) < 1e-6 for k in a)


def infeasible_message(bundles: Sequence[Mapping[str, float]],
                       demands: Sequence[ReplicaDemand], nodes: Sequence[NodeType]) -> str:
    """The plain account: which deployment, what it demands, what every node type lacks."""
    lines = ["Ray's autoscaler cannot place these deployments (it reported the demand as "
             "infeasible: no node type can fulfil it):"]
    for bundle in bundles:
        owners = [d for d in demands if _same(d.resources, bundle)]
        names = ", ".join(f"application {d.app!r}, deployment {d.deployment!r}"
                          for d in owners) or "a demand of no deployment in the Serve config"
        lines.append(f"  {names}")
        lines.append(f"    demand per replica: {format_resources(bundle)}")
        selector = owners[0].label_selector if owners else {}
        if selector:
            lines.append(f"    label selector: {format_labels(selector)}")
        lines.append("    node types offered: " + describe_lacks(bundle, nodes, selector))
    return "\n".join(lines)


def placements(snapshot: ServeSnapshot, view: AutoscalerView, demands: Sequence[ReplicaDemand],
               nodes: Sequence[NodeType], plan: CapacityPlan) -> list[Placement]:
    """Where every running replica is, and what is wrong with it: GPU deployments on their
    plan's GPU group, CPU deployments never on a GPU group, nothing on the head, nothing on a
    node type its label selector rules out."""
    gpu_types = {n.name for n in nodes if n.resources.get("GPU", 0) > 0}
    by_name = {FAKE_HEAD_NODE_TYPE if n.is_head else n.name: n for n in nodes}
    planned = {(d.app, d.deployment): g.name for g in plan.worker_groups for d in g.deployments}
    out = []
    for demand in demands:
        app = snapshot.applications.get(demand.app)
        state = app.deployments.get(demand.deployment) if app else None
        types = tuple(sorted(
            view.node_type_of(r.node_id or "") or f"unknown node {r.node_id}"
            for r in (state.replicas if state else ()) if r.state == "RUNNING"))
        expected = planned.get((demand.app, demand.deployment))
        problems = []
        for node_type in dict.fromkeys(types):
            if node_type == FAKE_HEAD_NODE_TYPE:
                problems.append("a replica runs on the head")
            elif demand.resources.get("GPU", 0) > 0 and expected and node_type != expected:
                problems.append(f"a GPU replica runs on {node_type}, not its group {expected}")
            elif demand.resources.get("GPU", 0) == 0 and node_type in gpu_types:
                problems.append(f"a CPU replica runs on GPU group {node_type}")
            elif node_type in by_name and not selects(demand.label_selector, by_name[node_type]):
                problems.append(f"a replica runs on {node_type}, which its label selector "
                                f"{format_labels(demand.label_selector)} rules out")
        out.append(Placement(demand.app, demand.deployment, demand.resources,
                             demand.label_selector, expected, types, tuple(problems)))
    return out


def sample(cluster: FakeCluster, view: AutoscalerView | None) -> Sample | None:
    if view is None:
        return None
    try:
        snapshot = cluster.client.snapshot()
    except DashboardError:
        return None
    replicas = {f"{a}.{d}": state.running_replicas
                for a, app in sorted(snapshot.applications.items())
                for d, state in sorted(app.deployments.items())}
    return Sample(at=time.time(), replicas=replicas, nodes=view.nodes_per_type(),
                  pending=dict(view.pending))


class LoadStep:
    """Closed-loop loopback clients sending each app's example requests until stopped;
    `strict` counts any answer but a 2xx as failed (the upgrade's "no request fails"), else
    only 5xx and no answer (an autoscaling step may rightly shed load with a 4xx)."""

    def __init__(self, applications: Sequence[ApplicationSpec], base_url: str,
                 concurrency: Mapping[str, int], strict: bool = False) -> None:
        self._ok_below = 300 if strict else 500
        self._stop = threading.Event()
        self.sent = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._threads = []
        for app in applications:
            examples = example_requests(app, base_url)
            for i in range(concurrency.get(app.name, 0)):
                if examples:
                    self._threads.append(threading.Thread(
                        target=self._client, args=(examples[i % len(examples)],), daemon=True))

    def _client(self, example: Any) -> None:
        session = requests.Session()
        body = example.json_body()
        while not self._stop.is_set():
            try:
                response = session.post(example.url, data=body, timeout=30,
                                        headers={"content-type": "application/json"})
                ok = response.status_code < self._ok_below
            except requests.RequestException:
                ok = False
            with self._lock:
                self.sent += 1
                self.failed += 0 if ok else 1

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=35)


def load_concurrency(applications: Sequence[ApplicationSpec]) -> dict[str, int]:
    """Enough requests in flight for Serve to want every deployment's max_replicas:
    max_replicas x target_ongoing_requests, plus a quarter."""
    out = {}
    for app in applications:
        wanted = [dep.autoscaling.max_replicas * dep.autoscaling.target_ongoing_requests
                  for dep in app.deployments if dep.autoscaling is not None
                  and dep.autoscaling.max_replicas > dep.autoscaling.min_replicas]
        if wanted:
            out[app.name] = max(1, round(max(wanted) * 1.25))
    return out


@dataclass(frozen=True)
class RehearsalOptions:
    timeout_s: float = 600.0
    load_step: bool = False
    load_s: float = 120.0
    settle_s: float = 240.0
    keep_logs: bool = False


def rehearse(target: RehearsalTarget, plan: CapacityPlan,
             applications: Sequence[ApplicationSpec], serve: ServeOptions,
             options: RehearsalOptions, progress: Callable[[str], None]) -> RehearsalResult:
    """Run the whole rehearsal with the stack's ingress (`serve`); raises RehearsalFailedError
    with the plain account of a failure."""
    started = time.monotonic()
    nodes = target.node_types
    head = next(n for n in nodes if n.is_head)
    idle = LOAD_STEP_IDLE_TIMEOUT_S if options.load_step else None
    differences = [
        "nodes are local raylets with logical resources (GPUs included), started by Ray's "
        "fake multi-node provider instead of pods; no Kubernetes scheduler, images or quotas",
        "object store 128 MiB per node (cluster: Ray's default share of pod memory)",
        "Ray's memory monitor off: it would judge this whole shared host, not one pod",
        "head dashboard, GCS, client and metrics on private loopback ports (cluster: "
        f"rayStartParams {dict(target.head_params)})",
    ]
    if idle is not None:
        differences.append(f"load step: autoscaler idle timeout {idle:g} s (cluster: "
                           f"{target.idle_timeout_s:g} s)")
    max_of = {(d.app, d.deployment): d.max_replicas for g in plan.worker_groups
              for d in g.deployments}
    demands = demands_of_config(target.serve_config, lambda a, d: max_of.get((a, d), 0))
    with fake_cluster(lambda address: fake_cluster_config(target, address, idle),
                      head.resources, ingress_environment(serve),
                      keep_logs=options.keep_logs) as cluster:
        result = RehearsalResult(target=target, plan=plan, differences=differences,
                                 ingress=ingress_name(cluster.env))
        result.durations["cluster start"] = time.monotonic() - started
        ports = cluster.ports.head
        progress(f"fake cluster up (temp dir {cluster.temp_dir}, GCS {ports.gcs_address},"
                 f" dashboard {ports.dashboard_url})")
        copy = rehearsal_serve_config(target.serve_config, ports.http, result.ingress,
                                      short_delays=options.load_step)
        result.differences.extend(copy.differences)
        if cluster.haproxy_dir is not None:
            result.differences.append(
                f"HAProxy's files in {cluster.haproxy_dir} and its stats, metrics and fallback "
                "proxy on free loopback ports, as under `servestack serve` (cluster: Ray's "
                "defaults in each pod)")
        probe = AutoscalerProbe(ports.gcs_address, cluster.env)
        try:
            cluster.client.deploy(copy.document)
            progress("serveConfigV2 deployed through PUT /api/serve/applications/")
            goal = _Goal(_expected_names(target), demands, nodes, plan, applications)
            running = _wait_running(cluster, probe, goal, options.timeout_s, progress)
            result.snapshot, result.view = running.snapshot, running.view
            result.placements = running.placements
            result.durations["to RUNNING"] = time.monotonic() - started
            _check_haproxy(cluster, probe, result, applications, progress)
            if options.load_step:
                _load_step(cluster, probe, result, applications, plan, options, progress)
        finally:
            probe.close()
    return result


def _expected_names(target: RehearsalTarget) -> list[str]:
    return [str(app["name"]) for app in target.serve_config.get("applications", [])]


def _send_smoke_requests(cluster: FakeCluster, applications: Sequence[ApplicationSpec],
                         progress: Callable[[str], None]) -> list[threading.Thread]:
    """One example request per app, in the background: a deployment at 0 replicas (the dev
    classifier) scales from zero only when a request arrives, as on the cluster."""
    threads = []
    for app in applications:
        for example in example_requests(app, cluster.ports.head.http_url)[:1]:
            def send(example: Any = example, name: str = app.name) -> None:
                try:
                    response = requests.post(example.url, data=example.json_body(), timeout=300,
                                             headers={"content-type": "application/json"})
                    progress(f"{name}: example request answered {response.status_code}")
                except requests.RequestException as error:
                    progress(f"{name}: example request failed: {type(error).__name__}: "
                             f"{str(error)[:300]}")
            thread = threading.Thread(target=send, daemon=True)
            thread.start()
            threads.append(thread)
    progress("every app RUNNING; one example request per app sent")
    return threads


def _check_haproxy(cluster: FakeCluster, probe: AutoscalerProbe, result: RehearsalResult,
                   applications: Sequence[ApplicationSpec],
                   progress: Callable[[str], None]) -> None:
    """Send one example request per app through the head's HAProxy and read its statistics:
    which replicas (on which node types) it sent requests to. An app none of whose replicas
    got one is a problem of the rehearsal. Nothing to read under Serve's Python proxy."""
    haproxy_dir = cluster.haproxy_dir
    if haproxy_dir is None:
        return
    probed = [(app.name, examples[0]) for app in applications
              if (examples := example_requests(app, cluster.ports.head.http_url))]
    seen: dict[tuple[str, str, str], ServedBy] = {}
    for _ in range(INGRESS_ROUNDS):
        for _name, example in probed:
            try:
                requests.post(example.url, data=example.json_body(), timeout=60,
                              headers={"content-type": "application/json"})
            except requests.RequestException:
                continue
        view = probe.latest
        try:
            snapshot = cluster.client.snapshot()
        except DashboardError:
            snapshot = None
        if snapshot is not None and view is not None:
            for served in served_by(haproxy_servers(haproxy_dir), snapshot, view):
                key = (served.app, served.deployment, served.replica_id)
                if key not in seen or served.requests > seen[key].requests:
                    seen[key] = served
        result.served = sorted(seen.values(), key=lambda s: (s.app, s.deployment, s.replica_id))
        result.unserved = [name for name, _ in probed
                           if not any(s.app == name and s.requests for s in result.served)]
        if not result.unserved:
            break
        time.sleep(POLL_S)
    progress("HAProxy on the head sent requests to: " + (", ".join(
        f"{s.app}.{s.deployment} on {s.node_type} ({s.requests})"
        for s in result.served if s.requests) or "no replica"))


@dataclass(frozen=True)
class _Goal:
    """What the rehearsal waits for: these apps RUNNING, every replica on a node type."""

    expected: list[str]  # the Serve config's application names
    demands: Sequence[ReplicaDemand]
    nodes: Sequence[NodeType]
    plan: CapacityPlan
    applications: Sequence[ApplicationSpec]  # whose example requests start scale-from-zero


@dataclass(frozen=True)
class _Running:
    """Serve and the autoscaler at the moment every app ran with every replica placed."""

    snapshot: ServeSnapshot
    view: AutoscalerView
    placements: list[Placement]


def _wait_running(cluster: FakeCluster, probe: AutoscalerProbe, goal: _Goal, timeout_s: float,
                  progress: Callable[[str], None]) -> _Running:
    """Poll until the goal is met; raises RehearsalFailedError as soon as the autoscaler or
    Serve reports a failure, or at the timeout naming what is still missing."""
    deadline = time.monotonic() + timeout_s
    last = ""
    smoke: list[threading.Thread] = []
    placed: list[Placement] = []
    while True:
        _raise_on_autoscaler_failure(cluster, goal)
        snapshot = _snapshot_or_none(cluster)
        view = probe.latest
        if snapshot is not None:
            rollout = snapshot.rollout(goal.expected)
            if rollout.failed:
                raise RehearsalFailedError("\n".join(
                    f"application {app.name!r} is {app.status}: " + "; ".join(
                        app.failure_summary()) for app in rollout.failed))
            line = _status_line(snapshot, goal.expected, view)
            if line != last:
                progress(line)
                last = line
            if rollout.done and view is not None:
                if not smoke:
                    smoke = _send_smoke_requests(cluster, goal.applications, progress)
                placed = placements(snapshot, view, goal.demands, goal.nodes, goal.plan)
                if all(p.node_types for p in placed):
                    return _Running(snapshot, view, placed)
        if time.monotonic() > deadline:
            raise _not_ready_error(timeout_s, goal.expected, snapshot, placed, view)
        time.sleep(POLL_S)


def _raise_on_autoscaler_failure(cluster: FakeCluster, goal: _Goal) -> None:
    """A demand no node type fits, or a node type that keeps failing to launch."""
    bundles = infeasible_bundles(cluster.autoscaler_events())
    if bundles:
        raise RehearsalFailedError(infeasible_message(bundles, goal.demands, goal.nodes))
    failed = repeated_launch_failures(cluster.launch_failures())
    if failed:
        raise RehearsalFailedError("the autoscaler could not launch nodes:\n" + "\n".join(
            f"  {node_type}: {reason}" for node_type, reason in failed.items()))


def _snapshot_or_none(cluster: FakeCluster) -> ServeSnapshot | None:
    """Serve's state, or None while the dashboard does not answer (it is starting)."""
    try:
        return cluster.client.snapshot()
    except DashboardError:
        return None


def _nodes_line(view: AutoscalerView | None) -> str:
    return ", ".join(f"{t}x{c}" for t, c in sorted(
        (view.nodes_per_type() if view else {}).items()))


def _status_line(snapshot: ServeSnapshot, expected: Sequence[str],
                 view: AutoscalerView | None) -> str:
    """Every app's status and the nodes per type, as one progress line."""
    status = ", ".join(f"{name} {snapshot.applications[name].status}"
                       if name in snapshot.applications else f"{name} -"
                       for name in expected)
    return f"{status} | nodes {_nodes_line(view) or '-'}"


def _not_ready_error(timeout_s: float, expected: Sequence[str], snapshot: ServeSnapshot | None,
                     placed: Sequence[Placement], view: AutoscalerView | None
                     ) -> RehearsalFailedError:
    """What is still missing at the timeout: apps not RUNNING, deployments without a replica,
    the autoscaler's pending demand and the nodes it has."""
    pending = [n for n in expected if snapshot is None or
               snapshot.applications.get(n) is None or
               snapshot.applications[n].status != "RUNNING"]
    pending += [f"{p.app}.{p.deployment} (no running replica)" for p in placed
                if not p.node_types]
    demand = (", ".join(f"{format_resources(b)}x{c}" for b, c in view.demand)
              if view else "unknown")
    return RehearsalFailedError(
        f"not ready after {timeout_s:.0f} s: {', '.join(pending) or 'unknown'}; "
        f"the autoscaler's pending demand: {demand or 'none'}; nodes: "
        + (_nodes_line(view) if view else "unknown"))


def _load_step(cluster: FakeCluster, probe: AutoscalerProbe, result: RehearsalResult,
               applications: Sequence[ApplicationSpec], plan: CapacityPlan,
               options: RehearsalOptions, progress: Callable[[str], None]) -> None:
    concurrency = load_concurrency(applications)
    load = LoadStep(applications, cluster.ports.head.http_url, concurrency)
    progress("load step: " + ", ".join(f"{a} {c} clients" for a, c in sorted(concurrency.items()))
             + f", at most {options.load_s:.0f} s")
    maxima = {g.name: g.max_pods for g in plan.worker_groups}
    minima = {g.name: g.min_pods for g in plan.worker_groups}
    started = time.monotonic()
    load.start()
    peak: dict[str, int] = {}
    try:
        while time.monotonic() - started < options.load_s:
            time.sleep(POLL_S * 1.5)
            now = sample(cluster, probe.latest)
            if now is None:
                continue
            result.timeline.append(now)
            progress(_sample_line(now, "load"))
            for group, count in now.nodes.items():
                peak[group] = max(peak.get(group, 0), count)
            if all(peak.get(g, 0) >= m for g, m in maxima.items()):
                break
    finally:
        load.stop()
    result.load_summary.append(f"{load.sent} requests sent, {load.failed} failed (5xx or "
                               f"no answer) in {time.monotonic() - started:.0f} s")
    progress("load stopped; waiting for scale-down to the plan's minimum")
    settle_start = time.monotonic()
    while time.monotonic() - settle_start < options.settle_s:
        time.sleep(POLL_S * 1.5)
        now = sample(cluster, probe.latest)
        if now is None:
            continue
        result.timeline.append(now)
        progress(_sample_line(now, "idle"))
        at_min = all(now.nodes.get(g, 0) <= m for g, m in minima.items())
        if at_min and not any(now.pending.values()):
            break
    result.load_summary.append("peak nodes per group: " + ", ".join(
        f"{g} {peak.get(g, 0)} (plan max {m})" for g, m in sorted(maxima.items())))


def _sample_line(now: Sample, phase: str) -> str:
    nodes = ", ".join(f"{t}x{c}" for t, c in sorted(now.nodes.items()))
    replicas = ", ".join(f"{k} {v}" for k, v in now.replicas.items())
    return f"[{phase}] nodes {nodes} | replicas {replicas}"
