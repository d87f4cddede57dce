"""Capacity model of the managed system node group, evaluated on the validated config before anything is declared.

Nothing scales the system node group (Karpenter only provisions GPU nodes), so every pod pinned to it must fit on
`systemNodes.minSize` nodes of the smallest configured instance type, or a release waits forever on a Pending pod.

The model has three parts:

- :data:`INSTANCE_SHAPES` — vCPU, memory and ENI figures of the instance types the system group may use;
- :func:`node_allocatable` — what the kubelet of an EKS AL2023 node leaves to pods (kube-reserved + eviction threshold,
  the formula of nodeadm in awslabs/amazon-eks-ami);
- :data:`SYSTEM_ADDONS` — the requests of everything that runs on system nodes, per add-on, computed from the config:
  the components' own request constants (imported, never copied; tests/test_system_capacity.py checks that the
  estimate here is never below what the stack really renders) or the charts' documented defaults.

Adding a chart that runs on system nodes (a gateway controller, its proxies, the AWS Load Balancer Controller) is ONE
entry in :data:`SYSTEM_ADDONS`: a :class:`SystemAddon` named like its Helm release, whose `pods` returns its
Deployments/StatefulSets and whose `per_node` returns its DaemonSet pods. The config check picks it up as is;
tests/test_system_capacity.py fails until the release also has its line in `RENDERED` (where its values carry the
requests), so the estimate can never silently fall behind what is rendered.
"""

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

from .base import quantity_value
from .component_constants import edge_gateway, http_addon, keda, load_balancer_controller, model_store, monitoring

HEADROOM = 0.10
"""Share of each node kept free: a rolling update surges one pod, and chart pods without requests still use some."""

VM_MEMORY_OVERHEAD = 0.075
"""Share of the nominal memory the hypervisor and kernel keep (the kubelet's capacity is MemTotal, not the EC2
figure). Karpenter's own estimate, chart default `settings.vmMemoryOverheadPercent: 0.075`
(aws/karpenter-provider-aws@v1.14.1:charts/karpenter/values.yaml)."""

EVICTION_HARD_MEMORY_MI = 100
"""kubelet `evictionHard: memory.available: 100Mi` set by nodeadm
(awslabs/amazon-eks-ami@v20260714:nodeadm/internal/kubelet/config.go, defaultKubeletSubConfig)."""


@dataclass(frozen=True)
class InstanceShape:
    """What EC2 sells and the VPC CNI can address for one instance type."""

    vcpus: int
    memory_mib: int
    max_enis: int
    ips_per_eni: int

    @property
    def max_pods(self) -> int:
        """nodeadm's default: ENIs × (IPv4 addresses per ENI − 1) + 2
        (awslabs/amazon-eks-ami@v20260714:nodeadm/internal/kubelet/eni_max_pods.go, calculateStandardMaxPods)."""
        return self.max_enis * (self.ips_per_eni - 1) + 2


# ENI figures from awslabs/amazon-eks-ami@v20260714:nodeadm/internal/kubelet/instance-info.jsonl (identical for every
# family below at a given size); vCPU and memory are the EC2 sizes (m: 4 GiB/vCPU, c: 2 GiB, r: 8 GiB).
_SIZES = {"large": (2, 3, 10), "xlarge": (4, 4, 15), "2xlarge": (8, 4, 15), "4xlarge": (16, 8, 30)}
_GIB_PER_VCPU = {"m5": 4, "m6i": 4, "m6a": 4, "m7i": 4, "m7a": 4, "c6i": 2, "c7i": 2, "r6i": 8, "r7i": 8}
INSTANCE_SHAPES: dict[str, InstanceShape] = {
    f"{family}.{size}": InstanceShape(vcpus, vcpus * gib * 1024, enis, ips)
    for family, gib in _GIB_PER_VCPU.items()
    for size, (vcpus, enis, ips) in _SIZES.items()
}


