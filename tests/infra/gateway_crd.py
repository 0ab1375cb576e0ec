"""The Gateway API v1.6.1 CRD schemas, applied the way the API server applies them.

Structural schema first (nulls dropped, defaults filled, unknown fields reported, as for the
KubeRay CRDs), then every `x-kubernetes-validations` CEL rule on the path of the object,
evaluated with cel-python. Transition rules (those reading `oldSelf`) need a previous object
and are skipped; every rule of the standard CRDs compiles under cel-python.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml

from infra.config import REPO_ROOT
from infra.gateway_api_crds import PLURALS
from tests.infra.kuberay_crd import admit, pruned_fields


def crds_dir() -> Path:
    default = REPO_ROOT.parent / "shared" / "gateway-api" / "crds"
    return Path(os.environ.get("GATEWAY_API_CRDS_DIR", default))


@cache
def schema_of(kind: str, version: str) -> dict[str, Any]:
    path = crds_dir() / f"gateway.networking.k8s.io_{PLURALS[kind]}.yaml"
    document = yaml.safe_load(path.read_text())
    served = next(v for v in document["spec"]["versions"] if v["name"] == version)
    schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
    return schema


_ENV = celpy.Environment()


@cache
def _program(rule: str) -> Any:
    return _ENV.program(_ENV.compile(rule))


def cel_failures(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Every CEL rule on the value's path that does not hold, as `path: message`."""
    found: list[str] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        if "oldSelf" in rule["rule"]:
            continue
        result = _program(rule["rule"]).evaluate({"self": celpy.json_to_cel(value)})
        if result is not True and not (isinstance(result, celpy.celtypes.BoolType) and result):
            found.append(f"{path or '<root>'}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, item in value.items():
            if key in properties:
                found += cel_failures(properties[key], item, f"{path}.{key}".lstrip("."))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += cel_failures(schema.get("items") or {}, item, f"{path}[{index}]")
    return found


def validate_gateway_object(manifest: dict[str, Any]) -> dict[str, Any]:
    """Raise if the API server would reject the object, drop part of it, or fail a CEL rule."""
    version = manifest["apiVersion"].rsplit("/", 1)[1]
    schema = schema_of(manifest["kind"], version)
    admitted = admit(schema, manifest)
    jsonschema.Draft7Validator(schema).validate(admitted)
    dropped = pruned_fields(schema, admitted)
    if dropped:
        raise AssertionError(f"fields unknown to the {manifest['kind']} CRD (pruned): {dropped}")
    failures = cel_failures(schema, admitted)
    if failures:
        raise AssertionError(f"{manifest['kind']} fails CEL rules: {failures}")
    return admitted
