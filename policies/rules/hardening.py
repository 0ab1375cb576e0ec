"""Pods run as the restricted Pod Security Standard asks, and namespaces enforce it.

The per-container rule catches a template that would be rejected (or, without admission,
run as root); the namespace rule makes the API server enforce the same standard.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from infra.names import POD_SECURITY_ENFORCE_LABEL
from infra.pod_preview import as_list, as_mapping
from policies.rules.workloads import NAMESPACE_TYPE, containers

PSA_ACCEPTED = ("baseline", "restricted")


def _hardening_gaps(container: Mapping[str, Any], pod: Mapping[str, Any]) -> list[str]:
    ctx = as_mapping(container.get("securityContext"))
    gaps = []
    run_as_non_root = ctx.get("runAsNonRoot", pod.get("runAsNonRoot"))
    if run_as_non_root is not True:
        gaps.append("runAsNonRoot: true")
    if ctx.get("allowPrivilegeEscalation") is not False:
        gaps.append("allowPrivilegeEscalation: false")
    if ctx.get("privileged") is True:
        gaps.append("privileged: false")
    drop = [str(c) for c in as_list(as_mapping(ctx.get("capabilities")).get("drop"))]
    if "ALL" not in drop:
        gaps.append("capabilities.drop: [ALL]")
    seccomp = as_mapping(ctx.get("seccompProfile")) or as_mapping(pod.get("seccompProfile"))
    if seccomp.get("type") != "RuntimeDefault":
        gaps.append("seccompProfile.type: RuntimeDefault")
    return gaps


def check_pods_hardened(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    for container in containers(resource_type, props):
        gaps = _hardening_gaps(container.body, container.pod_security)
        if gaps:
            where = (
                f"{container.path}.securityContext"
                if container.role != "autoscaler"
                else f"{container.path}.securityContext (the autoscaler sidecar)"
            )
            yield f"{where}: set {', '.join(gaps)} (restricted Pod Security Standard)"


def check_namespaces_enforce_pod_security(
    resource_type: str, props: Mapping[str, Any]
) -> Iterator[str]:
    if resource_type != NAMESPACE_TYPE:
        return
    labels = as_mapping(as_mapping(props.get("metadata")).get("labels"))
    level = labels.get(POD_SECURITY_ENFORCE_LABEL)
    if level not in PSA_ACCEPTED:
        found = "is missing" if level is None else f"is {level!r}"
        yield (
            f"metadata.labels[{POD_SECURITY_ENFORCE_LABEL}] {found}; label the namespace "
            f"{POD_SECURITY_ENFORCE_LABEL}: restricted (or baseline) so the API server rejects "
            "privileged pods"
        )
