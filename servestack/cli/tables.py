"""The one table style of the CLI: identifiers whole on the left, figures on the right."""

from __future__ import annotations

from rich import box
from rich.table import Table


def table(title: str, *columns: str, names: int = 2, keys: tuple[str, ...] = (),
          caption: str | None = None) -> Table:
    """Identifiers (the first `names` columns, and the `keys` columns) left and never broken,
    so a group name such as `gpu-nvidia-com-gpu-l4` reads whole; figures right, wrapping
    between words. A header rule and two spaces between columns instead of boxes, so the
    tables fit 80 columns."""
    grid = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, show_edge=False,
                 padding=(0, 1, 0, 0), pad_edge=False, title_justify="left",
                 caption_justify="left")
    for i, column in enumerate(columns):
        if i < names or column in keys:
            grid.add_column(column, no_wrap=True, justify="left")
        else:
            grid.add_column(column, overflow="fold", justify="right")
    return grid
