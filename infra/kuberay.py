"""The KubeRay operator: its CRDs applied server-side from the release, then the Helm chart.

The chart's own CRDs are skipped: Helm never upgrades CRDs and the RayCluster/RayService CRDs
are ~1 MB each, too large for client-side apply. They come from the official release tag of
the same version instead, so the operator and its CRDs can never drift apart.

CRDs are cluster-wide: deleting one deletes every RayCluster/RayService in the cluster. A stack
owns them only on a cluster it owns (kind, gke, eks). On an `existing` cluster other teams may
run KubeRay too, so the stack only reads them (`up` stops if they are missing) and `destroy`
never touches them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.config import KubeRayConfig
from infra.names import APP_NAME_LABEL, KUBERAY_CHART
from infra.worker_groups import pod_resources

KUBERAY_COMPONENT = "servestack:index:KubeRayOperator"
CHART = KUBERAY_CHART
OPERATOR_METRICS_PORT = 8080  # the chart's container port (names.OPERATOR_METRICS_PORT_NAME)
CRD_KINDS = ("rayclusters", "rayjobs", "rayservices")
CRD_GROUP = "ray.io"
CRD_URL = ("https://raw.githubusercontent.com/ray-project/kuberay/v{version}/"
           "ray-operator/config/crd/bases/ray.io_{kind}.yaml")


def crd_urls(version: str) -> dict[str, str]:
    return {kind: CRD_URL.format(version=version, kind=kind) for kind in CRD_KINDS}


def crd_name(kind: str) -> str:
    return f"{kind}.{CRD_GROUP}"


def operator_pod_labels() -> dict[str, str]:
    """The label the chart puts on the operator Pod (its nameOverride, the chart name)."""
    return {APP_NAME_LABEL: CHART}


def operator_values(config: KubeRayConfig, namespace: str,
                    node_selector: Mapping[str, str],
                    pod_annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Namespaced install: the operator gets a Role in our namespace only and watches only it."""
    values: dict[str, Any] = {
        "crNamespacedRbacEnable": True,
        "resources": pod_resources(config.resources),
        "singleNamespaceInstall": True,
        "watchNamespace": [namespace],
    }
    if node_selector:
        values["nodeSelector"] = dict(sorted(node_selector.items()))
    if pod_annotations:
        values["annotations"] = dict(sorted(pod_annotations.items()))  # Pod template annotations
    return values


@dataclass(frozen=True)
class KubeRayOperatorArgs:
    config: KubeRayConfig
    namespace: str
    node_selector: Mapping[str, str] = field(default_factory=dict)  # the head's pool
    pod_annotations: Mapping[str, str] = field(default_factory=dict)  # e.g. prometheus.io/*
    owns_crds: bool = True  # False on a cluster the stack does not own: require, never delete


class KubeRayOperator(pulumi.ComponentResource):
    release: k8s.helm.v3.Release
    crds: tuple[pulumi.Resource, ...]

    def __init__(self, name: str, args: KubeRayOperatorArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(KUBERAY_COMPONENT, name, None, opts)
        crds: list[pulumi.Resource]
        if args.owns_crds:
            crds = [
                k8s.yaml.v2.ConfigFile(f"{name}-crd-{kind}", file=url,
                                       opts=pulumi.ResourceOptions(parent=self))
                for kind, url in crd_urls(args.config.chart_version).items()
            ]
        else:
            # A read, not a resource: `up` fails if the CRD is missing, `destroy` skips it.
            crds = [
                k8s.apiextensions.v1.CustomResourceDefinition.get(
                    f"{name}-crd-{kind}", crd_name(kind), opts=pulumi.ResourceOptions(parent=self))
                for kind in CRD_KINDS
            ]
        self.crds = tuple(crds)
        self.release = k8s.helm.v3.Release(
            name,
            name=CHART,
            chart=CHART,
            version=args.config.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=args.config.chart_repository),
            namespace=args.namespace,
            skip_crds=True,
            values=operator_values(args.config, args.namespace, args.node_selector,
                                   args.pod_annotations),
            opts=pulumi.ResourceOptions(parent=self, depends_on=crds),
        )
        self.register_outputs({"chartVersion": args.config.chart_version,
                               "release": self.release.status})
