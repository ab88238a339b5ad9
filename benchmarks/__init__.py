"""Benchmarks: `make bench` (or `python -m benchmarks [NAME ...]`). Each `bench_<name>.py`
has `main() -> list[dict]` and prints one JSON line per measurement."""
