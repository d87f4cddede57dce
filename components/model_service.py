"""ModelService: one vLLM model that scales from zero without dropping a request.

Per model: a Deployment of the pinned vLLM image (replicas owned by KEDA, never by Pulumi), a ClusterIP Service,
a PodDisruptionBudget, a ServiceMonitor, the HTTP add-on InterceptorRoute that holds requests during a cold start,
and one KEDA ScaledObject with two triggers: the add-on's `external-push` (0→1 and back) and a Prometheus trigger
on vLLM's queue depth (1→N), plus one `cron` trigger per configured pre-warm window (at least N inside it).
"""

import math
from dataclasses import dataclass
from typing import Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from ._common import (GPU_PRESENT_LABEL, GPU_RESOURCE, GPU_TOLERATION, SHARED_GPU_RESOURCE, TIME_SLICING_TAINT_KEY,
                      TRAFFIC_CLASS_LABEL, model_termination_grace_seconds, child, deps_of, labels, token)

VLLM_PORT = 8000
PORT_NAME = "http"
CACHE_MOUNT = "/models"
API_KEY_SECRET_KEY = "apiKey"
"""Data key of the internal-credential Secret: the AI Gateway's BackendSecurityPolicy APIKey reads `apiKey`
(envoyproxy/ai-gateway@v1.1.0 aigateway.envoyproxy.io_backendsecuritypolicies.yaml) and vLLM reads the same one."""
HF_TOKEN_SECRET_KEY = "token"
PROBE_PERIOD_SECONDS = 1
"""startupProbe period: until the engine is up /health is a refused connection (vLLM binds its socket but listens only
once the engine is built), so a probe costs next to nothing, and the average wait after the engine comes up is half a
period, on the cold-start path of every held request. failureThreshold is sized from it to cover startup_seconds."""
READINESS_PERIOD_SECONDS = 2
"""readinessProbe period. The probe is an exec (readiness_program): /v1/models needs the API key, and an httpGet probe
would have to carry it in the pod spec. Its period is not on the cold-start path: once the startup probe succeeds the
kubelet runs the readiness probe at once for a started container without a result (kubernetes
pkg/kubelet/prober/prober_manager.go UpdatePodStatus, "Trigger an immediate run of the readinessProbe"), and
/v1/models answers from the same moment as /health. The period only matters when that first run fails and for
noticing a replica that stops answering (failureThreshold x period = 6 s); each run starts a Python interpreter in
the container, so 2 s rather than 1 s halves that steady cost for at most one extra second on a retried cold path."""
RUN_AS_UID = 1000
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""`--max-lora-rank` values vLLM 0.33 accepts (vllm/config/lora.py `MaxLoRARanks`)."""
DEFAULT_LORA_RANK = 16
"""vLLM's own default `--max-lora-rank` (LoRAConfig.max_lora_rank)."""
ADAPTERS_DIR = f"{CACHE_MOUNT}/adapters"
"""Where the `adapters` init container puts each adapter (`<dir>/<name>/`), on the model-cache emptyDir."""


def queue_depth_query(served_name: str) -> str:
    """PromQL of the 1→N trigger: requests waiting in vLLM's scheduler summed over replicas and engines. `or vector(0)`
    keeps the result defined at zero replicas (no series then), so KEDA never sees an empty result."""
    return f'sum(vllm:num_requests_waiting{{model_name="{served_name}"}}) or vector(0)'


def readiness_program(port: int) -> str:
    """Python run by the readiness probe: ready = the OpenAI API answers `/v1/models` for this pod's key.

    /v1/* needs the key. Python is what the vLLM image is built on (curl is not guaranteed there), and the key is read
    from the environment, so it is in neither the pod spec nor a process argv. urlopen raises, so the probe exits 1,
    on any non-2xx answer, refused connection or timeout."""
    return ("import os, urllib.request as r; r.urlopen(r.Request("
            f"'http://127.0.0.1:{port}/v1/models', headers={{'Authorization': 'Bearer ' + "
            "os.environ['VLLM_API_KEY']}), timeout=4)")


class PrewarmWindowArgs(TypedDict):
    """A scheduled pre-warm window: KEDA cron trigger metadata (kedacore/keda@v2.20.2 pkg/scalers/cron_scaler.go)."""

    start: str
    """Five-field cron expression (no seconds, no descriptors) at which the window opens."""
    end: str
    """Five-field cron expression at which it closes (the first end after each start)."""
    timezone: str
    """IANA time zone both expressions are read in."""
    replicas: int
    """Replicas kept inside the window (the trigger's desiredReplicas)."""


