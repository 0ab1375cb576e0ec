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

from infra.capacity import CapacityError, CapacityPlan, plan_capacity
from infra.cli import app
from infra.config import STACKS_DIR, StackConfigError, load_stack_config

EXIT_INVALID = 2


@app.command("plan")
def plan(
    stack: str = typer.Option(..., "--stack", "-s", help="Stack name: stacks/Pulumi.<stack>.yaml."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the plan as JSON (the `capacity` stack output) instead."
    ),
    stacks_dir: Path = typer.Option(
        STACKS_DIR, "--stacks-dir", help="Directory holding the Pulumi.<stack>.yaml files.",
        file_okay=False,
    ),
) -> None:
    """Plan capacity: worker groups, pods and nodes for every deployment at max replicas.

    Exits 2 when the stack file is invalid or its worst case does not fit its pools.
    """
    errors = Console(stderr=True)
    try:
        capacity = plan_capacity(load_stack_config(stack, stacks_dir))
    except (FileNotFoundError, StackConfigError, CapacityError) as error:
        errors.print(Text(str(error), style="red"))
        raise typer.Exit(EXIT_INVALID) from None
    if as_json:
        typer.echo(json.dumps(capacity.to_output(), indent=2, sort_keys=True))
        return
    out = Console()
    out.print(deployments_table(capacity))
    out.print(worker_groups_table(capacity))
    out.print(pools_table(capacity))
    for warning in capacity.warnings:
        out.print(Text(f"warning: {warning}", style="yellow"))


def _gib(size: int) -> str:
    return f"{size / 1024**3:.3g}Gi"


def deployments_table(capacity: CapacityPlan) -> Table:
    table = Table(title=f"Deployments of stack {capacity.stack!r} (per replica)")
    for column in ("deployment", "worker group", "CPU", "memory", "GPU", "min", "initial",
                   "max", "per pod"):
        table.add_column(column, justify="left" if column in ("deployment", "worker group")
                         else "right")
    for group in capacity.worker_groups:
        for dep in group.deployments:
            table.add_row(Text(dep.path), Text(group.name), f"{dep.num_cpus:g}", _gib(dep.memory),
                          f"{dep.num_gpus:g}", str(dep.min_replicas), str(dep.initial_replicas),
                          str(dep.max_replicas), str(dep.replicas_per_pod))
    return table


def worker_groups_table(capacity: CapacityPlan) -> Table:
    table = Table(title="Worker groups (per pod: requests = limits; Ray: what replicas may use)")
    for column in ("group", "pool", "pod CPU", "pod memory", "pod GPUs", "Ray CPUs",
                   "Ray memory", "min pods", "initial pods", "max pods", "tolerations"):
        table.add_column(column, justify="left" if column in ("group", "pool", "tolerations")
                         else "right")
    table.add_row("head", capacity.head_pool, f"{capacity.head_pod.cpu:g}",
                  _gib(capacity.head_pod.memory), "0", "-", "-", "1", "1", "1", "")
    for group in capacity.worker_groups:
        gpus = f"{group.pod.gpus} {group.pod.accelerator_resource}" if group.pod.gpus else "0"
        tolerations = ", ".join(f"{t.key}:{t.effect}" for t in group.tolerations)
        table.add_row(Text(group.name), Text(group.pool), f"{group.pod.cpu:g}",
                      _gib(group.pod.memory), Text(gpus), str(group.ray_num_cpus),
                      _gib(group.ray_memory), str(group.min_pods), str(group.initial_pods),
                      str(group.max_pods), Text(tolerations))
    return table


def pools_table(capacity: CapacityPlan) -> Table:
    table = Table(title=f"Node pools (upgrade strategy {capacity.upgrade_strategy})")
    for column in ("pool", "runs", "min nodes", "max nodes", "nodes at min", "nodes at max",
                   "nodes in upgrade", "upgrade headroom", "GPUs at max"):
        table.add_column(column, justify="left" if column in ("pool", "runs") else "right")
    for pool in capacity.pools:
        runs = (["head"] if pool.hosts_head else []) + list(pool.worker_groups)
        headroom = pool.max_nodes - pool.nodes_needed_during_upgrade
        table.add_row(
            Text(pool.pool), Text(", ".join(runs) or "-"), str(pool.min_nodes),
            str(pool.max_nodes), str(pool.nodes_needed_at_min), str(pool.nodes_needed),
            str(pool.nodes_needed_during_upgrade),
            Text(f"{headroom:+d}", style="yellow" if headroom < 0 else "green"),
            str(pool.gpus_needed),
        )
    return table
