"""Typed stack configuration: read every `gpu-burst:*` key once, validate it with pydantic, and hand typed objects
inward. Every problem is reported on one line `gpu-burst:<path>: <message>`, all at once, before any resource
is declared."""

import json
import math
import re
from typing import Any, Collection, Literal, Mapping, Optional

import pulumi
from pydantic import Field, ValidationError, model_validator

from .addons import AddonsConfig, HttpAddonConfig, KedaConfig, MonitoringConfig, NvidiaDevicePluginConfig
from . import capacity, slicing
from .component_constants import edge_gateway
from .base import GIB, Duration, Problems, camel, Strict, duration_seconds, pattern_type, quantity_value, repeats
from .errors import NAMESPACE, format_errors
from .foundation import (
    KARPENTER_MIN_FOR_FIELDS,
    KARPENTER_MIN_FOR_KUBERNETES,
    SUPPORTED_KUBERNETES_VERSIONS,
    ClusterConfig,
    ClusterMode,
    KarpenterConfig,
    LogType,
    NatGateways,
    NetworkConfig,
    NetworkMode,
    NodeAmi,
    SystemNodesConfig,
    access_entry_principal,
    same_principal,
)
from .gpu import (GPU_INSTANCE_SIZES, GPU_NODE_ARCH, KNOWN_GPU_FAMILIES, SNAPSHOT_AUTO, SNAPSHOT_TAG, CapacityType, GpuAmiFamily,
                  GpuConfig, GpuPoolConfig, BOTTLEROCKET_FIRST_NVIDIA_RELEASE, bottlerocket_release, image_snapshot_tags, snapshot_filters)
from .instance_store import InstanceStore, nvme_allocatable_bytes, smallest_local_nvme
from .models import (IMAGE_HEADROOM_GIB, GatewayConfig, KeyPolicy, ModelConfig, PrewarmWindow, RateLimitConfig,
                     RateLimitRedisConfig, RedisMode, ResolvedKeyPolicy)

SECRET_KEYS = ("hfToken", "apiKey", "apiKeys")
"""Config keys that must be Pulumi secrets: read only as secrets (never validated as plaintext, never stored in the
typed model). `apiKeys` is a mapping of key names to keys, set with `--path`."""

LOADER_KEYS = ("region", "hfTokenSet", "awsProfile", "apiKeyNames")
"""Fields of :class:`StackConfig` that the loader fills (from `aws:region` and from whether `gpu-burst:hfToken` is
set); a `gpu-burst:` key of the same name is an error, never silently overwritten."""

