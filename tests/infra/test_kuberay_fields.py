"""docs/shared-clusters.md names every RayService field servestack renders, each one in the
vendored KubeRay CRD, and the operator version the newest of them needs."""

from __future__ import annotations

import re
from collections.abc import Callable

from infra.config import REPO_ROOT
from infra.stack_file import available_stacks
from servestack.offline import ProgramRun
from tests.infra.kuberay_crd import from_wire, kuberay_fields, rayservice_schema, schema_has

DOC = REPO_ROOT / "docs" / "shared-clusters.md"
BLOCK = re.compile(r"<!-- rayservice-fields:begin -->\n(.*?)<!-- rayservice-fields:end -->", re.S)
ROW = re.compile(r"^\| `([^`]+)` \| (\d+\.\d+\.\d+) \|$", re.M)


def documented() -> dict[str, str]:
    match = BLOCK.search(DOC.read_text())
    assert match, f"{DOC} lost its rayservice-fields block"
    return dict(ROW.findall(match.group(1)))


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_the_documented_fields_are_exactly_those_the_shipped_stacks_render(
    checked_stack_run: Callable[[str], ProgramRun],
) -> None:
    schema = rayservice_schema()
    rendered: set[str] = set()
    for stack in available_stacks():
        manifest = from_wire(dict(checked_stack_run(stack).one("kubernetes:ray.io/v1:RayService")
                                  .inputs))
        rendered |= kuberay_fields(schema, manifest)
    assert sorted(documented()) == sorted(rendered)
    assert [field for field in rendered if not schema_has(schema, field)] == []


def test_the_minimum_operator_version_is_the_newest_fields() -> None:
    newest = max(documented().values(), key=version)
    assert f"**KubeRay {newest} or newer**" in DOC.read_text()
