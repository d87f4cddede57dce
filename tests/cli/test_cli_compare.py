"""`compare`: result files made by `burst` against the local stub at two server delays, side by side, gated on p95
TTFT; inter-token latency in `burst`'s summary; bad files and flags."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from typer.testing import CliRunner

from burstctl.burst import RequestResult, summarize
from burstctl.cli import app
from burstctl.compare import parse_regression
from openai_stub import StubBehaviour, StubServer  # tests/cli: the local OpenAI-compatible stub

FAST = {"ttft": 0.02, "token_delay": 0.005, "tokens": 6}
SLOW = {"ttft": 0.2, "token_delay": 0.03, "tokens": 6}
"""Two servers serving the same model: the slow one stands in for the same model on a time-sliced GPU."""


def _burst(out: Path, requests: int = 12, **behaviour) -> None:
    with StubServer(StubBehaviour(**behaviour)) as s:
        r = CliRunner().invoke(app, ["burst", "--url", s.url, "-m", "qwen3-4b", "-n", str(requests), "-c", "4",
                                     "--max-tokens", "6", "--no-progress", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> tuple[Path, Path]:
    """A burst against each server, written by `burst --out` (made once: the tests only read them)."""
    d = tmp_path_factory.mktemp("results")
    a, b = d / "whole-gpu.json", d / "4-slices.json"
    _burst(a, **FAST)
    _burst(b, **SLOW)
    return a, b


def _rows(doc: dict) -> dict[str, dict]:
    return {r["metric"]: r for r in doc["rows"]}


def test_slower_server_fails_the_gate_and_every_ratio_is_b_over_a(invoke, results):
    a, b = results
    r = invoke("compare", a, b, "--json")
    assert r.exit_code == 1, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    rows = _rows(doc)
    assert doc["ok"] is False and doc["max_regression"] == pytest.approx(0.2)
    assert list(rows) == ["TTFT p50", "TTFT p95", "TTFT p99", "ITL p50", "ITL p95", "ITL p99", "tokens/s",
                          "succeeded", "errors"]
    # The numbers are the result files' own summaries, the ratio B/A.
    sa, sb = (json.loads(p.read_text())["summary"] for p in (a, b))
    assert rows["TTFT p95"]["a"] == sa["ttft_s"]["p95"] and rows["TTFT p95"]["b"] == sb["ttft_s"]["p95"]
    assert rows["TTFT p95"]["ratio"] == pytest.approx(sb["ttft_s"]["p95"] / sa["ttft_s"]["p95"])
    # Server delays 0.2 s vs 0.02 s to the first token, 30 ms vs 5 ms between tokens.
    assert rows["TTFT p95"]["ratio"] > 2 and rows["TTFT p50"]["b"] >= 0.2
    assert rows["ITL p50"]["ratio"] > 2 and 0.025 <= rows["ITL p50"]["b"] < 0.2
    assert rows["tokens/s"]["ratio"] < 1 and rows["errors"]["a"] == rows["errors"]["b"] == 0
    assert "above the allowed +20%" in doc["verdict"]


def test_faster_candidate_passes_and_the_table_reads(invoke, results):
    a, b = results
    r = invoke("compare", b, a)
    assert r.exit_code == 0, r.stdout + r.stderr
    out = r.stdout
    for metric in ("TTFT p95", "ITL p99", "tokens/s", "errors"):
        assert metric in out
    assert "B/A" in out and "ok: B's p95 TTFT" in out


def test_max_regression_moves_the_gate(invoke, results):
    a, b = results
    ratio = _rows(json.loads(invoke("compare", a, b, "--json").stdout))["TTFT p95"]["ratio"]
    loose = f"{(ratio - 1) * 100 + 50:.0f}%"  # above B's actual regression
    assert invoke("compare", a, b, "--max-regression", loose).exit_code == 0
    tight = f"{(ratio - 1) * 100 - 50:.0f}"  # below it, percent without the sign
    assert invoke("compare", a, b, "--max-regression", tight).exit_code == 1
    assert invoke("compare", a, a, "--max-regression", "0").exit_code == 0  # the same file never regresses


def test_a_different_load_is_named(invoke, results, tmp_path: Path):
    a, _ = results
    c = tmp_path / "other-load.json"
    _burst(c, requests=8, **FAST)
    doc = json.loads(invoke("compare", a, c, "--json").stdout)
    assert any(n.startswith("not the same load: requests 12 vs 8") for n in doc["notes"]), doc["notes"]


def test_an_older_result_without_inter_token_latency_still_compares(invoke, fixtures, results, tmp_path: Path):
    a, _ = results
    doc = json.loads((fixtures / "scaled-up.burst.json").read_text())  # a run that started at zero replicas
    del doc["summary"]["itl_s"]  # as written before `burst` recorded inter-token latency
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    r = invoke("compare", a, old, "--json")
    assert r.exit_code == 1  # a cold start's TTFT against warm requests
    doc = json.loads(r.stdout)
    rows = _rows(doc)
    assert rows["ITL p50"]["b"] is None and rows["ITL p50"]["ratio"] is None
    assert rows["TTFT p95"]["b"] == pytest.approx(203.35985)
    assert any("B started at zero replicas" in n for n in doc["notes"])


@pytest.mark.parametrize("content, message", [
    ("not json", "is not JSON"),
    ('{"summary": {"requests": 1}}', "is not a burst result"),
    ("[1, 2]", "is not a burst result"),
])
def test_a_file_that_is_not_a_burst_result_is_bad_input(invoke, results, tmp_path: Path, content, message):
    a, _ = results
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    r = invoke("compare", a, bad, "--json")
    assert r.exit_code == 2 and message in json.loads(r.stdout)["error"]
    assert json.loads(r.stdout)["error"].startswith("B: ")


def test_no_successful_request(invoke, results, tmp_path: Path):
    a, _ = results
    failed = json.loads(a.read_text())
    failed["summary"].update(succeeded=0, failed=12, ttft_s={k: None for k in failed["summary"]["ttft_s"]})
    f = tmp_path / "failed.json"
    f.write_text(json.dumps(failed))
    r = invoke("compare", f, a, "--json")  # nothing to compare against
    assert r.exit_code == 2 and "A: " in json.loads(r.stdout)["error"]
    r = invoke("compare", a, f, "--json")  # the candidate answered nothing: a regression
    assert r.exit_code == 1 and json.loads(r.stdout)["verdict"].startswith("B has no successful request")


@pytest.mark.parametrize("text, value", [("20%", 0.2), ("20", 0.2), (" 12.5 % ", 0.125), ("0", 0.0)])
def test_max_regression_is_a_percentage(text, value):
    assert parse_regression(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "-5%", "1e9", "nan"])
def test_max_regression_rejects_what_is_not_one(invoke, results, text):
    a, b = results
    r = invoke("compare", a, b, "--max-regression", text, "--json")
    assert r.exit_code == 2 and json.loads(r.stdout)["error"].startswith("--max-regression: ")


def test_compare_help(invoke):
    r = invoke("compare", "--help")
    assert r.exit_code == 0 and "--max-regression" in r.stdout and "A.json" in r.stdout


# -- inter-token latency in `burst` ---------------------------------------------------------------------------------
def test_summary_pools_every_gap_of_every_successful_stream():
    ok = [RequestResult(index=0, ok=True, ttft=0.1, latency=0.4, tokens_out=4, started=0.0, gaps=[0.1, 0.1, 0.1]),
          RequestResult(index=1, ok=True, ttft=0.1, latency=1.1, tokens_out=2, started=0.0, gaps=[1.0])]
    bad = [RequestResult(index=2, error="timeout", gaps=[9.0])]  # a failed stream's gaps are not counted
    s = summarize(ok + bad, wall=1.0, from_zero=False)
    assert s["itl_s"]["p50"] == pytest.approx(0.1) and s["itl_s"]["max"] == pytest.approx(1.0)
    assert s["itl_s"]["mean"] == pytest.approx(1.3 / 4)


def test_burst_records_inter_token_latency_per_request_and_in_the_csv(invoke, stub, tmp_path: Path):
    out = tmp_path / "r.csv"
    s = stub(ttft=0.01, token_delay=0.02, tokens=5)
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 3, "-c", 3, "--no-progress", "--out", out)
    assert r.exit_code == 0 and "inter-token" in r.stdout
    rows = list(csv.DictReader(out.open()))
    assert [k for k in rows[0]][-1] == "itl" and "gaps" not in rows[0]
    assert all(0.015 <= float(row["itl"]) < 0.2 for row in rows)
