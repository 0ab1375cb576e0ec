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
from infra.quantities import readable_cpu, readable_memory
from infra.stack_file import StackFileError, load_stack
from servestack.cli import app
from servestack.cli.exit_codes import EXIT_INVALID


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
    if as_json:
        typer.echo(json.dumps(capacity.to_output(), indent=2, sort_keys=True))
        for warning in valid.warnings[len(capacity.warnings):]:  # the plan's are in the JSON
            errors.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)
        return
    out = Console()
    out.print(deployments_table(capacity))
    out.print(worker_groups_table(capacity))
    out.print(pools_table(capacity))
    for warning in valid.warnings:
        out.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)


def _shape(cpu: float, memory: int, gpus: int = 0, resource: str | None = None) -> str:
    return f"{readable_cpu(cpu)} CPU, {readable_memory(memory)}" + (
        f", {gpus} {resource}" if gpus else "")


def _table(title: str, *columns: str, names: int = 2) -> Table:
    """Identifiers (the first `names` columns) left, figures right; narrow terminals wrap
    cells rather than cut them."""
    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, overflow="fold", justify="left" if i < names else "right")
    return table


def deployments_table(capacity: CapacityPlan) -> Table:
    table = _table(f"Deployments of stack {capacity.stack!r} (replicas: min/initial/max)",
                   "app", "deployment", "group", "per replica", "replicas", "per pod", names=3)
    for group in capacity.worker_groups:
        for dep in group.deployments:
            gpus = f", {dep.num_gpus:g} GPU" if dep.num_gpus else ""
            table.add_row(Text(dep.app), Text(dep.deployment), Text(group.name),
                          _shape(dep.num_cpus, dep.memory) + gpus,
                          "/".join(str(dep.replicas(load)) for load in Load),
                          str(dep.replicas_per_pod))
    return table


def worker_groups_table(capacity: CapacityPlan) -> Table:
    table = _table("Worker groups (pod = limits; Ray = what replicas may use; "
                   "pods: min/initial/max)",
                   "group", "pool", "pod", "Ray", "pods", "tolerates")
    head = capacity.head
    table.add_row("head", Text(head.pool), _shape(head.pod.cpus, head.pod.memory), "-",
                  "1/1/1", "-")
    for group in capacity.worker_groups:
        pod, ray = group.pod, group.ray
        table.add_row(
            Text(group.name), Text(group.pool),
            _shape(pod.cpus, pod.memory, pod.devices, "GPU"),
            _shape(ray.whole_cpus, ray.memory, ray.devices, "GPU"),
            "/".join(str(group.pods(load)) for load in Load),
            Text(", ".join(t.key for t in group.tolerations) or "-"),
        )
    return table


def pools_table(capacity: CapacityPlan) -> Table:
    table = _table(f"Node pools (upgrade strategy {capacity.upgrade_strategy})", "pool", "runs",
                   "nodes min-max", "at min", "at max", "in upgrade", "upgrade headroom",
                   "GPUs at max")
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
