"""GPU instance prices: the one table `burstctl estimate` prices a cold start with and the usage recording rules
price GPU time with, and the instance a model's pool is priced at.

Only on-demand list prices are kept. Spot prices change per zone and hour and nothing in this project publishes a
table of them, so a spot pool is priced at its on-demand price: an upper bound (docs/workload.md, "Cost per
million tokens")."""

from typing import Any, NamedTuple, Optional

from .capacity import kube_reserved_cpu_m, parse_cpu_m
from .gpu import GPU_INSTANCE_SIZES, CapacityType

EC2_PRICES = "aws.amazon.com/ec2/pricing/on-demand (Linux, us-east-1/us-west-2 on-demand)"
PRICE_PER_HOUR = {"g5.xlarge": 1.006, "g5.2xlarge": 1.212, "g5.4xlarge": 1.624, "g5.12xlarge": 5.672,
                  "g6.xlarge": 0.8048, "g6.2xlarge": 0.9776, "g6.4xlarge": 1.3232, "g6.12xlarge": 4.6016,
                  "g6e.xlarge": 1.861, "g6e.2xlarge": 2.24208, "g6e.12xlarge": 10.49264}
"""USD per instance-hour, on-demand (EC2_PRICES)."""
PRICE_BASIS = CapacityType.ON_DEMAND.value
"""Which price the table holds, whatever capacity type a pool buys."""


def smallest_instance(families: list[str], gpus: int, min_cpu_m: int = 0) -> Optional[str]:
    """Smallest instance (fewest vCPUs, then cheapest) of the families with exactly `gpus` GPUs and at least
    `min_cpu_m` millicores allocatable, the first one Karpenter's price ordering tries for such a pod; None when no
    size qualifies."""
    best = None
    for fam in families:
        for size, (vcpu, count) in GPU_INSTANCE_SIZES.get(fam, {}).items():
            name = f"{fam}.{size}"
            fits = vcpu * 1000 - kube_reserved_cpu_m(vcpu * 1000) >= min_cpu_m
            rank = (vcpu, PRICE_PER_HOUR.get(name, 1e9))
            if count == gpus and fits and (best is None or rank < best[0]):
                best = (rank, name)
    return None if best is None else best[1]


def time_slices(pool: Any, model: Any) -> int:
    """Replicas of the model one GPU holds: the pool's time-slices for a `sharedGpu` model, else 1."""
    return pool.slices_per_gpu if getattr(model, "shared_gpu", False) else 1


def instance_for(pool: Any, model: Any) -> Optional[str]:
    """The instance a model's replicas are priced at: the smallest of its pool that holds its GPUs; for a model on
    time-slices, the smallest 1-GPU instance whose CPU holds every slice of its GPU (what Karpenter launches when that
    many replicas are pending at once)."""
    slices = time_slices(pool, model)
    return smallest_instance(list(pool.instance_families), model.gpus,
                             parse_cpu_m(model.cpu) * slices if slices > 1 else 0)


class ModelPrice(NamedTuple):
    """What an hour of one GPU of a model costs, and which instance and pool that assumes."""

    pool: str
    instance_type: str
    capacity_type: str
    """The capacity type the pool buys first (spot when it may buy spot); priced at PRICE_BASIS all the same."""
    usd_per_gpu_hour: float
    time_slices: int
    """Replicas sharing one GPU (1: whole GPUs); a replica holds 1/time_slices of a GPU."""


def model_price(cfg: Any, model: Any) -> Optional[ModelPrice]:
    """The price per GPU-hour of the model's replicas: its instance's price divided by the instance's GPUs; None
    when the table has no price for that instance."""
    pool = next(p for p in cfg.gpu.pools if p.name == model.pool)
    itype = instance_for(pool, model)
    if itype is None or itype not in PRICE_PER_HOUR:
        return None
    caps = [c.value for c in pool.capacity_types]
    capacity = CapacityType.SPOT.value if CapacityType.SPOT.value in caps else caps[0]
    return ModelPrice(pool.name, itype, capacity, round(PRICE_PER_HOUR[itype] / model.gpus, 6),
                      time_slices(pool, model))
