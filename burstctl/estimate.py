"""Time to first token from zero GPU nodes, phase by phase, and the GPU cost of one cold start, for a stack file.

Every constant is a `Figure` with its value, unit, kind and source: `measured` (a published measurement, named),
`spec` (a vendor specification), `config` (read from the stack) or `estimate` (ours, where nothing is published;
said so). Each phase shows the formula it used, so a reader can redo the arithmetic. Two paths are compared:

- `baseline`: what a cold start costs without this project's acceleration: the image pulled by containerd
  (sequential layers) from Docker Hub, weights downloaded from the Hub and then read from the node's disk, vLLM
  compiling from scratch;
- `stack`: what the stack file configures: SOCI parallel pull or a pre-loaded data-volume snapshot, weights
  streamed from the model store by the Run:ai streamer, the compile cache when enabled.
"""

import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Optional

from burstctl.output import BadInput
from burstctl.program import stack_config_prices

# -- published and specified figures ------------------------------------------------------------------------------
BLUEPRINT = ("aws-samples/karpenter-blueprints@529b88c blueprints/soci-snapshotter/README.md (\"Results\": vLLM DLC "
             "image, 9,354,342,327 bytes, instances with >8 Gbps network and EBS bandwidth)")
RUNAI = ("run-ai/runai-model-streamer@ccb9454 docs/src/benchmarks.md (Meta-Llama-3-8B, 15 GB, g5.12xlarge using 1 of "
         "its A10Gs, vLLM 0.5.5, streamer 0.6.0)")
AWS_DEMO = ("chrismld/ai-on-eks-demos@cc4bc40 demos/vllm-autoscaling/docs/INFERENCE-ON-EKS.md \"Example: vLLM Cold "
            "Start Breakdown\": node provisioning ~47 s (Spot launch + node registration), one capture on g5.2xlarge; "
            "the ~45 s in the same page's \"Optimized Cold Start\" list is a budget, not a measurement")
COMPILE = ("vllm-project/vllm PR #37198 (merged 2026-03-16, mega AOT artifact on for torch>=2.12): torch.compile of "
           "the `llama` config, meta-llama/Llama-3.3-70B-Instruct TP4 (zhxchen17/scripts@4481a5b "
           "vllm/configs/llama.toml; the bench sets cudagraph_mode=none, so CUDA-graph capture is not in it), cold "
           "27.07 s, warm 3.86 s (7.19 s before the change). Llama-3.1-8B shares the architecture with fewer layers "
           "(32 vs 80), so for it this is an upper bound; hardware not published (a developer machine), and the "
           "4-vCPU xlarge sizes compile slower, so the cold figure is optimistic for them")
EC2_SPECS = "docs.aws.amazon.com/ec2/latest/instancetypes/ac.html (network bandwidth, 'up to' = burst)"
NAT_PRICES = "aws.amazon.com/vpc/pricing (NAT gateway data processing, us-east-1/us-west-2)"
NAT_USD_PER_GB = 0.045
EBS_INIT = ("docs.aws.amazon.com/ebs/latest/userguide/initalize-volume.html: with a Provisioned Rate for Volume "
            "Initialization (100-300 MiB/s) \"the snapshot blocks are downloaded from Amazon S3 and written to the volume "
            "at the specified rate after creation\"; without one the default rate \"fluctuates\"")
EBS_DEFAULT_RATE = ("repost.aws/articles/ARAkrDcHieSsSYOPHL3ZJYeg \"Speeding up large EBS volume initialization during "
                    "AWS MGN migrations\": gp3 130-140 MB/s measured during initialization (midpoint taken)")
KUBELET_STATUS = ("kubernetes.io/docs/reference/config-api/kubelet-config.v1beta1 nodeStatusUpdateFrequency (how often "
                  "the kubelet computes node status, default 10s; a change is posted at once); the stack does not "
                  "set it")
KUBELET_READINESS = ("kubernetes/kubernetes pkg/kubelet/prober/prober_manager.go UpdatePodStatus: a started container "
                     "without a readiness result gets an immediate readiness run (\"Trigger an immediate run of the "
                     "readinessProbe\"), so the readiness period is not waited for on the cold path")

