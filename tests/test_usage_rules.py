"""Usage and cost recording rules: the PrometheusRule against the upstream CRD, every expression (rules and dashboard
panels) parsed as PromQL, the price series from the same table `burstctl estimate` uses, budgets only for budgeted
keys, and the arithmetic itself evaluated by Prometheus' own rule tester (`promtool test rules`) where installed.

Metric and label names are those envoyproxy/ai-gateway@v1.1.0 exports (internal/metrics/genai.go, metrics_impl.go;
tests/data-plane/vcr/prometheus_metrics_test.go scrapes `gen_ai_client_token_usage` and
`gen_ai_server_request_duration_seconds` from a real extproc), kube-state-metrics' pod/deployment series, and Envoy's
api_key_auth / RBAC / rate-limit counters."""

import json
import shutil
import subprocess

import promql_parser
import pytest
import yaml
from test_workload_support import as_object, dependency_names, of_kind, run_workload
from upstream import needs_upstream, validate_cr

from components import usage
from components.dashboards import build_dashboard
from components.edge_gateway import KEY_ATTRIBUTE

PRICES = {"m1": {"pool": "gpu-spot", "instance_type": "g6.xlarge", "capacity_type": "spot", "usd_per_gpu_hour": 0.8,
                 "time_slices": 1},
          "m3": {"pool": "gpu-sliced", "instance_type": "g6.2xlarge", "capacity_type": "on-demand",
                 "usd_per_gpu_hour": 0.9776, "time_slices": 4}}
RAW_METRICS = {"gen_ai_client_token_usage_sum", "gen_ai_server_request_duration_seconds_count",
               "kube_pod_container_resource_requests", "kube_pod_status_phase", "kube_pod_status_scheduled",
               "kube_deployment_spec_replicas"}


def _rules(groups: list[dict]) -> list[dict]:
    return [r for g in groups for r in g["rules"]]


def _selectors(node) -> list:
    """Every vector selector in a parsed PromQL expression."""
    if isinstance(node, promql_parser.VectorSelector):
        return [node]
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    out = []
    for attr in ("expr", "lhs", "rhs"):
        if hasattr(node, attr) and getattr(node, attr) is not None:
            out += _selectors(getattr(node, attr))
    for arg in getattr(node, "args", None) or []:
        if isinstance(arg, promql_parser.Expr):
            out += _selectors(arg)
    return out


def _names(expr: str) -> set[str]:
    return {s.name for s in _selectors(promql_parser.parse(expr)) if s.name}


def _panel_exprs(d: dict) -> list[str]:
    # Grafana's macros are not PromQL: give them the values Grafana would.
    return [t["expr"].replace("$__rate_interval", "5m").replace("$model", ".*")
            for p in d["panels"] for t in p.get("targets", [])]


def test_key_label_is_the_exporters_name_for_the_edges_attribute():
    # The AI Gateway's OTel Prometheus exporter turns the attribute `gpu_burst.key` into a label name by replacing
    # characters a Prometheus label may not have with `_` (prometheus/otlptranslator LabelNamer: http.method ->
    # http_method), as it does for gen_ai.request.model -> gen_ai_request_model.
    assert KEY_ATTRIBUTE == "gpu_burst.key"
    assert usage.KEY_LABEL == "gpu_burst_key"


