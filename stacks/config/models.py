"""Config sections for the inference workload: the models (`gpu-burst:models`) and the gateway (`gpu-burst:gateway`)."""

import ipaddress
import json
import re
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from . import cron
from .component_constants import model_route, model_service
from .base import (Cidr, CpuQuantity, Duration, MemoryQuantity, Problems, Strict, duration_seconds, pattern_type,
                   quantity_value, repeats)
from .global_dns import GlobalDnsConfig, gateway_problems

VLLM_VERSION = "0.33.0"
"""vLLM release the image pin and every flag/env name below were checked against (the vllm 0.33.0 wheel on PyPI,
which `pip index versions vllm` lists as the newest release; tag v0.33.0 of vllm-project/vllm)."""
VLLM_IMAGE = f"vllm/vllm-openai:v{VLLM_VERSION}"
"""Pinned vLLM OpenAI-server image. Like 0.29 (torch 2.13) the 0.33 wheel (torch 2.14) links libcudart.so.13, which
needs an NVIDIA driver >= 580 (the AL2023/Bottlerocket NVIDIA AMIs ship 580); use the `-cu129` variant on older
drivers."""

_SERVED_NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""A DNS-1035 label: the served name also names the Deployment, Service, InterceptorRoute and ScaledObject, so the
PromQL, dashboards and alerts can refer to it without a lookup table."""

IMAGE_HEADROOM_GIB = 40
"""Space on the GPU node volume that the model cache may not use: the vLLM image (about 11 GB compressed, held by
containerd both compressed and unpacked) and the OS with the NVIDIA driver."""

MANAGED_FLAGS = {
    "--model": "hfModelId", "--served-model-name": "servedName", "--revision": "revision",
    "--host": None, "--port": None, "--uds": None, "--api-key": None, "--root-path": None, "--headless": None,
    "--config": None, "--load-format": None, "--model-loader-extra-config": None, "--download-dir": None,
    "--tensor-parallel-size": "gpus", "--pipeline-parallel-size": "gpus", "--data-parallel-size": "gpus",
    "--max-model-len": "maxModelLen", "--gpu-memory-utilization": "gpuMemoryUtilization",
    "--device-memory-utilization": "gpuMemoryUtilization",
    "--enable-lora": "adapters", "--no-enable-lora": "adapters", "--lora-modules": "adapters",
    "--max-cpu-loras": "adapters", "--max-loras": "maxLoras", "--max-lora-rank": "maxLoraRank",
}
"""vLLM flags the program sets from the model's own keys (value), or that would break the pod's contract (None):
the address and paths the probes, Service and interceptor use, the API key (kept out of the spec, read from
VLLM_API_KEY), how the weights are loaded (streamed from the model store), `--config` (a file that could set any
of them), the parallel sizes that change how many GPUs the pod needs, and the LoRA flags that `adapters` sets. Read
from the vllm 0.33.0 wheel: vllm/engine/arg_utils.py (`--device-memory-utilization` is an alias of
`--gpu-memory-utilization` there; `--enable-lora` is a BooleanOptionalAction, hence `--no-enable-lora`) and
vllm/entrypoints/common/cli_args.py."""

SHORT_FLAGS = {"-tp": "--tensor-parallel-size", "-pp": "--pipeline-parallel-size", "-dp": "--data-parallel-size",
               "-q": "--quantization", "-O": "--optimization-level"}
"""Short aliases vLLM 0.33 defines (vllm/engine/arg_utils.py: add_argument("--tensor-parallel-size", "-tp") ...)."""


# The reference grammar of github.com/distribution/reference (v0.6.0, reference.go and regexp.go), which containerd
# and the kubelet use to parse an image name: [domain[:port]/]path-component(/path-component)*[:tag][@digest].
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?", re.ASCII)
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
# re.ASCII: the grammar's \w is Go's, ASCII only.
_REMOTE = re.compile(
    rf"(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII)


def _split_registry(v: str) -> tuple[str, str]:
    """(registry host, rest): the first component is a registry host only when it contains '.' or ':' or is
    localhost (normalize.go splitDockerDomain); otherwise the whole reference is a Docker Hub repository."""
    first, slash, rest = v.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "", v


def image_reference_problem(v: str) -> str:
    """Why `v` is not a usable image reference ("" when it is): the distribution grammar, lowercase repository,
    at most 255 characters of name, and pinned (a tag other than latest, or a digest)."""
    host, remote = _split_registry(v)
    valid_host = not host or _DOMAIN.fullmatch(host)
    m = _REMOTE.fullmatch(remote) if valid_host else None
    if m is None:
        path = re.match(r"[^:@]*", remote).group(0)  # the repository, before any tag or digest
        lowered = path.lower() + remote[len(path):]
        if valid_host and lowered != remote and _REMOTE.fullmatch(lowered):
            # Upstream would read an uppercase first component as a registry host (normalize.go), which no node
            # resolves: the pull fails only after a GPU node was bought.
            first = path.partition("/")[0]
            why = (f" ('{first}' is not a registry host: a host contains '.' or ':' or is localhost)"
                   if not host and "/" in path and first != first.lower() else "")
            fixed = (host + "/" if host else "") + lowered
            return (f"image '{v}' has uppercase letters in the repository{why}; allowed: a lowercase repository "
                    f"such as {fixed}")
        return (f"image '{v}' is not an image reference; allowed: [registry/]repository:tag or "
                f"repository@sha256:<digest>, lowercase, no spaces or scheme, e.g. {VLLM_IMAGE}")
    name = (host + "/" if host else "") + m.group("path")
    if len(name) > 255:
        return f"image name is {len(name)} characters long; allowed: at most 255"
    if not m.group("digest") and m.group("tag") in (None, "latest"):
        return f"image '{v}' is not pinned; allowed: an explicit release tag or digest, e.g. {VLLM_IMAGE}"
    return ""


def _flag_name(item: str) -> str:
    # vLLM's FlexibleArgumentParser turns `_` into `-` in a flag's name up to the first '.'
    # (vllm 0.33.0 wheel: vllm/utils/argparse_utils.py, parse_args), so --max_model_len is --max-model-len.
    key = item.split("=", 1)[0]
    head, dot, rest = key[2:].partition(".")
    return "--" + head.replace("_", "-") + dot + rest


def _extra_arg_problems(args: list[str]) -> list[tuple[str, str]]:
    out = []
    for i, a in enumerate(args):
        at = f"[{i}]"
        if not a.strip():
            out.append((at, "is empty; allowed: one vLLM flag per item, e.g. --enable-prefix-caching or "
                            "--max-num-seqs=64"))
            continue
        if a != a.strip() or any(c.isspace() for c in a.split("=", 1)[0]) or (" --" in a):
            out.append((at, f"'{a}' holds several words; allowed: one flag per item, its value after '=' "
                            "(e.g. --max-num-seqs=64): items are passed to vLLM without a shell"))
            continue
        prev = args[i - 1] if i else ""
        if not a.startswith("-") and prev.startswith("-") and "=" not in prev:
            out.append((at, f"'{a}' looks like the value of extraArgs[{i - 1}] ({prev}); allowed: flag and value in "
                            f"one item, {prev}={a}"))
            continue
        if not a.startswith("--"):
            short = a.split("=", 1)[0]
            long = SHORT_FLAGS.get(short) or (SHORT_FLAGS["-O"] if short.startswith("-O") else None)
            if long in MANAGED_FLAGS:
                key = MANAGED_FLAGS[long]
                out.append((at, f"'{a}' is {long}, which the program sets from the model's `{key}`; "
                                f"allowed: set `{key}` instead"))
            else:
                out.append((at, f"'{a}' is not a long flag; allowed: --flag or --flag=value (long names only, "
                                f"e.g. {long + '=...' if long else '--max-num-seqs=64'})"))
            continue
        name = _flag_name(a)
        exact = name if name in MANAGED_FLAGS else None
        # argparse accepts any unambiguous prefix of a long flag (vLLM never disables allow_abbrev)
        abbrev = [f for f in MANAGED_FLAGS if f.startswith(name)] if exact is None and len(name) > 2 else []
        hit = exact or (abbrev[0] if abbrev else None)
        if hit:
            key = MANAGED_FLAGS[hit]
            how = f"the program sets it from the model's `{key}`; allowed: set `{key}` instead" if key else \
                "the program manages it (address, probes, API key, weight loading); allowed: any other vLLM flag"
            shown = a.split("=", 1)[0]
            out.append((at, f"'{shown}' " + ("is" if exact and shown == hit else "means") + f" {hit}: {how}"))
    return out


HfModelId = pattern_type(r"[A-Za-z0-9][\w.-]*/[\w.-]+", "a Hugging Face model id", "Qwen/Qwen2.5-1.5B-Instruct")
Revision = pattern_type(r"[0-9a-f]{40}", "a Hugging Face commit hash (40 lowercase hex digits)",
                        "989aa7980e4cf806f80c7fef2b1adb7bc71aa306")

MAX_ADAPTERS = model_route.MAX_RULES_PER_ROUTE - 1
"""Adapters per model: the model and its adapters are the rules of one route (at most 15)."""
LORA_TUNING_FLAGS = ("--lora-dtype", "--enable-tower-connector-lora", "--fully-sharded-loras", "--lora-target-modules",
                     "--default-mm-loras", "--specialize-active-lora", "--enable-mixed-moe-lora-format",
                     "--enable-moe-shared-loras", "--max-lora-cls-labels")
"""The other flags of vLLM 0.33's LoRAConfig group (vllm/engine/arg_utils.py): only read with --enable-lora."""
NO_LORA_MOE_BACKENDS = ("deep_gemm_mega_moe", "flashinfer_moe_ep_cutedsl", "flashinfer_moe_ep_mega_deep_gemm",
                        "aiter_mega_moe")
