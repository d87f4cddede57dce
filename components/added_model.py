"""AddedModel: a model that another Pulumi program adds to a running gpu-burst cluster, with the cluster's own parts.

Its weights are staged to the cluster's model store (ModelWeights), it is served and scaled from zero like the cluster
stack's models (ModelService, wired to the cluster's Prometheus, KEDA HTTP add-on and internal key), and the edge
routes it and lists it in GET /v1/models (a ModelRoute on the shared Gateway). Everything it needs from the cluster is
a SharedClusterArgs, which the cluster stack exports: `shared_cluster(pulumi.StackReference(...))` reads it.
"""

from typing import Optional, TypedDict

import pulumi
from typing_extensions import NotRequired

from ._common import token
from .image_cache import mirrored
from .model_route import ModelRoute, route_problems
from .model_service import (DEFAULT_LORA_RANK, ModelService, PrewarmWindowArgs, lora_problems,
                            prewarm_problems)
from .model_store import AdapterWeightsArgs, ModelWeights


class SharedClusterArgs(TypedDict):
    """What a gpu-burst cluster stack exports for other programs: each field is the stack output of the same name in
    camelCase (`gateway_name` → `gatewayName`), which is how `shared_cluster` reads them."""

    inference_namespace: pulumi.Input[str]
    """Namespace of the models, the Gateway, its routes and the internal key Secret."""
    gateway_name: pulumi.Input[str]
    """The shared Gateway every ModelRoute attaches to."""
    interceptor_backend_name: pulumi.Input[str]
    """AIServiceBackend of the KEDA HTTP add-on interceptor (with the internal key injected)."""
    route_request_timeout: pulumi.Input[str]
    """Total request timeout of the edge's route rules (Gateway API duration)."""
    route_stream_idle_timeout: pulumi.Input[str]
    """Stream idle timeout of the edge's route rules (Gateway API duration)."""
    model_header: pulumi.Input[str]
    """Header the edge sets from the body's `model` (`x-ai-eg-model`); the InterceptorRoute matches it."""
    internal_key_secret_name: pulumi.Input[str]
    """Secret (key `apiKey`) with the credential the edge injects and vLLM enforces."""
    prometheus_url: pulumi.Input[str]
    """In-cluster Prometheus URL for the queue-depth trigger."""
    external_scaler_address: pulumi.Input[str]
    """host:port of the HTTP add-on external scaler."""
    interceptor_readiness_timeout: pulumi.Input[str]
    """How long the interceptor holds a request during a cold start (Go duration)."""
    interceptor_response_header_timeout: pulumi.Input[str]
    """Time to the first response byte once a replica is ready (Go duration)."""
    model_store_bucket: pulumi.Input[str]
    """The cluster's model store bucket."""
    cluster_name: pulumi.Input[str]
    """EKS cluster name (Pod Identity associations of the weights' roles)."""
    region: pulumi.Input[str]
    """AWS region of the cluster and its model store."""
    gpu_traffic_classes: pulumi.Input[dict[str, str]]
    """GPU pool → traffic class (node label `gpu-burst.io/traffic-class`) its nodes carry."""
    models: pulumi.Input[list[str]]
    """Served names of the cluster stack's own models (an added model may not take one)."""
    adapters: NotRequired[pulumi.Input[dict[str, list[str]]]]
    """The cluster stack's models' LoRA adapter names, per model (taken too)."""
    monitoring_release_label: NotRequired[pulumi.Input[str]]
    """`release` label of the cluster's ServiceMonitors ("" or absent: none)."""
    service_monitor_labels: NotRequired[pulumi.Input[dict[str, str]]]
    """Labels the cluster's Prometheus selects ServiceMonitors by ({} or absent: it selects every monitor)."""
    image_cache_registry: NotRequired[pulumi.Input[str]]
    """Registry of the cluster's ECR pull-through cache for Docker Hub ("" or absent: images are pulled as given)."""
    image_cache_prefix: NotRequired[pulumi.Input[str]]
    """Repository prefix of that cache."""


