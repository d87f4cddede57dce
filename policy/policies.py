"""gpu-burst guardrails as pure CrossGuard policy definitions (no PolicyPack here: constructing one starts a gRPC
server and blocks, so tests import this module and __main__.py builds the pack).

Each violation message names the object and says what to change. Props are the resource's inputs in camelCase
(what `pulumi preview --policy-pack policy` hands a Python policy for Kubernetes objects and Helm releases).
"""

import re
from typing import Any, Iterable, Iterator, Mapping, Optional

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

MANDATORY = EnforcementLevel.MANDATORY

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
HELM_CHART_V4 = "kubernetes:helm.sh/v4:Chart"
YAML_FILE, YAML_GROUP = "kubernetes:yaml/v2:ConfigFile", "kubernetes:yaml/v2:ConfigGroup"
WORKLOADS = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:DaemonSet", "kubernetes:apps/v1:StatefulSet")
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"
EC2NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
SECRET_ENV_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
VERSION_RANGE = re.compile(r"[\^~<>=|*]|\s-\s|(^|\.)[xX](\.|$)")
GPU_INSTANCE_FAMILY = re.compile(r"^(g\d|p\d|gr\d)", re.IGNORECASE)
PINNED_REF = re.compile(r"^(v?\d+\.\d+\.\d+([-+.][0-9A-Za-z.]+)?|[0-9a-f]{40})$")
"""A path segment naming a release tag or a commit."""
MOVING_REF = {"main", "master", "head", "latest"}


