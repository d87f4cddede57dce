"""Add one model to an existing gpu-burst cluster: a second Pulumi program that imports the components.

Needs only what the cluster stack already exposes: a kubeconfig, the namespace and API-key Secret of the gateway,
and the in-cluster addresses of Prometheus and the KEDA HTTP add-on's external scaler.
"""

import sys
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

try:  # installed: pip install gpu-burst (git URL or path; see requirements.txt)
    from gpu_burst import ModelService
    from gpu_burst.edge_gateway import MODEL_HEADER
except ImportError:  # run from a checkout of the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from components import ModelService
    from components.edge_gateway import MODEL_HEADER

cfg = pulumi.Config("add-model")
model = cfg.get_object("model") or {}
served_name = model.get("servedName", "qwen2-5-1-5b-instruct")

provider = k8s.Provider("existing-cluster", kubeconfig=cfg.require_secret("kubeconfig"),
                        enable_server_side_apply=True)

service = ModelService(
    f"model-{served_name}",
    {
        "namespace": cfg.get("namespace") or "inference",
        "served_name": served_name,
        "hf_model_id": model.get("hfModelId", "Qwen/Qwen2.5-1.5B-Instruct"),
        "image": model.get("image", "vllm/vllm-openai:v0.33.0"),  # the cluster stack's pin (stacks/config VLLM_IMAGE)
        "gpus": int(model.get("gpus", 1)),
        "max_model_len": int(model.get("maxModelLen", 8192)),
        "gpu_memory_utilization": float(model.get("gpuMemoryUtilization", 0.9)),
        # Node label gpu-burst.io/traffic-class of the GPU pools the model may use (tried by weight); the dev and
        # prod stacks both put their pools in class `gpu`.
        "traffic_class": cfg.get("trafficClass") or "gpu",
        "min_replicas": int(model.get("minReplicas", 0)),
        "max_replicas": int(model.get("maxReplicas", 2)),
        "idle_seconds": int(model.get("idleSeconds", 900)),
        "target_queue_depth": int(model.get("targetQueueDepth", 4)),
        "target_concurrency": int(model.get("targetConcurrency", 8)),
        "startup_seconds": int(model.get("startupSeconds", 900)),
        "drain_seconds": int(model.get("drainSeconds", 30)),
        "api_key_secret_name": cfg.require("apiKeySecretName"),
        "prometheus_url": cfg.get("prometheusUrl") or "http://kps-prometheus.monitoring.svc:9090",
        "external_scaler_address": cfg.get("externalScalerAddress") or "keda-add-ons-http-external-scaler.keda:9090",
        "readiness_timeout": model.get("readinessTimeout", "15m"),
        "response_header_timeout": model.get("responseHeaderTimeout", "5m"),
        # The header the edge sets from the body's `model`; the cluster stack's AIGatewayRoute must also list the
        # model (add it to gpu-burst:models there) for the edge to route to it.
        "model_header": MODEL_HEADER,
    },
    opts=pulumi.ResourceOptions(providers=[provider]),
)

pulumi.export("deployment", service.deployment_name)
pulumi.export("scaledObject", service.scaled_object_name)
pulumi.export("servedName", served_name)
