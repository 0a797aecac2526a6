"""Benchmarks for threadline (`make bench`)."""
