"""Ray's fake multi-node provider, passing `memory` the way a real raylet gets it.

`FakeMultiNodeProvider` starts each worker "node" as a local raylet and hands every resource
except CPU, GPU and object_store_memory to it as a custom resource; Ray refuses `memory` as
one ("memory cannot be a custom resource"). Our worker groups declare memory (rayStartParams
`memory`), and replicas demand it, so dropping it would rehearse a different scheduler. The
subclass (built by infra.ray_internals, which holds every private Ray name it touches)
starts the raylet exactly as the parent does, with memory as `RayParams(memory=…)` and a small
fixed object store (logical nodes share this machine's /dev/shm).

The autoscaler imports it by path (`provider: {type: external, module: …}`), inside the
head's monitor process, which has the repository on its PYTHONPATH.
"""

from __future__ import annotations

import os

from infra.ray_internals import memory_aware_fake_provider

OBJECT_STORE_ENV = "SERVESTACK_REHEARSAL_OBJECT_STORE_BYTES"
"""Object store per fake node, set by the rehearsal on the head's environment."""
DEFAULT_OBJECT_STORE_BYTES = 128 * 1024**2


def object_store_bytes() -> int:
    """Read when each node starts, from the head's environment the monitor inherits."""
    return int(os.environ.get(OBJECT_STORE_ENV, DEFAULT_OBJECT_STORE_BYTES))


MemoryAwareFakeProvider = memory_aware_fake_provider(object_store_bytes)
"""Fake nodes with CPU, GPU, memory and custom resources exactly as the node type says."""
