"""Usage and cost: Prometheus recording rules per API key and per model, and the alert on a key's daily token budget.

The PromQL lives in functions of a window (`1h`, `1d`, or any duration such as `5400s`): the rules record them for
the dashboard at fixed windows and `burstctl usage` evaluates the same text over the range it is asked for. How the
numbers are defined, and what they leave out, is in docs/workload.md ("Usage and cost")."""

from typing import Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from ._common import child, deps_of, labels, token
from .alerts import KSM_GPU, KSM_GPU_SLICE
from .edge_gateway import KEY_ATTRIBUTE

# -- the metrics read ----------------------------------------------------------------------------------------------
KEY_LABEL = KEY_ATTRIBUTE.replace(".", "_")
"""Prometheus label of the API-key name on the AI Gateway's metrics: its OTel Prometheus exporter replaces every
character a label name may not have with `_` (prometheus/otlptranslator LabelNamer)."""
TOKEN_USAGE = "gen_ai_client_token_usage"
"""AI Gateway histogram of tokens per request and `gen_ai_token_type` (unit `token` adds no suffix)."""
REQUEST_DURATION = "gen_ai_server_request_duration_seconds"
"""AI Gateway histogram, one observation per request it sent upstream; `error_type` is set when it failed."""
MODEL_SOURCE_LABEL = "gen_ai_original_model"
"""The model named in the request body: the served name (a Deployment's name)."""
COUNTED_TOKEN_TYPES = ("input", "output")
"""What a key's usage and budget count. `cached_input` is part of `input` and `reasoning` part of `output`, so adding
them would count tokens twice."""
MODEL_LABEL = "model"
SERVED_BY_LABEL = "served_by"
"""Scratch label of the cost per million output tokens: the model whose GPUs served a name (an adapter's model)."""
GPU_RESOURCE = KSM_GPU
SLICE_RESOURCE = KSM_GPU_SLICE
"""kube-state-metrics' label values for the `nvidia.com/gpu` and `nvidia.com/gpu.shared` (a time-slice) extended
resources."""
DEPLOYMENT_POD = "(.+)-[a-z0-9]+-[a-z0-9]+"
"""A Deployment's pod name: `<deployment>-<pod-template-hash>-<suffix>`; the group is the Deployment (= model)."""
REJECTIONS = {
    "401": ('envoy_http_.*api_key_auth_unauthorized',),
    "403": ('envoy_http_.*api_key_auth_forbidden', 'envoy_http_.*rbac_denied'),
    "429": ('envoy_http_.*local_rate_limit_rate_limited', 'envoy_cluster_ratelimit_over_limit'),
}
"""Envoy counters of what the edge refused before any model saw the request, per HTTP status: the API-key filter
(no/unknown key; a key not allowed here), the RBAC filter of an authorization policy, and the local and global rate
limits. Envoy counts per filter or per route cluster, never per client: these are totals, not per key."""

# -- sampling and windows ------------------------------------------------------------------------------------------
SAMPLE_SECONDS = 60
"""Evaluation interval of the per-model sample rules; GPU-seconds are their sum over a window times this."""
SAMPLE_INTERVAL = f"{SAMPLE_SECONDS}s"
WINDOWS = ("1h", "1d")
"""Windows the rules record. "Today" is the rolling 24 hours before the evaluation (`[1d]`), not a calendar day:
Prometheus has no time zone, and a rolling day is what an increase over a range selector means."""
BUDGET_ALERT_RATIO = 0.8

# -- record names --------------------------------------------------------------------------------------------------
P = "gpu_burst:"
GPUS_RUNNING = f"{P}model_gpus:running"
SCALED_UP = f"{P}model_scaled_up:bool"
PRICE = f"{P}model_gpu_price:usd_per_hour"
GPUS_PER_SLICE = f"{P}model_gpus_per_slice:ratio"
BUDGET = f"{P}key_tokens_per_day:budget"
BUDGET_LEFT = f"{P}key_budget_left_tokens:1d"
BUDGET_USED = f"{P}key_budget_used_ratio:1d"


def record(what: str, window: str) -> str:
    """Name of a windowed record, e.g. `record("key_tokens", "1h")` = `gpu_burst:key_tokens:1h`."""
    return f"{P}{what}:{window}"


def _sel(*matchers: str) -> str:
    return "{" + ", ".join(matchers) + "}"


def _types() -> str:
    return f'gen_ai_token_type=~"{"|".join(COUNTED_TOKEN_TYPES)}"'


