"""Benchmarks: `python -m tests.bench --out build/bench [--quick] [--only NAME]`.

Each module tests/bench/bench_<name>.py exposes ``run(out_dir: pathlib.Path, quick: bool) -> dict``
and compares against a baseline measured in the same run (ratios, not absolute promises).
"""