"""`--moe-backend` values with which vLLM 0.33 refuses LoRA at startup (vllm/config/lora.py
verify_with_kernel_config, MEGA_MOE_BACKENDS in vllm/config/kernel.py)."""


def _flag_value(item: str) -> str:
    return item.split("=", 1)[1] if "=" in item else ""


def lora_flag_problems(args: list[str], has_adapters: bool) -> list[tuple[str, str]]:
    """extraArgs that cannot go with LoRA adapters, or that only tune LoRA on a model without any."""
    out = []
    for i, a in enumerate(args):
        if not a.startswith("--"):
            continue
        name = _flag_name(a)
        bare = "--" + name[5:] if name.startswith("--no-") else name
        if not has_adapters and bare in LORA_TUNING_FLAGS:
            out.append((f"[{i}]", f"'{a.split('=', 1)[0]}' only tunes LoRA adapters and the model has none; allowed: "
                                  "the flag with `adapters`, or no flag"))
        elif has_adapters and name == "--moe-backend" and \
                _flag_value(a).lower().replace("-", "_") in NO_LORA_MOE_BACKENDS:
            out.append((f"[{i}]", f"'{a}' is a MegaMoE backend, with which vLLM refuses LoRA adapters at startup; "
                                  "allowed: another --moe-backend, or no `adapters`"))
        elif has_adapters and _adaptive_verification(name, a):
            out.append((f"[{i}]", "speculative decoding with enable_adaptive_verification cannot serve LoRA adapters "
                                  "(vLLM refuses the pair at startup); allowed: no adaptive verification, or no "
                                  "`adapters`"))
    return out


