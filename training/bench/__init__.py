"""Benchmarks for the SEAL library (``python -m training.bench <name> ...``)."""
