"""Small helpers shared by the components. No resources are declared here."""

from typing import Any, Optional

import pulumi
import pulumi_kubernetes as k8s

PACKAGE = "gpu-burst"


def token(cls_name: str) -> str:
    """Type token `gpu-burst:index:<Class>`: the only module the Python multi-language host accepts."""
    return f"{PACKAGE}:index:{cls_name}"


def child(parent: pulumi.Resource, depends_on: Optional[list] = None, **kw: Any) -> pulumi.ResourceOptions:
    """Options for a child resource: always parented (provider and protect are inherited from the component)."""
    return pulumi.ResourceOptions(parent=parent, depends_on=depends_on or [], **kw)


def labels(component: str, name: str, extra: Optional[dict] = None) -> dict:
    """Standard Kubernetes labels for objects this project creates."""
    out = {"app.kubernetes.io/managed-by": "pulumi", "app.kubernetes.io/part-of": "gpu-burst",
           "app.kubernetes.io/component": component, "app.kubernetes.io/instance": name}
    out.update(extra or {})
    return out


def deps_of(opts: Optional[pulumi.ResourceOptions]) -> list:
    """The caller's `depends_on`, to be passed explicitly to children: Pulumi does not push a component's
    depends_on down to its children (pulumi/pulumi#8721), and ordering against CRD-installing releases must hold
    for each custom resource."""
    if opts is None or opts.depends_on is None:
        return []
    d = opts.depends_on
    return list(d) if isinstance(d, (list, tuple)) else [d]


SYSTEM_NODE_LABEL_KEY = "gpu-burst.io/node-role"
SYSTEM_NODE_LABEL_VALUE = "system"
SYSTEM_NODE_SELECTOR = {SYSTEM_NODE_LABEL_KEY: SYSTEM_NODE_LABEL_VALUE}
"""nodeSelector that pins controllers (Karpenter, KEDA, Prometheus, interceptor) to the managed system node group.
The system group is not tainted: it is the only untainted capacity, so anything else lands there too, never on GPUs."""

GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TOLERATION = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
"""What a pod needs to land on a GPU node (besides a `nvidia.com/gpu` request); copy it before changing it."""
GPU_RESOURCE = "nvidia.com/gpu"
"""Whole GPUs, as the NVIDIA device plugin advertises them and Karpenter counts them from the instance type."""
SHARED_GPU_RESOURCE = "nvidia.com/gpu.shared"
"""Time-slices of a GPU: the device plugin's name for `nvidia.com/gpu` with `renameByDefault` (the resource name plus
DefaultSharedResourceNameSuffix `.shared`, NVIDIA/k8s-device-plugin@v0.20.0 api/config/v1/consts.go), on AL2023 and
on Bottlerocket (`time-slicing.rename-by-default`). A pod asking for `nvidia.com/gpu` can never be given one."""
TIME_SLICING_TAINT_KEY = "gpu-burst.io/time-slicing"
"""NoSchedule taint of the pools whose GPUs are time-sliced (value: slices per GPU): only pods that opted into a slice
tolerate it, so Karpenter never launches a shared node for a pod that wants whole GPUs."""
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
"""Node label the NVIDIA device plugin's config-manager reads to pick its config from the chart's `config.map`
(NVIDIA/k8s-device-plugin@v0.20.0 deployments/helm/nvidia-device-plugin/templates/daemonset-device-plugin.yml
NODE_LABEL)."""


def time_slicing_config_name(slices: int) -> str:
    """Name of the device plugin config for `slices` time-slices per GPU: a key of the chart's `config.map` and the
    value of DEVICE_PLUGIN_CONFIG_LABEL on the nodes that use it (one source for both)."""
    return f"time-slicing-{slices}"


MODEL_SHUTDOWN_SECONDS = 30
"""What a model pod's terminationGracePeriodSeconds adds to its drain (preStop) delay: vLLM's own shutdown after
SIGTERM."""


def model_termination_grace_seconds(drain_seconds: int) -> int:
    """terminationGracePeriodSeconds of a model pod that drains for `drain_seconds` before SIGTERM."""
    return drain_seconds + MODEL_SHUTDOWN_SECONDS


GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
NODEPOOL_LABEL = "karpenter.sh/nodepool"
TRAFFIC_CLASS_LABEL = "gpu-burst.io/traffic-class"
"""Node label shared by every GPU NodePool of one traffic class: a model selects the class, not a pool, so Karpenter
picks among the class's pools by weight (a spot pool first, an on-demand pool when spot is short)."""


def pinned_release(parent: pulumi.Resource, name: str, release_name: str, chart: str, repo: Optional[str],
                   version: pulumi.Input[str], namespace: pulumi.Input[str], values: Any,
                   depends_on: Optional[list] = None, **kw: Any) -> k8s.helm.v3.Release:
    """A Helm release with the project's conventions: a fixed release name (an auto-named release gets a random
    suffix that leaks into service and service-account names), a pinned chart version, its own namespace, and
    cleanup of a failed install so a retried `pulumi up` starts clean. `repo` None: `chart` is an OCI reference
    (oci://...), which Helm pulls without a repository."""
    return k8s.helm.v3.Release(
        f"{name}-release",
        name=release_name,
        chart=chart,
        version=version,
        repository_opts={"repo": repo} if repo else None,
        namespace=namespace,
        create_namespace=True,
        cleanup_on_fail=True,
        values=values,
        opts=child(parent, depends_on=depends_on),
        **kw,
    )


def pod_identity_trust(account_id: str, cluster_name: str, namespace: str, service_account: str) -> dict:
    """Trust policy for a role assumed through EKS Pod Identity by exactly one service account of one cluster: the
    session tags EKS sets (docs.aws.amazon.com/eks/latest/userguide/pod-id-role.html, `aws:RequestTag/...`)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "AllowEksAuthToAssumeRoleForPodIdentity",
        "Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {"StringEquals": {
            "aws:SourceAccount": account_id,
            "aws:RequestTag/eks-cluster-name": cluster_name,
            "aws:RequestTag/kubernetes-namespace": namespace,
            "aws:RequestTag/kubernetes-service-account": service_account,
        }},
    }]}