def _adaptive_verification(name: str, item: str) -> bool:
    if name == "--speculative-config.enable_adaptive_verification":
        return _flag_value(item).lower() in ("", "true", "1")
    if name == "--speculative-config":
        try:
            spec = json.loads(_flag_value(item))
        except ValueError:
            return False
        return isinstance(spec, dict) and spec.get("enable_adaptive_verification") is True
    return False


class AdapterConfig(Strict):
    """A LoRA adapter served by its model's replicas (vLLM `--lora-modules`): clients send its name as `model`."""

    name: Annotated[str, Field(max_length=40)]
    """Name clients send as `model` for this adapter (a DNS label, unique among every served name of the stack)."""
    hf_model_id: HfModelId
    """Hugging Face repository `<org>/<name>` of the PEFT LoRA adapter (adapter_config.json and
    adapter_model.safetensors)."""
    revision: Revision
    """Hugging Face commit hash (40 hex digits) of the adapter repository, staged to the model store and served."""

    @field_validator("name")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not re.match(_SERVED_NAME, v):
            raise ValueError(f"'{v}' is not a DNS label (it also names the adapter's route rule and staging Job); "
                             "allowed: lowercase letters, digits and '-', starting with a letter, e.g. sql-lora")
        return v


class PrewarmWindow(Strict):
    """A scheduled pre-warm window: a KEDA `cron` trigger that keeps at least `replicas` replicas from each `start`
    until the next `end`, requests or not. It buys GPUs without a request, by design; only explicit config does that
    (this, and `minReplicas`)."""

    start: str
    """When the window opens: a cron expression as KEDA's cron scaler reads it (five fields `minute hour day-of-month
    month day-of-week`, no seconds, no @descriptors) in `timezone`, e.g. 50 7 * * 1-5."""
    end: str
    """When it closes: same format; the first `end` after each `start` closes that window (across midnight is fine),
    e.g. 0 19 * * 1-5."""
    timezone: str
    """IANA time zone both schedules are read in (the cron trigger's `timezone`), e.g. Europe/Berlin or UTC."""
    replicas: Annotated[int, Field(ge=1, le=100)] = 1
    """Replicas kept inside the window: above minReplicas, at most maxReplicas."""

    @field_validator("start", "end")
    @classmethod
    def _cron(cls, v: str) -> str:
        s = cron.parse(v)
        if not s.fires():
            raise ValueError(f"'{v}' never fires (no selected month has the selected day); allowed: a schedule "
                             f"that matches real dates, e.g. {cron.EXAMPLE}")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        problem = cron.zone_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _order(self):
        if self.start == self.end:
            # KEDA's own check (cron_scaler.go Validate): the ScaledObject would not become Ready.
            raise Problems(("end", f"'{self.end}' is the same as start; allowed: a different end (KEDA's cron scaler "
                                   "refuses equal start and end)"))
        found = cron.order_problems(cron.parse(self.start), cron.parse(self.end))
        if found:
            raise Problems(*found)
        return self

    @model_validator(mode="after")
    def _clock_changes(self):
        found = cron.dst_problems(cron.parse(self.start), cron.parse(self.end), self.timezone)
        if found:
            raise Problems(*found)
        return self


