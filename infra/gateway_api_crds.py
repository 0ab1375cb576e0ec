"""The Gateway API CRDs (and gateway class) the front door and KubeRay's incremental upgrade
need, per cluster.

Without them `pulumi up` fails late, at the first Gateway, or worse, KubeRay's incremental
upgrade stalls when it tries to create its own Gateway and HTTPRoute mid-rollout. So:
- GKE installs them itself (`gateway_api_config` on the cluster, infra/clusters/gke.py);
- a cluster the stack creates (kind, EKS) gets the upstream standard-channel release;
- a cluster the stack shares (`backend: existing`) must already have them: each one is read,
  so `up` stops at once, naming the CRD, and `destroy` never removes another team's CRDs.

A class the stack names but does not create (no `gateway.controller_name`) is read the same
way, off GKE (whose classes come with the cluster): it is how a cluster says a gateway
controller runs there, and KubeRay's upgrade Gateway uses that class too.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from infra.config import StackConfig
from infra.gateway import front_door_manifests, gateway_class_manifest
from infra.names import GATEWAY_API, GATEWAY_API_VERSION

RELEASE = "v1.6.1"
"""The Gateway API release the front door is validated against (the vendored CRDs' bundle
version; a test holds the two equal)."""
CHANNEL = "standard"
INSTALL_URL = ("https://github.com/kubernetes-sigs/gateway-api/releases/download/"
               f"{RELEASE}/{CHANNEL}-install.yaml")
PLURALS = {"Gateway": "gateways", "GatewayClass": "gatewayclasses", "HTTPRoute": "httproutes",
           "ReferenceGrant": "referencegrants"}
"""Each kind's resource name (the CRD's spec.names.plural)."""
INCREMENTAL_UPGRADE_KINDS = ("Gateway", "HTTPRoute")
"""What KubeRay 1.7.0 creates for NewClusterWithIncrementalUpgrade (rayservice_controller.go:
createGateway, createHTTPRoute)."""


def crd_name(kind: str) -> str:
    return f"{PLURALS[kind]}.{GATEWAY_API}"


def needed_kinds(stack: StackConfig) -> tuple[str, ...]:
    """The Gateway API kinds this stack's objects use, the front door's and KubeRay's."""
    kinds = {manifest["kind"] for manifest in front_door_manifests(stack)
             if manifest["apiVersion"].startswith(f"{GATEWAY_API}/")}
    if stack.rayservice.upgrade_strategy == "NewClusterWithIncrementalUpgrade":
        kinds.update(INCREMENTAL_UPGRADE_KINDS)
    return tuple(sorted(kinds))


def gateway_api_crds(stack: StackConfig, managed_by_platform: bool, shared: bool,
                     opts: pulumi.ResourceOptions) -> Sequence[pulumi.Resource]:
    """What the Gateway API objects must wait for: the installed release, or a read of each
    CRD on a shared cluster; nothing where the platform installs them or none are used."""
    kinds = needed_kinds(stack)
    if not kinds or managed_by_platform:
        return []
    crds: list[pulumi.Resource]
    if shared:
        crds = [k8s.apiextensions.v1.CustomResourceDefinition.get(
            f"gateway-api-crd-{PLURALS[kind]}", crd_name(kind), opts=opts) for kind in kinds]
    else:
        crds = [k8s.yaml.v2.ConfigFile("gateway-api-crds", file=INSTALL_URL, opts=opts)]
    if gateway_class_manifest(stack) is not None or stack.gateway_class is None:
        return crds  # the stack creates the class (or has no gateway)
    existing_class = k8s.apiextensions.CustomResource.get(
        "gateway-class", api_version=GATEWAY_API_VERSION, kind="GatewayClass",
        id=stack.gateway_class, opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(depends_on=crds)))
    return [*crds, existing_class]
