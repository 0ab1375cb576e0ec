"""From the RayService `pulumi up` would apply to the config Ray's fake multi-node autoscaler runs.

The RayService comes from the real program under Pulumi mocks (servestack.offline), or from
a manifest file. Its `rayClusterConfig` goes through Ray's own KubeRay translation
(infra.autoscaler_fit.autoscaling_config), and only what a local run must change is changed:
the provider (fake nodes instead of pods), the head type's name (the fake provider's) and the
idle timeout when the caller asks for a shorter one. Node types, their resources and their
min/max are Ray's translation, untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.autoscaler_fit import (
    HEAD_NODE_TYPE,
    NodeType,
    autoscaling_config,
    node_types,
    raycluster_document,
)
from infra.pod_preview import RAYSERVICE_TYPE
from infra.ray_internals import FAKE_HEAD_NODE_TYPE

PROVIDER_MODULE = "servestack.rehearse.provider.MemoryAwareFakeProvider"


class RayServiceError(ValueError):
    """The RayService document cannot be rehearsed; the message says which field is wrong."""


@dataclass(frozen=True)
class RehearsalTarget:
    """The RayService being rehearsed and what Ray derives from it."""

    source: str  # where it came from: `stack dev (rendered)` or a file path
    rayservice: Mapping[str, Any]
    autoscaling: Mapping[str, Any]  # Ray's translation, unchanged

    @property
    def cluster_spec(self) -> Mapping[str, Any]:
        return _mapping(self.rayservice.get("spec"), "spec").get("rayClusterConfig") or {}

    @property
    def serve_config(self) -> dict[str, Any]:
        raw = _mapping(self.rayservice.get("spec"), "spec").get("serveConfigV2")
        if not isinstance(raw, str):
            raise RayServiceError("spec.serveConfigV2: expected the Serve config as a string")
        document = yaml.safe_load(raw)
        if not isinstance(document, dict):
            raise RayServiceError("spec.serveConfigV2: expected a YAML mapping")
        return document

    @property
    def node_types(self) -> tuple[NodeType, ...]:
        return node_types(self.autoscaling)

    @property
    def head_params(self) -> Mapping[str, str]:
        head = _mapping(self.cluster_spec.get("headGroupSpec"), "headGroupSpec")
        return {str(k): str(v) for k, v in _mapping(head.get("rayStartParams"),
                                                    "rayStartParams").items()}

    @property
    def idle_timeout_s(self) -> float:
        return float(self.autoscaling["idle_timeout_minutes"]) * 60


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RayServiceError(f"spec.rayClusterConfig.{path}: expected a mapping")
    return value


def target_from_rayservice(rayservice: Mapping[str, Any], source: str) -> RehearsalTarget:
    if rayservice.get("kind") != "RayService":
        raise RayServiceError(f"{source}: kind is {rayservice.get('kind')!r}, not RayService")
    metadata = _mapping(rayservice.get("metadata"), "metadata")
    cluster = _mapping(rayservice.get("spec"), "spec").get("rayClusterConfig")
    if not isinstance(cluster, Mapping):
        raise RayServiceError(f"{source}: spec.rayClusterConfig is missing")
    document = raycluster_document(str(metadata.get("name", "rehearsal")),
                                   str(metadata.get("namespace", "default")), cluster)
    try:
        config = autoscaling_config(document)
    except (KeyError, ValueError, AssertionError) as error:
        raise RayServiceError(
            f"{source}: Ray's KubeRay translation rejects spec.rayClusterConfig: {error}"
        ) from None
    return RehearsalTarget(source=source, rayservice=rayservice, autoscaling=config)


def rendered_target(stack_path: Path, stack: str) -> RehearsalTarget:
    """The RayService the real program registers for this stack file (Pulumi mocks)."""
    from servestack.offline import run_stack_file
    from servestack.render import manifest

    run = run_stack_file(stack_path, stack)
    if run.error is not None:
        raise RayServiceError(str(run.error))
    rayservice = manifest(run.one(RAYSERVICE_TYPE))
    return target_from_rayservice(rayservice, f"stack {stack} (rendered as `pulumi up` would)")


def file_target(path: Path) -> RehearsalTarget:
    if not path.is_file():
        raise RayServiceError(f"no RayService manifest at {path}")
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, Mapping)]
    except yaml.YAMLError as error:
        raise RayServiceError(f"{path}: not YAML: {error}") from None
    found = [d for d in documents if d.get("kind") == "RayService"]
    if len(found) != 1:
        raise RayServiceError(f"{path}: expected one RayService document, found {len(found)}")
    return target_from_rayservice(found[0], str(path))


def fake_cluster_config(target: RehearsalTarget, gcs_address: str,
                        idle_timeout_s: float | None = None) -> dict[str, Any]:
    """Ray's translation with the fake provider: head type renamed to the fake provider's,
    memory passed by our provider subclass, no ssh (node updaters off)."""
    config = copy.deepcopy(dict(target.autoscaling))
    types = config["available_node_types"]
    types[FAKE_HEAD_NODE_TYPE] = types.pop(HEAD_NODE_TYPE)
    config["head_node_type"] = FAKE_HEAD_NODE_TYPE
    config["provider"] = {
        "type": "external",
        "module": PROVIDER_MODULE,
        "gcs_address": gcs_address,
        "use_node_id_as_ip": True,
        "disable_node_updaters": True,
        "disable_launch_config_check": True,
    }
    config["auth"] = {}
    if idle_timeout_s is not None:
        config["idle_timeout_minutes"] = idle_timeout_s / 60
    return config