_REGION = pattern_type(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d", "an AWS region", "us-west-2")


class StackConfig(Strict):
    """The whole stack. Sections map 1:1 to `gpu-burst:<section>` keys in `Pulumi.<stack>.yaml`."""

    internal_keys = LOADER_KEYS

    environment: Literal["dev", "staging", "prod"]
    """Environment name: set `gpu-burst:environment` to dev, staging or prod."""
    region: _REGION
    """AWS region, read from the AWS provider's key: `pulumi config set aws:region us-west-2`."""
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    system_nodes: SystemNodesConfig = SystemNodesConfig()
    karpenter: KarpenterConfig = KarpenterConfig()
    gpu: GpuConfig = GpuConfig()
    addons: AddonsConfig = AddonsConfig()
    models: list[ModelConfig] = []
    gateway: GatewayConfig = GatewayConfig()
    hf_token_set: bool = False
    """Whether `gpu-burst:hfToken` is set; the value itself stays a Pulumi secret outside this model."""
    aws_profile: Optional[str] = None
    """`aws:profile` of the stack: the kubeconfig's `aws eks get-token` uses the same credentials as the provider."""
    api_key_names: list[str] = []
    """Names of the keys in `gpu-burst:apiKeys` (the keys themselves stay Pulumi secrets outside this model)."""

    # Cross-section checks: one validator per concern, so that a check reading an invalid field (skipped, see
    # stacks.config.errors) does not hide the others.
    @model_validator(mode="after")
    def _unique_served_names(self):
        p = Problems()
        for i, first in repeats([m.served_name for m in self.models]):
            p.add(f"models[{i}].servedName", f"'{self.models[i].served_name}' is already used by models[{first}]; "
                  "allowed: a servedName unique across gpu-burst:models")
        # An adapter is a model to clients: its name may be no other served name (within one model, ModelConfig
        # reports it).
        names = [(i, f"models[{i}].servedName", m.served_name) for i, m in enumerate(self.models)]
        names += [(i, f"models[{i}].adapters[{j}].name", a.name) for i, m in enumerate(self.models)
                  for j, a in enumerate(getattr(m, "adapters", []))]
        first: dict[str, tuple[int, str]] = {}
        for i, at, name in sorted(names, key=lambda n: (n[0], "adapters" in n[1])):
            if name in first and first[name][0] != i and "adapters" in at + first[name][1]:
                p.add(at, f"'{name}' is already used by {first[name][1]}; allowed: a name unique among the served "
                          "names and adapters of gpu-burst:models")
            first.setdefault(name, (i, at))
        p.raise_if_any()
        return self

    @model_validator(mode="after")
    def _models_fit_their_pools(self):
        pools = {p.name: p for p in self.gpu.pools}
        p = Problems()
        for i, m in enumerate(self.models):
            try:
                _check_model_on_pool(p, i, m, pools, self.gpu)
            except AttributeError:
                continue  # this model or its pool has invalid fields, reported on their own lines
        p.raise_if_any()
        return self

    @model_validator(mode="after")
    def _slices_fit_their_gpus(self):
        # Per traffic class that time-slices its GPUs: the slices that may share one GPU must fit its memory, and
        # the slices of one node its CPU and disk (stacks/config/slicing.py, docs/gpu-and-addons.md).
        g, p = self.gpu, Problems()
        raid0 = g.instance_store_raid0(None if g.snapshot_auto else g.data_volume_snapshot_id)
        ebs = None if raid0 and not g.snapshot_auto else \
            (ephemeral_allocatable_gib(g.volume_size_gib) - IMAGE_HEADROOM_GIB) * GIB
        classes: dict[str, list[GpuPoolConfig]] = {}
        for pool in g.pools:
            if pool.time_slicing:
                classes.setdefault(pool.traffic_class_label, []).append(pool)
        for cls, pools in classes.items():
            names = {q.name for q in pools}
            ms = [(i, m) for i, m in enumerate(self.models) if m.pool in names and m.shared_gpu and m.gpus == 1]
            if not ms:
                continue
            n = pools[0].time_slicing
            found = slicing.memory_problem(ms, n, cls)
            if found:
                p.add(f"models[{found[0]}].gpuMemoryUtilization", found[1])
            shapes = slicing.node_shapes(pools, raid0, ebs, IMAGE_HEADROOM_GIB * GIB)
            fit = slicing.node_fit_problem(ms, n, cls, shapes)
            if fit:
                p.add(f"models[{fit[0]}].{fit[1]}", fit[2])
        p.raise_if_any()
        return self

    @model_validator(mode="after")
    def _gated_models_need_a_token(self):
        p = Problems()
        if self.gateway.require_hf_token_for_gated and not self.hf_token_set:
            for i, m in enumerate(self.models):
                if getattr(m, "needs_hf_token", False):
                    p.add(f"models[{i}].needsHfToken",
                          f"model '{m.hf_model_id}' is gated but gpu-burst:hfToken is not set; "
                          "run `pulumi config set --secret hfToken <token>`")
        p.raise_if_any()
        return self

    @model_validator(mode="after")
    def _existing_cluster(self):
        p = Problems()
        for path, message in _cluster_mode_problems(self):
            p.add(path, message)
        p.raise_if_any()
        return self

    @model_validator(mode="after")
    def _system_node_release(self):
        rel, k8s = self.system_nodes.release_version, self.cluster.kubernetes_version
        # An AL2023 release names its Kubernetes version; a Bottlerocket release is the OS version.
        if rel and self.system_nodes.ami is NodeAmi.AL2023 and not self.existing_cluster \
                and ".".join(rel.split(".")[:2]) != k8s:
            raise Problems(("systemNodes.releaseVersion", f"'{rel}' is an AMI release for Kubernetes "
                            f"{'.'.join(rel.split('.')[:2])}, the cluster runs {k8s}; allowed: a {k8s}.<patch>-<date> "
                            "release, or leave it out"))
        return self

    @property
    def existing_cluster(self) -> bool:
        """Whether the stack installs onto an existing cluster (`cluster.mode: existing`)."""
        return self.cluster.mode is ClusterMode.EXISTING

    @model_validator(mode="after")
    def _karpenter_fits_the_system_nodes(self):
        # The Karpenter chart's default affinity is a *required* pod anti-affinity on kubernetes.io/hostname
        # (aws/karpenter-provider-aws@v1.14.1:charts/karpenter/values.yaml), and nothing scales the system node
        # group: replicas beyond desiredSize stay Pending. An existing cluster's nodes are not ours to count.
        if self.cluster.mode is ClusterMode.EXISTING:
            return self
        r = self.karpenter.replicas
        if r and r > self.system_nodes.desired_size:
            raise Problems(("karpenter.replicas",
                            f"{r} replicas need {r} system nodes (required hostname anti-affinity) but "
                            f"systemNodes.desiredSize is {self.system_nodes.desired_size}; "
                            f"allowed: at most {self.system_nodes.desired_size}, or raise systemNodes.desiredSize"))
        return self

    @model_validator(mode="after")
    def _system_nodes_hold_their_add_ons(self):
        # Nothing scales the managed system group (Karpenter launches GPU nodes only): minSize nodes of the smallest
        # type must hold every system pod, or a release waits on a Pending pod. An existing cluster's nodes are not
        # the stack's to count.
        if self.cluster.mode is ClusterMode.EXISTING:
            return self
        r = self.karpenter.replicas
        if r and r > self.system_nodes.desired_size:
            return self  # reported by _karpenter_fits_the_system_nodes
        lines = capacity.problems(self)
        if lines:
            raise Problems(*(tuple(line.split(": ", 1)) for line in lines))
        return self

    @model_validator(mode="after")
    def _bottlerocket_release_has_the_clusters_variant(self):
        if self.cluster.mode is ClusterMode.EXISTING:
            return self  # the version is the existing cluster's: checked once it is read (stacks/existing.py)
        Problems(*bottlerocket_variant_problems(self.gpu, self.cluster.kubernetes_version)).raise_if_any()
        return self

    @model_validator(mode="after")
    def _front_door(self):
        p = Problems()
        for path, message in _gateway_problems(self):
            p.add(path, message)
        p.raise_if_any()
        return self

    @property
    def model_images(self) -> list[str]:
        """The models' image references as configured (before any pull-through-cache rewrite), each once."""
        return sorted({m.image for m in self.models})

    def image_snapshot_tags(self, pulled: list[str]) -> dict[str, str]:
        """Tags of the data-volume snapshot for this stack's GPU nodes, given the references they pull
        (`components.image_cache.pulled_images`): the stack's `dataVolumeSnapshotId: auto` lookup and `burstctl
        snapshot build` both call this."""
        return image_snapshot_tags(pulled, bottlerocket_release(self.gpu.ami_version), self.cluster.kubernetes_version)

    @property
    def edge_replicas(self) -> int:
        """Replicas of Envoy, the edge controllers and the LBC: 2 (with PDBs) once two system nodes exist."""
        return self.gateway.replicas or (2 if self.system_nodes.min_size >= 2 else 1)

    @property
    def key_names(self) -> list[str]:
        """Names of the client API keys: `gpu-burst:apiKeys`' names, or `default` (a single `apiKey`, or the key the
        stack generates)."""
        return list(self.api_key_names) or [edge_gateway.GENERATED_KEY_NAME]

    @property
    def key_policies(self) -> dict[str, ResolvedKeyPolicy]:
        """Every key's policy with the defaults filled in: the models it may call (None: all), its request limit
        and token budgets. What the edge enforces per key."""
        gw = self.gateway
        out = {}
        for name in self.key_names:
            p = gw.keys.get(name) or KeyPolicy()
            out[name] = ResolvedKeyPolicy(
                name=name, models=tuple(p.models) if p.models is not None else None,
                requests_per_minute=p.requests_per_minute or gw.requests_per_minute,
                tokens_per_minute=p.tokens_per_minute, tokens_per_day=p.tokens_per_day)
        return out

    @property
    def rate_limit_redis(self) -> Optional[RedisMode]:
        """Where the rate-limit Redis runs, or None when no key has a token budget (then nothing is created and the
        request limits stay local to each Envoy replica)."""
        if not any(p.has_token_budget for p in self.key_policies.values()):
            return None
        mode = self.gateway.rate_limit.redis.mode
        if mode is not None:
            return mode
        return RedisMode.IN_CLUSTER if self.environment == "dev" else RedisMode.ELASTICACHE

    @property
    def key_models(self) -> dict[str, list[str]]:
        """Key name → the served names it may call, for the keys whose policy names models (a key left out may call
        every model): what the edge enforces."""
        return {name: list(p.models) for name, p in sorted(self.gateway.keys.items()) if p.models is not None}

    @property
    def karpenter_replicas(self) -> int:
        return self.karpenter.replicas or (2 if self.system_nodes.min_size >= 2 else 1)

    @property
    def http_scaler_replicas(self) -> int:
        """Replicas of the HTTP add-on's external scaler: 2, or fewer when the system group cannot have 2 nodes."""
        return min(2, self.system_nodes.max_size)


_KEY_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def bottlerocket_variant_problems(gpu: GpuConfig, k8s: str, whose: str = "") -> list[tuple[str, str]]:
    """`gpu.amiVersion` as (path, message) when the pinned Bottlerocket release has no NVIDIA variant for
    Kubernetes `k8s` (the cluster's version, configured or read from an existing cluster: `whose` says which)."""
    try:
        if gpu.ami_family is not GpuAmiFamily.BOTTLEROCKET or gpu.ami_version == "latest":
            return []
    except AttributeError:
        return []  # gpu has invalid fields, reported on their own lines
    first = BOTTLEROCKET_FIRST_NVIDIA_RELEASE.get(k8s)
    if not re.fullmatch(r"v[0-9]+\.[0-9]+\.[0-9]+", gpu.ami_version, flags=re.ASCII):
        return []  # not a release at all: reported on gpu.amiVersion itself
    have = tuple(int(x) for x in bottlerocket_release(gpu.ami_version).split("."))
    if first and have < first:
        want = "v" + ".".join(map(str, first))
        return [("gpu.amiVersion", f"'{gpu.ami_version}' has no aws-k8s-{k8s}-nvidia variant (added in {want}); "
                                   f"allowed: {want} or later for Kubernetes {k8s}{whose}")]
    return []


INSTALL_KEYS = ("karpenter", "addons.keda", "addons.httpAddon", "addons.monitoring", "addons.nvidiaDevicePlugin",
                "gateway.envoyGateway", "gateway.aiGateway", "gateway.loadBalancerController")
"""Sections whose `install: false` declares the component already present in an existing cluster."""


def _section(cfg: "StackConfig", dotted: str):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), part))
    return obj


