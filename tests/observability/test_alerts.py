"""The stack's PrometheusRule: valid PromQL, thresholds derived from the typed specs and the
capacity plan, and only metric names Ray 2.60 (and kube-state-metrics) actually export."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import promql_parser
import pytest

from infra.capacity import plan_capacity
from infra.observability import grafana_dashboards
from infra.stack_file import available_stacks, load_stack_config
from servestack.offline import ProgramRun

STACKS = available_stacks()
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
OPERATOR_STACKS = [s for s in STACKS if load_stack_config(s).observability.uses_prometheus_operator]
KUBE_STATE_METRICS = {"kube_pod_status_phase", "kube_pod_container_resource_requests"}

Runs = Callable[[str], ProgramRun]


def rules(run: ProgramRun) -> list[Mapping[str, Any]]:
    (resource,) = run.of_type(RULE)
    (group,) = resource.inputs["spec"]["groups"]
    found: list[Mapping[str, Any]] = group["rules"]
    return found


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def by_alert(run: ProgramRun, alert: str) -> dict[tuple[str, ...], Mapping[str, Any]]:
    return {tuple(sorted((k, v) for k, v in r["labels"].items()
                         if k in ("application", "deployment"))): r
            for r in rules(run) if r["alert"] == alert}


@pytest.mark.parametrize("stack", OPERATOR_STACKS)
def test_every_expression_is_valid_promql_scoped_to_the_stack_namespace(
    stack: str, checked_stack_run: Runs
) -> None:
    namespace = load_stack_config(stack).namespace
    for rule in rules(checked_stack_run(stack)):
        promql_parser.parse(rule["expr"])  # raises on a syntax error
        assert f'namespace="{namespace}"' in rule["expr"], rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.mark.parametrize("stack", OPERATOR_STACKS)
def test_error_ratio_and_p99_thresholds_come_from_each_apps_slo(
    stack: str, checked_stack_run: Runs
) -> None:
    run = checked_stack_run(stack)
    errors = by_alert(run, "ServeHighErrorRatio")
    latency = by_alert(run, "ServeHighP99Latency")
    apps = load_stack_config(stack).applications
    assert len(errors) == len(latency) == len(apps)
    for app in apps:
        key = (("application", app.name),)
        assert errors[key]["expr"].endswith(f"> {app.slo.max_error_ratio:g}")
        assert 'error_code=~"5.."' in errors[key]["expr"]
        assert latency[key]["expr"].endswith(f"> {app.slo.p99_latency_ms:g}")
        assert "histogram_quantile(0.99," in latency[key]["expr"]


def test_a_stack_override_of_the_slo_reaches_the_alert(checked_stack_run: Runs) -> None:
    """prod sets apps.embeddings.slo; the catalog default stays for the other apps."""
    latency = by_alert(checked_stack_run("prod"), "ServeHighP99Latency")
    assert latency[(("application", "embeddings"),)]["expr"].endswith("> 250")
    assert latency[(("application", "search"),)]["expr"].endswith("> 1000")


@pytest.mark.parametrize("stack", OPERATOR_STACKS)
def test_max_replica_alerts_follow_each_autoscaling_deployment(
    stack: str, checked_stack_run: Runs
) -> None:
    pinned = by_alert(checked_stack_run(stack), "ServeDeploymentAtMaxReplicas")
    expected = {}
    for app in load_stack_config(stack).applications:
        for dep in app.deployments:
            if dep.autoscaling is not None and dep.min_replicas < dep.max_replicas:
                expected[(("application", app.name), ("deployment", dep.name))] = dep.max_replicas
    assert expected and set(pinned) == set(expected)
    for key, max_replicas in expected.items():
        assert pinned[key]["expr"].endswith(f">= {max_replicas}")


@pytest.mark.parametrize("stack", OPERATOR_STACKS)
def test_gpu_pending_alert_watches_exactly_the_plans_gpu_resources(
    stack: str, checked_stack_run: Runs
) -> None:
    plan = plan_capacity(load_stack_config(stack))
    gpu = sorted({g.accelerator_resource.replace(".", "_").replace("/", "_")
                  for g in plan.worker_groups if g.accelerator_resource})
    pending = [r for r in rules(checked_stack_run(stack)) if r["alert"] == "RayGpuWorkerPending"]
    if not gpu:
        assert pending == []
        return
    (rule,) = pending
    assert f'resource=~"{"|".join(gpu)}"' in rule["expr"]
    assert 'phase="Pending"' in rule["expr"]


def test_alerts_use_only_metrics_rays_own_dashboards_query(checked_stack_run: Runs) -> None:
    """Ray 2.60's dashboard factory is the authority on exported names (`_total`, `_bucket`);
    the live test (test_local_metrics) scrapes the same names from a running Ray."""
    used = set().union(*(metric_names(r["expr"]) for r in rules(checked_stack_run("prod"))))
    dashboards = json.dumps(grafana_dashboards(load_stack_config("prod")))
    ray_metrics = used - KUBE_STATE_METRICS
    assert ray_metrics == {
        "ray_serve_num_http_error_requests_total", "ray_serve_num_http_requests_total",
        "ray_serve_http_request_latency_ms_bucket", "ray_serve_deployment_replica_healthy",
    }
    for name in ray_metrics:
        assert name in dashboards, name


@pytest.mark.parametrize("stack", [s for s in STACKS if s not in OPERATOR_STACKS])
def test_without_the_operator_there_is_no_rule_resource(
    stack: str, checked_stack_run: Runs,
) -> None:
    assert checked_stack_run(stack).of_type(RULE) == []