def prewarm_problems(windows: list, max_replicas: int) -> list[str]:
    """Why these windows cannot be kept ([] when they can)."""
    return [f"prewarm[{i}].replicas {w['replicas']} is outside 1..max_replicas ({max_replicas})"
            for i, w in enumerate(windows) if not 1 <= w["replicas"] <= max_replicas]


def prewarm_triggers(windows: list, max_replicas: int) -> list[dict]:
    """One KEDA `cron` trigger per window. The scaler reports desiredReplicas while active (0 outside) against an
    AverageValue target of 1, so the HPA's proposal for it is desiredReplicas, and the HPA takes the largest proposal
    of all triggers: at least `replicas` inside the window, more when traffic asks. Being active, it also takes the
    model from zero; outside every window the cooldown applies as for a model without traffic."""
    problems = prewarm_problems(windows, max_replicas)
    if problems:
        raise ValueError("; ".join(problems))
    out = []
    for i, w in enumerate(windows):
        out.append({"type": "cron", "name": f"prewarm-{i}",
                    # The default, pinned: with `Value` the HPA would multiply the current replica count instead.
                    "metricType": "AverageValue",
                    "metadata": {"timezone": w["timezone"], "start": w["start"], "end": w["end"],
                                 "desiredReplicas": str(w["replicas"])}})
    return out


class WeightsSourceArgs(TypedDict):
    """Where a model's pods stream their weights from (a ModelWeights component's outputs)."""

    model_uri: pulumi.Input[str]
    """`s3://bucket/<hfModelId>/<revision>/` passed to vLLM as the model."""
    service_account_name: pulumi.Input[str]
    """Service account bound to the read-only Pod Identity role of that prefix."""
    region: pulumi.Input[str]
    """Region of the bucket (AWS_REGION; the streamer's C++ S3 client does not guess it)."""
    concurrency: int
    """Run:ai streamer reader threads (`concurrency`)."""
    memory_limit_bytes: int
    """Run:ai streamer CPU buffer (`memory_limit`)."""
    compile_cache_uri: NotRequired[pulumi.Input[str]]
    """`s3://` prefix of the model's torch.compile cache: restored before vLLM starts, new files saved once it is up."""
    tools_config_map: NotRequired[pulumi.Input[str]]
    """ConfigMap with compile_cache.py (needed with compile_cache_uri)."""


def weights_args(model: str, weights: Optional[WeightsSourceArgs]) -> list:
    """vLLM's model argument (positional: `serve --model=X` is deprecated) and its loader flags.

    Checked against the vllm 0.33.0 wheel: `--load-format runai_streamer`; `--model-loader-extra-config` accepts
    exactly the keys distributed/concurrency/memory_limit (model_loader/runai_streamer_loader.py:135-173)."""
    if weights is None:
        return [model]
    extra = pulumi.Output.json_dumps({"concurrency": weights["concurrency"],
                                      "memory_limit": weights["memory_limit_bytes"]})
    return [weights["model_uri"], "--load-format=runai_streamer",
            pulumi.Output.concat("--model-loader-extra-config=", extra)]


class AdapterSourceArgs(TypedDict):
    """A LoRA adapter the replicas load at startup (vLLM `--lora-modules`), from the model store."""

    name: str
    """Name clients send as `model` for it (vLLM's LoRA name; the `x-ai-eg-model` value the route matches)."""
    uri: pulumi.Input[str]
    """`s3://` prefix of its files (ModelWeights `adapter_uris`), readable by the weights' service account."""


def lora_args(adapters: list, max_loras: int, max_rank: int) -> list[str]:
    """vLLM's LoRA flags for adapters synced to ADAPTERS_DIR (checked against the vllm 0.33.0 wheel:
    engine/arg_utils.py LoRAConfig group, entrypoints/common/cli_args.py LoRAParserAction). `--lora-modules` takes
    every adapter after one flag: the action replaces its list each time the flag repeats. Every adapter fits in CPU
    memory (`--max-cpu-loras`), so swapping one into a GPU slot never reads the disk again."""
    if not adapters:
        return []
    return ["--enable-lora", f"--max-loras={max_loras}", f"--max-cpu-loras={len(adapters)}",
            f"--max-lora-rank={max_rank}", "--lora-modules",
            *(f"{a['name']}={ADAPTERS_DIR}/{a['name']}" for a in adapters)]


