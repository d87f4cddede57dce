"""Add-ons layer: GPU NodePools and the cluster add-ons, wired from the typed config onto the foundation."""

from typing import NamedTuple, Optional

import pulumi

from components._common import SYSTEM_NODE_SELECTOR, model_termination_grace_seconds
from components.gpu_node_pool import GPU_TOLERATION, AmiFamily, GpuNodePool, GpuPoolArgs
from components.http_addon import PROXY_PORT, KedaHttpAddon
from components.keda import Keda
from components.monitoring import DASHBOARD_LABEL, Monitoring
from components.nvidia_device_plugin import NvidiaDevicePlugin

from .config import duration_seconds
from .contracts import Addons, DataVolume, Foundation
from .snapshot import resolve_data_volume


def _pool_args(p) -> GpuPoolArgs:
    return GpuPoolArgs(
        name=p.name,
        traffic_class=p.traffic_class_label,
        instance_families=list(p.instance_families),
        gpus_per_node=list(p.gpus_per_node),
        capacity_types=[c.value for c in p.capacity_types],
        gpu_limit=p.gpu_limit,
        cpu_limit=p.cpu_limit,
        weight=p.weight,
        expire_after=p.expire_after,
        consolidate_after=p.consolidate_after,
        termination_grace_period=p.termination_grace_period,
        disruption_budget_nodes=p.disruption_budget_nodes,
        **({"time_slicing": p.time_slicing} if p.time_slicing else {}),
    )


def build_addons(f: Foundation, data_volume: Optional[DataVolume] = None) -> Addons:
    """Declare the add-ons. Ordering, for a one-pass first `pulumi up` and a clean destroy:
    every release waits for the system nodes + coredns (`f.system_ready`); the HTTP add-on waits for KEDA (its chart
    creates a ScaledObject) and KEDA for the monitoring CRDs (its ServiceMonitor); the NodePools wait for the
    Karpenter release (CRDs) and, on AL2023, for the device plugin, so no GPU node launches before something can
    advertise its GPUs, and on destroy the NodePools (and the nodes Karpenter drains for them) go before Karpenter and
    the plugin. On an existing cluster an add-on declared
    present (`install: false`) is not installed: what the stack creates is wired to it through its config."""
    cfg = f.cfg
    volume = data_volume or resolve_data_volume(cfg)
    node_selector = dict(SYSTEM_NODE_SELECTOR if f.system_node_selector is None else f.system_node_selector)
    m = cfg.addons.monitoring
    monitor_labels = dict(m.service_monitor_labels or {}) if not m.install else {}

    def opts(*deps: Optional[pulumi.Resource]) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(providers=[f.k8s_provider],
                                      depends_on=[*f.system_ready, *(d for d in deps if d is not None)])

    device_plugin = _device_plugin(cfg, opts())
    gpu = _gpu_pools(f, volume, [f.karpenter_release, device_plugin])
    monitoring = _monitoring(cfg, node_selector, opts())
    keda = _keda(cfg, node_selector, monitor_labels, opts(monitoring.crd_release if monitoring else None))
    http = _interceptor(cfg, node_selector, opts(keda))
    prometheus = _prometheus(m, monitoring)

    return Addons(
        gpu_pool_names=[p.name for p in cfg.gpu.pools],
        gpu_pools=gpu,
        keda_release=keda,
        http_addon_release=http.release,
        monitoring_release=monitoring.release if monitoring else None,
        prometheus_url=prometheus.url,
        external_scaler_address=http.scaler,
        interceptor_namespace=http.namespace,
        interceptor_proxy_service=http.service,
        interceptor_proxy_port=http.port,
        dashboards_namespace=prometheus.dashboards_namespace,
        dashboard_label=prometheus.dashboard_label,
        monitoring_namespace=prometheus.namespace,
        grafana_service=prometheus.grafana,
        gpu_toleration=dict(GPU_TOLERATION),
        device_plugin_release=device_plugin,
        gpu_data_volume_snapshot_id=volume.snapshot_id or "",
        monitor_labels=monitor_labels,
        rule_labels=dict(m.rule_labels or {}) if not m.install else {},
        dashboards=m.dashboards,
        alerts=m.alerts,
    )


class _Interceptor(NamedTuple):
    """Where the HTTP add-on's interceptor and scaler are: the ones the stack installs, or the configured ones."""
    release: Optional[pulumi.Resource]
    scaler: pulumi.Output
    namespace: pulumi.Output
    service: pulumi.Output
    port: int


class _Prometheus(NamedTuple):
    """The Prometheus and Grafana the stack installs, or the configured ones."""
    url: pulumi.Output
    namespace: pulumi.Output
    dashboards_namespace: pulumi.Output
    dashboard_label: dict
    grafana: pulumi.Output


def _device_plugin(cfg, opts: pulumi.ResourceOptions) -> Optional[pulumi.Resource]:
    """The NVIDIA device plugin's release (AL2023 GPU nodes), None when not installed."""
    dp = cfg.addons.nvidia_device_plugin
    if not (cfg.gpu.needs_device_plugin and dp.install):
        return None
    return NvidiaDevicePlugin("nvidia-device-plugin", {
        "chart_version": dp.chart_version,
        "gfd_enabled": dp.gfd_enabled,
        **({"nfd_chart_version": dp.effective_nfd_chart_version} if dp.gfd_enabled else {}),
        **({"time_slicing": cfg.gpu.slice_counts} if cfg.gpu.slice_counts else {}),
    }, opts=opts).release