IMAGE_MEASURED_GB = 9.354
IMAGE_PULL_S = {"containerd": 130.813, "soci-al2023": 39.553, "soci-bottlerocket": 23.229}
"""Measured pull times of that 9.35 GB image (kubelet `Pulled ... in`), per pull path."""
RUNAI_S3_GBPS = 15.0 / 4.88
"""Run:ai streamer from S3 at concurrency 32: 15 GB loaded to the GPU in 4.88 s (3.07 GB/s), Appendix C."""
RUNAI_READY_S = 23.18
"""Same benchmark, Appendix D: vLLM 0.5.5 ready for requests 23.18 s with the S3 streamer; minus the 4.88 s of
weights that is 18.3 s of engine work: process start, model init, memory profiling, KV-cache allocation and CUDA-graph
capture. vLLM 0.5.5 did not torch.compile by default, so compilation is added on top, not counted twice."""
LOCAL_SAFETENSORS_S = 47.99
"""Same benchmark, Appendix A: the Hugging Face safetensors loader read the 15 GB from gp3 (16,000 IOPS,
1,000 MiB/s) to the GPU in 47.99 s (47.56 s is the streamer at concurrency 1, not the default loader)."""
COMPILE_COLD_S, COMPILE_WARM_S = 27.07, 3.86
"""torch.compile cold / from the mega AOT artifact (vllm 0.33.0 pins torch==2.14.0, so `use_aot_compile()` (torch
>= 2.10) and `use_mega_aot_artifact()` (torch >= 2.12 with AOT) are on by default: vllm 0.33.0 envs.py:379,391)."""
NODE_READY_S = 47.0
KARPENTER_BATCH_IDLE_S = 1.0
"""Karpenter `BATCH_IDLE_DURATION` default (karpenter.sh v1.14 reference/settings.md)."""
NODE_STATUS_UPDATE_S = 10.0
"""kubelet nodeStatusUpdateFrequency default: a device plugin's `nvidia.com/gpu` shows in the node's allocatable at the
next status computation, on average half of it after the plugin registered."""
EBS_DEFAULT_INIT_BPS = 135e6
"""Measured gp3 initialization throughput without a provisioned rate (130-140 MB/s)."""

NETWORK_GBPS = {"g5.xlarge": 10, "g5.2xlarge": 10, "g5.4xlarge": 25, "g5.8xlarge": 25, "g5.12xlarge": 40,
                "g5.16xlarge": 25, "g5.24xlarge": 50, "g5.48xlarge": 100,
                "g6.xlarge": 10, "g6.2xlarge": 10, "g6.4xlarge": 25, "g6.8xlarge": 25, "g6.12xlarge": 40,
                "g6.16xlarge": 25, "g6.24xlarge": 50, "g6.48xlarge": 100,
                "g6e.xlarge": 20, "g6e.2xlarge": 20, "g6e.4xlarge": 20, "g6e.8xlarge": 25, "g6e.12xlarge": 100,
                "g6e.16xlarge": 35, "g6e.24xlarge": 200, "g6e.48xlarge": 400}
"""Peak ("up to" burst) network bandwidth in Gbit/s; the baseline of the smallest sizes is lower."""
EBS_MAX_MBPS = {"g5.xlarge": 3500, "g5.2xlarge": 3500, "g5.4xlarge": 4750, "g5.8xlarge": 16000, "g5.12xlarge": 16000,
                "g5.16xlarge": 16000, "g5.24xlarge": 19000, "g5.48xlarge": 19000,
                "g6.xlarge": 5000, "g6.2xlarge": 5000, "g6.4xlarge": 8000, "g6.8xlarge": 16000, "g6.12xlarge": 20000,
                "g6.16xlarge": 20000, "g6.24xlarge": 30000, "g6.48xlarge": 60000,
                "g6e.xlarge": 5000, "g6e.2xlarge": 5000, "g6e.4xlarge": 8000, "g6e.8xlarge": 16000,
                "g6e.12xlarge": 20000, "g6e.16xlarge": 20000, "g6e.24xlarge": 30000, "g6e.48xlarge": 60000}
"""Maximum (burst) EBS bandwidth per instance in Mbit/s: EC2 DescribeInstanceTypes EbsOptimizedInfo.
MaximumBandwidthInMbps, as Karpenter labels it (`karpenter.k8s.aws/instance-ebs-bandwidth`). The xlarge-4xlarge
sizes sustain less (their baseline); a fresh node is taken to have its burst, so the bound it gives is optimistic."""
EBS_BANDWIDTH = ("aws/karpenter-provider-aws@v1.14.1 website/content/en/docs/reference/instance-types.md "
                 "(karpenter.k8s.aws/instance-ebs-bandwidth = DescribeInstanceTypes MaximumBandwidthInMbps)")
GP3_THROUGHPUT = "gpu.volumeThroughputMibps (gp3 provisioned throughput of the volume the image unpacks onto)"


# -- our own estimates (nothing published) --------------------------------------------------------------------------
TRIGGER_S = 1.0
"""Interceptor -> KEDA external-push -> Deployment 0->1 -> pod Pending (a watch and a few API writes)."""
DEVICE_PLUGIN_START_S = {"al2023": 5.0, "bottlerocket": 1.0}
"""Node Ready -> device plugin registered with the kubelet: on AL2023 the NVIDIA device-plugin DaemonSet pod is
scheduled, its image pulled and started; Bottlerocket's plugin is a host service that registers as soon as the
kubelet's device-plugin socket exists. The node-status computation (NODE_STATUS_UPDATE_S / 2) comes on top."""
HUB_DOWNLOAD_GBPS = 1.0
"""Hugging Face download through a NAT gateway, optimistic (no published figure for this path)."""
SNAPSHOT_START_READ_GB = 4.0
"""Bytes of the image the engine reads while starting (Python, torch, CUDA and NCCL libraries, vLLM's kernels)."""
UNPACKED_PER_COMPRESSED = 2.0
"""Unpacked size of the image's layers per compressed byte. The snapshot's data is the compressed blobs containerd
keeps in its content store plus the unpacked layers, so (1 + 2.0) x the image size; EBS snapshots hold only written
blocks, and hydration has that much to download."""
READINESS_RUN_S = 0.5
"""One run of the exec readiness probe (runc exec + python3 start + GET /v1/models)."""
STARTUP_PLAN_S = 0.0
"""VLLM_ENABLE_STARTUP_PLAN skips the memory-profiling measurement and the CUDA-graph memory estimation pass on a boot
whose fingerprint matches (vllm 0.33.0 v1/worker/startup_plan.py, PR #47388); no saving is published, so none is
credited."""
ROUTE_S = 1.0
"""Interceptor sees the new ready endpoint and forwards the held request."""
FIRST_TOKEN_S = 0.5
"""Prefill of a short prompt on one warm A10G/L4-class GPU."""
TARGET_S = {"dev": 60.0}
"""Time-to-first-token goal from zero GPU nodes: 60 s for the dev stack's small model, 90 s otherwise."""
DEFAULT_TARGET_S = 90.0
PARAMS_RE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)[Bb](?![a-zA-Z])")
BYTES_PER_PARAM = 2  # bf16/fp16 safetensors


