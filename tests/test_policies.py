"""CrossGuard policies (policy/policies.py) without the CLI: fabricated objects, then the whole dev and prod stacks
evaluated under mocks (every registered resource fed to every policy, as `pulumi preview --policy-pack` would)."""

import copy
import importlib.util
import inspect
from pathlib import Path

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from stack_helpers import evaluate_stack

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_burst_policies", ROOT / "policy" / "policies.py")
policies = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(policies)

OPTS = PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None, aliases=[],
                             custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[])


def rargs(typ, props, name="r"):
    return ResourceValidationArgs(resource_type=typ, props=props, urn=f"urn:pulumi:dev::gpu-burst::{typ}::{name}",
                                  name=name, opts=OPTS, provider=None)


def presource(typ, props, name="r", ignore_changes=()):
    opts = OPTS
    if ignore_changes:
        opts = PolicyResourceOptions(protect=False, ignore_changes=list(ignore_changes), delete_before_replace=None,
                                     aliases=[], custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
                                     additional_secret_outputs=[])
    return PolicyResource(resource_type=typ, props=props, urn=f"urn:pulumi:dev::gpu-burst::{typ}::{name}", name=name,
                          opts=opts, provider=None, parent=None, dependencies=[], property_dependencies={})


def run(policy, args):
    out = []
    validators = policy.validate if isinstance(policy.validate, list) else [policy.validate]
    for v in validators:
        res = v(args, lambda msg, urn=None: out.append(msg))
        assert not inspect.isawaitable(res)
    return out


def check_all(resources):
    """Every violation of every policy over (typ, props, name[, ignore_changes]) tuples, as '<policy>: <message>'."""
    out = []
    for p in policies.POLICIES:
        if isinstance(p, ResourceValidationPolicy):
            for typ, props, name, *_ in resources:
                out += [f"{p.name}: {m}" for m in run(p, rargs(typ, props, name))]
        elif isinstance(p, StackValidationPolicy):
            sargs = StackValidationArgs(resources=[presource(t, pr, n, *rest) for t, pr, n, *rest in resources])
            out += [f"{p.name}: {m}" for m in run(p, sargs)]
    return out


# ---------------------------------------------------------------------------------------------- fixtures
def release(version="2.17.0", chart="keda"):
    props = {"chart": chart, "name": chart, "repositoryOpts": {"repo": "https://kedacore.github.io/charts"}}
    if version is not None:
        props["version"] = version
    return props


