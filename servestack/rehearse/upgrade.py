"""`servestack rehearse --upgrade`: an incremental upgrade's steps, as the upgrade plan
predicts them, on the fake multi-node Ray driven by Ray's autoscaler, under steady load.

One Ray stands for both clusters, so the two generations are two sets of Serve applications
(the new one's names and routes marked), each deployment fixed at what Serve keeps of its
max_replicas at that generation's target_capacity (`serve_replicas_at`, held to Serve's own
rule on real Serve by tests/faults/test_target_capacity.py): target_capacity itself is one
value per Serve, so it cannot differ per generation here. Both generations' replicas share
worker pods, so the pods to compare with are the plan's packing of both at once
(`group_pods_at`), which the report says beside the two clusters' own count.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from apps.spec import ApplicationSpec
from infra.capacity import CapacityPlan
from infra.config import ServeOptions
from infra.ingress_environment import ingress_environment
from infra.upgrade_plan import INCREMENTAL, UpgradePlan, group_pods_at, serve_replicas_at
from servestack.rehearse.cluster import FakeCluster, fake_cluster
from servestack.rehearse.ingress import ingress_name
from servestack.rehearse.probe import AutoscalerProbe
from servestack.rehearse.run import (
    LOAD_STEP_IDLE_TIMEOUT_S,
    POLL_S,
    LoadStep,
    RehearsalFailedError,
    sample,
)
from servestack.rehearse.serve_copy import rehearsal_serve_config
from servestack.rehearse.translation import RehearsalTarget, fake_cluster_config

NEW_SUFFIX = "-next"
NEW_ROUTE = "/next"
RELEASE_WAIT_S = LOAD_STEP_IDLE_TIMEOUT_S + 40.0
"""How long a shrink waits for idle nodes to go: the autoscaler's idle timeout, then a
reconcile or two."""


def new_route(route_prefix: str) -> str:
    """Where the new generation's app answers: `/embed` → `/next/embed`."""
    return NEW_ROUTE + route_prefix.rstrip("/")


class NotIncrementalError(ValueError):
    """The stack's strategy has no steps to rehearse."""


@dataclass(frozen=True)
class Phase:
    """One state KubeRay passes through: each generation's target_capacity."""

    label: str
    old_capacity: int
    new_capacity: int


@dataclass(frozen=True)
class Reading:
    phase: Phase
    planned: Mapping[str, int]  # worker group → pods for both generations in one Ray
    measured: Mapping[str, int]  # worker group → nodes the autoscaler runs
    replicas: Mapping[str, int]  # "app.deployment" → RUNNING replicas


@dataclass
class UpgradeRehearsal:
    upgrade: UpgradePlan
    groups: tuple[str, ...]
    readings: list[Reading] = field(default_factory=list)
    peak: dict[str, int] = field(default_factory=dict)  # measured over the whole run
    launched: dict[str, int] = field(default_factory=dict)  # node launches per group
    released: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    failed: int = 0
    differences: list[str] = field(default_factory=list)
    last_nodes: dict[str, int] = field(default_factory=dict)  # the latest sample's

    @property
    def planned_peak(self) -> dict[str, int]:
        return {g: max((r.planned.get(g, 0) for r in self.readings), default=0)
                for g in self.groups}

    @property
    def problems(self) -> list[str]:
        found = [f"{self.failed} of {self.sent} requests failed during the upgrade"
                 ] if self.failed else []
        if not self.sent:
            found.append("no request was sent: the steady load did not run")
        found += [f"group {g}: {self.peak.get(g, 0)} nodes at the peak, the plan packs "
                  f"{planned}" for g, planned in self.planned_peak.items()
                  if self.peak.get(g, 0) != planned]
        return found


def phases(upgrade: UpgradePlan) -> list[Phase]:
    """Before the upgrade, then each step's two moves (KubeRay 1.7.0's loop: the new cluster
    up, traffic over, the old one down)."""
    if upgrade.strategy != INCREMENTAL:
        raise NotIncrementalError(
            f"--upgrade rehearses {INCREMENTAL}'s steps; this stack's strategy is "
            f"{upgrade.strategy} (servestack:rayservice.upgrade_strategy)")
    found = [Phase("before: old at max", 100, 0)]
    old = 100
    for number, step in enumerate(upgrade.steps, start=1):
        found.append(Phase(f"step {number}: new to {step.new_capacity}%", old, step.new_capacity))
        old = step.old_capacity
        found.append(Phase(f"step {number}: old to {old}%", old, step.new_capacity))
    return found


