"""Ray's fake multi-node provider, passing `memory` the way a real raylet gets it.

`FakeMultiNodeProvider` starts each worker "node" as a local raylet and hands every resource
except CPU, GPU and object_store_memory to it as a custom resource; Ray refuses `memory` as
one ("memory cannot be a custom resource"). Our worker groups declare memory (rayStartParams
`memory`), and replicas demand it, so dropping it would rehearse a different scheduler. This
subclass starts the raylet exactly as the parent does, with memory as `RayParams(memory=…)`
and a small fixed object store (logical nodes share this machine's /dev/shm).

The autoscaler imports it by path (`provider: {type: external, module: …}`), inside the
head's monitor process, which has the repository on its PYTHONPATH.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import ray
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

OBJECT_STORE_ENV = "SERVESTACK_REHEARSAL_OBJECT_STORE_BYTES"
"""Object store per fake node, set by the rehearsal on the head's environment."""
DEFAULT_OBJECT_STORE_BYTES = 128 * 1024**2


class MemoryAwareFakeProvider(FakeMultiNodeProvider):
    """Fake nodes with CPU, GPU, memory and custom resources exactly as the node type says."""

    def _create_node_with_resources_and_labels(
        self, node_config: dict[str, Any], tags: dict[str, str], count: int,
        resources: dict[str, Any], labels: dict[str, str],
    ) -> None:
        resources = copy.deepcopy(resources)
        object_store = int(os.environ.get(OBJECT_STORE_ENV, DEFAULT_OBJECT_STORE_BYTES))
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
                    "RAY_OVERRIDE_NODE_ID_FOR_TESTING": next_id,
                    "RAY_CLOUD_INSTANCE_ID": next_id,
                    "RAY_NODE_TYPE_NAME": node_type,
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
