"""`validate_stack`: the one decision on a stack, with its rules in the models that own them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.config import ImageConfig, StackConfigError, parse_stack_config
from infra.stack_file import read_stack_file, source_from_stack_file, stack_file
from infra.validation import StackSource, validate_stack
from servestack.cli import app, commands  # noqa: F401  (commands register themselves on app)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"


def problems_of(name: str, values: Mapping[str, Any],
                secrets: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    with pytest.raises(StackConfigError) as raised:
        validate_stack(StackSource(name, values, secrets))
    return list(raised.value.problems)


def local_with(**changes: Any) -> dict[str, Any]:
    return {**read_stack_file(stack_file("local")), **changes}


@pytest.mark.parametrize("repository", [
    "ghcr.io/acme/app:latest", "rayproject/ray:2.59.0", "app:1",
    "ghcr.io/acme/app@sha256:" + "0" * 64, "localhost:5000/app:dev",
])
def test_a_tag_or_digest_in_the_repository_is_refused_saying_where_tags_come_from(
    repository: str,
) -> None:
    with pytest.raises(ValueError, match="carries a tag or digest") as raised:
        ImageConfig(repository=repository)
    assert "servestack tags the image itself" in str(raised.value)
    assert ":2.60.0-<variant>-cpu|gpu" in str(raised.value)


@pytest.mark.parametrize("repository", ["localhost:5000/app", "ghcr.io/acme/app", "app"])
def test_a_registry_port_is_not_a_tag(repository: str) -> None:
    assert ImageConfig(repository=repository).reference(gpu=False) == (
        f"{repository}:2.60.0-py311-cpu")


def test_the_tag_is_refused_at_its_field_path() -> None:
    problems = problems_of("local", local_with(image={"repository": "rayproject/ray:2.59.0"}))
    assert [path for path, _ in problems] == ["image.repository"]


def test_the_upgrade_strategy_rule_lives_on_its_field() -> None:
    rayservice = {"upgrade_strategy": "NewClusterWithIncrementalUpgrade"}
    with pytest.raises(StackConfigError) as raised:
        parse_stack_config("local", local_with(rayservice=rayservice))
    ((path, message),) = raised.value.problems
    assert path == "rayservice.upgrade_strategy" and "clusterUpgradeOptions" in message


def test_backend_pool_rules_live_on_the_cluster_model_with_pool_paths() -> None:
    raw = read_stack_file(stack_file("staging"))
    raw["pools"] = [{k: v for k, v in pool.items() if k != "machine_type"}
                    for pool in raw["pools"]]
    raw["pools"][1]["accelerator"]["resource"] = "nvidia.com/mig-1g.5gb"
    with pytest.raises(StackConfigError) as raised:
        parse_stack_config("staging", raw)
    assert [path for path, _ in raised.value.problems] == [
        "pools[cpu].machine_type", "pools[gpu-a10g].machine_type",
        "pools[gpu-a10g].accelerator.resource"]
    assert parse_stack_config("staging", raw, backend_rules=False).stack == "staging"


def test_a_plain_text_secret_is_an_error_in_staging_and_prod_and_a_warning_elsewhere() -> None:
    values = {**read_stack_file(stack_file("prod")), "redisPassword": "hunter2"}
    for name in ("prod", "staging", "some-new-stack"):
        problems = problems_of(name, values)
        assert [path for path, _ in problems] == ["redisPassword"], name
    valid = validate_stack(StackSource("dev", values, frozenset()))
    (warning,) = [w for w in valid.warnings if "redisPassword" in w]
    message = dict(problems_of("prod", values))["redisPassword"]
    assert warning == f"servestack:redisPassword: {message}"
    assert "`pulumi config set --secret servestack:redisPassword <value>`" in message


def test_a_missing_required_secret_is_an_error_naming_the_command() -> None:
    problems = dict(problems_of("prod", read_stack_file(stack_file("prod"))))
    assert problems["redisPassword"].startswith("missing: the password of the GCS")


def test_a_secret_key_servestack_does_not_read_is_an_unknown_field() -> None:
    problems = problems_of("local", local_with(), frozenset({"redisPasword"}))
    assert problems == [("redisPasword", "unknown field 'redisPasword'; remove it or check its "
                                         "spelling")]


def test_backend_secret_and_capacity_problems_come_together() -> None:
    raw = read_stack_file(stack_file("staging"))
    del raw["pools"][0]["machine_type"]
    raw["pools"][0]["max_nodes"] = 1
    raw["redisPassword"] = "hunter2"
    paths = [path for path, _ in problems_of("staging", raw)]
    assert {"pools[cpu].machine_type", "redisPassword", "pools[cpu].max_nodes"} <= set(paths)


def test_offline_sources_count_required_secrets_as_set_but_not_plain_ones(tmp_path: Path) -> None:
    assert source_from_stack_file(stack_file("prod")).secret_keys == {"redisPassword"}
    assert source_from_stack_file(stack_file("prod"), fill_secrets=False).secret_keys == set()
    plain = tmp_path / "Pulumi.prod.yaml"
    plain.write_text((FIXTURES / "broken-plain-secret.yaml").read_text())
    source = source_from_stack_file(plain)
    assert source.values["redisPassword"] == "hunter2" and source.secret_keys == set()


def test_plan_warns_about_a_plain_secret_in_dev_and_never_calls_it_unknown(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text((FIXTURES / "broken-plain-secret.yaml").read_text())
    result = CliRunner().invoke(app, ["plan", "--stack", "dev", "--stacks-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "unknown field" not in result.output
    assert "warning: servestack:redisPassword: the password of the GCS" in result.output


def test_exit_codes_are_spelled_only_in_their_module() -> None:
    offenders = [
        str(path.relative_to(REPO)) for path in (REPO / "servestack" / "cli").glob("*.py")
        if path.name != "exit_codes.py" and "EXIT_" in path.read_text()
        and any(line.startswith("EXIT_") for line in path.read_text().splitlines())
    ]
    assert offenders == []


def test_a_negative_ingress_drain_is_refused_at_its_field_path() -> None:
    ((path, message),) = problems_of("local", local_with(serve={"ingress_drain_s": -1}))
    assert path == "serve.ingress_drain_s"
    assert "greater than or equal to 0" in message


@pytest.mark.parametrize("name", ["dev", "staging", "prod"])
def test_cluster_stacks_keep_rays_ingress_drain_and_the_local_one_is_shorter(name: str) -> None:
    """A cluster's HAProxies each need the controller's broadcast before a replica stops;
    one local node needs only its own reload, and a short drain keeps `stop` under 30 s."""
    from infra.ray_internals import serve_direct_ingress_min_draining_period_s
    from infra.stack_file import load_stack

    cluster = load_stack(name).stack.serve.ingress_drain_s
    assert cluster == serve_direct_ingress_min_draining_period_s()
    assert load_stack("local").stack.serve.ingress_drain_s < cluster