def lora_problems(served: str, adapters: list, max_loras: int, max_rank: int) -> list[str]:
    """Why these adapters cannot be served as asked ([] when they can)."""
    out = []
    names = [a["name"] for a in adapters]
    if served in names or len(set(names)) != len(names):
        out.append(f"adapter names {names} repeat each other or the served name '{served}'")
    if adapters and not 1 <= max_loras <= len(adapters):
        out.append(f"max_loras {max_loras} is outside 1..{len(adapters)} (the number of adapters)")
    if max_rank not in LORA_RANKS:
        out.append(f"max_lora_rank {max_rank} is not one of {list(LORA_RANKS)}")
    return out


TOOLS_MOUNT = "/opt/gpu-burst"
COMPILE_CACHE_WRAPPER = (
    f"python3 {TOOLS_MOUNT}/compile_cache.py restore; "
    # The saver polls the port vLLM serves on (its own default is only a fallback for a manual run).
    f"(python3 {TOOLS_MOUNT}/compile_cache.py save --health http://127.0.0.1:{VLLM_PORT}/health &); "
    'exec vllm serve "$@"')
"""Restore the compile cache, leave a saver behind that uploads new artifacts once /health answers, then become
vLLM (exec: it stays the container's main process and receives SIGTERM)."""


def vllm_command(weights: Optional[WeightsSourceArgs]) -> list[str]:
    if weights is not None and weights.get("compile_cache_uri"):
        return ["/bin/sh", "-c", COMPILE_CACHE_WRAPPER, "vllm"]
    return ["vllm", "serve"]


def weights_env(weights: Optional[WeightsSourceArgs]) -> list[dict]:
    """Environment of the streamer path: no Hub access at all, logs that time the weights phase."""
    if weights is None:
        return []
    return [
        {"name": "AWS_REGION", "value": weights["region"]},
        {"name": "AWS_DEFAULT_REGION", "value": weights["region"]},
        # Config and tokenizer come from S3 too (vLLM copies them next to the weights); nothing may reach the Hub.
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        # The streamer's own "Overall time to stream ..." line is only printed with this (runai_model_streamer 0.17.1).
        {"name": "RUNAI_STREAMER_LOG_TO_STDERR", "value": "1"},
        {"name": "VLLM_DISABLE_LOG_LOGO", "value": "1"},
        *([{"name": "COMPILE_CACHE_URI", "value": weights["compile_cache_uri"]}]
          if weights.get("compile_cache_uri") else []),
    ]


def adapters_init_container(adapters: list, image, weights: WeightsSourceArgs, security: dict) -> dict:
    """Copies every adapter from the model store to ADAPTERS_DIR before vLLM starts. It runs the model's own image
    (already on the node for the vLLM container, with the boto3 the streamer lists S3 with) and the model's
    read-only grant: EKS Pod Identity injects its credentials into init containers too
    (aws/amazon-eks-pod-identity-webhook pkg/handler/handler.go)."""
    return {
        "name": "adapters",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", f"{TOOLS_MOUNT}/sync_adapters.py", "--dest", ADAPTERS_DIR],
        "args": [pulumi.Output.concat(a["name"], "=", a["uri"]) for a in adapters],
        "env": [{"name": "AWS_REGION", "value": weights["region"]},
                {"name": "AWS_DEFAULT_REGION", "value": weights["region"]},
                {"name": "HOME", "value": f"{CACHE_MOUNT}/home"}, {"name": "PYTHONUNBUFFERED", "value": "1"}],
        # Below the vLLM container's requests, so the pod's effective requests stay the same.
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "volumeMounts": [{"name": "model-cache", "mountPath": CACHE_MOUNT},
                         {"name": "tools", "mountPath": TOOLS_MOUNT, "readOnly": True}],
        "securityContext": security,
    }


