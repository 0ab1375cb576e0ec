"""The Pulumi program: validate the whole stack, then build cluster → operator → RayService.

Every check (stack config, backend, secrets, capacity plan, Serve schema: `validate_stack`,
the same function every offline command calls) runs before the first resource is registered,
so a bad stack fails with field paths and fixes and leaves the state untouched. A refusal is
a `pulumi.RunError`, which Pulumi prints without a traceback.
"""

from __future__ import annotations

import pulumi

from infra.clusters.base import (
    BackendUnavailableError,
    ClusterBackend,
    backend_for,
    provision_cluster,
)
from infra.config import PROJECT, StackConfigError
from infra.cost import estimate_cost
from infra.gateway import FrontDoor, GatewayArgs
from infra.gateway_api_crds import gateway_api_crds
from infra.kuberay import KubeRayOperator, KubeRayOperatorArgs
from infra.model_access import uses_model_sources
from infra.model_access_resources import ModelAccess, ModelAccessArgs
from infra.namespace import workload_namespace
from infra.network_policies import NetworkPolicies, NetworkPoliciesArgs
from infra.observability import Observability, ObservabilityArgs, operator_scrape_annotations
from infra.rayservice import RayService, RayServiceArgs
from infra.stack_reading import source_from_pulumi_config
from infra.upgrade_plan import upgrade_plan
from infra.validation import ValidStack, validate_stack


class StackRefused(pulumi.RunError):
    """The stack is invalid; Pulumi prints a RunError without a traceback. `problems` keeps
    the (field path, message) pairs for callers that run the program offline."""

    def __init__(self, message: str, problems: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


def validate(stack_name: str) -> tuple[ValidStack, ClusterBackend]:
    """Everything that can fail on the stack's content, before any resource is registered:
    `validate_stack` (the same function every offline command calls), then whether the
    backend's cloud SDK is installed."""
    try:
        valid = validate_stack(source_from_pulumi_config(stack_name, pulumi.Config(PROJECT)))
    except StackConfigError as error:
        raise StackRefused(str(error), tuple(error.problems)) from None
    try:
        backend = backend_for(valid.stack)
    except BackendUnavailableError as error:
        raise StackRefused(str(error)) from None
    for warning in valid.warnings:
        pulumi.log.warn(warning)
    return valid, backend


def deploy(valid: ValidStack, backend: ClusterBackend) -> None:
    stack, plan, serve_config = valid.stack, valid.plan, valid.serve_config
    cluster = provision_cluster(stack, backend)
    namespace = workload_namespace(stack, pulumi.ResourceOptions(
        provider=cluster.provider, depends_on=list(cluster.ready)))
    # Without `kuberay.install` the cluster's own operator serves the RayService: nothing of
    # it (release, CRDs, even a read of them) is the stack's to register, change or delete.
    operator: list[pulumi.Resource] = []  # the component, for depends_on
    operator_parts: list[pulumi.Resource] = []  # what the RayService object must outlive
    if stack.kuberay.install:
        installed = KubeRayOperator(
            "kuberay",
            KubeRayOperatorArgs(stack.kuberay, stack.namespace, plan.head.node_selector,
                                operator_scrape_annotations(stack),
                                owns_crds=not cluster.shared),
            opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[namespace]),
        )
        operator, operator_parts = [installed], [installed.release, *installed.crds]
    # Before the front door and the RayService: KubeRay's incremental upgrade creates a Gateway
    # and an HTTPRoute of its own mid-rollout.
    gateway_crds = gateway_api_crds(stack, stack.cluster.installs_gateway_api, cluster.shared,
                                    pulumi.ResourceOptions(provider=cluster.provider,
                                                           depends_on=list(cluster.ready)))
    policies = NetworkPolicies(
        "network-policies", NetworkPoliciesArgs(stack, cluster.api_server_cidrs),
        opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[namespace]))
    access: list[pulumi.Resource] = []
    if uses_model_sources(stack):
        token_key = stack.mlflow_token_key
        access.append(ModelAccess("model-access", ModelAccessArgs(
            stack, cluster.model_reader_annotations,
            pulumi.Config(PROJECT).require_secret(token_key) if token_key else None,
        ), opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[namespace])))
    ft = stack.rayservice.gcs_fault_tolerance
    password = pulumi.Config(PROJECT).require_secret(ft.password_secret_key) if ft.enabled else None
    service = RayService(
        stack.rayservice.name,
        RayServiceArgs(stack=stack, plan=plan, serve_config=serve_config, redis_password=password,
                       # The RayService object itself, not just its component, must be deleted
                       # before these: `destroy` then cannot remove the operator while a
                       # RayCluster still waits on its Redis-cleanup finalizer.
                       outlived_by=(*operator_parts, *policies.policies)),
        opts=pulumi.ResourceOptions(providers=[cluster.provider],
                                    depends_on=[*operator, namespace, policies, *access,
                                                *gateway_crds]),
    )
    if stack.gateway.enabled:
        FrontDoor("gateway", GatewayArgs(stack), opts=pulumi.ResourceOptions(
            providers=[cluster.provider], depends_on=[namespace, policies, *gateway_crds]))
    observability = Observability(
        "observability", ObservabilityArgs(stack, plan),
        opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[namespace]),
    )
    pulumi.export("namespace", namespace.metadata.name)
    pulumi.export("rayService", service.name)
    pulumi.export("serveService", service.serve_service)
    pulumi.export("serveEndpoint", service.serve_endpoint)
    if cluster.kubeconfig is not None:
        pulumi.export("kubeconfig", cluster.kubeconfig)
    if observability.grafana is not None:
        pulumi.export("grafana", observability.grafana)
    pulumi.export("capacityPlan", plan.to_output())
    pulumi.export("upgradePlan", upgrade_plan(stack, plan).to_output())
    pulumi.export("costEstimate", estimate_cost(stack, plan).to_output())
    pulumi.export("serveConfig", serve_config)


def run() -> None:
    """What `pulumi up` runs for the selected stack."""
    deploy(*validate(pulumi.get_stack()))
