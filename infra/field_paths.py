"""Where a stack's errors point: a pool or a deployment by name, spelled one way.

By name, not by index, so a path survives reordering the list. Imports nothing, so the
program, the pack and the tool can all name fields with it.
"""

from __future__ import annotations


def pool_path(pool: str, field: str | None = None) -> str:
    """`pools[gpu]`, or a field of it: `pools[gpu].max_nodes`."""
    return f"pools[{pool}]" + (f".{field}" if field else "")


def deployment_path(app: str, deployment: str, field: str | None = None) -> str:
    """`apps.embed.deployments.Embedder`, or a field of it: `….resources`."""
    return f"apps.{app}.deployments.{deployment}" + (f".{field}" if field else "")
