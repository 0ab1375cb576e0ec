"""Settings that each pass alone but contradict each other, refused naming both fields.

Each would otherwise surface only in the running pod: a process that cannot bind its
port, an ingress that answers 413 to a body the app promised to take, a Namespace
registered twice.
"""

from __future__ import annotations

from apps.spec import REQUEST_LIMIT_FIELD
from infra.config import PROJECT, StackConfig
from infra.field_paths import deployment_path
from infra.pod_ports import port_collisions

BODY_LIMIT_PATH = "serve.ingress.max_body_bytes"


def contradiction_problems(stack: StackConfig) -> list[tuple[str, str]]:
    return [*port_collisions(stack), *_body_limits(stack), *_namespaces(stack)]


def _body_limits(stack: StackConfig) -> list[tuple[str, str]]:
    """The ingress cuts bodies off before any app sees them: its limit must hold each app's."""
    ingress = int(stack.serve.ingress.max_body_bytes)
    problems = []
    for app in stack.applications:
        for dep in app.deployments:
            limit = dep.user_config.request_limit() if dep.user_config is not None else None
            if limit is not None and limit > ingress:
                problems.append((
                    deployment_path(app.name, dep.name, f"user_config.{REQUEST_LIMIT_FIELD}"),
                    f"{limit} bytes, above {PROJECT}:{BODY_LIMIT_PATH} ({ingress}): the ingress "
                    f"would answer 413 to bodies the app promises to take; raise "
                    f"{BODY_LIMIT_PATH} or lower {REQUEST_LIMIT_FIELD}",
                ))
    return problems


def _namespaces(stack: StackConfig) -> list[tuple[str, str]]:
    """kube-prometheus-stack gets a Namespace of its own; the stack's is registered too."""
    obs = stack.observability
    if not obs.install_kube_prometheus_stack or obs.monitoring_namespace != stack.namespace:
        return []
    return [("observability.monitoring_namespace",
             f"is {PROJECT}:namespace ({stack.namespace!r}) too: installing kube-prometheus-stack "
             "creates its own Namespace, and one namespace cannot be created twice (nor hold "
             "both the metrics and the only pods allowed to scrape them); choose another")]