# ---------------------------------------------------------------------------------------------------- helpers
def _get(obj: Any, *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(obj, Mapping) or obj.get(key) is None:
            return default
        obj = obj[key]
    return obj


def _label(props: Mapping, fallback: str) -> str:
    md = props.get("metadata") or {}
    name = md.get("name") if isinstance(md, Mapping) else None
    ns = md.get("namespace") if isinstance(md, Mapping) else None
    if name:
        return f"{ns}/{name}" if ns else str(name)
    return fallback


def _pod_spec(props: Mapping) -> Mapping:
    return _get(props, "spec", "template", "spec", default={}) or {}


def _containers(props: Mapping) -> Iterator[tuple[str, Mapping]]:
    spec = _pod_spec(props)
    for field in ("initContainers", "containers"):
        for c in spec.get(field) or []:
            if isinstance(c, Mapping):
                yield field, c


def image_is_pinned(image: Optional[str]) -> bool:
    """`repo:tag` (tag not `latest`) or `repo@sha256:...`. A registry port (`host:5000/repo`) is not a tag."""
    if not image or not isinstance(image, str):
        return False
    if "@" in image:
        return bool(image.split("@", 1)[1])
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.rsplit(":", 1)[1]
    return bool(tag) and tag.lower() != "latest"


def _requests_gpu(container: Mapping) -> bool:
    # Whole GPUs or time-slices of one (nvidia.com/gpu.shared): both are model containers.
    res = container.get("resources") or {}
    return any(str(name).startswith(GPU_RESOURCE) for k in ("limits", "requests") for name in (res.get(k) or {}))


def is_gpu_nodepool(props: Mapping) -> bool:
    spec = props.get("spec") or {}
    if GPU_RESOURCE in (spec.get("limits") or {}):
        return True
    tmpl = spec.get("template") or {}
    if any(str(k).startswith("nvidia.com/gpu") for k in (_get(tmpl, "metadata", "labels", default={}) or {})):
        return True
    tspec = tmpl.get("spec") or {}
    if any(isinstance(t, Mapping) and t.get("key") == GPU_TAINT_KEY for t in tspec.get("taints") or []):
        return True
    for req in tspec.get("requirements") or []:
        key = str(req.get("key", ""))
        if key.startswith("karpenter.k8s.aws/instance-gpu"):
            return True
        if key == "karpenter.k8s.aws/instance-family" and req.get("operator", "In") == "In" and any(
                GPU_INSTANCE_FAMILY.match(str(v)) for v in req.get("values") or []):
            return True
    return False


# ------------------------------------------------------------------------------------------------- validators
def _helm_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in (HELM_RELEASE, HELM_CHART_V4):
        return
    props = args.props
    chart = props.get("chart") or args.name
    version = props.get("version")
    if not isinstance(version, str) or not version.strip():
        report(f"Helm chart '{chart}' ({args.name}) has no version: set `version` to an exact chart version "
               f"so every preview and update installs the same chart.")
    elif version.strip().lower() == "latest" or VERSION_RANGE.search(version):
        report(f"Helm chart '{chart}' ({args.name}) version '{version}' is not pinned: set an exact chart version "
               f"instead of 'latest' or a range.")


def manifest_url_pinned(url: str) -> bool:
    """A manifest URL that names a release tag or commit and no branch: a local path is the program's own file."""
    if not re.match(r"^https?://", url):
        return True
    segments = url.split("?", 1)[0].split("/")[3:]
    return (any(PINNED_REF.match(s) for s in segments) and
            not any(s.lower() in MOVING_REF or s.lower().startswith("refs") for s in segments))


def _manifests_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in (YAML_FILE, YAML_GROUP):
        return
    files = args.props.get("files") or [] if args.resource_type == YAML_GROUP else [args.props.get("file") or ""]
    for url in files:
        if isinstance(url, str) and not manifest_url_pinned(url):
            report(f"Manifest '{url}' ({args.name}) is not pinned: point it at a release tag or a commit, not a "
                   f"branch, so every preview and update applies the same objects.")


def _images_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in WORKLOADS:
        return
    kind = args.resource_type.rsplit(":", 1)[-1]
    for field, c in _containers(args.props):
        image = c.get("image")
        if not image_is_pinned(image):
            report(f"{kind} '{_label(args.props, args.name)}' {field[:-1]} '{c.get('name')}' image "
                   f"'{image or ''}' is not pinned: use an explicit tag other than 'latest' (or a @sha256 digest).")


def _gpu_nodepool(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != NODEPOOL or not is_gpu_nodepool(args.props):
        return
    spec = args.props.get("spec") or {}
    label = _label(args.props, args.name)
    taints = _get(spec, "template", "spec", "taints", default=[]) or []
    if not any(isinstance(t, Mapping) and t.get("key") == GPU_TAINT_KEY and t.get("effect") == "NoSchedule"
               for t in taints):
        report(f"GPU NodePool '{label}' is not tainted: add the taint "
               f"`{GPU_TAINT_KEY}` with effect NoSchedule so only GPU workloads (which tolerate it) land there.")
    limits = spec.get("limits") or {}
    if GPU_RESOURCE not in limits:
        report(f"GPU NodePool '{label}' has no `{GPU_RESOURCE}` limit: set spec.limits['{GPU_RESOURCE}'] "
               f"to cap how many GPUs Karpenter may launch.")
    disruption = spec.get("disruption") or {}
    after = disruption.get("consolidateAfter")
    if not after or str(after) == "Never":
        report(f"GPU NodePool '{label}' has no disruption.consolidateAfter: set it (e.g. '5m') so idle GPU "
               f"nodes are removed.")


def _no_al2(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != EC2NODECLASS:
        return
    spec = args.props.get("spec") or {}
    label = _label(args.props, args.name)
    if str(spec.get("amiFamily") or "").upper() == "AL2":
        report(f"EC2NodeClass '{label}' uses amiFamily AL2: EKS AL2 AMIs ended with Kubernetes 1.32; "
               f"use AL2023 or Bottlerocket.")
    for term in spec.get("amiSelectorTerms") or []:
        alias = str((term or {}).get("alias") or "")
        if alias.lower().startswith("al2@"):
            report(f"EC2NodeClass '{label}' selects the AL2 AMI alias '{alias}': EKS AL2 AMIs ended with "
                   f"Kubernetes 1.32; use 'al2023@<version>' or 'bottlerocket@<version>'.")


def _imdsv2(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != EC2NODECLASS:
        return
    tokens = _get(args.props, "spec", "metadataOptions", "httpTokens")
    if tokens != "required":
        report(f"EC2NodeClass '{_label(args.props, args.name)}' does not require IMDSv2: set "
               f"spec.metadataOptions.httpTokens to 'required' (found {tokens!r}).")


def _no_plaintext_secrets(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in WORKLOADS:
        return
    kind = args.resource_type.rsplit(":", 1)[-1]
    for _, c in _containers(args.props):
        for env in c.get("env") or []:
            name = str((env or {}).get("name") or "")
            if SECRET_ENV_NAME.search(name) and (env.get("value") not in (None, "")):
                report(f"{kind} '{_label(args.props, args.name)}' container '{c.get('name')}' sets env {name} "
                       f"as a plaintext value: put it in a Kubernetes Secret and use valueFrom.secretKeyRef.")


def _startup_probe(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != DEPLOYMENT:
        return
    for field, c in _containers(args.props):
        if field == "containers" and _requests_gpu(c) and not c.get("startupProbe"):
            report(f"Deployment '{_label(args.props, args.name)}' GPU container '{c.get('name')}' has no "
                   f"startupProbe: model loading takes minutes, add one so liveness does not kill the pod "
                   f"while the weights load.")


def _no_replicas_under_keda(args: StackValidationArgs, report: ReportViolation) -> None:
    deployments = {}
    for r in args.resources:
        if r.resource_type == DEPLOYMENT:
            md = r.props.get("metadata") or {}
            deployments[(md.get("namespace") or "default", md.get("name") or r.name)] = r
    for r in args.resources:
        if r.resource_type != SCALED_OBJECT:
            continue
        md = r.props.get("metadata") or {}
        target = _get(r.props, "spec", "scaleTargetRef", default={}) or {}
        if target.get("kind", "Deployment") != "Deployment":
            continue
        key = (md.get("namespace") or "default", target.get("name"))
        dep = deployments.get(key)
        # A create-time count (replicas: 0, so creating a model buys no GPU) is fine when spec.replicas is in
        # ignoreChanges: under server-side apply the provider then never sends a value that differs from the live one.
        ignored = "spec.replicas" in (getattr(dep.opts, "ignore_changes", None) or []) if dep is not None else False
        if dep is not None and _get(dep.props, "spec", "replicas") is not None and not ignored:
            report(f"Deployment '{key[0]}/{key[1]}' sets spec.replicas but is scaled by ScaledObject "
                   f"'{md.get('name') or r.name}': remove spec.replicas or add it to ignoreChanges (KEDA owns it; "
                   f"every update would reset the replica count).", dep.urn)


# --------------------------------------------------------------------------------------------------- policies
helm_chart_pinned = ResourceValidationPolicy(
    name="helm-chart-version-pinned",
    description="Every Helm chart is installed at an exact version (not empty, not 'latest', not a range).",
    enforcement_level=MANDATORY, validate=_helm_pinned)

manifest_url_pinned_policy = ResourceValidationPolicy(
    name="manifest-url-pinned",
    description="YAML manifests applied from a URL name a release tag or a commit, never a branch.",
    enforcement_level=MANDATORY, validate=_manifests_pinned)

container_image_pinned = ResourceValidationPolicy(
    name="container-image-pinned",
    description="Containers in Deployments, DaemonSets and StatefulSets use a pinned image tag or digest.",
    enforcement_level=MANDATORY, validate=_images_pinned)

gpu_nodepool_guarded = ResourceValidationPolicy(
    name="gpu-nodepool-tainted-limited-disrupted",
    description="GPU NodePools are tainted nvidia.com/gpu:NoSchedule, have a GPU limit and consolidateAfter.",
    enforcement_level=MANDATORY, validate=_gpu_nodepool)

no_al2_ami = ResourceValidationPolicy(
    name="no-al2-ami",
    description="EC2NodeClasses use AL2023 or Bottlerocket, never Amazon Linux 2.",
    enforcement_level=MANDATORY, validate=_no_al2)

imdsv2_required = ResourceValidationPolicy(
    name="imdsv2-required",
    description="EC2NodeClasses (the GPU nodes) require IMDSv2 (metadataOptions.httpTokens: required).",
    enforcement_level=MANDATORY, validate=_imdsv2)

no_plaintext_secret_env = ResourceValidationPolicy(
    name="no-plaintext-secret-env",
    description="Env vars named like KEY/TOKEN/SECRET/PASSWORD come from a Secret, never a literal value.",
    enforcement_level=MANDATORY, validate=_no_plaintext_secrets)

model_startup_probe = ResourceValidationPolicy(
    name="model-pod-startup-probe",
    description="Every GPU (model) container in a Deployment has a startupProbe.",
    enforcement_level=MANDATORY, validate=_startup_probe)

no_replicas_with_scaledobject = StackValidationPolicy(
    name="no-replicas-on-keda-target",
    description="A Deployment targeted by a KEDA ScaledObject sets spec.replicas only with it in ignoreChanges.",
    enforcement_level=MANDATORY, validate=_no_replicas_under_keda)

POLICIES = [
    helm_chart_pinned,
    manifest_url_pinned_policy,
    container_image_pinned,
    gpu_nodepool_guarded,
    no_al2_ami,
    imdsv2_required,
    no_plaintext_secret_env,
    model_startup_probe,
    no_replicas_with_scaledobject,
]
