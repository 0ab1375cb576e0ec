"""The KubeRay v1.7.0 RayService CRD schema, applied the way the API server applies it.

Before validating, the API server prunes nulls on non-nullable fields and fills schema
defaults (minReplicas/maxReplicas are required but defaulted); Pulumi's wire form also turns
every number into a float, which JSON (and so the API server) would send as an integer.
"""

from __future__ import annotations

import copy
import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from infra.config import REPO_ROOT

CRD_FILE = "ray.io_rayservices.yaml"


def crds_dir() -> Path:
    default = REPO_ROOT.parent / "shared" / "kuberay" / "crds"
    return Path(os.environ.get("KUBERAY_CRDS_DIR", default))


@cache
def rayservice_schema() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster on 1 MB
    document = yaml.load((crds_dir() / CRD_FILE).read_text(), Loader=loader)
    version = next(v for v in document["spec"]["versions"] if v["name"] == "v1")
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def from_wire(value: Any) -> Any:
    """Integral floats back to ints, as the provider's JSON encoding sends them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: from_wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_wire(item) for item in value]
    return value


def admit(schema: dict[str, Any], value: Any) -> Any:
    """Drop nulls on non-nullable fields and fill defaults, recursively (structural schema)."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else {})
            if item is None and not sub.get("nullable"):
                continue
            out[key] = admit(sub, item)
        for key, sub in properties.items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
        return out
    if isinstance(value, list):
        return [admit(schema.get("items") or {}, item) for item in value]
    return value


def pruned_fields(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Fields the API server would silently drop (unknown to the structural schema): a typo
    there is accepted and ignored, so it must be caught here."""
    found: list[str] = []
    if isinstance(value, dict) and not schema.get("x-kubernetes-preserve-unknown-fields"):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if properties is not None and key in properties:
                found += pruned_fields(properties[key], item, where)
            elif isinstance(extra, dict):
                found += pruned_fields(extra, item, where)
            elif properties is not None or extra is False:
                found.append(where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += pruned_fields(schema.get("items") or {}, item, f"{path}[{index}]")
    return found


def validate_rayservice(manifest: dict[str, Any]) -> dict[str, Any]:
    """Raise if the API server would reject the RayService or silently drop part of it."""
    schema = rayservice_schema()
    admitted = admit(schema, from_wire(manifest))
    jsonschema.Draft7Validator(schema).validate(admitted)
    dropped = pruned_fields(schema, admitted)
    if dropped:
        raise AssertionError(f"fields unknown to the RayService CRD (pruned): {dropped}")
    return admitted


# Fields whose value is a Kubernetes core type (pod template, resources, security context,
# volume mounts, an env var source): any operator version takes what Kubernetes takes there.
CORE_TYPED = frozenset({"template", "resources", "securityContext", "volumeMounts", "valueFrom"})


def kuberay_fields(schema: dict[str, Any], value: Any, path: str = "") -> set[str]:
    """The CRD fields a RayService sets, as `spec.a.b` (`[]` for list items), down to core
    Kubernetes types and free-form maps (rayStartParams, labels), which count as one field."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= kuberay_fields(schema.get("items") or {}, item, f"{path}[]")
        return found
    properties = schema.get("properties")
    if not isinstance(value, dict) or properties is None:
        return found
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        found.add(where)
        if key not in CORE_TYPED and where != "metadata" and key in properties:
            found |= kuberay_fields(properties[key], item, where)
    return found


def schema_has(schema: dict[str, Any], field: str) -> bool:
    """Whether a CRD schema declares `field` (a `kuberay_fields` path)."""
    node: dict[str, Any] = schema
    for part in field.split("."):
        key, lists = part.removesuffix("[]"), part.endswith("[]")
        properties = node.get("properties") or {}
        if key not in properties:
            return False
        node = properties[key]
        if lists:
            node = node.get("items") or {}
    return True