@dataclass(frozen=True)
class Figure:
    """One constant of the estimate and where it comes from."""

    key: str
    value: float
    unit: str
    kind: str
    """measured | spec | config | estimate"""
    source: str


@dataclass
class Phase:
    name: str
    seconds: float
    formula: str
    figures: list[Figure] = field(default_factory=list)


@dataclass
class PathEstimate:
    path: str
    description: str
    phases: list[Phase]
    nat_gb: float = 0.0
    """GB this cold start moves through the NAT gateway (billed per GB processed)."""
    nat_formula: str = ""

    @property
    def total_s(self) -> float:
        return round(sum(p.seconds for p in self.phases), 1)

    @property
    def gpu_billed_s(self) -> float:
        """Seconds the instance runs (and is billed, per second with a 60 s minimum) before the first token."""
        started = False
        total = 0.0
        for p in self.phases:
            started = started or p.name == "node launch -> Ready"
            if started:
                total += p.seconds
        return round(max(total, 60.0), 1)


@dataclass
class WindowCost:
    """One pre-warm window over the week: the hours its cron trigger is active."""

    start: str
    end: str
    timezone: str
    replicas: int
    hours: float
    gpu_hours: float
    cost_usd: Optional[float]


@dataclass
class PrewarmCost:
    """What a model's pre-warm windows buy in one week: GPUs that run whether or not a request comes."""

    week_start: str
    """Monday 00:00 UTC that starts the 7 x 24 hours counted (real elapsed time: a week with a clock change in a
    window's zone counts that window's real length)."""
    windows: list[WindowCost]
    replica_hours: float
    """Sum over the week of the largest `replicas` of the windows active at each minute (the HPA takes the largest
    proposal of the triggers, so overlapping windows do not add up)."""
    gpus_per_replica: int
    gpu_hours: float
    price_per_gpu_hour: Optional[float]
    cost_usd: Optional[float]
    closes: int
    """Times in the week the last active window closes: each is followed by the cooldown before scale to zero."""
    cooldown_s: int
    tail_gpu_hours: float
    """Lower bound of what those cooldowns add: one replica through each (more replicas wind down on the HPA's
    scale-down policy, and requests in the window restart the cooldown)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Estimate:
    model: str
    instance_type: str
    weights_gb: float
    image_gb: float
    price_per_hour: Optional[float]
    paths: list[PathEstimate]
    figures: list[Figure]
    target_s: float = DEFAULT_TARGET_S
    """Goal for the stack path's first token."""
    slices: int = 1
    """Time-slices per GPU the model's replicas share (its pool's `timeSlicing` with `sharedGpu`; 1: whole GPUs)."""
    prewarm: Optional[PrewarmCost] = None
    """The model's scheduled pre-warm windows, priced (None without windows)."""

    def cost(self, path: PathEstimate) -> Optional[float]:
        if self.price_per_hour is None:
            return None
        return round(path.gpu_billed_s * self.price_per_hour / 3600, 4)

    def slice_cost(self, path: PathEstimate) -> Optional[float]:
        """This model's share of the node's cost when every slice of its GPU serves a replica."""
        c = self.cost(path)
        return None if c is None else round(c / self.slices, 4)

    @property
    def free_slice_s(self) -> Optional[float]:
        """First token when a replica lands on a node of the pool that is already up and has a free slice: no node
        launch, no device plugin start, the image already on the node; weights, engine and routing as on the stack
        path. None for whole GPUs (a replica's GPU is never on a running node)."""
        if self.slices == 1:
            return None
        skip = ("node launch -> Ready", "Ready -> GPU allocatable")
        return round(sum(p.seconds for p in self.paths[-1].phases
                         if p.name not in skip and not p.name.startswith("image")), 1)

    def nat_cost(self, path: PathEstimate) -> float:
        return round(path.nat_gb * NAT_USD_PER_GB, 4)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "instance_type": self.instance_type, "weights_gb": self.weights_gb,
            "image_gb": self.image_gb, "price_per_hour_usd": self.price_per_hour, "target_s": self.target_s,
            "target_met": self.paths[-1].total_s <= self.target_s,
            "time_slices": self.slices, "free_slice_first_token_s": self.free_slice_s,
            "paths": [{"path": p.path, "description": p.description, "total_s": p.total_s,
                       "gpu_billed_s": p.gpu_billed_s, "cost_usd": self.cost(p), "slice_cost_usd": self.slice_cost(p),
                       "nat_gb": round(p.nat_gb, 2), "nat_cost_usd": self.nat_cost(p),
                       "phases": [{"phase": ph.name, "seconds": round(ph.seconds, 1), "formula": ph.formula,
                                   "figures": [f.key for f in ph.figures]} for ph in p.phases]}
                      for p in self.paths],
            "figures": [asdict(f) for f in self.figures],
            "prewarm": self.prewarm.as_dict() if self.prewarm else None,
        }


