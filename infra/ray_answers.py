"""Answers of Ray's pure functions, kept on disk per installed Ray and pydantic version.

Importing Ray for `ServeDeploySchema`, the KubeRay autoscaler's translation, the label
matcher and the Grafana dashboards costs more CPU (about 1.5 s) than everything else
`servestack plan` does. Each of those is a pure function of its JSON arguments and the
installed Ray, so its answer is stored under a hash of both and read back instead of
importing Ray again. Only answers are kept: a call that raises is never stored, so a
rejection always comes from Ray itself.

SERVESTACK_CACHE_DIR moves the store (default `$XDG_CACHE_HOME/servestack`, else
`~/.cache/servestack`); SERVESTACK_NO_CACHE=1 turns it off.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

CACHE_DIR_ENV = "SERVESTACK_CACHE_DIR"
NO_CACHE_ENV = "SERVESTACK_NO_CACHE"
VERSIONED = ("ray", "pydantic")
"""The packages whose version decides an answer (pydantic runs Ray's schemas)."""

P = ParamSpec("P")
R = TypeVar("R")


def store() -> Path | None:
    """Where answers for the installed versions live; None when the cache is off."""
    if os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None
    configured = os.environ.get(CACHE_DIR_ENV)
    root = Path(configured) if configured else (
        Path(os.environ.get("XDG_CACHE_HOME") or Path("~/.cache").expanduser()) / "servestack")
    return root / "ray-answers" / _versions()


@functools.cache
def _versions() -> str:
    return "-".join(f"{name}-{metadata.version(name)}" for name in VERSIONED)


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _encode(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def _decode(text: str) -> Any:
    stored = json.loads(text)
    return tuple(stored["tuple"]) if "tuple" in stored else stored["answer"]


def _keep(path: Path, answer: Any) -> None:
    """Write atomically; a store that cannot be written only means no cache."""
    stored = {"tuple": list(answer)} if isinstance(answer, tuple) else {"answer": answer}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False,
                                         suffix=".tmp") as temporary:
            temporary.write(_encode(stored))
        Path(temporary.name).replace(path)
    except (OSError, TypeError, ValueError):
        pass


def remembered(function: Callable[P, R]) -> Callable[P, R]:
    """`function`, answering from the store when it has answered these arguments before."""
    name = f"{function.__module__}.{function.__qualname__}"

    @functools.wraps(function)
    def answer(*args: P.args, **kwargs: P.kwargs) -> R:
        directory = store()
        try:
            key = _encode([name, list(args), kwargs])
        except TypeError:
            directory = None
        if directory is None:
            return function(*args, **kwargs)
        path = directory / name / f"{hashlib.sha256(key.encode()).hexdigest()}.json"
        try:
            return cast(R, _decode(path.read_text()))
        except (OSError, ValueError, KeyError):
            pass
        result = function(*args, **kwargs)
        _keep(path, result)
        return result

    return answer