def test_every_expression_parses_and_reads_only_known_series():
    groups = usage.rule_groups("inference", PRICES, {"team-a": 1000})
    recorded = {r["record"] for r in _rules(groups) if "record" in r}
    exprs = [r["expr"] for r in _rules(groups)]
    exprs += _panel_exprs(build_dashboard(["m1"], "inference"))
    exprs += [f(w) for f in (usage.key_requests_expr, usage.key_errors_expr, usage.key_tokens_expr,
                             usage.model_requests_expr, usage.model_tokens_expr, usage.gpu_seconds_expr,
                             usage.cold_starts_expr) for w in ("1h", "1d", "5400s")]
    for e in exprs:
        try:
            promql_parser.parse(e)
        except ValueError as err:
            pytest.fail(f"not PromQL ({err}): {e}")
    usage_exprs = [r["expr"] for r in _rules(groups)] + [e for e in _panel_exprs(build_dashboard(["m1"], "inference"))
                                                         if "gpu_burst:" in e]
    names = set().union(*(_names(e) for e in usage_exprs))
    # Every recorded series a rule or panel reads is recorded by some rule; every raw one is a known metric.
    assert {n for n in names if n.startswith("gpu_burst:")} <= recorded
    assert {n for n in names if not n.startswith("gpu_burst:")} <= RAW_METRICS
    panel_records = {n for e in _panel_exprs(build_dashboard(["m1"], "inference")) for n in _names(e)
                     if n.startswith("gpu_burst:")}
    assert {usage.BUDGET_LEFT, usage.record("model_cost_per_million_output_tokens", "1d"),
            usage.record("model_gpu_seconds", "1d"), usage.record("model_cold_starts", "1d"),
            usage.record("key_tokens", "1h"), usage.record("edge_rejected", "1h")} <= panel_records


def test_rejections_read_envoys_filter_counters_per_status():
    assert usage.rejected_expr("401", "1h") == (
        '(sum(increase({__name__=~"envoy_http_.*api_key_auth_unauthorized"}[1h])) or vector(0))')
    assert "envoy_http_.*api_key_auth_forbidden" in usage.rejected_expr("403", "1h")
    e429 = usage.rejected_expr("429", "1d")
    assert "envoy_http_.*local_rate_limit_rate_limited" in e429 and "envoy_cluster_ratelimit_over_limit" in e429
    # Totals: Envoy has no per-client counter, and the rule must not pretend to split them by key.
    assert all(usage.KEY_LABEL not in usage.rejected_expr(c, "1h") for c in usage.REJECTIONS)


def test_cost_series_keep_the_price_labels():
    """Prometheus keeps only the `on (...)` labels of a one-to-one match: both cost divisions must be group_left so
    the cost still says which instance and capacity type it was priced at."""
    many_to_one = promql_parser.VectorMatchCardinality.ManyToOne
    cost = promql_parser.parse(usage.cost_expr("gpu_s"))
    assert str(cost.op) == "*" and cost.modifier.card == many_to_one
    assert cost.modifier.matching.labels == ["model"]
    assert cost.modifier.group_labels == ["pool", "instance_type", "capacity_type"]
    assert _names(usage.cost_expr("gpu_s")) == {"gpu_s", usage.PRICE}
    per_million = promql_parser.parse(usage.cost_per_million_expr("cost", "out"))
    assert str(per_million.op) == "*" and per_million.rhs.val == 1e6
    division = per_million.lhs
    assert str(division.op) == "/" and division.modifier.card == many_to_one
    assert division.modifier.matching.labels == ["model"]
    # Only models that served output tokens: no division by zero, no +Inf per million.
    assert str(division.rhs.expr.op) == ">" and division.rhs.expr.rhs.val == 0


def test_budget_rules_exist_only_for_budgeted_keys():
    plain = _rules(usage.rule_groups("inference", PRICES, {}))
    assert not [r for r in plain if r.get("record") in (usage.BUDGET, usage.BUDGET_LEFT, usage.BUDGET_USED)
                or "alert" in r]
    groups = usage.rule_groups("inference", PRICES, {"team-a": 2_000_000, "ci": 50_000})
    rules = _rules(groups)
    budgets = {r["labels"][usage.KEY_LABEL]: r["expr"] for r in rules if r.get("record") == usage.BUDGET}
    assert budgets == {"team-a": "vector(2000000)", "ci": "vector(50000)"}
    (alert,) = [r for r in rules if "alert" in r]
    assert alert["alert"] == "GpuBurstKeyBudget80" and alert["expr"] == f"{usage.BUDGET_USED} >= 0.8"
    # The alert reads a ratio over the budget series, so a key without a budget has no ratio and never alerts.
    used = next(r for r in rules if r.get("record") == usage.BUDGET_USED)
    assert used["expr"].endswith(f"/ on ({usage.KEY_LABEL}) {usage.BUDGET}")
    # Same group as the key totals it reads: rules of one group run in order.
    (keys,) = [g for g in groups if g["name"] == "gpu-burst.usage.keys"]
    order = [r.get("record") or r.get("alert") for r in keys["rules"]]
    assert order.index(usage.record("key_tokens", "1d")) < order.index(usage.BUDGET_USED) < order.index(
        "GpuBurstKeyBudget80")


