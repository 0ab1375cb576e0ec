"""Ray authenticates, its namespace is isolated and restricted, and no secret sits in plain text.

Ray's dashboard and GCS accept jobs and code from anyone who reaches them; token auth and
NetworkPolicies are the two locks on that door. A secret written as a literal (an env var, a
runtime_env, Helm values) ends up in the Pulumi state's plain inputs and in every render.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml

from infra.config import StackConfig
from infra.names import POD_SECURITY_ENFORCE_LABEL
from infra.pod_preview import RAYSERVICE_TYPE, as_list, as_mapping
from policies.rules.workloads import HELM_RELEASE_TYPES, NAMESPACE_TYPE, containers

NETWORK_POLICY_TYPE = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET|API_?KEY|ACCESS_?KEY|CREDENTIAL)",
                         re.IGNORECASE)
SECRET_REFERENCE_KEYS = re.compile(  # keys that name a Secret or a key in it, not a value
    r"(existingSecret|secretName|passwordKey|tokenKey|userKey|KeyRef|keyRef)$")

Finding = tuple[str, str | None]


def check_ray_token_auth(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    if resource_type != RAYSERVICE_TYPE:
        return
    cluster = as_mapping(as_mapping(props.get("spec")).get("rayClusterConfig"))
    mode = as_mapping(cluster.get("authOptions")).get("mode")
    if mode != "token":
        found = "is not set" if mode is None else f"is {mode!r}"
        yield (
            f"spec.rayClusterConfig.authOptions.mode {found}: anyone who reaches the dashboard "
            "or GCS can run code on the cluster. Set servestack:security.ray_token_auth: true"
        )


def _literal_secret_env(env: Any) -> Iterator[str]:
    for item in as_list(env):
        entry = as_mapping(item)
        name = str(entry.get("name", ""))
        if SECRET_NAME.search(name) and entry.get("value"):
            yield name


def _serve_env_vars(props: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    raw = as_mapping(props.get("spec")).get("serveConfigV2")
    try:
        document = yaml.safe_load(raw) if isinstance(raw, str) else None
    except yaml.YAMLError:
        return  # serve-config-valid reports it
    for app in as_list(as_mapping(document).get("applications")):
        env_vars = as_mapping(as_mapping(as_mapping(app).get("runtime_env")).get("env_vars"))
        for name in env_vars:
            if SECRET_NAME.search(str(name)):
                yield str(as_mapping(app).get("name", "?")), str(name)


def _literal_secret_values(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if (isinstance(item, str) and item and SECRET_NAME.search(str(key))
                    and not SECRET_REFERENCE_KEYS.search(str(key))):
                yield here
            else:
                yield from _literal_secret_values(item, here)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _literal_secret_values(item, f"{path}[{index}]")


def check_no_plain_secrets(resource_type: str, props: Mapping[str, Any]) -> Iterator[str]:
    for container in containers(resource_type, props):
        for name in _literal_secret_env(container.body.get("env")):
            yield (
                f"{container.path}.env[{name}] is a literal value; use valueFrom.secretKeyRef "
                "so the secret lives in a Kubernetes Secret, not in the manifest"
            )
    if resource_type == RAYSERVICE_TYPE:
        for app, name in _serve_env_vars(props):
            yield (
                f"spec.serveConfigV2 application {app!r} runtime_env.env_vars[{name}] looks like "
                "a secret in plain config, which lands in the Pulumi state and every render; "
                "deliver it from a Kubernetes Secret (env valueFrom.secretKeyRef), not "
                f"servestack:apps.{app}.runtime_env"
            )
    if resource_type in HELM_RELEASE_TYPES:
        for path in _literal_secret_values(as_mapping(props.get("values")), "values"):
            yield (
                f"{path} is a literal secret in Helm values; point the chart at an existing "
                "Secret (e.g. grafana.admin.existingSecret) created from a Pulumi secret"
            )


def _namespaces_with_ray(resources: Sequence[Any]) -> dict[str, str]:
    """Namespace → urn of a RayService in it."""
    found = {}
    for resource in resources:
        if resource.resource_type == RAYSERVICE_TYPE:
            namespace = as_mapping(as_mapping(resource.props).get("metadata")).get("namespace")
            found[str(namespace or "default")] = resource.urn
    return found


def check_ray_namespaces_restricted(
    resources: Sequence[Any], stack: StackConfig
) -> Iterator[Finding]:
    namespaces = {
        str(as_mapping(r.props.get("metadata")).get("name")): r
        for r in resources if r.resource_type == NAMESPACE_TYPE
    }
    for name, urn in sorted(_namespaces_with_ray(resources).items()):
        namespace = namespaces.get(name)
        if namespace is None:
            yield (
                f"namespace {name!r} runs a RayService but is not part of the stack, so nothing "
                "guarantees its Pod Security level; let the stack create it",
                urn,
            )
            continue
        labels = as_mapping(as_mapping(namespace.props.get("metadata")).get("labels"))
        level = labels.get(POD_SECURITY_ENFORCE_LABEL)
        if level is not None and level != "restricted":  # missing: namespaces-enforce-pod-security
            yield (
                f"namespace {name!r} runs Ray pods but "
                f"metadata.labels[{POD_SECURITY_ENFORCE_LABEL}] is {level!r}; Ray's pods meet "
                "restricted, so enforce restricted",
                namespace.urn,
            )


def _is_default_deny(spec: Mapping[str, Any]) -> bool:
    return (as_mapping(spec.get("podSelector")) == {}
            and "Ingress" in as_list(spec.get("policyTypes"))
            and not as_list(spec.get("ingress")))


def _open_peers(spec: Mapping[str, Any]) -> Iterator[int]:
    """Ingress rules that admit every pod of the cluster (no `from`, or an empty selector)."""
    for index, rule in enumerate(as_list(spec.get("ingress"))):
        peers = as_list(as_mapping(rule).get("from"))
        if not peers:
            yield index
            continue
        for peer in peers:
            peer = as_mapping(peer)
            if "ipBlock" in peer:
                continue
            namespaces = peer.get("namespaceSelector")
            if namespaces is not None and not as_mapping(namespaces) and not as_mapping(
                    peer.get("podSelector")):
                yield index


def check_network_policies_isolate_ray(
    resources: Sequence[Any], stack: StackConfig
) -> Iterator[Finding]:
    policies: dict[str, list[Any]] = {}
    for resource in resources:
        if resource.resource_type == NETWORK_POLICY_TYPE:
            metadata = as_mapping(resource.props.get("metadata"))
            policies.setdefault(str(metadata.get("namespace") or "default"), []).append(resource)
    for namespace, urn in sorted(_namespaces_with_ray(resources).items()):
        present = policies.get(namespace, [])
        if not any(_is_default_deny(as_mapping(p.props.get("spec"))) for p in present):
            yield (
                f"namespace {namespace!r} runs a RayService without a default-deny ingress "
                "NetworkPolicy: every pod in the cluster reaches Ray's dashboard, GCS and client "
                "ports. Set servestack:security.network_policies: true",
                urn,
            )
        for policy in present:
            name = as_mapping(policy.props.get("metadata")).get("name")
            for index in _open_peers(as_mapping(policy.props.get("spec"))):
                yield (
                    f"NetworkPolicy {name!r} spec.ingress[{index}] admits every pod of the "
                    "cluster; name the peers (servestack:security.serve_clients)",
                    policy.urn,
                )
