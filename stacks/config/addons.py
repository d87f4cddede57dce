"""Config section for the cluster add-ons: KEDA, the KEDA HTTP add-on, kube-prometheus-stack, NVIDIA device plugin."""

import re
from typing import Annotated, Optional

from pydantic import AfterValidator, Field, model_validator

from .base import Duration, MemoryQuantity, Problems, Strict, duration_seconds, pattern_type

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


class KedaConfig(Strict):
    chart_version: _SEMVER = "2.20.2"


class HttpAddonConfig(Strict):
    """Interceptor settings. The readiness timeout is how long a request is held while a model cold-starts
    (GPU node + image pull + weights load); the response-header timeout bounds the first byte after that.
    v0.15 has no cap on the number of held requests (no value, env var or InterceptorRoute field)."""

    chart_version: _SEMVER = "0.15.0"
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

    chart_version: _SEMVER = "88.5.3"
    crds_chart_version: Optional[_SEMVER] = None
    """prometheus-operator-crds chart that installs and upgrades the monitoring.coreos.com CRDs: the one whose
    appVersion equals kube-prometheus-stack's. Known for the default chartVersion."""
    retention: PromDuration = "168h"
    scrape_interval: PromDuration = "15s"
    """Global scrape and rule-evaluation interval; a ServiceMonitor can scrape faster (e.g. vLLM queue depth)."""
    prometheus_memory: MemoryQuantity = "1Gi"
    """Memory request and limit of Prometheus."""
    grafana_enabled: bool = True
    alertmanager_enabled: bool = True

    @model_validator(mode="after")
    def _crds_follow_the_chart(self):
        if self.crds_chart_version is None and self.chart_version not in OPERATOR_CRDS_CHARTS:
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

    chart_version: _SEMVER = "0.20.0"
    gfd_enabled: bool = True
    """GPU feature discovery (+ node-feature-discovery): nvidia.com/gpu.product/memory/... labels on GPU nodes."""
    nfd_chart_version: Optional[_SEMVER] = None
    """The node-feature-discovery chart the device plugin chart depends on (its nfd.k8s-sigs.io CRDs are applied from
    that release's tag). Known for the default chartVersion."""

    @model_validator(mode="after")
    def _nfd_follows_the_chart(self):
        if self.gfd_enabled and self.nfd_chart_version is None and self.chart_version not in NFD_CHARTS:
            raise Problems(("nfdChartVersion",
                            f"not set, and the node-feature-discovery dependency of chartVersion {self.chart_version} "
                            f"is not known; allowed: the version in that chart's Chart.yaml dependencies (known "
                            f"pairs: {_pairs(NFD_CHARTS)})"))
        return self

    @property
    def effective_nfd_chart_version(self) -> str:
        return self.nfd_chart_version or NFD_CHARTS[self.chart_version]


class AddonsConfig(Strict):
    """`gpu-burst:addons` — pinned versions and settings of the Helm add-ons."""

    keda: KedaConfig = KedaConfig()
    http_addon: HttpAddonConfig = HttpAddonConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    nvidia_device_plugin: NvidiaDevicePluginConfig = NvidiaDevicePluginConfig()
