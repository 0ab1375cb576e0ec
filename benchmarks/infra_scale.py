"""How render/plan time grows with the number of applications (1, 10, 100).

Generated apps are copies of the catalog's apps with distinct names and route prefixes. A
stack file may only name catalog apps, so for the duration of a measurement the catalog
that `apps.catalog` resolves stacks from is extended with the generated specs; everything
else is the real path: stack parsing and override resolution, Serve config building, Ray's
ServeDeploySchema, YAML rendering, the capacity plan and the whole Pulumi program under
the offline mocks.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any
from unittest import mock

import typer
import yaml

from apps import catalog
from apps.catalog import CATALOG
from apps.spec import ApplicationSpec
from infra.config import STACKS_DIR, parse_stack_config
from infra.serve_config import application_entry, to_yaml, validate_serve_config
from infra.stack_file import read_stack_file

SIZES = (1, 10, 100)


def generated_apps(count: int) -> tuple[ApplicationSpec, ...]:
    """`count` valid apps cycling through the catalog, each with its own name and prefix."""
    templates = [CATALOG[name] for name in sorted(CATALOG)]
    apps = []
    for index in range(count):
        template = templates[index % len(templates)]
        data = {"name": f"{template.name}-{index:03d}",
                "route_prefix": f"{template.route_prefix}-{index:03d}"}
        apps.append(template.model_copy(update=data))
    return tuple(apps)


@contextlib.contextmanager
def catalog_with(apps: tuple[ApplicationSpec, ...]) -> Iterator[None]:
    extended = MappingProxyType({**CATALOG, **{app.name: app for app in apps}})
    with mock.patch.object(catalog, "CATALOG", extended):
        yield


def stack_document(apps: tuple[ApplicationSpec, ...]) -> dict[str, Any]:
    """The local stack's keys with the generated apps and a pool that holds them all."""
    raw = read_stack_file(STACKS_DIR / "Pulumi.local.yaml")
    pool = dict(raw["pools"][0])
    pool.update(cpu=64, memory="512GiB", max_nodes=max(4, len(apps)))
    raw.update(pools=[pool], apps={app.name: None for app in apps})
    return raw


def _entries(apps: tuple[ApplicationSpec, ...]) -> list[dict[str, Any]]:
    return [application_entry(app) for app in apps]


def _median_ms(action: Callable[[], object], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return round(statistics.median(timings) * 1000, 3)


def _offline_program_ms(raw: dict[str, Any], repeats: int) -> float | str:
    try:
        from servestack.offline import run_stack_file
    except ImportError:
        return "no servestack.offline"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Pulumi.scale.yaml"
        document = {"config": {f"servestack:{key}": value for key, value in raw.items()}}
        path.write_text(yaml.safe_dump(document, sort_keys=True))
        first = run_stack_file(path)
        if first.error is not None:
            return f"program error: {type(first.error).__name__}: {first.error}"[:200]
        return _median_ms(lambda: run_stack_file(path), repeats)


def measure(sizes: tuple[int, ...] = SIZES, repeats: int = 5,
            offline_program: bool = True) -> list[dict[str, Any]]:
    from infra.capacity import plan_capacity

    validate_serve_config({"applications": []})  # import Ray's schema outside the timings
    rows = []
    for count in sizes:
        apps = generated_apps(count)
        raw = stack_document(apps)
        with catalog_with(apps):
            def parse(raw: dict[str, Any] = raw) -> Any:
                return parse_stack_config("scale", raw)  # resolves every app's overrides

            stack = parse()
            resolved = stack.applications
            document: dict[str, Any] = {
                "proxy_location": stack.serve.proxy_location,
                "http_options": stack.serve.http.model_dump(exclude_none=True),
                "applications": [application_entry(app) for app in resolved],
            }
            rows.append({
                "apps": count,
                "deployments": sum(len(app.deployments) for app in resolved),
                "resolve_overrides_ms": _median_ms(parse, repeats),
                "build_serve_config_ms": _median_ms(
                    partial(_entries, resolved), repeats),
                "validate_serve_deploy_schema_ms": _median_ms(
                    partial(validate_serve_config, document), repeats),
                "render_yaml_ms": _median_ms(partial(to_yaml, document), repeats),
                "plan_capacity_ms": _median_ms(partial(plan_capacity, stack), repeats),
                "offline_program_ms": _offline_program_ms(raw, max(1, repeats // 2))
                if offline_program else None,
                "serve_config_bytes": len(json.dumps(document, sort_keys=True)),
            })
    return rows


cli = typer.Typer(add_completion=False)


@cli.command()
def main(
    repeats: int = typer.Option(5, min=1, help="Median of this many runs per size."),
    output: Path | None = typer.Option(None, help="Write the rows as JSON here."),
) -> None:
    """Time Serve config build, schema validation, YAML render and capacity plan vs app count."""
    rows = measure(repeats=repeats)
    text = json.dumps(rows, indent=2, sort_keys=True)
    if output:
        output.write_text(text + "\n")
    typer.echo(text)


if __name__ == "__main__":
    cli()