@needs_upstream
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_usage_rule_validates_and_prices_each_model_like_estimate(mocks, stack):
    from burstctl import estimate

    _, _, cfg = run_workload(stack)
    (rule,) = [as_object(r) for r in of_kind(mocks, "PrometheusRule") if r.name == "gpu-burst-usage-rules"]
    assert validate_cr(rule) == []
    assert "monitoring" in dependency_names(mocks, "gpu-burst-usage-rules")
    assert rule["metadata"]["namespace"] == "inference"
    rules = _rules(rule["spec"]["groups"])
    prices = {r["labels"]["model"]: r for r in rules if r.get("record") == usage.PRICE}
    assert set(prices) == {m.served_name for m in cfg.models}
    for m in cfg.models:
        est = estimate.estimate(cfg, m)
        p = prices[m.served_name]
        assert p["labels"]["instance_type"] == est.instance_type
        assert p["labels"]["pool"] == m.pool
        assert p["expr"] == f"vector({round(est.price_per_hour / m.gpus, 6)})"
    pool_caps = {p.name: [c.value for c in p.capacity_types] for p in cfg.gpu.pools}
    for m in cfg.models:
        assert prices[m.served_name]["labels"]["capacity_type"] in pool_caps[m.pool]
    assert not [r for r in rules if "alert" in r]  # no key has a daily token budget in these stacks
    per_sample = {r["record"]: r["expr"] for r in rules if r.get("record") in (usage.GPUS_RUNNING, usage.SCALED_UP)}
    assert 'namespace="inference"' in per_sample[usage.GPUS_RUNNING]
    assert 'resource="nvidia_com_gpu"' in per_sample[usage.GPUS_RUNNING]


def test_a_model_on_time_slices_is_priced_at_estimates_instance_and_counts_its_share_of_a_gpu():
    from test_time_slicing import SHARED_MODEL, SHARED_POOL
    from test_workload_support import DEV_MODELS, raw_config

    from burstctl import estimate
    from stacks.config import validate
    from stacks.config.prices import model_price

    raw = raw_config("dev", models=[*DEV_MODELS, SHARED_MODEL])
    raw["gpu"] = {**raw["gpu"], "pools": [*raw["gpu"]["pools"], SHARED_POOL]}
    cfg = validate(raw)
    (m,) = [m for m in cfg.models if m.shared_gpu]
    price = model_price(cfg, m)
    est = estimate.estimate(cfg, m)
    # 4 slices of 3 CPUs do not fit a 4- or 8-vCPU node: the same 16-vCPU instance estimate sizes the node with.
    assert price.instance_type == est.instance_type and price.instance_type.endswith(".4xlarge")
    assert price.usd_per_gpu_hour == est.price_per_hour and price.time_slices == est.slices == 4
    groups = usage.rule_groups("inference", {m.served_name: price._asdict()}, {})
    (share,) = [r for r in _rules(groups) if r.get("record") == usage.GPUS_PER_SLICE]
    assert share == {"record": usage.GPUS_PER_SLICE, "expr": "vector(0.25)", "labels": {"model": m.served_name}}
    samples = [r.get("record") for r in groups[0]["rules"]]
    assert samples.index(usage.GPUS_PER_SLICE) < samples.index(usage.GPUS_RUNNING)  # read in the same evaluation


PROMTOOL = shutil.which("promtool")


