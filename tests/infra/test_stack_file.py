"""Stack files are read as strictly as the Pulumi CLI reads them, errors on one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.stack_file import (
    StackFileError,
    display_path,
    load_stack,
    load_yaml,
    read_stack_file,
    stack_file,
    stack_name,
)

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "Pulumi.x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_syntax_error_is_one_line_with_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "config:\n  servestack:namespace: a\n  servestack:pools: [\n")
    with pytest.raises(StackFileError) as raised:
        load_yaml(path)
    message = str(raised.value)
    assert "\n" not in message and "<unicode string>" not in message
    assert message.startswith(f"{path}:4:1: ")


def test_the_file_is_named_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "stacks").mkdir()
    path = write(tmp_path / "stacks", "config: {a: [}\n", "Pulumi.prod.yaml")
    monkeypatch.chdir(tmp_path)
    assert display_path(path) == "stacks/Pulumi.prod.yaml"
    with pytest.raises(StackFileError, match=r"^stacks/Pulumi\.prod\.yaml:1:\d+: "):
        load_yaml(path)


def test_a_key_written_twice_names_both_lines_and_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "config:\n  servestack:apps:\n    search: {}\n"
                           "    embeddings: {}\n    search:\n      deployments: {}\n")
    with pytest.raises(StackFileError) as raised:
        load_yaml(path)
    assert str(raised.value) == (
        f"{path}:5:5: servestack:apps.search: written twice, at lines 3 and 5; YAML would keep "
        "only the last one, so merge the two into one")


def test_duplicates_are_found_inside_lists_too(tmp_path: Path) -> None:
    path = write(tmp_path, "config:\n  servestack:pools:\n    - name: cpu\n      cpu: 1\n"
                           "      cpu: 2\n")
    with pytest.raises(StackFileError, match=r":5:7: servestack:pools\.0\.cpu: written twice"):
        load_yaml(path)


def test_merge_keys_and_equal_keys_in_different_mappings_are_fine(tmp_path: Path) -> None:
    path = write(tmp_path, "base: &base {cpu: 1}\nconfig:\n  a: {<<: *base, cpu: 2}\n"
                           "  b: {cpu: 3}\n")
    assert load_yaml(path)["config"] == {"a": {"cpu": 2}, "b": {"cpu": 3}}


def test_keys_without_a_namespace_belong_to_the_project(tmp_path: Path) -> None:
    path = write(tmp_path, "config:\n  namespace: a\n  aws:region: b\n"
                           "  servestack:kubeconfig: {secure: v1:x}\n")
    assert read_stack_file(path) == {"namespace": "a"}


def test_a_stack_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackFileError, match="`config` must be a mapping"):
        read_stack_file(write(tmp_path, "config: [a, b]\n"))


def test_the_stack_name_comes_from_the_file_name() -> None:
    assert stack_name(Path("stacks/Pulumi.prod.yaml")) == "prod"
    assert stack_name(stack_file("dev")) == "dev"


def test_stack_names_from_paths_are_spelled_in_one_place() -> None:
    offenders = [
        str(path.relative_to(REPO)) for room in ("infra", "servestack", "policies")
        for path in (REPO / room).rglob("*.py")
        if 'removeprefix("Pulumi.")' in path.read_text() and path.name != "stack_file.py"
    ]
    assert offenders == []


def test_loading_a_shipped_stack_validates_it_as_the_program_does() -> None:
    valid = load_stack("prod")
    assert valid.stack.stack == "prod"
    assert valid.serve_config["applications"]
    assert valid.plan.stack == "prod"
