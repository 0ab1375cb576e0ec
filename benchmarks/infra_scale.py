"""How render/plan time grows with the number of applications (1, 10, 100).

Generated apps are copies of the catalog's apps with distinct names and route prefixes.
A stack file can only name catalog apps, so the generated specs are handed to the same
functions a stack's resolved apps go through: Serve config building, Ray's
ServeDeploySchema validation, YAML rendering and the capacity plan.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from apps.catalog import CATALOG
from apps.spec import ApplicationSpec
from infra.config import NodePool, StackConfig, load_stack_config
from infra.serve_config import application_entry, to_yaml, validate_serve_config

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


def stack_with(apps: tuple[ApplicationSpec, ...]) -> StackConfig:
    """The local stack with one pool big enough for every generated app at max replicas."""
    base = load_stack_config("local")
    pool = base.pools[0].model_dump()
    pool.update(max_nodes=max(4, len(apps)), cpu=64, memory=512 * 1024**3)
    stack = base.model_copy(update={"pools": (NodePool.model_validate(pool),)})
    # `applications` is a cached_property resolved from catalog names; generated apps
    # are not in the catalog, so they are placed where the resolved value would live.
    stack.__dict__["applications"] = apps
    return stack


def _median_ms(action: Callable[[], object], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return round(statistics.median(timings) * 1000, 3)


def _capacity_ms(stack: StackConfig, repeats: int) -> float | str:
    from infra.capacity import plan_capacity

    try:
        plan_capacity(stack)
    except NotImplementedError:
        return "not implemented"
    return _median_ms(lambda: plan_capacity(stack), repeats)


def measure(sizes: tuple[int, ...] = SIZES, repeats: int = 5) -> list[dict[str, Any]]:
    validate_serve_config({"applications": []})  # import Ray's schema outside the timings
    rows = []
    for count in sizes:
        apps = generated_apps(count)
        stack = stack_with(apps)
        document: dict[str, Any] = {}

        def build(apps: tuple[ApplicationSpec, ...] = apps) -> None:
            document.update(
                proxy_location=stack.serve.proxy_location,
                http_options=stack.serve.http.model_dump(exclude_none=True),
                applications=[application_entry(app) for app in apps],
            )

        build()
        rows.append({
            "apps": count,
            "deployments": sum(len(app.deployments) for app in apps),
            "build_serve_config_ms": _median_ms(build, repeats),
            "validate_serve_deploy_schema_ms": _median_ms(
                lambda doc=document: validate_serve_config(doc), repeats),
            "render_yaml_ms": _median_ms(lambda doc=document: to_yaml(doc), repeats),
            "plan_capacity_ms": _capacity_ms(stack, repeats),
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
