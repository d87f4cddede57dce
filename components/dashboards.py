"""Dashboards: the vLLM + scale-chain Grafana dashboard, built with grafana-foundation-sdk and shipped as a ConfigMap
that kube-prometheus-stack's Grafana sidecar loads."""

import json
from typing import Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos

from ._common import child, deps_of, labels, token
from .alerts import GPU, KSM_GPU, scaler_errors_expr
from . import usage

DASHBOARD_UID = "gpu-burst-vllm"
DASHBOARD_FILE = "gpu-burst-vllm.json"
_DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
QUANTILES = (0.5, 0.95, 0.99)


def _ts(title: str, unit: str, targets: list[tuple[str, str]], pos: GridPos, description: str = "") -> timeseries.Panel:
    p = (timeseries.Panel().title(title).unit(unit).datasource(_DS).grid_pos(pos).fill_opacity(10)
         .line_width(1).description(description))
    for i, (expr, legend) in enumerate(targets):
        p = p.with_target(prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i)))
    return p


def _quantiles(metric: str, sel: str) -> list[tuple[str, str]]:
    return [(f"histogram_quantile({q}, sum by (le, model_name) (rate({metric}_bucket{{{sel}}}[$__rate_interval])))",
             f"{{{{model_name}}}} p{int(q * 100)}") for q in QUANTILES]


KEY_LABEL = usage.KEY_LABEL
"""Prometheus label of the API-key name on the AI Gateway's metrics (the attribute the edge maps from the header its
API-key filter sets; the OTel Prometheus exporter turns dots into underscores)."""


def edge_panels(y: int) -> list:
    """Front-door panels: token usage per model and per key (AI Gateway gen_ai.* metrics, names as in
    envoyproxy/ai-gateway@v1.1.0 examples/monitoring/grafana-dashboard.json), and what the edge rejected before any
    GPU was involved (Envoy's api_key_auth and local rate-limit counters)."""
    model = 'gen_ai_original_model=~"$model"'
    tokens = f'gen_ai_client_token_usage_sum{{{model}, gen_ai_token_type=~"input|output"}}'
    return [
        db.Row("Front door: tokens, keys, rejections").grid_pos(GridPos(h=1, w=24, x=0, y=y)),
        _ts("Tokens/s per model (edge)", "short", [
            (f"sum by (gen_ai_original_model, gen_ai_token_type) (rate({tokens}[$__rate_interval]))",
             "{{gen_ai_original_model}} {{gen_ai_token_type}}")], GridPos(h=8, w=8, x=0, y=y + 1),
            "gen_ai.client.token.usage from the AI Gateway, by the model named in the request body."),
        _ts("Tokens/s and requests/s per API key", "short", [
            (f"sum by ({KEY_LABEL}) (rate({tokens}[$__rate_interval]))", "{{%s}} tokens" % KEY_LABEL),
            (f"sum by ({KEY_LABEL}) (rate(gen_ai_server_request_duration_seconds_count{{{model}}}[$__rate_interval]))",
             "{{%s}} requests" % KEY_LABEL)], GridPos(h=8, w=8, x=8, y=y + 1),
            "Per key name (never the key). Requests the edge rejects (401/429) never reach the AI Gateway's "
            "upstream filter and are not counted here."),
        _ts("Rejected at the edge: 401 / 429", "short", [
            ('sum(rate({__name__=~"envoy_http_.*api_key_auth_unauthorized"}[$__rate_interval]))', "401 no/bad key"),
            ('sum(rate({__name__=~"envoy_http_.*local_rate_limit_rate_limited"}[$__rate_interval]))',
             "429 over the key's limit")], GridPos(h=8, w=8, x=16, y=y + 1),
            "Envoy's api_key_auth `unauthorized` and local rate limit `rate_limited` counters. A 401 has no key name "
            "(the key did not match any); Envoy's local limiter counts per filter, not per key, so 429s are totals."),
        _ts("Upstream errors per API key", "short", [
            (f'sum by ({KEY_LABEL}, error_type) (rate(gen_ai_server_request_duration_seconds_count{{{model}, '
             f'error_type!=""}}[$__rate_interval]))', "{{%s}} {{error_type}}" % KEY_LABEL)],
            GridPos(h=8, w=12, x=0, y=y + 9)),
        _ts("Requests held at the interceptor", "short", [
            ('sum by (route_name) (interceptor_request_concurrency{route_name=~"$model"})', "{{route_name}}")],
            GridPos(h=8, w=12, x=12, y=y + 9),
            "Requests waiting for a replica (cold start) or being proxied, next to the edge's view."),
    ]


def _stat(title: str, unit: str, expr: str, legend: str, pos: GridPos, description: str = "") -> stat.Panel:
    return (stat.Panel().title(title).unit(unit).datasource(_DS).grid_pos(pos).description(description)
            .with_target(prometheus.Dataquery().expr(expr).legend_format(legend).ref_id("A")))


