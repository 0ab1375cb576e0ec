"""The stack's namespace, where the API server itself enforces the restricted Pod Security level.

Admission is the backstop behind the policies: a pod template that loses its securityContext
is rejected at creation instead of running as root.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.config import StackConfig
from infra.names import (
    POD_SECURITY_LABELS,
    POD_SECURITY_MODES,
    pod_security_version_label,
    stack_labels,
)

POD_SECURITY_LEVEL = "restricted"


def namespace_labels(stack: StackConfig) -> dict[str, str]:
    labels = stack_labels(stack.stack)
    for mode in POD_SECURITY_MODES:
        labels[POD_SECURITY_LABELS[mode]] = POD_SECURITY_LEVEL
        labels[pod_security_version_label(mode)] = "latest"
    return dict(sorted(labels.items()))


def workload_namespace(stack: StackConfig, opts: pulumi.ResourceOptions) -> k8s.core.v1.Namespace:
    return k8s.core.v1.Namespace(
        "namespace",
        metadata={"name": stack.namespace, "labels": namespace_labels(stack)},
        opts=opts,
    )
