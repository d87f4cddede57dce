"""The NVIDIA Kubernetes device plugin (and optionally GPU feature discovery) for GPU nodes whose AMI lacks it."""

from typing import Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from ._common import (pinned_release, GPU_PRESENT_LABEL, GPU_TAINT_KEY, GPU_TOLERATION, TIME_SLICING_TAINT_KEY, child,
                      deps_of, time_slicing_config_name, token)

CHART = "nvidia-device-plugin"
CHART_REPO = "https://nvidia.github.io/k8s-device-plugin"
RELEASE_NAME = "nvidia-device-plugin"
DEFAULT_NAMESPACE = "nvidia-device-plugin"


WHOLE_GPUS_CONFIG = "whole-gpus"
"""Device plugin config of nodes without the config label: no sharing, the plugin's defaults."""
NFD_WORKER_TOLERATIONS = [
    {"key": "node-role.kubernetes.io/master", "operator": "Equal", "value": "", "effect": "NoSchedule"},
    {"key": GPU_TAINT_KEY, "operator": "Equal", "value": "present", "effect": "NoSchedule"},
]
"""The chart's `nfd.worker.tolerations` (NVIDIA/k8s-device-plugin@v0.20.0 values.yaml): restated because a list in
values replaces the default."""


def time_slicing_config(slices: int) -> str:
    """The plugin config (api/config/v1) for `slices` time-slices per GPU, advertised as `nvidia.com/gpu.shared`
    (renameByDefault; v0.20.0 ignores a per-resource `rename`, DisableResourceNamingInConfig) and refusing a pod that
    asks for more than one slice (failRequestsGreaterThanOne)."""
    return ("version: v1\n"
            "flags:\n"
            "  migStrategy: none\n"
            "sharing:\n"
            "  timeSlicing:\n"
            "    renameByDefault: true\n"
            "    failRequestsGreaterThanOne: true\n"
            "    resources:\n"
            "    - name: nvidia.com/gpu\n"
            f"      replicas: {slices}\n")


def time_slicing_values(slices: list[int], gfd_enabled: bool) -> dict:
    """Values for the time-sliced pools: one named config per slice count, picked per node by the
    `nvidia.com/device-plugin.config` label the pool's NodePool sets (the chart's config-manager sidecar reads it);
    nodes without the label keep whole GPUs. The plugin (and the NFD worker, with GFD) tolerate the pools' taint."""
    sharing = {"key": TIME_SLICING_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
    values: dict = {
        "config": {"map": {WHOLE_GPUS_CONFIG: "version: v1\nflags:\n  migStrategy: none\n",
                           **{time_slicing_config_name(n): time_slicing_config(n) for n in sorted(set(slices))}},
                   "default": WHOLE_GPUS_CONFIG},
        "tolerations": [dict(GPU_TOLERATION), sharing],
    }
    if gfd_enabled:
        values["nfd"] = {"worker": {"tolerations": [*NFD_WORKER_TOLERATIONS, sharing]}}
    return values


def nfd_crd_url(nfd_chart_version: str) -> str:
    """The nfd.k8s-sigs.io CRDs (NodeFeature, NodeFeatureGroup, NodeFeatureRule) of the node-feature-discovery chart
    the device plugin chart depends on, at that release's tag (chart X.Y.Z is app vX.Y.Z)."""
    return (f"https://raw.githubusercontent.com/kubernetes-sigs/node-feature-discovery/v{nfd_chart_version}"
            "/deployment/helm/node-feature-discovery/crds/nfd-api-crds.yaml")


def device_plugin_values(node_labels: dict[str, str], gfd_enabled: bool, time_slicing: Optional[list[int]] = None) -> dict:
    """Chart values. `affinity` replaces the chart default (NFD labels OR nvidia.com/gpu.present) with exactly the
    labels our NodePools put on GPU nodes, so the DaemonSet schedules where Karpenter launches GPUs and nowhere else,
    with or without NFD. `time_slicing`: the slice counts of the time-sliced pools (none: the values stay as they
    were, no config map)."""
    values = {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(node_labels.items())]},
        ]}}},
        # Only the GPU taint: CriticalAddonsOnly (chart default) is not used on this cluster.
        "tolerations": [dict(GPU_TOLERATION)],
        "priorityClassName": "system-node-critical",
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        # GFD writes feature files that the NFD worker publishes as nvidia.com/gpu.* labels (product, memory, ...);
        # the NFD worker's default tolerations match the taint value "present" that GpuNodePool uses.
        "gfd": {"enabled": gfd_enabled},
    }
    if time_slicing:
        values.update(time_slicing_values(time_slicing, gfd_enabled))
    return values


class NvidiaDevicePluginArgs(TypedDict):
    """Inputs for NvidiaDevicePlugin."""

    chart_version: pulumi.Input[str]
    """Pinned nvidia-device-plugin chart version, e.g. 0.20.0."""
    gpu_node_labels: NotRequired[dict[str, str]]
    """Labels every GPU node carries; the DaemonSet requires all of them. Default {nvidia.com/gpu.present: "true"}."""
    gfd_enabled: NotRequired[bool]
    """Also run GPU feature discovery (+ its node-feature-discovery subchart). Default True."""
    nfd_chart_version: NotRequired[str]
    """Version of the chart's node-feature-discovery dependency, e.g. 0.19.0 for 0.20.0: its CRDs are applied from
    that release. Required when gfd_enabled."""
    namespace: NotRequired[pulumi.Input[str]]
    """Namespace (created). Default nvidia-device-plugin."""
    time_slicing: NotRequired[list[int]]
    """Slices per GPU of the time-sliced pools (GpuNodePool labels their nodes with the matching config name)."""


class NvidiaDevicePlugin(pulumi.ComponentResource):
    """NVIDIA device plugin DaemonSet that advertises `nvidia.com/gpu` on AL2023 GPU nodes (Karpenter considers a
    GPU node initialized only once that resource is registered). It tolerates the `nvidia.com/gpu` taint and is
    restricted by node affinity to nodes labelled like the GPU NodePools' template."""

    release_name: pulumi.Output[str]
    """Helm release name."""
    namespace: pulumi.Output[str]
    """Namespace of the release."""

    def __init__(self, name: str, args: NvidiaDevicePluginArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("NvidiaDevicePlugin"), name, None, opts)
        node_labels = args.get("gpu_node_labels") or {GPU_PRESENT_LABEL: "true"}
        gfd = args.get("gfd_enabled", True)
        deps = deps_of(opts)
        self.nfd_crds = None
        if gfd:
            if not args.get("nfd_chart_version"):
                raise ValueError(f"NvidiaDevicePlugin '{name}': gfd_enabled needs nfd_chart_version (the chart's "
                                 "node-feature-discovery dependency)")
            # The NFD subchart ships them in crds/, which Helm installs once and never upgrades.
            self.nfd_crds = k8s.yaml.v2.ConfigFile(f"{name}-nfd-crds", file=nfd_crd_url(args["nfd_chart_version"]),
                                                   opts=child(self, deps))
        self.release = pinned_release(
            self, name, RELEASE_NAME, CHART, CHART_REPO, args["chart_version"],
            args.get("namespace", DEFAULT_NAMESPACE),
            values=device_plugin_values(node_labels, gfd, args.get("time_slicing")),
            depends_on=[*([self.nfd_crds] if self.nfd_crds else []), *deps],
            skip_crds=True,
        )
        self.release_name = self.release.status.name
        self.namespace = self.release.status.namespace
        self.register_outputs({"release_name": self.release_name, "namespace": self.namespace})