# -- per key -------------------------------------------------------------------------------------------------------
def key_requests_expr(window: str) -> str:
    """Requests per key the edge admitted and sent to a model (successful or not)."""
    sel = _sel(f'{KEY_LABEL}!=""')
    return f"sum by ({KEY_LABEL}) (increase({REQUEST_DURATION}_count{sel}[{window}]))"


def key_errors_expr(window: str) -> str:
    """Of those, requests that failed upstream (model error, interceptor timeout during a cold start)."""
    sel = _sel(f'{KEY_LABEL}!=""', 'error_type!=""')
    return f"sum by ({KEY_LABEL}) (increase({REQUEST_DURATION}_count{sel}[{window}]))"


def key_tokens_expr(window: str) -> str:
    """Input and output tokens per key (`gen_ai_token_type` input/output)."""
    sel = _sel(f'{KEY_LABEL}!=""', _types())
    return f"sum by ({KEY_LABEL}, gen_ai_token_type) (increase({TOKEN_USAGE}_sum{sel}[{window}]))"


def rejected_expr(code: str, window: str) -> str:
    """Requests the edge refused with `code` (401/403/429) within the window, all keys together."""
    parts = [f'(sum(increase({{__name__=~"{name}"}}[{window}])) or vector(0))' for name in REJECTIONS[code]]
    return " + ".join(parts)


def budget_left_expr(used: str) -> str:
    """Tokens a budgeted key has left of its daily budget, given its tokens used per key in the last 24 h; a key
    without traffic has all of it left."""
    return (f"clamp_min({BUDGET} - on ({KEY_LABEL}) ({used} or 0 * {BUDGET}), 0)")


def budget_used_expr(used: str) -> str:
    """Share of the daily budget a budgeted key used in the last 24 h (1 = all of it)."""
    return f"({used} or 0 * {BUDGET}) / on ({KEY_LABEL}) {BUDGET}"


# -- per model -----------------------------------------------------------------------------------------------------
def _by_model(expr: str, source: str) -> str:
    return f'label_replace({expr}, "{MODEL_LABEL}", "$1", "{source}", "(.+)")'


def model_requests_expr(window: str) -> str:
    inner = f"sum by ({MODEL_SOURCE_LABEL}) (increase({REQUEST_DURATION}_count[{window}]))"
    return f"sum by ({MODEL_LABEL}) ({_by_model(inner, MODEL_SOURCE_LABEL)})"


def model_tokens_expr(window: str) -> str:
    inner = f"sum by ({MODEL_SOURCE_LABEL}, gen_ai_token_type) (increase({TOKEN_USAGE}_sum{_sel(_types())}[{window}]))"
    return f"sum by ({MODEL_LABEL}, gen_ai_token_type) ({_by_model(inner, MODEL_SOURCE_LABEL)})"


def gpus_running_expr(namespace: str) -> str:
    """GPUs held by each model's pods that are bound to a node and not finished (Pending on a node while the image
    and weights load, or Running): whole GPUs, plus time-slices x the GPU share of one slice of that model."""
    ns = f'namespace="{namespace}"'
    live = "max by (namespace, pod) (kube_pod_status_phase" + _sel(ns, 'phase=~"Pending|Running"') + ") == 1"
    bound = "max by (namespace, pod) (kube_pod_status_scheduled" + _sel(ns, 'condition="true"') + ") == 1"

    def held(resource: str) -> str:
        requests = "kube_pod_container_resource_requests" + _sel(ns, f'resource="{resource}"')
        joined = f"{requests}\n    * on (namespace, pod) group_left () ({live})\n    * on (namespace, pod) group_left () ({bound})"
        return f'sum by ({MODEL_LABEL}) (label_replace({joined},\n    "{MODEL_LABEL}", "$1", "pod", "{DEPLOYMENT_POD}"))'

    # Every Deployment gets a row, 0 while it holds no GPU, so an idle model shows 0 GPU-hours rather than nothing.
    zero = "0 * sum by (%s) (%s)" % (MODEL_LABEL, _by_model("kube_deployment_spec_replicas" + _sel(ns), "deployment"))
    slices = f"{held(SLICE_RESOURCE)}\n  * on ({MODEL_LABEL}) group_left () {GPUS_PER_SLICE}"
    return f"({held(GPU_RESOURCE)}\n  or {zero})\n+ on ({MODEL_LABEL}) ({slices}\n  or {zero})"


def scaled_up_expr(namespace: str) -> str:
    """1 while a model's Deployment wants at least one replica, 0 at zero."""
    spec = "kube_deployment_spec_replicas" + _sel(f'namespace="{namespace}"')
    return f"clamp_max(sum by ({MODEL_LABEL}) ({_by_model(spec, 'deployment')}), 1)"