class ModelConfig(Strict):
    """One served model: a vLLM Deployment scaled 0→1 by the HTTP add-on and 1→N by its queue depth."""

    served_name: Annotated[str, Field(max_length=40)]
    """Name clients send as `model` (and in the routing header), the `model_name` label of vLLM's metrics, and the
    Kubernetes name of every object of the model."""
    hf_model_id: HfModelId
    """Hugging Face repository `<org>/<name>` the weights are downloaded from."""
    revision: Revision
    """Hugging Face commit hash (40 hex digits) of `hfModelId`: what the staging Job copies to the model store and
    what every replica loads, so a scale event months later serves the same weights and tokenizer."""
    runai_concurrency: Annotated[int, Field(ge=1, le=256)] = 32
    """Run:ai Model Streamer reader threads against S3 (`concurrency`); the streamer's benchmark reached its best
    S3 figure at 32 (runai-model-streamer docs/src/benchmarks.md)."""
    runai_memory_limit_gib: Annotated[int, Field(ge=1, le=64)] = 4
    """CPU staging buffer of the streamer (`memory_limit`). Its default is 40 GB, more than the pod's memory limit."""
    compile_cache: bool = True
    """Keep vLLM's torch.compile cache in the model store (keyed by model, revision, image and GPU model) so later
    cold starts load compiled graphs instead of compiling; the model's pods may then add objects to that prefix."""
    image: str = VLLM_IMAGE
    """vLLM image reference (`[registry/]repository:tag` or `@sha256:<digest>`, lowercase repository); must carry an
    explicit version tag or digest (no `:latest`)."""
    gpus: Annotated[int, Field(ge=1, le=8)] = 1
    """GPUs per replica = `--tensor-parallel-size`; must fit on one node of the pool."""
    shared_gpu: bool = False
    """Each replica requests one time-slice of a GPU (`nvidia.com/gpu.shared`) instead of whole GPUs; the model's
    pool must have `timeSlicing`, `gpus` must be 1, and `gpuMemoryUtilization` must leave room for the other slices
    of the GPU (docs/gpu-and-addons.md "Time-slicing")."""
    max_model_len: Annotated[int, Field(ge=256, le=1048576)] = 8192
    gpu_memory_utilization: Annotated[float, Field(gt=0.1, le=0.98)] = 0.90
    extra_args: list[str] = []
    """More vLLM flags, one per item as `--flag` or `--flag=value` (the items reach vLLM without a shell). Flags the
    program manages (MANAGED_FLAGS, in any spelling vLLM accepts: `_` for `-`, abbreviations, short aliases) are
    refused."""
    min_replicas: Annotated[int, Field(ge=0, le=100)] = 0
    max_replicas: Annotated[int, Field(ge=1, le=100)] = 4
    idle_before_scale_to_zero: Duration = "15m"
    """KEDA cooldownPeriod: how long without traffic before the last replica (and then its GPU node) goes away."""
    target_queue_depth: Annotated[int, Field(ge=1, le=1000)] = 4
    """Requests waiting in vLLM's queue per replica before another replica is added (Prometheus trigger threshold)."""
    target_concurrency: Annotated[int, Field(ge=1, le=10000)] = 64
    """In-flight requests per replica at the interceptor (second 1→N signal, and the route's scaling metric)."""
    pool: Annotated[str, Field(min_length=1)] = "gpu-on-demand"
    needs_hf_token: bool = False
    """The repository (or one of `adapters`) is gated: the staging Jobs of the model and its adapters get
    `gpu-burst:hfToken`, nothing else does."""
    startup_budget: Duration = "20m"
    """Budget of the startupProbe: GPU node + image pull + weights download/load + compile."""
    drain_timeout: Duration = "2m"
    """preStop delay for in-flight requests (streams) before SIGTERM; terminationGracePeriodSeconds adds 30 s."""
    cpu: CpuQuantity = "4"
    """CPU request of a replica (a number such as 4 or "3.5", or millicores such as 3500m)."""
    memory: MemoryQuantity = "16Gi"
    """Memory request and limit of a replica."""
    shm_size: MemoryQuantity = "8Gi"
    """Size of /dev/shm (a memory-backed emptyDir; counts against the memory limit)."""
    cache_size: MemoryQuantity = "60Gi"
    """Size limit (and ephemeral-storage request) of the model cache emptyDir on the GPU node's data volume."""
    prewarm: list[PrewarmWindow] = []
    """Scheduled pre-warm windows (KEDA cron triggers): inside each, at least its `replicas` run without a request;
    outside, the model scales to zero as usual. Empty: GPUs only for requests (and minReplicas)."""
    adapters: list[AdapterConfig] = []
    """LoRA adapters served on top of this model (vLLM `--enable-lora`): each is staged to the model store, loaded by
    every replica before vLLM starts, and routed, listed, authorized and scaled as this model. At most 14."""
    max_loras: Optional[Annotated[int, Field(ge=1, le=MAX_ADAPTERS)]] = None
    """Adapters one batch may mix (vLLM `--max-loras`, GPU memory reserved per slot). Default: every adapter."""
    max_lora_rank: Optional[int] = None
    """Largest LoRA rank `r` among the adapters (vLLM `--max-lora-rank`): one of 1, 8, 16, 32, 64, 128, 256, 320,
    512. Default 16."""

    @field_validator("served_name")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not re.match(_SERVED_NAME, v):
            raise ValueError(
                f"'{v}' is not a DNS label (it also names the model's Deployment, Service and route); allowed: "
                "lowercase letters, digits and '-', starting with a letter, e.g. qwen2-5-1-5b-instruct"
            )
        return v

    @field_validator("max_lora_rank")
    @classmethod
    def _lora_rank(cls, v: Optional[int]) -> Optional[int]:
        if v is not None and v not in model_service.LORA_RANKS:
            raise ValueError(f"{v} is not a rank vLLM {VLLM_VERSION} accepts; allowed: "
                             + ", ".join(map(str, model_service.LORA_RANKS)))
        return v

    @field_validator("image")
    @classmethod
    def _image(cls, v: str) -> str:
        problem = image_reference_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("extra_args")
    @classmethod
    def _managed_flags(cls, v: list[str]) -> list[str]:
        found = _extra_arg_problems(v)
        if found:
            raise Problems(*found)
        return v

    @model_validator(mode="after")
    def _adapters(self):
        p = Problems()
        n = len(self.adapters)
        if n > MAX_ADAPTERS:
            p.add("adapters", f"{n} adapters; allowed: at most {MAX_ADAPTERS} (the model and its adapters are the "
                              f"rules of one route, at most {model_route.MAX_RULES_PER_ROUTE})")
        for j, a in enumerate(self.adapters):
            if a.name == self.served_name:
                p.add(f"adapters[{j}].name", f"'{a.name}' is the model's own servedName; allowed: a name of its own")
            if a.hf_model_id == self.hf_model_id:
                p.add(f"adapters[{j}].hfModelId", f"'{a.hf_model_id}' is the model's own repository; allowed: the "
                                                  "repository of a PEFT LoRA adapter trained on it")
        for j, first in repeats([a.name for a in self.adapters]):
            p.add(f"adapters[{j}].name", f"'{self.adapters[j].name}' is already used by adapters[{first}]; allowed: "
                                         "a name unique among the model's adapters")
        if not n:
            for key, value in (("maxLoras", self.max_loras), ("maxLoraRank", self.max_lora_rank)):
                if value is not None:
                    p.add(key, "is only read with `adapters` and the model has none; allowed: add adapters, or "
                               "remove the key")
        elif self.max_loras is not None and self.max_loras > n:
            p.add("maxLoras", f"{self.max_loras} is above the number of adapters ({n}): vLLM reserves GPU memory "
                              f"for every slot; allowed: " + ("1" if n == 1 else f"1 to {n}"))
        for at, message in lora_flag_problems(list(self.extra_args), bool(n)):
            p.add(f"extraArgs{at}", message)
        p.raise_if_any()
        return self

    @model_validator(mode="after")
    def _replicas(self):
        if self.min_replicas > self.max_replicas:
            raise Problems(("minReplicas", f"{self.min_replicas} is above maxReplicas ({self.max_replicas}); "
                                           f"allowed: 0 to {self.max_replicas}"))
        return self

    @model_validator(mode="after")
    def _prewarm_replicas(self):
        p = Problems()
        if self.min_replicas > self.max_replicas:
            return self  # reported on minReplicas; no replica range to judge a window by
        lo, hi = self.min_replicas + 1, self.max_replicas
        allowed = (f"allowed: {lo}" if lo == hi else f"allowed: {lo} to {hi}") if lo <= hi else \
            f"allowed: none (minReplicas {self.min_replicas} already keeps maxReplicas running; drop the window)"
        for i, w in enumerate(self.prewarm):
            if w.replicas > hi:
                p.add(f"prewarm[{i}].replicas", f"{w.replicas} is above maxReplicas ({hi}); {allowed}")
            elif w.replicas < lo:
                p.add(f"prewarm[{i}].replicas", f"{w.replicas} is not above minReplicas ({self.min_replicas}), so "
                                                f"the window adds no replica; {allowed}")
        for i, first in repeats([(w.start, w.end, w.timezone) for w in self.prewarm]):
            p.add(f"prewarm[{i}]", f"repeats prewarm[{first}] (same start, end and timezone); allowed: each window "
                                   "once (the larger replicas is what counts)")
        p.raise_if_any()
        return self

    @model_validator(mode="after")
    def _durations(self):
        p = Problems()
        if duration_seconds(self.startup_budget) < 900:
            p.add("startupBudget", f"'{self.startup_budget}' cannot cover node + image + weights; allowed: at least 15m")
        if duration_seconds(self.idle_before_scale_to_zero) < 60:
            p.add("idleBeforeScaleToZero",
                  f"'{self.idle_before_scale_to_zero}' would thrash GPU nodes; allowed: at least 1m")
        if not 10 <= duration_seconds(self.drain_timeout) <= 3600:
            p.add("drainTimeout", f"'{self.drain_timeout}' is out of range; allowed: from 10s to 1h")
        p.raise_if_any()
        return self

    @model_validator(mode="after")
    def _shm_within_memory(self):
        # /dev/shm is a memory-medium emptyDir: its pages count against the container's memory limit
        if quantity_value(self.shm_size) >= quantity_value(self.memory):
            raise Problems(("shmSize", f"'{self.shm_size}' is not below memory '{self.memory}' (shared memory counts "
                                       "against the memory limit); allowed: less than memory"))
        return self

    @model_validator(mode="after")
    def _streamer_buffer_within_memory(self):
        # The streamer's CPU buffer is allocated in the vLLM container, so it counts against its memory limit: a buffer
        # as large as the limit gets the pod OOM-killed while loading, on every cold start, after a GPU was bought.
        if self.runai_memory_limit_gib * 2**30 >= quantity_value(self.memory):
            raise Problems(("runaiMemoryLimitGib", f"{self.runai_memory_limit_gib} GiB is not below memory "
                                                   f"'{self.memory}' (the streamer's buffer counts against the memory "
                                                   "limit); allowed: less than memory"))
        return self

    # -- derived values used by the components ----------------------------------------------------------------
    @property
    def lora_rank(self) -> int:
        """`--max-lora-rank` of the replicas."""
        return self.max_lora_rank or model_service.DEFAULT_LORA_RANK

    @property
    def lora_slots(self) -> int:
        """`--max-loras` of the replicas (0 without adapters)."""
        return self.max_loras or len(self.adapters)

    @property
    def served_names(self) -> list[str]:
        """Every name clients may send for this model: its own, then its adapters'."""
        return [self.served_name, *(a.name for a in self.adapters)]

    @property
    def idle_seconds(self) -> int:
        return int(duration_seconds(self.idle_before_scale_to_zero))

    @property
    def startup_seconds(self) -> int:
        return int(duration_seconds(self.startup_budget))

    @property
    def drain_seconds(self) -> int:
        return int(duration_seconds(self.drain_timeout))


RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "keda", "monitoring",
                       "envoy-gateway-system", "envoy-ai-gateway-system")
"""Namespaces the stack or its add-ons own (Karpenter and the LBC live in kube-system)."""
_KEY_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_HOSTNAME = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$"


NON_INTERNET_RANGES = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918 private
    "100.64.0.0/10",  # RFC 6598 carrier-grade NAT
    "127.0.0.0/8", "::1/128",  # loopback
    "169.254.0.0/16", "fe80::/10",  # link-local
    "fc00::/7",  # RFC 4193 unique local (IPv6)
))
"""Source ranges that never reach an internet-facing load balancer from the internet."""


MAX_TOKENS_PER_WINDOW = 4_294_967_295
"""Largest limit a BackendTrafficPolicy rule holds (`limit.requests` is a uint32, envoyproxy/gateway@v1.9.0
api/v1alpha1/ratelimit_types.go RateLimitValue)."""


class ControllerConfig(Strict):
    """A front-door controller the stack installs, or (install: false, cluster.mode existing) one the cluster runs."""

    install: bool = True
    """false: the controller already runs in the existing cluster."""


class EnvoyGatewayConfig(ControllerConfig):
    """Envoy Gateway. An existing one (1.9 or later) must run with the AI Gateway's extension manager and the
    Backend API enabled, as the AI Gateway's install docs configure it (`burstctl preflight --cluster` reads its
    config)."""

    namespace: Optional[Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]] = None
    """install false: namespace where the existing Envoy Gateway deploys its Envoy proxies and their Service (its
    own namespace, e.g. envoy-gateway-system, unless it runs with deploy type GatewayNamespace)."""

    @model_validator(mode="after")
    def _namespace(self):
        if self.install and self.namespace is not None:
            raise Problems(("namespace", "is only read when install is false (the stack installs Envoy Gateway in "
                                         "envoy-gateway-system); allowed: remove it"))
        if not self.install and self.namespace is None:
            raise Problems(("namespace", "required when install is false; allowed: the namespace of the existing "
                                         "Envoy Gateway's proxies, e.g. envoy-gateway-system"))
        return self


