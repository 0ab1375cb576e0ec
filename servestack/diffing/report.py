"""The diff as Markdown fit for a PR comment: a summary table, then each changed stack.

Deterministic (stacks, resources and fields sorted) so re-running on the same commits posts
the same comment; the first line is a marker the PR workflow uses to update its comment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from infra.capacity import Load
from infra.cost import HOURS_PER_MONTH, PRICE_UNKNOWN, money, signed_money
from infra.pod_preview import as_list, as_mapping
from infra.upgrade_plan import UpgradePlan
from servestack.diffing import DiffResult, StackDiff
from servestack.diffing.capacity_delta import CapacityDelta
from servestack.diffing.cost_delta import CostDelta, Side
from servestack.diffing.fields import ABSENT, FieldChange
from servestack.diffing.rollout import SERVE_CONFIG, RayServiceChange, ServeChange, why_new_cluster
from servestack.upgrade_summary import (
    POOL_HEADER,
    POOL_NOTE,
    STEP_HEADER,
    STEP_NOTE,
    pool_rows,
    step_rows,
    upgrade_lines,
)

MARKER = "<!-- servestack-diff -->"
MAX_FIELDS = 25
MAX_VALUE = 80
ROLLOUT_TEXT = {
    "in place": "KubeRay keeps the running Ray cluster and applies the Serve config to it; "
                "no new Ray cluster.",
    "new cluster": "`rayClusterConfig` changed in a field KubeRay 1.7.0 compares: it creates a "
                   "new RayCluster and switches traffic once it is ready.",
    "created": "new RayService: KubeRay creates its first Ray cluster.",
    "deleted": "the RayService and its Ray cluster are deleted.",
    "no change": "no change.",
}
NEW_IMAGE_TEXT = {
    "NewCluster": "KubeRay starts a new RayCluster on it, switches traffic once its Serve "
                  "applications are ready, then deletes the old cluster (both run meanwhile: "
                  "the capacity plan's nodes during upgrade).",
    "NewClusterWithIncrementalUpgrade": "KubeRay starts a new RayCluster on it and moves "
        "traffic to it through the Gateway in steps (clusterUpgradeOptions), raising the new "
        "cluster's Serve target_capacity as the old one's falls, then deletes the old cluster "
        "(both run meanwhile, up to the upgrade plan's peak).",
    "None": "With upgradeStrategy `None` the running cluster keeps the old image.",
}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _code(text: str) -> str:
    return "`" + text.replace("|", "\\|").replace("`", "'").replace("\n", "\\n") + "`"


def _value(value: Any, start: int = 0) -> str:
    """A value as inline code, cut to MAX_VALUE characters from `start` (… marks the cuts)."""
    if value is ABSENT:
        return "—"
    text = _text(value)
    if len(text) <= MAX_VALUE:
        return _code(text)
    piece = text[start:start + MAX_VALUE]
    return _code(("…" if start else "") + piece + ("…" if start + MAX_VALUE < len(text) else ""))


def _cells(old: Any, new: Any) -> tuple[str, str]:
    """Old and new; long strings are shown from just before where they start to differ."""
    start = 0
    if isinstance(old, str) and isinstance(new, str) and max(len(old), len(new)) > MAX_VALUE:
        common = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
                      min(len(old), len(new)))
        start = max(0, common - 20)
    return _value(old, start), _value(new, start)


def _pair(old: Any, new: Any) -> str:
    before, after = _cells(old, new)
    return f"{before} → {after}"


def _field(change: FieldChange) -> str:
    return f"`{change.path}`: {_pair(change.old, change.new)}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _policy_summary(policies: Mapping[str, Any] | None) -> str:
    if not policies:
        return "—"
    violations = policies.get("violations") or []
    mandatory = sum(1 for v in violations if v["level"] == "mandatory")
    advisory = len(violations) - mandatory
    mark = "✅" if policies.get("passed") else "❌"
    return f"{mark} {mandatory} mandatory, {advisory} advisory"


def _capacity_summary(capacity: CapacityDelta | None) -> str:
    """Nodes at max per pool (new and removed pools too), then the net GPUs at max per
    accelerator type, so a deployment moved between pools shows both ends and the sum."""
    if capacity is None or capacity.empty:
        return "—"
    parts = []
    for pool in capacity.pools:
        delta = pool.delta("nodes_needed")
        status = {"changed": "", "added": " (new)", "removed": " (removed)"}[pool.status]
        if delta or status:
            kind = "GPU nodes" if pool.gpu else "nodes"
            parts.append(f"{pool.pool}{status}: {delta or 0:+d} {kind} at max")
    net = capacity.gpus_by_accelerator()
    if net:
        parts.append("net GPUs at max: " + ", ".join(f"{label} {n:+d}" for label, n in net.items()))
    return "; ".join(parts) or "worker groups changed"


def _cost_summary(cost: CostDelta | None) -> str:
    """The change in $/month at max, the figure a reviewer weighs first."""
    if cost is None or not cost.changed:
        return "—"
    change = cost.change(Load.MAX)
    return PRICE_UNKNOWN if change is None else f"{signed_money(change)}/month at max"


def _summary_row(diff: StackDiff) -> list[str]:
    if diff.base_error or diff.head_error:
        side = "base" if diff.base_error else "working tree"
        return [f"`{diff.stack}`", f"⚠️ {side} does not render", "—", "—", "—", "—",
                _policy_summary(diff.policies)]
    counts: dict[str, int] = {}
    for change in diff.resources:
        counts[change.status] = counts.get(change.status, 0) + 1
    resources = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no change"
    rollouts = ", ".join(f"**{r.rollout}**" + (" (new image)" if r.image_changes else "")
                         for r in diff.rayservices) or "—"
    serve = sum(len(r.serve_changes) for r in diff.rayservices)
    return [f"`{diff.stack}`", resources, rollouts, f"{serve} field(s)" if serve else "—",
            _capacity_summary(diff.capacity), _cost_summary(diff.cost),
            _policy_summary(diff.policies)]


def _rayservice_section(change: RayServiceChange) -> list[str]:
    strategy = f" (upgradeStrategy `{change.upgrade_strategy}`)" if change.upgrade_strategy else ""
    lines = [f"**RayService `{change.name}`: {change.rollout}**{strategy} — "
             f"{ROLLOUT_TEXT[change.rollout]}"]
    if change.image_changes:
        lines += ["", "New app image in the Ray containers: "
                  + NEW_IMAGE_TEXT.get(str(change.upgrade_strategy), NEW_IMAGE_TEXT["NewCluster"])]
        lines += [f"- {_pair(old, new)}" for old, new in change.image_changes]
    if change.rollout == "new cluster":
        if change.upgrade_strategy == "None" and not change.image_changes:
            lines.append("With upgradeStrategy `None` KubeRay does not roll the change out.")
        lines.append("")
        lines.append("Fields that force the new cluster, and why (apps, routes, user_config and "
                     "runtime_env live in the Serve config and never do):")
        for field in change.cluster_changes[:MAX_FIELDS]:
            lines += [f"- {_field(field)}", f"  - why: {why_new_cluster(field)}"]
    if change.updates_running_cluster:
        groups = ", ".join(f"`{g}`" for g in change.appended_groups)
        lines += ["", f"New worker group(s) {groups} after the existing ones: KubeRay updates the "
                  "running RayCluster in place; the new groups start, the others keep their pods."]
    if change.replica_changes:
        lines.append("")
        lines.append("Worker replica bounds (KubeRay 1.7.0 leaves them out of its comparison):")
        lines += [f"- {_field(c)}" for c in change.replica_changes]
    if change.muted_changes:
        lines.append("")
        lines.append("Fields KubeRay 1.7.0 leaves out of its comparison (tolerations, "
                     "schedulingGates, suspend, upgradeStrategy):")
        lines += [f"- {_field(c)}" for c in change.muted_changes]
    if change.unapplied_changes:
        lines += ["", "⚠️ Nothing else changed in `rayClusterConfig`, so KubeRay does not copy "
                  "these into the running RayCluster: it keeps the old values (the autoscaler "
                  "its old bounds) until the next change that updates or replaces the cluster. "
                  "Patch the active RayCluster to apply them now."]
    if change.serve_changes:
        lines += ["", f"Serve config (`{SERVE_CONFIG}`), field by field:", ""]
        lines += _table(["application", "deployment", "option", "old", "new"],
                        [_serve_row(c) for c in change.serve_changes])
    return lines


def _serve_row(change: ServeChange) -> list[str]:
    return [f"`{change.app}`" if change.app else "(all)",
            f"`{change.deployment}`" if change.deployment else "—",
            f"`{change.option}`", *_cells(change.old, change.new)]


def _resource_rows(diff: StackDiff) -> list[list[str]]:
    rows = []
    for change in diff.resources:
        fields = [c for c in change.fields if c.path != SERVE_CONFIG]
        shown = [_field(c) for c in fields[:MAX_FIELDS]]
        if len(fields) > MAX_FIELDS:
            shown.append(f"… {len(fields) - MAX_FIELDS} more")
        if len(fields) != len(change.fields):
            shown.append(f"`{SERVE_CONFIG}` (Serve config above)")
        rows.append([change.status, f"`{change.type}`", f"`{change.name}`",
                     "<br>".join(shown) or "—"])
    return rows


def _capacity_section(capacity: CapacityDelta) -> list[str]:
    lines = ["#### Capacity plan", ""]
    if capacity.groups:
        rows = [[f"`{name}`", f"`{c.path}`", _value(c.old), _value(c.new)]
                for name, changes in capacity.groups for c in changes]
        lines += [*_table(["worker group", "field", "old", "new"], rows), ""]
    if capacity.pools:
        def cell(pool: Any, field: str) -> str:
            old, new = pool.value(field, "old"), pool.value(field, "new")
            return str(new) if old == new else f"{_plain(old)} → {_plain(new)}"

        rows = [[f"`{p.pool}`", (p.accelerator or "yes") if p.gpu else "no", cell(p, "max_nodes"),
                 cell(p, "nodes_needed_at_min"), cell(p, "nodes_needed"),
                 cell(p, "nodes_needed_during_upgrade"), cell(p, "gpus_needed")]
                for p in capacity.pools]
        header = ["pool", "GPU", "max nodes", "nodes at min", "nodes at max",
                  "nodes during upgrade", "GPUs at max"]
        lines += [*_table(header, rows), ""]
    lines += [f"- ⚠️ new plan warning: {w}" for w in capacity.warnings_added]
    return lines


def _monthly(cost: CostDelta, side: Side, load: Load) -> str:
    if cost.side(side) is None:
        return "—"
    value = cost.per_month(side, load)
    return money(value) if value is None else f"{money(value)}/month"


def _cost_rows(cost: CostDelta) -> list[list[str]]:
    rows = []
    for load in (Load.MIN, Load.MAX):
        change = cost.change(load)
        rows.append([f"at {load.value}", _monthly(cost, "old", load), _monthly(cost, "new", load),
                     "—" if change is None else signed_money(change)])
    return rows


def _pool_cost_lines(cost: CostDelta) -> list[str]:
    """The pools whose cost at max changed: nodes and $/month before and after."""
    old, new = cost.pools("old"), cost.pools("new")
    lines = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name, {}), new.get(name, {})
        if before == after:
            continue
        nodes = [as_mapping(p.get("nodes")).get(Load.MAX.value, "—") if p else "—"
                 for p in (before, after)]
        monthly = [as_mapping(p.get("per_month")).get(Load.MAX.value) if p else None
                   for p in (before, after)]
        shown = [money(m) if p else "—" for m, p in zip(monthly, (before, after), strict=True)]
        lines.append(f"- `{name}` at max: {nodes[0]} → {nodes[1]} nodes, "
                     f"{shown[0]} → {shown[1]} a month")
    return lines


def _upgrade_line(cost: CostDelta, rollouts: Sequence[RayServiceChange]) -> str:
    """The extra cost of the rollout this change triggers, from the working tree's estimate."""
    if not any(r.rollout == "new cluster" for r in rollouts):
        how = ", ".join(sorted({r.rollout for r in rollouts})) or "no RayService change"
        return f"Upgrade: none extra ({how}; no second Ray cluster)."
    upgrade = cost.upgrade()
    if upgrade.get("strategy") == "None":
        return "Upgrade: none extra (upgradeStrategy `None` does not roll the change out)."
    hours = upgrade.get("hours")
    how = ("grows a second Ray cluster step by step beside this one (the upgrade plan's peak)"
           if upgrade.get("strategy") == "NewClusterWithIncrementalUpgrade"
           else "runs a second Ray cluster beside this one")
    return (f"Upgrade: `{upgrade.get('strategy')}` {how} "
            f"for about {hours:g} h ({upgrade.get('hours_from', '`cost.upgrade_hours`')}), "
            f"{upgrade.get('extra_nodes')} more node(s) at max load: peak "
            f"{money(upgrade.get('peak_per_hour'))}/h "
            f"({money(upgrade.get('extra_per_hour'))}/h more), about "
            f"{money(upgrade.get('extra_cost'))} for the rollout.")


