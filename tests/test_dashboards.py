"""Dashboards and alerts: the grafana-foundation-sdk dashboard (PromQL per panel), its sidecar ConfigMap, and the
PrometheusRule (validated against the upstream CRD)."""

import json

import pytest
from test_workload_support import as_object, dependency_names, of_kind, run_workload
from upstream import needs_upstream, validate_cr

from components.alerts import IDLE_GPU_NODE_EXPR, no_replica_expr
from components.dashboards import DASHBOARD_FILE, DASHBOARD_UID, build_dashboard


def _exprs(d: dict) -> dict:
    return {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in d["panels"]}


def test_dashboard_covers_vllm_and_the_scale_chain():
    d = build_dashboard(["qwen2-5-1-5b-instruct", "llama-3-1-8b-instruct"], "inference")
    assert d["uid"] == DASHBOARD_UID
    ex = _exprs(d)
    assert ex["Queue depth (waiting)"] == ['sum by (model_name) (vllm:num_requests_waiting{model_name=~"$model"})']
    assert ex["Running requests"] == ['sum by (model_name) (vllm:num_requests_running{model_name=~"$model"})']
    assert ex["KV-cache usage"] == ['avg by (model_name) (vllm:kv_cache_usage_perc{model_name=~"$model"})']
    assert any("vllm:generation_tokens_total" in e and "rate(" in e for e in ex["Tokens/s"])
    for title, metric in (("Time to first token", "vllm:time_to_first_token_seconds"),
                          ("Inter-token latency", "vllm:inter_token_latency_seconds"),
                          ("End-to-end request latency", "vllm:e2e_request_latency_seconds")):
        assert ex[title] == [f'histogram_quantile({q}, sum by (le, model_name) (rate({metric}_bucket'
                             f'{{model_name=~"$model"}}[$__rate_interval])))' for q in (0.5, 0.95, 0.99)]
    chain = " ".join(ex["Held/in-flight requests at the interceptor"] + ex["Replicas"] + ex["Pending pods"]
                     + ex["GPU nodes / GPUs"])
    for needle in ('interceptor_request_concurrency{route_namespace="inference"', "kube_deployment_status_replicas{",
                   'phase="Pending"', 'kube_node_status_allocatable{resource="nvidia_com_gpu"}'):
        assert needle in chain
    assert "vllm:gpu_cache_usage_perc" not in json.dumps(d)  # deprecated name
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["model"]["query"] == "qwen2-5-1-5b-instruct,llama-3-1-8b-instruct"
    assert variables["datasource"]["query"] == "prometheus"
    for p in d["panels"]:
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            refs = [t["refId"] for t in p["targets"]]
            assert len(set(refs)) == len(refs) and all(refs)
    assert len({p["id"] for p in d["panels"]}) == len(d["panels"])


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_dashboard_config_map_for_the_sidecar(mocks, stack):
    _, _, cfg = run_workload(stack)
    (cm,) = [as_object(r) for r in of_kind(mocks, "ConfigMap") if r.name == "gpu-burst-dashboards-vllm"]
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    model = json.loads(cm["data"][DASHBOARD_FILE])
    assert model["templating"]["list"][1]["query"] == ",".join(m.served_name for m in cfg.models)
    assert "monitoring" in dependency_names(mocks, "gpu-burst-dashboards-vllm")


@needs_upstream
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_prometheus_rule_validates_and_alerts(mocks, stack):
    _, _, cfg = run_workload(stack)
    (rule,) = [as_object(r) for r in of_kind(mocks, "PrometheusRule") if r.name == "gpu-burst-alerts-rules"]
    assert validate_cr(rule) == []
    groups = {g["name"]: g["rules"] for g in rule["spec"]["groups"]}
    per_model = {r["labels"]["model"]: r for r in groups["gpu-burst.models"]}
    assert set(per_model) == {m.served_name for m in cfg.models}
    for m in cfg.models:
        r = per_model[m.served_name]
        assert r["alert"] == "GpuBurstModelNoReplica" and r["expr"] == no_replica_expr("inference", m.served_name)
        assert r["for"] == f"{m.startup_seconds // 60}m"
    (idle,) = groups["gpu-burst.capacity"]
    assert idle["alert"] == "GpuBurstGpuNodeIdle" and idle["expr"] == IDLE_GPU_NODE_EXPR
    longest = max(int(p.consolidate_after.rstrip("m")) for p in cfg.gpu.pools)
    assert idle["for"] == f"{longest + 10}m"
    assert "monitoring" in dependency_names(mocks, "gpu-burst-alerts-rules")