class KeyPolicy(Strict):
    """`gpu-burst:gateway.keys.<name>` — what the API key `gpu-burst:apiKeys.<name>` may do. Every field is
    optional: a policy `{}` lets the key call every model at `gateway.requestsPerMinute`, without a token budget."""

    models: Optional[list[str]] = None
    """Served names (`models[].servedName`, and `models[].adapters[].name` for LoRA adapters, each listed on its own)
    the key may call; any other model gets 403 at the edge. Leave it out to allow every model, including models other
    programs add later."""
    requests_per_minute: Optional[Annotated[int, Field(ge=1, le=1_000_000)]] = None
    """Requests per minute this key may send (over it: 429 with Retry-After); default `gateway.requestsPerMinute`."""
    tokens_per_minute: Optional[Annotated[int, Field(ge=1, le=MAX_TOKENS_PER_WINDOW)]] = None
    """Input plus output tokens per minute, counted across every Envoy replica (needs the rate-limit Redis, which
    the stack then creates); over it: 429 until the minute ends."""
    tokens_per_day: Optional[Annotated[int, Field(ge=1, le=MAX_TOKENS_PER_WINDOW)]] = None
    """Input plus output tokens per UTC day, counted across every Envoy replica (needs the rate-limit Redis);
    over it: 429 until 00:00 UTC."""

    @field_validator("models")
    @classmethod
    def _some_models(cls, v: Optional[list[str]]) -> Optional[list[str]]:
        if v is not None and not v:
            raise ValueError("[] lets the key call no model; allowed: served names, or leave models out for every "
                             "model")
        return v

    @property
    def has_token_budget(self) -> bool:
        return self.tokens_per_minute is not None or self.tokens_per_day is not None


