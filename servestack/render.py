"""What a stack would apply, as files: one YAML per resource, deterministic, secrets masked.

The program runs under Pulumi mocks (servestack.offline) and every registration becomes a file:
Kubernetes objects as manifests built from their registered inputs, everything else (cloud
clusters, node pools, Helm releases, commands, components) as a description of its inputs.
Next to them: the Serve config the RayService carries, the capacity plan and its cost, and the
Pods the KubeRay operator will create from each group template (for scanners such as checkov).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from infra.pod_preview import RAYSERVICE_TYPE, as_mapping, plain, preview_pods
from infra.stack_file import stack_name
from policies.stack_context import stack_config_from_pulumi
from servestack.offline import InvalidStackError, ProgramRun, RegisteredResource, run_stack_file

if TYPE_CHECKING:
    from servestack.policy_check import CheckReport

SECRET = "[secret]"
INDEX = "index.yaml"
CAPACITY_PLAN = "capacity-plan.yaml"
COST_ESTIMATE = "cost-estimate.yaml"
UPGRADE_PLAN = "upgrade-plan.yaml"
KUBERNETES_DIR = "kubernetes"
RESOURCES_DIR = "resources"
SERVE_CONFIG_DIR = "serve-config"
PREVIEW_PODS_DIR = "preview-pods"
POLICY_REPORT = "policy-report.yaml"

_KUBERNETES_TYPE = re.compile(r"^kubernetes:(?P<group>[\w.\-]+)/(?P<version>\w+):(?P<kind>\w+)$")
_NOT_OBJECTS = ("helm.sh", "yaml", "kustomize")  # kubernetes:* types that are not one object
_SECRET_KINDS = ("Secret",)


class RenderError(ValueError):
    """The output directory cannot be written safely."""


def is_kubernetes_object(resource_type: str) -> bool:
    match = _KUBERNETES_TYPE.match(resource_type)
    return bool(match) and match is not None and match["group"] not in _NOT_OBJECTS


def wire_numbers(value: Any) -> Any:
    """Integral floats as ints: the mocks hand numbers over as floats, the engine sends 1000."""
    if isinstance(value, Mapping):
        return {str(k): wire_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [wire_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _masked_inputs(resource: RegisteredResource, per_key: tuple[str, ...] = ()) -> dict[str, Any]:
    """Inputs with every secret value replaced; `per_key` fields keep their keys visible."""
    inputs: dict[str, Any] = wire_numbers(plain(resource.inputs))
    for field in per_key:
        if isinstance(inputs.get(field), Mapping):
            inputs[field] = dict.fromkeys(inputs[field], SECRET)
    for key in resource.secret_inputs:
        if key in inputs and key not in per_key:
            inputs[key] = SECRET
    return inputs


def manifest(resource: RegisteredResource) -> dict[str, Any]:
    """A Kubernetes object as `kubectl apply` would read it, from its registered inputs."""
    match = _KUBERNETES_TYPE.match(resource.type)
    assert match is not None
    group, version, kind = match["group"], match["version"], match["kind"]
    secret_fields = ("data", "stringData") if kind in _SECRET_KINDS else ()
    body = _masked_inputs(resource, secret_fields)
    body.setdefault("apiVersion", version if group == "core" else f"{group}/{version}")
    body.setdefault("kind", kind)
    metadata = body.setdefault("metadata", {})
    metadata.setdefault("name", resource.name)  # Pulumi would auto-name it from this
    return body


def description(resource: RegisteredResource) -> dict[str, Any]:
    """Anything that is not a Kubernetes object: what Pulumi is asked to create, and how."""
    options = resource.options
    pulumi: dict[str, Any] = {
        "type": resource.type,
        "name": resource.name,
        "urn": resource.urn,
        "parent": resource.parent,
        "component": not resource.custom,
    }
    flags = {
        # Sorted: their order means nothing to Pulumi and varies between program runs.
        "depends_on": sorted(options.depends_on),
        "ignore_changes": sorted(options.ignore_changes),
        "replace_on_changes": sorted(options.replace_on_changes),
        "custom_timeouts": dict(options.custom_timeouts),
        "protect": options.protect,
        "retain_on_delete": options.retain_on_delete,
        "delete_before_replace": options.delete_before_replace,
    }
    pulumi["options"] = {k: v for k, v in flags.items() if v}
    return {"pulumi": pulumi, "inputs": _masked_inputs(resource)}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _unique(path: str, taken: set[str], fallback: str) -> str:
    if path not in taken:
        return path
    stem = path.removesuffix(".yaml")
    return f"{stem}.{_slug(fallback)}.yaml"


def render_documents(run: ProgramRun) -> dict[str, Any]:
    """Relative path → document for every file of one stack's render."""
    files: dict[str, Any] = {}
    index: list[dict[str, str]] = []
    for resource in sorted(run.resources, key=lambda r: r.urn):
        if is_kubernetes_object(resource.type):
            document = manifest(resource)
            meta = as_mapping(document.get("metadata"))
            name = f"{str(document['kind']).lower()}.{meta.get('name')}.yaml"
            path = _unique(f"{KUBERNETES_DIR}/{_slug(name)}", set(files), resource.urn)
        else:
            document = description(resource)
            name = f"{resource.type}.{resource.name}.yaml"
            path = _unique(f"{RESOURCES_DIR}/{_slug(name)}", set(files), resource.urn)
        files[path] = document
        index.append({"urn": resource.urn, "type": resource.type, "name": resource.name,
                      "file": path})
        if resource.type == RAYSERVICE_TYPE:
            files.update(_rayservice_extras(resource, document))
    plan = run.outputs.get("capacityPlan")
    if plan is not None:
        files[CAPACITY_PLAN] = wire_numbers(plain(plan))
    for output, file in (("costEstimate", COST_ESTIMATE), ("upgradePlan", UPGRADE_PLAN)):
        value = run.outputs.get(output)
        if value is not None:
            files[file] = wire_numbers(plain(value))
    files[INDEX] = {"stack": run.stack, "resources": index, "warnings": list(run.warnings)}
    return files


