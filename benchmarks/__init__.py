"""Benchmarks: import, status recompute and pages at hospital scale, beside same-run baselines.

An entry point like the command line: may import services, db, monitor (and streamlit for the pages).
"""