def _cluster_mode_problems(cfg: "StackConfig") -> list[tuple[str, str]]:
    """Keys that go with one cluster mode only: what an existing cluster brings (its nodes, VPC and add-ons) is
    never configured as if the stack created it, and `install: false` needs a cluster that can have it."""
    out: list[tuple[str, str]] = []
    if cfg.cluster.mode is not ClusterMode.EXISTING:
        for dotted in INSTALL_KEYS:
            if not _section(cfg, dotted).install:
                out.append((f"{dotted}.install", "false is only allowed when cluster.mode is 'existing' (a cluster "
                                                 "the stack creates has nothing installed); allowed: true, or "
                                                 "cluster.mode: existing"))
        if cfg.karpenter.discovery_tag is not None:
            out.append(("karpenter.discoveryTag", "is only read when cluster.mode is 'existing' (the stack tags the "
                                                  "subnets of the cluster it creates with its name); allowed: remove "
                                                  "it"))
        return out
    if "system_nodes" in cfg.model_fields_set:
        out.append(("systemNodes", "is only read when cluster.mode is 'create' (an existing cluster's nodes are its "
                                   "owner's); allowed: remove it, and set cluster.systemNodeSelector"))
    net = cfg.network
    if "network" in cfg.model_fields_set:
        if net.mode is NetworkMode.CREATE:
            out.append(("network.mode", "'create' would make a new VPC, but an existing cluster keeps its own; "
                                        "allowed: remove gpu-burst:network (GPU nodes use the cluster's private "
                                        "subnets), or mode: existing with the cluster's vpcId and privateSubnetIds"))
        for key in ("public_subnet_ids", "tag_existing_subnets"):
            if key in net.model_fields_set:
                out.append((f"network.{camel(key)}", "is only read when cluster.mode is 'create' (GPU nodes of an "
                                                     "existing cluster select their subnets by id or discovery tag, "
                                                     "and no tag is written); allowed: remove it"))
        if cfg.karpenter.discovery_tag is not None and net.private_subnet_ids:
            out.append(("network.privateSubnetIds", "is not read when karpenter.discoveryTag is set (GPU nodes use "
                                                    "the subnets carrying that tag); allowed: one of the two"))
    return out