class ModelServiceArgs(TypedDict):
    """Inputs of one ModelService."""

    namespace: pulumi.Input[str]
    """Namespace of every object of the model (the InterceptorRoute must live next to its Service)."""
    served_name: str
    """`--served-model-name`, the `model_name` metric label, and the name of the Deployment/Service/route/ScaledObject."""
    hf_model_id: str
    """Hugging Face repository id passed as `--model`."""
    image: pulumi.Input[str]
    """Pinned vLLM OpenAI-server image (possibly its pull-through-cache reference, an Output)."""
    gpus: int
    """GPUs per replica (`nvidia.com/gpu` request and `--tensor-parallel-size`)."""
    shared_gpu: NotRequired[bool]
    """Each replica requests one time-slice (`nvidia.com/gpu.shared`) instead of whole GPUs and tolerates the taint of
    the time-sliced pools; needs `gpus` 1 and a traffic class whose pools time-slice. Default False."""
    max_model_len: int
    """`--max-model-len`."""
    gpu_memory_utilization: float
    """`--gpu-memory-utilization`."""
    traffic_class: pulumi.Input[str]
    """Traffic class (node label `gpu-burst.io/traffic-class`) the pods select; Karpenter picks among its pools by
    NodePool weight."""
    min_replicas: int
    """KEDA minReplicaCount (0 = scale to zero)."""
    max_replicas: int
    """KEDA maxReplicaCount."""
    idle_seconds: int
    """KEDA cooldownPeriod: seconds without traffic before scaling to zero."""
    target_queue_depth: int
    """Waiting requests per replica that trigger another replica (Prometheus trigger threshold)."""
    target_concurrency: int
    """In-flight requests per replica at the interceptor (the route's scaling metric)."""
    startup_seconds: int
    """Startup budget: node + image + weights + compile; the startupProbe allows at least this long."""
    drain_seconds: int
    """preStop delay so in-flight requests finish before SIGTERM."""
    api_key_secret_name: pulumi.Input[str]
    """Secret (key `apiKey`) in `namespace` with the internal credential the edge injects; vLLM reads it from
    VLLM_API_KEY and refuses any request without it (clients' keys never reach vLLM)."""
    prometheus_url: pulumi.Input[str]
    """Prometheus base URL for KEDA's prometheus trigger."""
    external_scaler_address: pulumi.Input[str]
    """host:port of the HTTP add-on external scaler."""
    readiness_timeout: pulumi.Input[str]
    """How long the interceptor holds a request while the model cold-starts (route `timeouts.readiness`)."""
    response_header_timeout: pulumi.Input[str]
    """Time to first response byte once the request reached a ready pod (route `timeouts.responseHeader`)."""
    model_header: pulumi.Input[str]
    """Request header the route matches on (value = served name): pass the edge's own output (the header it sets),
    so the two cannot drift apart."""
    extra_args: NotRequired[list[str]]
    """Additional vLLM flags."""
    adapters: NotRequired[list[AdapterSourceArgs]]
    """LoRA adapters served by the same replicas: an init container copies them from the model store (needs
    `weights` with `tools_config_map`), vLLM loads them at startup, and the InterceptorRoute routes and counts their
    requests as this model's. No adapter adds a GPU."""
    max_loras: NotRequired[int]
    """Adapters one batch may mix (`--max-loras`). Default: every adapter."""
    max_lora_rank: NotRequired[int]
    """Largest adapter rank (`--max-lora-rank`), one of LORA_RANKS. Default 16."""
    prewarm: NotRequired[list[PrewarmWindowArgs]]
    """Scheduled pre-warm windows: GPUs bought on a schedule, without a request (explicit operator config only)."""
    hf_token: NotRequired[pulumi.Input[str]]
    """Hugging Face token (a Pulumi secret) for gated models; stored in a Secret, read from HF_TOKEN."""
    weights: NotRequired[WeightsSourceArgs]
    """Load the weights from the model store with the Run:ai streamer instead of downloading them from the Hub."""
    cpu: NotRequired[str]
    """CPU request."""
    memory: NotRequired[str]
    """Memory request and limit."""
    shm_size: NotRequired[str]
    """Size of the /dev/shm memory emptyDir (NCCL/PyTorch IPC for tensor parallelism)."""
    cache_size: NotRequired[str]
    """Size limit of the model cache emptyDir (also requested as ephemeral-storage)."""
    scrape_interval: NotRequired[str]
    """ServiceMonitor scrape interval (default 5s)."""
    monitoring_release_label: NotRequired[pulumi.Input[str]]
    """Value of a `release` label on the ServiceMonitor ("": none; harmless, the Prometheus selects monitors
    without it)."""
    monitor_labels: NotRequired[pulumi.Input[dict[str, str]]]
    """More ServiceMonitor labels: those a Prometheus that selects monitors by label needs (e.g. an existing
    kube-prometheus-stack's `release`)."""