def _generation(document: Mapping[str, Any], percent: int, max_of: Mapping[tuple[str, str], int],
                new: bool) -> list[dict[str, Any]]:
    """One generation's applications, each deployment fixed at its share of max_replicas."""
    if percent == 0:
        return []
    apps = []
    for app in document.get("applications", []):
        copied = copy.deepcopy(dict(app))
        name = str(app["name"])
        if new:
            copied["name"] = name + NEW_SUFFIX
            copied["route_prefix"] = new_route(str(app.get("route_prefix", "/")))
        for dep in copied.get("deployments", []):
            dep["autoscaling_config"] = None  # null, as apps/spec.py writes a fixed count
            dep["num_replicas"] = serve_replicas_at(max_of[(name, str(dep["name"]))], percent)
        apps.append(copied)
    return apps


def phase_document(document: Mapping[str, Any], phase: Phase,
                   max_of: Mapping[tuple[str, str], int]) -> dict[str, Any]:
    return {**document, "applications": [*_generation(document, phase.old_capacity, max_of, False),
                                         *_generation(document, phase.new_capacity, max_of, True)]}


def planned_pods(plan: CapacityPlan, phase: Phase) -> dict[str, int]:
    percents = [p for p in (phase.old_capacity, phase.new_capacity) if p]
    return {g.name: group_pods_at(g, percents) for g in plan.worker_groups}


def new_generation_specs(applications: Sequence[ApplicationSpec]) -> list[ApplicationSpec]:
    """The apps as the load reaches the new generation: same examples, marked routes."""
    return [app.model_copy(update={"route_prefix": new_route(app.route_prefix)})
            for app in applications]


def rehearse_upgrade(target: RehearsalTarget, plan: CapacityPlan, upgrade: UpgradePlan,
                     applications: Sequence[ApplicationSpec], serve: ServeOptions,
                     timeout_s: float, progress: Callable[[str], None],
                     keep_logs: bool = False) -> UpgradeRehearsal:
    steps = phases(upgrade)
    max_of = {(d.app, d.deployment): d.max_replicas for g in plan.worker_groups
              for d in g.deployments}
    result = UpgradeRehearsal(upgrade, tuple(g.name for g in plan.worker_groups))
    head = next(n for n in target.node_types if n.is_head)
    room = {g: max(planned_pods(plan, phase)[g] for phase in steps) for g in result.groups}

    def config_for(address: str) -> dict[str, Any]:
        """Each group may grow to both generations' pods: two clusters' maxReplicas."""
        config = fake_cluster_config(target, address, LOAD_STEP_IDLE_TIMEOUT_S)
        types = config["available_node_types"]
        for group, pods in room.items():
            if group in types:
                types[group]["max_workers"] = max(int(types[group]["max_workers"]), pods)
        config["max_workers"] = sum(int(t.get("max_workers", 0)) for t in types.values())
        return config

    with fake_cluster(config_for, head.resources, ingress_environment(serve),
                      keep_logs=keep_logs) as cluster:
        ports = cluster.ports.head
        progress(f"fake cluster up (temp dir {cluster.temp_dir}, dashboard {ports.dashboard_url})")
        copied = rehearsal_serve_config(target.serve_config, ports.http, ingress_name(cluster.env))
        result.differences += [
            "one Ray for both clusters: the new generation is the same applications named "
            f"<app>{NEW_SUFFIX} at {NEW_ROUTE}<route>, and its replicas share worker pods "
            "with the old one's (cluster: two RayClusters, pods of their own)",
            "each generation's target_capacity as fixed num_replicas (Serve's rounding of "
            "max_replicas): Serve has one target_capacity, KubeRay sets one per cluster",
            "traffic: a steady load on each generation that exists, not KubeRay's HTTPRoute "
            "weights",
            "each worker group's maxReplicas raised to both generations' pods "
            f"({', '.join(f'{g} {n}' for g, n in sorted(room.items()))}; cluster: each "
            "RayCluster has the plan's own)",
            f"autoscaler idle timeout {LOAD_STEP_IDLE_TIMEOUT_S:g} s (cluster: "
            f"{target.idle_timeout_s:g} s)",
            *copied.differences,
        ]
        probe = AutoscalerProbe(ports.gcs_address, cluster.env)
        loads: list[LoadStep] = []
        try:
            for phase in steps:
                if phase.old_capacity == 0 and loads:
                    _stop(loads[0], result)  # no old application is left to send to
                document = phase_document(copied.document, phase, max_of)
                cluster.client.deploy(document)
                progress(f"{phase.label}: deployed (old {phase.old_capacity}%, new "
                         f"{phase.new_capacity}%)")
                reading = _settle(cluster, probe, plan, phase, document, timeout_s, result,
                                  progress)
                result.readings.append(reading)
                if not loads:
                    loads.append(_start(applications, ports.http_url))
                elif len(loads) == 1 and phase.new_capacity:
                    loads.append(_start(new_generation_specs(applications), ports.http_url))
        finally:
            for load in loads:
                _stop(load, result)
            probe.close()
    return result


