"""`servestack plan`: the capacity plan of a stack, before anything is built.

Shows what `pulumi up` would ask the cluster for (deployments → worker groups → pools) and
fails with exit code 2 when the stack is invalid or its worst case does not fit.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from infra.capacity import CapacityPlan, Load
from infra.config import STACKS_DIR, StackConfigError
from infra.cost import (
    HOURS_PER_MONTH,
    NOT_BILLED,
    PRICE_UNKNOWN,
    CostEstimate,
    PoolCost,
    estimate_cost,
    money,
)
from infra.field_paths import pool_path
from infra.quantities import readable_cpu, readable_memory
from infra.stack_file import StackFileError, load_stack
from infra.upgrade_plan import upgrade_plan
from servestack.cli import app
from servestack.cli.exit_codes import EXIT_INVALID
from servestack.cli.tables import table as _table
from servestack.cli.upgrade_view import upgrade_tables
from servestack.upgrade_summary import upgrade_lines


@app.command("plan")
def plan(
    stack: str = typer.Option(..., "--stack", "-s", help="Stack name: stacks/Pulumi.<stack>.yaml."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the plan as JSON instead: the `capacityPlan` stack output "
        "with the `costEstimate` output under `cost` and `upgradePlan` under `upgrade`."
    ),
    stacks_dir: Path = typer.Option(
        STACKS_DIR, "--stacks-dir", help="Directory holding the Pulumi.<stack>.yaml files.",
        file_okay=False,
    ),
) -> None:
    """Plan capacity: worker groups, pods and nodes for every deployment at max replicas,
    the steps of an upgrade and its peak per pool, and what the nodes cost per hour and
    month at min, initial and max.

    Runs the same validation as `pulumi up` (config, backend, secrets, capacity, Serve config)
    and exits 2 when it refuses the stack.
    """
    errors = Console(stderr=True)
    try:
        valid = load_stack(stack, stacks_dir)
    except (FileNotFoundError, StackFileError, StackConfigError) as error:
        errors.print(Text(str(error), style="red"), soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    capacity = valid.plan
    for absent in valid.absent_secrets:
        errors.print(Text(f"warning: {absent}", style="yellow"), soft_wrap=True)
    cost = estimate_cost(valid.stack, capacity)
    upgrade = upgrade_plan(valid.stack, capacity)
    if as_json:
        document = {**capacity.to_output(), "cost": cost.to_output(),
                    "upgrade": upgrade.to_output()}
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
        for warning in valid.warnings[len(capacity.warnings):]:  # the plan's are in the JSON
            errors.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)
        return
    out = Console()
    for table in deployments_tables(capacity):
        out.print(table)
    out.print(worker_groups_table(capacity))
    if (tolerations := tolerations_table(capacity)) is not None:
        out.print(tolerations)
    out.print(pools_table(capacity))
    for table in upgrade_tables(capacity.stack, upgrade):
        out.print(table)
    for line in upgrade_lines(upgrade):
        out.print(Text(line))
    out.print(prices_table(cost))
    out.print(cost_table(cost))
    for note in unpriced_notes(cost):  # sentences, wrapped to the terminal like the tables
        out.print(Text(note, style="red"))
    out.print(Text(upgrade_note(cost)))
    for warning in valid.warnings:
        out.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)


def _shape(cpu: float, memory: int, gpus: int = 0, resource: str | None = None) -> str:
    return f"{readable_cpu(cpu)} CPU, {readable_memory(memory)}" + (
        f", {gpus} {resource}" if gpus else "")


def deployments_tables(capacity: CapacityPlan) -> list[Table]:
    """One table per worker group, so its name is a title rather than a wide column."""
    tables = []
    for group in capacity.worker_groups:
        table = _table(f"Deployments of stack {capacity.stack!r} on {group.name}",
                       "app", "deployment", "per replica", "replicas", "per pod",
                       caption="replicas: min/initial/max")
        for dep in group.deployments:
            gpus = f", {dep.num_gpus:g} GPU" if dep.num_gpus else ""
            table.add_row(Text(dep.app), Text(dep.deployment),
                          _shape(dep.num_cpus, dep.memory) + gpus,
                          "/".join(str(dep.replicas(load)) for load in Load),
                          str(dep.replicas_per_pod))
        tables.append(table)
    return tables


def worker_groups_table(capacity: CapacityPlan) -> Table:
    table = _table(f"Worker groups of stack {capacity.stack!r}", "group", "pool", "pod", "Ray",
                   "pods", caption="pod = limits; Ray = what replicas may use; "
                   "pods: min/initial/max")
    head = capacity.head
    table.add_row("head", Text(head.pool), _shape(head.pod.cpus, head.pod.memory), "-",
                  "1/1/1")
    for group in capacity.worker_groups:
        pod, ray = group.pod, group.ray
        table.add_row(
            Text(group.name), Text(group.pool),
            _shape(pod.cpus, pod.memory, pod.devices, "GPU"),
            _shape(ray.whole_cpus, ray.memory, ray.devices, "GPU"),
            "/".join(str(group.pods(load)) for load in Load),
        )
    return table


def tolerations_table(capacity: CapacityPlan) -> Table | None:
    """The taint keys each worker group tolerates; None when no group tolerates any."""
    tolerating = [group for group in capacity.worker_groups if group.tolerations]
    if not tolerating:
        return None
    table = _table("Tolerations", "group", "tolerates", names=2)
    for group in tolerating:
        table.add_row(Text(group.name), Text(", ".join(t.key for t in group.tolerations)))
    return table


def pools_table(capacity: CapacityPlan) -> Table:
    table = _table(f"Node pools (upgrade strategy {capacity.upgrade_strategy})", "pool", "runs",
                   "nodes", "at min", "at max", "upgrade", "spare", "GPUs",
                   caption="nodes: min-max; at min, at max: nodes needed at min and max load; "
                   "upgrade: nodes needed during an upgrade; spare: max - upgrade; "
                   "GPUs: at max")
    for pool in capacity.pools:
        runs = (["head"] if pool.hosts_head else []) + list(pool.worker_groups)
        headroom = pool.max_nodes - pool.nodes_needed_during_upgrade
        table.add_row(
            Text(pool.pool), Text(", ".join(runs) or "-"), f"{pool.min_nodes}-{pool.max_nodes}",
            str(pool.nodes_needed_at_min), str(pool.nodes_needed),
            str(pool.nodes_needed_during_upgrade),
            Text(f"{headroom:+d}", style="yellow" if headroom < 0 else "green"),
            str(pool.gpus_needed),
        )
    return table




def _price_from(pool: PoolCost) -> str:
    price = pool.price
    if price.basis == "list" and price.read_on is not None:
        return f"list, {price.read_on.isoformat()}"
    return {"stack": price.source, "not billed": NOT_BILLED}.get(price.basis, PRICE_UNKNOWN)


def prices_table(cost: CostEstimate) -> Table:
    table = _table("Prices per node-hour (USD; docs/cost.md: what they cover)", "pool",
                   "machine type", "capacity", "per node-hour", "price from", names=3)
    for pool in cost.pools:
        per_hour = pool.price.per_hour
        shown = NOT_BILLED if pool.price.basis == "not billed" else money(per_hour, digits=4)
        table.add_row(Text(pool.pool), Text(pool.machine_type or "-"),
                      "spot" if pool.spot else "on-demand", _flagged(shown, per_hour is None),
                      Text(_price_from(pool)))
    return table


def unpriced_notes(cost: CostEstimate) -> list[str]:
    """Why each unpriced pool has no price, and what the totals then mean."""
    notes = [f"{PRICE_UNKNOWN} for {pool_path(p.pool)}: {p.price.source}"
             for p in cost.pools if not p.price.known]
    if notes:
        notes.append("totals that include them are unknown; the priced pools alone cost "
                     + ", ".join(f"{money(cost.known_per_hour(load))}/h "
                                 f"({money(cost.known_per_month(load))}/month) "
                                 f"at {load.value}" for load in Load))
    return notes


def upgrade_note(cost: CostEstimate) -> str:
    """What one upgrade that starts a new Ray cluster adds, for as long as it runs."""
    if cost.upgrade_strategy == "None":
        return "upgrade strategy None: KubeRay starts no second cluster, so no upgrade cost"
    nodes = sum(p.upgrade_extra_nodes for p in cost.pools)
    adds = (f"a {cost.upgrade_strategy} upgrade at max load adds {nodes} node(s) for "
            f"{cost.upgrade_hours:g} h ({cost.upgrade_hours_from})")
    if cost.upgrade_peak_per_hour is None or cost.upgrade_extra_cost is None:
        unpriced = ", ".join(pool_path(pool) for pool in cost.unpriced)
        return f"{adds}; its cost is unknown: {PRICE_UNKNOWN} for {unpriced}"
    return (f"{adds}: peak {money(cost.upgrade_peak_per_hour)}/h, "
            f"{money(cost.upgrade_extra_cost)} more per upgrade")


def cost_table(cost: CostEstimate) -> Table:
    """Nodes x price per pool at each load, then the stack's totals."""
    table = _table(f"Cost of stack {cost.stack!r} (USD; {HOURS_PER_MONTH} h a month; "
                   "nodes and GPUs at min/initial/max)", "pool", "nodes", "GPUs",
                   *(f"at {load.value}" for load in Load), names=1)
    for pool in cost.pools:
        table.add_row(Text(pool.pool), "/".join(str(pool.nodes(load)) for load in Load),
                      "/".join(str(pool.gpus(load)) for load in Load),
                      *(_hour_and_month(pool.per_hour(load)) for load in Load))
    table.add_section()
    table.add_row("total", "", "/".join(str(cost.gpus(load)) for load in Load),
                  *(_hour_and_month(cost.per_hour(load)) for load in Load))
    return table


def _hour_and_month(per_hour: float | None) -> Text:
    if per_hour is None:
        return _flagged(PRICE_UNKNOWN, True)
    return Text(f"{money(per_hour)}/h\n{money(per_hour * HOURS_PER_MONTH)}/mo")


def _flagged(text: str, unknown: bool) -> Text:
    return Text(text, style="red" if unknown else "")
