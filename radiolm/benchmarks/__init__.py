"""Benchmarks of real model shapes with random weights (step time, peak memory), run as ``python -m``."""
