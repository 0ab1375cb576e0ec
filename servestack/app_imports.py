"""Each app's `import_path` imports and builds the Serve application its spec describes.

Checked before deploy because otherwise the cluster finds out, after the RayService rolled
out: a typo in a spec's `import_path`, a module that does not import where servestack runs
(the image installs the same packages), an attribute that is not a Serve application, or a
deployment the spec configures that the application does not bind. The build is Serve's own
(through infra/ray_internals.py: it is private to Ray), and needs no running Ray.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from functools import cache

from apps.spec import ApplicationSpec
from infra.ray_internals import built_deployment_names


@cache
def built_deployments(import_path: str) -> tuple[str, ...] | str:
    """The deployment names of the application at `import_path`, or why it has none."""
    from ray.serve import Application

    module_name, _, attribute = import_path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # the app's own import failure, whatever it is, named
        return f"module {module_name!r} does not import: {type(error).__name__}: {error}"
    if not hasattr(module, attribute):
        return f"module {module_name!r} has no attribute {attribute!r}"
    target = getattr(module, attribute)
    if not isinstance(target, Application):
        return (f"{import_path} is of type {type(target).__name__}, not a Serve application "
                "(`<Deployment>.bind()`)")
    try:
        return built_deployment_names(target, name="check")
    except Exception as error:
        return f"{import_path} does not build: {type(error).__name__}: {error}"


def import_path_problems(applications: Iterable[ApplicationSpec]) -> list[tuple[str, str]]:
    """(field path, message) for every app whose code does not match its spec."""
    problems: list[tuple[str, str]] = []
    for app in applications:
        found = built_deployments(app.import_path)
        if isinstance(found, str):
            problems.append((f"apps.{app.name}.import_path", found))
            continue
        missing = sorted({dep.name for dep in app.deployments} - set(found))
        if missing:
            problems.append((f"apps.{app.name}.deployments", (
                f"{app.import_path} binds {list(found)}, not {missing}: the spec configures "
                "deployments the application does not have")))
    return problems
