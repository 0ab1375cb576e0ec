"""The autoscaler's own view of the cluster, streamed as JSON lines by a child process.

Autoscaler v2 keeps its state in the GCS (`ray.autoscaler.v2.sdk.get_cluster_status`): the
nodes of each type, launches in flight, and the demand it is trying to place. Reading it
needs Ray's GCS client with the cluster's token, which Ray caches per process; a child
process with the rehearsal's environment keeps that out of the CLI (and out of a pytest run
that rehearses two stacks with two tokens).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

INTERVAL_S = 1.0


@dataclass(frozen=True)
class AutoscalerView:
    """One reading of the autoscaler's state."""

    at: float
    nodes: tuple[tuple[str, str], ...] = ()  # (node_id, node type) of running Ray nodes
    pending: Mapping[str, int] = field(default_factory=dict)  # node type → launching
    failed: tuple[str, ...] = ()  # failed launches, as the autoscaler describes them
    demand: tuple[tuple[Mapping[str, float], int], ...] = ()  # (bundle, count) not yet placed

    @classmethod
    def parse(cls, line: str) -> AutoscalerView:
        data = json.loads(line)
        return cls(
            at=float(data["at"]),
            nodes=tuple((str(n), str(t)) for n, t in data["nodes"]),
            pending={str(k): int(v) for k, v in data["pending"].items()},
            failed=tuple(str(f) for f in data["failed"]),
            demand=tuple(({str(k): float(v) for k, v in b.items()}, int(c))
                         for b, c in data["demand"]),
        )

    def node_type_of(self, node_id: str) -> str | None:
        for node, node_type in self.nodes:
            if node == node_id:
                return node_type
        return None

    def nodes_per_type(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, node_type in self.nodes:
            counts[node_type] = counts.get(node_type, 0) + 1
        return counts


def read_status(gcs_address: str) -> dict[str, Any]:
    from ray.autoscaler.v2.sdk import get_cluster_status

    status = get_cluster_status(gcs_address)
    pending: dict[str, int] = {}
    for launch in status.pending_launches:
        name = launch.ray_node_type_name
        pending[name] = pending.get(name, 0) + launch.count
    for node in status.pending_nodes:
        pending[node.ray_node_type_name] = pending.get(node.ray_node_type_name, 0) + 1
    demands = status.resource_demands
    demand = [(request.bundle, request.count)
              for group in (*demands.ray_task_actor_demand, *demands.placement_group_demand,
                            *demands.cluster_constraint_demand)
              for request in group.bundles_by_count]
    return {
        "at": time.time(),
        "nodes": sorted((n.node_id, n.ray_node_type_name)
                        for n in (*status.active_nodes, *status.idle_nodes)),
        "pending": pending,
        "failed": [f"{launch.ray_node_type_name}: {launch.details}"
                   for launch in status.failed_launches],
        "demand": demand,
    }


def main(argv: list[str]) -> None:
    """Child process: one JSON line per interval until the parent closes our stdout."""
    gcs_address = argv[0]
    while True:
        try:
            line = json.dumps(read_status(gcs_address), sort_keys=True)
        except Exception as error:  # the GCS is starting or stopping: say so, keep going
            line = json.dumps({"error": str(error).splitlines()[0] if str(error) else
                               type(error).__name__})
        try:
            print(line, flush=True)
        except BrokenPipeError:
            return
        time.sleep(INTERVAL_S)


class AutoscalerProbe:
    """Runs the child and keeps its latest reading."""

    def __init__(self, gcs_address: str, env: Mapping[str, str]) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "servestack.rehearse.probe", gcs_address],
            env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self._latest: AutoscalerView | None = None
        self.last_error = ""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if '"error"' in line[:10]:
                self.last_error = str(json.loads(line)["error"])
                continue
            try:
                view = AutoscalerView.parse(line)
            except (ValueError, KeyError):
                continue
            with self._lock:
                self._latest = view

    @property
    def latest(self) -> AutoscalerView | None:
        with self._lock:
            return self._latest

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)


if __name__ == "__main__":
    main(sys.argv[1:])
