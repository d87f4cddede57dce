"""Evaluate the whole dev and prod stacks under Pulumi mocks and print resource counts and seconds.

Target: under 3 s per stack on a 2-core machine. A benchmark, not a test: it prints figures and never fails on time.
Usage: python benchmarks/bench_stacks.py [--repeat N]
"""

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import pulumi  # noqa: E402

from pulumi_mocks import Mocks, RecordingMonitor  # noqa: E402
from stack_helpers import evaluate_stack  # noqa: E402


def once(stack: str) -> tuple[int, float]:
    mocks = Mocks()
    monitor = RecordingMonitor(mocks)
    mocks.monitor = monitor
    pulumi.runtime.set_mocks(mocks, project="gpu-burst", stack=stack, preview=False, monitor=monitor)
    start = time.perf_counter()
    evaluate_stack(stack, secrets={"hfToken": "hf_bench", "apiKey": "sk-bench"})
    return len(mocks.created), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="evaluations per stack (default 3)")
    args = parser.parse_args()
    asyncio.set_event_loop(asyncio.new_event_loop())
    print(f"{'stack':<6} {'resources':>9} {'first s':>8} {'median s':>9} {'target':>7}")
    for stack in ("dev", "prod"):
        runs = [once(stack) for _ in range(max(1, args.repeat))]
        count = runs[0][0]
        first, median = runs[0][1], statistics.median(t for _, t in runs)
        verdict = "ok" if median < 3.0 else "SLOW"
        print(f"{stack:<6} {count:>9} {first:>8.2f} {median:>9.2f} {verdict:>7}")


if __name__ == "__main__":
    main()
