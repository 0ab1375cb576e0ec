"""What a change does to the capacity plan: worker group bounds, nodes and GPUs per pool, and
the net GPUs per accelerator type (a pool added or removed counts from or to zero)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from infra.pod_preview import as_list, as_mapping
from servestack.diffing.fields import FieldChange, field_changes

POOL_FIELDS = ("min_nodes", "max_nodes", "nodes_needed_at_min", "nodes_needed",
               "nodes_needed_during_upgrade", "gpus_needed", "upgrade_shortfall")


@dataclass(frozen=True)
class PoolDelta:
    pool: str
    gpu: bool  # the pool's nodes carry GPUs (before or after)
    old: Mapping[str, Any] | None  # None: the pool is new
    new: Mapping[str, Any] | None  # None: the pool is removed
    accelerator: str | None = None  # the devices' label (Accelerator.label), None: unknown

    @property
    def status(self) -> Literal["added", "removed", "changed"]:
        return "added" if self.old is None else "removed" if self.new is None else "changed"

    def value(self, field: str, side: str) -> Any:
        plan = self.old if side == "old" else self.new
        return None if plan is None else plan.get(field)

    def delta(self, field: str) -> int | None:
        """After minus before; a side without the pool counts as 0."""
        before, after = self.value(field, "old"), self.value(field, "new")
        before = 0 if self.old is None else before
        after = 0 if self.new is None else after
        if isinstance(before, int | float) and isinstance(after, int | float):
            return int(after - before)
        return None


@dataclass(frozen=True)
class CapacityDelta:
    groups: tuple[tuple[str, tuple[FieldChange, ...]], ...]  # worker group → changed fields
    pools: tuple[PoolDelta, ...]  # pools whose numbers changed, added or removed
    warnings_added: tuple[str, ...]

    def gpus_by_accelerator(self) -> dict[str, int]:
        """Net change of the GPUs needed at max per accelerator type, over every GPU pool that
        changed (0 when a deployment only moved between pools of the same type)."""
        net: dict[str, int] = {}
        for pool in self.pools:
            if pool.gpu:
                label = pool.accelerator or "GPU"
                net[label] = net.get(label, 0) + (pool.delta("gpus_needed") or 0)
        return dict(sorted(net.items()))

    @property
    def empty(self) -> bool:
        return not self.groups and not self.pools and not self.warnings_added


def _by(items: Any, key: str) -> dict[str, Mapping[str, Any]]:
    return {str(as_mapping(i).get(key)): as_mapping(i) for i in as_list(items)}


def _accelerator(name: str, pool: Mapping[str, Any] | None,
                 plan: Mapping[str, Any]) -> str | None:
    """The pool's device label; a plan rendered before pools carried one names only the
    extended resource, through the worker groups that run on the pool."""
    if pool is None:
        return None
    if pool.get("accelerator"):
        return str(pool["accelerator"])
    resources = sorted({str(resource) for group in as_list(plan.get("worker_groups"))
                        if as_mapping(group).get("pool") == name
                        and (resource := as_mapping(as_mapping(group).get("pod"))
                             .get("accelerator_resource"))})
    return ", ".join(resources) or None


def capacity_delta(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> CapacityDelta:
    old, new = old or {}, new or {}
    old_groups, new_groups = _by(old.get("worker_groups"), "name"), _by(new.get("worker_groups"),
                                                                        "name")
    groups = []
    for name in sorted(set(old_groups) | set(new_groups)):
        before = {k: v for k, v in old_groups.get(name, {}).items() if k != "deployments"}
        after = {k: v for k, v in new_groups.get(name, {}).items() if k != "deployments"}
        changes = tuple(field_changes(before or None, after or None))
        if changes:
            groups.append((name, changes))
    old_pools, new_pools = _by(old.get("pools"), "pool"), _by(new.get("pools"), "pool")
    pools = []
    for name in sorted(set(old_pools) | set(new_pools)):
        was, now = old_pools.get(name), new_pools.get(name)
        if was is not None and now is not None and all(
            was.get(f) == now.get(f) for f in POOL_FIELDS
        ):
            continue
        accelerator = _accelerator(name, now, new) or _accelerator(name, was, old)
        gpu = accelerator is not None or any((p or {}).get("gpus_needed", 0) for p in (was, now))
        pools.append(PoolDelta(name, gpu, was, now, accelerator))
    old_warnings = set(as_list(old.get("warnings")))
    added = tuple(w for w in as_list(new.get("warnings")) if w not in old_warnings)
    return CapacityDelta(tuple(groups), tuple(pools), added)
