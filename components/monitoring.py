"""kube-prometheus-stack: Prometheus (scrapes every ServiceMonitor/PodMonitor in the cluster), Alertmanager, Grafana
with a dashboards sidecar, kube-state-metrics and node-exporter."""

from typing import Optional, TypedDict

import pulumi
from typing_extensions import NotRequired

from ._common import pinned_release, SYSTEM_NODE_SELECTOR, deps_of, token

CHART = "kube-prometheus-stack"
CHART_REPO = "https://prometheus-community.github.io/helm-charts"
RELEASE_NAME = "kube-prometheus-stack"
CRDS_CHART = "prometheus-operator-crds"
"""The monitoring.coreos.com CRDs as templates (of its `crds` subchart), so Helm upgrades them with the chart; the
subchart keeps them out of the stored release, which stays under Helm's 1 MiB Secret (upstream installs it with
`helm install`)."""
CRDS_RELEASE_NAME = "prometheus-operator-crds"
DEFAULT_NAMESPACE = "monitoring"
FULLNAME = "kps"
"""fullnameOverride: object names become `kps-<component>` whatever the release name (the chart truncates the
fullname to 26 characters, so a long derived name would be cut unpredictably)."""
PROMETHEUS_SERVICE = f"{FULLNAME}-prometheus"
PROMETHEUS_PORT = 9090
GRAFANA_SERVICE = f"{RELEASE_NAME}-grafana"
"""The grafana subchart names itself `<release>-grafana`, hence the fixed release name."""
SCALED_OBJECT_METRIC_PREFIX = "kube_keda_scaledobject"
"""kube-state-metrics exports every ScaledObject condition as `<prefix>_status_condition{namespace, name, type}`
(1 = True, 0 = False): KEDA itself exports no readiness metric, only error counters."""

SCALED_OBJECT_STATE = {
    "kind": "CustomResourceStateMetrics",
    "spec": {"resources": [{
        "groupVersionKind": {"group": "keda.sh", "version": "v1alpha1", "kind": "ScaledObject"},
        "metricNamePrefix": SCALED_OBJECT_METRIC_PREFIX,
        "labelsFromPath": {"name": ["metadata", "name"], "namespace": ["metadata", "namespace"]},
        "metrics": [{
            "name": "status_condition",
            "help": "ScaledObject status conditions (Ready, Active, Fallback, Paused): 1 when True.",
            "each": {"type": "Gauge", "gauge": {"path": ["status", "conditions"], "labelsFromPath": {"type": ["type"]},
                                                 "valueFrom": ["status"]}},
        }],
    }]},
}
"""kube-state-metrics custom resource state config (kubernetes/kube-state-metrics
docs/metrics/extend/customresourcestate-metrics.md; chart values `customResourceState.config`)."""

DASHBOARD_LABEL = {"grafana_dashboard": "1"}
"""A ConfigMap with this label, in any namespace, is loaded by the Grafana sidecar as a dashboard."""

OPERATOR_REQUESTS = {"cpu": "50m", "memory": "128Mi"}
PROMETHEUS_CPU = "200m"
"""CPU request of Prometheus (its memory request is the `prometheus_memory` argument)."""
ALERTMANAGER_REQUESTS = {"cpu": "10m", "memory": "64Mi"}
GRAFANA_REQUESTS = {"cpu": "50m", "memory": "192Mi"}