def _fig(key: str, value: float, unit: str, kind: str, source: str) -> Figure:
    return Figure(key, value, unit, kind, source)


def weights_gb_of(hf_model_id: str) -> float:
    """bf16 weight bytes from the parameter count in the model id (`...-8B-...` -> 16 GB)."""
    m = PARAMS_RE.search(hf_model_id.split("/")[-1])
    if not m:
        raise BadInput(f"--weights-gb: cannot tell the size of '{hf_model_id}' from its name; pass --weights-gb")
    return round(float(m.group(1)) * BYTES_PER_PARAM, 2)


def default_instance(cfg: Any, model: Any) -> str:
    """Smallest instance of the model's pool that holds its GPUs (what Karpenter's price ordering picks first). For a
    model on time-slices: the smallest 1-GPU instance whose CPU holds all the slices of its GPU, which is what
    Karpenter launches when that many replicas are pending at once. The usage recording rules price the model's GPU
    time at the same instance."""
    pool = next(p for p in cfg.gpu.pools if p.name == model.pool)
    name = stack_config_prices().instance_for(pool, model)
    if name is None:
        slices = pool.slices_per_gpu if getattr(model, "shared_gpu", False) else 1
        what = f"{model.gpus} GPUs" + (f" and room for {slices} slices of {model.cpu} CPU" if slices > 1 else "")
        raise BadInput(f"--model: no instance of pool '{pool.name}' has {what}; pass --instance-type")
    return name


def snapshot_image_seconds(rate_bps: float, boot_s: float, image_gb: float, start_read_gb: float = SNAPSHOT_START_READ_GB,
                           unpacked_per_compressed: float = UNPACKED_PER_COMPRESSED) -> tuple[float, float]:
    """(seconds the engine's start-time reads wait for un-hydrated blocks, share of the snapshot hydrated by then).

    The data volume is created with the instance, and EBS downloads the snapshot's blocks from S3 from then on
    (at the provisioned rate, or the fluctuating default), so by the time the container starts `rate x boot` bytes of
    the snapshot's `image x (1 + unpacked/compressed)` bytes are on the volume. The blocks' download order is not
    documented, so the start-time reads are taken to hit un-hydrated blocks in proportion to the share still in S3;
    those are fetched on demand, taken at the same rate. Hydration that continues while the weights load is not
    counted (an upper bound)."""
    snapshot_bytes = image_gb * (1 + unpacked_per_compressed) * 1e9
    hydrated = min(1.0, rate_bps * boot_s / snapshot_bytes)
    return start_read_gb * 1e9 * (1 - hydrated) / rate_bps, hydrated


def ebs_unpack_seconds(image_gb: float, volume_mibps: int, ebs_mbps: float,
                       unpacked_per_compressed: float = UNPACKED_PER_COMPRESSED) -> float:
    """Least time to write an image's unpacked layers (`image x unpacked/compressed`) onto the EBS volume: at most the
    volume's gp3 throughput and the instance's EBS bandwidth, whichever is lower. Writes of the downloaded blobs
    (SOCI buffers them on disk) are not counted, so this is a lower bound."""
    return image_gb * unpacked_per_compressed * 1e9 / min(volume_mibps * 2**20, ebs_mbps * 1e6 / 8)


WEEK_MINUTES = 7 * 24 * 60


def week_start(day: date) -> datetime:
    """Monday 00:00 UTC of the ISO week that holds `day`."""
    monday = day - timedelta(days=day.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=timezone.utc)


def instance_gpus(itype: str) -> Optional[int]:
    from burstctl.program import stack_config_gpu

    family, _, size = itype.partition(".")
    found = stack_config_gpu().GPU_INSTANCE_SIZES.get(family, {}).get(size)
    return found[1] if found else None


