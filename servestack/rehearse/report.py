"""The rehearsal's tables: apps, where every replica landed, nodes per group against the plan,
the autoscaler's view, the ingress and the replicas it served, the load-step timeline, and
where the rehearsal differs from the cluster."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from infra.autoscaler_fit import format_labels, format_resources, lacks, selects
from infra.ray_internals import FAKE_HEAD_NODE_TYPE
from servestack.rehearse.run import RehearsalResult


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _mark(ok: bool) -> Text:
    return Text("ok", style="green") if ok else Text("FAIL", style="red")


def rehearsed_applications_table(result: RehearsalResult) -> Table:
    table = _table("Serve applications", "application", "status", "deployments (running/target)")
    snapshot = result.snapshot
    for name, app in sorted((snapshot.applications if snapshot else {}).items()):
        deps = ", ".join(f"{d} {s.running_replicas}/{s.target_num_replicas}"
                         for d, s in sorted(app.deployments.items()))
        table.add_row(name, Text(app.status, style="green" if app.status == "RUNNING" else "red"),
                      deps)
    return table


def placements_table(result: RehearsalResult) -> Table:
    table = _table("Replicas → node type (worker group)", "app", "deployment", "demand per replica",
                   "plan group", "replicas on", "check")
    for p in result.placements:
        counts: dict[str, int] = {}
        for node_type in p.node_types:
            counts[node_type] = counts.get(node_type, 0) + 1
        where = ", ".join(f"{t}x{c}" for t, c in sorted(counts.items())) or "- (0 replicas)"
        check = _mark(not p.problems)
        if p.problems:
            check.append(": " + "; ".join(p.problems))
        table.add_row(p.app, p.deployment, format_resources(p.demand), p.expected_group or "-",
                      where, check)
    return table


def nodes_table(result: RehearsalResult) -> Table:
    table = _table("Nodes per group: launched by Ray's autoscaler vs `servestack plan`",
                   "group", "resources (Ray's translation)", "plan min", "plan initial",
                   "plan max", "nodes now", "within min..max")
    now = result.view.nodes_per_type() if result.view else {}
    groups = {g.name: g for g in result.plan.worker_groups}
    for node in result.target.node_types:
        name = FAKE_HEAD_NODE_TYPE if node.is_head else node.name
        group = groups.get(node.name)
        count = now.get(name, 0)
        if group is None:
            table.add_row(f"{node.name} (head)" if node.is_head else node.name,
                          format_resources(node.resources), "1" if node.is_head else "-",
                          "1" if node.is_head else "-", "1" if node.is_head else "-",
                          str(count), "-")
            continue
        table.add_row(node.name, format_resources(node.resources), str(group.min_pods),
                      str(group.initial_pods), str(group.max_pods), str(count),
                      _mark(group.min_pods <= count <= group.max_pods))
    return table


def labels_table(result: RehearsalResult) -> Table:
    """Which deployments each group admits (resources and label selector): CPU deployments
    select the `cpu` group's label, so no GPU group admits them."""
    table = _table("Worker-group node labels (Ray's translation) and the deployments they admit",
                   "group", "node labels", "admits (resources and label selector)")
    for node in result.target.node_types:
        if node.is_head:
            continue
        admitted = [f"{p.app}.{p.deployment}" for p in result.placements
                    if not lacks(p.demand, node) and selects(p.label_selector, node)]
        table.add_row(node.name, format_labels(node.labels), ", ".join(admitted) or "-")
    return table


def autoscaler_table(result: RehearsalResult) -> Table:
    table = _table("The autoscaler's view (v2)", "what", "value")
    view = result.view
    if view is None:
        table.add_row("status", "no reading")
        return table
    table.add_row("pending launches",
                  ", ".join(f"{t}x{c}" for t, c in sorted(view.pending.items())) or "none")
    table.add_row("pending demand",
                  ", ".join(f"{format_resources(b)}x{c}" for b, c in view.demand) or "none")
    table.add_row("infeasible demand", ", ".join(result.infeasible) or "none")
    table.add_row("failed launches", ", ".join(view.failed) or "none")
    return table


def ingress_table(result: RehearsalResult) -> Table:
    """HAProxy's backend servers (its `show stat`), each matched to its replica's node type."""
    table = _table(f"Ingress: {result.ingress} on the head → replicas (HAProxy's statistics)",
                   "app", "deployment", "replica", "node type", "HAProxy status", "requests")
    for s in result.served:
        table.add_row(s.app, s.deployment, s.replica_id, s.node_type, s.status, str(s.requests))
    for app in result.unserved:
        table.add_row(app, "-", "-", "-", "-", Text("FAIL: none", style="red"))
    return table


def timeline_table(result: RehearsalResult) -> Table:
    groups = [n.name for n in result.target.node_types if not n.is_head]
    deployments = sorted({k for s in result.timeline for k in s.replicas})
    table = _table("Load step: replicas and nodes per group over time", "t (s)",
                   *[f"nodes {g}" for g in groups], *deployments)
    if not result.timeline:
        return table
    start = result.timeline[0].at
    for s in result.timeline:
        nodes = [f"{s.nodes.get(g, 0)}" + (f" (+{s.pending[g]})" if s.pending.get(g) else "")
                 for g in groups]
        table.add_row(f"{s.at - start:.0f}", *nodes, *[str(s.replicas.get(d, 0))
                                                       for d in deployments])
    return table


def print_report(result: RehearsalResult, console: Console) -> None:
    console.print(Text(f"Rehearsal of {result.target.source}", style="bold"))
    console.print(rehearsed_applications_table(result))
    console.print(placements_table(result))
    console.print(nodes_table(result))
    console.print(labels_table(result))
    console.print(autoscaler_table(result))
    if result.served or result.unserved:
        console.print(ingress_table(result))
    else:
        console.print(f"Ingress: {result.ingress} on the head")
    if result.timeline:
        console.print(timeline_table(result))
        for line in result.load_summary:
            console.print(line)
    console.print(Text("Where this rehearsal differs from the cluster:", style="bold"))
    for difference in result.differences:
        console.print(f"  - {difference}", soft_wrap=True)
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in result.durations.items())
    console.print(f"Timings: {timings}")
