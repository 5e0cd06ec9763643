"""Benchmarks run by `make bench` (`python -m bench`): the storage element against raw-disk baselines."""
