"""Stack files on disk, `stacks/Pulumi.<stack>.yaml`, read as strictly as the Pulumi CLI reads them.

PyYAML alone would let two mistakes through that `pulumi up` refuses or mangles: a syntax
error becomes a traceback naming `<unicode string>`, and a key written twice silently keeps
the last block. Here both are one line, `stacks/Pulumi.prod.yaml:33:20: <problem>`, from every
command that reads a stack file (plan, render, check, diff, serve and the offline program).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from infra.config import PROJECT, REPO_ROOT, STACKS_DIR, StackConfig
from infra.validation import (
    StackSource,
    ValidStack,
    parsing_once,
    required_secret_keys,
    validate_stack,
)

PROJECT_FILE: Final = REPO_ROOT / "Pulumi.yaml"
_PREFIX: Final = f"{PROJECT}:"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


class StackFileError(ValueError):
    """A stack file that cannot be read as one: the message is one line, `path:line:col: ...`."""


def display_path(path: Path) -> str:
    """The path as its user knows it: relative to the working directory when it lies inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def stack_name(path: Path) -> str:
    """`stacks/Pulumi.prod.yaml` → `prod`: the one place a file name becomes a stack name."""
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


def stack_file(stack: str, stacks_dir: Path = STACKS_DIR) -> Path:
    return stacks_dir / f"Pulumi.{stack}.yaml"


def available_stacks(stacks_dir: Path = STACKS_DIR) -> list[str]:
    return sorted(stack_name(path) for path in stacks_dir.glob("Pulumi.*.yaml"))


class StackFileLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a mapping key written twice, naming both lines.

    The Pulumi CLI's YAML parser refuses duplicates too; PyYAML would keep the last one, so
    an app listed twice under `servestack:apps` would silently lose its first block.
    """

    def construct_document(self, node: Node) -> Any:
        _refuse_duplicate_keys(node, "", set())
        return super().construct_document(node)


def _refuse_duplicate_keys(node: Node, path: str, seen: set[int]) -> None:
    if id(node) in seen:  # an alias: its anchor was checked already
        return
    seen.add(id(node))
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(item, f"{path}.{index}" if path else str(index), seen)
    if not isinstance(node, MappingNode):
        return
    first_lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
            continue  # `<<: *defaults` may be overridden; complex keys are not config keys
        key = str(key_node.value)
        where = f"{path}.{key}" if path else key
        line = key_node.start_mark.line + 1
        if key in first_lines:
            shown = where.removeprefix("config.")
            raise yaml.constructor.ConstructorError(
                None, None,
                f"{shown}: written twice, at lines {first_lines[key]} and {line}; YAML would "
                "keep only the last one, so merge the two into one",
                key_node.start_mark,
            )
        first_lines[key] = line
        _refuse_duplicate_keys(value_node, where, seen)


def load_yaml(path: Path) -> Any:
    """A YAML file through StackFileLoader; any problem becomes one StackFileError line."""
    shown = display_path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise StackFileError(f"{shown}: cannot read it: {error.strerror}") from None
    try:
        return yaml.load(text, Loader=StackFileLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = " ".join(str(error.problem or error.context or "invalid YAML").split())
        if error.context and error.problem and error.context_mark is not None:
            problem += f" ({error.context} at line {error.context_mark.line + 1})"
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark is not None else shown
        raise StackFileError(f"{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise StackFileError(f"{shown}: {' '.join(str(error).split())}") from None


def project_defaults(project_file: Path = PROJECT_FILE) -> dict[str, Any]:
    """Pulumi.yaml `config:` defaults, fully qualified (the CLI applies these, mocks do not)."""
    document = load_yaml(project_file) or {}
    defaults = {}
    for key, spec in (document.get("config") or {}).items():
        if isinstance(spec, Mapping) and "default" in spec:
            defaults[key if ":" in key else f"{PROJECT}:{key}"] = spec["default"]
    return defaults


def read_config_entries(path: Path) -> tuple[dict[str, Any], frozenset[str]]:
    """(plain values, keys stored as `secure:`) of a stack file, keys fully qualified.

    A key without a namespace belongs to the project, as the Pulumi CLI reads it.
    """
    document = load_yaml(path)
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise StackFileError(f"{display_path(path)}: expected a mapping with a `config:` key")
    entries = document.get("config") or {}
    if not isinstance(entries, Mapping):
        raise StackFileError(f"{display_path(path)}: `config` must be a mapping of config keys, "
                             f"e.g. `{_PREFIX}namespace: serving`")
    plain: dict[str, Any] = {}
    secure: set[str] = set()
    for key, value in entries.items():
        full = str(key) if ":" in str(key) else f"{_PREFIX}{key}"
        if isinstance(value, Mapping) and set(value) == {"secure"}:
            secure.add(full)
        else:
            plain[full] = value
    return plain, frozenset(secure)


def read_stack_file(path: Path) -> dict[str, Any]:
    """The plain `servestack:` keys of a stack file, prefix stripped; secure values left out."""
    plain, _ = read_config_entries(path)
    return {key.removeprefix(_PREFIX): value for key, value in plain.items()
            if key.startswith(_PREFIX)}


def source_from_stack_file(path: Path, stack: str | None = None,
                      fill_secrets: bool = True) -> StackSource:
    """A stack file as the program sees it through the Pulumi CLI, without the CLI.

    Project defaults apply. `secure:` values count as set; they cannot be decrypted offline,
    so the offline engine hands the program placeholders for them. With `fill_secrets`, the
    secrets the stack requires but lacks get placeholders too, as `placeholder_keys`, which
    validate_stack names as absent; without it (`check --require-secrets`), they are missing.
    """
    defaults = {key.removeprefix(_PREFIX): value for key, value in project_defaults().items()
                if key.startswith(_PREFIX)}
    plain, secure = read_config_entries(path)
    values = {**defaults, **{key.removeprefix(_PREFIX): value for key, value in plain.items()
                             if key.startswith(_PREFIX)}}
    name = stack or stack_name(path)
    secret_keys = {key.removeprefix(_PREFIX) for key in secure if key.startswith(_PREFIX)}
    source = StackSource(name, values, frozenset(secret_keys))
    return with_placeholders(source, required_secret_keys(source)) if fill_secrets else source


def with_placeholders(source: StackSource, required: Collection[str]) -> StackSource:
    """`source` with a placeholder for each `required` secret it neither sets nor holds in
    plain text: counted as set, and named in `placeholder_keys`."""
    placeholders = frozenset(required) - set(source.values) - source.secret_keys
    return replace(source, secret_keys=source.secret_keys | placeholders,
                   placeholder_keys=placeholders)


def load_stack(stack: str, stacks_dir: Path = STACKS_DIR) -> ValidStack:
    """Read and validate `stacks/Pulumi.<stack>.yaml` without Pulumi, exactly as `up` would.

    Raises FileNotFoundError for an unknown stack, StackFileError for a file that is not
    valid YAML, StackConfigError for a stack `pulumi up` would refuse.
    """
    path = stack_file(stack, stacks_dir)
    if not path.is_file():
        known = ", ".join(available_stacks(stacks_dir)) or "none"
        raise FileNotFoundError(f"no stack {stack!r}: {path} does not exist (stacks: {known})")
    with parsing_once():  # the placeholders' parse is validate_stack's
        return validate_stack(source_from_stack_file(path, stack))


def load_stack_config(stack: str, stacks_dir: Path = STACKS_DIR) -> StackConfig:
    """The validated StackConfig of a stack file (tests and tools that need only the config)."""
    return load_stack(stack, stacks_dir).stack
