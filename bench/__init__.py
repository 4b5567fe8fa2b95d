"""Benchmarks (run each file as a script: `python bench/<name>.py`)."""
