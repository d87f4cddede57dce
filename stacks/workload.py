"""Workload layer: the inference workload — one ModelService per configured model, the Gateway, dashboards and alerts."""

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.alerts import Alerts
from components.dashboards import Dashboards
from components.gateway import API_KEY_ENV, Gateway
from components.model_service import ModelService
from components.model_store import ModelStore, ModelWeights

from .config import duration_seconds
from .contracts import Addons, Foundation

ALERT_MARGIN_SECONDS = 600
MODEL_SCRAPE_INTERVAL = "5s"
"""vLLM is scraped every 5 s regardless of the stack-wide interval: with KEDA's 5 s polling, a queue builds up and is
seen by the 1→N trigger within 10 s."""


def _go_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def build_workload(f: Foundation, a: Addons, api_key: Optional[pulumi.Output] = None,
                   hf_token: Optional[pulumi.Output] = None) -> dict:
    """Declare the model services, the gateway, the dashboard and the alerts; return the stack outputs.

    `api_key` is `gpu-burst:apiKey` (secret) or None to generate one; `hf_token` is `gpu-burst:hfToken` or None."""
    cfg = f.cfg
    gw = cfg.gateway
    http = cfg.addons.http_addon
    k8s_opts = {"providers": [f.k8s_provider]}
    models = list(cfg.models)
    names = [m.served_name for m in models]

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

    gateway_args = {
        "models_namespace": ns.metadata.name, "interceptor_namespace": a.interceptor_namespace,
        "model_names": names, "model_header": gw.model_header, "allowed_cidrs": cidrs, "public": gw.public,
        "load_balancer_controller": gw.load_balancer_controller, "idle_timeout_seconds": gw.idle_timeout_seconds}
    if gw.certificate_arn:
        gateway_args["certificate_arn"] = gw.certificate_arn
    if api_key is not None:
        gateway_args["api_key"] = api_key
    gateway = Gateway(
        "gpu-burst-gateway",
        gateway_args,
        # The monitoring release installs the ServiceMonitor CRD used for the interceptor's metrics.
        opts=pulumi.ResourceOptions(**k8s_opts, depends_on=[ns, a.http_addon_release, a.monitoring_release]),
    )

    store = ModelStore("gpu-burst-models", {"tags": {"gpu-burst.io/environment": cfg.environment}},
                       opts=pulumi.ResourceOptions(**k8s_opts))
    release_label = getattr(a.monitoring_release, "name", None)
    for m in models:
        optional = {}
        staging = {"hf_token": hf_token} if m.needs_hf_token and hf_token is not None else {}
        # Weights reach the store once, at deploy time (the only place the HF token goes); replicas stream them.
        weights = ModelWeights(
            f"weights-{m.served_name}",
            {**staging, "bucket_name": store.bucket_name, "cluster_name": f.cluster_name,
             "namespace": ns.metadata.name, "served_name": m.served_name, "hf_model_id": m.hf_model_id,
             "revision": m.revision, **({"compile_cache_image": m.image} if m.compile_cache else {})},
            opts=pulumi.ResourceOptions(**k8s_opts, depends_on=[ns]),
        )
        optional["weights"] = {"model_uri": weights.model_uri, "service_account_name": weights.service_account_name,
                               "region": cfg.region, "concurrency": m.runai_concurrency,
                               "memory_limit_bytes": m.runai_memory_limit_gib * 2**30,
                               "tools_config_map": weights.tools_config_map}
        if m.compile_cache:
            optional["weights"]["compile_cache_uri"] = weights.compile_cache_uri
        if gw.domain:
            optional["host"] = f"{m.served_name}.{gw.domain}"
        if release_label is not None:
            optional["monitoring_release_label"] = release_label
        ModelService(
            f"model-{m.served_name}",
            {**optional, "namespace": ns.metadata.name, "served_name": m.served_name, "hf_model_id": m.hf_model_id,
             "image": m.image, "gpus": m.gpus, "max_model_len": m.max_model_len,
             "gpu_memory_utilization": m.gpu_memory_utilization, "extra_args": list(m.extra_args), "pool": m.pool,
             "min_replicas": m.min_replicas, "max_replicas": m.max_replicas, "idle_seconds": m.idle_seconds,
             "target_queue_depth": m.target_queue_depth, "target_concurrency": m.target_concurrency,
             "startup_seconds": m.startup_seconds, "drain_seconds": m.drain_seconds,
             "api_key_secret_name": gateway.api_key_secret_name, "prometheus_url": a.prometheus_url,
             "external_scaler_address": a.external_scaler_address, "readiness_timeout": http.readiness_timeout,
             "response_header_timeout": http.response_header_timeout, "model_header": gw.model_header,
             "cpu": m.cpu, "memory": m.memory, "shm_size": m.shm_size, "cache_size": m.cache_size,
             "scrape_interval": MODEL_SCRAPE_INTERVAL},
            # Every CR waits for the release that installs its CRD (and webhook); pods wait for their NodePools.
            opts=pulumi.ResourceOptions(**k8s_opts, depends_on=[
                ns, a.keda_release, a.http_addon_release, a.monitoring_release, a.gpu_pools, weights.staging_job]),
        )

    Dashboards(
        "gpu-burst-dashboards",
        {"namespace": a.dashboards_namespace, "sidecar_labels": dict(a.dashboard_label), "models": names,
         "models_namespace": gw.namespace},
        opts=pulumi.ResourceOptions(**k8s_opts, depends_on=[a.monitoring_release]),
    )
    idle_after = max(duration_seconds(p.consolidate_after) for p in cfg.gpu.pools) + ALERT_MARGIN_SECONDS
    Alerts(
        "gpu-burst-alerts",
        {"namespace": ns.metadata.name, "models_namespace": gw.namespace, "models": names,
         "no_replica_for": {m.served_name: _go_duration(m.startup_seconds) for m in models},
         "idle_gpu_node_for": _go_duration(idle_after)},
        opts=pulumi.ResourceOptions(**k8s_opts, depends_on=[ns, a.monitoring_release]),
    )

    examples = gateway.curl_examples
    return {
        "endpoint": gateway.endpoint,
        "models": names,
        "modelHeader": gw.model_header,
        "apiKey": gateway.api_key,
        "apiKeySecretName": gateway.api_key_secret_name,
        "apiKeyHowTo": f"export {API_KEY_ENV}=$(pulumi stack output apiKey --show-secrets)",
        "curlCompletions": examples.apply(lambda e: {k: v["completions"] for k, v in e.items()}),
        "curlChatCompletions": examples.apply(lambda e: {k: v["chat"] for k, v in e.items()}),
        "inferenceNamespace": ns.metadata.name,
        "dashboardUid": "gpu-burst-vllm",
        "modelStoreBucket": store.bucket_name,
    }