def prewarm_cost(model: Any, itype: str, price: Optional[float], week_of: date) -> Optional[PrewarmCost]:
    """GPU-hours and dollars the model's pre-warm windows cost in the week of `week_of`.

    Each window's minutes come from the cron scaler's own rule (stacks/config/cron.py `active_minutes`: next start
    vs next end, firings at wall-clock times in the window's zone), walked minute by minute over the real 7 x 24 hours
    from Monday 00:00 UTC, so a clock change inside a window counts the hour it gains or loses. Inside a window the
    model runs at least `replicas` replicas on nodes of `itype` (`gpus` GPUs per replica, priced per GPU-hour)."""
    if not getattr(model, "prewarm", None):
        return None
    from zoneinfo import ZoneInfo

    from burstctl.program import stack_config_cron
    cron = stack_config_cron()

    begin = week_start(week_of)
    per_gpu = None
    if price is not None:
        per_gpu = price / (instance_gpus(itype) or model.gpus)
    floor = [0] * WEEK_MINUTES
    windows = []
    for w in model.prewarm:
        active = cron.active_minutes(cron.parse(w.start), cron.parse(w.end), ZoneInfo(w.timezone), begin,
                                     WEEK_MINUTES)
        for k, on in enumerate(active):
            if on and w.replicas > floor[k]:
                floor[k] = w.replicas
        hours = sum(active) / 60
        gpu_hours = hours * w.replicas * model.gpus
        windows.append(WindowCost(w.start, w.end, w.timezone, w.replicas, round(hours, 2), round(gpu_hours, 2),
                                  round(gpu_hours * per_gpu, 2) if per_gpu is not None else None))
    replica_hours = sum(floor) / 60
    gpu_hours = replica_hours * model.gpus
    # A close: the minute after the last active window ends (the week wraps: the pattern of a week repeats).
    closes = sum(1 for k in range(WEEK_MINUTES) if floor[k - 1] and not floor[k])
    tail = closes * model.idle_seconds / 3600 * model.gpus
    return PrewarmCost(
        week_start=begin.isoformat(), windows=windows, replica_hours=round(replica_hours, 2),
        gpus_per_replica=model.gpus, gpu_hours=round(gpu_hours, 2),
        price_per_gpu_hour=round(per_gpu, 4) if per_gpu is not None else None,
        cost_usd=round(gpu_hours * per_gpu, 2) if per_gpu is not None else None,
        closes=closes, cooldown_s=model.idle_seconds, tail_gpu_hours=round(tail, 2))


