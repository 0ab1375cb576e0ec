"""The Pulumi program: validate the whole stack, then build cluster → operator → RayService.

Every check (stack config, backend, secrets, capacity plan, Serve schema) runs before the
first resource is registered, so a bad stack fails with field paths and fixes and leaves the
state untouched. The checks raise `pulumi.RunError`, which Pulumi prints without a traceback.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi.runtime.config as runtime_config

from infra.capacity import CapacityError, CapacityPlan, plan_capacity
from infra.clusters.base import (
    BackendUnavailableError,
    ClusterBackend,
    backend_for,
    provision_cluster,
)
from infra.clusters.existing import KUBECONFIG_KEY
from infra.config import (
    PROJECT,
    ExistingCluster,
    GcsFaultTolerance,
    StackConfig,
    StackConfigError,
    parse_stack_config,
)
from infra.kuberay import KubeRayOperator, KubeRayOperatorArgs
from infra.namespace import workload_namespace
from infra.network_policies import NetworkPolicies, NetworkPoliciesArgs
from infra.observability import Observability, ObservabilityArgs, operator_scrape_annotations
from infra.rayservice import RayService, RayServiceArgs
from infra.rayservice import check as check_rayservice
from infra.serve_config import ServeConfigError, serve_config_for

_PREFIX = f"{PROJECT}:"
_DEFAULT_PASSWORD_KEY = str(GcsFaultTolerance.model_fields["password_secret_key"].default)


def configured_keys() -> dict[str, bool]:
    """Every `servestack:` key the engine passed (prefix stripped) → whether it is secret."""
    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret = set(runtime_config.get_config_secret_keys_env())
    return {
        key.removeprefix(_PREFIX): runtime_config.is_config_secret(key) or key in secret
        for key in sorted(values) if key.startswith(_PREFIX)
    }


def _password_key(raw: dict[str, Any]) -> str:
    rayservice = raw.get("rayservice")
    ft = rayservice.get("gcs_fault_tolerance") if isinstance(rayservice, dict) else None
    key = ft.get("password_secret_key") if isinstance(ft, dict) else None
    return key if isinstance(key, str) else _DEFAULT_PASSWORD_KEY


def read_stack_config(stack_name: str, config: pulumi.Config) -> StackConfig:
    """Every StackConfig field from Pulumi config, plus any unknown key so it is reported."""
    raw: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key, field in StackConfig.model_fields.items():
        if key == "stack":
            continue
        if field.annotation is str:
            value: Any = config.get(key)
        else:
            try:
                value = config.get_object(key)
            except (pulumi.ConfigTypeError, json.JSONDecodeError):
                problems.append((key, f"expected a YAML mapping or list, got {config.get(key)!r}"))
                continue
        if value is not None:
            raw[key] = value
    if problems:
        raise StackConfigError(stack_name, problems)
    secrets = {KUBECONFIG_KEY, _password_key(raw)}
    for key in configured_keys():
        if key not in raw and key not in StackConfig.model_fields and key not in secrets:
            raw[key] = config.get(key)  # StackConfig forbids it, naming the key
    return parse_stack_config(stack_name, raw)


def required_secrets(stack: StackConfig) -> dict[str, str]:
    """Secret config keys this stack needs → what they hold (for the error and the docs)."""
    needed = {}
    cluster = stack.cluster
    if isinstance(cluster, ExistingCluster) and cluster.kubeconfig_from == "secret":
        needed[KUBECONFIG_KEY] = "the kubeconfig of the existing cluster"
    ft = stack.rayservice.gcs_fault_tolerance
    if ft.enabled:
        needed[ft.password_secret_key] = "the password of the GCS fault-tolerance Redis"
    return needed


def check_secrets(stack: StackConfig) -> list[tuple[str, str]]:
    present = configured_keys()
    problems = []
    for key, meaning in required_secrets(stack).items():
        if key not in present:
            problems.append((key, f"missing: {meaning}; set it with "
                                  f"`pulumi config set --secret {_PREFIX}{key} <value>`"))
        elif not present[key]:
            pulumi.log.warn(f"{_PREFIX}{key} is stored in plain text; re-set it with "
                            f"`pulumi config set --secret {_PREFIX}{key} <value>`")
    return problems


def validate(stack_name: str) -> tuple[StackConfig, CapacityPlan, dict[str, Any], ClusterBackend]:
    """Everything that can fail on the stack's content, before any resource is registered.

    Once the config parses, backend, secret and capacity problems are reported together.
    """
    try:
        stack = read_stack_config(stack_name, pulumi.Config(PROJECT))
        backend = backend_for(stack)
    except (StackConfigError, BackendUnavailableError) as error:
        raise pulumi.RunError(str(error)) from None
    failures: list[str] = []
    problems = backend.check(stack) + check_rayservice(stack) + check_secrets(stack)
    if problems:
        failures.append(str(StackConfigError(stack_name, problems)))
    try:
        plan = plan_capacity(stack)
    except CapacityError as error:
        failures.append(str(error))
    if failures:
        raise pulumi.RunError("\n".join(failures))
    try:
        serve_config = serve_config_for(stack)
    except ServeConfigError as error:
        raise pulumi.RunError(str(error)) from None
    return stack, plan, serve_config, backend


def deploy(stack: StackConfig, plan: CapacityPlan, serve_config: dict[str, Any],
           backend: ClusterBackend) -> None:
    cluster = provision_cluster(stack, backend)
    namespace = workload_namespace(stack, pulumi.ResourceOptions(
        provider=cluster.provider, depends_on=list(cluster.ready)))
    operator = KubeRayOperator(
        "kuberay",
        KubeRayOperatorArgs(stack.kuberay, stack.namespace, plan.head_node_selector,
                            operator_scrape_annotations(stack)),
        opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[namespace]),
    )
    ft = stack.rayservice.gcs_fault_tolerance
    password = pulumi.Config(PROJECT).require_secret(ft.password_secret_key) if ft.enabled else None
    service = RayService(
        stack.rayservice.name,
        RayServiceArgs(stack=stack, plan=plan, serve_config=serve_config, redis_password=password),
        opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[operator, namespace]),
    )
    NetworkPolicies("network-policies", NetworkPoliciesArgs(stack), opts=pulumi.ResourceOptions(
        providers=[cluster.provider], depends_on=[namespace]))
    observability = Observability(
        "observability", ObservabilityArgs(stack, plan),
        opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[namespace]),
    )
    for warning in plan.warnings:
        pulumi.log.warn(warning)
    pulumi.export("namespace", namespace.metadata.name)
    pulumi.export("rayService", service.name)
    pulumi.export("serveService", service.serve_service)
    pulumi.export("serveEndpoint", service.serve_endpoint)
    if cluster.kubeconfig is not None:
        pulumi.export("kubeconfig", cluster.kubeconfig)
    if observability.grafana is not None:
        pulumi.export("grafana", observability.grafana)
    pulumi.export("capacityPlan", plan.to_output())
    pulumi.export("serveConfig", serve_config)


def run() -> None:
    """What `pulumi up` runs for the selected stack."""
    deploy(*validate(pulumi.get_stack()))
