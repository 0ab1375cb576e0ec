"""Ray's defaults that servestack adopts or steers around, as literals in a module that
imports nothing: the stack schema and servestack.local.free_ports both read them from here,
so neither spells the number again nor imports the other.

tests/infra/test_ray_defaults.py holds each to Ray's public value.
"""

from __future__ import annotations

from typing import Final

SERVE_HTTP_PORT: Final = 8000
"""Serve's HTTP port when none is configured (ray.serve.config.HTTPOptions().port), and so
the stack's `serve.http.port` default."""