def _rayservice_extras(resource: RegisteredResource, document: Mapping[str, Any]) -> dict[str, Any]:
    files: dict[str, Any] = {}
    name = _slug(str(as_mapping(document.get("metadata")).get("name") or resource.name))
    raw = as_mapping(document.get("spec")).get("serveConfigV2")
    if isinstance(raw, str):
        files[f"{SERVE_CONFIG_DIR}/{name}.yaml"] = yaml.safe_load(raw)
    for pod in preview_pods(resource.type, document, resource.name):
        files[f"{PREVIEW_PODS_DIR}/{_slug(pod['metadata']['name'])}.yaml"] = pod
    return files


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """No aliases; multi-line strings (the Serve config, dashboards, scripts) as literal
    blocks, so a render and its diff read line by line. libyaml's emitter where PyYAML has
    it: several times faster than the pure-Python one, and the same text."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None  # the emitter quotes one it cannot write as a block
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _string)


def dump(document: Any) -> str:
    """Deterministic YAML: sorted keys, block style, no aliases."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                     width=100, allow_unicode=True)


def write_documents(files: Mapping[str, Any], stack_dir: Path) -> list[Path]:
    """Replace `stack_dir` with these files; refuses to clear a directory it did not render."""
    if stack_dir.exists():
        if any(stack_dir.iterdir()) and not (stack_dir / INDEX).is_file():
            raise RenderError(
                f"{stack_dir} exists and is not a servestack render (no {INDEX}); "
                "choose another --out directory"
            )
        shutil.rmtree(stack_dir)
    written = []
    for relative in sorted(files):
        path = stack_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(files[relative]))
        written.append(path)
    return written


def policy_report_document(report: CheckReport) -> dict[str, Any]:
    return {
        "stack": report.stack,
        "environment": report.environment,
        "passed": report.passed,
        "levels": {name: level.value for name, level in report.levels.items()},
        "violations": [
            {"policy": v.policy, "level": v.level.value, "message": v.message,
             "resource": f"{v.resource_type}: {v.resource_name}" if v.resource_type else None}
            for v in report.violations
        ],
    }


@dataclass(frozen=True)
class StackRender:
    files: list[Path]
    warnings: tuple[str, ...]  # what the program warned about; also in index.yaml
    absent_secrets: tuple[str, ...] = ()  # filled with placeholders: `pulumi up` needs them


def render_stack_file(path: Path, out_dir: Path, stack: str | None = None,
                      with_policies: bool = False) -> StackRender:
    """Run the program for a stack file and write its render under `out_dir/<stack>/`.

    Raises InvalidStackError when the program stops on the stack's config (nothing rendered),
    StackFileError when the file is not YAML.
    """
    name = stack or stack_name(path)
    run = run_stack_file(path, name)
    if run.error is not None:
        raise InvalidStackError(run.error) from run.error
    files = render_documents(run)
    if with_policies:
        from servestack.policy_check import evaluate, subjects_of  # Pulumi's policy SDK

        report = evaluate(name, subjects_of(run), stack_config_from_pulumi)
        files[POLICY_REPORT] = policy_report_document(report)
    return StackRender(write_documents(files, out_dir / name), run.warnings, run.absent_secrets)