def estimate(cfg: Any, model: Any, instance_type: Optional[str] = None, weights_gb: Optional[float] = None,
             image_gb: float = 10.0, week_of: Optional[date] = None) -> Estimate:
    """Per-phase estimate for one model of a validated StackConfig (and, for a model with pre-warm windows, what
    they cost in the week of `week_of`, default this week)."""
    itype = instance_type or default_instance(cfg, model)
    if itype not in NETWORK_GBPS:
        raise BadInput(f"--instance-type: no network figure for '{itype}'; allowed: {', '.join(sorted(NETWORK_GBPS))}")
    wgb = weights_gb if weights_gb is not None else weights_gb_of(model.hf_model_id)
    gpu = cfg.gpu
    family = gpu.ami_family.value
    net_gbps = NETWORK_GBPS[itype]
    net_GBps = net_gbps / 8

    def plugin_fig(fam: str) -> Figure:
        how = ("the device-plugin DaemonSet pod scheduled at Ready, pulled, started, registered" if fam == "al2023"
               else "the host's built-in plugin registers once the kubelet's socket exists")
        return _fig(f"device_plugin_start_{fam}", DEVICE_PLUGIN_START_S[fam], "s", "estimate", f"ours: {how}")

    f = {
        "trigger": _fig("trigger", TRIGGER_S, "s", "estimate", "ours: interceptor push + Deployment scale + pod create"),
        "batch": _fig("karpenter_batch_idle", KARPENTER_BATCH_IDLE_S, "s", "spec",
                      "Karpenter v1.14 settings BATCH_IDLE_DURATION default"),
        "node": _fig("node_ready", NODE_READY_S, "s", "measured", AWS_DEMO),
        "status": _fig("node_status_update", NODE_STATUS_UPDATE_S, "s", "spec", KUBELET_STATUS + " (half on average)"),
        "image_gb": _fig("image_size", image_gb, "GB", "estimate", "vLLM OpenAI image, ~10 GB (scales the pull times)"),
        "unpacked": _fig("unpacked_per_compressed", UNPACKED_PER_COMPRESSED, "x", "estimate",
                         "ours: unpacked layer bytes per compressed byte (snapshot = blobs + unpacked layers)"),
        "pull_containerd": _fig("pull_containerd", IMAGE_PULL_S["containerd"], "s", "measured", BLUEPRINT),
        "pull_soci": _fig(f"pull_soci_{family}", IMAGE_PULL_S[f"soci-{family}"], "s", "measured", BLUEPRINT),
        "weights_gb": _fig("weights_size", wgb, "GB", "config" if weights_gb is not None else "estimate",
                           "--weights-gb" if weights_gb is not None else
                           f"{model.hf_model_id}: parameters in the name x 2 bytes (bf16)"),
        "net": _fig(f"network_{itype}", net_gbps, "Gbit/s", "spec", EC2_SPECS),
        "runai": _fig("runai_s3_rate", round(RUNAI_S3_GBPS, 2), "GB/s", "measured", RUNAI + ", Appendix C: S3, "
                      "concurrency 32, 15 GB in 4.88 s"),
        "hub": _fig("hub_download", HUB_DOWNLOAD_GBPS, "GB/s", "estimate", "ours, optimistic: no published figure"),
        "local": _fig("local_safetensors", LOCAL_SAFETENSORS_S, "s per 15 GB", "measured",
                      RUNAI + ", Appendix A: gp3, Hugging Face safetensors loader"),
        "engine": _fig("engine_work", round(RUNAI_READY_S - 15.0 / RUNAI_S3_GBPS, 1), "s", "measured",
                       RUNAI + ", Appendix D: vLLM ready 23.18 s minus 4.88 s weights = model init, memory profiling, "
                       "KV cache, CUDA-graph capture (no torch.compile in vLLM 0.5.5)"),
        "compile_cold": _fig("compile_cold", COMPILE_COLD_S, "s", "measured", COMPILE),
        "compile_warm": _fig("compile_warm", COMPILE_WARM_S, "s", "measured", COMPILE),
        "plan": _fig("startup_plan", STARTUP_PLAN_S, "s", "estimate",
                     "ours: VLLM_ENABLE_STARTUP_PLAN=1 (vllm PR #47388) skips memory profiling on a matching boot; "
                     "no published saving, none credited"),
        "readiness_run": _fig("readiness_run", READINESS_RUN_S, "s", "estimate",
                              "ours: one exec readiness probe, run at once after startup succeeds: " + KUBELET_READINESS),
        "route": _fig("route", ROUTE_S, "s", "estimate", "ours: interceptor endpoint watch"),
        "token": _fig("first_token", FIRST_TOKEN_S, "s", "estimate", "ours: short prompt prefill on a warm GPU"),
    }
    from burstctl.program import model_service
    PROBE_PERIOD_SECONDS, READINESS_PERIOD_SECONDS = (model_service().PROBE_PERIOD_SECONDS,
                                                      model_service().READINESS_PERIOD_SECONDS)

    f["probe"] = _fig("startup_probe_period", PROBE_PERIOD_SECONDS, "s", "config",
                      "ModelService startupProbe periodSeconds (half on average)")
    f["ready"] = _fig("readiness_probe_period", READINESS_PERIOD_SECONDS, "s", "config",
                      "ModelService readinessProbe periodSeconds: waited for only when the first run after startup "
                      "fails, so not on the cold path")
    scale = image_gb / IMAGE_MEASURED_GB

    def gpu_allocatable_s(fam: str) -> float:
        return DEVICE_PLUGIN_START_S[fam] + NODE_STATUS_UPDATE_S / 2

    def common_head(fam: str) -> list[Phase]:
        return [
            Phase("scale-from-zero trigger", TRIGGER_S + KARPENTER_BATCH_IDLE_S, "trigger + Karpenter batch idle",
                  [f["trigger"], f["batch"]]),
            Phase("node launch -> Ready", NODE_READY_S, "published (one capture)", [f["node"]]),
            Phase("Ready -> GPU allocatable", gpu_allocatable_s(fam),
                  "device plugin registered + kubelet node-status period/2", [plugin_fig(fam), f["status"]]),
        ]

    def common_tail() -> list[Phase]:
        return [
            Phase("ready -> request routed", PROBE_PERIOD_SECONDS / 2 + READINESS_RUN_S + ROUTE_S,
                  "startup period/2 + one readiness run + route",
                  [f["probe"], f["readiness_run"], f["ready"], f["route"]]),
            Phase("first token", FIRST_TOKEN_S, "estimate", [f["token"]]),
        ]

    # baseline: AL2023, containerd pull, Hub download + local read, no compile cache
    base_weights = wgb / min(HUB_DOWNLOAD_GBPS, net_GBps) + LOCAL_SAFETENSORS_S * wgb / 15.0
    baseline = PathEstimate("baseline", "containerd pull from Docker Hub, weights from the Hub, cold compile", [
        *common_head("al2023"),
        Phase("image pull", IMAGE_PULL_S["containerd"] * scale, "containerd pull x image/9.35 GB",
              [f["pull_containerd"], f["image_gb"]]),
        Phase("weights in GPU", base_weights, "weights / min(hub, network) + 47.99 s x weights/15 GB",
              [f["weights_gb"], f["hub"], f["net"], f["local"]]),
        Phase("engine init", f["engine"].value + COMPILE_COLD_S, "engine work + cold torch.compile",
              [f["engine"], f["compile_cold"]]),
        *common_tail(),
    ])

    # the stack: image path from the GPU config, weights from the store, compile cache when configured.
    # Any truthy snapshot setting (an id, or "auto": the stack looks the snapshot up) means the snapshot path.
    if gpu.data_volume_snapshot_id:
        provisioned = gpu.volume_initialization_rate_mibps
        rate_bps = provisioned * 2**20 if provisioned else EBS_DEFAULT_INIT_BPS
        rate_fig = (_fig("snapshot_init_rate", provisioned, "MiB/s", "config",
                         "gpu.volumeInitializationRateMibps (EBS Provisioned Rate for Volume Initialization): "
                         + EBS_INIT) if provisioned else
                    _fig("snapshot_init_rate", EBS_DEFAULT_INIT_BPS / 1e6, "MB/s", "measured", EBS_DEFAULT_RATE))
        boot_s = NODE_READY_S + gpu_allocatable_s(family)
        seconds, hydrated = snapshot_image_seconds(rate_bps, boot_s, image_gb)
        image = Phase("image (data-volume snapshot)", seconds,
                      f"start reads x un-hydrated share ({1 - hydrated:.0%}: rate x (Ready + GPU allocatable) of "
                      f"image x (1 + unpacked ratio) is on the volume) / rate",
                      [_fig("snapshot_start_read", SNAPSHOT_START_READ_GB, "GB", "estimate",
                            "ours: image bytes read while the engine starts"),
                       f["unpacked"],
                       f["image_gb"], rate_fig])
    else:
        # The measured pulls ran with `instanceStorePolicy: RAID0` (SOCI) or a 1,000 MiB/s gp3 volume on instances
        # with > 8 Gbit/s of EBS bandwidth (BLUEPRINT). Without the NVMe array the unpacked layers land on this
        # stack's volume, whose throughput and the instance's EBS bandwidth bound the pull from below.
        raid0 = gpu.instance_store_raid0(None)
        soci = gpu.fast_image_pull
        name = f"image pull (SOCI parallel, {family})" if soci else "image pull"
        measured_s = IMAGE_PULL_S[f"soci-{family}" if soci else "containerd"] * scale
        pull_fig = f["pull_soci"] if soci else f["pull_containerd"]
        if raid0:
            image = Phase(name, measured_s, f"{'SOCI' if soci else 'containerd'} pull x image/9.35 GB (unpacked "
                          "onto the NVMe instance store)", [pull_fig, f["image_gb"]])
        else:
            ebs_mbps = EBS_MAX_MBPS.get(itype)
            if ebs_mbps is None:
                raise BadInput(f"--instance-type: no EBS bandwidth figure for '{itype}'; allowed: "
                               f"{', '.join(sorted(EBS_MAX_MBPS))}")
            bound_s = ebs_unpack_seconds(image_gb, gpu.volume_throughput_mibps, ebs_mbps)
            image = Phase(name, max(measured_s, bound_s),
                          f"max(measured pull x image/9.35 GB = {measured_s:.1f} s, image x unpacked ratio / "
                          f"min(volume throughput, instance EBS bandwidth) = {bound_s:.1f} s)",
                          [pull_fig, f["image_gb"],
                           f["unpacked"],
                           _fig("volume_throughput", gpu.volume_throughput_mibps, "MiB/s", "config", GP3_THROUGHPUT),
                           _fig(f"ebs_bandwidth_{itype}", ebs_mbps, "Mbit/s", "spec", EBS_BANDWIDTH)])
    stream_rate = min(RUNAI_S3_GBPS, net_GBps)
    cache = model.compile_cache
    compile_fig = f["compile_warm"] if cache else f["compile_cold"]
    stack = PathEstimate("stack", "this stack file: " + ", ".join(filter(None, [
        ("data-volume snapshot" + (" (auto: once one is built; until then the nodes pull)"
                                   if gpu.data_volume_snapshot_id == "auto" else ""))
        if gpu.data_volume_snapshot_id else ("SOCI parallel pull" if gpu.fast_image_pull else "containerd pull")
        + (" onto the NVMe instance store" if gpu.instance_store_raid0(None) else " onto EBS"),
        "Run:ai streamer from the model store", "compile cache" if cache else "cold compile"])), [
        *common_head(family),
        image,
        Phase("weights in GPU", wgb / stream_rate, "weights / min(streamer S3 rate, instance network)",
              [f["weights_gb"], f["runai"], f["net"]]),
        Phase("engine init", f["engine"].value + compile_fig.value + STARTUP_PLAN_S,
              "engine work + torch.compile " + ("from the mega AOT artifact" if cache else "cold")
              + " + startup plan (0 s credit)", [f["engine"], compile_fig, f["plan"]]),
        *common_tail(),
    ])
    # NAT data processing: the baseline pulls the image from Docker Hub and the weights from the Hub through the NAT;
    # the stack sends S3 traffic (model store, ECR layers of a pull-through cache) through the gateway endpoint.
    endpoint = cfg.network.creates_s3_gateway_endpoint
    baseline.nat_gb, baseline.nat_formula = image_gb + wgb, "image + weights"
    image_nat = 0.0 if gpu.data_volume_snapshot_id else (image_gb if not (gpu.image_cache and endpoint) else 0.0)
    stack.nat_gb = image_nat + (0.0 if endpoint else wgb)
    stack.nat_formula = " + ".join(filter(None, [
        # With the pull-through cache but no S3 gateway endpoint, the layers come from ECR's S3 through the NAT.
        ("image (ECR pull-through cache)" if gpu.image_cache else "image (Docker Hub)") if image_nat else "",
        "" if endpoint else "weights (no S3 gateway endpoint the stack knows of)"])) or "nothing (S3 gateway endpoint)"
    table = stack_config_prices()
    price = table.PRICE_PER_HOUR.get(itype)
    figures = list({fig.key: fig for p in (baseline, stack) for ph in p.phases for fig in ph.figures}.values())
    figures.append(_fig("nat_processing", NAT_USD_PER_GB, "USD/GB", "spec", NAT_PRICES))
    if price is not None:
        figures.append(_fig(f"price_{itype}", price, "USD/h", "spec", table.EC2_PRICES))
    pool = next(p for p in gpu.pools if p.name == model.pool)
    slices = pool.slices_per_gpu if getattr(model, "shared_gpu", False) else 1
    return Estimate(model=model.served_name, instance_type=itype, weights_gb=wgb, image_gb=image_gb,
                    price_per_hour=price, paths=[baseline, stack], figures=figures,
                    target_s=TARGET_S.get(cfg.environment, DEFAULT_TARGET_S), slices=slices,
                    prewarm=prewarm_cost(model, itype, price,
                                         week_of or datetime.now(timezone.utc).date()))