def test_alert_promql_text():
    assert no_replica_expr("inference", "qwen2-5-1-5b-instruct") == (
        'sum(interceptor_request_concurrency{route_namespace="inference", route_name="qwen2-5-1-5b-instruct"}) > 0\n'
        'and on () (sum(kube_deployment_status_replicas_available{namespace="inference", '
        'deployment="qwen2-5-1-5b-instruct"}) or vector(0)) == 0')
    # Whole GPUs and time-slices: an idle time-sliced node costs as much as any other.
    assert 'kube_node_status_allocatable{resource=~"nvidia_com_gpu|nvidia_com_gpu_shared"}' in IDLE_GPU_NODE_EXPR
    assert 'kube_pod_container_resource_requests{resource=~"nvidia_com_gpu|nvidia_com_gpu_shared"}' in IDLE_GPU_NODE_EXPR
    assert "unless on (node)" in IDLE_GPU_NODE_EXPR


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_failing_triggers_alert_per_model_and_show_on_the_dashboard(mocks, stack):
    """A trigger in error with none active keeps KEDA from scaling to zero (a GPU node for nobody): alert per model
    on ScaledObject Ready=False and on KEDA's own error counters, and chart both."""
    from components.alerts import scaled_object_not_ready_expr, scaler_errors_expr

    _, _, cfg = run_workload(stack)
    (rule,) = [as_object(r) for r in of_kind(mocks, "PrometheusRule") if r.name == "gpu-burst-alerts-rules"]
    groups = {g["name"]: g["rules"] for g in rule["spec"]["groups"]}
    by = {(r["alert"], r["labels"]["model"]): r for r in groups["gpu-burst.scaling"]}
    for m in cfg.models:
        not_ready = by[("GpuBurstScaledObjectNotReady", m.served_name)]
        assert not_ready["expr"] == scaled_object_not_ready_expr("inference", m.served_name)
        errors = by[("GpuBurstScalerErrors", m.served_name)]
        assert errors["expr"] == f'{scaler_errors_expr("inference", m.served_name)} > 0'
    assert len(by) == 2 * len(cfg.models)
    (cm,) = [as_object(r) for r in of_kind(mocks, "ConfigMap") if "gpu-burst-vllm.json" in (r.inputs.get("data") or {})]
    exprs = [t["expr"] for p in json.loads(cm["data"]["gpu-burst-vllm.json"])["panels"] for t in p.get("targets", [])]
    assert any("kube_keda_scaledobject_status_condition" in e and 'type="Ready"' in e for e in exprs)
    assert any("keda_scaler_detail_errors_total" in e and "keda_scaled_object_errors_total" in e for e in exprs)


def test_keda_health_promql_uses_metrics_keda_2_20_exports():
    # kedacore/keda@v2.20.2 pkg/metricscollector/prommetrics.go: namespace "keda", subsystems "scaler" /
    # "scaled_object"; there is no keda_scaler_errors_total in 2.20.
    from components.alerts import scaler_errors_expr

    e = scaler_errors_expr("inference", "m")
    # Scraped through the chart's ServiceMonitor without honorLabels: KEDA's `namespace` (the ScaledObject's) is
    # stored as `exported_namespace`, `namespace` is the operator pod's ("keda"), which would never match.
    assert 'increase(keda_scaler_detail_errors_total{exported_namespace="inference", scaledObject=~"m"}[5m])' in e
    assert 'increase(keda_scaled_object_errors_total{exported_namespace="inference", scaledObject=~"m"}[5m])' in e
    assert 'namespace="inference"' not in e.replace("exported_namespace", "")
    assert "keda_scaler_errors_total" not in e