def deployment(image="vllm/vllm-openai:v0.29.0", gpu=True, startup=True, env=None, replicas=None, name="m1"):
    c = {"name": "vllm", "image": image, "env": env or [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": "hf", "key": "token"}}}]}
    if gpu:
        c["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    if startup:
        c["startupProbe"] = {"httpGet": {"path": "/health", "port": "http"}}
    spec = {"selector": {}, "template": {"spec": {"containers": [c]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"metadata": {"name": name, "namespace": "inference"}, "spec": spec}


def nodepool(taint=True, limits=True, disruption=True):
    tspec = {"requirements": [{"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g6"]}]}
    if taint:
        tspec["taints"] = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    spec = {"template": {"spec": tspec}}
    if limits:
        spec["limits"] = {"cpu": "64", "nvidia.com/gpu": "8"}
    if disruption:
        spec["disruption"] = {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "5m"}
    return {"metadata": {"name": "gpu-spot"}, "spec": spec}


def nodeclass(alias="al2023@v20260818", tokens="required", family=None):
    spec = {"amiSelectorTerms": [{"alias": alias}], "metadataOptions": {"httpTokens": tokens}}
    if family:
        spec["amiFamily"] = family
    return {"metadata": {"name": "gpu"}, "spec": spec}


def scaled_object(target="m1"):
    return {"metadata": {"name": target, "namespace": "inference"},
            "spec": {"scaleTargetRef": {"name": target, "kind": "Deployment"}}}


# ---------------------------------------------------------------------------------------------- unit tests
@pytest.mark.parametrize("version, ok", [("2.17.0", True), ("v0.20.0", True), (None, False), ("", False),
                                         ("latest", False), ("^2.0.0", False), ("2.x", False), (">=1.0", False)])
def test_helm_chart_pinned(version, ok):
    msgs = run(policies.helm_chart_pinned, rargs(policies.HELM_RELEASE, release(version)))
    assert (not msgs) == ok, msgs
    if not ok:
        assert "keda" in msgs[0] and "version" in msgs[0]


@pytest.mark.parametrize("url, ok", [
    ("https://raw.githubusercontent.com/kubernetes-sigs/node-feature-discovery/v0.19.0/crds.yaml", True),
    ("https://raw.githubusercontent.com/o/r/0123456789abcdef0123456789abcdef01234567/crds.yaml", True),
    ("https://github.com/o/r/releases/download/v1.9.0-rc.1/install.yaml", True),
    ("manifests/crds.yaml", True),
    ("https://raw.githubusercontent.com/o/r/main/crds.yaml", False),
    ("https://raw.githubusercontent.com/o/r/master/v1.2.3/crds.yaml", False),
    ("https://raw.githubusercontent.com/o/r/refs/heads/release-1.2/crds.yaml", False),
    ("https://example.com/crds.yaml", False)])
def test_manifest_url_pinned(url, ok):
    one = run(policies.manifest_url_pinned_policy, rargs(policies.YAML_FILE, {"file": url}))
    group = run(policies.manifest_url_pinned_policy, rargs(policies.YAML_GROUP, {"files": ["a.yaml", url]}))
    assert (not one) == (not group) == ok, (one, group)


@pytest.mark.parametrize("image, ok", [
    ("vllm/vllm-openai:v0.29.0", True), ("registry:5000/team/app:1.2", True), ("nginx@sha256:abc123", True),
    ("vllm/vllm-openai", False), ("vllm/vllm-openai:latest", False), ("registry:5000/team/app", False),
    ("", False)])
def test_container_image_pinned(image, ok):
    for typ in policies.WORKLOADS:
        msgs = run(policies.container_image_pinned, rargs(typ, deployment(image=image)))
        assert (not msgs) == ok, (typ, msgs)
    if not ok:
        assert "not pinned" in msgs[0] and "'vllm'" in msgs[0]


def test_init_container_image_pinned():
    d = deployment()
    d["spec"]["template"]["spec"]["initContainers"] = [{"name": "fetch", "image": "busybox"}]
    msgs = run(policies.container_image_pinned, rargs(policies.DEPLOYMENT, d))
    assert len(msgs) == 1 and "initContainer 'fetch'" in msgs[0]


@pytest.mark.parametrize("kw, needle", [({"taint": False}, "not tainted"), ({"limits": False}, "limit"),
                                        ({"disruption": False}, "consolidateAfter")])
def test_gpu_nodepool(kw, needle):
    assert run(policies.gpu_nodepool_guarded, rargs(policies.NODEPOOL, nodepool())) == []
    msgs = run(policies.gpu_nodepool_guarded, rargs(policies.NODEPOOL, nodepool(**kw)))
    assert len(msgs) == 1 and needle in msgs[0] and "gpu-spot" in msgs[0]


def test_cpu_nodepool_is_not_a_gpu_pool():
    cpu = {"metadata": {"name": "system"}, "spec": {"template": {"spec": {"requirements": [
        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["m7i", "c7i"]}]}}}}
    assert run(policies.gpu_nodepool_guarded, rargs(policies.NODEPOOL, cpu)) == []


@pytest.mark.parametrize("nc, ok", [(nodeclass(), True), (nodeclass(alias="bottlerocket@v1.40.0"), True),
                                    (nodeclass(alias="al2@latest"), False), (nodeclass(alias="AL2@v2024"), False),
                                    (nodeclass(family="AL2"), False)])
def test_no_al2(nc, ok):
    msgs = run(policies.no_al2_ami, rargs(policies.EC2NODECLASS, nc))
    assert (not msgs) == ok, msgs
    if not ok:
        assert "AL2" in msgs[0] and "AL2023" in msgs[0] or "al2023" in msgs[0]


@pytest.mark.parametrize("tokens, ok", [("required", True), ("optional", False), (None, False)])
def test_imdsv2(tokens, ok):
    nc = nodeclass(tokens=tokens)
    if tokens is None:
        del nc["spec"]["metadataOptions"]
    msgs = run(policies.imdsv2_required, rargs(policies.EC2NODECLASS, nc))
    assert (not msgs) == ok and (ok or "httpTokens" in msgs[0])


@pytest.mark.parametrize("env, ok", [
    ([{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}], True),
    ([{"name": "HF_HOME", "value": "/models/hf"}], True),
    ([{"name": "HF_TOKEN", "value": "hf_abc"}], False),
    ([{"name": "VLLM_API_KEY", "value": "sk-1"}], False),
    ([{"name": "db_password", "value": "pw-leak-123"}], False),
    ([{"name": "CLIENT_SECRET", "value": "cs-leak-456"}], False)])
def test_no_plaintext_secret_env(env, ok):
    msgs = run(policies.no_plaintext_secret_env, rargs(policies.DEPLOYMENT, deployment(env=env)))
    assert (not msgs) == ok, msgs
    if not ok:
        assert env[0]["name"] in msgs[0] and "secretKeyRef" in msgs[0] and env[0]["value"] not in msgs[0]


def test_startup_probe_on_gpu_containers_only():
    assert run(policies.model_startup_probe, rargs(policies.DEPLOYMENT, deployment())) == []
    assert run(policies.model_startup_probe, rargs(policies.DEPLOYMENT, deployment(gpu=False, startup=False))) == []
    msgs = run(policies.model_startup_probe, rargs(policies.DEPLOYMENT, deployment(startup=False)))
    assert len(msgs) == 1 and "startupProbe" in msgs[0] and "inference/m1" in msgs[0]


def test_startup_probe_covers_a_time_slice_container():
    d = deployment(startup=False)
    d["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu.shared": "1"}}
    msgs = run(policies.model_startup_probe, rargs(policies.DEPLOYMENT, d))
    assert len(msgs) == 1 and "startupProbe" in msgs[0]


def test_no_replicas_on_keda_target():
    ok = [presource(policies.DEPLOYMENT, deployment(), "d"), presource(policies.SCALED_OBJECT, scaled_object(), "s")]
    assert run(policies.no_replicas_with_scaledobject, StackValidationArgs(resources=ok)) == []
    bad = [presource(policies.DEPLOYMENT, deployment(replicas=1), "d"),
           presource(policies.SCALED_OBJECT, scaled_object(), "s")]
    msgs = run(policies.no_replicas_with_scaledobject, StackValidationArgs(resources=bad))
    assert len(msgs) == 1 and "spec.replicas" in msgs[0] and "inference/m1" in msgs[0]
    # a create-time count with spec.replicas in ignoreChanges is fine (what ModelService does)
    created_at_zero = [presource(policies.DEPLOYMENT, deployment(replicas=0), "d", ["spec.replicas"]),
                       presource(policies.SCALED_OBJECT, scaled_object(), "s")]
    assert run(policies.no_replicas_with_scaledobject, StackValidationArgs(resources=created_at_zero)) == []
    # replicas on a Deployment that no ScaledObject targets is fine
    other = [presource(policies.DEPLOYMENT, deployment(replicas=2, name="web"), "d"),
             presource(policies.SCALED_OBJECT, scaled_object(), "s")]
    assert run(policies.no_replicas_with_scaledobject, StackValidationArgs(resources=other)) == []


def test_policy_names_unique_and_described():
    names = [p.name for p in policies.POLICIES]
    assert len(names) == len(set(names)) == 9
    assert all(p.description for p in policies.POLICIES)


def test_pack_entry_point_only_builds_the_pack():
    src = (ROOT / "policy" / "__main__.py").read_text()
    assert "PolicyPack(" in src and "from policies import POLICIES" in src
    assert (ROOT / "policy" / "PulumiPolicy.yaml").exists()
    assert "pulumi-policy==" in (ROOT / "policy" / "requirements.txt").read_text()


# ---------------------------------------------------------------------------------------------- whole stacks
def _stack_resources(mocks):
    """(type, inputs, name, ignoreChanges) of every registered resource, as CrossGuard sees them."""
    return [(r.typ, r.inputs, r.name, list(mocks.monitor.requests[r.name].ignoreChanges)
             if r.name in mocks.monitor.requests else []) for r in mocks.created]


@pytest.mark.parametrize("stack", ["dev", "prod", "byo"])
def test_whole_stack_passes_every_policy(stack, mocks):
    evaluate_stack(stack, secrets={"hfToken": "hf_x"} if stack == "prod" else None)
    resources = _stack_resources(mocks)
    types = {t for t, *_ in resources}
    # the policies actually saw what they guard
    assert {policies.HELM_RELEASE, policies.NODEPOOL, policies.EC2NODECLASS, policies.DEPLOYMENT,
            policies.SCALED_OBJECT} <= types, types
    assert check_all(resources) == []


def test_broken_stack_fails(mocks):
    """The dev stack with one defect of each kind injected: every policy reports it."""
    evaluate_stack("dev")
    resources = [(t, copy.deepcopy(dict(p)), n) for t, p, n, _ in _stack_resources(mocks)]
    by_type = {}
    for t, p, n in resources:
        by_type.setdefault(t, []).append(p)
    by_type[policies.HELM_RELEASE][0]["version"] = "latest"
    crds = by_type[policies.YAML_GROUP][0]["files"]
    crds[0] = crds[0].replace("/v3.5.0/", "/main/")
    by_type[policies.NODEPOOL][0]["spec"]["template"]["spec"]["taints"] = []
    by_type[policies.EC2NODECLASS][0]["spec"]["amiSelectorTerms"] = [{"alias": "al2@latest"}]
    by_type[policies.EC2NODECLASS][0]["spec"]["metadataOptions"]["httpTokens"] = "optional"
    dep = by_type[policies.DEPLOYMENT][0]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "vllm/vllm-openai:latest"
    container["env"] = list(container.get("env") or []) + [{"name": "HF_TOKEN_PLAIN", "value": "hf_leak"}]
    container.pop("startupProbe")
    dep["spec"]["replicas"] = 1
    violations = check_all(resources)
    failed = {v.split(":", 1)[0] for v in violations}
    assert failed == {p.name for p in policies.POLICIES}, violations