def kube_reserved_cpu_m(total_m: int) -> int:
    """6% of the first core, 1% of the second, 0.5% of cores 3-4, 0.25% of the rest
    (awslabs/amazon-eks-ami@v20260714:nodeadm/internal/kubelet/config.go, getCPUMillicoresToReserve)."""
    reserved = 0
    for start, end, pct in ((0, 1000, 600), (1000, 2000, 100), (2000, 4000, 50), (4000, total_m, 25)):
        if total_m > start:
            reserved += (min(total_m, end) - start) * pct // 10000
    return reserved


@dataclass(frozen=True)
class Allocatable:
    """What the scheduler can place on one node."""

    cpu_m: int
    memory_mi: int
    pods: int


def node_allocatable(instance_type: str) -> Allocatable:
    """Allocatable of one EKS AL2023 node: capacity − kube-reserved − eviction threshold. kube-reserved memory is
    `11 × maxPods + 255` MiB (getMemoryMebibytesToReserve, same file as above); no system-reserved is set."""
    s = INSTANCE_SHAPES[instance_type]
    cpu = s.vcpus * 1000
    memory = int(s.memory_mib * (1 - VM_MEMORY_OVERHEAD))
    return Allocatable(
        cpu_m=cpu - kube_reserved_cpu_m(cpu),
        memory_mi=memory - (11 * s.max_pods + 255) - EVICTION_HARD_MEMORY_MI,
        pods=s.max_pods,
    )


@dataclass(frozen=True)
class PodRequest:
    """Requests of one pod (sum over its containers; init containers run before and are not added)."""

    name: str
    cpu_m: int
    memory_mi: int
    replicas: int = 1
    spread: bool = False
    """Replicas repel each other by hostname (required anti-affinity): each needs its own node."""

    @classmethod
    def of(cls, name: str, *containers: Mapping[str, str], replicas: int = 1) -> "PodRequest":
        """The pod of `containers`, each given as its `requests` mapping (cpu, memory) as a component renders it."""
        return cls(name, sum(parse_cpu_m(c.get("cpu", "0")) for c in containers),
                   sum(parse_memory_mi(c.get("memory", "0")) for c in containers), replicas=replicas)


@dataclass(frozen=True)
class SystemAddon:
    """Everything one add-on runs on system nodes, computed from the validated config."""

    name: str
    pods: Callable[[object], list[PodRequest]]
    """Deployments/StatefulSets pinned to (or landing on) the system nodes."""
    per_node: Callable[[object], list[PodRequest]] = field(default=lambda cfg: [])
    """DaemonSet pods that run on every system node."""
    source: str = ""
    """Where the numbers come from (our values, or the upstream file with the chart's defaults)."""


def parse_cpu_m(v: str) -> int:
    """Kubernetes CPU quantity → millicores, rounded up ("1" → 1000, "250m" → 250)."""
    return math.ceil(quantity_value(str(v)) * 1000)


def parse_memory_mi(v: str) -> int:
    """Kubernetes memory quantity → MiB, rounded up ("1Gi" → 1024, "128M" → 123)."""
    return math.ceil(quantity_value(str(v)) / 2**20)


# -- the add-ons ------------------------------------------------------------------------------------------------------
# Requests below are the components' constants (components/*.py); where we set nothing, the chart's default.

CONFIG_RELOADER_REQUESTS = {"cpu": "10m", "memory": "50Mi"}
"""The config-reloader sidecar prometheus-operator adds to Prometheus and Alertmanager (its defaults
--config-reloader-cpu-request / --config-reloader-memory-request, prometheus-operator Documentation/operator.md)."""
SHUTDOWN_MANAGER_REQUESTS = {"cpu": "10m", "memory": "32Mi"}
"""The shutdown-manager container of each Envoy pod (DefaultShutdownManager*ResourceRequests in
envoyproxy/gateway@v1.9.0:api/v1alpha1/shared_types.go)."""

