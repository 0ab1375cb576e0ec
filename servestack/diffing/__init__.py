"""`servestack diff`: render a base git ref and the working tree, and say what would change.

Both sides are rendered by their own code (the base in a detached `git worktree`, each in a
subprocess with its tree first on PYTHONPATH), so a change to the program shows up exactly
like a change to a stack file. No Pulumi backend or cloud credentials are involved.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from infra.pod_preview import RAYSERVICE_TYPE
from infra.stack_file import available_stacks, stack_file
from infra.validation import parsing_once
from servestack.diffing.capacity_delta import CapacityDelta, capacity_delta
from servestack.diffing.cost_delta import CostDelta, cost_delta
from servestack.diffing.fields import FieldChange, field_changes
from servestack.diffing.rollout import RayServiceChange, rayservice_change
from servestack.offline import absent_secrets, offline_source
from servestack.render import CAPACITY_PLAN, COST_ESTIMATE, INDEX, POLICY_REPORT, UPGRADE_PLAN

RENDER_TIMEOUT_S = 900


class DiffError(RuntimeError):
    """The diff cannot be computed: bad ref, not a git repo, or a side that cannot render."""


@dataclass(frozen=True)
class ResourceChange:
    urn: str
    type: str
    name: str
    status: Literal["added", "removed", "changed"]
    fields: tuple[FieldChange, ...]


@dataclass(frozen=True)
class StackDiff:
    stack: str
    base_error: str | None
    head_error: str | None
    resources: tuple[ResourceChange, ...] = ()
    rayservices: tuple[RayServiceChange, ...] = ()
    capacity: CapacityDelta | None = None
    policies: Mapping[str, Any] | None = None  # the working tree's policy report
    absent_secrets: tuple[str, ...] = ()  # the working tree's: what `pulumi up` will ask for
    cost: CostDelta | None = None
    upgrade: Mapping[str, Any] | None = None  # the working tree's upgrade plan

    @property
    def changed(self) -> bool:
        return (bool(self.resources) or self.base_error is not None
                or self.head_error is not None or (self.cost is not None and self.cost.changed))


@dataclass(frozen=True)
class DiffResult:
    base_ref: str
    base_commit: str
    stacks: tuple[StackDiff, ...]


# --- git and the two renders ----------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DiffError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def repo_root(start: Path) -> Path:
    return Path(_git(start, "rev-parse", "--show-toplevel"))


@contextmanager
def base_worktree(repo: Path, ref: str) -> Iterator[tuple[Path, str]]:
    """A detached worktree of `ref`, removed again afterwards whatever happens."""
    try:
        commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except DiffError:
        raise DiffError(
            f"{ref!r} is not a commit in {repo}; fetch it or pick another --base"
        ) from None
    holder = Path(tempfile.mkdtemp(prefix="servestack-base-"))
    tree = holder / "tree"
    _git(repo, "worktree", "add", "--detach", "--quiet", str(tree), commit)
    try:
        yield tree, commit
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=repo,
                       capture_output=True, check=False)
        shutil.rmtree(holder, ignore_errors=True)


def stacks_in(tree: Path) -> list[str]:
    return available_stacks(tree / "stacks")


def _cli_module(tree: Path) -> str:
    """The CLI of the code in `tree`: refs from before the re-layer keep it in `infra.cli`."""
    return "servestack.cli" if (tree / "servestack" / "cli").is_dir() else "infra.cli"


def render_tree(tree: Path, out: Path, stacks: Sequence[str],
                with_policies: bool = False) -> dict[str, str]:
    """Render `stacks` with the code in `tree`; returns stack → error for those that failed."""
    if not stacks:
        return {}
    command = [sys.executable, "-c", f"from {_cli_module(tree)} import main; main()", "render",
               "--out", str(out)]
    for stack in stacks:
        command += ["--stack", stack]
    if with_policies:
        command.append("--policy-report")
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "200"}
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True,
                            check=False, timeout=RENDER_TIMEOUT_S)
    if result.returncode not in (0, 2):
        raise DiffError(f"`servestack render` failed in {tree} (exit {result.returncode}):\n"
                        f"{result.stderr.strip()[-2000:]}")
    return {stack: _error_of(stack, stacks, result.stderr) for stack in stacks
            if not (out / stack / INDEX).is_file()}


def _error_of(stack: str, stacks: Sequence[str], stderr: str) -> str:
    """The block render printed for `stack`: from `stack <name>:` (or the one line naming
    its file, for a file that is not YAML) to the next stack's."""
    block: list[str] = []
    for line in stderr.splitlines():
        starts = next((s for s in stacks if line.startswith(f"stack {s}:")
                       or f"Pulumi.{s}.yaml:" in line), None)
        if starts is not None:
            if block:
                break
            if starts == stack:
                block.append(line)
        elif block:
            block.append(line)
    return "\n".join(block).strip() or stderr.strip()[-2000:]


