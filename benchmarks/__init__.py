"""Benchmarks: the served apps against the raw model on the same cores.

Never run as tests (performance is not asserted); `python -m benchmarks.run` writes
benchmarks/results/*.json and regenerates benchmarks/RESULTS.md from it.
"""
