"""Benchmark `burstctl burst` against the local stub: how many concurrent streams can this machine drive while
the client adds less than 5 ms per request?

The stub runs in its own process (so client and server do not share a GIL) with a known server-side time per
request (time to first token + token gaps). Client overhead = measured end-to-end latency - that known time; it
includes waiting for a busy CPU, so it depends on what else runs on the machine. The client's own CPU time per
request (getrusage of this process) does not, and is printed next to it. Each level is bounded in requests and
time; the whole run stops by itself in about a minute.

The answer is the highest level below which every level met the target (all requests succeeded and the mean
overhead stayed under the budget): a level that passes above a failing one is luck, not capacity.

    python benchmarks/bench_burst.py [--levels 50,100,250,500,750] [--budget-ms 5] [--realtime]

On a machine shared with other work, ``--realtime`` (root, Linux) runs client and stub under SCHED_RR so that
the other work's CPU time does not show up as client overhead: it approximates a dedicated machine of the same size.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from burstctl.burst import BurstConfig, normalize_url, percentile, run_burst  # noqa: E402

TTFT, TOKENS, TOKEN_DELAY = 0.25, 8, 0.05
SERVER_TIME = TTFT + (TOKENS - 1) * TOKEN_DELAY
"""What the stub spends on each request by construction (0.6 s), whatever the client does."""


def start_stub() -> tuple[subprocess.Popen[str], str]:
    # The test double of the CLI tests, standalone (stdlib only).
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "cli" / "openai_stub.py"), "--ttft", str(TTFT), "--tokens", str(TOKENS),
         "--token-delay", str(TOKEN_DELAY)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"stub did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


async def level(url: str, concurrency: int, rounds: int, deadline: float) -> dict[str, float]:
    cfg = BurstConfig(url=normalize_url(url), model="stub", prompts=["bench"], requests=concurrency * rounds,
                      concurrency=concurrency, stream=True, max_tokens=TOKENS, timeout=10, deadline=deadline,
                      # Spread the starts over one request's duration, so streams are out of phase as with real
                      # users instead of every token of every stream arriving in the same millisecond.
                      ramp_up=SERVER_TIME)
    before = resource.getrusage(resource.RUSAGE_SELF)
    report = await run_burst(cfg)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    s = report.summary
    # The first round also pays for opening the connections; steady state is what "sustains" means.
    steady = [r for r in report.requests if r.ok and r.latency is not None and r.index >= 2 * concurrency]
    overhead = [(r.latency - SERVER_TIME) * 1000 for r in steady]  # type: ignore[operator]
    return {
        "concurrency": concurrency, "requests": s["requests"], "success": s["success_rate"],
        "achieved": s["achieved_concurrency"], "req_per_s": s["requests"] / s["wall_s"],
        "overhead_p50_ms": percentile(overhead, 50) or float("nan"),
        "overhead_mean_ms": sum(overhead) / len(overhead) if overhead else float("nan"),
        "overhead_p95_ms": percentile(overhead, 95) or float("nan"), "wall_s": s["wall_s"],
        "cpu_ms_per_request": cpu / s["requests"] * 1000,
    }


def meets(row: dict[str, float], budget_ms: float) -> bool:
    return row["success"] == 1.0 and row["overhead_mean_ms"] < budget_ms


def sustained(rows: list[dict[str, float]], budget_ms: float) -> int | None:
    """The highest concurrency below which every measured level (ascending) met the target, or None."""
    best = None
    for r in sorted(rows, key=lambda r: r["concurrency"]):
        if not meets(r, budget_ms):
            break
        best = int(r["concurrency"])
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--levels", default="50,100,250,500,750")
    p.add_argument("--rounds", type=int, default=6, help="requests per level = rounds x concurrency")
    p.add_argument("--budget-ms", type=float, default=5.0)
    p.add_argument("--total-seconds", type=float, default=60.0)
    p.add_argument("--realtime", action="store_true", help="SCHED_RR priority 10 for this process and the stub "
                   "(inherited), so other processes on a shared machine do not count as client overhead")
    args = p.parse_args()
    if args.realtime:
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))
        except (AttributeError, PermissionError) as e:
            raise SystemExit(f"--realtime needs root on Linux: {e}") from None
    levels = [int(x) for x in args.levels.split(",")]
    console = Console(width=150)
    proc, url = start_stub()
    started = time.monotonic()
    rows = []
    try:
        for c in levels:
            left = args.total_seconds - (time.monotonic() - started)
            if left < 5:
                console.print(f"[yellow]time budget used up before concurrency {c}[/]")
                break
            rows.append(asyncio.run(level(url, c, args.rounds, deadline=min(20.0, left - 2))))
    finally:
        proc.terminate()
        proc.wait(5)

    table = Table(title=f"burst vs local stub (server time {SERVER_TIME * 1000:.0f} ms/request, "
                        f"{os.cpu_count()} CPUs)", title_justify="left")
    for col in ("concurrency", "requests", "success", "achieved concurrency", "req/s", "overhead p50",
                "overhead mean", "overhead p95", "client CPU/req"):
        table.add_column(col, justify="right")
    for r in rows:
        style = "green" if meets(r, args.budget_ms) else "red"
        table.add_row(str(r["concurrency"]), str(r["requests"]), f"{r['success']:.0%}", f"{r['achieved']:.0f}",
                      f"{r['req_per_s']:.0f}", f"{r['overhead_p50_ms']:.2f} ms",
                      f"[{style}]{r['overhead_mean_ms']:.2f} ms[/]", f"{r['overhead_p95_ms']:.2f} ms",
                      f"{r['cpu_ms_per_request']:.2f} ms")
    console.print(table)
    best = sustained(rows, args.budget_ms)
    load = os.getloadavg()[0]
    console.print(f"highest concurrency below which every level has mean client overhead < {args.budget_ms:g} ms "
                  f"and no failed request: [bold]{best or 'none'}[/] (target >= 500); total "
                  f"{time.monotonic() - started:.0f} s; load average {load:.1f} on {os.cpu_count()} CPUs"
                  + (" (busy machine: the overhead includes waiting for a CPU)" if load > 1 and not args.realtime
                     else " (SCHED_RR)" if args.realtime else ""))


if __name__ == "__main__":
    main()
