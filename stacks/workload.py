"""Workload layer: the inference workload — one ModelService per configured model, the Gateway, dashboards and alerts."""

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.alerts import Alerts
from components.dashboards import DASHBOARD_UID, Dashboards
from components.edge_gateway import API_KEY_ENV, GENERATED_KEY_NAME, EdgeGateway
from components.load_balancer_controller import LoadBalancerController
from components.model_service import ModelService
from components.image_cache import ImageCache
from components.model_store import ModelStore, ModelWeights
from components.rate_limit_redis import ElastiCacheRedis, InClusterRedis
from components.usage import UsageRules

from .config import RedisMode, StackConfig, duration_seconds
from .config.models import VLLM_IMAGE
from .config.prices import model_price
from .contracts import Addons, Foundation
from .global_dns import HostedZone, regional_record

ALERT_MARGIN_SECONDS = 600
LBC_CHART_VERSION = "3.5.0"
"""aws-load-balancer-controller chart 3.5.0 = controller v3.5.0 (helm/aws-load-balancer-controller/Chart.yaml)."""
MODEL_SCRAPE_INTERVAL = "5s"
"""vLLM is scraped every 5 s regardless of the stack-wide interval: with KEDA's 5 s polling, a queue builds up and is
seen by the 1→N trigger within 10 s."""


def present(*resources: Optional[pulumi.Resource]) -> list:
    """`depends_on` without the add-ons an existing cluster already runs (None: nothing of the stack's to wait for)."""
    return [r for r in resources if r is not None]


def _go_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _rate_limit_redis(f: Foundation, k8s_opts: dict) -> Optional[dict]:
    """The Redis of the global rate limit and the token budgets, as EdgeGateway args; None when no key has a token
    budget (nothing is created, request limits stay per Envoy replica)."""
    cfg: StackConfig = f.cfg
    mode = cfg.rate_limit_redis
    if mode is None:
        return None
    rl = cfg.gateway.rate_limit
    if mode is RedisMode.ELASTICACHE:
        store = ElastiCacheRedis("gpu-burst-rate-limit", {
            "vpc_id": f.vpc_id, "subnet_ids": f.private_subnet_ids,
            "client_security_group_id": f.cluster_security_group_id, "node_type": rl.redis.node_type,
            "tags": {"gpu-burst:environment": cfg.environment}})
        redis = {"url": store.url, "password": store.password}
    else:
        # On the system nodes, as the rest of the front door (an existing cluster's selector when it has one).
        placement = {} if f.system_node_selector is None else {"node_selector": dict(f.system_node_selector)}
        store = InClusterRedis("gpu-burst-rate-limit", placement,
                               opts=pulumi.ResourceOptions(**k8s_opts, depends_on=list(f.system_ready)))
        redis = {"url": store.url, "password": store.password, "ca_pem": store.ca_pem}
    redis["fail_open"] = rl.fail_open
    policies = cfg.key_policies.values()
    return {"rate_limit_redis": redis,
            "tokens_per_minute": {p.name: p.tokens_per_minute for p in policies if p.tokens_per_minute},
            "tokens_per_day": {p.name: p.tokens_per_day for p in policies if p.tokens_per_day}}


