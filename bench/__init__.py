"""Benchmarks: snapsync timed beside a reference tool on the same data, printing ratios."""
