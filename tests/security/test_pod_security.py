"""Every Ray container meets the restricted Pod Security Standard with a read-only root, and
the namespace makes the API server enforce it.

Checked twice: on the registered RayService (head, workers, autoscaler sidecar) and on the
Pods the KubeRay operator will create from it (the render's preview Pods), against the
restricted profile's rules as the Kubernetes docs list them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from infra.pod_preview import RAYSERVICE_TYPE, preview_pods, ray_containers
from infra.stack_file import available_stacks, load_stack_config
from infra.worker_groups import RAY_UID, TMP_MOUNT
from servestack.offline import ProgramRun

STACKS = available_stacks()
NAMESPACE = "kubernetes:core/v1:Namespace"
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}

Runs = Callable[[str], ProgramRun]


def restricted_violations(pod: Mapping[str, Any]) -> list[str]:
    """The restricted profile (Kubernetes Pod Security Standards, v1.33), for one Pod."""
    spec = pod["spec"]
    pod_ctx = spec.get("securityContext", {})
    problems = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(flag)
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {kinds}")
    for container in spec.get("initContainers", []) + spec["containers"]:
        ctx = container.get("securityContext", {})
        name = container["name"]
        if ctx.get("privileged"):
            problems.append(f"{name}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation")
        if ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is not True:
            problems.append(f"{name}: runAsNonRoot")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        caps = ctx.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities")
        seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {}))
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile")
        if any(port.get("hostPort") for port in container.get("ports", [])):
            problems.append(f"{name}: hostPort")
    return problems


def rayservice(run: ProgramRun) -> Mapping[str, Any]:
    inputs: Mapping[str, Any] = run.one(RAYSERVICE_TYPE).inputs
    return inputs


@pytest.mark.parametrize("stack", STACKS)
def test_the_pods_kuberay_creates_meet_the_restricted_profile(
    stack: str, checked_stack_run: Runs
) -> None:
    pods = preview_pods(RAYSERVICE_TYPE, rayservice(checked_stack_run(stack)), "servestack")
    assert pods
    for pod in pods:
        assert restricted_violations(pod) == [], pod["metadata"]["name"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_ray_container_has_a_read_only_root_and_a_writable_tmp(
    stack: str, checked_stack_run: Runs
) -> None:
    refs = list(ray_containers(RAYSERVICE_TYPE, rayservice(checked_stack_run(stack))))
    assert {ref.role for ref in refs} == {"ray", "autoscaler"}
    for ref in refs:
        ctx = ref.container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True, ref.path
        assert ctx["runAsUser"] == RAY_UID and ctx["runAsNonRoot"] is True, ref.path
        mounts = {m["mountPath"]: m["name"] for m in ref.container["volumeMounts"]}
        volumes = {v["name"]: v for v in ref.group.pod_spec["volumes"]}
        assert volumes[mounts[TMP_MOUNT]]["emptyDir"] == {}, ref.path  # Ray's /tmp/ray
        if ref.role == "ray":
            assert volumes[mounts["/dev/shm"]]["emptyDir"] == {"medium": "Memory"}


@pytest.mark.parametrize("stack", STACKS)
def test_the_workload_namespace_enforces_restricted(stack: str, checked_stack_run: Runs) -> None:
    name = load_stack_config(stack).namespace
    (namespace,) = [r for r in checked_stack_run(stack).of_type(NAMESPACE)
                    if r.inputs["metadata"]["name"] == name]
    labels = namespace.inputs["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_the_checker_catches_what_restricted_forbids() -> None:
    """The profile check above is only as good as its ability to fail."""
    pod = {"spec": {"hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
                    "containers": [{"name": "c", "securityContext": {"runAsUser": 0}}]}}
    problems = restricted_violations(pod)
    assert {"hostNetwork", "volume h: {'hostPath'}", "c: allowPrivilegeEscalation",
            "c: runAsNonRoot", "c: runAsUser 0", "c: capabilities", "c: seccompProfile"} == set(
        problems)
