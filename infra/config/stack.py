"""`StackConfig`: one stack file, parsed and validated once, before anything is built.

The sections live in their own modules (cluster, pools, kuberay, image, rayservice, serve,
observability, security, model sources); this one joins them and checks what spans them.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator

from apps.catalog import app_spec, known_apps, unknown_app_message
from apps.model_source.uri import is_remote
from apps.spec import ApplicationSpec, SpecError, SpecModel, check_unique_applications
from infra.clusters.spec import identities_granting
from infra.config.cluster import ClusterConfig
from infra.config.cost import Budget, CostConfig
from infra.config.errors import StackConfigError
from infra.config.gateway import GatewayConfig
from infra.config.image import ImageConfig
from infra.config.kuberay import KubeRayConfig
from infra.config.model_sources import MLFLOW_TOKEN_MEANING, ModelSourcesConfig
from infra.config.observability import ObservabilityConfig
from infra.config.pools import NodePool
from infra.config.rayservice import RayServiceConfig
from infra.config.security import SecurityConfig
from infra.config.serve import ServeOptions
from infra.field_types import DnsLabel
from infra.names import APP_NAME_LABEL, KUBERAY_CHART

AppOverrides = dict[str, Any]


class StackConfig(SpecModel):
    """Everything one stack file says, validated together."""

    stack: str = Field(
        pattern=r"^[a-z][a-z0-9-]*$",
        description="Stack name, as in stacks/Pulumi.<stack>.yaml; not a config key.",
    )
    namespace: DnsLabel = Field(
        "servestack",
        description="Namespace of the KubeRay operator and the RayService.",
    )
    cluster: ClusterConfig = Field(
        description="Which cluster to run on; `backend` selects the fields that apply."
    )
    pools: tuple[NodePool, ...] = Field(
        min_length=1, description="Node pools: created on kind/GKE/EKS, described for `existing`."
    )
    image: ImageConfig = Field(description="The app image (see Dockerfile).")
    kuberay: KubeRayConfig = Field(KubeRayConfig(), description="The KubeRay operator chart.")
    rayservice: RayServiceConfig = Field(
        description="The RayService; worker groups are derived, not declared."
    )
    serve: ServeOptions = Field(
        ServeOptions(), description="Serve's proxies and HTTP options (part of serveConfigV2)."
    )
    observability: ObservabilityConfig = Field(
        ObservabilityConfig(), description="Metrics, dashboards and alerts."
    )
    security: SecurityConfig = Field(
        SecurityConfig(), description="Who may reach Ray and how Ray authenticates."
    )
    gateway: GatewayConfig = Field(
        GatewayConfig(), description="A Gateway API front door for Serve, with TLS; its "
        "routes are derived from the apps.",
    )
    model_sources: ModelSourcesConfig = Field(
        ModelSourcesConfig(), description="Object stores and MLflow the apps' models come from."
    )
    budget: Budget | None = Field(
        None, description="A monthly ceiling on the node pools' cost, checked by the policy "
        "pack (docs/cost.md); null: none.",
    )
    cost: CostConfig = Field(CostConfig(), description="What the cost estimate cannot derive.")
    apps: dict[str, AppOverrides | None] = Field(
        min_length=1,
        description="Apps this stack deploys (shipped, or registered by a package: docs/apps.md) "
        "with partial overrides.",
    )

    @field_validator("apps")
    @classmethod
    def _known_apps(cls, value: dict[str, AppOverrides | None]) -> dict[str, AppOverrides | None]:
        unknown = sorted(set(value) - set(known_apps()))
        if unknown:
            raise SpecError((name, unknown_app_message(name)) for name in unknown)
        return value

    @model_validator(mode="after")
    def _pools_unique(self) -> Self:
        names = [p.name for p in self.pools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpecError([("pools", f"node pool names must be unique; repeated: {dupes}")])
        return self

    @model_validator(mode="after")
    def _operator_found(self) -> Self:
        """Without its own operator the stack needs one the cluster runs, and its address."""
        kuberay = self.kuberay
        if kuberay.install:
            return self
        if not self.cluster.shared:
            raise SpecError([("kuberay.install", f"a {self.cluster.backend} cluster is created "
                              "by this stack, so no KubeRay operator runs there but its own: "
                              "keep install true (false is for backend: existing)")])
        if self.security.network_policies and kuberay.operator_namespace is None:
            raise SpecError([("kuberay.operator_namespace", "the NetworkPolicies must let the "
                              "cluster's KubeRay operator reach the head: give the namespace "
                              f"it runs in (`kubectl get pods -A -l "
                              f"{APP_NAME_LABEL}={KUBERAY_CHART}`)")])
        return self

    @model_validator(mode="after")
    def _pool_prices(self) -> Self:
        problems = [problem for pool in self.pools for problem in pool.price_problems()]
        if problems:
            raise SpecError(problems)
        return self

    @model_validator(mode="after")
    def _egress_destinations_known(self) -> Self:
        """NetworkPolicies match addresses: every egress they allow must have one."""
        if not self.security.network_policies:
            return self
        problems = []
        if not self.cluster.knows_api_server and not self.security.api_server_cidrs:
            problems.append((
                "security.api_server_cidrs",
                "servestack cannot know where this cluster's API server is; give the addresses "
                "`kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes`"
                " lists (the head's autoscaler egress goes there and nowhere else)",
            ))
        ft = self.rayservice.gcs_fault_tolerance
        if ft.enabled and not ft.redis_egress_cidrs:
            problems.append((
                "rayservice.gcs_fault_tolerance.redis_cidrs",
                f"redis_address {ft.redis_address!r} is a DNS name, but NetworkPolicies match "
                "addresses: give the Redis endpoint's address range (e.g. a Memorystore "
                "instance's reserved range) so only the GCS may reach it",
            ))
        if problems:
            raise SpecError(problems)
        return self

    @model_validator(mode="after")
    def _gateway_runs_here(self) -> Self:
        """The class fits the backend, the data plane is named when NetworkPolicies guard
        Serve, and an incremental upgrade has a gateway class to split traffic with."""
        gateway = self.gateway
        problems = [(f"gateway.{path}", message)
                    for path, message in self.cluster.gateway_problems(gateway)]
        if gateway.enabled and self.security.network_policies and gateway.data_plane is None:
            problems.append(("gateway.data_plane", "NetworkPolicies admit only named peers to "
                             "Serve: name the gateway's proxies (namespace and pod_labels, "
                             "or cidrs)"))
        if (self.rayservice.upgrade_strategy == "NewClusterWithIncrementalUpgrade"
                and not gateway.enabled):
            problems.append(("rayservice.upgrade_strategy", "NewClusterWithIncrementalUpgrade "
                             "moves traffic through a Gateway API class: enable `gateway` "
                             "(its class becomes clusterUpgradeOptions.gatewayClassName)"))
        if problems:
            raise SpecError(problems)
        return self

    @property
    def gateway_class(self) -> str | None:
        return self.cluster.gateway_class(self.gateway) if self.gateway.enabled else None

    @model_validator(mode="after")
    def _model_sources_reachable(self) -> Self:
        """Every remote model URI needs its endpoint, an identity and (with NetworkPolicies)
        the addresses its egress may go to; the buckets come from the URIs themselves."""
        try:
            uris = self.model_uris
        except SpecError:
            return self  # parse_stack_config reports the app overrides themselves
        schemes = {urlsplit(uri).scheme for uri in uris}
        sources, backend = self.model_sources, self.cluster.backend
        problems = []
        if uris and not self.declares_model_sources:
            problems.append(("model_sources", (
                f"an app loads {uris[0]}: declare servestack:model_sources (at least `{{}}`), "
                "which gives every Ray pod the model cache, identity and environment; the "
                "pods then stay the same while apps that load remote models come and go")))
        if "mlflow" in schemes and not sources.mlflow_tracking_uri:
            problems.append(("model_sources.mlflow_tracking_uri",
                             "an app loads an mlflow:// model: give the MLflow server's URL"))
        granted = type(self.cluster).object_store_identity
        if "gs" in schemes and "gs" not in granted:
            through = " or ".join(f"{name} {identity}"
                                  for name, identity in identities_granting("gs"))
            problems.append(("model_sources", f"gs:// models are read through {through}; "
                             f"the {backend} backend cannot grant it"))
        if "s3" in schemes and "s3" not in granted and not sources.s3_credentials_secret:
            grants = "; ".join(f"{name} grants them through {identity}"
                               for name, identity in identities_granting("s3"))
            problems.append(("model_sources.s3_credentials_secret",
                             f"s3:// models on the {backend} backend need a Secret with "
                             f"credentials ({grants})"))
        if self.security.network_policies:
            if schemes & {"s3", "gs"} and not sources.object_store_cidrs:
                problems.append(("model_sources.object_store_cidrs",
                                 "NetworkPolicies match addresses: give the object store's "
                                 "address ranges so Ray pods may reach it and nothing else"))
            if "mlflow" in schemes and not sources.mlflow_cidrs:
                problems.append(("model_sources.mlflow_cidrs",
                                 "NetworkPolicies match addresses: give the MLflow server's "
                                 "address ranges"))
        if problems:
            raise SpecError(problems)
        return self

    @property
    def declares_model_sources(self) -> bool:
        """The stack writes `model_sources`: its Ray pods carry the model cache, identity and
        environment whichever apps run, so adding the first app that loads a remote model
        (or removing the last) never changes a pod template."""
        return "model_sources" in self.model_fields_set

    @property
    def mlflow_token_key(self) -> str | None:
        """The secret config key of MLflow's token, when the stack names an MLflow server:
        the pods read it whichever apps load from MLflow."""
        sources = self.model_sources
        key = sources.mlflow_token_secret_key
        return key if key and self.declares_model_sources and sources.mlflow_tracking_uri else None

    @property
    def model_uris(self) -> tuple[str, ...]:
        """The remote model URIs (s3/gs/mlflow) the stack's apps load, sorted."""
        found = {uri for app in self.applications for deployment in app.deployments
                 if deployment.user_config is not None
                 for uri in deployment.user_config.model_uris() if is_remote(uri)}
        return tuple(sorted(found))

    def required_secrets(self) -> dict[str, str]:
        """Secret config keys this stack needs → what they hold (for the error and the docs)."""
        needed = {**self.cluster.required_secrets(), **self.rayservice.required_secrets()}
        token_key = self.mlflow_token_key
        if token_key:
            needed[token_key] = MLFLOW_TOKEN_MEANING
        return needed

    @cached_property
    def applications(self) -> tuple[ApplicationSpec, ...]:
        """The stack's effective app specs: their defaults with this stack's overrides."""
        return resolve_applications(self.apps)

    def pool(self, name: str) -> NodePool:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(name)


