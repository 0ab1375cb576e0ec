"""App specs + stack overrides → the multi-application Serve config (`serveConfigV2`).

The same document is deployed to a local Ray through the dashboard REST API and carried
by the RayService, so it is validated with Ray's own `ServeDeploySchema` every time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml
from pydantic import ValidationError

from apps.ingress import CALLBACK, CALLBACK_ENV, INGRESS_ENV, IngressRuntime
from apps.spec import ApplicationSpec
from infra.config import ServeOptions, StackConfig


class ServeConfigError(ValueError):
    """Ray's schema rejected the generated Serve config: a servestack bug or unsupported value."""


def application_entry(app: ApplicationSpec) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": app.name,
        "import_path": app.import_path,
        "route_prefix": app.route_prefix,
        "deployments": [dep.serve_options() for dep in app.deployments],
    }
    if app.runtime_env.env_vars:
        entry["runtime_env"] = {"env_vars": dict(app.runtime_env.env_vars)}
    return entry


def build_serve_config(apps: Iterable[ApplicationSpec], serve: ServeOptions) -> dict[str, Any]:
    """The Serve config as a plain dict, validated by `ServeDeploySchema`."""
    http: dict[str, Any] = serve.http.model_dump(exclude_none=True)  # Ray's own keys only
    document: dict[str, Any] = {
        "proxy_location": serve.proxy_location,
        "http_options": http,
        "applications": [application_entry(app) for app in sorted(apps, key=lambda a: a.name)],
    }
    validate_serve_config(document)
    return document


def ingress_environment(apps: Iterable[ApplicationSpec], serve: ServeOptions) -> dict[str, str]:
    """Env of every Ray process that may run Serve's proxy: Ray calls apps.ingress in it,
    with the stack's `serve.ingress` and the apps' idempotent paths."""
    runtime = IngressRuntime(
        settings=serve.ingress,
        idempotent_paths=tuple(sorted(url for app in apps for url in app.idempotent_urls())),
    )
    return {CALLBACK_ENV: CALLBACK, INGRESS_ENV: runtime.model_dump_json()}


def serve_config_for(stack: StackConfig) -> dict[str, Any]:
    return build_serve_config(stack.applications, stack.serve)


def validate_serve_config(document: dict[str, Any]) -> None:
    from ray.serve.schema import ServeDeploySchema  # heavy import, only when validating

    try:
        ServeDeploySchema.model_validate(document)
    except ValidationError as error:
        message = f"Ray's ServeDeploySchema rejected the Serve config:\n{error}"
        raise ServeConfigError(message) from None


def to_yaml(document: dict[str, Any]) -> str:
    """Deterministic YAML: sorted keys, block style, so diffs show only real change."""
    return yaml.safe_dump(document, sort_keys=True, default_flow_style=False, width=100)