def gpu_seconds_expr(window: str) -> str:
    """GPU-seconds per model: the GPUs held, sampled every SAMPLE_INTERVAL, summed over the window."""
    return f"sum_over_time({GPUS_RUNNING}[{window}]) * {SAMPLE_SECONDS}"


def cold_starts_expr(window: str) -> str:
    """Scale-ups from zero per model (0 -> at least one wanted replica) within the window; 0 when there was none."""
    rises = f"({SCALED_UP} - {SCALED_UP} offset {SAMPLE_INTERVAL}) > 0"
    return f"sum_over_time(({rises})[{window}:{SAMPLE_INTERVAL}]) or 0 * {SCALED_UP}"


def cost_expr(gpu_seconds: str) -> str:
    """USD per model for the given GPU-seconds, at the model's price per GPU-hour (labels of the price kept)."""
    return f"{gpu_seconds} / 3600\n  * on ({MODEL_LABEL}) group_left (pool, instance_type, capacity_type) {PRICE}"


def served_output_tokens_expr(tokens: str, adapters: dict[str, list[str]]) -> str:
    """Output tokens per model of the recorded per-name `tokens`, each LoRA adapter's counted under the model that
    served it (on that model's GPUs). The model is first copied to `served_by` and then overwritten for adapters, so
    every label_replace keeps its series distinct (`model` stays); its regex is anchored and names are DNS labels."""
    expr = f'{tokens}{{gen_ai_token_type="output"}}'
    if not adapters:
        return f"sum by ({MODEL_LABEL}) ({expr})"
    expr = f'label_replace({expr}, "{SERVED_BY_LABEL}", "$1", "{MODEL_LABEL}", "(.+)")'
    for base, names in sorted(adapters.items()):
        expr = f'label_replace({expr}, "{SERVED_BY_LABEL}", "{base}", "{MODEL_LABEL}", "{"|".join(names)}")'
    served = f"sum by ({SERVED_BY_LABEL}) ({expr})"
    return f'sum by ({MODEL_LABEL}) (label_replace({served}, "{MODEL_LABEL}", "$1", "{SERVED_BY_LABEL}", "(.+)"))'


def cost_per_million_expr(cost: str, output_tokens: str) -> str:
    """USD per million output tokens: GPU cost over the window divided by the output tokens served in it."""
    # group_left keeps the cost's price labels: one-to-one matching `on` a label would keep only that label.
    return f"{cost} / on ({MODEL_LABEL}) group_left () ({output_tokens} > 0) * 1e6"


# -- the component -------------------------------------------------------------------------------------------------
class ModelPriceArgs(TypedDict):
    """The price of one GPU-hour of a model and what it assumes."""

    pool: str
    """GPU pool the model names."""
    instance_type: str
    """Instance the price is for (the smallest of the pool that holds the model's GPUs)."""
    capacity_type: str
    """Capacity type the pool buys first (spot or on-demand)."""
    usd_per_gpu_hour: float
    """Instance price per hour divided by its GPUs."""
    time_slices: int
    """Replicas sharing one GPU through time-slicing (each requests one `nvidia.com/gpu.shared`); 1: whole GPUs."""


class UsageRulesArgs(TypedDict):
    """Inputs of UsageRules."""

    namespace: pulumi.Input[str]
    """Namespace of the PrometheusRule."""
    models_namespace: str
    """Namespace of the model Deployments (GPU time and scale-ups of every Deployment there are recorded)."""
    prices: dict[str, ModelPriceArgs]
    """Per served name: its GPU price. A model without one gets GPU time and cold starts but no cost."""
    adapters: NotRequired[dict[str, list[str]]]
    """Per served name: its LoRA adapters' names. Their requests and tokens are recorded under their own names; their
    output tokens also count in the model's cost per million output tokens (they run on its GPUs)."""
    key_tokens_per_day: NotRequired[dict[str, int]]
    """Per API-key name: its daily token budget (input + output tokens). Keys without one get no budget series and
    no alert; none by default."""
    rule_labels: NotRequired[dict[str, str]]
    """More labels on the PrometheusRule: those a Prometheus that selects rules by label needs (e.g. an existing
    kube-prometheus-stack's `release`)."""


def key_rules() -> list[dict]:
    rules = []
    for w in WINDOWS:
        rules += [{"record": record("key_requests", w), "expr": key_requests_expr(w)},
                  {"record": record("key_errors", w), "expr": key_errors_expr(w)},
                  {"record": record("key_tokens", w), "expr": key_tokens_expr(w)}]
        rules += [{"record": record("edge_rejected", w), "expr": rejected_expr(code, w), "labels": {"code": code}}
                  for code in REJECTIONS]
    return rules