def _series(name: str, labels: dict, values: str) -> dict:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _sample(name: str, labels: dict, value: float) -> dict:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"labels": f"{name}{{{inner}}}", "value": value}


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian: apt-get install prometheus)")
def test_rules_arithmetic_under_prometheus(tmp_path):
    """Three hours of synthetic series, one per minute, evaluated by Prometheus' rule engine."""
    tok, req = "gen_ai_client_token_usage_sum", "gen_ai_server_request_duration_seconds_count"
    a = {"gpu_burst_key": "team-a", "gen_ai_original_model": "m1"}
    pod = {"namespace": "inference", "pod": "m1-5d8f7c9b6-abcde"}
    pending = {"namespace": "inference", "pod": "m2-7c9b6d8f5-fghij"}
    series = [
        # team-a: 60 input tokens a minute through two Envoy pods, 40 output; cached_input is part of input.
        _series(tok, {**a, "gen_ai_token_type": "input", "pod": "envoy-a"}, "0+30x180"),
        _series(tok, {**a, "gen_ai_token_type": "input", "pod": "envoy-b"}, "0+30x180"),
        _series(tok, {**a, "gen_ai_token_type": "output", "pod": "envoy-a"}, "0+40x180"),
        _series(tok, {**a, "gen_ai_token_type": "cached_input", "pod": "envoy-a"}, "0+20x180"),
        _series(tok, {"gpu_burst_key": "ci", "gen_ai_original_model": "m1", "gen_ai_token_type": "input",
                      "pod": "envoy-a"}, "0+10x180"),
        _series(req, {**a, "pod": "envoy-a"}, "0+2x180"),
        _series(req, {**a, "pod": "envoy-a", "error_type": "_OTHER"}, "0+1x180"),
        _series("envoy_http_api_key_auth_unauthorized", {"envoy_http_conn_manager_prefix": "https-10443",
                                                         "pod": "envoy-a"}, "0+1x180"),
        _series("envoy_http_local_rate_limiter_http_local_rate_limit_rate_limited", {"pod": "envoy-a"}, "0+2x180"),
        _series("envoy_cluster_ratelimit_over_limit", {"envoy_cluster_name": "httproute/inference/m1/rule/0",
                                                       "pod": "envoy-a"}, "0+3x180"),
        # m1's pod holds one GPU from minute 60 to 119, then is gone (kube-state-metrics stops the series).
        _series("kube_pod_container_resource_requests", {**pod, "container": "vllm", "node": "ip-10-0-1-1",
                                                         "resource": "nvidia_com_gpu", "unit": "integer"},
                "_x60 1x59 stale"),
        _series("kube_pod_status_phase", {**pod, "phase": "Running"}, "_x60 1x59 stale"),
        _series("kube_pod_status_scheduled", {**pod, "condition": "true"}, "_x60 1x59 stale"),
        # m2's pod asks for a GPU but was never bound to a node: no GPU is held, nothing is billed.
        _series("kube_pod_container_resource_requests", {**pending, "container": "vllm",
                                                         "resource": "nvidia_com_gpu", "unit": "integer"}, "1x180"),
        _series("kube_pod_status_phase", {**pending, "phase": "Pending"}, "1x180"),
        _series("kube_pod_status_scheduled", {**pending, "condition": "true"}, "0x180"),
        # m1 scales 0 -> 1 at minute 60, back to 0 at 120, 0 -> 2 at 140; m2 stays at 1.
        _series("kube_deployment_spec_replicas", {"namespace": "inference", "deployment": "m1"},
                "0x59 1x59 0x19 2x39"),
        _series("kube_deployment_spec_replicas", {"namespace": "inference", "deployment": "m2"}, "1x180"),
        # m3 runs on time-slices (4 per GPU): two replicas hold one slice each for the first hour, a quarter GPU each.
        *[s for p in ("m3-6b7d9f8c5-kkkkk", "m3-6b7d9f8c5-lllll") for s in (
            _series("kube_pod_container_resource_requests", {"namespace": "inference", "pod": p, "container": "vllm",
                                                             "resource": "nvidia_com_gpu_shared", "unit": "integer"},
                    "1x59 stale"),
            _series("kube_pod_status_phase", {"namespace": "inference", "pod": p, "phase": "Running"}, "1x59 stale"),
            _series("kube_pod_status_scheduled", {"namespace": "inference", "pod": p, "condition": "true"},
                    "1x59 stale"))],
        _series("kube_deployment_spec_replicas", {"namespace": "inference", "deployment": "m3"}, "2x59 0x120"),
    ]
    price = {"model": "m1", "pool": "gpu-spot", "instance_type": "g6.xlarge", "capacity_type": "spot"}
    r = usage.record
    checks = [
        ("2h", r("key_tokens", "1h"), [
            ({"gpu_burst_key": "team-a", "gen_ai_token_type": "input"}, 3600),
            ({"gpu_burst_key": "team-a", "gen_ai_token_type": "output"}, 2400),
            ({"gpu_burst_key": "ci", "gen_ai_token_type": "input"}, 600)]),
        ("2h", r("key_requests", "1h"), [({"gpu_burst_key": "team-a"}, 180)]),
        ("2h", r("key_errors", "1h"), [({"gpu_burst_key": "team-a"}, 60)]),
        ("2h", r("edge_rejected", "1h"), [({"code": "401"}, 60), ({"code": "403"}, 0), ({"code": "429"}, 300)]),
        ("2h", r("model_tokens", "1h"), [({"model": "m1", "gen_ai_token_type": "input"}, 4200),
                                         ({"model": "m1", "gen_ai_token_type": "output"}, 2400)]),
        ("150m", r("model_gpu_seconds", "1d"), [({"model": "m1"}, 3600), ({"model": "m2"}, 0),
                                                ({"model": "m3"}, 2 * 60 * 60 / 4)]),
        ("150m", r("model_cost_usd", "1d"), [(price, 0.8), ({"model": "m3", "pool": "gpu-sliced",
                                                              "instance_type": "g6.2xlarge",
                                                              "capacity_type": "on-demand"}, 0.5 * 0.9776)]),
        # 0.8 USD for 6,000 output tokens.
        ("150m", r("model_cost_per_million_output_tokens", "1d"), [(price, 0.8 / 6000 * 1e6)]),
        ("179m", r("model_cold_starts", "1d"), [({"model": "m1"}, 2), ({"model": "m2"}, 0), ({"model": "m3"}, 0)]),
        ("179m", r("model_cold_starts", "1h"), [({"model": "m1"}, 1), ({"model": "m2"}, 0), ({"model": "m3"}, 0)]),
        # 150 minutes x 100 counted tokens of a 20,000 budget; "ops" has a budget and no traffic.
        ("150m", usage.BUDGET_LEFT, [({"gpu_burst_key": "team-a"}, 5000), ({"gpu_burst_key": "ops"}, 5000)]),
    ]
    fired = {"exp_labels": {"severity": "warning", "gpu_burst_key": "team-a"},
             "exp_annotations": {
                 "summary": "API key team-a used 80% of its daily token budget",
                 "description": "Input + output tokens of key team-a over the last 24 hours reached 80% of its "
                                "tokensPerDay. At 100% of its budget window the edge answers 429 until the "
                                "window resets; raise the budget or tell the key's owner."}}
    test = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [{"expr": name, "eval_time": at, "exp_samples": [_sample(name, lbl, v) for lbl, v in exp]}
                             for at, name, exp in checks],
        "alert_rule_test": [{"eval_time": "150m", "alertname": "GpuBurstKeyBudget80", "exp_alerts": []},
                            {"eval_time": "160m", "alertname": "GpuBurstKeyBudget80", "exp_alerts": [fired]}],
    }]}
    groups = usage.rule_groups("inference", PRICES, {"team-a": 20_000, "ops": 5_000})
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    (tmp_path / "test.yaml").write_text(json.dumps(test))
    run = subprocess.run([PROMTOOL, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