def _cost_section(cost: CostDelta, rollouts: Sequence[RayServiceChange]) -> list[str]:
    lines = [f"#### Cost (USD, {HOURS_PER_MONTH} h a month; docs/cost.md)", ""]
    lines += [*_table(["load", "before", "after", "change"], _cost_rows(cost)), ""]
    sides: tuple[tuple[Side, str], ...] = (("old", "base"), ("new", "working tree"))
    for side, label in sides:
        estimate = cost.side(side)
        if estimate is None:
            lines.append(f"- the {label} has no cost estimate (no stack, or older code)")
        elif not cost.known(side):
            unpriced = ", ".join(f"`{p}`" for p in as_list(estimate.get("unpriced_pools")))
            lines.append(f"- ⚠️ {label}: price unknown for {unpriced}, so its totals are unknown")
    lines += _pool_cost_lines(cost)
    if cost.new is not None:
        lines.append(f"- {_upgrade_line(cost, rollouts)}")
    return [*lines, ""]


def _upgrade_section(diff: StackDiff) -> list[str]:
    """The upgrade the change triggers: KubeRay's steps and each pool's peak, from the
    working tree's `upgradePlan` (what `plan` prints), or that none is needed."""
    rollouts = {r.rollout for r in diff.rayservices}
    if not rollouts:
        return []
    lines = ["#### Upgrade", ""]
    if "new cluster" not in rollouts:
        how = ", ".join(sorted(rollouts))
        return [*lines, f"**{how}**: no second Ray cluster, so no upgrade plan is needed.", ""]
    if diff.upgrade is None:
        return [*lines, "The working tree has no upgrade plan (older code).", ""]
    upgrade = UpgradePlan.from_output(diff.upgrade)
    lines[0] += f" (`{upgrade.strategy}`)"
    lines += [f"- {line}" for line in upgrade_lines(upgrade)]
    if steps := step_rows(upgrade):
        lines += ["", *_table(STEP_HEADER, steps), "", STEP_NOTE]
    if pools := pool_rows(upgrade):
        lines += ["", *_table(POOL_HEADER, pools), "", POOL_NOTE]
    return [*lines, ""]


