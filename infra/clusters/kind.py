"""kind: a local cluster whose worker nodes impersonate the stack's node pools.

Each pool becomes `max_nodes` worker containers carrying the pool's labels and (through
kubeadm's JoinConfiguration) its taints, so nodeSelectors and tolerations behave as they
will in the cloud. kind cannot autoscale nodes, hence max_nodes rather than min_nodes.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_command as command
import yaml

from infra.clusters.base import Cluster, kubernetes_provider
from infra.config import ImageConfig, KindCluster, NodePool, StackConfig, Taint
from infra.field_paths import pool_path

KIND_API_VERSION = "kind.x-k8s.io/v1alpha4"
API_SERVER_CIDRS = ("172.16.0.0/12",)
"""The control-plane container's address: kind's Docker network comes from Docker's default
bridge pools (172.17-31.x.x); a daemon with other pools sets security.api_server_cidrs."""


def _kind(stack: StackConfig) -> KindCluster:
    assert isinstance(stack.cluster, KindCluster)
    return stack.cluster


def gpu_warnings(stack: StackConfig) -> list[str]:
    """kind nodes see a GPU only with GPU-enabled node containers (e.g. NVIDIA's nvkind)."""
    return [
        f"{pool_path(pool.name)} declares {pool.accelerator.resource}, but kind worker containers "
        "have no GPUs unless the host runs GPU-enabled kind (e.g. nvkind); its pods stay "
        "Pending otherwise"
        for pool in stack.pools if pool.accelerator is not None
    ]


def _join_patch(taints: tuple[Taint, ...]) -> str:
    registration = {"taints": [{"effect": t.effect, "key": t.key, "value": t.value}
                               for t in taints]}
    return yaml.safe_dump({"kind": "JoinConfiguration", "nodeRegistration": registration},
                          sort_keys=True)


def _worker(pool: NodePool, node_image: str) -> dict[str, Any]:
    node: dict[str, Any] = {"role": "worker", "image": node_image}
    if pool.labels:
        node["labels"] = dict(pool.labels)
    if pool.taints:
        node["kubeadmConfigPatches"] = [_join_patch(pool.taints)]
    return node


def kind_config(stack: StackConfig) -> dict[str, Any]:
    """The kind cluster config: one control plane, then each pool's nodes in stack order."""
    cluster = _kind(stack)
    nodes = [{"role": "control-plane", "image": cluster.node_image}]
    for pool in stack.pools:
        nodes.extend(_worker(pool, cluster.node_image) for _ in range(pool.max_nodes))
    return {"apiVersion": KIND_API_VERSION, "kind": "Cluster", "name": cluster.name, "nodes": nodes}


def is_local_image(image: ImageConfig) -> bool:
    """Built on this machine (never pulled), so kind must be handed it with `kind load`."""
    return image.repository.split("/", 1)[0] == "localhost" or image.pull_policy == "Never"


def images_to_load(stack: StackConfig) -> dict[str, str]:
    """Flavour → image reference for every local image the stack's pods may run."""
    if not is_local_image(stack.image):
        return {}
    images = {"cpu": stack.image.reference(gpu=False)}
    if any(pool.accelerator for pool in stack.pools):
        images["gpu"] = stack.image.reference(gpu=True)
    return images


def image_id_command(reference: str) -> str:
    """Prints the local image's content ID: a rebuild under the same tag changes it."""
    return f"docker image inspect --format '{{{{.Id}}}}' {reference}"


def image_id(reference: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """Read on every preview and up (an invoke, not a resource), so it is never stale."""
    return command.local.run_output(
        command=image_id_command(reference),
        opts=pulumi.InvokeOptions(parent=parent),
    ).stdout


def provision(stack: StackConfig, parent: pulumi.Resource) -> Cluster:
    name = _kind(stack).name
    for warning in gpu_warnings(stack):
        pulumi.log.warn(warning)
    config = yaml.safe_dump(kind_config(stack), sort_keys=True)
    cluster = command.local.Command(
        "kind-cluster",
        create=f"kind create cluster --name {name} --config - --wait 180s",
        delete=f"kind delete cluster --name {name}",
        stdin=config,
        triggers=[config],
        # A changed config replaces the cluster. pulumi-command would run the new `create`
        # first, which fails while a cluster of that name exists, and then let the old
        # resource's `delete` remove the new cluster: delete first, then create.
        opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True),
    )
    kubeconfig = command.local.Command(
        "kind-kubeconfig",
        create=f"kind get kubeconfig --name {name}",
        triggers=[cluster.id],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[cluster],
                                    additional_secret_outputs=["stdout"]),
    )
    loads = [
        command.local.Command(
            f"kind-load-{flavour}",
            create=f"kind load docker-image {reference} --name {name}",
            # The image ID, not the tag: rebuilding under the same tag must load it again.
            triggers=[image_id(reference, parent), cluster.id],
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[cluster]),
        )
        for flavour, reference in images_to_load(stack).items()
    ]
    secret_kubeconfig: pulumi.Output[str] = pulumi.Output.secret(kubeconfig.stdout)
    provider = kubernetes_provider("kubernetes", secret_kubeconfig, parent, depends_on=[cluster])
    return Cluster(provider=provider, kubeconfig=secret_kubeconfig, pools=stack.pools,
                   ready=(cluster, *loads), api_server_cidrs=API_SERVER_CIDRS)
