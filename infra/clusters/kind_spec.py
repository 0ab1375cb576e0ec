"""kind, without its SDK: a local cluster whose worker containers impersonate the pools."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from pydantic import Field

from infra.clusters.spec import (
    BACKEND_DESCRIPTION,
    CLUSTER_NAME_DESCRIPTION,
    FAKE_KUBECONFIG,
    ClusterSpec,
)
from infra.field_paths import pool_path
from infra.field_types import DNS_LABEL

if TYPE_CHECKING:
    from infra.config.pools import NodePool

KUBECONFIG_COMMAND: Final = "get kubeconfig"
"""What the `kind get kubeconfig` command's line holds; its stdout is the kubeconfig."""


class KindCluster(ClusterSpec):
    """A local kind cluster; its worker nodes impersonate the declared pools."""

    listing_order: ClassVar[int] = 0
    billed: ClassVar[bool] = False

    backend: Literal["kind"] = Field(description=BACKEND_DESCRIPTION)
    name: str = Field("servestack", pattern=DNS_LABEL, description=CLUSTER_NAME_DESCRIPTION)
    node_image: str = Field(
        "kindest/node:v1.33.1", description="kindest/node image of every kind node."
    )

    def pool_warnings(self, pools: Sequence[NodePool]) -> list[str]:
        """kind nodes see a GPU only with GPU-enabled node containers (e.g. NVIDIA's nvkind)."""
        return [
            f"{pool_path(pool.name)} declares {pool.accelerator.resource}, but kind worker "
            "containers have no GPUs unless the host runs GPU-enabled kind (e.g. nvkind); its "
            "pods stay Pending otherwise"
            for pool in pools if pool.accelerator is not None
        ]

    @classmethod
    def fake_outputs(cls, typ: str, name: str, state: dict[str, Any]) -> dict[str, Any] | None:
        if typ != "command:local:Command":
            return None
        create = str(state.get("create", ""))
        return {**state, "stdout": FAKE_KUBECONFIG if KUBECONFIG_COMMAND in create else "",
                "stderr": ""}

    @classmethod
    def fake_call(cls, token: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
        """`docker image inspect` of a local image: a content ID that follows the command."""
        if token != "command:local:run":
            return None
        digest = hashlib.sha256(str(args.get("command", "")).encode()).hexdigest()
        return {"stdout": f"sha256:{digest}", "stderr": ""}


SPEC = KindCluster
