"""The whole stack as one dependency graph: foundation → GPU pools and add-ons → model services and gateway."""

import pulumi

from .addons import build_addons
from .config import NAMESPACE, StackConfig
from .existing import read_existing_cluster
from .foundation import build_foundation
from .global_dns import resolve_hosted_zone
from .snapshot import resolve_data_volume
from .workload import build_workload


def build(cfg: StackConfig) -> dict:
    """Declare every resource of the stack from a validated config and export the stack outputs."""
    prefix = "gpu-burst"
    # Looked up before any resource is declared: a lookup that fails leaves nothing half-created. An existing
    # cluster is read first: its Kubernetes version is the one every later lookup and check uses.
    existing = None
    if cfg.existing_cluster:
        cfg, existing = read_existing_cluster(cfg)
    data_volume = resolve_data_volume(cfg)
    global_zone = resolve_hosted_zone(cfg)
    foundation = build_foundation(cfg, prefix, existing)
    addons = build_addons(foundation, data_volume)
    secrets = pulumi.Config(NAMESPACE)
    # get_secret returns Outputs marked secret: the values never reach the typed config model or the logs.
    api_keys = secrets.get_secret_object("apiKeys")
    if api_keys is None and secrets.get_secret("apiKey") is not None:
        # A single `apiKey` (older stacks) is the key named "default".
        api_keys = secrets.get_secret("apiKey").apply(lambda k: {"default": k})
    hf_token = secrets.get_secret("hfToken") if cfg.hf_token_set else None
    outputs = {
        "clusterName": foundation.cluster_name,
        "region": cfg.region,
        "kubeconfig": pulumi.Output.secret(foundation.kubeconfig),
        "karpenterNodeRole": foundation.node_role_name,
        "karpenterInterruptionQueue": foundation.karpenter_interruption_queue,
        "vpcId": foundation.vpc_id,
        "s3EndpointId": foundation.s3_endpoint_id,
        # Where `burstctl snapshot build` can run its builder (the private subnets have a NAT route).
        "privateSubnetIds": foundation.private_subnet_ids,
        "prometheusUrl": addons.prometheus_url,
        "gpuPools": addons.gpu_pool_names,
        "gpuDataVolumeSnapshotId": addons.gpu_data_volume_snapshot_id,
    }
    outputs.update(build_workload(foundation, addons, api_keys, hf_token, global_zone))
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs
