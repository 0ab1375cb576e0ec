"""What every cluster backend declares without its cloud SDK: the base of `<backend>_spec.py`.

A backend is two adjacent files: `infra/clusters/<backend>_spec.py` (a `ClusterSpec`
subclass: the stack's `cluster` schema, its rules on the pools, its pip extra, the label the
platform puts on every node of a pool, and the outputs its cloud resources get under the
offline engine) and `infra/clusters/<backend>.py` (its `provision`, the only code importing
the SDK). `cluster_specs()` finds the spec modules by that name, so nothing else lists them.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, get_args

from apps.spec import SpecModel

if TYPE_CHECKING:
    from infra.config.gateway import GatewayConfig
    from infra.config.pools import NodePool

SPEC_SUFFIX = "_spec"

BACKEND_DESCRIPTION = ("Who runs the cluster; it selects the keys below that apply (a key "
                       "only some backends have names them first).")
"""The `backend` field's description on every spec. It names no backend: the config
reference lists the values from `cluster_specs()` (which imports the modules that import
this one, so it cannot be computed here)."""
CLUSTER_NAME_DESCRIPTION = "Name of the cluster this stack creates."

FAKE_KUBECONFIG = json.dumps({
    "apiVersion": "v1", "kind": "Config", "current-context": "offline",
    "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "offline"}}],
    "users": [{"name": "offline", "user": {}}],
}, sort_keys=True)
"""The kubeconfig every backend's fake cluster hands out under the offline engine."""


class ClusterSpec(SpecModel):
    """The stack's `cluster` section for one backend; subclasses fix `backend` to a literal."""

    backend: str
    listing_order: ClassVar[int]
    """Where the backend stands in docs and the config reference: kind 0, clouds from 10 in
    steps of 10, existing 90, so a new backend slots in without renumbering the others."""
    extra: ClassVar[str | None] = None
    """The pip extra (pyproject) that installs the backend's cloud SDK; None: none needed."""
    node_pool_label: ClassVar[str | None] = None
    """The label the platform puts on every node of a pool, valued with the pool's name."""
    object_store_identity: ClassVar[Mapping[str, str]] = {}
    """Object-store URI scheme (`gs`, `s3`) → the workload identity through which `provision`
    grants the Ray pods read access to the stack's model buckets there (GKE: `{"gs":
    "Workload Identity"}`, which messages spell "GKE Workload Identity"); a scheme not here
    is read with credentials the stack supplies, if at all."""
    knows_api_server: ClassVar[bool] = True
    """Whether servestack can find the API server's addresses (the head's autoscaler egress)
    without the stack naming them in `security.api_server_cidrs`."""
    shared: ClassVar[bool] = False
    """Someone else's cluster: cluster-wide objects (the KubeRay CRDs) are not the stack's,
    and the cluster may already run a KubeRay operator the stack can use."""

    gateway_classes: ClassVar[Mapping[str, bool]] = {}
    """The gateway classes the platform itself provides → whether they face the internet;
    empty: the stack names any class (one it creates with `controller_name`, or one that
    exists)."""
    default_gateway_class: ClassVar[str | None] = None
    installs_gateway_api: ClassVar[bool] = False
    """Whether the platform installs the Gateway API CRDs itself (GKE: `gateway_api_config`);
    else the program installs them or, on a shared cluster, requires them
    (infra/gateway_api_crds.py)."""

    billed: ClassVar[bool] = True
    """Whether the nodes cost money by the hour; kind's run on the developer's own machine."""

    @property
    def price_region(self) -> str | None:
        """The region whose list prices apply to the nodes; None: not knowable from the stack
        (an existing cluster's pools carry their own `price`)."""
        return None

    def required_secrets(self) -> dict[str, str]:
        """Secret config keys this backend reads → what they hold."""
        return {}

    def gateway_class(self, gateway: GatewayConfig) -> str | None:
        """The GatewayClass the stack's Gateway (and KubeRay's upgrade) uses."""
        return gateway.class_name or self.default_gateway_class

    def gateway_faces_internet(self, gateway: GatewayConfig) -> bool:
        """Known from the platform's own class, else as the stack says."""
        name = self.gateway_class(gateway)
        if name is not None and name in self.gateway_classes:
            return self.gateway_classes[name]
        return gateway.internet_facing

    def gateway_problems(self, gateway: GatewayConfig) -> list[tuple[str, str]]:
        """The gateway class this backend can run, as (path under `gateway`, message)."""
        if not gateway.enabled:
            return []
        name = self.gateway_class(gateway)
        if not self.gateway_classes:
            if name is None:
                return [("class_name", "name the GatewayClass of the cluster's gateway "
                         "controller (and controller_name to have servestack create it)")]
            return []
        problems = []
        if name not in self.gateway_classes:
            problems.append(("class_name", f"{name!r} is not one of this platform's gateway "
                             f"classes: {sorted(self.gateway_classes)}"))
        if gateway.controller_name is not None:
            problems.append(("controller_name", "this platform provides its gateway classes; "
                             "servestack creates none here, remove controller_name"))
        return problems

    def pool_problems(self, pools: Sequence[NodePool]) -> list[tuple[str, str]]:
        """What this backend needs of every pool beyond the generic pool fields."""
        return []

    def pool_warnings(self, pools: Sequence[NodePool]) -> list[str]:
        """What will work only on some hosts of this backend; every command prints these."""
        return []

    def node_labels(self, pool: NodePool) -> dict[str, str]:
        """The labels every node of `pool` carries: the stack's, plus the platform's own."""
        labels = dict(pool.labels)
        if self.node_pool_label:
            labels.setdefault(self.node_pool_label, pool.name)
        return labels

    @classmethod
    def fake_outputs(cls, typ: str, name: str, state: dict[str, Any]) -> dict[str, Any] | None:
        """Outputs the real provider adds to a resource of type `typ` that this backend
        registers, for the offline engine; None: not one of this backend's types."""
        return None

    @classmethod
    def fake_call(cls, token: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
        """The result of an invoke this backend makes, for the offline engine; None: not
        one of this backend's invokes."""
        return None


@cache
def cluster_specs() -> tuple[type[ClusterSpec], ...]:
    """Every backend's spec class, in listing order: the variants of the `cluster` union."""
    package = Path(__file__).parent
    found: list[type[ClusterSpec]] = []
    for module in pkgutil.iter_modules([str(package)]):
        if module.name.endswith(SPEC_SUFFIX):
            spec = importlib.import_module(f"{__package__}.{module.name}").SPEC
            if not (isinstance(spec, type) and issubclass(spec, ClusterSpec)):
                raise TypeError(f"{module.name}.SPEC must be a ClusterSpec subclass")
            found.append(spec)
    return tuple(sorted(found, key=lambda spec: spec.listing_order))


def backend_name(spec: type[ClusterSpec]) -> str:
    """The `backend:` literal a spec class answers to."""
    (name,) = get_args(spec.model_fields["backend"].annotation)
    return str(name)


def identities_granting(scheme: str) -> list[tuple[str, str]]:
    """(backend in capitals, its identity) of each backend whose `provision` grants the Ray
    pods `scheme`:// reads, in listing order: [("GKE", "Workload Identity")] for gs."""
    return [(backend_name(spec).upper(), spec.object_store_identity[scheme])
            for spec in cluster_specs() if scheme in spec.object_store_identity]


def spec_for(backend: str) -> type[ClusterSpec]:
    for spec in cluster_specs():
        if backend_name(spec) == backend:
            return spec
    raise KeyError(backend)
