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
    cs = s["cold_start"]
    assert (cs["detected"], cs["source"], cs["held_requests"]) == (True, "header", 1)
    assert cs["wait_s"] == pytest.approx(0.6)
    warm = summarize(ok[1:], wall=1.0, from_zero=False)
    assert warm["cold_start"]["detected"] is False and warm["cold_start"]["wait_s"] is None
    flagged = summarize(ok[1:], wall=1.0, from_zero=True)
    assert flagged["cold_start"]["source"] == "flag" and flagged["cold_start"]["wait_s"] == pytest.approx(0.7)


# -- end to end against the stub -------------------------------------------------------------------------------
def _json(result) -> dict:
    assert result.stdout.strip().startswith("{"), result.stdout + result.stderr
    return json.loads(result.stdout)


def test_streaming_cold_start_with_injected_failures(invoke, stub, tmp_path: Path):
    # Requests 3/4/5/6: 503, connection reset, 429, stall (-> per-request timeout); the first 0.4 s are a cold start.
    s = stub(ttft=0.02, tokens=6, cold_start=0.4, plan={3: 503, 4: "reset", 5: 429, 6: "stall"}, api_key="k-123")
    out = tmp_path / "r.json"
    r = invoke("burst", "--url", s.url + "/v1", "-m", "qwen3-4b", "-n", 30, "-c", 8, "--timeout", 0.8,
               "--api-key", "k-123", "--max-tokens", 5, "--out", out, "--json")
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
    # The front door routes on the body's model: no custom header is sent.
    assert all("x-model" not in seen.headers for seen in s.seen)


def test_min_success_and_from_zero_flag(invoke, stub, monkeypatch):
    s = stub(ttft=0.01, tokens=3, plan={1: 503})
    monkeypatch.setenv("GPU_BURST_API_KEY", "from-env")
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 10, "-c", 10, "--min-success", 0.9, "--from-zero", "--json")
    assert r.exit_code == 0
    summary = _json(r)["summary"]
    assert summary["success_rate"] == pytest.approx(0.9)
    assert summary["cold_start"]["source"] == "flag" and summary["cold_start"]["wait_s"] > 0
    assert s.seen[0].headers["authorization"] == "Bearer from-env"


def test_non_streaming_completions_to_csv(invoke, stub, tmp_path: Path):
    s = stub(ttft=0.01, tokens=4)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('"first"\n{"prompt": "second"}\n\n')
    out = tmp_path / "r.csv"
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 4, "-c", 2, "--api", "completions", "--no-stream",
               "--prompts-file", prompts, "--out", out, "--no-progress")
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


def test_connection_refused_is_an_error_kind_not_a_crash(invoke, stub):
    s = stub()
    url = s.url
    s.__exit__(None, None, None)
    r = invoke("burst", "--url", url, "-m", "m", "-n", 3, "-c", 3, "--json")
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
    # Workers start 0.1 s apart, never earlier; a loaded machine may start one late, so no upper bound.
    assert all(b - a >= 0.09 for a, b in zip(starts, starts[1:])), starts


# -- the front door: model in the body, /v1 paths, the one key variable -------------------------------------------
@pytest.mark.parametrize("given, path", [
    ("", "/v1/chat/completions"),              # a bare host gets /v1, as the stack's endpoint output has it
    ("/v1", "/v1/chat/completions"),
    ("/v1/", "/v1/chat/completions"),
    ("/team-a/v1", "/team-a/v1/chat/completions"),  # the openai SDK's base_url: kept as given
])
def test_paths_follow_the_sdk_base_url(invoke, stub, given: str, path: str):
    s = stub(tokens=1)
    r = invoke("burst", "--url", s.url + given, "-m", "m", "-n", 1, "-c", 1, "--json")
    assert [x.path for x in s.seen] == [path], r.stdout