@dataclass(frozen=True)
class ResolvedKeyPolicy:
    """One API key's policy with the defaults filled in (`StackConfig.key_policies`)."""

    name: str
    models: Optional[tuple[str, ...]]
    """Served names the key may call; None: every model, including models and adapters added later."""
    requests_per_minute: int
    tokens_per_minute: Optional[int]
    tokens_per_day: Optional[int]

    @property
    def has_token_budget(self) -> bool:
        return self.tokens_per_minute is not None or self.tokens_per_day is not None


class RedisMode(str, Enum):
    ELASTICACHE = "elastiCache"
    IN_CLUSTER = "inCluster"


class RateLimitRedisConfig(Strict):
    """`gpu-burst:gateway.rateLimit.redis` — the Redis that counts requests and tokens for every Envoy replica.
    The stack creates it only when some key has a token budget."""

    mode: Optional[RedisMode] = None
    """elastiCache (ElastiCache for Valkey, Multi-AZ, in the private subnets) or inCluster (one Valkey pod on the
    system nodes); default elastiCache for staging and prod, inCluster for dev."""
    node_type: pattern_type(r"cache\.[a-z0-9]+\.[a-z0-9]+", "an ElastiCache node type", "cache.t4g.micro") = \
        "cache.t4g.micro"
    """ElastiCache node type of both nodes (primary and replica) when mode is elastiCache, e.g. cache.t4g.micro."""


class RateLimitConfig(Strict):
    """`gpu-burst:gateway.rateLimit` — global limits (token budgets, and request limits once Redis exists)."""

    redis: RateLimitRedisConfig = RateLimitRedisConfig()
    fail_open: bool = True
    """true: while Redis or the rate-limit service is unreachable, requests pass unlimited; false: they get 500
    (budgets hold, the endpoint is down). See docs/tenants.md."""


