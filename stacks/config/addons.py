"""Config section for the cluster add-ons: KEDA, the KEDA HTTP add-on, kube-prometheus-stack, NVIDIA device plugin."""

import re
from typing import Annotated, ClassVar, Optional

from pydantic import AfterValidator, Field, model_validator

from .base import (INSTALL_MODES, Duration, camel, LabelMap, MemoryQuantity, Problems, Strict, duration_seconds,
                   pattern_type, refuse_other_mode_keys)

_SEMVER = pattern_type(r"\d+\.\d+\.\d+", "a chart version", "2.20.2 (X.Y.Z, no leading v)")
# Each unit at most once, largest first: the monitoring.coreos.com/v1 Duration pattern the Prometheus CR's retention
# and scrapeInterval must match (prometheus-operator@v0.93.0 CRDs, e.g. ServiceMonitor `interval`; Prometheus's own
# model.ParseDuration has the same order). `30m1h` would reach the API server and fail the kube-prometheus-stack
# release.
_PROM_DURATION = re.compile(r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$")
_PROM_UNITS = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def _prom_duration(v: str) -> str:
    if v and _PROM_DURATION.match(v):
        return v
    if _PROM_UNITS.match(v):
        raise ValueError(f"'{v}' is not a Prometheus duration (units out of order or repeated); allowed: each unit "
                         "once, largest first (y, w, d, h, m, s, ms), e.g. 1h30m or 14d")
    raise ValueError(f"'{v}' is not a Prometheus duration; allowed: whole units such as 15s, 168h, 14d")


PromDuration = Annotated[str, AfterValidator(_prom_duration)]
"""A duration Prometheus accepts (no fractions; d/w/y allowed)."""


_DNS_LABEL = pattern_type(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", "a Service name (lowercase letters, digits and '-')",
                          "keda-add-ons-http-interceptor-proxy")
_NAMESPACE = pattern_type(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", "a namespace name (lowercase letters, digits and "
                          "'-')", "keda")
_HOST_PORT = pattern_type(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[0-9]{1,5}", "a host:port address",
                          "keda-add-ons-http-external-scaler.keda:9090")
_HTTP_URL = pattern_type(r"https?://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]{1,5})?(/[\w./-]*)?",
                         "an http(s) URL of Prometheus", "http://kube-prometheus-stack-prometheus.monitoring.svc:9090")
_OWN_LABEL_PREFIXES = ("app.kubernetes.io/", "gpu-burst.io/")
"""Label domains the stack writes on its own objects: a monitor label there would be overwritten."""


def _installed_only(what: str, *names: str) -> dict[str, tuple[str, str]]:
    """Keys only read when the stack installs the add-on `what` (an INSTALL_ONLY table for `refuse_other_mode_keys`)."""
    return {n: (f"it configures the {what} the stack installs", "remove it") for n in names}


class KedaConfig(Strict):
    """KEDA, installed by the stack, or (install: false) the cluster's own (2.x with the keda.sh/v1alpha1 API)."""

    install: bool = True
    """false: KEDA already runs in the existing cluster (cluster.mode existing)."""
    chart_version: _SEMVER = "2.20.2"

    INSTALL_ONLY: ClassVar[dict[str, tuple[str, str]]] = _installed_only("KEDA", "chart_version")

    @model_validator(mode="after")
    def _keys_of_the_other_mode(self):
        refuse_other_mode_keys(self, not self.install, self.INSTALL_ONLY, {}, INSTALL_MODES)
        return self


class HttpAddonConfig(Strict):
    """Interceptor settings. The readiness timeout is how long a request is held while a model cold-starts
    (GPU node + image pull + weights load); the response-header timeout bounds the first byte after that.
    v0.15 has no cap on the number of held requests (no value, env var or InterceptorRoute field)."""

    install: bool = True
    """false: the HTTP add-on (0.15 or later, with the InterceptorRoute API) already runs in the existing cluster;
    the interceptor and scaler addresses below are then required."""
    chart_version: _SEMVER = "0.15.0"
    interceptor_service: Optional[_DNS_LABEL] = None
    """install false: the interceptor proxy Service (chart default `keda-add-ons-http-interceptor-proxy`)."""
    interceptor_namespace: Optional[_NAMESPACE] = None
    """install false: namespace of the interceptor proxy Service, e.g. keda."""
    interceptor_port: Optional[Annotated[int, Field(ge=1, le=65535)]] = None
    """install false: port of the interceptor proxy Service (chart default 8080)."""
    external_scaler_address: Optional[_HOST_PORT] = None
    """install false: host:port of the add-on's external scaler, for each model's `external-push` trigger
    (chart default `keda-add-ons-http-external-scaler.<namespace>:9090`)."""
    readiness_timeout: Duration = "15m"
    response_header_timeout: Duration = "10m"
    interceptor_replicas: Annotated[int, Field(ge=1, le=10)] = 2
    """Interceptor replicas at idle (they are on the request path: 2 survive a system node loss)."""
    interceptor_max_replicas: Annotated[int, Field(ge=1, le=50)] = 10

    @model_validator(mode="after")
    def _timeouts(self):
        if duration_seconds(self.readiness_timeout) < 600:
            raise Problems(("readinessTimeout", f"'{self.readiness_timeout}' is shorter than a GPU cold start; "
                                                "allowed: at least 10m"))
        return self

    @model_validator(mode="after")
    def _first_byte(self):
        if duration_seconds(self.response_header_timeout) < 60:
            raise Problems(("responseHeaderTimeout", f"'{self.response_header_timeout}' is too short for a slow first "
                                                     "token; allowed: at least 60s"))
        return self

    EXISTING_ONLY: ClassVar[dict[str, tuple[str, str]]] = {
        n: ("the stack knows the addresses of the add-on it installs", "remove it")
        for n in ("interceptor_service", "interceptor_namespace", "interceptor_port", "external_scaler_address")}

    INSTALL_ONLY: ClassVar[dict[str, tuple[str, str]]] = _installed_only(
        "HTTP add-on", "chart_version", "interceptor_replicas", "interceptor_max_replicas")

    @model_validator(mode="after")
    def _keys_of_the_other_mode(self):
        refuse_other_mode_keys(self, not self.install, self.INSTALL_ONLY, self.EXISTING_ONLY, INSTALL_MODES)
        return self

    @model_validator(mode="after")
    def _existing_needs(self):
        if self.install:
            return self
        examples = {"interceptor_service": "keda-add-ons-http-interceptor-proxy", "interceptor_namespace": "keda",
                    "interceptor_port": "8080",
                    "external_scaler_address": "keda-add-ons-http-external-scaler.keda:9090"}
        Problems(*((camel(n), f"required when install is false; allowed: the existing add-on's value, e.g. {ex} "
                              "(its chart's default)")
                   for n, ex in examples.items() if getattr(self, n) is None)).raise_if_any()
        return self

    @model_validator(mode="after")
    def _replica_range(self):
        if self.interceptor_max_replicas < self.interceptor_replicas:
            raise Problems(("interceptorMaxReplicas", f"{self.interceptor_max_replicas} is below interceptorReplicas "
                                                      f"({self.interceptor_replicas}); allowed: at least "
                                                      f"{self.interceptor_replicas}"))
        return self


OPERATOR_CRDS_CHARTS = {"88.5.3": "31.0.1"}
"""kube-prometheus-stack chart → the prometheus-operator-crds chart of the same prometheus-operator (appVersion v0.93.1
in both Chart.yaml files, prometheus-community/helm-charts tags kube-prometheus-stack-88.5.3 and
prometheus-operator-crds-31.0.1)."""
NFD_CHARTS = {"0.20.0": "0.19.0"}
"""nvidia-device-plugin chart → its node-feature-discovery dependency (NVIDIA/k8s-device-plugin@v0.20.0
deployments/helm/nvidia-device-plugin/Chart.yaml)."""


def _pairs(table: dict[str, str]) -> str:
    return ", ".join(f"{k} → {v}" for k, v in table.items())


class MonitoringConfig(Strict):
    """kube-prometheus-stack. Prometheus keeps its data on an emptyDir: the cluster has no EBS CSI driver, so a
    PersistentVolumeClaim would never bind."""

    install: bool = True
    """false: a Prometheus Operator and Prometheus (e.g. kube-prometheus-stack) already run in the existing cluster;
    prometheusUrl, serviceMonitorLabels and ruleLabels are then required, and the dashboard target (or dashboards:
    false)."""
    chart_version: _SEMVER = "88.5.3"
    crds_chart_version: Optional[_SEMVER] = None
    """prometheus-operator-crds chart that installs and upgrades the monitoring.coreos.com CRDs: the one whose
    appVersion equals kube-prometheus-stack's. Known for the default chartVersion."""
    prometheus_url: Optional[_HTTP_URL] = None
    """install false: in-cluster URL of the Prometheus that scrapes the models, read by each model's KEDA
    `prometheus` trigger, e.g. http://kube-prometheus-stack-prometheus.monitoring.svc:9090."""
    service_monitor_labels: Optional[LabelMap] = None
    """install false: labels put on every ServiceMonitor and PodMonitor of the stack: those the Prometheus's
    serviceMonitorSelector and podMonitorSelector match (kube-prometheus-stack: {release: <its release name>}); {}
    when it selects every monitor."""
    rule_labels: Optional[LabelMap] = None
    """install false: labels put on the stack's PrometheusRules (alerts, usage recording rules): those the
    Prometheus's ruleSelector matches."""
    dashboard_namespace: Optional[_NAMESPACE] = None
    """install false: namespace of the dashboard ConfigMap, one the Grafana dashboards sidecar searches."""
    dashboard_labels: Optional[LabelMap] = None
    """install false: labels the Grafana dashboards sidecar loads a ConfigMap by (kube-prometheus-stack:
    {grafana_dashboard: "1"})."""
    dashboards: bool = True
    """Deploy the Grafana dashboard ConfigMap."""
    alerts: bool = True
    """Deploy the PrometheusRule with the stack's alerts."""
    retention: PromDuration = "168h"
    scrape_interval: PromDuration = "15s"
    """Global scrape and rule-evaluation interval; a ServiceMonitor can scrape faster (e.g. vLLM queue depth)."""
    prometheus_memory: MemoryQuantity = "1Gi"
    """Memory request and limit of Prometheus."""
    grafana_enabled: bool = True
    alertmanager_enabled: bool = True

    EXISTING_ONLY: ClassVar[dict[str, tuple[str, str]]] = {
        n: ("the stack wires what it installs itself", "remove it")
        for n in ("prometheus_url", "service_monitor_labels", "rule_labels", "dashboard_namespace",
                  "dashboard_labels")}

    INSTALL_ONLY: ClassVar[dict[str, tuple[str, str]]] = _installed_only(
        "kube-prometheus-stack", "chart_version", "crds_chart_version", "retention", "scrape_interval",
        "prometheus_memory", "grafana_enabled", "alertmanager_enabled")

    @model_validator(mode="after")
    def _keys_of_the_other_mode(self):
        refuse_other_mode_keys(self, not self.install, self.INSTALL_ONLY, self.EXISTING_ONLY, INSTALL_MODES)
        return self

    @model_validator(mode="after")
    def _existing_needs(self):
        if self.install:
            return self
        p = Problems()
        if self.prometheus_url is None:
            p.add("prometheusUrl", "required when install is false; allowed: the in-cluster URL of your Prometheus, "
                                   "e.g. http://kube-prometheus-stack-prometheus.monitoring.svc:9090")
        if self.service_monitor_labels is None:
            p.add("serviceMonitorLabels", "required when install is false; allowed: the labels your Prometheus "
                                          "selects monitors by, e.g. {release: kube-prometheus-stack}, or {} when it "
                                          "selects all")
        if self.rule_labels is None:
            # The usage recording rules are there with or without the alerts.
            p.add("ruleLabels", "required when install is false; allowed: the labels your Prometheus selects rules "
                                "by, e.g. {release: kube-prometheus-stack}, or {} when it selects all")
        for key, value, ex in (("dashboardNamespace", self.dashboard_namespace, "monitoring"),
                               ("dashboardLabels", self.dashboard_labels, '{grafana_dashboard: "1"}')):
            if self.dashboards and value is None:
                p.add(key, f"required when install is false and dashboards is true; allowed: e.g. {ex} (where your "
                           "Grafana sidecar looks), or dashboards: false")
            elif not self.dashboards and value is not None:
                p.add(key, "is only read when dashboards is true; allowed: remove it")
        for key, labels in (("serviceMonitorLabels", self.service_monitor_labels), ("ruleLabels", self.rule_labels)):
            for label in labels or {}:
                if label.startswith(_OWN_LABEL_PREFIXES):
                    p.add(f"{key}.{label}", "is a label the stack sets on its own objects; allowed: the label your "
                                            "Prometheus selects by, e.g. release")
        p.raise_if_any()
        return self

    @model_validator(mode="after")
    def _crds_follow_the_chart(self):
        if self.install and self.crds_chart_version is None and self.chart_version not in OPERATOR_CRDS_CHARTS:
            raise Problems(("crdsChartVersion",
                            f"not set, and no prometheus-operator-crds version is known for chartVersion "
                            f"{self.chart_version}; allowed: the prometheus-operator-crds chart whose appVersion "
                            f"equals that kube-prometheus-stack's (known pairs: {_pairs(OPERATOR_CRDS_CHARTS)})"))
        return self

    @property
    def effective_crds_chart_version(self) -> str:
        return self.crds_chart_version or OPERATOR_CRDS_CHARTS[self.chart_version]


class NvidiaDevicePluginConfig(Strict):
    """Installed only when gpu.amiFamily is al2023 (Bottlerocket's NVIDIA variant ships the plugin)."""

    install: bool = True
    """false: an NVIDIA device plugin already runs on GPU nodes (e.g. the GPU Operator's); it must tolerate the
    `nvidia.com/gpu` taint and select nodes labelled nvidia.com/gpu.present=true."""
    chart_version: _SEMVER = "0.20.0"
    gfd_enabled: bool = True
    """GPU feature discovery (+ node-feature-discovery): nvidia.com/gpu.product/memory/... labels on GPU nodes."""
    nfd_chart_version: Optional[_SEMVER] = None
    """The node-feature-discovery chart the device plugin chart depends on (its nfd.k8s-sigs.io CRDs are applied from
    that release's tag). Known for the default chartVersion."""

    @model_validator(mode="after")
    def _nfd_follows_the_chart(self):
        if (self.install and self.gfd_enabled and self.nfd_chart_version is None
                and self.chart_version not in NFD_CHARTS):
            raise Problems(("nfdChartVersion",
                            f"not set, and the node-feature-discovery dependency of chartVersion {self.chart_version} "
                            f"is not known; allowed: the version in that chart's Chart.yaml dependencies (known "
                            f"pairs: {_pairs(NFD_CHARTS)})"))
        return self

    @property
    def effective_nfd_chart_version(self) -> str:
        return self.nfd_chart_version or NFD_CHARTS[self.chart_version]

    INSTALL_ONLY: ClassVar[dict[str, tuple[str, str]]] = _installed_only(
        "device plugin", "chart_version", "gfd_enabled", "nfd_chart_version")

    @model_validator(mode="after")
    def _keys_of_the_other_mode(self):
        refuse_other_mode_keys(self, not self.install, self.INSTALL_ONLY, {}, INSTALL_MODES)
        return self


class AddonsConfig(Strict):
    """`gpu-burst:addons` — pinned versions and settings of the Helm add-ons, or (install: false, on an existing
    cluster) where the ones already installed are."""

    keda: KedaConfig = KedaConfig()
    http_addon: HttpAddonConfig = HttpAddonConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    nvidia_device_plugin: NvidiaDevicePluginConfig = NvidiaDevicePluginConfig()