def _monitoring(cfg, node_selector: dict, opts: pulumi.ResourceOptions) -> Optional[Monitoring]:
    m = cfg.addons.monitoring
    if not m.install:
        return None
    return Monitoring("monitoring", {
        "chart_version": m.chart_version,
        "crds_chart_version": m.effective_crds_chart_version,
        "retention": m.retention,
        "scrape_interval": m.scrape_interval,
        "prometheus_memory": m.prometheus_memory,
        "grafana_enabled": m.grafana_enabled,
        "alertmanager_enabled": m.alertmanager_enabled,
        "node_selector": node_selector,
        # Only CRDs this stack's own cluster can hold: on an existing cluster they may be another release's.
        "adopt_crds": not cfg.existing_cluster,
    }, opts=opts)


def _keda(cfg, node_selector: dict, monitor_labels: dict, opts: pulumi.ResourceOptions) -> Optional[pulumi.Resource]:
    """KEDA's release, None when the cluster runs its own. Its chart creates a ServiceMonitor, so `opts` waits for
    the monitoring.coreos.com CRDs (of the stack's monitoring, or of the cluster's own operator)."""
    k = cfg.addons.keda
    if not k.install:
        return None
    return Keda("keda", {"chart_version": k.chart_version, "node_selector": node_selector,
                         **({"monitor_labels": monitor_labels} if monitor_labels else {})}, opts=opts).release


def _interceptor(cfg, node_selector: dict, opts: pulumi.ResourceOptions) -> _Interceptor:
    h = cfg.addons.http_addon
    if not h.install:
        out = pulumi.Output.from_input
        return _Interceptor(None, out(h.external_scaler_address), out(h.interceptor_namespace),
                            out(h.interceptor_service), h.interceptor_port)
    http = KedaHttpAddon("http-addon", {
        "chart_version": h.chart_version,
        "readiness_timeout": h.readiness_timeout,
        "response_header_timeout": h.response_header_timeout,
        "interceptor_min_replicas": h.interceptor_replicas,
        "interceptor_max_replicas": h.interceptor_max_replicas,
        "scaler_replicas": cfg.http_scaler_replicas,
        # The longest a request can be in flight before its first byte: held through a cold start, then
        # waiting for headers. Streams that outlast it are cut when a stopping interceptor's drain ends.
        "drain_timeout_seconds": int(duration_seconds(h.readiness_timeout)
                                     + duration_seconds(h.response_header_timeout)),
        "node_selector": node_selector,
    }, opts=opts)
    return _Interceptor(http.release, http.external_scaler_address, http.namespace, http.interceptor_proxy_service,
                        PROXY_PORT)


def _prometheus(m, monitoring: Optional[Monitoring]) -> _Prometheus:
    if monitoring:
        return _Prometheus(monitoring.prometheus_url, monitoring.namespace, monitoring.namespace,
                           dict(DASHBOARD_LABEL), monitoring.grafana_service)
    out = pulumi.Output.from_input
    return _Prometheus(out(m.prometheus_url), out(""), out(m.dashboard_namespace or ""),
                       dict(m.dashboard_labels or {}), out(""))


def _gpu_pools(f: Foundation, volume: DataVolume, deps: list) -> GpuNodePool:
    """The EC2NodeClass and NodePools, for the node role (or an existing instance profile) and the subnets of the
    foundation; they wait for what serves their CRDs and advertises GPUs (`deps`, None when already installed)."""
    cfg = f.cfg
    identity = ({"instance_profile": f.node_instance_profile} if f.node_instance_profile
                else {"node_role_name": f.node_role_name})
    network = ({"subnet_ids": f.gpu_subnet_ids} if f.gpu_subnet_ids is not None
               else {"discovery_tag": f.discovery_tag} if f.existing is not None else {})
    return GpuNodePool("gpu", {
        "cluster_name": f.cluster_name,
        "cluster_security_group_id": f.cluster_security_group_id,
        **identity,
        **network,
        "ami_family": AmiFamily(cfg.gpu.ami_family.value),
        "ami_version": cfg.gpu.ami_version,
        "volume_size_gib": cfg.gpu.volume_size_gib,
        "volume_throughput_mibps": cfg.gpu.volume_throughput_mibps,
        "fast_image_pull": volume.fast_image_pull,
        "instance_store_raid0": cfg.gpu.instance_store_raid0(volume.snapshot_id),
        **({"volume_iops": cfg.gpu.effective_volume_iops} if cfg.gpu.effective_volume_iops else {}),
        **({"data_volume_snapshot_id": volume.snapshot_id} if volume.snapshot_id else {}),
        **({"volume_initialization_rate_mibps": cfg.gpu.volume_initialization_rate_mibps}
           if volume.snapshot_id and cfg.gpu.volume_initialization_rate_mibps else {}),
        "pools": [_pool_args(p) for p in cfg.gpu.pools],
        # Destroy removes the models first (without waiting for their pods), then waits for the pools' nodes to drain.
        "pod_termination_grace_seconds": max(
            (model_termination_grace_seconds(m.drain_seconds) for m in cfg.models), default=0),
        "tags": {"gpu-burst.io/environment": cfg.environment},
    }, opts=pulumi.ResourceOptions(providers=[f.k8s_provider], depends_on=[d for d in deps if d is not None]))
