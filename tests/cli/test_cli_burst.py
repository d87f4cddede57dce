"""`burst`: statistics on known inputs, and end-to-end runs against the local stub server."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from burstctl.burst import RequestResult, percentile, summarize


# -- statistics ------------------------------------------------------------------------------------------------
def test_percentiles_are_exact_on_known_inputs():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # order of input does not matter
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_summary_counts_error_kinds_and_cold_start_wait():
    ok = [RequestResult(index=i, ok=True, status=200, ttft=0.1 * (i + 1), latency=0.2 * (i + 1), tokens_out=10,
                        started=0.5) for i in range(10)]
    ok[0].cold_start = True
    bad = [RequestResult(index=10, status=503, error="http_503"), RequestResult(index=11, status=503, error="http_503"),
           RequestResult(index=12, error="timeout"), RequestResult(index=13, error="connection_reset")]
    s = summarize(ok + bad, wall=2.0, from_zero=False)
    assert s["requests"] == 14 and s["succeeded"] == 10 and s["failed"] == 4
    assert s["success_rate"] == pytest.approx(10 / 14)
    assert s["errors"] == {"connection_reset": 1, "http_503": 2, "timeout": 1}
    assert s["ttft_s"]["p50"] == pytest.approx(0.55)
    assert s["latency_s"]["p95"] == pytest.approx(1.91)
    assert s["tokens_out"] == 100 and s["tokens_per_s"] == pytest.approx(50.0)
    # Earliest first token anywhere: started 0.5 + ttft 0.1.
    assert s["cold_start"] == {"detected": True, "source": "header", "held_requests": 1, "wait_s": pytest.approx(0.6)}
    warm = summarize(ok[1:], wall=1.0, from_zero=False)
    assert warm["cold_start"]["detected"] is False and warm["cold_start"]["wait_s"] is None
    flagged = summarize(ok[1:], wall=1.0, from_zero=True)
    assert flagged["cold_start"]["source"] == "flag" and flagged["cold_start"]["wait_s"] == pytest.approx(0.7)


# -- end to end against the stub -------------------------------------------------------------------------------
def _json(result) -> dict:
    assert result.stdout.strip().startswith("{"), result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("engine", ["fast", "httpx"])
def test_streaming_cold_start_with_injected_failures(invoke, stub, tmp_path: Path, engine: str):
    # Requests 3/4/5/6: 503, connection reset, 429, stall (-> per-request timeout); the first 0.4 s are a cold start.
    s = stub(ttft=0.02, tokens=6, cold_start=0.4, plan={3: 503, 4: "reset", 5: 429, 6: "stall"}, api_key="k-123")
    out = tmp_path / "r.json"
    r = invoke("burst", "--url", s.url + "/v1", "-m", "qwen3-4b", "-n", 30, "-c", 8, "--timeout", 0.8,
               "--api-key", "k-123", "--max-tokens", 5, "--out", out, "--json", "--engine", engine)
    assert r.exit_code == 1  # below the default --min-success 1.0
    doc = _json(r)
    summary = doc["summary"]
    assert summary["requests"] == 30 and summary["succeeded"] == 26
    assert summary["errors"] == {"connection_reset": 1, "http_429": 1, "http_503": 1, "timeout": 1}
    assert summary["tokens_out"] == 26 * 5  # max_tokens caps the stub's 6 tokens; counted from the usage chunk
    cs = summary["cold_start"]
    # The first 8 were held; the reset and the stalled one never got response headers.
    assert cs["detected"] and cs["source"] == "header" and cs["held_requests"] == 6
    assert 0.4 <= cs["wait_s"] < 1.0
    assert set(summary["ttft_s"]) == {"p50", "p95", "p99", "min", "max", "mean"}
    assert summary["ttft_s"]["p99"] >= 0.38  # the held requests waited for the cold start
    assert s.max_inflight <= 8
    # The key is sent, never reported.
    assert all(seen.headers["authorization"] == "Bearer k-123" for seen in s.seen)
    assert "k-123" not in r.stdout and "k-123" not in out.read_text()
    assert doc["config"]["api_key_set"] is True
    saved = json.loads(out.read_text())
    assert len(saved["requests"]) == 30
    by_index = {q["index"]: q for q in saved["requests"]}
    assert {q["error"] for q in saved["requests"] if not q["ok"]} == {"http_503", "connection_reset", "http_429",
                                                                      "timeout"}
    assert all(q["ttft"] is not None and q["latency"] >= q["ttft"] for q in by_index.values() if q["ok"])
    body = s.seen[0].body
    assert body["model"] == "qwen3-4b" and body["stream"] is True and body["max_tokens"] == 5
    assert body["messages"][0]["role"] == "user" and body["stream_options"] == {"include_usage": True}
    assert s.seen[0].path == "/v1/chat/completions"
    assert all(seen.headers["x-model"] == "qwen3-4b" for seen in s.seen)  # the gateway routes on it


def test_min_success_and_from_zero_flag(invoke, stub, monkeypatch):
    s = stub(ttft=0.01, tokens=3, plan={1: 503})
    monkeypatch.setenv("BURSTCTL_API_KEY", "from-env")
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 10, "-c", 10, "--min-success", 0.9, "--from-zero", "--json")
    assert r.exit_code == 0
    summary = _json(r)["summary"]
    assert summary["success_rate"] == pytest.approx(0.9)
    assert summary["cold_start"]["source"] == "flag" and summary["cold_start"]["wait_s"] > 0
    assert s.seen[0].headers["authorization"] == "Bearer from-env"


@pytest.mark.parametrize("engine", ["fast", "httpx"])
def test_non_streaming_completions_to_csv(invoke, stub, tmp_path: Path, engine: str):
    s = stub(ttft=0.01, tokens=4)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('"first"\n{"prompt": "second"}\n\n')
    out = tmp_path / "r.csv"
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 4, "-c", 2, "--api", "completions", "--no-stream",
               "--prompts-file", prompts, "--out", out, "--no-progress", "--engine", engine)
    assert r.exit_code == 0, r.stdout
    assert "succeeded" in r.stdout and "4/4 (100.0%)" in r.stdout
    assert [x.path for x in s.seen] == ["/v1/completions"] * 4
    assert sorted(x.body["prompt"] for x in s.seen) == ["first", "first", "second", "second"]
    assert all(x.body["stream"] is False and "stream_options" not in x.body for x in s.seen)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 and all(row["ok"] == "True" and row["tokens_out"] == "4" for row in rows)
    assert all(float(row["ttft"]) == float(row["latency"]) for row in rows)  # without streaming TTFT == latency


def test_slow_first_token_shows_in_ttft_tail(invoke, stub):
    s = stub(ttft=0.01, tokens=2, slow_ttft=0.5, plan={2: "slow"})
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 20, "-c", 4, "--json")
    summary = _json(r)["summary"]
    assert r.exit_code == 0
    assert summary["ttft_s"]["max"] >= 0.5 and summary["ttft_s"]["p50"] < 0.2
    assert summary["cold_start"]["detected"] is False


def test_overall_deadline_bounds_the_run(invoke, stub):
    s = stub(ttft=0.3, tokens=1)
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 50, "-c", 2, "--deadline", 0.5, "--json")
    summary = _json(r)["summary"]
    assert r.exit_code == 1
    assert summary["wall_s"] < 1.5
    assert summary["errors"]["deadline"] >= 40  # in flight at the deadline or never started
    assert summary["succeeded"] + summary["errors"]["deadline"] == 50


@pytest.mark.parametrize("engine", ["fast", "httpx"])
def test_connection_refused_is_an_error_kind_not_a_crash(invoke, stub, engine: str):
    s = stub()
    url = s.url
    s.__exit__(None, None, None)
    r = invoke("burst", "--url", url, "-m", "m", "-n", 3, "-c", 3, "--json", "--engine", engine)
    assert r.exit_code == 1
    assert _json(r)["summary"]["errors"] == {"connect_error": 3}


@pytest.mark.parametrize("args, message", [
    (["--out", "r.txt"], "--out"),
    (["--url", "ftp://x"], "--url"),
    (["--concurrency", "0"], "--concurrency"),
    (["--api", "embeddings"], "--api"),
    (["--prompts-file", "/nonexistent/p.txt"], "--prompts-file"),
])
def test_bad_input_exits_2_naming_the_flag(invoke, args, message):
    base = {"--url": "http://127.0.0.1:9", "-m": "m"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    flat = [x for kv in base.items() for x in kv]
    r = invoke("burst", *flat)
    assert r.exit_code == 2
    assert message in r.stderr


def test_bad_jsonl_prompt_file_exits_2(invoke, tmp_path: Path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": 3}\n')
    r = invoke("burst", "--url", "http://127.0.0.1:9", "-m", "m", "--prompts-file", bad)
    assert r.exit_code == 2 and "p.jsonl:1" in r.stderr


def test_ramp_up_spreads_worker_starts(invoke, stub, tmp_path: Path):
    s = stub(ttft=0.5, tokens=1)  # each worker stays busy longer than the ramp, so each takes one request
    out = tmp_path / "r.json"
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 4, "-c", 4, "--ramp-up", 0.4, "--out", out, "--json")
    assert r.exit_code == 0
    starts = sorted(q["started"] for q in json.loads(out.read_text())["requests"])
    assert [round(b - a, 1) for a, b in zip(starts, starts[1:])] == [0.1, 0.1, 0.1]