def load_stack(path: Any) -> Any:
    """The validated stack file. No secret is read or needed: a gated model's token only matters to staging."""
    from burstctl import preflight as pf
    from burstctl.program import stack_config
    ConfigError, validate = stack_config().ConfigError, stack_config().validate

    raw = pf.read_stack_file(path)
    raw["hfTokenSet"] = True
    if not raw["region"]:
        raise BadInput(f"--stack-file: {path} sets no aws:region")
    try:
        return validate(raw)
    except ConfigError as e:
        raise BadInput(f"--stack-file: {path} is not a valid stack configuration:\n  " + "\n  ".join(e.lines)) \
            from None


def pick_model(cfg: Any, served_name: Optional[str]) -> Any:
    if not cfg.models:
        raise BadInput("--stack-file: the stack configures no models (gpu-burst:models)")
    if served_name is None:
        return cfg.models[0]
    for m in cfg.models:
        if m.served_name == served_name:
            return m
    raise BadInput(f"--model: '{served_name}' is not a model of the stack; allowed: "
                   f"{', '.join(m.served_name for m in cfg.models)}")


def render(est: Estimate, console: Any) -> None:
    """Readable tables: phases side by side, then every figure with its source."""
    from rich.table import Table

    base, stack = est.paths
    t = Table(title=f"cold start from zero GPU nodes: {est.model} on {est.instance_type} "
                    f"(weights {est.weights_gb:g} GB, image {est.image_gb:g} GB)", title_justify="left")
    t.add_column("phase")
    t.add_column("baseline", justify="right")
    t.add_column("this stack", justify="right")
    t.add_column("how")
    for i, sp in enumerate(stack.phases):
        bp = base.phases[i]
        t.add_row(sp.name if sp.name == bp.name else f"{bp.name} / {sp.name}", f"{bp.seconds:.1f} s",
                  f"{sp.seconds:.1f} s", sp.formula)
    t.add_row("[bold]first token after[/]", f"[bold]{base.total_s:.1f} s[/]", f"[bold]{stack.total_s:.1f} s[/]", "")
    bc, sc = est.cost(base), est.cost(stack)
    if bc is not None:
        t.add_row("GPU cost per cold start", f"${bc:.4f}", f"${sc:.4f}",
                  f"billed launch -> first token x ${est.price_per_hour}/h")
        if est.slices > 1:
            t.add_row(f"  per slice (1 of {est.slices})", f"${est.slice_cost(base):.4f}",
                      f"${est.slice_cost(stack):.4f}", f"GPU cost / {est.slices}: every slice of the GPU serves a replica")
    t.add_row("NAT data per cold start", f"${est.nat_cost(base):.4f}", f"${est.nat_cost(stack):.4f}",
              f"{stack.nat_formula} ({stack.nat_gb:g} GB) x ${NAT_USD_PER_GB}/GB")
    if est.free_slice_s is not None:
        t.add_row("first token on a running node", "", f"{est.free_slice_s:.1f} s",
                  "a free slice on a node already up: no launch, device plugin or image pull")
    console.print(t)
    s = Table(title="figures", title_justify="left")
    for col in ("figure", "value", "kind", "source"):
        s.add_column(col)
    for fig in est.figures:
        s.add_row(fig.key, f"{fig.value:g} {fig.unit}", fig.kind, fig.source)
    console.print(s)
    console.print(f"stack path: {stack.description}; target {est.target_s:g} s: "
                  + ("[green]met[/]" if stack.total_s <= est.target_s else f"[yellow]not met by these figures "
                                                                            f"({stack.total_s:.0f} s)[/]"))
    if est.prewarm:
        render_prewarm(est.prewarm, est.instance_type, console)