def build_workload(f: Foundation, a: Addons, api_keys: Optional[pulumi.Output] = None,
                   hf_token: Optional[pulumi.Output] = None, global_zone: Optional[HostedZone] = None) -> dict:
    """Declare the model services, the front door, the dashboard and the alerts; return the stack outputs.

    `api_keys` is `gpu-burst:apiKeys` (a secret map key name → key) or None to generate one key; `hf_token` is
    `gpu-burst:hfToken` or None; `global_zone` is the hosted zone of `gateway.globalDns` (None without it)."""
    cfg = f.cfg
    gw = cfg.gateway
    http = cfg.addons.http_addon
    k8s_opts = {"providers": [f.k8s_provider]}
    models = list(cfg.models)
    names = [m.served_name for m in models]
    adapters = [{"name": a.name, "base": m.served_name} for m in models for a in m.adapters]

    ns = k8s.core.v1.Namespace(
        "gpu-burst-inference",
        metadata={"name": gw.namespace, "labels": {
            "app.kubernetes.io/part-of": "gpu-burst", "app.kubernetes.io/managed-by": "pulumi",
            # Every pod here passes the restricted profile (non-root, no caps, RuntimeDefault seccomp, emptyDirs).
            "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}},
        opts=pulumi.ResourceOptions(provider=f.k8s_provider, depends_on=list(f.system_ready)),
    )

    if gw.allowed_cidrs:
        cidrs = pulumi.Output.from_input(list(gw.allowed_cidrs))
    elif gw.public:
        cidrs = pulumi.Output.from_input(["0.0.0.0/0"])
    else:
        cidrs = f.vpc_cidr.apply(lambda c: [c])

    edge_replicas = cfg.edge_replicas
    node_selector = {} if f.system_node_selector is None else {"node_selector": dict(f.system_node_selector)}
    lbc_release = None
    if gw.load_balancer_controller.install:
        lbc_release = LoadBalancerController(
            "gpu-burst-lbc",
            {"cluster_name": f.cluster_name, "vpc_id": f.vpc_id, "chart_version": LBC_CHART_VERSION,
             "replicas": edge_replicas, "tags": {"gpu-burst:environment": cfg.environment}, **node_selector},
            opts=pulumi.ResourceOptions(**k8s_opts, depends_on=list(f.system_ready)),
        ).release
    key_names = list(cfg.api_key_names) if api_keys is not None else []
    if api_keys is not None and not key_names:
        key_names = [GENERATED_KEY_NAME]  # a single legacy `apiKey`
    policies = cfg.key_policies
    edge_args = {
        "namespace": ns.metadata.name, "model_names": names,
        "interceptor_service": a.interceptor_proxy_service, "interceptor_namespace": a.interceptor_namespace,
        "interceptor_port": a.interceptor_proxy_port,
        "hold_seconds": int(duration_seconds(http.readiness_timeout)),
        "response_header_seconds": int(duration_seconds(http.response_header_timeout)),
        "allowed_cidrs": cidrs, "public": gw.public, "key_names": key_names,
        "requests_per_minute": {k: p.requests_per_minute for k, p in policies.items()},
        "key_models": cfg.key_models, "replicas": edge_replicas, **node_selector,
        "install_envoy_gateway": gw.envoy_gateway.install, "install_ai_gateway": gw.ai_gateway.install,
        **({"envoy_gateway_namespace": gw.envoy_gateway.namespace} if gw.envoy_gateway.namespace else {}),
        **({"monitor_labels": dict(a.monitor_labels)} if a.monitor_labels else {})}
    redis = _rate_limit_redis(f, k8s_opts)
    if redis is not None:
        edge_args.update(redis)
    if adapters:
        edge_args["adapters"] = adapters
    if api_keys is not None:
        edge_args["api_keys"] = api_keys
    if gw.certificate_arn:
        edge_args["certificate_arn"] = gw.certificate_arn
    if gw.client_host:
        edge_args["domain"] = gw.client_host
    gateway = EdgeGateway(
        "gpu-burst-edge",
        edge_args,
        # The NLB needs the LBC; the interceptor must exist; the monitors need the Prometheus operator CRDs.
        opts=pulumi.ResourceOptions(**k8s_opts, depends_on=present(*f.system_ready, ns, lbc_release,
                                                                   a.http_addon_release, a.monitoring_release)),
    )

    cache = None
    if cfg.gpu.image_cache is not None:
        ic = cfg.gpu.image_cache
        cache = ImageCache("gpu-burst-image-cache", {
            "credential_arn": ic.docker_hub_credential_arn, "node_role_name": f.node_role_name,
            "repository_prefix": ic.repository_prefix}, opts=pulumi.ResourceOptions(**k8s_opts))
    store = ModelStore("gpu-burst-models", {"tags": {"gpu-burst.io/environment": cfg.environment}},
                       opts=pulumi.ResourceOptions(**k8s_opts))
    release_label = getattr(a.monitoring_release, "name", None)
    for m in models:
        optional = {}
        staging = {"hf_token": hf_token} if m.needs_hf_token and hf_token is not None else {}
        # Weights reach the store once, at deploy time (the only place the HF token goes); replicas stream them.
        weights = ModelWeights(
            f"weights-{m.served_name}",
            {**staging, **node_selector, "bucket_name": store.bucket_name, "cluster_name": f.cluster_name,
             "namespace": ns.metadata.name, "served_name": m.served_name, "hf_model_id": m.hf_model_id,
             "revision": m.revision, "region": cfg.region,
             **({"compile_cache_image": m.image} if m.compile_cache else {}),
             **({"adapters": [{"name": a.name, "hf_model_id": a.hf_model_id, "revision": a.revision}
                              for a in m.adapters], "adapter_max_rank": m.lora_rank} if m.adapters else {})},
            opts=pulumi.ResourceOptions(**k8s_opts, depends_on=[ns]),
        )
        optional["weights"] = {"model_uri": weights.model_uri, "service_account_name": weights.service_account_name,
                               "region": cfg.region, "concurrency": m.runai_concurrency,
                               "memory_limit_bytes": m.runai_memory_limit_gib * 2**30,
                               "tools_config_map": weights.tools_config_map}
        if m.compile_cache:
            optional["weights"]["compile_cache_uri"] = weights.compile_cache_uri
        if release_label is not None:
            optional["monitoring_release_label"] = release_label
        if m.adapters:
            optional.update(adapter_sources(m, weights))
        if a.monitor_labels:
            optional["monitor_labels"] = dict(a.monitor_labels)
        if m.prewarm:
            optional["prewarm"] = [{"start": w.start, "end": w.end, "timezone": w.timezone, "replicas": w.replicas}
                                   for w in m.prewarm]
        ModelService(
            f"model-{m.served_name}",
            {**optional, "namespace": ns.metadata.name, "served_name": m.served_name, "hf_model_id": m.hf_model_id,
             "image": cache.image_for(m.image) if cache else m.image, "gpus": m.gpus, "max_model_len": m.max_model_len,
             **({"shared_gpu": True} if m.shared_gpu else {}),
             "gpu_memory_utilization": m.gpu_memory_utilization, "extra_args": list(m.extra_args),
             "traffic_class": cfg.gpu.traffic_class_of(m.pool),
             "min_replicas": m.min_replicas, "max_replicas": m.max_replicas, "idle_seconds": m.idle_seconds,
             "target_queue_depth": m.target_queue_depth, "target_concurrency": m.target_concurrency,
             "startup_seconds": m.startup_seconds, "drain_seconds": m.drain_seconds,
             "api_key_secret_name": gateway.internal_key_secret_name, "prometheus_url": a.prometheus_url,
             "external_scaler_address": a.external_scaler_address, "readiness_timeout": http.readiness_timeout,
             "response_header_timeout": http.response_header_timeout, "model_header": gateway.model_header,
             "cpu": m.cpu, "memory": m.memory, "shm_size": m.shm_size, "cache_size": m.cache_size,
             "scrape_interval": MODEL_SCRAPE_INTERVAL},
            # Every CR waits for the release that installs its CRD (and webhook); pods wait for their NodePools.
            opts=pulumi.ResourceOptions(**k8s_opts, depends_on=present(
                ns, a.keda_release, a.http_addon_release, a.monitoring_release, a.gpu_pools, *weights.staging_jobs)),
        )

    if a.dashboards:
        Dashboards(
            "gpu-burst-dashboards",
            {"namespace": a.dashboards_namespace, "sidecar_labels": dict(a.dashboard_label), "models": names,
             "models_namespace": gw.namespace},
            opts=pulumi.ResourceOptions(**k8s_opts, depends_on=present(a.monitoring_release)),
        )
    if a.alerts:
        idle_after = max(duration_seconds(p.consolidate_after) for p in cfg.gpu.pools) + ALERT_MARGIN_SECONDS
        Alerts(
            "gpu-burst-alerts",
            {"namespace": ns.metadata.name, "models_namespace": gw.namespace, "models": names,
             "no_replica_for": {m.served_name: _go_duration(m.startup_seconds) for m in models},
             "idle_gpu_node_for": _go_duration(idle_after),
             **({"rule_labels": dict(a.rule_labels)} if a.rule_labels else {})},
            opts=pulumi.ResourceOptions(**k8s_opts, depends_on=present(ns, a.monitoring_release)),
        )

    prices = {m.served_name: p._asdict() for m in models if (p := model_price(cfg, m)) is not None}
    UsageRules(
        "gpu-burst-usage",
        # The keys' daily token budgets: the budget series and the 80% alert.
        {"namespace": ns.metadata.name, "models_namespace": gw.namespace, "prices": prices,
         "key_tokens_per_day": {k: p.tokens_per_day for k, p in policies.items() if p.tokens_per_day},
         **({"adapters": {m.served_name: [x.name for x in m.adapters] for m in models if m.adapters}}
            if adapters else {}),
         **({"rule_labels": dict(a.rule_labels)} if a.rule_labels else {})},
        opts=pulumi.ResourceOptions(**k8s_opts, depends_on=present(ns, a.monitoring_release)),
    )

    examples = gateway.curl_examples
    outputs = {
        "endpoint": gateway.endpoint,
        "models": names,
        # Model → its LoRA adapters: more names clients may send (and another program may not take).
        "adapters": {m.served_name: [a.name for a in m.adapters] for m in models if m.adapters},
        "apiKeys": gateway.api_keys,
        # The first key alone (secret), for `export GPU_BURST_API_KEY=$(pulumi stack output apiKey --show-secrets)`.
        "apiKey": pulumi.Output.secret(gateway.api_keys.apply(lambda k: k[sorted(k)[0]])),
        "apiKeySecretName": gateway.api_key_secret_name,
        "internalKeySecretName": gateway.internal_key_secret_name,
        "apiKeyHowTo": (f"export {API_KEY_ENV}=$(pulumi stack output apiKeys --show-secrets --json "
                        f"| jq -r '.\"{(key_names or [GENERATED_KEY_NAME])[0]}\"')"),
        "curlCompletions": examples.apply(lambda e: {k: v["completions"] for k, v in e.items()}),
        "curlChatCompletions": examples.apply(lambda e: {k: v["chat"] for k, v in e.items()}),
        "pythonExamples": gateway.python_examples,
        "requestPaths": gateway.request_paths,
        "inferenceNamespace": ns.metadata.name,
        "dashboardUid": DASHBOARD_UID,
        "modelStoreBucket": store.bucket_name,
        **shared_outputs(cfg, a, gateway, cache, release_label),
    }
    if global_zone is not None:
        record = regional_record(cfg, global_zone, gateway)
        outputs["globalEndpoint"] = record.fqdn.apply(lambda n: f"https://{n}/v1")
    return outputs


def adapter_sources(m, weights: ModelWeights) -> dict:
    """ModelService's LoRA args for a model config with adapters: where each adapter was staged, and the limits."""
    return {"adapters": [{"name": a.name, "uri": weights.adapter_uris.apply(lambda u, n=a.name: u[n])}
                         for a in m.adapters],
            "max_loras": m.lora_slots, "max_lora_rank": m.lora_rank}


def shared_outputs(cfg, a: Addons, gateway: EdgeGateway, cache: Optional[ImageCache], release_label) -> dict:
    """What another program needs to add a model to this cluster (AddedModel's SharedClusterArgs, read through a
    StackReference), beyond the outputs above; none is secret."""
    http = cfg.addons.http_addon
    return {
        "gatewayName": gateway.gateway_name,
        "interceptorBackendName": gateway.interceptor_backend_name,
        "routeRequestTimeout": gateway.route_request_timeout,
        "routeStreamIdleTimeout": gateway.route_stream_idle_timeout,
        "modelHeader": gateway.model_header,
        "interceptorService": a.interceptor_proxy_service,
        "interceptorNamespace": a.interceptor_namespace,
        "interceptorPort": a.interceptor_proxy_port,
        "interceptorReadinessTimeout": http.readiness_timeout,
        "interceptorResponseHeaderTimeout": http.response_header_timeout,
        "externalScalerAddress": a.external_scaler_address,
        # Models select a traffic class (node label gpu-burst.io/traffic-class) and tolerate the GPU taint.
        "gpuTrafficClasses": {p.name: p.traffic_class_label for p in cfg.gpu.pools},
        "gpuToleration": dict(a.gpu_toleration),
        "monitoringReleaseLabel": release_label if release_label is not None else "",
        # The labels an existing cluster's Prometheus selects monitors by ({} when the stack's own selects all).
        "serviceMonitorLabels": dict(a.monitor_labels),
        "vllmImage": VLLM_IMAGE,
        "imageCacheRegistry": cache.registry if cache else "",
        "imageCachePrefix": cache.repository_prefix if cache else "",
    }
