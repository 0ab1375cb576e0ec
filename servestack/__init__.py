"""servestack, the tool a person runs: CLI, local runner, offline engine, render, check, diff.

It sits above `infra/` (the Pulumi program) and `policies/` (the CrossGuard pack) and imports
both; neither imports it.
"""
