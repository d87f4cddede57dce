"""`burstctl usage`: per key and per model usage and cost from a Prometheus-shaped server on 127.0.0.1, at a URL and
through the Kubernetes API server's service proxy; empty answers, Prometheus' and the API server's errors, bad flags."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from burstctl.usage import queries
from components import usage as rules
from kube_fake import TOKEN

DAY = "86400s"
LLAMA, QWEN = "llama-3-1-8b-instruct", "qwen2-5-1-5b-instruct"
K = rules.KEY_LABEL


def recorded(window: str = DAY) -> dict[str, list]:
    """What the cluster's Prometheus answers for each query of a day of traffic: label sets as the queries'
    aggregations leave them, values as Prometheus prints them (extrapolated increases are not whole numbers)."""
    q = queries(window)
    price = {"pool": "gpu-spot", "instance_type": "g6.xlarge", "capacity_type": "spot"}
    return {
        q["key_requests"]: [({K: "team-a"}, 1200.4), ({K: "ci"}, 30)],
        q["key_errors"]: [({K: "team-a"}, 12)],
        q["key_tokens"]: [({K: "team-a", "gen_ai_token_type": "input"}, 480000.2),
                          ({K: "team-a", "gen_ai_token_type": "output"}, 120000),
                          ({K: "ci", "gen_ai_token_type": "input"}, 3000),
                          ({K: "ci", "gen_ai_token_type": "output"}, 1500)],
        queries(window)["key_tokens_24h"]: [({K: "team-a", "gen_ai_token_type": "input"}, 700000),
                                            ({K: "team-a", "gen_ai_token_type": "output"}, 200000)],
        q["budgets"]: [({"__name__": rules.BUDGET, K: "team-a"}, 1000000), ({"__name__": rules.BUDGET, K: "ops"}, 50000)],
        q["rejected_401"]: [({}, 7.0003)],
        q["rejected_403"]: [({}, 0)],
        q["rejected_429"]: [({}, 3)],
        q["model_requests"]: [({"model": LLAMA}, 1200), ({"model": QWEN}, 30)],
        q["model_tokens"]: [({"model": LLAMA, "gen_ai_token_type": "input"}, 480000),
                            ({"model": LLAMA, "gen_ai_token_type": "output"}, 120000),
                            ({"model": QWEN, "gen_ai_token_type": "input"}, 3000),
                            ({"model": QWEN, "gen_ai_token_type": "output"}, 1500)],
        q["model_gpu_seconds"]: [({"model": LLAMA}, 7200), ({"model": QWEN}, 0), ({"model": "debug-shell"}, 0)],
        q["model_cold_starts"]: [({"model": LLAMA}, 3), ({"model": QWEN}, 0), ({"model": "debug-shell"}, 0)],
        q["prices"]: [({"__name__": rules.PRICE, "model": LLAMA, **price}, 0.8048),
                      ({"__name__": rules.PRICE, "model": QWEN, **price, "pool": "gpu-on-demand",
                        "capacity_type": "on-demand"}, 0.8048)],
    }


def test_usage_per_key_and_model_as_json(invoke, fake_prometheus):
    prom = fake_prometheus(series=recorded())
    before = datetime.now(timezone.utc).timestamp()
    r = invoke("usage", "--prometheus-url", prom.url, "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    # Every query is the recording rules' own PromQL over the range, evaluated once, at its end.
    assert [q["query"] for q in prom.requests] == list(queries(DAY).values())
    assert rules.key_tokens_expr(DAY) in [q["query"] for q in prom.requests]
    assert len({q["time"] for q in prom.requests}) == 1 and float(prom.requests[0]["time"]) >= before - 1
    assert doc["range"]["seconds"] == 86400
    keys = {k["key"]: k for k in doc["keys"]}
    assert keys["team-a"] == {"key": "team-a", "requests": 1200, "errors": 12, "input_tokens": 480000,
                              "output_tokens": 120000, "tokens_per_day": 1000000, "used_last_24h": 900000,
                              "budget_left": 100000}
    assert keys["ci"]["tokens_per_day"] is None and keys["ci"]["budget_left"] is None
    assert keys["ops"]["requests"] == 0 and keys["ops"]["budget_left"] == 50000  # a budget, no traffic
    assert doc["edge_rejections"] == {"401": 7, "403": 0, "429": 3}
    models = {m["model"]: m for m in doc["models"]}
    assert set(models) == {LLAMA, QWEN}  # the namespace's other Deployment did nothing and has no price
    llama = models[LLAMA]
    assert (llama["gpu_seconds"], llama["gpu_hours"], llama["cold_starts"]) == (7200, 2.0, 3)
    assert (llama["instance_type"], llama["capacity_type"], llama["usd_per_gpu_hour"]) == ("g6.xlarge", "spot", 0.8048)
    assert llama["cost_usd"] == pytest.approx(1.6096)
    assert llama["usd_per_million_output_tokens"] == pytest.approx(1.6096 / 120000 * 1e6, abs=1e-4)
    assert models[QWEN]["cost_usd"] == 0 and models[QWEN]["usd_per_million_output_tokens"] == 0
    assert any("not per key" in n for n in doc["notes"])


def test_usage_tables(invoke, fake_prometheus):
    prom = fake_prometheus(series=recorded())
    r = invoke("usage", "--prometheus-url", prom.url + "/")
    assert r.exit_code == 0, r.stdout + r.stderr
    out = r.stdout
    assert "usage per API key" in out and "usage and cost per model" in out
    row = next(line for line in out.splitlines() if "team-a" in line)
    for cell in ("1,200", "480,000", "120,000", "1,000,000", "900,000", "100,000"):
        assert cell in row
    row = next(line for line in out.splitlines() if LLAMA in line)
    for cell in ("1,200", "120,000", "2.000", "g6.xlarge/", "0.8048", "$1.61", "$13.41"):
        assert cell in row
    assert "401 7, 403 0, 429 3" in out


def test_start_and_end_set_the_window_and_the_evaluation_time(invoke, fake_prometheus):
    prom = fake_prometheus(series=recorded("5400s"))
    r = invoke("usage", "--prometheus-url", prom.url, "--start", "2026-05-01T09:00:00Z",
               "--end", "2026-05-01T10:30:00+00:00", "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert {q["time"] for q in prom.requests} == {f"{datetime(2026, 5, 1, 10, 30, tzinfo=timezone.utc).timestamp():.3f}"}
    assert rules.gpu_seconds_expr("5400s") in [q["query"] for q in prom.requests]
    doc = json.loads(r.stdout)
    assert doc["range"] == {"start": "2026-05-01T09:00:00+00:00", "end": "2026-05-01T10:30:00+00:00", "seconds": 5400}
    assert {m["model"] for m in doc["models"]} == {LLAMA, QWEN}


def test_nothing_recorded_is_an_empty_report_that_says_why(invoke, fake_prometheus):
    prom = fake_prometheus()
    r = invoke("usage", "--prometheus-url", prom.url, "--since", "1h", "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["keys"] == [] and doc["models"] == []
    assert doc["edge_rejections"] == {"401": 0, "403": 0, "429": 0}
    assert any("recording rules are not deployed" in n for n in doc["notes"])
    human = invoke("usage", "--prometheus-url", prom.url, "--since", "1h")
    assert human.exit_code == 0
    assert "no request with a key in this range" in human.stdout
    assert "no model used a GPU or served a request in this range" in human.stdout


@pytest.mark.parametrize("fail, message", [
    ((422, {"status": "error", "errorType": "execution", "error": "query processing would load too many samples "
                                                                   "into memory in query execution"}, "application/json"),
     "refused the key_requests query: HTTP 422 execution: query processing would load too many samples"),
    ((503, {"status": "error", "errorType": "unavailable", "error": "TSDB not ready"}, "application/json"),
     "HTTP 503 unavailable: TSDB not ready"),
    ((502, "<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
     "answered HTTP 502 with something that is not the Prometheus API (<html>"),
    ((200, {"status": "success", "data": {"resultType": "matrix", "result": []}}, "application/json"),
     "without an instant vector (resultType 'matrix')"),
    ((200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1]}]}},
      "application/json"), "malformed sample"),
])
def test_prometheus_errors_are_one_clear_message(invoke, fake_prometheus, fail, message):
    prom = fake_prometheus(fail=fail)
    r = invoke("usage", "--prometheus-url", prom.url, "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert set(doc) == {"error", "exit_code"} and message in doc["error"]
    assert len(prom.requests) == 1  # the first failure stops the command
    human = invoke("usage", "--prometheus-url", prom.url)
    assert human.exit_code == 1 and human.stdout == "" and message in " ".join(human.stderr.split())


def test_unreachable_prometheus(invoke, silent_server):
    r = invoke("usage", "--prometheus-url", "http://127.0.0.1:9", "--json")
    assert r.exit_code == 1 and "cannot reach Prometheus at http://127.0.0.1:9" in json.loads(r.stdout)["error"]
    r = invoke("usage", "--prometheus-url", silent_server, "--request-timeout", "0.3", "--json")
    assert r.exit_code == 1 and "did not answer within 0.3 s" in json.loads(r.stdout)["error"]


def test_through_the_api_servers_service_proxy(invoke, fake_kube, fake_prometheus, fixtures: Path):
    prom = fake_prometheus(series=recorded())
    kubeconfig = fake_kube(fixtures / "idle.yaml", auth="token")
    fake_kube.last.proxies[("monitoring", "kps-prometheus:9090")] = prom.answer
    r = invoke("usage", "--kubeconfig", kubeconfig, "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["prometheus"] == "service monitoring/kps-prometheus:9090 through the API server"
    assert {k["key"] for k in doc["keys"]} == {"team-a", "ci", "ops"}
    sent = fake_kube.last.requests
    assert {s["path"] for s in sent} == {"/api/v1/namespaces/monitoring/services/kps-prometheus:9090/proxy/api/v1/query"}
    assert all(s["authorization"] == f"Bearer {TOKEN}" for s in sent)
    assert len(prom.requests) == len(queries(DAY))


def test_service_proxy_failures(invoke, fake_kube, fake_prometheus, fixtures: Path):
    kubeconfig = fake_kube(fixtures / "idle.yaml", auth="token")
    # No such Service: the API server's own 404 Status.
    r = invoke("usage", "--kubeconfig", kubeconfig, "--prometheus-service", "prometheus:9090", "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["error"] == (
        'the API server could not reach Prometheus (service monitoring/prometheus:9090 through the API server): '
        'HTTP 404 services "prometheus" not found; check --prometheus-namespace/--prometheus-service')
    # The Service exists but Prometheus is down: the proxy's 503 Status.
    fake_kube.last.proxies[("monitoring", "kps-prometheus:9090")] = lambda path, q: (
        503, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 503,
              "reason": "ServiceUnavailable", "message": 'no endpoints available for service "kps-prometheus:9090"'},
        "application/json")
    r = invoke("usage", "--kubeconfig", kubeconfig, "--json")
    assert r.exit_code == 1 and 'HTTP 503 no endpoints available for service' in json.loads(r.stdout)["error"]
    # RBAC without services/proxy.
    fake_kube.last.forbid = True
    r = invoke("usage", "--kubeconfig", kubeconfig, "--json")
    assert r.exit_code == 1
    err = json.loads(r.stdout)["error"]
    assert "not allowed to read services/proxy monitoring/kps-prometheus:9090 (403 Forbidden)" in err


@pytest.mark.parametrize("args, message", [
    (["--since", "2x"], "--since: '2x' is not a duration"),
    (["--since", ""], "--since: '' is not a duration"),
    (["--since", "30s"], "the range must be at least 1m long (got 30 s)"),
    (["--since", "400d"], "longer than 366d"),
    (["--since", "1h", "--start", "2026-05-01T00:00:00Z"], "--since and --start: give one"),
    (["--start", "yesterday"], "--start: 'yesterday' is not a time"),
    (["--end", "2999-01-01T00:00:00Z"], "--end: 2999-01-01T00:00:00+00:00 is in the future"),
    (["--start", "2026-05-01T10:00:00Z", "--end", "2026-05-01T09:00:00Z"], "the range must be at least 1m long"),
    (["--prometheus-url", "localhost:9090"], "--prometheus-url: 'localhost:9090' is not an http(s) URL"),
    (["--prometheus-service", "Prom Server"], "--prometheus-service: 'Prom Server' is not NAME[:PORT]"),
    (["--request-timeout", "0"], "--request-timeout: 0 must be a positive number of seconds"),
])
def test_bad_flags(invoke, monkeypatch, args, message):
    monkeypatch.delenv("BURSTCTL_PROMETHEUS_URL", raising=False)
    r = invoke("usage", *args, "--json")
    assert r.exit_code == 2
    assert message in json.loads(r.stdout)["error"]


def test_help_names_the_range_and_the_sources(invoke):
    r = invoke("usage", "--help")
    assert r.exit_code == 0
    for flag in ("--since", "--start", "--end", "--prometheus-url", "--kubeconfig", "--json", "--progress"):
        assert flag in r.stdout