def model_rules(prices: dict[str, ModelPriceArgs], adapters: Optional[dict[str, list[str]]] = None) -> list[dict]:
    rules = [{"record": PRICE, "expr": f"vector({p['usd_per_gpu_hour']})",
              "labels": {MODEL_LABEL: m, "pool": p["pool"], "instance_type": p["instance_type"],
                         "capacity_type": p["capacity_type"]}} for m, p in sorted(prices.items())]
    for w in WINDOWS:
        gpu_s, cost, out = record("model_gpu_seconds", w), record("model_cost_usd", w), record("model_tokens", w)
        rules += [
            {"record": record("model_requests", w), "expr": model_requests_expr(w)},
            {"record": out, "expr": model_tokens_expr(w)},
            {"record": gpu_s, "expr": gpu_seconds_expr(w)},
            {"record": record("model_cold_starts", w), "expr": cold_starts_expr(w)},
            {"record": cost, "expr": cost_expr(gpu_s)},
            {"record": record("model_cost_per_million_output_tokens", w),
             "expr": cost_per_million_expr(cost, served_output_tokens_expr(out, adapters or {}))},
        ]
    return rules


def budget_rules(budgets: dict[str, int]) -> list[dict]:
    used = f"sum by ({KEY_LABEL}) ({record('key_tokens', '1d')})"
    rules = [{"record": BUDGET, "expr": f"vector({n})", "labels": {KEY_LABEL: k}} for k, n in sorted(budgets.items())]
    rules += [{"record": BUDGET_LEFT, "expr": budget_left_expr(used)},
              {"record": BUDGET_USED, "expr": budget_used_expr(used)},
              {"alert": "GpuBurstKeyBudget80",
               "expr": f"{BUDGET_USED} >= {BUDGET_ALERT_RATIO}",
               "labels": {"severity": "warning"},
               "annotations": {
                   "summary": "API key {{ $labels.%s }} used {{ $value | humanizePercentage }} of its daily token "
                              "budget" % KEY_LABEL,
                   "description": ("Input + output tokens of key {{ $labels.%s }} over the last 24 hours reached %d%% "
                                   "of its tokensPerDay. At 100%% of its budget window the edge answers 429 until "
                                   "the window resets; raise the budget or tell the key's owner."
                                   % (KEY_LABEL, int(BUDGET_ALERT_RATIO * 100))),
               }}]
    return rules


def rule_groups(models_namespace: str, prices: dict[str, ModelPriceArgs], budgets: dict[str, int],
                adapters: Optional[dict[str, list[str]]] = None) -> list[dict]:
    """The PrometheusRule's groups; budget rules only when some key has a budget."""
    groups = [
        {"name": "gpu-burst.usage.samples", "interval": SAMPLE_INTERVAL, "rules": [
            *[{"record": GPUS_PER_SLICE, "expr": f"vector({1 / p['time_slices']:.6g})", "labels": {MODEL_LABEL: m}}
              for m, p in sorted(prices.items()) if p["time_slices"] > 1],
            {"record": GPUS_RUNNING, "expr": gpus_running_expr(models_namespace)},
            {"record": SCALED_UP, "expr": scaled_up_expr(models_namespace)}]},
        # Budget rules follow the key totals they read in the same group: rules of a group run in order, groups
        # run concurrently (a rule in another group could see the previous evaluation).
        {"name": "gpu-burst.usage.keys", "interval": "1m",
         "rules": key_rules() + (budget_rules(budgets) if budgets else [])},
        {"name": "gpu-burst.usage.models", "interval": "1m", "rules": model_rules(prices, adapters)},
    ]
    return groups


class UsageRules(pulumi.ComponentResource):
    """One PrometheusRule: usage per API key (requests, tokens, upstream errors, the edge's 401/403/429), per model
    (GPU-seconds, cold starts, cost and cost per million output tokens) and, for keys with a daily token budget, the
    budget left and an alert at 80 % of it."""

    rule_name: pulumi.Output[str]
    """Name of the PrometheusRule."""

    def __init__(self, name: str, args: UsageRulesArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("UsageRules"), name, None, opts)
        groups = rule_groups(args["models_namespace"], dict(args["prices"]), dict(args.get("key_tokens_per_day") or {}),
                             {m: list(a) for m, a in (args.get("adapters") or {}).items()})
        self.rule = k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"namespace": args["namespace"],
                      "labels": {**(args.get("rule_labels") or {}), **labels("usage", name)}},
            spec={"groups": groups},
            opts=child(self, deps_of(opts)),
        )
        self.rule_name = self.rule.metadata.apply(lambda m: m["name"])
        self.register_outputs({"rule_name": self.rule_name})
