"""Benchmarks: import, status recompute and pages at hospital scale, beside same-run baselines."""
