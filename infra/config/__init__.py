"""`StackConfig`: one stack file, parsed and validated once, before anything is built.

The same object feeds `servestack serve` (local Ray), the Pulumi program and every
offline command, so a stack that validates here means the same thing everywhere.
Pulumi keys live under the `servestack:` namespace in `stacks/Pulumi.<stack>.yaml`.
One module per section of the stack file; this package re-exports the names callers use.
"""

from infra.clusters.spec import ClusterSpec
from infra.config.cluster import ClusterConfig
from infra.config.cost import Budget, CostConfig, PoolPrice
from infra.config.errors import StackConfigError
from infra.config.gateway import GatewayConfig, Listener
from infra.config.image import ImageConfig
from infra.config.kuberay import KubeRayConfig
from infra.config.model_sources import ModelCacheVolume, ModelSourcesConfig
from infra.config.observability import KUBE_PROMETHEUS_STACK_VERSION, ObservabilityConfig
from infra.config.pools import Accelerator, NodePool, Taint
from infra.config.project import KUBERAY_VERSION, PROJECT, RAY_VERSION, REPO_ROOT, STACKS_DIR
from infra.config.rayservice import AutoscalerConfig, GcsFaultTolerance, RayServiceConfig
from infra.config.resources import PodResources
from infra.config.security import NetworkPeer, SecurityConfig
from infra.config.serve import HttpOptions, ServeOptions
from infra.config.stack import (
    AppOverrides,
    StackConfig,
    backend_problems,
    parse_stack_config,
    resolve_applications,
)
from infra.field_types import DNS_LABEL, Cidr, HttpUrl, LabelMap

__all__ = [
    "DNS_LABEL", "KUBERAY_VERSION", "KUBE_PROMETHEUS_STACK_VERSION", "PROJECT", "RAY_VERSION",
    "REPO_ROOT", "STACKS_DIR", "Accelerator", "AppOverrides", "AutoscalerConfig", "Budget",
    "Cidr", "ClusterConfig", "ClusterSpec", "CostConfig", "GatewayConfig", "GcsFaultTolerance",
    "HttpOptions", "HttpUrl", "ImageConfig", "KubeRayConfig", "LabelMap", "Listener",
    "ModelCacheVolume", "ModelSourcesConfig", "NetworkPeer", "NodePool", "ObservabilityConfig",
    "PodResources", "PoolPrice", "RayServiceConfig",
    "SecurityConfig", "ServeOptions", "StackConfig", "StackConfigError", "Taint",
    "backend_problems", "parse_stack_config", "resolve_applications",
]