def test_model_goes_in_the_body_and_no_custom_header_is_needed(invoke, stub, monkeypatch):
    s = stub(tokens=2, models=["qwen3-4b"], api_key="k1")
    monkeypatch.setenv("GPU_BURST_API_KEY", "k1")
    monkeypatch.setenv("BURSTCTL_API_KEY", "stale")  # the old name is not read any more
    r = invoke("burst", "--url", s.url, "-m", "qwen3-4b", "-n", 3, "-c", 3, "--json", "-H", "X-Team: a")
    assert r.exit_code == 0, r.stdout
    assert all(x.body["model"] == "qwen3-4b" and "x-model" not in x.headers for x in s.seen)
    assert all(x.headers["authorization"] == "Bearer k1" and x.headers["x-team"] == "a" for x in s.seen)
    assert _json(r)["config"]["headers"] == ["X-Team"]  # names only: values may be credentials


# -- error detail: what the server said, per kind; one line when nothing connected; 401 means the key -------------
def test_4xx_bodies_are_shown_per_kind(invoke, stub):
    s = stub(tokens=1, models=["qwen3-4b"])
    r = invoke("burst", "--url", s.url, "-m", "qwen-typo", "-n", 3, "-c", 3, "--json")
    summary = _json(r)["summary"]
    assert r.exit_code == 1
    assert summary["errors"] == {"http_404": 3}
    assert summary["error_details"] == {"http_404": "The model `qwen-typo` does not exist."}
    assert any("does not serve this model" in line for line in summary["diagnosis"])
    human = invoke("burst", "--url", s.url, "-m", "qwen-typo", "-n", 2, "-c", 2, "--no-progress")
    assert "The model `qwen-typo` does not exist." in human.stdout


def test_429_keeps_retry_after(invoke, stub):
    s = stub(tokens=1, plan={1: 429}, retry_after=7)
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 2, "-c", 1, "--json")
    summary = _json(r)["summary"]
    assert summary["error_details"]["http_429"] == "injected 429; Retry-After: 7"
    assert any(line.startswith("rate limited: 1 request(s) got 429") for line in summary["diagnosis"])


def test_401_run_says_no_or_invalid_api_key_with_the_fix(invoke, stub, monkeypatch):
    monkeypatch.delenv("GPU_BURST_API_KEY", raising=False)
    s = stub(tokens=1, api_key="right")
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 2, "-c", 2, "--no-progress")
    assert r.exit_code == 1
    assert "no/invalid API key: 2 of 2 request(s) got 401" in r.stderr
    # The same command as the README's quick start.
    assert "export GPU_BURST_API_KEY=$(pulumi stack output apiKey --show-secrets)" in r.stderr


def test_all_connect_errors_say_so_in_one_line_with_the_target(invoke, stub):
    s = stub()
    url = s.url
    port = s.port
    s.__exit__(None, None, None)
    r = invoke("burst", "--url", url, "-m", "m", "-n", 4, "-c", 2, "--no-progress")
    assert r.exit_code == 1
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, r.stderr  # the diagnosis and the --min-success verdict
    assert lines[0].startswith(f"error: no request reached 127.0.0.1:{port}: ") and "refused" in lines[0].lower()
    assert r.stdout == ""  # no table of dashes


# -- the load engine: keep-alive trouble -----------------------------------------------------------------------
def reply_json(handler, status: int, body) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def test_server_without_keep_alive_gets_every_request(invoke, stub):
    # HTTP/1.1 answers, then the server closes without `Connection: close`: only the EOF tells.
    s = stub(tokens=2, keep_alive=False)
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 20, "-c", 2, "--json")
    summary = _json(r)["summary"]
    assert r.exit_code == 0, summary["errors"]
    assert summary["succeeded"] == 20 and len(s.seen) == 20


def test_http10_server_gets_every_request(invoke, tmp_path: Path):
    # http.server speaks HTTP/1.0 by default and closes after every response.
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body["model"])
            reply_json(self, 200, {"choices": [{"index": 0, "text": "hi"}], "usage": {"completion_tokens": 1}})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = invoke("burst", "--url", f"http://127.0.0.1:{server.server_port}/v1", "-m", "m", "-n", 20, "-c", 2,
                   "--no-stream", "--api", "completions", "--json")
    finally:
        server.shutdown()
        server.server_close()
    summary = _json(r)["summary"]
    assert summary["succeeded"] == 20, summary["errors"]
    assert len(seen) == 20


