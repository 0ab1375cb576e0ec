"""The stack's namespace, where the API server itself enforces the restricted Pod Security level.

Admission is the backstop behind the policies: a pod template that loses its securityContext
is rejected at creation instead of running as root.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.config import StackConfig

POD_SECURITY_LEVEL = "restricted"


def namespace_labels(stack: StackConfig) -> dict[str, str]:
    labels = {"app.kubernetes.io/part-of": "servestack", "servestack.io/stack": stack.stack}
    for mode in ("enforce", "audit", "warn"):
        labels[f"pod-security.kubernetes.io/{mode}"] = POD_SECURITY_LEVEL
        labels[f"pod-security.kubernetes.io/{mode}-version"] = "latest"
    return dict(sorted(labels.items()))


def workload_namespace(stack: StackConfig, opts: pulumi.ResourceOptions) -> k8s.core.v1.Namespace:
    return k8s.core.v1.Namespace(
        "namespace",
        metadata={"name": stack.namespace, "labels": namespace_labels(stack)},
        opts=opts,
    )
