"""The offline runner: config passed the way the CLI passes it, registrations recorded whole."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from infra.stack_file import project_defaults, stack_file
from servestack.offline import (
    SECRET_PLACEHOLDER,
    encode_config_value,
    run_stack,
    run_stack_file,
    stack_config,
)


def test_strings_pass_as_is_and_everything_else_as_json() -> None:
    assert encode_config_value("servestack") == "servestack"
    assert json.loads(encode_config_value({"b": 1, "a": [True]})) == {"a": [True], "b": 1}


def test_pulumi_yaml_defaults_apply_when_the_stack_omits_a_key(tmp_path: Path) -> None:
    assert project_defaults() == {"servestack:namespace": "servestack"}
    document = yaml.safe_load(stack_file("dev").read_text())
    del document["config"]["servestack:namespace"]
    path = tmp_path / "Pulumi.nons.yaml"
    path.write_text(yaml.safe_dump(document))
    config, _ = stack_config(path)
    assert config["servestack:namespace"] == "servestack"
    run = run_stack_file(path).check()
    assert run.outputs["namespace"] == "servestack"


def test_secure_values_get_a_placeholder_unless_given(tmp_path: Path) -> None:
    document = yaml.safe_load(stack_file("prod").read_text())
    document["config"]["servestack:redisPassword"] = {"secure": "v1:AAAA"}
    path = tmp_path / "Pulumi.sealed.yaml"
    path.write_text(yaml.safe_dump(document))
    config, secret_keys = stack_config(path)
    assert config["servestack:redisPassword"] == SECRET_PLACEHOLDER
    assert secret_keys == ["servestack:redisPassword"]
    config, _ = stack_config(path, secrets={"redisPassword": "hunter2"})
    assert config["servestack:redisPassword"] == "hunter2"


def test_registrations_keep_parent_provider_and_remote_flag() -> None:
    run = run_stack("dev").check()
    operator = run.one("servestack:index:KubeRayOperator")
    crd = run.one("kubernetes:yaml/v2:ConfigFile", "kuberay-crd-rayservices")
    assert crd.parent == operator.urn and crd.remote and not operator.custom
    release = run.one("kubernetes:helm.sh/v3:Release", "kuberay")
    assert release.parent == operator.urn and release.custom and not release.remote
    assert set(release.options.depends_on) == {
        r.urn for r in run.of_type("kubernetes:yaml/v2:ConfigFile")}


def test_program_warnings_are_collected() -> None:
    run = run_stack("local").check()
    assert any("NewCluster upgrade" in warning for warning in run.warnings)


def test_runs_do_not_leak_into_each_other() -> None:
    broken = run_stack_file(Path(__file__).parent.parent / "fixtures" / "broken-unknown-key.yaml")
    assert broken.error is not None and broken.resources == ()
    local = run_stack("local").check()
    dev = run_stack("dev").check()
    assert local.of_type("command:local:Command") and not dev.of_type("command:local:Command")
    assert all(r.urn.startswith("urn:pulumi:dev::servestack::") for r in dev.resources)
    assert [r.urn for r in dev.resources] == sorted(r.urn for r in dev.resources)
