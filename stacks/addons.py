"""Add-ons layer: GPU NodePools and the cluster add-ons, wired from the typed config onto the foundation."""

from typing import Optional

import pulumi

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
    creates a ScaledObject) and KEDA for the monitoring CRDs (its ServiceMonitor); the NodePools wait for the Karpenter release (CRDs) and, on AL2023, for the device
    plugin, so no GPU node launches before something can advertise its GPUs, and on destroy the NodePools (and the
    nodes Karpenter drains for them) go before Karpenter and the plugin."""
    cfg = f.cfg
    system_ready = list(f.system_ready)
    volume = data_volume or resolve_data_volume(cfg)

    def opts(*deps: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(providers=[f.k8s_provider], depends_on=[*system_ready, *deps])

    device_plugin = None
    if cfg.gpu.needs_device_plugin:
        dp = cfg.addons.nvidia_device_plugin
        device_plugin = NvidiaDevicePlugin("nvidia-device-plugin", {
            "chart_version": dp.chart_version,
            "gfd_enabled": dp.gfd_enabled,
            **({"nfd_chart_version": dp.effective_nfd_chart_version} if dp.gfd_enabled else {}),
            **({"time_slicing": cfg.gpu.slice_counts} if cfg.gpu.slice_counts else {}),
        }, opts=opts())

    pool_deps = [f.karpenter_release] + ([device_plugin.release] if device_plugin else [])
    gpu = GpuNodePool("gpu", {
        "cluster_name": f.cluster_name,
        "cluster_security_group_id": f.cluster_security_group_id,
        "node_role_name": f.node_role_name,
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
        "tags": {"gpu-burst.io/environment": cfg.environment},
    }, opts=pulumi.ResourceOptions(providers=[f.k8s_provider], depends_on=pool_deps))

    m = cfg.addons.monitoring
    monitoring = Monitoring("monitoring", {
        "chart_version": m.chart_version,
        "crds_chart_version": m.effective_crds_chart_version,
        "retention": m.retention,
        "scrape_interval": m.scrape_interval,
        "prometheus_memory": m.prometheus_memory,
        "grafana_enabled": m.grafana_enabled,
        "alertmanager_enabled": m.alertmanager_enabled,
    }, opts=opts())

    # KEDA's chart creates a ServiceMonitor: it needs the monitoring.coreos.com CRDs.
    keda = Keda("keda", {"chart_version": cfg.addons.keda.chart_version}, opts=opts(monitoring.crd_release))

    h = cfg.addons.http_addon
    http = KedaHttpAddon("http-addon", {
        "chart_version": h.chart_version,
        "readiness_timeout": h.readiness_timeout,
        "response_header_timeout": h.response_header_timeout,
        "interceptor_min_replicas": h.interceptor_replicas,
        "interceptor_max_replicas": h.interceptor_max_replicas,
        "scaler_replicas": cfg.http_scaler_replicas,
        # The longest a request can be in flight before its first byte: held through a cold start, then waiting
        # for headers. Streams that outlast it are cut when a stopping interceptor's drain ends.
        "drain_timeout_seconds": int(duration_seconds(h.readiness_timeout) + duration_seconds(h.response_header_timeout)),
    }, opts=opts(keda.release))

    return Addons(
        gpu_pool_names=[p.name for p in cfg.gpu.pools],
        gpu_pools=gpu,
        keda_release=keda.release,
        http_addon_release=http.release,
        monitoring_release=monitoring.release,
        prometheus_url=monitoring.prometheus_url,
        external_scaler_address=http.external_scaler_address,
        interceptor_namespace=http.namespace,
        interceptor_proxy_service=http.interceptor_proxy_service,
        interceptor_proxy_port=PROXY_PORT,
        dashboards_namespace=monitoring.namespace,
        dashboard_label=dict(DASHBOARD_LABEL),
        monitoring_namespace=monitoring.namespace,
        grafana_service=monitoring.grafana_service,
        gpu_toleration=dict(GPU_TOLERATION),
        device_plugin_release=device_plugin.release if device_plugin else None,
        gpu_data_volume_snapshot_id=volume.snapshot_id or "",
    )