def monitoring_values(node_selector: dict[str, str], retention: pulumi.Input[str], scrape_interval: pulumi.Input[str],
                      prometheus_memory: pulumi.Input[str], grafana_enabled: bool, alertmanager_enabled: bool) -> dict:
    """Chart values. Every Deployment/StatefulSet is pinned to the system nodes; node-exporter stays a DaemonSet on
    all nodes (its chart tolerates every NoSchedule taint) so GPU nodes report too."""
    ns = dict(node_selector)
    (label_key, label_value), = DASHBOARD_LABEL.items()
    open_selectors = {
        # Without these the operator only selects monitors/rules labelled `release: <this release>`.
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
        "probeSelectorNilUsesHelmValues": False,
        "scrapeConfigSelectorNilUsesHelmValues": False,
        "serviceMonitorSelector": {}, "podMonitorSelector": {}, "ruleSelector": {}, "probeSelector": {},
        "scrapeConfigSelector": {},
        "serviceMonitorNamespaceSelector": {}, "podMonitorNamespaceSelector": {}, "ruleNamespaceSelector": {},
        "probeNamespaceSelector": {}, "scrapeConfigNamespaceSelector": {},
    }
    return {
        "fullnameOverride": FULLNAME,
        # The chart's `crds` subchart ships the CRDs in crds/, which Helm never upgrades: CRDS_CHART owns them.
        "crds": {"enabled": False},
        # The EKS control plane (etcd, scheduler, controller-manager) is not scrapable from inside the cluster.
        "kubeEtcd": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeControllerManager": {"enabled": False},
        "prometheusOperator": {
            "nodeSelector": ns,
            "resources": {"requests": dict(OPERATOR_REQUESTS), "limits": {"memory": "256Mi"}},
            "admissionWebhooks": {"patch": {"nodeSelector": ns}},
        },
        "prometheus": {"prometheusSpec": {
            **open_selectors,
            "nodeSelector": ns,
            "retention": retention,
            "scrapeInterval": scrape_interval,
            "evaluationInterval": scrape_interval,
            # Requests == limits for memory: an OOM kill is clearer than eviction of a neighbour on a system node.
            "resources": {"requests": {"cpu": PROMETHEUS_CPU, "memory": prometheus_memory},
                          "limits": {"memory": prometheus_memory}},
        }},
        "alertmanager": {
            "enabled": alertmanager_enabled,
            "alertmanagerSpec": {"nodeSelector": ns,
                                 "resources": {"requests": dict(ALERTMANAGER_REQUESTS),
                                               "limits": {"memory": "128Mi"}}},
        },
        "grafana": {
            "enabled": grafana_enabled,
            "sidecar": {"dashboards": {"enabled": True, "label": label_key, "labelValue": label_value,
                                       "searchNamespace": "ALL"}},
            # grafana subchart keys (grafana-community chart), not in kube-prometheus-stack's own values.yaml.
            "nodeSelector": ns,
            "resources": {"requests": dict(GRAFANA_REQUESTS), "limits": {"memory": "384Mi"}},
        },
        # kube-state-metrics subchart keys: also read ScaledObjects, for the "not Ready" alert.
        "kube-state-metrics": {
            "nodeSelector": ns,
            "rbac": {"extraRules": [{"apiGroups": ["keda.sh"], "resources": ["scaledobjects"],
                                     "verbs": ["list", "watch"]}]},
            "customResourceState": {"enabled": True, "config": SCALED_OBJECT_STATE},
        },
    }


SUBCHART_KEYS = ("grafana.nodeSelector", "grafana.resources", "kube-state-metrics.nodeSelector",
                 "kube-state-metrics.rbac", "kube-state-metrics.customResourceState")
"""Values that belong to subcharts whose values.yaml is not part of kube-prometheus-stack's."""


