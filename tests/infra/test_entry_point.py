"""`main: infra/` runs the way Pulumi's language host runs it, with no path surgery.

The host calls `runpy.run_path("infra/", run_name="__main__")`: sys.path[0] becomes infra/,
the repo root is not on the path, and `infra` must come from the editable install
(`make install`, or `pulumi install` through requirements.txt).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from infra.config import REPO_ROOT

ENTRY = REPO_ROOT / "infra" / "__main__.py"

# Run in a fresh interpreter. The offline engine reads the stack file first (which imports
# infra.config); the repo's own packages are then dropped from sys.modules so that the program
# imports them again exactly as under the host: from inside runpy, with infra/ first on the path.
HOST = textwrap.dedent("""
    import json, sys
    from servestack.offline import PROGRAM, run_program, stack_config, stack_file

    config, secret_keys = stack_config(stack_file("local"))
    for name in [m for m in sys.modules if m.split(".")[0] in ("infra", "apps")]:
        del sys.modules[name]
    run = run_program("local", config, secret_keys).check()
    print(json.dumps({
        "path": sys.path,
        "program_dir": str(PROGRAM),
        "program_file": sys.modules["infra.program"].__file__,
        "types": sorted({r.type for r in run.resources}),
    }))
""")


def test_the_program_directory_runs_from_outside_the_repo_without_pythonpath(
    tmp_path: Path,
) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    script = tmp_path / "host.py"  # as the host's exec script: sys.path[0] is its own dir
    script.write_text(HOST)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert str(REPO_ROOT) not in report["path"], "the repo root leaked onto sys.path"
    assert report["program_dir"] == str(REPO_ROOT / "infra")
    assert Path(report["program_file"]) == REPO_ROOT / "infra" / "program.py"
    assert {"kubernetes:ray.io/v1:RayService", "servestack:index:KubeRayOperator"} <= set(
        report["types"])


def test_the_entry_point_does_not_touch_the_import_path() -> None:
    source = ENTRY.read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported == {"infra.program"}, f"infra/__main__.py imports {sorted(imported)}"
    assert "sys.path" not in source and "PYTHONPATH" not in source
