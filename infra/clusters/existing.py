"""A cluster someone else runs: servestack only gets credentials and a description of its pools.

The pools in the stack file describe nodes that already exist (an on-prem cluster with MIG
slices such as nvidia.com/mig-2g.20gb included); nothing here creates or changes nodes.
"""

from __future__ import annotations

import pulumi

from infra.clusters.base import Cluster, ClusterBackend, kubernetes_provider
from infra.clusters.existing_spec import ExistingCluster
from infra.config import PROJECT, StackConfig
from infra.names import KUBECONFIG_KEY


def _existing(stack: StackConfig) -> ExistingCluster:
    assert isinstance(stack.cluster, ExistingCluster)
    return stack.cluster


def kubeconfig(stack: StackConfig, parent: pulumi.Resource) -> pulumi.Output[str]:
    cluster = _existing(stack)
    reference = cluster.stack_reference
    if cluster.kubeconfig_from == "stack_reference" and reference is not None:
        ref = pulumi.StackReference(reference.stack, opts=pulumi.ResourceOptions(parent=parent))
        return pulumi.Output.secret(ref.require_output(reference.output)).apply(str)
    return pulumi.Config(PROJECT).require_secret(KUBECONFIG_KEY)


def provision(stack: StackConfig, parent: pulumi.Resource) -> Cluster:
    credentials = kubeconfig(stack, parent)
    provider = kubernetes_provider("kubernetes", credentials, parent,
                                   context=_existing(stack).context)
    # The stack does not own this cluster's credentials, so it does not export them.
    return Cluster(provider=provider, kubeconfig=None, pools=stack.pools, ready=(),
                   shared=_existing(stack).shared)


class ExistingBackend(ClusterBackend):
    def provision(self, stack: StackConfig, parent: pulumi.Resource) -> Cluster:
        return provision(stack, parent)


BACKEND = ExistingBackend()