def _check_adapters(name: str, args: ModelServiceArgs) -> None:
    """ValueError naming the component when vLLM could not serve the adapters, before anything is registered."""
    adapters = list(args.get("adapters", []))
    problems = lora_problems(args["served_name"], adapters, args.get("max_loras", len(adapters)),
                             args.get("max_lora_rank", DEFAULT_LORA_RANK))
    if adapters and not (args.get("weights") or {}).get("tools_config_map"):
        problems.append("adapters need weights with tools_config_map (they are synced from the model store)")
    if problems:
        raise ValueError(f"ModelService '{name}': " + "; ".join(problems))


@dataclass(frozen=True)
class _ServicePlan:
    """A ModelService's arguments, checked and derived once, before any child is declared."""

    name: str
    args: ModelServiceArgs
    deps: list
    """The caller's `depends_on`, passed to each child."""
    served: str
    namespace: pulumi.Input[str]
    adapters: list
    labels: dict
    selector: dict
    """Pod labels the Service, the PodDisruptionBudget and the ServiceMonitor select."""


def _service_plan(name: str, args: ModelServiceArgs, deps: list) -> _ServicePlan:
    if args["min_replicas"] > args["max_replicas"]:
        raise ValueError(f"ModelService '{name}': min_replicas {args['min_replicas']} > max_replicas "
                         f"{args['max_replicas']}")
    if args.get("shared_gpu") and args["gpus"] != 1:
        raise ValueError(f"ModelService '{name}': shared_gpu with gpus {args['gpus']}; allowed: gpus 1 (a replica "
                         "gets one time-slice of one GPU)")
    served = args["served_name"]
    return _ServicePlan(
        name=name, args=args, deps=deps, served=served, namespace=args["namespace"],
        adapters=list(args.get("adapters", [])),
        labels=labels("model-service", served, {"app.kubernetes.io/name": "vllm", "gpu-burst.io/model": served}),
        selector={"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": served})