def _gateway_problems(cfg: "StackConfig") -> list[tuple[str, str]]:
    """Cross-section rules of the front door: TLS when public, the certificate in the stack's region, key names, and
    a hold budget the NLB can carry."""
    gw, out = cfg.gateway, []
    if gw.public and not gw.certificate_arn:
        out.append(("gateway.public", "an internet-facing endpoint without TLS would send API keys in clear text; "
                    "allowed: public: true with gateway.certificateArn (an ACM certificate), or public: false"))
    cert_region = gw.certificate_region()
    if cert_region and cert_region != cfg.region:
        out.append(("gateway.certificateArn", f"the certificate is in {cert_region}, the NLB in {cfg.region}; "
                    f"allowed: an ACM certificate from {cfg.region}"))
    bad = [n for n in cfg.api_key_names if not _KEY_NAME.fullmatch(n) or len(n) > 63]
    if bad:
        out.append(("apiKeys", f"key names {bad} are not usable (a name is a Secret data key and a metric label); "
                    "allowed: lowercase letters, digits and '-', at most 63"))
    out.extend(_key_policy_problems(cfg))
    h = cfg.addons.http_addon
    # The edge's own timeouts: the NLB idles out after the longest silence a held request may have.
    silence = edge_gateway.hop_timeouts(int(duration_seconds(h.readiness_timeout)),
                                        int(duration_seconds(h.response_header_timeout))).silence_seconds
    if not gw.certificate_arn and silence > edge_gateway.NLB_MAX_IDLE_SECONDS:
        out.append(("addons.httpAddon.readinessTimeout",
                    f"readinessTimeout + responseHeaderTimeout + {edge_gateway.MARGIN_SECONDS}s ({silence}s) exceed "
                    f"the NLB idle timeout limit; allowed: at most {edge_gateway.NLB_MAX_IDLE_SECONDS}s in total"))
    return out