# --- comparing two renders -------------------------------------------------------------------


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _documents(stack_dir: Path) -> dict[str, tuple[Mapping[str, Any], Any]]:
    index = _load(stack_dir / INDEX) or {}
    return {entry["urn"]: (entry, _load(stack_dir / entry["file"]))
            for entry in index.get("resources", [])}


def diff_stack(stack: str, base_dir: Path | None, head_dir: Path | None,
               base_error: str | None = None, head_error: str | None = None) -> StackDiff:
    """Compare one stack's renders; a missing side (None) means the stack is new or gone."""
    policies = _load(head_dir / POLICY_REPORT) if head_dir is not None else None
    if base_error or head_error:
        return StackDiff(stack, base_error, head_error, policies=policies)
    before = _documents(base_dir) if base_dir else {}
    after = _documents(head_dir) if head_dir else {}
    resources: list[ResourceChange] = []
    rayservices: list[RayServiceChange] = []
    for urn in sorted(set(before) | set(after)):
        entry, old = before.get(urn, ({}, None))
        entry = after.get(urn, (entry, None))[0] or entry
        new = after.get(urn, ({}, None))[1]
        status: Literal["added", "removed", "changed"]
        fields: tuple[FieldChange, ...]
        if urn not in before:
            status, fields = "added", ()
        elif urn not in after:
            status, fields = "removed", ()
        else:
            fields = tuple(field_changes(old, new))
            if not fields:
                continue
            status = "changed"
        resources.append(ResourceChange(urn, entry["type"], entry["name"], status, fields))
        if entry["type"] == RAYSERVICE_TYPE:
            rayservices.append(rayservice_change(entry["name"], old, new))
    capacity = capacity_delta(_load(base_dir / CAPACITY_PLAN) if base_dir else None,
                              _load(head_dir / CAPACITY_PLAN) if head_dir else None)
    cost = cost_delta(_load(base_dir / COST_ESTIMATE) if base_dir else None,
                      _load(head_dir / COST_ESTIMATE) if head_dir else None)
    upgrade = _load(head_dir / UPGRADE_PLAN) if head_dir is not None else None
    return StackDiff(stack, None, None, tuple(resources), tuple(rayservices), capacity, policies,
                     cost=cost, upgrade=upgrade)


def diff_against(base_ref: str, stacks: Sequence[str] = (), cwd: Path | None = None) -> DiffResult:
    """Render `base_ref` and the working tree of the repo at `cwd` and compare them."""
    repo = repo_root(cwd or Path.cwd())
    with tempfile.TemporaryDirectory(prefix="servestack-diff-") as scratch:
        base_out, head_out = Path(scratch) / "base", Path(scratch) / "head"
        head_stacks = [s for s in stacks_in(repo) if not stacks or s in stacks]
        with base_worktree(repo, base_ref) as (tree, commit):
            base_stacks = [s for s in stacks_in(tree) if not stacks or s in stacks]
            base_failed = render_tree(tree, base_out, base_stacks)
        head_failed = render_tree(repo, head_out, head_stacks, with_policies=True)
        unknown = sorted(set(stacks) - set(head_stacks) - set(base_stacks))
        if unknown:
            raise DiffError(f"no stack {', '.join(unknown)} in the working tree or in {base_ref}")
        results = []
        for stack in sorted(set(base_stacks) | set(head_stacks)):
            compared = diff_stack(
                stack,
                base_out / stack if stack in base_stacks else None,
                head_out / stack if stack in head_stacks else None,
                base_failed.get(stack), head_failed.get(stack),
            )
            if stack in head_stacks and stack not in head_failed:  # this process's code
                with parsing_once():
                    source = offline_source(stack_file(stack, repo / "stacks"), stack)
                    compared = replace(compared, absent_secrets=absent_secrets(source))
            results.append(compared)
    return DiffResult(base_ref, commit, tuple(results))