def usage_panels(y: int) -> list:
    """Usage and cost, from the recording rules of components/usage.py: per API key and per model."""
    r, k, m = usage.record, KEY_LABEL, f'{usage.MODEL_LABEL}=~"$model"'
    per_key = "{{%s}}" % k
    return [
        db.Row("Usage and cost: per API key, per model").grid_pos(GridPos(h=1, w=24, x=0, y=y)),
        _ts("Requests per API key (last hour)", "short", [
            (r("key_requests", "1h"), per_key)], GridPos(h=8, w=6, x=0, y=y + 1),
            "Requests the edge admitted and sent to a model, per key name, over the hour before each point."),
        _ts("Tokens per API key (last hour)", "short", [
            (r("key_tokens", "1h"), "%s {{gen_ai_token_type}}" % per_key)], GridPos(h=8, w=6, x=6, y=y + 1)),
        _ts("Errors per API key and refusals at the edge (last hour)", "short", [
            (r("key_errors", "1h"), "%s failed upstream" % per_key),
            (r("edge_rejected", "1h"), "{{code}} at the edge (all keys)")], GridPos(h=8, w=6, x=12, y=y + 1),
            "Upstream failures are per key; Envoy counts its own 401/403/429 per filter, not per key."),
        _stat("Daily token budget left", "short", usage.BUDGET_LEFT, per_key, GridPos(h=8, w=6, x=18, y=y + 1),
              "tokensPerDay minus input + output tokens of the last 24 hours (rolling); keys without a budget are "
              "not shown."),
        _stat("GPU-hours per model (last 24 h)", "short", f"{r('model_gpu_seconds', '1d')}{{{m}}} / 3600",
              "{{model}}", GridPos(h=6, w=6, x=0, y=y + 9),
              "GPUs held by the model's pods (bound to a node, not finished) x time, idle warm time included."),
        _stat("Cold starts per model (last 24 h)", "short", f"{r('model_cold_starts', '1d')}{{{m}}}", "{{model}}",
              GridPos(h=6, w=6, x=6, y=y + 9), "Scale-ups from zero replicas."),
        _stat("GPU cost per model (last 24 h)", "currencyUSD", f"{r('model_cost_usd', '1d')}{{{m}}}",
              "{{model}} ({{instance_type}})", GridPos(h=6, w=6, x=12, y=y + 9),
              "GPU-hours x the pool's price per GPU-hour (burstctl estimate's table, on-demand list prices)."),
        _stat("Cost per million output tokens (last 24 h)", "currencyUSD",
              f"{r('model_cost_per_million_output_tokens', '1d')}{{{m}}}", "{{model}}",
              GridPos(h=6, w=6, x=18, y=y + 9),
              "GPU cost of the last 24 hours / output tokens served in them x 1e6. Idle warm time is charged to the "
              "model, so a lightly used model looks expensive."),
    ]


