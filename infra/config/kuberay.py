"""The stack's `kuberay` section: the operator chart, what its pod reserves, or (on a shared
cluster) which operator the stack uses instead of installing one (docs/shared-clusters.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import ByteSize, Field

from infra.config.project import KUBERAY_VERSION
from infra.config.resources import KeepsPodDefaults, PodResources
from infra.field_types import DNS_LABEL


class KubeRayConfig(KeepsPodDefaults):
    install: bool = Field(
        True,
        description="Install the kuberay-operator chart in the stack's namespace (and its CRDs "
        "on a cluster the stack owns). false: use the operator an `existing` cluster already "
        "runs, which must watch this namespace; nothing of the operator is then installed, "
        "changed or deleted.",
    )
    operator_namespace: str | None = Field(
        None, pattern=DNS_LABEL,
        description="With install false: the namespace the cluster's operator runs in, so the "
        "NetworkPolicies admit it to the head (its pods are found by the chart's own name "
        "label).",
    )
    chart_version: Literal["1.7.0"] = Field(
        KUBERAY_VERSION,
        description="kuberay-operator chart version; also the CRDs' release tag.",
    )
    chart_repository: str = Field(
        "https://ray-project.github.io/kuberay-helm/", description="Helm repository of the chart."
    )
    resources: PodResources = Field(
        PodResources(cpu=0.1, memory=ByteSize(512 * 1024**2)),
        description="Operator pod requests = limits.",
    )

    def operator_namespace_for(self, stack_namespace: str) -> str | None:
        """Where the operator runs: the stack's namespace when installed, else as given."""
        return stack_namespace if self.install else self.operator_namespace
