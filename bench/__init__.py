"""Benchmarks and their corpus generators; run from the repository root."""