def build_dashboard(models: list[str], models_namespace: str) -> dict:
    """The dashboard model (a plain dict, JSON-ready). Panels filter on the `model` variable (served names from config,
    so the scale-chain panels work while a model is at zero replicas and has no vLLM series)."""
    ns = models_namespace
    m = 'model_name=~"$model"'
    chain_pod = f'namespace="{ns}", pod=~"($model)-[a-z0-9]+-[a-z0-9]+"'
    panels = [
        db.Row("Requests and queue").grid_pos(GridPos(h=1, w=24, x=0, y=0)),
        _ts("Queue depth (waiting)", "short", [(f"sum by (model_name) (vllm:num_requests_waiting{{{m}}})",
                                                "{{model_name}}")], GridPos(h=8, w=8, x=0, y=1),
            "vllm:num_requests_waiting summed over replicas: the 1→N scaling signal."),
        _ts("Running requests", "short", [(f"sum by (model_name) (vllm:num_requests_running{{{m}}})",
                                           "{{model_name}}")], GridPos(h=8, w=8, x=8, y=1)),
        _ts("KV-cache usage", "percentunit", [(f"avg by (model_name) (vllm:kv_cache_usage_perc{{{m}}})",
                                               "{{model_name}}")], GridPos(h=8, w=8, x=16, y=1)),
        _ts("Tokens/s", "short", [
            (f"sum by (model_name) (rate(vllm:generation_tokens_total{{{m}}}[$__rate_interval]))",
             "{{model_name}} generated"),
            (f"sum by (model_name) (rate(vllm:prompt_tokens_total{{{m}}}[$__rate_interval]))",
             "{{model_name}} prompt")], GridPos(h=8, w=24, x=0, y=9)),
        db.Row("Latency (p50 / p95 / p99)").grid_pos(GridPos(h=1, w=24, x=0, y=17)),
        _ts("Time to first token", "s", _quantiles("vllm:time_to_first_token_seconds", m), GridPos(h=8, w=8, x=0, y=18)),
        _ts("Inter-token latency", "s", _quantiles("vllm:inter_token_latency_seconds", m), GridPos(h=8, w=8, x=8, y=18)),
        _ts("End-to-end request latency", "s", _quantiles("vllm:e2e_request_latency_seconds", m),
            GridPos(h=8, w=8, x=16, y=18)),
        db.Row("Scale chain: held requests → replicas → pods → GPU nodes").grid_pos(GridPos(h=1, w=24, x=0, y=26)),
        _ts("Held/in-flight requests at the interceptor", "short", [
            (f'sum by (route_name) (interceptor_request_concurrency{{route_namespace="{ns}", route_name=~"$model"}})',
             "{{route_name}}")], GridPos(h=8, w=6, x=0, y=27),
            "interceptor_request_concurrency: requests held during a cold start plus those being proxied."),
        _ts("Replicas", "short", [
            (f'sum by (deployment) (kube_deployment_status_replicas{{namespace="{ns}", deployment=~"$model"}})',
             "{{deployment}} desired/current"),
            (f'sum by (deployment) (kube_deployment_status_replicas_available{{namespace="{ns}", deployment=~"$model"}})',
             "{{deployment}} available")], GridPos(h=8, w=6, x=6, y=27)),
        _ts("Pending pods", "short", [(f'sum(kube_pod_status_phase{{{chain_pod}, phase="Pending"}})', "pending")],
            GridPos(h=8, w=6, x=12, y=27), "Pods waiting for a GPU node (Karpenter provisioning)."),
        _ts("GPU nodes / GPUs", "short", [
            # A time-sliced node advertises nvidia.com/gpu.shared instead of nvidia.com/gpu.
            (f'count(kube_node_status_allocatable{{{GPU}}} > 0) or vector(0)', "GPU nodes"),
            (f'sum(kube_node_status_allocatable{{resource="{KSM_GPU}"}}) or vector(0)', "GPUs allocatable"),
            (f'sum(kube_pod_container_resource_requests{{resource="{KSM_GPU}"}} * on (namespace, pod) group_left () '
             '(max by (namespace, pod) (kube_pod_status_phase{phase=~"Pending|Running"}) == 1)) or vector(0)',
             "GPUs requested")], GridPos(h=8, w=6, x=18, y=27)),
        (stat.Panel().title("Requests rejected/failed at the interceptor (5xx, 1h)").datasource(_DS)
         .grid_pos(GridPos(h=4, w=24, x=0, y=35)).unit("short")
         .with_target(prometheus.Dataquery().expr(
             f'sum by (route_name) (increase(interceptor_request_count_total{{route_namespace="{ns}", '
             f'route_name=~"$model", code=~"5.."}}[1h]))').legend_format("{{route_name}}").ref_id("A"))),
        _ts("KEDA: ScaledObject Ready / scaler errors", "short", [
            (f'max by (name) (kube_keda_scaledobject_status_condition{{namespace="{ns}", name=~"$model", '
             'type="Ready"})', "{{name}} Ready (1) / not Ready (0)"),
            (scaler_errors_expr(ns, "$model", "$__rate_interval"), "{{scaledObject}} errors")],
            GridPos(h=8, w=24, x=0, y=39),
            "A trigger in error (and none active) stops KEDA from scaling to zero: the GPU node keeps running."),
        *edge_panels(y=47),
        *usage_panels(y=64),
    ]
    builder = (
        db.Dashboard("gpu-burst / vLLM models").uid(DASHBOARD_UID).tags(["gpu-burst", "vllm", "keda"])
        .refresh("10s").time("now-3h", "now").editable()
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(db.CustomVariable("model").label("Model").values(",".join(models)).multi(True)
                       .include_all(True))
    )
    for i, p in enumerate(panels, start=1):
        p = p.id(i)
        builder = builder.with_row(p) if isinstance(p, db.Row) else builder.with_panel(p)
    return json.loads(json.dumps(builder.build(), cls=JSONEncoder))


class DashboardsArgs(TypedDict):
    """Inputs of Dashboards."""

    namespace: pulumi.Input[str]
    """Namespace the Grafana sidecar watches (Addons.dashboards_namespace)."""
    sidecar_labels: dict[str, str]
    """Labels that make the sidecar load the ConfigMap (Addons.dashboard_label)."""
    models: list[str]
    """Served names (values of the dashboard's `model` variable)."""
    models_namespace: str
    """Namespace of the model Deployments and routes (scale-chain queries)."""


class Dashboards(pulumi.ComponentResource):
    """The vLLM + scale-chain dashboard as a sidecar-provisioned ConfigMap."""

    dashboard_uid: pulumi.Output[str]
    """Grafana uid of the dashboard (`/d/<uid>`)."""

    def __init__(self, name: str, args: DashboardsArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("Dashboards"), name, None, opts)
        model = build_dashboard(list(args["models"]), args["models_namespace"])
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-vllm",
            metadata={"namespace": args["namespace"],
                      "labels": {**labels("dashboards", name), **dict(args["sidecar_labels"])}},
            data={DASHBOARD_FILE: json.dumps(model, indent=1, sort_keys=True)},
            opts=child(self, deps_of(opts)),
        )
        self.dashboard_uid = pulumi.Output.from_input(DASHBOARD_UID)
        self.register_outputs({"dashboard_uid": self.dashboard_uid})
