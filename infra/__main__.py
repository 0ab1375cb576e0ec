"""Entry point of `pulumi up` (Pulumi.yaml `main: infra/`); the program is infra.program.

Pulumi runs this directory as a script, which puts infra/ itself on sys.path; its modules
(config, capacity, ...) must only be importable as `infra.*`, so the repo root goes first.
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [
    entry for entry in sys.path if Path(entry or ".").resolve() not in (_HERE, _HERE.parent)
]

from infra.program import run  # noqa: E402

run()
