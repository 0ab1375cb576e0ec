"""The upgrade rehearsal's account: each phase's pods per group, planned and measured, the
peak, the nodes launched and released, the load, and where it differs from a cluster."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from servestack.cli.tables import table
from servestack.rehearse.upgrade import UpgradeRehearsal


def print_upgrade_report(result: UpgradeRehearsal, out: Console) -> None:
    grid = table("Upgrade rehearsed: nodes per worker group (fake nodes are pods)", "phase",
                 "group", "old", "new", "planned", "measured", names=2,
                 caption="old/new: each generation's target_capacity; planned: the plan's "
                 "packing of both generations in one Ray")
    for reading in result.readings:
        for group in result.groups:
            planned, measured = reading.planned.get(group, 0), reading.measured.get(group, 0)
            grid.add_row(reading.phase.label, group, f"{reading.phase.old_capacity}%",
                         f"{reading.phase.new_capacity}%", str(planned),
                         Text(str(measured), style="" if measured <= planned else "yellow"))
    out.print(grid)
    peaks = table("Peak nodes per group over the upgrade", "group", "planned", "measured",
                  "launched", "released", names=1)
    for group, planned in result.planned_peak.items():
        measured = result.peak.get(group, 0)
        peaks.add_row(group, str(planned),
                      Text(str(measured), style="green" if measured == planned else "red"),
                      str(result.launched.get(group, 0)), str(result.released.get(group, 0)))
    out.print(peaks)
    out.print(Text(f"steady load: {result.sent} requests, {result.failed} failed (anything "
                   "but a 2xx, or no answer)"))
    for surge in result.upgrade.pools:
        out.print(Text(f"on the cluster (two RayClusters): pool {surge.pool} peaks at "
                       f"{surge.peak_nodes} of max_nodes {surge.max_nodes} "
                       "(servestack plan)"))
    out.print(Text("Where this differs from a cluster:"))
    for difference in result.differences:
        out.print(Text(f"- {difference}"))
