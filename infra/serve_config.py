"""App specs + stack overrides → the multi-application Serve config (`serveConfigV2`).

The same document is deployed to a local Ray through the dashboard REST API and carried
by the RayService, so it is validated with Ray's own `ServeDeploySchema` every time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from apps.spec import ApplicationSpec, DeploymentSpec
from infra.capacity import worker_group_of
from infra.config import ServeOptions, StackConfig
from infra.names import worker_group_selector
from infra.ray_answers import remembered


class ServeConfigError(ValueError):
    """Ray's schema rejected the generated Serve config: a servestack bug or unsupported value."""


Selectors = Mapping[tuple[str, str], Mapping[str, str]]
"""(application, deployment) → the label selector of its replicas."""


def worker_group_selectors(apps: Iterable[ApplicationSpec]) -> dict[tuple[str, str],
                                                                     dict[str, str]]:
    """The label selector that keeps each deployment's replicas on the worker group the
    capacity plan sized for them, where their resources alone would not.

    Ray only *prefers* non-GPU nodes for CPU work: a CPU replica without a selector takes a
    GPU node's spare CPUs, and the GPU replica that needed them makes the autoscaler launch
    another GPU node (the prod rehearsal). So every CPU deployment selects its group. A GPU
    deployment's GPU (and accelerator type) demand already keeps it on the only GPU group of
    a stack; it selects its group only when several GPU groups could hold it. A selector has
    a price: Serve 2.60 runs an application's build task on the nodes its deployments'
    common selector names (`application_state._get_shared_build_app_label_selector`), so a
    selector on dev's classifier would launch a GPU node from zero on every deploy."""
    apps = list(apps)
    gpu_groups = {worker_group_of(dep) for app in apps for dep in app.deployments
                  if dep.resources.is_gpu}
    return {(app.name, dep.name): worker_group_selector(worker_group_of(dep))
            for app in apps for dep in app.deployments
            if not dep.resources.is_gpu or len(gpu_groups) > 1}


def deployment_entry(dep: DeploymentSpec, label_selector: Mapping[str, str] | None
                     ) -> dict[str, Any]:
    """A deployment's Serve config entry, with its replicas' label selector if any."""
    options = dep.serve_options()
    if label_selector:
        options["ray_actor_options"]["label_selector"] = dict(label_selector)
    return options


def application_entry(app: ApplicationSpec, selectors: Selectors | None = None
                      ) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": app.name,
        "import_path": app.import_path,
        "route_prefix": app.route_prefix,
        "deployments": [deployment_entry(dep, (selectors or {}).get((app.name, dep.name)))
                        for dep in app.deployments],
    }
    env = app.env_vars()
    if env:
        entry["runtime_env"] = {"env_vars": env}
    return entry


def build_serve_config(apps: Iterable[ApplicationSpec], serve: ServeOptions,
                       selectors: Selectors | None = None) -> dict[str, Any]:
    """The Serve config as a plain dict, validated by `ServeDeploySchema`.

    A stack's config (`serve_config_for`) keeps replicas on their worker groups by label
    selectors; without them it runs on any Ray node (the test harnesses' one plain node)."""
    http: dict[str, Any] = serve.http.model_dump(exclude_none=True)  # Ray's own keys only
    document: dict[str, Any] = {
        "proxy_location": serve.proxy_location,
        "http_options": http,
        "applications": [application_entry(app, selectors)
                         for app in sorted(apps, key=lambda a: a.name)],
    }
    validate_serve_config(document)
    return document


def serve_config_for(stack: StackConfig) -> dict[str, Any]:
    """What the RayService carries and `servestack serve` deploys: replicas on their groups."""
    return build_serve_config(stack.applications, stack.serve,
                              worker_group_selectors(stack.applications))


@remembered
def validate_serve_config(document: dict[str, Any]) -> None:
    """Ray's ServeDeploySchema accepts the document (remembered: an acceptance is pure)."""
    from ray.serve.schema import ServeDeploySchema  # heavy import, only when validating

    try:
        ServeDeploySchema.model_validate(document)
    except ValidationError as error:
        message = f"Ray's ServeDeploySchema rejected the Serve config:\n{error}"
        raise ServeConfigError(message) from None


def to_yaml(document: dict[str, Any]) -> str:
    """Deterministic YAML: sorted keys, block style, so diffs show only real change."""
    return yaml.safe_dump(document, sort_keys=True, default_flow_style=False, width=100)