def _plain(value: Any) -> str:
    return "—" if value is None else str(value)


def _policies_section(policies: Mapping[str, Any] | None) -> list[str]:
    if not policies:
        return []
    lines = ["#### Policies (working tree)", "",
             f"{_policy_summary(policies)} ({policies.get('environment')} levels)"]
    for v in policies.get("violations") or []:
        where = f" ({v['resource']})" if v.get("resource") else ""
        message = " ".join(str(v["message"]).split())
        lines.append(f"- [{v['level']}] `{v['policy']}`{where}: {message}")
    return [*lines, ""]


def _stack_section(diff: StackDiff) -> list[str]:
    lines = [f"### `{diff.stack}`", ""]
    for side, error in (("base", diff.base_error), ("working tree", diff.head_error)):
        if error:
            lines += [f"⚠️ The {side} does not render:", "", "```", error.strip(), "```", ""]
    for rayservice in diff.rayservices:
        lines += [*_rayservice_section(rayservice), ""]
    if diff.resources:
        lines += ["#### Resources", ""]
        lines += [*_table(["change", "type", "name", "fields"], _resource_rows(diff)), ""]
    lines += _upgrade_section(diff)
    if diff.capacity is not None and not diff.capacity.empty:
        lines += _capacity_section(diff.capacity)
    if diff.cost is not None and (diff.cost.changed or any(
            r.rollout == "new cluster" for r in diff.rayservices)):
        lines += _cost_section(diff.cost, diff.rayservices)
    lines += _policies_section(diff.policies)
    return lines


def markdown(result: DiffResult) -> str:
    lines = [MARKER,
             f"## servestack diff: `{result.base_ref}` (`{result.base_commit[:12]}`) → "
             "working tree",
             ""]
    lines += _table(["stack", "resources", "RayService", "Serve config", "capacity", "cost",
                     "policies"],
                    [_summary_row(d) for d in result.stacks])
    lines.append("")
    for diff in result.stacks:
        if diff.changed:
            lines += _stack_section(diff)
    unchanged = [f"`{d.stack}`" for d in result.stacks if not d.changed]
    if unchanged:
        lines.append(f"No change in {', '.join(unchanged)}.")
    lines.append("")
    lines.append("Rendered offline under Pulumi mocks (`servestack diff`); no cloud state read.")
    return "\n".join(lines) + "\n"
