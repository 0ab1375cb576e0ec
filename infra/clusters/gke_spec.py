"""GKE, without its SDK: the `cluster` schema, pool rules and fakes of a GKE stack."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, Self

from pydantic import Field, model_validator

from apps.spec import SpecError
from infra.clusters.spec import BACKEND_DESCRIPTION, CLUSTER_NAME_DESCRIPTION, ClusterSpec
from infra.field_types import DNS_LABEL

if TYPE_CHECKING:
    from infra.config.pools import NodePool

MAX_SERVICE_ACCOUNT_ID: Final = 30
FAKE_ENDPOINT: Final = "203.0.113.10"
FAKE_CA: Final = b"offline-ca"
_ZONE: Final = re.compile(r"^(?P<region>[a-z]+-[a-z]+\d+)-[a-z]$")


class GkeCluster(ClusterSpec):
    listing_order: ClassVar[int] = 10
    extra: ClassVar[str | None] = "gke"
    node_pool_label: ClassVar[str | None] = "cloud.google.com/gke-nodepool"
    object_store_identity: ClassVar[Mapping[str, str]] = {"gs": "Workload Identity"}
    gateway_classes: ClassVar[Mapping[str, bool]] = {
        "gke-l7-global-external-managed": True,
        "gke-l7-regional-external-managed": True,
        "gke-l7-gxlb": True,
        "gke-l7-rilb": False,
    }
    default_gateway_class: ClassVar[str | None] = "gke-l7-global-external-managed"
    installs_gateway_api: ClassVar[bool] = True  # gateway_api_config (infra/clusters/gke.py)

    backend: Literal["gke"] = Field(description=BACKEND_DESCRIPTION)
    project: str = Field(description="GCP project.")
    location: str = Field(description="Region or zone, e.g. europe-west4.")
    name: str = Field("servestack", pattern=DNS_LABEL, description=CLUSTER_NAME_DESCRIPTION)
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = Field(
        "REGULAR", description="GKE release channel."
    )
    gpu_driver_version: Literal["DEFAULT", "LATEST"] = Field(
        "DEFAULT", description="NVIDIA driver GKE installs on GPU nodes."
    )
    deletion_protection: bool = Field(
        True, description="GKE refuses to delete the cluster (pulumi destroy fails) while true."
    )

    @property
    def is_zonal(self) -> bool:
        return bool(_ZONE.match(self.location))

    @property
    def price_region(self) -> str:
        """A zonal cluster's nodes are priced by the zone's region."""
        found = _ZONE.match(self.location)
        return found.group("region") if found else self.location

    @property
    def node_service_account_id(self) -> str:
        """The dedicated service account every node pool of this cluster runs as."""
        return f"{self.name}-nodes"

    @property
    def model_reader_account_id(self) -> str:
        """The service account the Ray pods read gs:// models as (as long as the nodes')."""
        return f"{self.name}-model"

    @model_validator(mode="after")
    def _node_account_fits(self) -> Self:
        if len(self.node_service_account_id) > MAX_SERVICE_ACCOUNT_ID:
            raise SpecError([("name", f"the node service account {self.node_service_account_id!r}"
                                      f" would exceed GCP's {MAX_SERVICE_ACCOUNT_ID} characters; "
                                      "shorten the cluster name")])
        return self

    def pool_problems(self, pools: Sequence[NodePool]) -> list[tuple[str, str]]:
        problems = []
        for pool in pools:
            if not pool.machine_type:
                problems.append((pool.path("machine_type"),
                                 "GKE needs a machine type for every pool, e.g. n2-standard-8"))
            accelerator = pool.accelerator
            if accelerator is None:
                continue
            if not accelerator.cloud_type:
                problems.append((pool.path("accelerator.cloud_type"),
                                 "GKE needs the accelerator type of a GPU pool, e.g. nvidia-l4"))
            if accelerator.resource != "nvidia.com/gpu":
                problems.append((
                    pool.path("accelerator.resource"),
                    f"GKE GPU nodes expose nvidia.com/gpu, not {accelerator.resource!r}; GKE MIG "
                    "partitions are not supported by this backend (use the existing backend)",
                ))
        return problems

    @classmethod
    def fake_outputs(cls, typ: str, name: str, state: dict[str, Any]) -> dict[str, Any] | None:
        if typ == "gcp:container/cluster:Cluster":
            ca = base64.b64encode(FAKE_CA).decode()
            return {**state, "endpoint": FAKE_ENDPOINT, "masterAuth": {"clusterCaCertificate": ca}}
        if typ == "gcp:serviceaccount/account:Account":
            email = f"{state.get('accountId')}@{state.get('project')}.iam.gserviceaccount.com"
            return {**state, "email": email,
                    "name": f"projects/{state.get('project')}/serviceAccounts/{email}"}
        return None


SPEC = GkeCluster
