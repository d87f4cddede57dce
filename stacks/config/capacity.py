"""Capacity model of the managed system node group, evaluated on the validated config before anything is declared.

Nothing scales the system node group (Karpenter only provisions GPU nodes), so every pod pinned to it must fit on
`systemNodes.minSize` nodes of the smallest configured instance type, or a release waits forever on a Pending pod.

The model has three parts:

- :data:`INSTANCE_SHAPES` — vCPU, memory and ENI figures of the instance types the system group may use;
- :func:`node_allocatable` — what the kubelet of an EKS AL2023 node leaves to pods (kube-reserved + eviction threshold,
  the formula of nodeadm in awslabs/amazon-eks-ami);
- :data:`SYSTEM_ADDONS` — the requests of everything that runs on system nodes, per add-on, computed from the config:
  values this project sets (the components render the same numbers; tests/test_system_capacity.py checks that the
  estimate here is never below what the stack really renders) or the charts' documented defaults.

Adding a chart that runs on system nodes (a gateway controller, its proxies, the AWS Load Balancer Controller) is ONE
entry in :data:`SYSTEM_ADDONS`: a :class:`SystemAddon` named like its Helm release, whose `pods` returns its
Deployments/StatefulSets and whose `per_node` returns its DaemonSet pods. The config check picks it up as is;
tests/test_system_capacity.py fails until the release also has its line in `RENDERED` (where its values carry the
requests), so the estimate can never silently fall behind what is rendered.
"""

import math
from dataclasses import dataclass, field
from typing import Callable

from .base import quantity_value

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
# Requests below mirror what the components set (components/*.py); where we set nothing, the chart's default.

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
    # components/keda.py keda_values(): operator, metrics API server, admission webhooks, one replica each
    # (kedacore/charts@v2.20.2:keda/values.yaml operator.replicaCount / metricsServer.replicaCount / webhooks.replicaCount).
    return [PodRequest("keda-operator", 50, 128), PodRequest("keda-metrics-apiserver", 50, 128),
            PodRequest("keda-admission-webhooks", 20, 64)]


def _http_addon(cfg) -> list[PodRequest]:
    h = cfg.addons.http_addon
    # components/http_addon.py http_addon_values(). The interceptor is counted at its maximum: KEDA scales it under
    # load, and a Pending interceptor replica is lost capacity on the request path.
    return [PodRequest("http-add-on-operator", 50, 64),
            PodRequest("http-add-on-scaler", 50, 64, replicas=min(2, cfg.system_nodes.max_size)),
            PodRequest("http-add-on-interceptor", 100, 128, replicas=h.interceptor_max_replicas)]


def _monitoring(cfg) -> list[PodRequest]:
    m = cfg.addons.monitoring
    # components/monitoring.py monitoring_values(). Config reloaders get the prometheus-operator defaults
    # (--config-reloader-cpu-request 10m, --config-reloader-memory-request 50Mi; prometheus-operator
    # Documentation/operator.md). kube-state-metrics and the Grafana sidecar set no requests
    # (prometheus-community/helm-charts@kube-prometheus-stack-88.5.3 values `resources: {}`).
    pods = [PodRequest("prometheus-operator", 50, 128),
            PodRequest("prometheus", 200 + 10, parse_memory_mi(m.prometheus_memory) + 50),
            PodRequest("kube-state-metrics", 0, 0)]
    if m.alertmanager_enabled:
        pods.append(PodRequest("alertmanager", 10 + 10, 64 + 50))
    if m.grafana_enabled:
        pods.append(PodRequest("grafana", 50, 192))
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
    # components/edge_gateway.py envoy_gateway_values() / ai_gateway_values(), one pod per edge replica each.
    return [PodRequest("envoy-gateway", 100, 256, replicas=cfg.edge_replicas)]


def _ai_gateway(cfg) -> list[PodRequest]:
    return [PodRequest("ai-gateway-controller", 50, 128, replicas=cfg.edge_replicas)]


def _envoy_proxy(cfg) -> list[PodRequest]:
    # The Envoy pods Envoy Gateway deploys from the EnvoyProxy (components/edge_gateway.py): the envoy container
    # (100m / 256Mi), the AI Gateway ext_proc sidecar its webhook adds (100m / 128Mi, set by the edge's
    # GatewayConfig) and the shutdown-manager container (10m / 32Mi, DefaultShutdownManager*ResourceRequests in
    # envoyproxy/gateway@v1.9.0:api/v1alpha1/shared_types.go).
    return [PodRequest("envoy-proxy", 100 + 100 + 10, 256 + 128 + 32, replicas=cfg.edge_replicas)]


def _load_balancer_controller(cfg) -> list[PodRequest]:
    # components/load_balancer_controller.py lbc_values().
    return [PodRequest("aws-load-balancer-controller", 50, 128, replicas=cfg.edge_replicas)]


def _model_staging(cfg) -> list[PodRequest]:
    # components/model_store.py ModelWeights: one staging Job per model revision, pinned to the system nodes (never a
    # GPU node), 500m / 768Mi each, while a revision is staged. At least one must fit next to everything that stays;
    # with several models the others wait Pending for the room a finished Job frees (each Job's await covers its own
    # deadline, docs/cold-start.md).
    return [PodRequest("model-staging", 500, 768)] if cfg.models else []


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