def _key_policy_problems(cfg: "StackConfig") -> list[tuple[str, str]]:
    """`gateway.keys`: each policy names a key and models this stack serves; once some key may call only some
    models, every key has a policy, so a forgotten key does not silently reach every model; the rate-limit rules
    fit one BackendTrafficPolicy."""
    gw, out = cfg.gateway, []
    # An adapter is a model to clients: a key calls it only when its name is listed (its model's name does not
    # cover it).
    known, served = cfg.key_names, [n for m in cfg.models for n in m.served_names]
    for name in sorted(gw.keys):
        if name not in known:
            out.append((f"gateway.keys.{name}", f"no key '{name}' in gpu-burst:apiKeys; allowed: a policy for "
                        f"{', '.join(known)}, or add the key: `pulumi config set --secret --path 'apiKeys.{name}' "
                        "<key>`"))
        unserved = [m for m in gw.keys[name].models or [] if m not in served]
        if unserved:
            out.append((f"gateway.keys.{name}.models", f"{unserved} are not served by this stack; allowed: "
                        f"{', '.join(served) or 'the servedName of a model in gpu-burst:models'}"))
        elif len(set(gw.keys[name].models or [])) > edge_gateway.MAX_SCOPE_VALUES:
            out.append((f"gateway.keys.{name}.models", f"{len(set(gw.keys[name].models))} models; allowed: at most "
                        f"{edge_gateway.MAX_SCOPE_VALUES} per key (leave models out to allow every model)"))
    scoped = sorted(n for n, p in gw.keys.items() if p.models is not None and n in known)
    if scoped:
        for name in known:
            if name not in gw.keys:
                out.append((f"gateway.keys.{name}", f"key '{name}' has no policy while {scoped} may call only some "
                            f"models; allowed: a policy for every key, gateway.keys.{name}: {{}} for every model or "
                            "{models: [...]}"))
    budgets = sum((p.tokens_per_minute is not None) + (p.tokens_per_day is not None)
                  for n, p in gw.keys.items() if n in known)
    if not budgets and len(known) > edge_gateway.MAX_LOCAL_RULES:
        out.append(("apiKeys", f"{len(known)} keys need {len(known)} request limits but Envoy's local rate limit holds "
                    f"{edge_gateway.MAX_LOCAL_RULES}; allowed: at most {edge_gateway.MAX_LOCAL_RULES} keys, or a "
                    "token budget on some key (the limits then live in Redis)"))
    elif budgets and len(known) + budgets > edge_gateway.MAX_GLOBAL_RULES:
        out.append(("gateway.keys", f"{len(known)} request limits and {budgets} token budgets exceed the "
                    f"{edge_gateway.MAX_GLOBAL_RULES} rules of a global rate limit; allowed: at most "
                    f"{edge_gateway.MAX_GLOBAL_RULES} in total"))
    if budgets and not gw.envoy_gateway.install:
        # The global limits and their Redis live in Envoy Gateway's own configuration, which the stack writes only
        # into the release it installs.
        out.append(("gateway.envoyGateway.install", "false cannot carry token budgets (their Redis is configured in "
                    "the Envoy Gateway release the stack installs); allowed: true, or remove tokensPerMinute and "
                    "tokensPerDay from gateway.keys"))
    return out