def stack_output_name(field: str) -> str:
    """The cluster stack output holding a SharedClusterArgs field: its name in camelCase."""
    head, *rest = field.split("_")
    return head + "".join(w.capitalize() for w in rest)


def shared_cluster(stack: pulumi.StackReference) -> SharedClusterArgs:
    """Every SharedClusterArgs field from a cluster stack's outputs; a required output it lacks fails with its name."""
    def read(field: str, required: bool) -> pulumi.Output:
        key = stack_output_name(field)

        def check(value):
            if value is None and required:
                raise ValueError(f"the cluster stack has no output '{key}'; update the cluster stack to this version "
                                 "of gpu-burst first")
            return value
        return stack.get_output(key).apply(check)

    fields = SharedClusterArgs.__annotations__
    return SharedClusterArgs(**{f: read(f, f in SharedClusterArgs.__required_keys__) for f in fields})


class AddedModelArgs(TypedDict):
    """Inputs of an AddedModel: the cluster's shared parts and the model, in the units ModelService takes."""

    cluster: SharedClusterArgs
    """The running cluster (`shared_cluster(StackReference)`)."""
    served_name: str
    """Name clients send as `model`; also names the model's Kubernetes objects and its route rule."""
    hf_model_id: str
    """Hugging Face repository id."""
    revision: str
    """Hugging Face commit hash staged to the model store and served."""
    image: str
    """Pinned vLLM image (also keys the model's compile cache)."""
    pool: str
    """GPU pool of the cluster the model runs on (a key of `cluster.gpu_traffic_classes`): the pods select its
    traffic class, so any pool of that class may take them."""
    gpus: int
    """GPUs per replica (`--tensor-parallel-size`)."""
    shared_gpu: NotRequired[bool]
    """Each replica takes one time-slice of a GPU instead of whole GPUs (`gpus` 1, a pool that time-slices). Default
    False."""
    max_model_len: int
    """`--max-model-len`."""
    gpu_memory_utilization: float
    """`--gpu-memory-utilization`."""
    min_replicas: int
    """KEDA minReplicaCount (0 = scale to zero)."""
    max_replicas: int
    """KEDA maxReplicaCount."""
    idle_seconds: int
    """Seconds without traffic before scaling to zero."""
    target_queue_depth: int
    """Waiting requests per replica that add a replica."""
    target_concurrency: int
    """In-flight requests per replica at the interceptor."""
    startup_seconds: int
    """Startup budget (node + image + weights + compile)."""
    drain_seconds: int
    """preStop delay for in-flight requests."""
    streamer_concurrency: int
    """Run:ai streamer reader threads."""
    streamer_memory_limit_bytes: int
    """Run:ai streamer CPU buffer."""
    compile_cache: bool
    """Keep the torch.compile cache in the model store."""
    extra_args: NotRequired[list[str]]
    """Additional vLLM flags."""
    prewarm: NotRequired[list[PrewarmWindowArgs]]
    """Scheduled pre-warm windows: GPUs bought on a schedule, without a request (explicit operator config only)."""
    adapters: NotRequired[list[AdapterWeightsArgs]]
    """LoRA adapters served by the model's replicas, each a model name of its own to clients (staged, synced before
    vLLM starts, routed and listed like the model, counted in its scaling). At most 14."""
    max_loras: NotRequired[int]
    """Adapters one batch may mix (`--max-loras`). Default: every adapter."""
    max_lora_rank: NotRequired[int]
    """Largest adapter rank (`--max-lora-rank`). Default 16."""
    hf_token: NotRequired[pulumi.Input[str]]
    """Hugging Face token (a Pulumi secret) for gated models; only the staging Jobs see it."""
    cpu: NotRequired[str]
    """CPU request (ModelService default)."""
    memory: NotRequired[str]
    """Memory request and limit (ModelService default)."""
    shm_size: NotRequired[str]
    """Size of /dev/shm (ModelService default)."""
    cache_size: NotRequired[str]
    """Size of the model cache emptyDir (ModelService default)."""


