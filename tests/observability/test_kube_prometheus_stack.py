"""kube-prometheus-stack, when a stack installs it: the pinned official chart, its release
name the label monitors are selected by, Grafana's admin password a generated secret."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from infra.config import KUBE_PROMETHEUS_STACK_VERSION
from infra.stack_file import available_stacks, load_stack_config
from servestack.offline import ProgramRun

STACKS = available_stacks()
RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
SECRET = "kubernetes:core/v1:Secret"
INSTALLING = [s for s in STACKS if load_stack_config(s).observability.install_kube_prometheus_stack]

Runs = Callable[[str], ProgramRun]


@pytest.mark.parametrize("stack", INSTALLING)
def test_the_pinned_official_chart_is_installed_in_the_monitoring_namespace(
    stack: str, checked_stack_run: Runs
) -> None:
    run = checked_stack_run(stack)
    obs = load_stack_config(stack).observability
    (chart,) = [r for r in run.of_type(RELEASE) if r.inputs["chart"] == "kube-prometheus-stack"]
    assert chart.inputs["version"] == KUBE_PROMETHEUS_STACK_VERSION
    assert chart.inputs["repositoryOpts"]["repo"] == (
        "https://prometheus-community.github.io/helm-charts")
    assert chart.inputs["namespace"] == obs.monitoring_namespace
    assert chart.inputs["name"] == obs.prometheus_release  # = the monitors' `release` label
    assert chart.inputs["values"]["nodeExporter"] == {"enabled": False}
    (namespace,) = [r for r in run.of_type(NAMESPACE)
                    if r.inputs["metadata"]["name"] == obs.monitoring_namespace]
    labels = namespace.inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert namespace.urn in chart.options.depends_on


@pytest.mark.parametrize("stack", INSTALLING)
def test_grafanas_admin_password_is_generated_and_only_in_a_secret(
    stack: str, checked_stack_run: Runs
) -> None:
    run = checked_stack_run(stack)
    (chart,) = [r for r in run.of_type(RELEASE) if r.inputs["chart"] == "kube-prometheus-stack"]
    admin = chart.inputs["values"]["grafana"]["admin"]
    (secret,) = [r for r in run.of_type(SECRET)
                 if r.inputs["metadata"]["name"] == admin["existingSecret"]]
    assert "stringData" in secret.secret_inputs
    assert set(secret.inputs["stringData"]) == {admin["passwordKey"], admin["userKey"]}
    assert secret.urn in chart.options.depends_on
    assert "adminPassword" not in chart.inputs["values"]["grafana"]


@pytest.mark.parametrize("stack", INSTALLING)
def test_monitors_wait_for_the_chart_that_brings_their_crds(
    stack: str, checked_stack_run: Runs,
) -> None:
    run = checked_stack_run(stack)
    (chart,) = [r for r in run.of_type(RELEASE) if r.inputs["chart"] == "kube-prometheus-stack"]
    monitoring = [r for r in run.resources if r.type.startswith("kubernetes:monitoring.coreos.com")]
    assert len(monitoring) == 3
    for resource in monitoring:
        assert chart.urn in resource.options.depends_on, resource.name
    assert checked_stack_run(stack).outputs["grafana"] == (
        f"kube-prometheus-stack-grafana.{load_stack_config(stack).observability.monitoring_namespace}")


@pytest.mark.parametrize("stack", [s for s in STACKS if s not in INSTALLING])
def test_other_stacks_install_no_monitoring_chart(stack: str, checked_stack_run: Runs) -> None:
    run = checked_stack_run(stack)
    own_operator = ["kuberay-operator"] if load_stack_config(stack).kuberay.install else []
    assert [r.inputs["chart"] for r in run.of_type(RELEASE)] == own_operator
    assert "grafana" not in run.outputs