def test_stale_keep_alive_connection_is_resent_once_on_a_fresh_one(invoke, stub):
    # The server drops every reused connection as the next request arrives, unread: the request never reached it.
    s = stub(tokens=2, close_reused=True)
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 4, "-c", 1, "--json")
    summary = _json(r)["summary"]
    assert r.exit_code == 0, summary["errors"]
    assert summary["succeeded"] == 4 and len(s.seen) == 4
    assert summary["retried_stale_connections"] == 3 == s.stale_closed


def test_a_fresh_connection_closed_without_answer_is_not_resent(invoke, stub):
    s = stub(tokens=2, plan={1: "reset"})
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 2, "-c", 1, "--json")
    summary = _json(r)["summary"]
    assert summary["errors"] == {"connection_reset": 1}
    assert summary["retried_stale_connections"] == 0 and len(s.seen) == 2


# -- cold-start accounting without the interceptor's header -------------------------------------------------------
def test_from_zero_without_the_header_counts_every_waiting_request_as_held(invoke, stub):
    s = stub(ttft=0.01, tokens=2, cold_start=0.3, cold_start_header=False)
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 6, "-c", 6, "--from-zero", "--json")
    cs = _json(r)["summary"]["cold_start"]
    assert cs["source"] == "flag" and cs["held_requests"] == 6  # all of them waited
    assert cs["wait_s"] >= 0.3 and cs["warm_ttft_s"] is None
    assert "inferred without the interceptor's header: 6 request(s)" in cs["method"]
    assert "no warm baseline" in cs["method"]


def test_from_zero_without_the_header_subtracts_the_warm_baseline(invoke, stub):
    s = stub(ttft=0.02, tokens=2, cold_start=0.3, cold_start_header=False)
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 20, "-c", 4, "--from-zero", "--json")
    cs = _json(r)["summary"]["cold_start"]
    assert cs["held_requests"] == 4  # the first wave; the later ones found the model up
    assert 0.015 <= cs["warm_ttft_s"] < 0.2
    assert cs["added_s"] == pytest.approx(cs["wait_s"] - cs["warm_ttft_s"])
    assert 0.25 <= cs["added_s"] < 0.6
    assert "median of 16 request(s) sent after it" in cs["method"]


# -- validated before anything is sent -------------------------------------------------------------------------
@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing" / "r.json", "does not exist"),
    (lambda d: d, "is a directory"),
    (lambda d: (d / "sub.json").mkdir() or d / "sub.json", "is a directory"),
])
def test_out_is_checked_before_any_request(invoke, stub, tmp_path: Path, make, message: str):
    s = stub(tokens=1)
    out = make(tmp_path)
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 2, "--out", out)
    assert r.exit_code == 2 and "--out" in r.stderr and message in r.stderr
    assert s.seen == []  # the cold start is not spent on a run whose results could not be saved


def test_out_check_leaves_no_file_behind(invoke, stub, tmp_path: Path):
    out = tmp_path / "r.json"
    r = invoke("burst", "--url", "http://127.0.0.1:9", "-m", "", "--out", out)
    assert r.exit_code == 2 and not out.exists()


@pytest.mark.parametrize("args, env, message", [
    (["--url", "http://"], {}, "--url: 'http://' has no host"),
    (["--url", "http://127.0.0.1:99999"], {}, "--url: 'http://127.0.0.1:99999' has an invalid port; allowed: 1-65535"),
    (["--url", "http://127.0.0.1:0"], {}, "port 0"),
    (["--url", "http://127.0.0.1:x"], {}, "invalid port"),
    (["--url", "http://h/v1?x=1"], {}, "query"),
    (["-m", ""], {}, "--model: empty"),
    (["-m", "   "], {}, "--model: empty"),
    (["--api-key", "k\r\nX-Evil: 1"], {}, "--api-key"),
    (["--api-key", ""], {}, "--api-key"),
    ([], {"GPU_BURST_API_KEY": "key-from-a-file\n"}, "GPU_BURST_API_KEY"),
    (["-H", "X-A: b\r\nX-Evil: 1"], {}, "--header: contains the control character"),
    (["-H", "X-A: b\x00"], {}, "--header: contains the control character"),
    (["-H", "no colon"], {}, "--header"),
    (["-H", "Bad Name: v"], {}, "--header"),
    (["-H", "Content-Length: 5"], {}, "--header: Content-Length is set by the HTTP client"),
])
def test_bad_input_is_one_message_and_nothing_is_sent(invoke, stub, monkeypatch, args, env, message: str):
    s = stub(tokens=1)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    base = {"--url": s.url, "-m": "m"}
    rest = []
    for k, v in zip(args[::2], args[1::2]):
        if k in base:
            base[k] = v
        else:
            rest += [k, v]
    r = invoke("burst", *[x for kv in base.items() for x in kv], *rest, "-n", 1)  # a traceback would raise here
    assert r.exit_code == 2, r.stdout
    assert message in r.stderr and r.stderr.startswith("error: ")
    assert s.seen == []


