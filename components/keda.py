"""KEDA: the event-driven autoscaler that scales model Deployments from zero on HTTP traffic and 1→N on metrics."""

from typing import Optional, TypedDict

import pulumi
from typing_extensions import NotRequired

from ._common import pinned_release, SYSTEM_NODE_SELECTOR, deps_of, token

CHART = "keda"
CHART_REPO = "https://kedacore.github.io/charts"
RELEASE_NAME = "keda"
DEFAULT_NAMESPACE = "keda"

OPERATOR_REQUESTS = {"cpu": "50m", "memory": "128Mi"}
METRICS_SERVER_REQUESTS = {"cpu": "50m", "memory": "128Mi"}
WEBHOOKS_REQUESTS = {"cpu": "20m", "memory": "64Mi"}
"""Requests of the three KEDA Deployments (the system-node capacity check counts these)."""


def keda_values(node_selector: dict[str, str], operator_metrics: bool = True,
                monitor_labels: Optional[dict[str, str]] = None) -> dict:
    """Chart values: all three KEDA deployments (operator, metrics API server, admission webhooks) on system nodes,
    and the operator's Prometheus metrics (keda_scaler_detail_errors_total, keda_scaled_object_errors_total) scraped
    through a ServiceMonitor (chart 2.20.2 values `prometheus.operator`) carrying `monitor_labels`."""
    monitor = {"enabled": operator_metrics, **({"additionalLabels": dict(monitor_labels)} if monitor_labels else {})}
    return {
        # The chart's CRDs are templates: Helm upgrades them with the release (the chart default, kept explicit).
        "crds": {"install": True},
        "nodeSelector": dict(node_selector),
        "prometheus": {"operator": {"enabled": operator_metrics, "serviceMonitor": monitor}},
        "resources": {
            "operator": {"requests": dict(OPERATOR_REQUESTS), "limits": {"cpu": "1", "memory": "512Mi"}},
            "metricServer": {"requests": dict(METRICS_SERVER_REQUESTS), "limits": {"cpu": "1", "memory": "512Mi"}},
            "webhooks": {"requests": dict(WEBHOOKS_REQUESTS), "limits": {"cpu": "500m", "memory": "256Mi"}},
        },
    }


class KedaArgs(TypedDict):
    """Inputs for Keda."""

    chart_version: pulumi.Input[str]
    """Pinned keda chart version, e.g. 2.20.2."""
    namespace: NotRequired[pulumi.Input[str]]
    """Namespace (created). Default keda."""
    node_selector: NotRequired[dict[str, str]]
    """nodeSelector for every KEDA pod. Default: the system node group."""
    operator_metrics: NotRequired[bool]
    """Expose the operator's metrics with a ServiceMonitor (needs the ServiceMonitor CRD: pass what installs the
    monitoring.coreos.com CRDs in `opts.depends_on`). Default True."""
    monitor_labels: NotRequired[dict[str, str]]
    """Labels of that ServiceMonitor: those a Prometheus that selects monitors by label needs. Default none."""


class Keda(pulumi.ComponentResource):
    """KEDA (operator, metrics API server, admission webhooks) as a pinned Helm release on the system nodes.
    ScaledObjects and the HTTP add-on must depend on `release`: it installs the keda.sh CRDs and the webhook."""

    release_name: pulumi.Output[str]
    """Helm release name."""
    namespace: pulumi.Output[str]
    """Namespace KEDA runs in."""

    def __init__(self, name: str, args: KedaArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("Keda"), name, None, opts)
        self.release = pinned_release(
            # Fixed: one KEDA per cluster (it owns the external.metrics.k8s.io APIService), and no random suffix.
            self, name, RELEASE_NAME, CHART, CHART_REPO, args["chart_version"],
            args.get("namespace", DEFAULT_NAMESPACE),
            values=keda_values(args.get("node_selector", SYSTEM_NODE_SELECTOR), args.get("operator_metrics", True),
                               args.get("monitor_labels")),
            depends_on=deps_of(opts),
        )
        self.release_name = self.release.status.name
        self.namespace = self.release.status.namespace
        self.register_outputs({"release_name": self.release_name, "namespace": self.namespace})
