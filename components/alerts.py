"""Alerts: PrometheusRules for the scale-from-zero chain and for GPU nodes that cost money without serving."""

import re
from typing import Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from ._common import GPU_RESOURCE, SHARED_GPU_RESOURCE, child, deps_of, labels, token


def ksm_resource(resource: str) -> str:
    """kube-state-metrics' `resource` label value of an extended resource: its name with every character a Prometheus
    label name may not have replaced by `_` (`nvidia.com/gpu` -> `nvidia_com_gpu`, unit `integer`)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", resource)


KSM_GPU = ksm_resource(GPU_RESOURCE)
KSM_GPU_SLICE = ksm_resource(SHARED_GPU_RESOURCE)
GPU = f'resource=~"{KSM_GPU}|{KSM_GPU_SLICE}"'
"""Whole GPUs and time-slices as kube-state-metrics names the resources: a node advertises one or the other."""


def no_replica_expr(namespace: str, served_name: str) -> str:
    """Requests are held at the interceptor for the model but it has no available replica."""
    return (f'sum(interceptor_request_concurrency{{route_namespace="{namespace}", route_name="{served_name}"}}) > 0\n'
            f'and on () (sum(kube_deployment_status_replicas_available{{namespace="{namespace}", '
            f'deployment="{served_name}"}}) or vector(0)) == 0')


def scaled_object_not_ready_expr(namespace: str, served_name: str) -> str:
    """The model's ScaledObject reports Ready=False (kube-state-metrics custom resource state, see
    components/monitoring.py SCALED_OBJECT_STATE)."""
    return (f'max(kube_keda_scaledobject_status_condition{{namespace="{namespace}", name="{served_name}", '
            'type="Ready"}) == 0')


def scaler_errors_expr(namespace: str, scaled_object: str, window: str = "5m") -> str:
    """KEDA counted errors for the model's ScaledObject or one of its triggers within `window`. Metric names of
    KEDA 2.20.2 (kedacore/keda@v2.20.2:pkg/metricscollector/prommetrics.go: keda_scaler_detail_errors_total with
    labels namespace/scaledObject/scaler/triggerIndex, keda_scaled_object_errors_total with namespace/scaledObject).
    `scaled_object` may be a regex (the dashboard's `$model`). KEDA's `namespace` label (the ScaledObject's) reaches
    Prometheus as `exported_namespace`: the chart's operator ServiceMonitor sets no honorLabels
    (kedacore/charts@v2.20.2:keda/templates/manager/servicemonitor.yaml), so the target's own `namespace` (KEDA's)
    wins the conflict and the scraped one is renamed (Prometheus scrape_config honor_labels)."""
    sel = f'exported_namespace="{namespace}", scaledObject=~"{scaled_object}"'
    return (f"sum by (scaledObject) (increase(keda_scaler_detail_errors_total{{{sel}}}[{window}]))\n"
            f"+ on (scaledObject) group_left () (sum by (scaledObject) "
            f"(increase(keda_scaled_object_errors_total{{{sel}}}[{window}])) or vector(0))")


IDLE_GPU_NODE_EXPR = (
    f"(sum by (node) (kube_node_status_allocatable{{{GPU}}}) > 0)\n"
    f"unless on (node) (sum by (node) (kube_pod_container_resource_requests{{{GPU}}}\n"
    '  * on (namespace, pod) group_left () (max by (namespace, pod) (kube_pod_status_phase{phase=~"Pending|Running"}) == 1)) > 0)'
)
"""GPU nodes with allocatable GPUs (or slices) and no Pending/Running pod requesting one (kube-state-metrics only)."""


class AlertsArgs(TypedDict):
    """Inputs of Alerts."""

    namespace: pulumi.Input[str]
    """Namespace of the PrometheusRule (the models namespace)."""
    models_namespace: str
    """Namespace of the model Deployments and InterceptorRoutes."""
    models: list[str]
    """Served names (= Deployment and route names)."""
    no_replica_for: dict[str, str]
    """Per served name: `for` duration of the no-replica alert (the model's cold-start budget)."""
    idle_gpu_node_for: str
    """`for` duration of the idle-GPU-node alert (longest consolidateAfter of the pools plus a margin)."""
    rule_labels: NotRequired[dict[str, str]]
    """More labels on the PrometheusRule: those a Prometheus that selects rules by label needs (e.g. an existing
    kube-prometheus-stack's `release`)."""


class Alerts(pulumi.ComponentResource):
    """One PrometheusRule: per model "requests held but no replica", "ScaledObject not Ready" and "scaler errors";
    cluster-wide "GPU node idle, not consolidated"."""

    rule_name: pulumi.Output[str]
    """Name of the PrometheusRule."""

    def __init__(self, name: str, args: AlertsArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("Alerts"), name, None, opts)
        ns = args["models_namespace"]
        model_rules = [{
            "alert": "GpuBurstModelNoReplica",
            "expr": no_replica_expr(ns, m),
            "for": args["no_replica_for"][m],
            "labels": {"severity": "critical", "model": m},
            "annotations": {
                "summary": f"Requests for model {m} are held but no replica became available",
                "description": (f"The interceptor holds requests for {m} and deployment {ns}/{m} has had no available "
                                "replica for longer than its cold-start budget. Check pending pods, Karpenter "
                                "NodeClaims (GPU capacity/limits) and the vLLM startup logs."),
            },
        } for m in args["models"]]
        # With a trigger in error and none active, KEDA keeps the current replica count instead of scaling to zero:
        # a GPU node stays up for nobody.
        keda_rules = []
        for m in args["models"]:
            keda_rules += [{
                "alert": "GpuBurstScaledObjectNotReady",
                "expr": scaled_object_not_ready_expr(ns, m),
                "for": "5m",
                "labels": {"severity": "critical", "model": m},
                "annotations": {
                    "summary": f"KEDA ScaledObject {ns}/{m} is not Ready",
                    "description": (f"ScaledObject {m} has reported Ready=False for 5 minutes: its triggers cannot be "
                                    "evaluated, so the model may neither scale from zero nor back to zero (a GPU node "
                                    f"keeps running). `kubectl -n {ns} describe scaledobject {m}` shows the reason."),
                },
            }, {
                "alert": "GpuBurstScalerErrors",
                "expr": f"{scaler_errors_expr(ns, m)} > 0",
                "for": "10m",
                "labels": {"severity": "warning", "model": m},
                "annotations": {
                    "summary": f"KEDA scaler errors for model {m}",
                    "description": (f"A trigger of ScaledObject {ns}/{m} keeps failing (Prometheus or the HTTP add-on "
                                    "scaler unreachable, a bad query). While a trigger errors and none is active, KEDA "
                                    "does not scale to zero. See the keda-operator logs."),
                },
            }]
        idle_rule = {
            "alert": "GpuBurstGpuNodeIdle",
            "expr": IDLE_GPU_NODE_EXPR,
            "for": args["idle_gpu_node_for"],
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "GPU node {{ $labels.node }} has no GPU workload but was not consolidated",
                "description": ("No Pending/Running pod requests a GPU on {{ $labels.node }} for longer than the pools' "
                                "consolidateAfter. Look for karpenter.sh/do-not-disrupt pods, blocking PDBs or a "
                                "NodePool disruption budget of 0."),
            },
        }
        self.rule = k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"namespace": args["namespace"],
                      "labels": {**(args.get("rule_labels") or {}), **labels("alerts", name)}},
            spec={"groups": [
                {"name": "gpu-burst.models", "interval": "30s", "rules": model_rules},
                {"name": "gpu-burst.scaling", "interval": "30s", "rules": keda_rules},
                {"name": "gpu-burst.capacity", "interval": "1m", "rules": [idle_rule]},
            ]},
            opts=child(self, deps_of(opts)),
        )
        self.rule_name = self.rule.metadata.apply(lambda m: m["name"])
        self.register_outputs({"rule_name": self.rule_name})