def resolve_applications(apps: Mapping[str, AppOverrides | None]) -> tuple[ApplicationSpec, ...]:
    """Deep-merge each app's overrides onto its default spec, in a stable (sorted) order."""
    resolved = []
    for name in sorted(apps):
        try:
            resolved.append(app_spec(name).with_overrides(apps[name] or {}))
        except SpecError as error:
            raise error.prefixed(f"apps.{name}") from None
    check_unique_applications(resolved)
    return tuple(resolved)


def parse_stack_config(
    stack: str, raw: Mapping[str, Any], backend_rules: bool = True,
) -> StackConfig:
    """Validate a stack's `servestack:` keys (prefix already stripped), specs included.

    Raises StackConfigError listing every problem; nothing is built from a config that fails.
    `backend_rules=False` leaves out the cluster backend's rules on the pools
    (`backend_problems`), which `validate_stack` reports beside the capacity plan's own.
    """
    document = {"stack": stack, **raw}
    try:
        config = StackConfig.model_validate(document)
    except ValidationError as error:
        problems = list(SpecError.from_validation_error(error, raw=document).problems)
        raise StackConfigError(stack, problems) from None
    try:
        _ = config.applications
    except SpecError as error:
        raise StackConfigError(stack, list(error.problems)) from None
    if backend_rules and (problems := backend_problems(config)):
        raise StackConfigError(stack, problems)
    return config


def backend_problems(config: StackConfig) -> list[tuple[str, str]]:
    """The cluster backend's demands on every pool, each named by its own field path."""
    return config.cluster.pool_problems(config.pools)
