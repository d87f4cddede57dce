"""Add one model to a running gpu-burst cluster from a second Pulumi program.

Everything about the cluster comes from the cluster stack's outputs through a StackReference (`add-model:clusterStack`);
the model is one `gpu-burst:models` entry (`add-model:model`), validated and defaulted exactly like the cluster stack's
own. The model's weights are staged to the cluster's model store, it scales from zero like the cluster's models, and
the edge routes it and lists it in GET /v1/models.
"""

import sys
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from pydantic import ValidationError

try:  # installed: pip install "gpu-burst[config]" (git URL or path; see requirements.txt)
    import gpu_burst  # noqa: F401
except ImportError:  # run from a checkout of the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from components import AddedModel, shared_cluster
    from stacks.config import ConfigError, ModelConfig
    from stacks.config.errors import format_errors
else:
    from gpu_burst import AddedModel, shared_cluster
    from gpu_burst.config import ConfigError, ModelConfig
    from gpu_burst.config.errors import format_errors

KEY = "add-model:model"


def model_config(raw: dict) -> ModelConfig:
    """`add-model:model` validated like a `gpu-burst:models` entry, each problem on one line naming its key."""
    try:
        return ModelConfig.model_validate(raw)
    except ValidationError as e:
        lines = []
        for line in format_errors(ModelConfig, e, raw):
            rest = line.split(":", 1)[1]  # "<field path>: <message>", or " <message>" for the entry as a whole
            lines.append(f"{KEY}:{rest}" if rest.startswith(" ") else f"{KEY}.{rest}")
        raise ConfigError(lines) from None


cfg = pulumi.Config("add-model")
m = model_config(cfg.require_object("model"))
hf_token = cfg.get_secret("hfToken")
if m.needs_hf_token and hf_token is None:
    raise ConfigError([f"{KEY}.needsHfToken: the model is gated and add-model:hfToken is not set; allowed: "
                       "`pulumi config set --secret hfToken <token>`, or needsHfToken false"])

cluster = pulumi.StackReference("cluster", cfg.require("clusterStack"))
provider = k8s.Provider("existing-cluster", kubeconfig=cluster.require_output("kubeconfig"),
                        enable_server_side_apply=True)
# The weights' roles and Pod Identity associations go to the cluster's account and region, whatever aws:region says.
aws_provider = aws.Provider("cluster-region", region=cluster.require_output("region"))

added = AddedModel(
    f"added-{m.served_name}",
    {
        "cluster": shared_cluster(cluster),
        "served_name": m.served_name, "hf_model_id": m.hf_model_id, "revision": m.revision, "image": m.image,
        "pool": m.pool,
        "gpus": m.gpus, "shared_gpu": m.shared_gpu, "max_model_len": m.max_model_len, "gpu_memory_utilization": m.gpu_memory_utilization,
        "extra_args": list(m.extra_args), "min_replicas": m.min_replicas, "max_replicas": m.max_replicas,
        "idle_seconds": m.idle_seconds, "target_queue_depth": m.target_queue_depth,
        "target_concurrency": m.target_concurrency, "startup_seconds": m.startup_seconds,
        "drain_seconds": m.drain_seconds, "streamer_concurrency": m.runai_concurrency,
        "streamer_memory_limit_bytes": m.runai_memory_limit_gib * 2**30, "compile_cache": m.compile_cache,
        "cpu": m.cpu, "memory": m.memory, "shm_size": m.shm_size, "cache_size": m.cache_size,
        **({"adapters": [{"name": a.name, "hf_model_id": a.hf_model_id, "revision": a.revision} for a in m.adapters],
            "max_loras": m.lora_slots, "max_lora_rank": m.lora_rank} if m.adapters else {}),
        **({"prewarm": [{"start": w.start, "end": w.end, "timezone": w.timezone, "replicas": w.replicas}
                        for w in m.prewarm]} if m.prewarm else {}),
        **({"hf_token": hf_token} if m.needs_hf_token else {}),
    },
    opts=pulumi.ResourceOptions(providers=[provider, aws_provider]),
)

pulumi.export("servedName", m.served_name)
pulumi.export("endpoint", cluster.get_output("endpoint"))
pulumi.export("deployment", added.deployment_name)
pulumi.export("scaledObject", added.scaled_object_name)
pulumi.export("route", added.route_name)
pulumi.export("requestPath", added.request_path)
