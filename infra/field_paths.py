"""Where a stack's errors point: a pool or a deployment by name, spelled one way.

By name, not by index, so a path survives reordering the list; the spelling itself is
apps/field_path.py's, which also maps pydantic's locations. Stdlib only beneath, so the
program, the pack and the tool can all name fields with it.
"""

from __future__ import annotations

from apps.field_path import child, item


def pool_path(pool: str, field: str | None = None) -> str:
    """`pools[gpu]`, or a field of it: `pools[gpu].max_nodes`."""
    return child(item("pools", pool), field or "")


def deployment_path(app: str, deployment: str, field: str | None = None) -> str:
    """`apps.embed.deployments.Embedder`, or a field of it: `….resources`."""
    return child(f"apps.{app}.deployments.{deployment}", field or "")
