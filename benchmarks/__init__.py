"""Benchmarks: import, status recompute and pages at hospital scale, each figure beside a same-run baseline."""