class MonitoringArgs(TypedDict):
    """Inputs for Monitoring."""

    chart_version: pulumi.Input[str]
    """Pinned kube-prometheus-stack chart version, e.g. 88.5.3."""
    crds_chart_version: pulumi.Input[str]
    """Pinned prometheus-operator-crds chart version of the same prometheus-operator, e.g. 31.0.1 for 88.5.3."""
    retention: pulumi.Input[str]
    """Prometheus retention, e.g. 168h."""
    scrape_interval: pulumi.Input[str]
    """Global scrape (and rule evaluation) interval, e.g. 15s."""
    prometheus_memory: NotRequired[pulumi.Input[str]]
    """Prometheus memory request and limit. Default 1Gi."""
    grafana_enabled: NotRequired[bool]
    """Deploy Grafana with the dashboards sidecar. Default True."""
    alertmanager_enabled: NotRequired[bool]
    """Deploy Alertmanager. Default True."""
    namespace: NotRequired[pulumi.Input[str]]
    """Namespace (created). Default monitoring."""
    node_selector: NotRequired[dict[str, str]]
    """nodeSelector for the controllers. Default: the system node group."""
    adopt_crds: NotRequired[bool]
    """Take Helm ownership of monitoring.coreos.com CRDs already in the cluster (installed from kube-prometheus-stack's
    crds/ by an earlier release of the same stack). Only on a cluster whose monitoring CRDs are yours alone: on a
    shared cluster it would take them from another release, and a destroy would delete them with every
    ServiceMonitor, PrometheusRule and Prometheus in the cluster. Default false."""


class Monitoring(pulumi.ComponentResource):
    """kube-prometheus-stack as a pinned Helm release on the system nodes. Prometheus selects ServiceMonitors,
    PodMonitors, Probes, ScrapeConfigs and PrometheusRules from every namespace without requiring the release label;
    Grafana loads every ConfigMap labelled `grafana_dashboard: "1"` in any namespace as a dashboard. Monitoring
    custom resources (ServiceMonitor, PrometheusRule, ...) must depend on `crd_release` (their CRDs) or `release`."""

    release_name: pulumi.Output[str]
    """Helm release name."""
    namespace: pulumi.Output[str]
    """Namespace of the stack."""
    prometheus_url: pulumi.Output[str]
    """In-cluster URL of Prometheus, e.g. http://kps-prometheus.monitoring.svc:9090."""
    grafana_service: pulumi.Output[str]
    """Service name of Grafana (port 80)."""
    dashboard_label: pulumi.Output[dict[str, str]]
    """Labels a dashboard ConfigMap needs."""

    def __init__(self, name: str, args: MonitoringArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("Monitoring"), name, None, opts)
        namespace = args.get("namespace", DEFAULT_NAMESPACE)
        self.crd_release = pinned_release(
            self, f"{name}-crds", CRDS_RELEASE_NAME, CRDS_CHART, CHART_REPO, args["crds_chart_version"], namespace,
            values={}, depends_on=deps_of(opts),
            # Adopts the CRDs an earlier kube-prometheus-stack release of this stack installed from its crds/.
            **({"take_ownership": True} if args.get("adopt_crds") else {}),
        )
        self.release = pinned_release(
            # Fixed so that subchart object names (`<release>-grafana`, `release:` labels) are known in advance.
            self, name, RELEASE_NAME, CHART, CHART_REPO, args["chart_version"], namespace,
            # Operator + admission webhook patch jobs + Prometheus can exceed Helm's 5-minute default.
            timeout=900,
            skip_crds=True,
            values=monitoring_values(
                args.get("node_selector", SYSTEM_NODE_SELECTOR), args["retention"], args["scrape_interval"],
                args.get("prometheus_memory", "1Gi"), args.get("grafana_enabled", True),
                args.get("alertmanager_enabled", True)),
            # The chart creates Prometheus, Alertmanager, ServiceMonitors and PrometheusRules.
            depends_on=[self.crd_release, *deps_of(opts)],
        )
        self.release_name = self.release.status.name
        self.namespace = self.release.status.namespace
        self.prometheus_url = self.namespace.apply(lambda ns: f"http://{PROMETHEUS_SERVICE}.{ns}.svc:{PROMETHEUS_PORT}")
        self.grafana_service = self.release.status.apply(lambda _: GRAFANA_SERVICE)
        self.dashboard_label = pulumi.Output.from_input(dict(DASHBOARD_LABEL))
        self.register_outputs({
            "release_name": self.release_name, "namespace": self.namespace, "prometheus_url": self.prometheus_url,
            "grafana_service": self.grafana_service, "dashboard_label": self.dashboard_label,
        })