def _eks_core(cfg) -> list[PodRequest]:
    # CoreDNS EKS add-on: 2 replicas, requests cpu 100m / memory 70Mi (the upstream CoreDNS manifest's requests,
    # kubernetes/kubernetes cluster/addons/dns/coredns/coredns.yaml.base; the add-on's own manifest is not public).
    return [PodRequest("coredns", 100, 70, replicas=2)]


def _eks_daemons(cfg) -> list[PodRequest]:
    return [
        # aws-node: the aws-node and aws-eks-nodeagent containers each default to `resources.requests.cpu: 25m`
        # (aws/eks-charts@5239609:stable/aws-vpc-cni/values.yaml `resources`, templates/daemonset.yaml).
        PodRequest("aws-node", 50, 0),
        # kube-proxy EKS add-on DaemonSet: requests cpu 100m (observed EKS default; the manifest is not public).
        PodRequest("kube-proxy", 100, 0),
        # eks-pod-identity-agent: `resources: {}` (aws/eks-pod-identity-agent charts/eks-pod-identity-agent/values.yaml).
        PodRequest("eks-pod-identity-agent", 0, 0),
    ]


def _karpenter(cfg) -> list[PodRequest]:
    k = cfg.karpenter
    return [PodRequest("karpenter", parse_cpu_m(k.controller_cpu), parse_memory_mi(k.controller_memory),
                       replicas=cfg.karpenter_replicas, spread=True)]


def _keda(cfg) -> list[PodRequest]:
    # operator, metrics API server, admission webhooks, one replica each (kedacore/charts@v2.20.2:keda/values.yaml
    # operator.replicaCount / metricsServer.replicaCount / webhooks.replicaCount).
    return [PodRequest.of("keda-operator", keda.OPERATOR_REQUESTS),
            PodRequest.of("keda-metrics-apiserver", keda.METRICS_SERVER_REQUESTS),
            PodRequest.of("keda-admission-webhooks", keda.WEBHOOKS_REQUESTS)]


def _http_addon(cfg) -> list[PodRequest]:
    # The interceptor is counted at its maximum: KEDA scales it under load, and a Pending interceptor replica is lost
    # capacity on the request path.
    return [PodRequest.of("http-add-on-operator", http_addon.SMALL_REQUESTS),
            PodRequest.of("http-add-on-scaler", http_addon.SMALL_REQUESTS, replicas=cfg.http_scaler_replicas),
            PodRequest.of("http-add-on-interceptor", http_addon.INTERCEPTOR_REQUESTS,
                          replicas=cfg.addons.http_addon.interceptor_max_replicas)]


def _monitoring(cfg) -> list[PodRequest]:
    m = cfg.addons.monitoring
    # kube-state-metrics and the Grafana sidecar set no requests
    # (prometheus-community/helm-charts@kube-prometheus-stack-88.5.3 values `resources: {}`).
    pods = [PodRequest.of("prometheus-operator", monitoring.OPERATOR_REQUESTS),
            PodRequest.of("prometheus", {"cpu": monitoring.PROMETHEUS_CPU, "memory": m.prometheus_memory},
                          CONFIG_RELOADER_REQUESTS),
            PodRequest("kube-state-metrics", 0, 0)]
    if m.alertmanager_enabled:
        pods.append(PodRequest.of("alertmanager", monitoring.ALERTMANAGER_REQUESTS, CONFIG_RELOADER_REQUESTS))
    if m.grafana_enabled:
        pods.append(PodRequest.of("grafana", monitoring.GRAFANA_REQUESTS))
    return pods


def _monitoring_daemons(cfg) -> list[PodRequest]:
    # prometheus-node-exporter: `resources: {}` in the subchart.
    return [PodRequest("node-exporter", 0, 0)]


def _device_plugin(cfg) -> list[PodRequest]:
    # The plugin DaemonSet itself runs on GPU nodes only. With GFD, node-feature-discovery's master and gc are
    # Deployments without a nodeSelector; the system nodes are the only untainted capacity.
    if not (cfg.gpu.needs_device_plugin and cfg.addons.nvidia_device_plugin.gfd_enabled):
        return []
    # node-feature-discovery chart defaults (kubernetes-sigs/node-feature-discovery
    # deployment/helm/node-feature-discovery/values.yaml; nvidia-device-plugin 0.20.0 depends on chart 0.19.0):
    # master requests cpu 100m / memory 128Mi, gc 10m / 128Mi.
    return [PodRequest("nfd-master", 100, 128), PodRequest("nfd-gc", 10, 128)]


