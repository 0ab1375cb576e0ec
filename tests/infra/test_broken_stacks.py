"""Broken stacks stop the program before the first resource, naming the field and the fix.

Every tests/fixtures/broken-*.yaml states on an `# Expected: ...` line which field its error
must name; tests/servestack/render/test_broken_stacks_agree.py holds the program and every
command to it. Here: broken stacks written on the fly.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import yaml

from infra.stack_file import stack_file
from servestack.offline import ProgramRun, run_stack, run_stack_file

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BROKEN = sorted(FIXTURES.glob("broken-*.yaml"))


def assert_refused(run: ProgramRun, *fragments: str) -> str:
    assert isinstance(run.error, pulumi.RunError), run.error
    message = str(run.error)
    for fragment in fragments:
        assert fragment in message, message
    assert run.resources == (), [r.name for r in run.resources]
    return message


def write_stack(tmp_path: Path, name: str, base: str, patch: dict[str, object]) -> Path:
    """A copy of a shipped stack file with some `servestack:` keys replaced (None deletes)."""
    document = yaml.safe_load(stack_file(base).read_text())
    for key, value in patch.items():
        if value is None:
            document["config"].pop(key, None)
        else:
            document["config"][key] = value
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_there_are_config_and_capacity_fixtures() -> None:
    names = {path.stem for path in BROKEN}
    assert {"broken-unknown-key", "broken-min-gt-max", "broken-gpu-no-pool",
            "broken-replica-too-large", "broken-taint-no-toleration", "broken-yaml-syntax",
            "broken-duplicate-app", "broken-image-tag", "broken-eks-pool-no-instance-type",
            "broken-incremental-upgrade", "broken-plain-secret"} <= names


def test_missing_redis_password_is_reported_with_the_command_that_sets_it() -> None:
    run = run_stack("prod", fill_secrets=False)
    assert_refused(run, "servestack:redisPassword: missing",
                   "pulumi config set --secret servestack:redisPassword")


def test_nested_unknown_key_is_named_with_its_full_path(tmp_path: Path) -> None:
    path = write_stack(tmp_path, "typo", "local", {"servestack:rayservice": {
        "upgrade_strategy": "NewCluster", "idle_timeout_s": 60}})
    assert_refused(run_stack_file(path), "servestack:rayservice.idle_timeout_s: unknown field")


def test_a_scalar_where_a_mapping_belongs_is_refused(tmp_path: Path) -> None:
    path = write_stack(tmp_path, "scalar", "local", {"servestack:pools": "cpu"})
    assert_refused(run_stack_file(path), "servestack:pools")


def test_incremental_upgrade_is_refused_until_its_options_are_modelled(tmp_path: Path) -> None:
    path = write_stack(tmp_path, "incremental", "dev", {"servestack:rayservice": {
        "upgrade_strategy": "NewClusterWithIncrementalUpgrade"}})
    assert_refused(run_stack_file(path), "servestack:rayservice.upgrade_strategy:",
                   "clusterUpgradeOptions")


def test_gke_pool_without_machine_type_is_refused(tmp_path: Path) -> None:
    pools = yaml.safe_load(stack_file("dev").read_text())["config"]["servestack:pools"]
    del pools[1]["machine_type"]
    path = write_stack(tmp_path, "nomachine", "dev", {"servestack:pools": pools})
    assert_refused(run_stack_file(path), "servestack:pools[gpu-l4].machine_type:")


def test_backend_and_capacity_problems_are_reported_together(tmp_path: Path) -> None:
    pools = yaml.safe_load(stack_file("dev").read_text())["config"]["servestack:pools"]
    del pools[0]["machine_type"]
    assert pools[1]["name"] == "gpu-l4"
    pools[1]["max_nodes"] = 1  # its worst case needs 2
    path = write_stack(tmp_path, "both", "dev", {"servestack:pools": pools})
    assert_refused(run_stack_file(path), "servestack:pools[cpu].machine_type:",
                   "servestack:pools[gpu-l4].max_nodes:")


def test_a_plain_text_secret_outside_staging_and_prod_is_a_warning_naming_the_command(
    tmp_path: Path,
) -> None:
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text((FIXTURES / "broken-plain-secret.yaml").read_text())
    run = run_stack_file(path).check()
    (warning,) = [w for w in run.warnings if "redisPassword" in w]
    assert warning.startswith("servestack:redisPassword: the password of the GCS")
    assert "`pulumi config set --secret servestack:redisPassword <value>`" in warning


def test_a_plain_text_secret_in_staging_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.staging.yaml"
    path.write_text((FIXTURES / "broken-plain-secret.yaml").read_text())
    assert_refused(run_stack_file(path), "servestack:redisPassword: the password",
                   "stored in plain text")
