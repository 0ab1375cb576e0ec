"""The stack's `cluster` section: one variant per backend spec, chosen by `backend`.

The variants are found, not listed (`infra.clusters.spec.cluster_specs`), so a new backend
is its two files under infra/clusters/ and nothing here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Union

from pydantic import Field

from infra.clusters.spec import ClusterSpec, cluster_specs

if TYPE_CHECKING:
    ClusterConfig = ClusterSpec
else:
    ClusterConfig = Annotated[Union[tuple(cluster_specs())],  # noqa: UP007
                              Field(discriminator="backend")]