def _device_plugin_daemons(cfg) -> list[PodRequest]:
    if not (cfg.gpu.needs_device_plugin and cfg.addons.nvidia_device_plugin.gfd_enabled):
        return []
    # The NFD worker DaemonSet has no nodeSelector: it runs on system nodes too (same file: 5m / 64Mi).
    return [PodRequest("nfd-worker", 5, 64)]


def _edge(cfg) -> list[PodRequest]:
    return [PodRequest.of("envoy-gateway", edge_gateway.EG_REQUESTS, replicas=cfg.edge_replicas)]


def _ai_gateway(cfg) -> list[PodRequest]:
    return [PodRequest.of("ai-gateway-controller", edge_gateway.AIGW_REQUESTS, replicas=cfg.edge_replicas)]


def _envoy_proxy(cfg) -> list[PodRequest]:
    # The Envoy pods Envoy Gateway deploys from the EnvoyProxy: the envoy container, the AI Gateway ext_proc sidecar
    # its webhook adds (requests set by the edge's GatewayConfig) and the shutdown-manager container.
    extproc = {"cpu": edge_gateway.EXTPROC_CPU, "memory": edge_gateway.EXTPROC_MEMORY}
    return [PodRequest.of("envoy-proxy", edge_gateway.ENVOY_REQUESTS, extproc, SHUTDOWN_MANAGER_REQUESTS,
                          replicas=cfg.edge_replicas)]


def _load_balancer_controller(cfg) -> list[PodRequest]:
    return [PodRequest.of("aws-load-balancer-controller", load_balancer_controller.CONTROLLER_REQUESTS,
                          replicas=cfg.edge_replicas)]


def _model_staging(cfg) -> list[PodRequest]:
    # One staging Job per model revision, pinned to the system nodes (never a GPU node), while a revision is staged.
    # At least one must fit next to everything that stays; with several models the others wait Pending for the room
    # a finished Job frees (each Job's await covers its own deadline, docs/cold-start.md).
    return [PodRequest.of("model-staging", model_store.STAGING_REQUESTS)] if cfg.models else []


SYSTEM_ADDONS: list[SystemAddon] = [
    SystemAddon("eks", _eks_core, _eks_daemons, "EKS add-ons: coredns, vpc-cni, kube-proxy, pod identity agent"),
    SystemAddon("karpenter", _karpenter, source="karpenter.controllerCpu/controllerMemory (components/karpenter.py)"),
    SystemAddon("keda", _keda, source="components/keda.py"),
    SystemAddon("keda-add-ons-http", _http_addon, source="components/http_addon.py"),
    SystemAddon("kube-prometheus-stack", _monitoring, _monitoring_daemons, "components/monitoring.py"),
    SystemAddon("nvidia-device-plugin", _device_plugin, _device_plugin_daemons, "node-feature-discovery defaults"),
    SystemAddon("eg", _edge, source="components/edge_gateway.py envoy_gateway_values()"),
    SystemAddon("aieg", _ai_gateway, source="components/edge_gateway.py ai_gateway_values()"),
    SystemAddon("envoy-proxy", _envoy_proxy, source="components/edge_gateway.py EnvoyProxy"),
    SystemAddon("aws-load-balancer-controller", _load_balancer_controller,
                source="components/load_balancer_controller.py"),
    SystemAddon("model-staging", _model_staging, source="components/model_store.py staging Job (one at a time fits)"),
]
"""Every add-on with pods on the system nodes. Append one entry per new chart (e.g. a gateway controller)."""