class GatewayConfig(Strict):
    """`gpu-burst:gateway` — the OpenAI-compatible front door (Envoy Gateway + AI Gateway behind an LBC NLB), and
    the namespace the model services live in."""

    namespace: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)] = "inference"
    """Namespace of the model Deployments, Services, routes, ScaledObjects and the edge's routes and key Secrets."""
    public: bool = False
    """false: internal NLB (reachable from the VPC and peered networks); true: internet-facing NLB (needs TLS)."""
    allowed_cidrs: list[Cidr] = []
    """Source CIDRs allowed through the load balancer; empty means the VPC CIDR (internal) or 0.0.0.0/0 (public)."""
    certificate_arn: Optional[str] = None
    """ACM certificate ARN (same region as the stack): the NLB terminates TLS on 443 and the endpoint is https://."""
    domain: Optional[str] = None
    """DNS name clients use for the endpoint (you create the record pointing at the NLB), e.g. `llm.example.com`.
    With globalDns: unset (it is globalDns.recordName) or the same name."""
    requests_per_minute: Annotated[int, Field(ge=1, le=1_000_000)] = 600
    """Requests per minute of a key without its own `keys.<name>.requestsPerMinute`: per Envoy replica and per model
    route without the rate-limit Redis, across all of them with it; over it: 429 with Retry-After."""
    keys: dict[str, KeyPolicy] = {}
    """Per API key name (a key of `gpu-burst:apiKeys`): the models it may call, its request limit and token
    budgets."""
    rate_limit: RateLimitConfig = RateLimitConfig()
    key_requests_per_minute: Optional[Any] = None
    """Replaced by `keys.<name>.requestsPerMinute`; set only to say where the setting moved."""
    replicas: Optional[Annotated[int, Field(ge=1, le=10)]] = None
    """Replicas of Envoy, the edge controllers and the AWS Load Balancer Controller; default 2 when
    systemNodes.minSize >= 2, else 1."""
    require_hf_token_for_gated: bool = True
    """A model with `needsHfToken` and no `gpu-burst:hfToken` set is a config error (false: let the staging Job
    try anonymously)."""
    global_dns: Optional[GlobalDnsConfig] = None
    """One name for several regional stacks: this stack's NLB becomes a latency-routed Route 53 record of it
    (docs/regions.md)."""
    envoy_gateway: EnvoyGatewayConfig = EnvoyGatewayConfig()
    """Envoy Gateway v1.9.0, installed by the stack unless `install: false`."""
    ai_gateway: ControllerConfig = ControllerConfig()
    """Envoy AI Gateway v1.1.0, installed by the stack unless `install: false` (then Envoy Gateway is the cluster's
    own too, configured for it)."""
    load_balancer_controller: ControllerConfig = ControllerConfig()
    """AWS Load Balancer Controller v3.5.0, installed by the stack unless `install: false` (then the cluster's own,
    2.9 or later for the NLB listener attributes, makes the NLB)."""

    @model_validator(mode="after")
    def _ai_gateway_goes_with_envoy_gateway(self):
        if not self.ai_gateway.install and self.envoy_gateway.install:
            raise Problems(("aiGateway.install", "false while envoyGateway.install is true: the Envoy Gateway the "
                                                 "stack installs points its extension manager at the AI Gateway the "
                                                 "stack installs; allowed: true, or envoyGateway.install: false too"))
        return self

    @field_validator("namespace")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in RESERVED_NAMESPACES:
            raise ValueError(f"'{v}' is reserved by the stack or its add-ons; use a namespace of its own such as "
                             "'inference' (not one of " + ", ".join(RESERVED_NAMESPACES) + ")")
        return v

    @field_validator("certificate_arn")
    @classmethod
    def _acm(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not re.match(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[\w-]+$", v):
            raise ValueError(f"'{v}' is not an ACM certificate ARN; use arn:aws:acm:<region>:<account>:certificate/<id>")
        return v

    @field_validator("domain")
    @classmethod
    def _hostname(cls, v: Optional[str]) -> Optional[str]:
        if v is None:
            return v
        if "://" in v or "/" in v:
            raise ValueError(f"'{v}' is a URL; give the host name only, e.g. llm.example.com")
        if "*" in v:
            raise ValueError(f"'{v}' is a wildcard; give the one host name clients use, e.g. llm.example.com")
        if not re.match(_HOSTNAME, v):
            raise ValueError(f"'{v}' is not a DNS host name; use lowercase labels separated by dots, e.g. "
                             "llm.example.com")
        return v

    internal_keys = ("keyRequestsPerMinute",)

    @field_validator("keys")
    @classmethod
    def _key_names(cls, v: dict) -> dict:
        bad = sorted(k for k in v if not re.match(_KEY_NAME, k))
        if bad:
            raise ValueError(f"key names {bad} are not allowed; use lowercase letters, digits and '-'")
        return v

    @field_validator("key_requests_per_minute")
    @classmethod
    def _moved(cls, v: Any) -> Any:
        if v is None:
            return v
        example = ", ".join(f"{k}: {{requestsPerMinute: {n}}}" for k, n in sorted(v.items())) \
            if isinstance(v, dict) and v else "<name>: {requestsPerMinute: <n>}"
        raise ValueError("moved to gateway.keys.<name>.requestsPerMinute; allowed: gateway.keys: {"
                         f"{example}}} (`pulumi config rm --path gateway.keyRequestsPerMinute`, then "
                         "`pulumi config set --path gateway.keys.<name>.requestsPerMinute <n>`)")

    @model_validator(mode="after")
    def _public_reachable(self):
        nets = [ipaddress.ip_network(c, strict=False) for c in self.allowed_cidrs]
        if self.public and nets and all(any(n.version == r.version and n.subnet_of(r) for r in NON_INTERNET_RANGES)
                                        for n in nets):
            raise Problems(("allowedCidrs", f"{self.allowed_cidrs} are all private ranges, which never reach an "
                                            "internet-facing load balancer; allowed: public: false (an internal NLB "
                                            "that the VPC, peered networks and VPN reach) with these ranges, or "
                                            "public: true with the public egress CIDRs of your clients"))
        return self

    @model_validator(mode="after")
    def _global_dns_fits(self):
        if self.global_dns is not None:
            Problems(*gateway_problems(self.public, self.allowed_cidrs, self.domain, self.global_dns)).raise_if_any()
        return self

    @property
    def client_host(self) -> Optional[str]:
        """The host name clients put in the base URL: globalDns.recordName, else domain (None: the NLB's own)."""
        return self.global_dns.record_name if self.global_dns is not None else self.domain

    def certificate_region(self) -> Optional[str]:
        """Region part of the certificate ARN."""
        return self.certificate_arn.split(":")[3] if self.certificate_arn else None
