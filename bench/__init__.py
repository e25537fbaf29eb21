"""Benchmarks and their recorded results (``bench/RESULTS.md``); never timed tests.

Run one with ``python -m bench.<name>``, e.g. ``python -m bench.append``.
"""
