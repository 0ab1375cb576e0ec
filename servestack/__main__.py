"""`python -m servestack`: the same CLI as the `servestack` entry point, for a venv whose
scripts are not on PATH."""

from servestack.cli import main

main()
