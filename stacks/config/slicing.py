"""Time-sliced GPUs: the worst case of what may share one GPU and one node, checked on the validated config.

A model on a pool with `timeSlicing: N` requests one `nvidia.com/gpu.shared` per replica. Neither the scheduler nor
the device plugin knows which model a slice goes to or how much GPU memory it will take: any N slices of one GPU may
be replicas of any models of the traffic class, several of them of the same model. So every rule here takes the
heaviest slices that may land together, each model contributing at most `min(maxReplicas, slots)` of them.
"""

import math
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from .base import quantity_value
from .capacity import kube_reserved_cpu_m, parse_cpu_m
from .gpu import GPU_INSTANCE_SIZES
from .instance_store import LOCAL_NVME_GB, nvme_allocatable_bytes

SLICE_CONTEXT_SHARE = 0.02
"""GPU memory each slice holds outside its `gpuMemoryUtilization`, as a share of the GPU: vLLM sizes its budget as
that fraction of the whole GPU and refuses to start when less is free (vllm 0.33.0 v1/worker/gpu_worker.py, the
"Free memory on device ... is less than desired GPU memory utilization" check), and each process's CUDA context is
already allocated when it measures. Our estimate of a context (a few hundred MiB on a 16-48 GiB GPU); only a real
GPU shows the exact figure."""


@dataclass(frozen=True)
class Slice:
    """One replica of a model, as it takes a slice of a GPU and room on its node."""

    model: int
    """Index in gpu-burst:models."""
    name: str
    share: float
    """gpuMemoryUtilization: the fraction of the whole GPU vLLM preallocates."""
    cpu_m: int
    cache_bytes: int


def slices_of(models: Iterable[tuple[int, object]], slots: int) -> list[Slice]:
    """The replicas that may fill `slots` slices: each model at most min(maxReplicas, slots) of them."""
    out: list[Slice] = []
    for i, m in models:
        one = Slice(i, m.served_name, m.gpu_memory_utilization, parse_cpu_m(m.cpu), int(quantity_value(m.cache_size)))
        out.extend([one] * min(m.max_replicas, slots))
    return out


def heaviest(slices: list[Slice], slots: int, key: Callable[[Slice], float]) -> list[Slice]:
    """The `slots` slices with the largest `key` (config order among equals)."""
    return sorted(slices, key=key, reverse=True)[:slots]


def _who(slices: list[Slice]) -> str:
    counts = Counter(s.name for s in slices)
    return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in counts.items())


def memory_problem(models: list[tuple[int, object]], n: int, traffic_class: str) -> Optional[tuple[int, str]]:
    """(model index, message) when the N slices that may share one GPU preallocate more than the GPU has.

    Rule: take the N largest `gpuMemoryUtilization` among the replicas the class may run (each model at most
    min(maxReplicas, N) times); their sum plus SLICE_CONTEXT_SHARE per slice must be at most 1."""
    worst = heaviest(slices_of(models, n), n, key=lambda s: s.share)
    shares = sum(s.share for s in worst)
    total = shares + SLICE_CONTEXT_SHARE * len(worst)
    if total <= 1 + 1e-9:
        return None
    blame, k = worst[0], len(worst)
    each = math.floor((1 - SLICE_CONTEXT_SHARE * k) / k * 1000) / 1000
    return blame.model, (
        f"{blame.share:g} does not fit a GPU of traffic class '{traffic_class}' cut into {n} slices: the {k} "
        f"slices that may share one GPU ({_who(worst)}) preallocate {shares:.2f} of its memory, {total:.2f} with "
        f"{SLICE_CONTEXT_SHARE:g} per slice for its CUDA context; allowed: at most 1 in total, e.g. {each:g} for each "
        f"of {k} equal slices")


@dataclass(frozen=True)
class NodeShape:
    """What one instance type of a pool offers the slices it holds."""

    instance_type: str
    gpus: int
    cpu_m: int
    """Allocatable CPU: vCPUs less the kubelet's kube-reserved (the node's DaemonSets come on top)."""
    storage_bytes: int
    """ephemeral-storage pods may fill beside the image, in the worst of the layouts the nodes may use."""
    storage_on: str
    """Where that storage is: `gpu.volumeSizeGib` (the EBS volume) or `its NVMe instance store`."""


