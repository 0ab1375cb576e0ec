"""servestack's CrossGuard policy pack: rules in `policies.rules`, levels in `policies.enforcement`.

`policies/__main__.py` only builds the pack (it blocks serving gRPC), so everything a test or
`servestack check` needs is importable from here without starting it.
"""