def api_key_names(value: Any) -> list[str]:
    """Names of the keys in `gpu-burst:apiKeys` (a map name → key); the keys themselves are not kept."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return sorted(str(k) for k in value) if isinstance(value, dict) else []


def _check_model_on_pool(p: Problems, i: int, m: ModelConfig, pools: dict, gpu: GpuConfig) -> None:
    pool = pools.get(m.pool)
    if pool is None:
        p.add(f"models[{i}].pool", f"'{m.pool}' is not a pool of gpu.pools; allowed: {', '.join(sorted(pools))}")
        return
    per_node = max(pool.gpus_per_node)
    at = f"gpu.pools[{list(pools).index(m.pool)}]"
    n = pool.time_slicing
    if n and not m.shared_gpu:
        # Whole GPUs are never handed out on a time-sliced pool: the pod would wait for `nvidia.com/gpu` forever.
        p.add(f"models[{i}].sharedGpu", f"false, but pool '{m.pool}' time-slices its GPUs ({at}.timeSlicing {n}) and "
              "offers no whole GPU; allowed: sharedGpu: true (one slice per replica), or a pool without timeSlicing")
    elif m.shared_gpu and not n:
        p.add(f"models[{i}].sharedGpu", f"true, but pool '{m.pool}' hands out whole GPUs (no {at}.timeSlicing); "
              "allowed: false, or a pool with timeSlicing")
    elif m.shared_gpu and m.gpus > 1:
        p.add(f"models[{i}].gpus", f"{m.gpus} GPUs cannot be time-slices: a replica gets one slice of one GPU, and "
              "tensor parallelism needs whole GPUs; allowed: 1 with sharedGpu: true, or a pool without timeSlicing")
    elif m.gpus > per_node:
        p.add(f"models[{i}].gpus", f"{m.gpus} GPUs do not fit on one node of pool '{m.pool}' (gpusPerNode "
              f"{pool.gpus_per_node}); allowed: at most {per_node}, or a pool with larger nodes")
    elif n and m.max_replicas > pool.gpu_limit * n:
        p.add(f"models[{i}].maxReplicas",
              f"{m.max_replicas} replicas need {math.ceil(m.max_replicas / n)} GPUs at {n} slices per GPU, above pool "
              f"'{m.pool}' gpuLimit {pool.gpu_limit}; allowed: at most {pool.gpu_limit * n}, or raise {at}.gpuLimit")
    elif not n and m.gpus * m.max_replicas > pool.gpu_limit:
        # Rejected rather than warned: replicas beyond the pool's limit would wait Pending forever while KEDA
        # counts them as wanted. Several models may still together exceed a shared pool (they burst in turn).
        most = pool.gpu_limit // m.gpus
        p.add(f"models[{i}].maxReplicas",
              f"{m.max_replicas} replicas x {m.gpus} GPUs exceed pool '{m.pool}' gpuLimit {pool.gpu_limit}; "
              f"allowed: at most {most}, or raise gpu.pools[{list(pools).index(m.pool)}].gpuLimit")
    cache = quantity_value(m.cache_size)
    # Nodes get RAID0 unless they restore a snapshot; with auto that is decided at deploy, so both layouts must fit.
    if gpu.instance_store_raid0(None if gpu.snapshot_auto else gpu.data_volume_snapshot_id):
        _check_cache_on_instance_store(p, i, m, cache, [q for q in pools.values()
                                                        if gpu.traffic_class_of(q.name) == gpu.traffic_class_of(m.pool)])
        if not gpu.snapshot_auto:
            return  # the EBS volume holds no pod data; with auto, nodes that find a snapshot use it
    vol = gpu.volume_size_gib
    # The image shares the disk with the pods' ephemeral storage but is not part of Karpenter's allocatable figure,
    # while the kubelet evicts on the disk's real free space: the cache must fit in allocatable minus the image.
    room = ephemeral_allocatable_gib(vol) - IMAGE_HEADROOM_GIB
    if cache > room * GIB:
        p.add(f"models[{i}].cacheSize",
              f"'{m.cache_size}' does not fit on the GPU node volume (gpu.volumeSizeGib {vol}: Karpenter offers pods "
              f"{ephemeral_allocatable_gib(vol)} GiB of ephemeral-storage and the OS and vLLM image take "
              f"{IMAGE_HEADROOM_GIB} GiB of the same disk); allowed: at most {room}Gi, or raise gpu.volumeSizeGib")


def _check_cache_on_instance_store(p: Problems, i: int, m: ModelConfig, cache, pools: list) -> None:
    """With RAID0 the model cache (an emptyDir) lives on the instance store: it must fit on the instance with the
    least NVMe the model's traffic class may launch, beside the image, and within the ephemeral-storage Karpenter
    offers there; otherwise Karpenter silently moves the model to a larger, dearer size (or finds none)."""
    smallest = smallest_local_nvme({f for q in pools for f in q.instance_families},
                                   {n for q in pools for n in q.gpus_per_node if n >= m.gpus}, GPU_INSTANCE_SIZES)
    if smallest is None:
        return
    name, gb = smallest
    room = (nvme_allocatable_bytes(gb) - IMAGE_HEADROOM_GIB * GIB) // GIB  # the image is outside allocatable too
    if cache > room * GIB:
        p.add(f"models[{i}].cacheSize",
              f"'{m.cache_size}' does not fit on the instance store of {name} ({gb} GB NVMe, the smallest the "
              f"model's pools may launch; {IMAGE_HEADROOM_GIB} GiB of it hold the vLLM image and Karpenter keeps "
              f"1Gi + 10% back); allowed: at most {room}Gi, or gpu.instanceStore: none to keep the cache on "
              f"gpu.volumeSizeGib")


def ephemeral_allocatable_gib(volume_gib: int) -> int:
    """ephemeral-storage a GPU node offers pods, in whole GiB, as Karpenter computes it when it picks an instance:
    the volume minus kube-reserved 1Gi minus the nodefs eviction threshold of 10% (rounded up)
    (aws/karpenter-provider-aws@v1.14.1 pkg/providers/instancetype/types.go `kubeReservedResources`,
    `evictionThreshold`). A request above it never schedules: Karpenter finds no instance type that fits."""
    return volume_gib - 1 - math.ceil(volume_gib / 10)


class ConfigError(pulumi.RunError):
    """Invalid stack configuration (a RunError, so Pulumi prints the message without a stack trace)."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("invalid stack configuration:\n" + "\n".join(lines))


