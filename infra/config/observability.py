"""The stack's `observability`: how Prometheus finds Ray's metrics, dashboards and alerts."""

from __future__ import annotations

from typing import Final

from pydantic import Field

from apps.spec import SpecModel
from infra.field_types import DnsLabel, Port

KUBE_PROMETHEUS_STACK_VERSION: Final = "81.6.2"


class ObservabilityConfig(SpecModel):
    """How Prometheus finds Ray's metrics, where Grafana's dashboards go, and who alerts.

    With the Prometheus Operator (installed here or already in the cluster) the stack adds
    PodMonitors, a ServiceMonitor and PrometheusRules; without it, scrape annotations.
    """

    prometheus_operator: bool = Field(
        False, description="The cluster runs the Prometheus Operator (monitoring.coreos.com CRDs).",
    )
    install_kube_prometheus_stack: bool = Field(
        False, description="Install the kube-prometheus-stack chart (implies prometheus_operator).",
    )
    kube_prometheus_stack_version: str = Field(
        KUBE_PROMETHEUS_STACK_VERSION, pattern=r"^\d+\.\d+\.\d+$",
        description="Pinned chart version; bump deliberately.",
    )
    kube_prometheus_stack_repository: str = Field(
        "https://prometheus-community.github.io/helm-charts",
        description="Helm repository of the chart.",
    )
    monitoring_namespace: DnsLabel = Field(
        "monitoring",
        description="Where Prometheus and Grafana run: dashboards go here and only this "
        "namespace may scrape the metrics ports.",
    )
    prometheus_release: DnsLabel = Field(
        "kube-prometheus-stack",
        description="The `release` label kube-prometheus-stack's Prometheus selects monitors "
        "and rules by (its Helm release name).",
    )
    metrics_port: Port = Field(
        8080,
        description="Ray's metrics export port on every node (Ray itself picks a random one).",
    )
    grafana_dashboards: bool = Field(True, description="Provision Ray's Grafana dashboards.")

    @property
    def uses_prometheus_operator(self) -> bool:
        return self.prometheus_operator or self.install_kube_prometheus_stack