class AddedModel(pulumi.ComponentResource):
    """One model on a running gpu-burst cluster, from another program: ModelWeights + ModelService + ModelRoute. Pass
    a Kubernetes provider for that cluster and an AWS provider in its region in `opts.providers` (from the cluster
    stack's `kubeconfig` and `region` outputs)."""

    deployment_name: pulumi.Output[str]
    """Name of the vLLM Deployment (= served name)."""
    scaled_object_name: pulumi.Output[str]
    """Name of the KEDA ScaledObject (= served name)."""
    route_name: pulumi.Output[str]
    """Name of the model's AIGatewayRoute on the shared Gateway."""
    model_uri: pulumi.Output[str]
    """`s3://` URI the replicas stream the weights from."""
    request_path: pulumi.Output[dict[str, str]]
    """The objects a request for this model crosses: header and value, route, rule, backend, interceptor route and
    Service."""

    def __init__(self, name: str, args: AddedModelArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        served = args["served_name"]
        adapters = list(args.get("adapters", []))
        problems = route_problems([served, *(a["name"] for a in adapters)])
        problems += lora_problems(served, adapters, args.get("max_loras", len(adapters)),
                                  args.get("max_lora_rank", DEFAULT_LORA_RANK))
        if args["min_replicas"] > args["max_replicas"]:
            problems.append(f"min_replicas {args['min_replicas']} > max_replicas {args['max_replicas']}")
        problems += prewarm_problems(args.get("prewarm", []), args["max_replicas"])
        if args.get("shared_gpu") and args["gpus"] != 1:
            problems.append(f"shared_gpu with gpus {args['gpus']}; allowed: gpus 1 (a replica gets one time-slice)")
        if problems:
            raise ValueError(f"AddedModel '{name}': " + "; ".join(problems))
        super().__init__(token("AddedModel"), name, None, opts)
        traffic_class, c = self._fitted(name, args)
        ns = c["inference_namespace"]

        staging = {"hf_token": args["hf_token"]} if args.get("hf_token") is not None else {}
        self.weights = ModelWeights(
            f"weights-{served}",
            {**staging, "bucket_name": c["model_store_bucket"], "cluster_name": c["cluster_name"], "namespace": ns,
             "served_name": served, "hf_model_id": args["hf_model_id"], "revision": args["revision"],
             "region": c["region"], **({"compile_cache_image": args["image"]} if args["compile_cache"] else {}),
             **({"adapters": adapters, "adapter_max_rank": args.get("max_lora_rank", DEFAULT_LORA_RANK)}
                if adapters else {})},
            opts=pulumi.ResourceOptions(parent=self))
        self.service = ModelService(
            f"model-{served}", self._service_args(args, c, traffic_class),
            # The earlier add-model example declared `ModelService("model-<served name>")` at the top of its
            # program: the alias adopts those objects in place.
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.weights.staging_jobs,
                                        aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]))
        # After the model's InterceptorRoute exists (and deleted before it): the edge never routes to nothing.
        self.route = ModelRoute(
            f"route-{served}",
            {"namespace": ns, "gateway_name": c["gateway_name"], "served_names": [served],
             "backend_name": c["interceptor_backend_name"], "request_timeout": c["route_request_timeout"],
             "stream_idle_timeout": c["route_stream_idle_timeout"],
             **({"adapters": [{"name": a["name"], "base": served} for a in adapters]} if adapters else {})},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.service]))

        self.deployment_name = self.service.deployment_name
        self.scaled_object_name = self.service.scaled_object_name
        self.route_name = self.route.route_name
        self.model_uri = self.weights.model_uri
        self.request_path = pulumi.Output.all(self.route.request_paths, self.service.route_name,
                                              self.service.service_name).apply(
            lambda v: {**v[0][served], "interceptor_route": v[1], "service": v[2]})
        self.register_outputs({"deployment_name": self.deployment_name, "scaled_object_name": self.scaled_object_name,
                               "route_name": self.route_name, "model_uri": self.model_uri,
                               "request_path": self.request_path})

    @staticmethod
    def _fitted(name: str, args: AddedModelArgs) -> tuple:
        """The pool's traffic class, and the cluster's values each released only once the model fits the cluster
        (its pool exists, its name is free): every child waits on them, so a misfit declares nothing."""
        served, pool = args["served_name"], args["pool"]
        c = args["cluster"]

        mine = [a["name"] for a in args.get("adapters", [])]

        def check(v) -> str:
            classes, models, adapters = v
            taken = {*models, *(n for names in (adapters or {}).values() for n in names)}
            if served in taken:
                raise ValueError(f"AddedModel '{name}': served_name '{served}' is already served by the cluster "
                                 f"stack; allowed: a name not in {sorted(taken)}")
            clash = [n for n in mine if n in taken]
            if clash:
                raise ValueError(f"AddedModel '{name}': adapters {clash} are already served by the cluster stack; "
                                 f"allowed: names not in {sorted(taken)}")
            if pool not in classes:
                raise ValueError(f"AddedModel '{name}': pool '{pool}' is not a GPU pool of the cluster; allowed: "
                                 f"{', '.join(sorted(classes))}")
            return classes[pool]
        traffic_class = pulumi.Output.all(c["gpu_traffic_classes"], c["models"], c.get("adapters")).apply(check)
        return traffic_class, {k: pulumi.Output.all(traffic_class, v).apply(lambda x: x[1]) for k, v in c.items()}

    def _service_args(self, args: AddedModelArgs, c: dict, traffic_class: pulumi.Output) -> dict:
        """ModelService args: the model's own values, the cluster's wiring, the weights just staged."""
        w = self.weights
        weights = {"model_uri": w.model_uri, "service_account_name": w.service_account_name, "region": c["region"],
                   "concurrency": args["streamer_concurrency"], "memory_limit_bytes": args["streamer_memory_limit_bytes"],
                   "tools_config_map": w.tools_config_map,
                   **({"compile_cache_uri": w.compile_cache_uri} if args["compile_cache"] else {})}
        image = args["image"]
        pulled = pulumi.Output.all(c.get("image_cache_registry") or "", c.get("image_cache_prefix") or "").apply(
            lambda a: mirrored(image, a[0], a[1]) if a[0] and a[1] else image)
        optional = {k: args[k] for k in ("extra_args", "cpu", "memory", "shm_size", "cache_size", "max_loras",
                                         "max_lora_rank", "shared_gpu", "prewarm") if k in args}
        if args.get("adapters"):
            optional["adapters"] = [{"name": a["name"], "uri": w.adapter_uris.apply(lambda u, n=a["name"]: u[n])}
                                    for a in args["adapters"]]
        if c.get("monitoring_release_label") is not None:
            optional["monitoring_release_label"] = c["monitoring_release_label"]
        if c.get("service_monitor_labels") is not None:
            optional["monitor_labels"] = c["service_monitor_labels"]
        return {
            **optional, "weights": weights, "namespace": c["inference_namespace"], "served_name": args["served_name"],
            "hf_model_id": args["hf_model_id"], "image": pulled, "gpus": args["gpus"],
            "max_model_len": args["max_model_len"], "gpu_memory_utilization": args["gpu_memory_utilization"],
            "traffic_class": traffic_class, "min_replicas": args["min_replicas"],
            "max_replicas": args["max_replicas"], "idle_seconds": args["idle_seconds"],
            "target_queue_depth": args["target_queue_depth"], "target_concurrency": args["target_concurrency"],
            "startup_seconds": args["startup_seconds"], "drain_seconds": args["drain_seconds"],
            "api_key_secret_name": c["internal_key_secret_name"], "prometheus_url": c["prometheus_url"],
            "external_scaler_address": c["external_scaler_address"],
            "readiness_timeout": c["interceptor_readiness_timeout"],
            "response_header_timeout": c["interceptor_response_header_timeout"], "model_header": c["model_header"],
        }
