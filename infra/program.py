"""The Pulumi program: validate the whole stack, then build cluster → operator → RayService.

Every check (stack config, backend, secrets, capacity plan, Serve schema) runs before the
first resource is registered, so a bad stack fails with field paths and fixes and leaves the
state untouched. The checks raise `pulumi.RunError`, which Pulumi prints without a traceback.
"""

from __future__ import annotations

from typing import Any

import pulumi

from infra.autoscaler_fit import PlacementError, autoscaler_placement_problems
from infra.capacity import CapacityError, CapacityPlan, plan_capacity
from infra.clusters.base import (
    BackendUnavailableError,
    ClusterBackend,
    backend_for,
    provision_cluster,
)
from infra.config import PROJECT, StackConfig, StackConfigError
from infra.kuberay import KubeRayOperator, KubeRayOperatorArgs
from infra.namespace import workload_namespace
from infra.network_policies import NetworkPolicies, NetworkPoliciesArgs
from infra.observability import Observability, ObservabilityArgs, operator_scrape_annotations
from infra.rayservice import RayService, RayServiceArgs
from infra.rayservice import check as check_rayservice
from infra.serve_config import ServeConfigError, serve_config_for
from infra.stack_reading import check_secrets, read_stack_config


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
    else:
        placement = autoscaler_placement_problems(stack, plan)
        if placement:
            failures.append(str(PlacementError(stack_name, placement)))
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
        KubeRayOperatorArgs(stack.kuberay, stack.namespace, plan.head.node_selector,
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