def _start(applications: Sequence[ApplicationSpec], base_url: str) -> LoadStep:
    load = LoadStep(applications, base_url, {app.name: 1 for app in applications}, strict=True)
    load.start()
    return load


def _stop(load: LoadStep, result: UpgradeRehearsal) -> None:
    if load.stopped:
        return
    load.stop()
    result.sent += load.sent
    result.failed += load.failed


def _settle(cluster: FakeCluster, probe: AutoscalerProbe, plan: CapacityPlan, phase: Phase,
            document: Mapping[str, Any], timeout_s: float, result: UpgradeRehearsal,
            progress: Callable[[str], None]) -> Reading:
    """Wait until every replica of the phase runs with no node pending, then (when nodes may
    go) for idle nodes to be released; the peak and launches are tracked meanwhile."""
    wanted = {f"{app['name']}.{dep['name']}": int(dep["num_replicas"])
              for app in document["applications"] for dep in app["deployments"]}
    planned = planned_pods(plan, phase)
    deadline = time.monotonic() + timeout_s
    ready_at: float | None = None
    while True:
        now = sample(cluster, probe.latest)
        if now is not None:
            nodes = {g: now.nodes.get(g, 0) for g in result.groups}
            for group, count in nodes.items():
                result.peak[group] = max(result.peak.get(group, 0), count)
                before = result.last_nodes.get(group, count)
                result.launched[group] = result.launched.get(group, 0) + max(0, count - before)
                result.released[group] = result.released.get(group, 0) + max(0, before - count)
            result.last_nodes = nodes
            running = {k: v for k, v in now.replicas.items() if k in wanted}
            settled = running == wanted and not any(now.pending.values())
            if settled and ready_at is None:
                ready_at = time.monotonic()
                progress(f"{phase.label}: every replica RUNNING, nodes "
                         + ", ".join(f"{g} {n}" for g, n in sorted(nodes.items())))
            released = all(nodes[g] <= planned[g] for g in nodes)
            if ready_at is not None and (released
                                         or time.monotonic() - ready_at > RELEASE_WAIT_S):
                return Reading(phase, planned, nodes, running)
        if time.monotonic() > deadline:
            view = probe.latest
            snapshot = cluster.client.snapshot()
            apps = "; ".join(f"{name} {app.status}" + "".join(
                f": {line}" for line in app.failure_summary())
                for name, app in sorted(snapshot.applications.items()))
            raise RehearsalFailedError(
                f"{phase.label}: not settled after {timeout_s:.0f} s; applications {apps}; "
                "replicas "
                f"{now.replicas if now else 'unknown'}, wanted {wanted}; nodes "
                f"{now.nodes if now else 'unknown'}, the autoscaler's pending demand "
                f"{view.demand if view else 'unknown'}, launching "
                f"{dict(view.pending) if view else 'unknown'}")
        time.sleep(POLL_S)
