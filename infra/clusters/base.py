"""The one interface every cluster backend implements, and the lazy choice between them.

A backend turns the stack's `cluster` and `pools` into a Kubernetes API the rest of the
program can talk to. Everything after it (operator, RayService) only sees a `Cluster`, so the
same components run on kind, GKE, EKS or a cluster someone else operates.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra.clusters.spec import spec_for
from infra.config import NodePool, StackConfig

CLUSTER_TYPE = "servestack:index:Cluster"


@dataclass(frozen=True)
class Cluster:
    """What a backend hands the program once the cluster and its node pools exist."""

    provider: k8s.Provider  # server-side apply on: the KubeRay CRDs exceed client-side limits
    kubeconfig: pulumi.Output[str] | None  # secret; None when the stack does not own it
    pools: tuple[NodePool, ...]
    ready: tuple[pulumi.Resource, ...]  # node pools and add-ons workloads must wait for
    shared: bool = False  # someone else's cluster: cluster-wide objects (CRDs) are not ours
    model_reader_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Annotations binding the Ray pods' ServiceAccount to the cloud identity that may read
    the stack's model buckets (GKE Workload Identity); empty where the binding lives
    elsewhere (EKS Pod Identity) or no model is read from the cloud."""
    api_server_cidrs: pulumi.Input[Sequence[str]] = ()
    """Where the `kubernetes` Service forwards to (NetworkPolicies see the address after DNAT),
    for the head's autoscaler egress; empty where the backend cannot know it."""


class ClusterBackend(ABC):
    """What `infra/clusters/<backend>.py` exports as `BACKEND`: how it builds its cluster.
    What it needs of the stack's pools is its spec's (`<backend>_spec.py`)."""

    @abstractmethod
    def provision(self, stack: StackConfig, parent: pulumi.Resource) -> Cluster:
        """Register the cluster's resources as children of `parent`."""


class ClusterComponent(pulumi.ComponentResource):
    """Groups a backend's resources under one node in `pulumi stack` and the state."""

    def __init__(self, name: str, backend: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(CLUSTER_TYPE, name, {"backend": backend}, opts)


class BackendUnavailableError(RuntimeError):
    """The backend's cloud SDK is not installed in this environment."""


def backend_for(stack: StackConfig) -> ClusterBackend:
    """Import only the backend the stack uses, so its cloud SDK is needed only there."""
    name = stack.cluster.backend
    try:
        module = importlib.import_module(f"infra.clusters.{name}")
    except ModuleNotFoundError as error:
        extra = spec_for(name).extra
        hint = f"pip install -e '.[{extra}]'" if extra else "pip install -e ."
        raise BackendUnavailableError(
            f"stack {stack.stack!r} uses the {name} backend, which needs {error.name!r}; "
            f"install it with `{hint}`"
        ) from None
    backend = module.BACKEND
    if not isinstance(backend, ClusterBackend):
        raise TypeError(f"infra.clusters.{name}.BACKEND must be a ClusterBackend")
    return backend


def provision_cluster(stack: StackConfig, backend: ClusterBackend) -> Cluster:
    component = ClusterComponent("cluster", stack.cluster.backend)
    cluster = backend.provision(stack, component)
    component.register_outputs({
        "backend": stack.cluster.backend,
        "pools": [pool.name for pool in cluster.pools],
    })
    return cluster


def kubernetes_provider(
    name: str,
    kubeconfig: pulumi.Input[str],
    parent: pulumi.Resource,
    context: str | None = None,
    depends_on: Sequence[pulumi.Resource] = (),
) -> k8s.Provider:
    return k8s.Provider(
        name,
        kubeconfig=kubeconfig,
        context=context,
        enable_server_side_apply=True,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
