"""Cluster backends, one module each; only the backend a stack uses is imported."""