def _user_facing(line: str) -> str:
    # `region` is read from aws:region: name the key the user sets
    return line.replace(f"{NAMESPACE}:region:", "aws:region:", 1) if line.startswith(f"{NAMESPACE}:region:") else line


def problems(raw: dict[str, Any]) -> list[str]:
    """Every problem of a raw dict of `gpu-burst:*` values (keys without the namespace) plus `region`."""
    try:
        StackConfig.model_validate(raw)
    except ValidationError as e:
        return [_user_facing(line) for line in format_errors(StackConfig, e, raw)]
    return []


def validate(raw: dict[str, Any]) -> StackConfig:
    """Validate a raw dict of `gpu-burst:*` values (keys without the namespace) plus `region`."""
    try:
        return StackConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError([_user_facing(line) for line in format_errors(StackConfig, e, raw)]) from None


def _has_secure(v: Any) -> bool:
    if isinstance(v, dict):
        return set(v) == {"secure"} or any(_has_secure(x) for x in v.values())
    if isinstance(v, list):
        return any(_has_secure(x) for x in v)
    return False


def _plain_leaves(v: Any, at: str) -> list[str]:
    """Paths under a stack-file value that are not `secure:` (for a mapping of secrets such as apiKeys)."""
    if isinstance(v, dict) and set(v) != {"secure"}:
        return [p for k, x in v.items() for p in _plain_leaves(x, f"{at}.{k}")]
    return [] if isinstance(v, dict) else [at]


