"""The stack's `kuberay` section: the operator chart, and what its pod reserves."""

from __future__ import annotations

from typing import Literal

from pydantic import ByteSize, Field

from apps.spec import SpecModel
from infra.config.project import KUBERAY_VERSION
from infra.config.resources import PodResources


class KubeRayConfig(SpecModel):
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