class ModelService(pulumi.ComponentResource):
    """A vLLM model served from zero: Deployment + Service + PDB + ServiceMonitor + InterceptorRoute + ScaledObject."""

    deployment_name: pulumi.Output[str]
    """Name of the Deployment (= served name)."""
    service_name: pulumi.Output[str]
    """Name of the ClusterIP Service (= served name)."""
    route_name: pulumi.Output[str]
    """Name of the InterceptorRoute (= served name)."""
    scaled_object_name: pulumi.Output[str]
    """Name of the ScaledObject (= served name)."""
    queue_query: pulumi.Output[str]
    """PromQL of the Prometheus trigger."""

    def __init__(self, name: str, args: ModelServiceArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        _check_adapters(name, args)
        super().__init__(token("ModelService"), name, None, opts)
        p = _service_plan(name, args, deps_of(opts))
        hf_secret = self._hf_token_secret(p)
        self._workload(p, hf_secret)
        self._monitor(p)
        self._route(p)
        self._scaler(p)
        self._outputs(p)

    def _hf_token_secret(self, p: "_ServicePlan") -> Optional[k8s.core.v1.Secret]:
        """The Hugging Face token of a gated model, read by vLLM from HF_TOKEN (None without a token)."""
        if p.args.get("hf_token") is None:
            return None
        return k8s.core.v1.Secret(
            f"{p.name}-hf-token",
            metadata={"namespace": p.namespace, "labels": p.labels},
            type="Opaque",
            string_data={HF_TOKEN_SECRET_KEY: pulumi.Output.secret(p.args["hf_token"])},
            opts=child(self, p.deps, additional_secret_outputs=["data", "stringData"]),
        )

    def _workload(self, p: "_ServicePlan", hf_secret: Optional[k8s.core.v1.Secret]) -> None:
        """The vLLM Deployment (created at minReplicas, then KEDA's), its ClusterIP Service and its
        PodDisruptionBudget."""
        name, served, ns, lbl, deps = p.name, p.served, p.namespace, p.labels, p.deps
        self.deployment = k8s.apps.v1.Deployment(
            name,
            metadata={"name": served, "namespace": ns, "labels": lbl,
                      # A rollout of a serving model waits for GPU nodes; do not block `pulumi up` on it.
                      "annotations": {"pulumi.com/skipAwait": "true"}},
            spec=self._deployment_spec(p.args, lbl, p.selector, hf_secret),
            # Created with minReplicas (0: no GPU is bought by `pulumi up`), then owned by KEDA: ignoreChanges keeps
            # an update from resetting what KEDA set (test_creating_a_model_buys_no_gpu_and_updates_never_reset_keda).
            opts=child(self, deps, ignore_changes=["spec.replicas"]),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": served, "namespace": ns, "labels": lbl},
            spec={"type": "ClusterIP", "selector": p.selector,
                  "ports": [{"name": PORT_NAME, "port": VLLM_PORT, "targetPort": PORT_NAME, "protocol": "TCP",
                             "appProtocol": "http"}]},
            opts=child(self, deps),
        )
        self.pdb = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": served, "namespace": ns, "labels": lbl},
            spec={"maxUnavailable": 1, "selector": {"matchLabels": p.selector},
                  # A replica still loading weights is not Ready; let drains evict it instead of blocking forever.
                  "unhealthyPodEvictionPolicy": "AlwaysAllow"},
            opts=child(self, deps),
        )

    def _monitor(self, p: "_ServicePlan") -> None:
        """The ServiceMonitor that scrapes vLLM's metrics (the queue depth the scaler reads among them)."""
        args, lbl, selector = p.args, p.labels, p.selector
        # Either may come from another stack's outputs (AddedModel), so both are read as Inputs.
        sm_labels = pulumi.Output.all(args.get("monitor_labels"), args.get("monitoring_release_label")).apply(
            lambda v: {**(v[0] or {}), **lbl, **({"release": v[1]} if v[1] else {})})
        interval = args.get("scrape_interval", "5s")
        self.service_monitor = k8s.apiextensions.CustomResource(
            f"{p.name}-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={"name": p.served, "namespace": p.namespace, "labels": sm_labels},
            spec={
                # The Service's own labels (an Output), so the monitor cannot drift from the Service it scrapes.
                "selector": {"matchLabels": self.service.metadata.labels.apply(
                    lambda have: {k: have[k] for k in selector})},
                "namespaceSelector": {"matchNames": [self.service.metadata.namespace]},
                "endpoints": [{"port": PORT_NAME, "path": "/metrics", "scheme": "http", "interval": interval,
                               "scrapeTimeout": interval, "honorLabels": False}],
            },
            opts=child(self, p.deps),
        )

    def _route(self, p: "_ServicePlan") -> None:
        """The HTTP add-on InterceptorRoute that holds the model's requests (and its adapters') during a cold
        start."""
        args = p.args
        # One rule per name (a header match holds one value): an adapter's requests reach this Service and count
        # in this route's concurrency, which wakes and scales this Deployment (http-add-on v0.15.0
        # pkg/routing/tablememory.go, interceptor/middleware/counting.go count per InterceptorRoute).
        rules = [{"hosts": ["*"], "paths": [{"value": "/v1"}],
                  "headers": [{"name": args["model_header"], "value": n}]}
                 for n in [p.served, *(a["name"] for a in p.adapters)]]
        self.route = k8s.apiextensions.CustomResource(
            f"{p.name}-route",
            api_version="http.keda.sh/v1beta1",
            kind="InterceptorRoute",
            metadata={"name": p.served, "namespace": p.namespace, "labels": p.labels},
            spec={
                "target": {"service": self.service.metadata.name, "portName": PORT_NAME},
                # Only /v1/* is routed: vLLM's --api-key guards /v1 but not /invocations, /tokenize, /pooling, ...
                "rules": rules,
                "scalingMetric": {"concurrency": {"targetValue": args["target_concurrency"]}},
                "timeouts": {"readiness": args["readiness_timeout"],
                             "responseHeader": args["response_header_timeout"]},
            },
            opts=child(self, p.deps),
        )

    def _scaler(self, p: "_ServicePlan") -> None:
        """The KEDA ScaledObject: the interceptor's external-push trigger (0↔1), vLLM's queue depth (1→N) and one
        cron trigger per pre-warm window."""
        args = p.args
        # Adapter requests wait in the same engine, whose metrics carry the served name only (vllm 0.33.0
        # v1/metrics/loggers.py labels every series with model_config.served_model_name).
        query = queue_depth_query(p.served)
        self.scaled_object = k8s.apiextensions.CustomResource(
            f"{p.name}-scaler",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata={"name": p.served, "namespace": p.namespace, "labels": p.labels},
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                   "name": self.deployment.metadata.name},
                "minReplicaCount": args["min_replicas"],
                "maxReplicaCount": args["max_replicas"],
                "pollingInterval": 5,
                "cooldownPeriod": args["idle_seconds"],
                # The Deployment is created at minReplicas, so there is no first replica to protect: a cooldown
                # here would only keep a GPU node for nobody.
                "initialCooldownPeriod": 0,
                "advanced": {
                    "restoreToOriginalReplicaCount": False,
                    "horizontalPodAutoscalerConfig": {"behavior": {
                        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                    "policies": [{"type": "Pods", "value": 2, "periodSeconds": 15},
                                                 {"type": "Percent", "value": 100, "periodSeconds": 15}]},
                        "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Min",
                                      "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}]},
                    }},
                },
                "triggers": [
                    {"type": "external-push", "name": "interceptor",
                     "metadata": {"scalerAddress": args["external_scaler_address"],
                                  "interceptorRoute": self.route.metadata.apply(lambda m: m["name"]),
                                  # Not read by the scaler (v0.15.0 scaler/handlers.go reads interceptorRoute only):
                                  # it makes a change of the route's target a change of this ScaledObject, whose new
                                  # generation is what makes KEDA re-ask GetMetricSpec and update the HPA target
                                  # (kedacore/http-add-on#1656).
                                  "concurrencyTargetValue": str(args["target_concurrency"])}},
                    {"type": "prometheus", "name": "queue-depth", "metricType": "AverageValue",
                     "metadata": {"serverAddress": args["prometheus_url"], "query": query,
                                  "threshold": str(args["target_queue_depth"]),
                                  # Activation (0↔1) belongs to the interceptor; this trigger only adds replicas.
                                  "activationThreshold": str(args["target_queue_depth"])}},
                    *prewarm_triggers(args.get("prewarm", []), args["max_replicas"]),
                ],
            },
            opts=child(self, p.deps + [self.route, self.deployment]),
        )

    def _outputs(self, p: "_ServicePlan") -> None:
        self.deployment_name = self.deployment.metadata.name
        self.service_name = self.service.metadata.name
        self.route_name = self.route.metadata.apply(lambda m: m["name"])
        self.scaled_object_name = self.scaled_object.metadata.apply(lambda m: m["name"])
        self.queue_query = pulumi.Output.from_input(queue_depth_query(p.served))
        self.register_outputs({"deployment_name": self.deployment_name, "service_name": self.service_name,
                               "route_name": self.route_name, "scaled_object_name": self.scaled_object_name,
                               "queue_query": self.queue_query})

    @staticmethod
    def _deployment_spec(args: ModelServiceArgs, lbl: dict, selector: dict, hf_secret) -> dict:
        served = args["served_name"]
        gpus = args["gpus"]
        cache_size = args.get("cache_size", "60Gi")
        drain = args["drain_seconds"]
        startup_failures = math.ceil(args["startup_seconds"] / PROBE_PERIOD_SECONDS)
        weights = args.get("weights")
        adapters = list(args.get("adapters", []))
        shared = bool(args.get("shared_gpu"))
        # A slice is its own resource (never a whole GPU) on tainted pools that only opted-in pods tolerate.
        gpu_request = {SHARED_GPU_RESOURCE: "1"} if shared else {GPU_RESOURCE: str(gpus)}
        tolerations = [dict(GPU_TOLERATION),
                       *([{"key": TIME_SLICING_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]
                         if shared else [])]
        vllm_args = [
            *weights_args(args["hf_model_id"], weights),
            f"--served-model-name={served}",
            "--host=0.0.0.0",
            f"--port={VLLM_PORT}",
            f"--tensor-parallel-size={gpus}",
            f"--max-model-len={args['max_model_len']}",
            f"--gpu-memory-utilization={args['gpu_memory_utilization']}",
            *lora_args(adapters, args.get("max_loras", len(adapters)), args.get("max_lora_rank", DEFAULT_LORA_RANK)),
            *args.get("extra_args", []),
        ]
        env = [
            # The API key never appears in the spec: vLLM reads VLLM_API_KEY when --api-key is absent.
            {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": args["api_key_secret_name"],
                                                                     "key": API_KEY_SECRET_KEY}}},
            # Every cache lives on the model-cache volume so the container can run as a non-root user.
            {"name": "HOME", "value": f"{CACHE_MOUNT}/home"},
            {"name": "HF_HOME", "value": f"{CACHE_MOUNT}/hf"},
            {"name": "XDG_CACHE_HOME", "value": f"{CACHE_MOUNT}/cache"},
            {"name": "VLLM_CACHE_ROOT", "value": f"{CACHE_MOUNT}/vllm"},
            {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
            # Skips memory profiling on a boot whose fingerprint matches a saved plan, without changing the
            # compile-cache key (docs/cold-start.md, "Startup plan").
            {"name": "VLLM_ENABLE_STARTUP_PLAN", "value": "1"},
            {"name": "DO_NOT_TRACK", "value": "1"},
            *weights_env(weights),
        ]
        if hf_secret is not None:
            env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": hf_secret.metadata.name,
                                                                            "key": HF_TOKEN_SECRET_KEY}}})
        ready_cmd = readiness_program(VLLM_PORT)
        container = {
            "name": "vllm",
            "image": args["image"],
            "imagePullPolicy": "IfNotPresent",
            "command": vllm_command(weights),
            "args": vllm_args,
            "env": env,
            "ports": [{"name": PORT_NAME, "containerPort": VLLM_PORT, "protocol": "TCP"}],
            "resources": {
                "requests": {"cpu": args.get("cpu", "4"), "memory": args.get("memory", "16Gi"),
                             "ephemeral-storage": cache_size, **gpu_request},
                "limits": {"memory": args.get("memory", "16Gi"), **gpu_request},
            },
            "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"},
                             {"name": "model-cache", "mountPath": CACHE_MOUNT},
                             *([{"name": "tools", "mountPath": TOOLS_MOUNT, "readOnly": True}]
                               if weights and weights.get("tools_config_map") else [])],
            # /health answers once the engine is up (connection refused while weights load).
            "startupProbe": {"httpGet": {"path": "/health", "port": PORT_NAME}, "periodSeconds": PROBE_PERIOD_SECONDS,
                             "timeoutSeconds": 5, "failureThreshold": startup_failures},
            "readinessProbe": {"exec": {"command": ["python3", "-c", ready_cmd]}, "periodSeconds": READINESS_PERIOD_SECONDS,
                               "timeoutSeconds": 5, "failureThreshold": 3, "successThreshold": 1},
            "livenessProbe": {"httpGet": {"path": "/health", "port": PORT_NAME}, "periodSeconds": 15,
                              "timeoutSeconds": 10, "failureThreshold": 4},
            # Endpoint removal propagates while we sleep; in-flight streams finish before SIGTERM.
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(drain)]}}},
            "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                                "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
                                "runAsUser": RUN_AS_UID, "runAsGroup": RUN_AS_UID,
                                "seccompProfile": {"type": "RuntimeDefault"}},
        }
        return {
            "replicas": args["min_replicas"],
            "selector": {"matchLabels": selector},
            "revisionHistoryLimit": 3,
            # A rollout waits for a new GPU node + load; the default 600 s deadline would flag it as failed.
            "progressDeadlineSeconds": args["startup_seconds"] + 300,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": {**lbl, **selector},
                    # Karpenter must not consolidate/drift the node under a serving replica (mid-stream removal).
                    # Trade-off: such nodes are only removed after KEDA scales the model to zero (or on expiry).
                    "annotations": {"karpenter.sh/do-not-disrupt": "true"},
                },
                "spec": {
                    # Pod Identity injects its own projected token; the Kubernetes API token stays unmounted.
                    "automountServiceAccountToken": False,
                    **({"serviceAccountName": weights["service_account_name"]} if weights else {}),
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": model_termination_grace_seconds(drain),
                    # The traffic class, not one NodePool: every pool of the class can take the pod, by weight.
                    "nodeSelector": {TRAFFIC_CLASS_LABEL: args["traffic_class"], GPU_PRESENT_LABEL: "true"},
                    "tolerations": tolerations,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_UID, "runAsGroup": RUN_AS_UID,
                                        "fsGroup": RUN_AS_UID, "seccompProfile": {"type": "RuntimeDefault"}},
                    **({"initContainers": [adapters_init_container(adapters, args["image"], weights,
                                                                   container["securityContext"])]}
                       if adapters else {}),
                    "containers": [container],
                    "volumes": [
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": args.get("shm_size", "8Gi")}},
                        # Node-local scratch on the GPU node's gp3 data volume (config/tokenizer copies, the compile
                        # cache): the node exists only while the model runs, so a PVC would be re-attached/AZ-pinned
                        # for nothing; the weights themselves stream from S3 into GPU memory.
                        {"name": "model-cache", "emptyDir": {"sizeLimit": cache_size}},
                        *([{"name": "tools", "configMap": {"name": weights["tools_config_map"]}}]
                          if weights and weights.get("tools_config_map") else []),
                    ],
                },
            },
        }
