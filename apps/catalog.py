"""Every app a stack may name: the ones servestack ships, and the ones other packages register.

A team's own app lives in its own package and registers its default spec under the
`servestack.apps` entry point group (docs/apps.md, "Add your own app"). A registered app is
loaded only when a stack names it, so a broken package breaks only the stacks that use it,
and loading one imports only its spec module: a spec module never imports Ray.

The shipped apps stay built in rather than registering through servestack's own pyproject.
A source checkout (the tests, the local head's PYTHONPATH) then has them without installed
package metadata, and a stale install cannot lose them.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType

from apps.classifier.spec import CLASSIFIER
from apps.embeddings.spec import EMBEDDINGS
from apps.search.spec import SEARCH
from apps.spec import ApplicationSpec, SpecError

ENTRY_POINT_GROUP = "servestack.apps"

CATALOG: Mapping[str, ApplicationSpec] = MappingProxyType(
    {spec.name: spec for spec in (EMBEDDINGS, CLASSIFIER, SEARCH)}
)
"""The apps servestack ships, by name: the examples an app of your own follows."""


def registration_snippet(name: str) -> str:
    """What registers an app: the entry point a team's pyproject.toml declares."""
    return (f'[project.entry-points."{ENTRY_POINT_GROUP}"]\n'
            f'{name} = "your_package.spec:SPEC"')


@cache
def registered_entry_points() -> Mapping[str, tuple[EntryPoint, ...]]:
    """The installed packages' `servestack.apps` entry points by name, not yet loaded."""
    found: dict[str, list[EntryPoint]] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, []).append(point)
    return MappingProxyType({name: tuple(points) for name, points in sorted(found.items())})


def known_apps() -> tuple[str, ...]:
    return tuple(sorted({*CATALOG, *registered_entry_points()}))


def unknown_app_message(name: str) -> str:
    return (f"unknown app {name!r}; known: {list(known_apps())}. To add an app of your own, "
            f"register its default ApplicationSpec in your package's pyproject.toml:\n"
            f"{registration_snippet(name)}\nthen `pip install` the package where servestack "
            "runs (docs/apps.md, \"Add your own app\")")


def app_spec(name: str) -> ApplicationSpec:
    """The default spec of the app `name`. A problem is a SpecError at `<root>`, which the
    caller names (`apps.<name>`)."""
    points = registered_entry_points().get(name, ())
    owners = sorted({_owner(point) for point in points})
    if name in CATALOG:
        if points:
            raise SpecError([("<root>", f"{name!r} is a shipped app and is also registered by "
                                        f"{owners}: rename the entry point")])
        return CATALOG[name]
    if not points:
        raise SpecError([("<root>", unknown_app_message(name))])
    if len(points) > 1:
        raise SpecError([("<root>", f"{name!r} is registered more than once, by {owners}: "
                                    "uninstall or rename all but one")])
    (point,) = points
    try:
        spec = point.load()
    except Exception as error:  # any import failure of someone else's package, named
        raise SpecError([("<root>", f"its entry point {name} = {point.value!r} ({owners[0]}) "
                                    f"does not load: {type(error).__name__}: {error}")]) from None
    if not isinstance(spec, ApplicationSpec):
        raise SpecError([("<root>", f"entry point {name} = {point.value!r} is of type "
                                    f"{type(spec).__name__}, not apps.spec.ApplicationSpec")])
    if spec.name != name:
        raise SpecError([("<root>", f"entry point {name} = {point.value!r} names its app "
                                    f"{spec.name!r}: give the entry point the app's name")])
    return spec


def _owner(point: EntryPoint) -> str:
    dist = point.dist
    return dist.name if dist is not None else point.value