# -- --help and progress -------------------------------------------------------------------------------------------
def test_help_shows_defaults_and_plain_flags_within_80_columns(invoke):
    for cmd in (["burst"], ["verify"], ["timeline"], ["preflight"], ["sweep"], []):
        r = invoke(*cmd, "--help", env={"COLUMNS": "80"}, terminal_width=80)
        assert r.exit_code == 0
        text = r.stdout
        assert "<bool>" not in text and "<str>" not in text and "<list[" not in text and "…" not in text
        if "Commands:" in text:
            assert "..." not in text.split("Commands:")[1]
        assert max(len(line) for line in text.splitlines()) <= 80, cmd
    burst = invoke("burst", "--help", env={"COLUMNS": "80"}, terminal_width=80).stdout
    flat = " ".join(burst.split())
    for shown in ("[default: 40; 1<=x<=100000]", "--stream / --no-stream", "[default: stream]",
                  "env var: GPU_BURST_API_KEY", "--from-zero "):
        assert shown in flat, shown
    verify = " ".join(invoke("verify", "--help", env={"COLUMNS": "80"}, terminal_width=80).stdout.split())
    assert "[default: the model name]" in verify


def test_progress_lines_at_a_steady_interval_on_a_non_tty(invoke, stub):
    s = stub(ttft=0.2, tokens=1)
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 6, "-c", 2, "--progress-interval", 0.1)
    assert r.exit_code == 0
    lines = [line for line in r.stderr.splitlines() if line.startswith("burst [")]
    ticks = [float(line.split("[")[1].split("s]")[0]) for line in lines if "(finished)" not in line]
    assert len(ticks) >= 4, r.stderr
    assert ticks == [pytest.approx(0.1 * (k + 1)) for k in range(len(ticks))]
    assert lines[-1].endswith("6/6 done, ok 6, err 0 (finished)")


def test_a_stopped_run_keeps_what_finished(stub):
    import asyncio

    from burstctl.burst import BurstConfig, normalize_url, run_burst

    s = stub(ttft=0.01, tokens=1, slow_ttft=30.0, plan={3: "slow", 4: "slow"})

    async def go():
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, stop.set)
        cfg = BurstConfig(url=normalize_url(s.url), model="m", prompts=["p"], requests=10, concurrency=2)
        return await run_burst(cfg, stop=stop)

    report = asyncio.run(go())
    summary = report.summary
    assert summary["interrupted"] is True and summary["wall_s"] < 5
    assert summary["succeeded"] == 2 and summary["errors"] == {"interrupted": 8}


def test_an_unreported_cold_start_is_pointed_out():
    # A first wave whose TTFT is minutes against a warm 50 ms, with no header and no --from-zero.
    held = [RequestResult(index=i, ok=True, ttft=90.0, latency=91.0, started=0.0) for i in range(4)]
    warm = [RequestResult(index=4 + i, ok=True, ttft=0.05, latency=1.0, started=91.0) for i in range(8)]
    s = summarize(held + warm, wall=100.0, from_zero=False)
    assert s["cold_start"]["detected"] is False
    assert any("run again with --from-zero" in line for line in s["diagnosis"])
    assert not any("--from-zero" in line for line in summarize(warm, wall=10.0, from_zero=False)["diagnosis"])
