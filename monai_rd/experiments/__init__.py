"""Experiments: the paper's protocol runner (grids of bundle runs) and the benchmarks."""