def raw_from_values(values: Mapping[str, Any], secret_keys: Collection[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """The raw dict :func:`validate` takes, from namespaced config values, and the problems of the keys themselves.

    `values` are `pulumi config` values (strings, structured ones as JSON) or a stack file's parsed `config:`
    mapping (where a secret reads `{secure: ...}`); `secret_keys` are the keys Pulumi reports as secret. Secret
    values never enter the raw dict: `hfToken` only sets `hfTokenSet`."""
    raw: dict[str, Any] = {}
    lines: list[str] = []
    secret = set(secret_keys)
    for key, value in values.items():
        ns, _, name = str(key).partition(":")
        if ns != NAMESPACE or not name:
            continue
        is_secret = key in secret or _has_secure(value)
        if name in SECRET_KEYS:
            if name == "apiKeys" and isinstance(value, dict):
                # a stack file's mapping: each key must be `secure:` on its own
                lines.extend(_plaintext_secret(name, sub) for sub in _plain_leaves(value, name))
            elif not is_secret:
                lines.append(_plaintext_secret(name))
            continue
        if name in LOADER_KEYS:
            lines.append(_loader_key(name))
            continue
        if is_secret:
            continue  # another secret (e.g. a stack's own): not part of the typed config
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass  # plain strings such as `environment: dev`
        raw[name] = value
    region = values.get("aws:region")
    if isinstance(region, str) and region:
        raw["region"] = region
    raw["hfTokenSet"] = bool(values.get(f"{NAMESPACE}:hfToken"))
    names = api_key_names(values.get(f"{NAMESPACE}:apiKeys"))
    if names:
        raw["apiKeyNames"] = names
    profile = values.get("aws:profile")
    if isinstance(profile, str) and profile:
        raw["awsProfile"] = profile
    return raw, lines


def _plaintext_secret(name: str, sub: str = "") -> str:
    if name == "apiKeys":
        at = sub or "apiKeys.<name>"
        return (f"{NAMESPACE}:{sub or name}: is in plain text in the stack file; a key must be a Pulumi secret: "
                f"`pulumi config rm {NAMESPACE}:{name}` then `pulumi config set --secret --path '{at}' <key>`")
    what = "<token>" if name == "hfToken" else "<key>"
    return (f"{NAMESPACE}:{name}: is in plain text in the stack file; it must be a Pulumi secret: "
            f"`pulumi config set --secret {name} {what}`")


def _loader_key(name: str) -> str:
    if name == "region":
        return (f"{NAMESPACE}:region: is not read (the AWS provider reads aws:region); use aws:region: "
                f"`pulumi config rm {NAMESPACE}:region && pulumi config set aws:region <region>`")
    return (f"{NAMESPACE}:{name}: is set by the program, not by config; remove it: `pulumi config rm "
            f"{NAMESPACE}:{name}` (set the token with `pulumi config set --secret hfToken <token>`)")


def _all_config() -> dict[str, Any]:
    from pulumi.runtime import config as rc

    merged = dict(rc.get_config_env())
    merged.update(rc.CONFIG.get())
    return merged


def _secret_keys(keys) -> set[str]:
    # `pulumi up`: the language host hands the program the secret key names in PULUMI_CONFIG_SECRET_KEYS (next to
    # PULUMI_CONFIG; pulumi/pulumi language hosts, `pulumiConfigSecretKeysVar`). The automation API and the test
    # mocks pass them to set_all_config(config, secret_keys), which is_config_secret reads.
    from pulumi.runtime import config as rc

    return set(rc.get_config_secret_keys_env()) | {k for k in keys if rc.is_config_secret(k)}


def raw_from_pulumi() -> tuple[dict[str, Any], list[str]]:
    """The namespace's keys from the running Pulumi program's config, and the problems of the keys themselves."""
    values = _all_config()
    return raw_from_values(values, _secret_keys(values))


def load() -> StackConfig:
    """Load and validate the stack configuration; raises :class:`ConfigError` listing every problem."""
    raw, lines = raw_from_pulumi()
    lines = lines + problems(raw)
    if lines:
        raise ConfigError(lines)
    return StackConfig.model_validate(raw)


__all__ = [
    "access_entry_principal", "same_principal",
    "AddonsConfig", "CapacityType", "ClusterConfig", "ClusterMode", "INSTALL_KEYS", "KARPENTER_MIN_FOR_FIELDS",
    "KARPENTER_MIN_FOR_KUBERNETES", "bottlerocket_variant_problems", "ConfigError", "Duration", "GatewayConfig",
    "GpuAmiFamily", "KeyPolicy", "RateLimitConfig", "RateLimitRedisConfig", "RedisMode", "ResolvedKeyPolicy",
    "GpuConfig", "GpuPoolConfig", "HttpAddonConfig", "InstanceStore", "KNOWN_GPU_FAMILIES", "KarpenterConfig", "KedaConfig", "LogType",
    "ModelConfig", "MonitoringConfig", "NAMESPACE", "NatGateways", "NetworkConfig", "NetworkMode", "NodeAmi",
    "NvidiaDevicePluginConfig", "LOADER_KEYS", "Problems", "SECRET_KEYS", "SUPPORTED_KUBERNETES_VERSIONS", "StackConfig", "SystemNodesConfig",
    "duration_seconds", "format_errors", "load", "GPU_NODE_ARCH", "SNAPSHOT_AUTO", "SNAPSHOT_TAG",
    "bottlerocket_release", "image_snapshot_tags", "snapshot_filters", "problems", "raw_from_pulumi", "raw_from_values", "validate",
]
