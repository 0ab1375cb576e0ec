"""How every error spells a field path: as the user wrote the key, whoever finds the problem.

Mapping keys are joined with dots (`apps.embed.route_prefix`), a list item that has a `name`
is named by it (`pools[gpu-l4]`), any other list item by its index (`taints[0]`). pydantic's
locations are turned into that spelling here, against the input they were found in: a
location counts list items and carries the tags of unions (the `eks` of `cluster.eks.vpc`),
none of which the user ever wrote. Stdlib only, so every layer can spell paths with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

NAME_KEY: Final = "name"
_DICT_KEY_TAG: Final = "[key]"
"""pydantic's last location part for an invalid mapping key: the key itself is the path."""


def child(path: str, key: str) -> str:
    """`pools[gpu]` + `max_nodes`; either side may be empty."""
    return ".".join(part for part in (path, key) if part)


def item(path: str, key: str | int) -> str:
    """A list item: `pools[gpu]` by name, `taints[0]` by index."""
    return f"{path}[{key}]"


def path_from_loc(loc: Sequence[str | int], raw: Any = None) -> str:
    """A pydantic location in the user's spelling, looked up in `raw`, the validated input.

    A part that is not a key of the mapping it would index, and not the last part (a missing
    key), is one of pydantic's own tags (a union member) and is left out; where the input
    is unknown (no `raw`, or a default), list items keep their index.
    """
    path = ""
    node: Any = raw
    last = len(loc) - 1
    for position, part in enumerate(loc):
        if isinstance(part, int) and (node is None or _is_list(node)):
            entry = node[part] if node is not None and 0 <= part < len(node) else None
            name = entry.get(NAME_KEY) if isinstance(entry, Mapping) else None
            path = item(path, name if isinstance(name, str) and name else part)
            node = entry
            continue
        if isinstance(node, Mapping) and part in node:
            path, node = child(path, str(part)), node[part]
            continue
        if part == _DICT_KEY_TAG or (isinstance(node, Mapping) and position < last):
            continue  # a tag pydantic inserted: the input has no such key
        path, node = child(path, str(part)), None
    return path


def _is_list(node: Any) -> bool:
    return isinstance(node, Sequence) and not isinstance(node, str | bytes)