def render_prewarm(p: PrewarmCost, itype: str, console: Any) -> None:
    from rich.table import Table

    def usd(v: Optional[float]) -> str:
        return f"${v:,.2f}" if v is not None else "no price"

    t = Table(title=f"scheduled pre-warm: GPUs bought without a request, week from {p.week_start[:10]} (UTC)",
              title_justify="left")
    for col, just in (("start", "left"), ("end", "left"), ("timezone", "left"), ("replicas", "right"),
                      ("hours/week", "right"), ("GPU-hours/week", "right"), ("cost/week", "right")):
        t.add_column(col, justify=just)
    for w in p.windows:
        t.add_row(w.start, w.end, w.timezone, str(w.replicas), f"{w.hours:g}", f"{w.gpu_hours:g}", usd(w.cost_usd))
    t.add_row("[bold]all windows[/]", "", "", "max", f"{p.replica_hours:g} replica-h",
              f"[bold]{p.gpu_hours:g}[/]", f"[bold]{usd(p.cost_usd)}[/]")
    console.print(t)
    price = f"${p.price_per_gpu_hour}/GPU-hour ({itype} on-demand)" if p.price_per_gpu_hour is not None else "no price"
    console.print(f"{p.gpus_per_replica} GPU(s) per replica at {price}; overlapping windows count once, at the larger "
                  f"replicas. After each of the {p.closes} closes a week, at least one replica stays for the cooldown "
                  f"({p.cooldown_s} s): +{p.tail_gpu_hours:g} GPU-hours or more.")
