"""Entry point of `pulumi up` (Pulumi.yaml `main: infra/`); the program is `infra.program`.

`infra` is imported as the installed package (`make install`, or `pulumi install` through
requirements.txt, installs the repo editable into .venv), so no path needs rewriting here.
"""

from infra.program import run

run()