def node_shapes(pools: list, raid0: bool, ebs_room: Optional[int], image_headroom: int) -> list[NodeShape]:
    """Every instance type the pools may launch. `raid0`: pods' ephemeral storage is the NVMe array; `ebs_room`
    (bytes, None when no node keeps pod data on EBS): what the EBS volume offers beside the image."""
    shapes: dict[str, NodeShape] = {}
    for pool in pools:
        for family in pool.instance_families:
            for size, (vcpus, gpus) in GPU_INSTANCE_SIZES.get(family, {}).items():
                if gpus not in pool.gpus_per_node:
                    continue
                rooms = [] if ebs_room is None else [(ebs_room, "gpu.volumeSizeGib")]
                nvme = LOCAL_NVME_GB.get(family, {}).get(size)
                if raid0 and nvme:
                    rooms.append((nvme_allocatable_bytes(nvme) - image_headroom, "its NVMe instance store"))
                if not rooms:
                    continue
                name = f"{family}.{size}"
                room, on = min(rooms)
                shapes[name] = NodeShape(name, gpus, vcpus * 1000 - kube_reserved_cpu_m(vcpus * 1000), room, on)
    return sorted(shapes.values(), key=lambda s: (s.gpus, s.cpu_m, s.instance_type))


def node_fit_problem(models: list[tuple[int, object]], n: int, traffic_class: str,
                     shapes: list[NodeShape]) -> Optional[tuple[int, str, str]]:
    """(model index, key, message) when no instance the class may launch holds the slices of all its GPUs.

    A node with k GPUs carries k x N slices; Karpenter packs pending slices onto a node only while their CPU and
    ephemeral-storage requests fit, so if no instance type fits its slices' heaviest requests, part of every GPU
    stays unused and each burst buys more GPUs than the slicing promised."""
    if not shapes:
        return None
    ratios = []
    for shape in shapes:
        slots = shape.gpus * n
        cands = slices_of(models, slots)
        cpu = heaviest(cands, slots, key=lambda s: s.cpu_m)
        disk = heaviest(cands, slots, key=lambda s: s.cache_bytes)
        need_cpu, need_disk = sum(s.cpu_m for s in cpu), sum(s.cache_bytes for s in disk)
        if need_cpu <= shape.cpu_m and need_disk <= shape.storage_bytes:
            return None
        ratios.append((shape, cpu, need_cpu, disk, need_disk))
    if not any(need_cpu <= shape.cpu_m for shape, _, need_cpu, _, _ in ratios):
        shape, worst, need, _, _ = max(ratios, key=lambda r: r[0].cpu_m / r[2])
        blame = max(worst, key=lambda s: s.cpu_m)
        per = shape.cpu_m // len(worst)
        return blame.model, "cpu", (
            f"{blame.cpu_m}m per replica does not fit {len(worst)} slices of traffic class '{traffic_class}' "
            f"({_who(worst)}) on one node: they request {need}m CPU and the roomiest instance for them, "
            f"{shape.instance_type} ({shape.gpus} GPU x {n} slices), offers {shape.cpu_m}m; allowed: at most {per}m "
            f"each, a lower timeSlicing, or larger instanceFamilies")
    shape, _, _, worst, need = max(ratios, key=lambda r: r[0].storage_bytes / max(r[4], 1))
    blame = max(worst, key=lambda s: s.cache_bytes)
    per = shape.storage_bytes // len(worst) // 2**30
    bigger = "a larger gpu.volumeSizeGib" if shape.storage_on == "gpu.volumeSizeGib" else "larger instanceFamilies"
    return blame.model, "cacheSize", (
        f"{blame.cache_bytes / 2**30:g}Gi per replica does not fit {len(worst)} slices of traffic class "
        f"'{traffic_class}' ({_who(worst)}) on one node: their caches take {need / 2**30:g}Gi and the roomiest "
        f"instance for them, {shape.instance_type} ({shape.gpus} GPU x {n} slices), has {shape.storage_bytes // 2**30}Gi "
        f"of ephemeral storage on {shape.storage_on} beside the image; allowed: at most {per}Gi each, a lower "
        f"timeSlicing, or {bigger}")
