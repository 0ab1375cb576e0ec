"""`plan`'s tables of the upgrade plan: the steps KubeRay takes for a change that replaces
the Ray cluster, and each pool at the upgrade's peak."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from infra.upgrade_plan import UpgradePlan
from servestack.cli.tables import table
from servestack.upgrade_summary import (
    PEAK_COLUMN,
    POOL_HEADER,
    POOL_NOTE,
    STEP_HEADER,
    STEP_NOTE,
    over_max,
    pool_rows,
    step_rows,
)


def upgrade_tables(stack: str, upgrade: UpgradePlan) -> list[Table]:
    """The incremental steps, then the pools; nothing under strategy None (no second
    cluster). NewCluster has no steps: one switch, said in `upgrade_lines`."""
    if not upgrade.steps:
        return []
    tables = []
    if steps := step_rows(upgrade):
        grid = table(f"Upgrade steps of stack {stack!r} ({upgrade.strategy})", *STEP_HEADER,
                     names=1, caption=STEP_NOTE)
        for row in steps:
            grid.add_row(*row)
        tables.append(grid)
    pools = table("Pools at the upgrade's peak (the old cluster at max + the new)",
                  *POOL_HEADER, names=1, caption=POOL_NOTE)
    over = over_max(upgrade)
    for row in pool_rows(upgrade):
        cells = [Text(cell) for cell in row]
        if row[0] in over:
            cells[PEAK_COLUMN].stylize("yellow")
        pools.add_row(*cells)
    return [*tables, pools]
