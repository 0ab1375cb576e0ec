"""Prometheus finds every Ray pod and the operator: PodMonitor/ServiceMonitor with the
Prometheus Operator, prometheus.io annotations without it — judged on what the program
registers for each shipped stack."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from infra.kuberay import OPERATOR_METRICS_PORT
from infra.names import OPERATOR_METRICS_PORT_NAME
from infra.pod_ports import DASHBOARD_METRICS_PORT
from infra.pod_preview import RAYSERVICE_TYPE, RayGroup, ray_cluster_spec, ray_groups
from infra.ray_internals import AUTOSCALER_METRICS_PORT
from infra.stack_file import available_stacks, load_stack_config
from servestack.offline import ProgramRun

STACKS = available_stacks()
OPERATOR_STACKS = [s for s in STACKS if load_stack_config(s).observability.uses_prometheus_operator]
ANNOTATION_STACKS = [s for s in STACKS if s not in OPERATOR_STACKS]
MONITORING = "kubernetes:monitoring.coreos.com/v1"
POD_MONITOR = f"{MONITORING}:PodMonitor"
SERVICE_MONITOR = f"{MONITORING}:ServiceMonitor"
RELEASE = "kubernetes:helm.sh/v3:Release"

Runs = Callable[[str], ProgramRun]


def groups(run: ProgramRun) -> list[RayGroup]:
    rayservice = run.one(RAYSERVICE_TYPE)
    located = ray_cluster_spec(rayservice.type, rayservice.inputs)
    assert located is not None
    return ray_groups(*located)


def ray_container(group: RayGroup) -> Mapping[str, Any]:
    container: Mapping[str, Any] = group.pod_spec["containers"][0]
    return container


def container_ports(group: RayGroup) -> dict[str, int]:
    return {p["name"]: int(p["containerPort"]) for p in ray_container(group)["ports"]}


def labels_of(group: RayGroup) -> dict[str, str]:
    return dict(group.template["metadata"]["labels"])


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    return dict(selector["matchLabels"]).items() <= labels.items()


def operator_values(run: ProgramRun) -> Mapping[str, Any]:
    release = next(r for r in run.of_type(RELEASE) if r.inputs["chart"] == "kuberay-operator")
    values: Mapping[str, Any] = release.inputs["values"]
    return values


@pytest.mark.parametrize("stack", STACKS)
def test_every_ray_node_exports_metrics_on_the_configured_port(
    stack: str, checked_stack_run: Runs,
) -> None:
    """Ray alone picks a random metrics port; the pods pin it and name it `metrics`."""
    port = load_stack_config(stack).observability.metrics_port
    for group in groups(checked_stack_run(stack)):
        assert group.spec["rayStartParams"]["metrics-export-port"] == str(port)
        assert container_ports(group)["metrics"] == port


@pytest.mark.parametrize("stack", STACKS)
def test_the_head_names_its_autoscaler_and_dashboard_metrics_ports(
    stack: str, checked_stack_run: Runs
) -> None:
    (head,) = [g for g in groups(checked_stack_run(stack)) if g.kind == "head"]
    ports = container_ports(head)
    assert ports["as-metrics"] == AUTOSCALER_METRICS_PORT
    assert ports["dash-metrics"] == DASHBOARD_METRICS_PORT


def test_head_metrics_ports_are_rays_own_defaults() -> None:
    """The autoscaler's is the door's copy of Ray's private constant, which
    tests/infra/test_ray_internals.py holds to Ray's (COPIED_CONSTANTS)."""
    from ray.dashboard.consts import DASHBOARD_METRIC_PORT

    assert DASHBOARD_METRICS_PORT == DASHBOARD_METRIC_PORT


@pytest.mark.parametrize("stack", OPERATOR_STACKS)
def test_with_the_operator_a_pod_monitor_scrapes_every_ray_group(
    stack: str, checked_stack_run: Runs
) -> None:
    run = checked_stack_run(stack)
    (monitor,) = run.of_type(POD_MONITOR)
    spec = monitor.inputs["spec"]
    config = load_stack_config(stack)
    assert spec["namespaceSelector"] == {"matchNames": [config.namespace]}
    release = config.observability.prometheus_release
    assert monitor.inputs["metadata"]["labels"]["release"] == release
    scraped = {endpoint["port"] for endpoint in spec["podMetricsEndpoints"]}
    for group in groups(run):
        assert selects(spec["selector"], labels_of(group)), group.name
        head = group.kind == "head"
        expected = {"metrics", "as-metrics", "dash-metrics"} if head else {"metrics"}
        assert expected <= scraped & set(container_ports(group)), group.name
    for endpoint in spec["podMetricsEndpoints"]:  # Ray's dashboards filter on ray_io_cluster
        assert endpoint["relabelings"][0]["targetLabel"] == "ray_io_cluster"
    for group in groups(run):
        assert "annotations" not in group.template["metadata"]


@pytest.mark.parametrize("stack", OPERATOR_STACKS)
def test_with_the_operator_a_service_monitor_scrapes_kuberay(
    stack: str, checked_stack_run: Runs,
) -> None:
    run = checked_stack_run(stack)
    (monitor,) = run.of_type(SERVICE_MONITOR)
    spec = monitor.inputs["spec"]
    assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": "kuberay-operator"}}
    assert [e["port"] for e in spec["endpoints"]] == [OPERATOR_METRICS_PORT_NAME]
    assert "annotations" not in operator_values(run)


@pytest.mark.parametrize("stack", ANNOTATION_STACKS)
def test_without_the_operator_pods_carry_scrape_annotations(
    stack: str, checked_stack_run: Runs,
) -> None:
    run = checked_stack_run(stack)
    assert not [r for r in run.resources if r.type.startswith(MONITORING)]
    port = load_stack_config(stack).observability.metrics_port
    for group in groups(run):
        annotations = group.template["metadata"]["annotations"]
        assert annotations == {"prometheus.io/path": "/metrics",
                               "prometheus.io/port": str(port), "prometheus.io/scrape": "true"}
        assert container_ports(group)["metrics"] == port
    if load_stack_config(stack).kuberay.install:  # a shared operator is its owner's to scrape
        assert operator_values(run)["annotations"] == {
            "prometheus.io/path": "/metrics", "prometheus.io/port": str(OPERATOR_METRICS_PORT),
            "prometheus.io/scrape": "true"}
    else:
        assert not [r for r in run.of_type(RELEASE) if r.inputs["chart"] == "kuberay-operator"]


def test_both_scrape_paths_are_exercised_by_the_shipped_stacks() -> None:
    modes = {load_stack_config(s).observability.uses_prometheus_operator for s in STACKS}
    assert modes == {True, False}
