"""The benchmark's verdict: the highest concurrency below which every level meets the target."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("bench_burst", Path(__file__).parents[2] / "benchmarks" / "bench_burst.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)  # type: ignore[union-attr]


def _row(c: int, mean_ms: float, success: float = 1.0) -> dict:
    return {"concurrency": c, "overhead_mean_ms": mean_ms, "success": success}


@pytest.mark.parametrize("rows, expected", [
    ([_row(50, 1), _row(250, 2), _row(500, 3)], 500),
    ([_row(50, 1), _row(250, 9), _row(500, 3)], 50),       # 500 passing above a failing 250 does not count
    ([_row(500, 3), _row(50, 1), _row(250, 9)], 50),       # order of measurement does not matter
    ([_row(50, 1), _row(250, 2, success=0.99)], 50),        # a failed request fails the level
    ([_row(50, 6), _row(250, 2)], None),
])
def test_sustained_is_the_highest_level_below_which_all_meet_the_target(rows, expected):
    assert bench.sustained(rows, 5.0) == expected


def test_the_benchmark_starts_the_test_double_in_its_own_process():
    import urllib.request

    proc, url = bench.start_stub()
    try:
        with urllib.request.urlopen(f"{url}/v1/models", timeout=5) as r:
            assert r.status == 200
    finally:
        proc.kill()
        proc.wait(timeout=5)