@dataclass(frozen=True)
class Fit:
    """Result of placing the system pods on `nodes` nodes of `instance_type`."""

    instance_type: str
    nodes: int
    cpu_m: int
    """Sum of CPU requests (every pod, DaemonSet pods once per node)."""
    memory_mi: int
    allocatable: Allocatable
    unplaced: list[str]
    """Pods that found no node (first-fit decreasing, headroom kept free on every node)."""

    @property
    def ok(self) -> bool:
        return not self.unplaced


def system_pods(cfg) -> tuple[list[PodRequest], list[PodRequest]]:
    """(pods placed once, DaemonSet pods placed on every node) over every add-on."""
    once = [p for a in SYSTEM_ADDONS for p in a.pods(cfg)]
    per_node = [p for a in SYSTEM_ADDONS for p in a.per_node(cfg)]
    return once, per_node


def fit(cfg, instance_type: str, nodes: int) -> Fit:
    """Place every system pod on `nodes` nodes of `instance_type` by first-fit decreasing, keeping HEADROOM free."""
    alloc = node_allocatable(instance_type)
    once, per_node = system_pods(cfg)
    ds_cpu = sum(p.cpu_m for p in per_node)
    ds_mem = sum(p.memory_mi for p in per_node)
    free = [[alloc.cpu_m * (1 - HEADROOM) - ds_cpu, alloc.memory_mi * (1 - HEADROOM) - ds_mem,
             alloc.pods - len(per_node), set()] for _ in range(nodes)]
    unplaced = []
    items = [(p, i) for p in once for i in range(p.replicas)]
    items.sort(key=lambda pi: (pi[0].cpu_m / max(alloc.cpu_m, 1) + pi[0].memory_mi / max(alloc.memory_mi, 1)),
               reverse=True)
    for p, i in items:
        for node in free:
            if node[0] >= p.cpu_m and node[1] >= p.memory_mi and node[2] >= 1 and not (p.spread and p.name in node[3]):
                node[0] -= p.cpu_m
                node[1] -= p.memory_mi
                node[2] -= 1
                node[3].add(p.name)
                break
        else:
            unplaced.append(f"{p.name}#{i}")
    return Fit(instance_type, nodes,
               cpu_m=sum(p.cpu_m * p.replicas for p in once) + ds_cpu * nodes,
               memory_mi=sum(p.memory_mi * p.replicas for p in once) + ds_mem * nodes,
               allocatable=alloc, unplaced=unplaced)


def smallest(instance_types: list[str]) -> str:
    """The configured type with the least allocatable (CPU first, then memory): what the group may be made of."""
    return min(instance_types, key=lambda t: (node_allocatable(t).cpu_m, node_allocatable(t).memory_mi))


def problems(cfg) -> list[str]:
    """`<key>: <message>` lines when the system node group cannot hold its own add-ons."""
    sysn = cfg.system_nodes
    unknown = [t for t in sysn.instance_types if t not in INSTANCE_SHAPES]
    if unknown:
        return [f"systemNodes.instanceTypes: no capacity figures for {unknown}; allowed: "
                f"{', '.join(sorted(INSTANCE_SHAPES))} (add the type to stacks/config/capacity.py INSTANCE_SHAPES)"]
    t = smallest(list(sysn.instance_types))
    result = fit(cfg, t, sysn.min_size)
    if result.ok:
        return []
    a = result.allocatable
    names = [u.rsplit("#", 1)[0] for u in result.unplaced]
    unplaced = ", ".join(f"{n} ×{names.count(n)}" if names.count(n) > 1 else n for n in dict.fromkeys(names))
    return [f"systemNodes: {sysn.min_size} × {t} (allocatable {a.cpu_m}m CPU / {a.memory_mi}Mi each, "
            f"{int(HEADROOM * 100)}% kept free) cannot hold the system add-ons' requests "
            f"({result.cpu_m}m CPU / {result.memory_mi}Mi); no room for {unplaced}; allowed: a larger "
            "systemNodes.minSize or systemNodes.instanceTypes entry, or lower karpenter.controllerCpu / "
            "addons.httpAddon.interceptorMaxReplicas"]
