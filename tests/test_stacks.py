"""The whole dev and prod stacks evaluated under mocks: one dependency graph, correct across layers."""

import json

import pulumi
import pytest

from stack_cache import evaluated
from stack_helpers import resolve
from test_workload_support import as_object, field_is_secret
from upstream import CRD_FILES, needs_upstream, validate_cr

HF_TOKEN = "hf_stack_test_token_value"
API_KEY = "sk-stack-test-api-key-value"


@pytest.fixture(params=["dev", "prod", "prod-eu", "byo"], scope="module")
def stack(request):
    mocks, outputs = evaluated(request.param, secrets={"hfToken": HF_TOKEN, "apiKey": API_KEY})
    return request.param, mocks, outputs


def _urn(mocks, name):
    return next(u for u in mocks.monitor.resources if u.endswith(f"::{name}"))


def _release_urn(mocks, release_name):
    r = next(r for r in mocks.of_type("kubernetes:helm.sh/v3:Release") if r.inputs.get("name") == release_name)
    return _urn(mocks, r.name)


def _crs(mocks):
    return [r for r in mocks.created if r.typ.startswith("kubernetes:") and r.custom
            and tuple(r.typ.split(":")[1].split("/")[0:1] + [r.typ.split(":")[2]]) in CRD_FILES]


@needs_upstream
def test_every_custom_resource_validates_against_its_upstream_crd(stack):
    name, mocks, _ = stack
    crs = _crs(mocks)
    kinds = {r.typ.split(":")[2] for r in crs}
    assert {"EC2NodeClass", "NodePool", "ScaledObject", "InterceptorRoute", "ServiceMonitor",
            "PrometheusRule"} <= kinds, kinds
    for r in crs:
        assert validate_cr(as_object(r)) == [], f"{name}: {r.typ} {r.name}"


def test_custom_resources_wait_for_the_release_that_installs_their_crd(stack):
    name, mocks, _ = stack
    keda = _release_urn(mocks, "keda")
    http = _release_urn(mocks, "keda-add-ons-http")
    needs = {"ScaledObject": keda, "InterceptorRoute": http}
    if name != "byo":  # byo: the cluster's own Karpenter and kube-prometheus-stack serve these CRDs
        karpenter = _release_urn(mocks, "karpenter")
        kps = _release_urn(mocks, "kube-prometheus-stack")
        needs.update({"NodePool": karpenter, "EC2NodeClass": karpenter, "ServiceMonitor": kps, "PrometheusRule": kps})
    seen = set()
    for r in mocks.created:
        kind = r.typ.split(":")[-1]
        if r.typ.startswith("kubernetes:") and kind in needs:
            assert needs[kind] in set(mocks.monitor.requests[r.name].dependencies), f"{kind} {r.name}"
            seen.add(kind)
    assert seen == set(needs)


def test_nodepools_are_destroyed_before_karpenter(stack):
    # Pulumi deletes dependents first: a NodePool that depends on the Karpenter release is deleted while the
    # controller still runs, so Karpenter terminates the nodes it launched.
    name, mocks, _ = stack
    if name == "byo":
        pytest.skip("the cluster's own Karpenter: the stack installs no controller to order the NodePools against")
    karpenter = _release_urn(mocks, "karpenter")
    pools = mocks.of_type("kubernetes:karpenter.sh/v1:NodePool")
    assert pools
    for p in pools:
        assert karpenter in mocks.monitor.requests[p.name].dependencies


def test_every_release_is_pinned_and_waits_for_the_system_nodes(stack):
    name, mocks, _ = stack
    coredns = _urn(mocks, "gpu-burst-coredns") if name != "byo" else None  # byo: the cluster's nodes already run
    for r in mocks.of_type("kubernetes:helm.sh/v3:Release"):
        v = r.inputs.get("version", "")
        # OCI charts of the Envoy projects are tagged with a leading "v" (v1.9.0).
        assert v and v != "latest" and v.lstrip("v")[:1].isdigit(), f"{r.inputs['name']} unpinned: {v!r}"
        assert "gpu-burst-k8s" in mocks.monitor.requests[r.name].provider
        if coredns and r.inputs["name"] not in ("karpenter", "karpenter-crd"):
            assert coredns in mocks.monitor.requests[r.name].dependencies, r.inputs["name"]


def test_creating_a_model_buys_no_gpu_and_updates_never_reset_keda(stack):
    """What the program sends: every autoscaled Deployment is created with `replicas: 0` (an omitted field defaults
    to 1, i.e. a GPU node for nobody) and `spec.replicas` in ignoreChanges. Under server-side apply (the provider
    default, not turned off here) the provider then drops the field from each apply once KEDA/the HPA own it via the
    scale subresource, or re-sends the live value (pulumi-kubernetes provider/pkg/await/await.go
    handleSSAIgnoreFields). KEDA starts with no initial cooldown: there is no first replica to protect."""
    _, mocks, _ = stack
    scaled = {r.inputs["spec"]["scaleTargetRef"]["name"]: r.inputs["spec"]
              for r in mocks.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject")}
    deployments = {r.inputs["metadata"]["name"]: r for r in mocks.of_type("kubernetes:apps/v1:Deployment")}
    assert scaled and set(scaled) <= set(deployments)
    for t, so in scaled.items():
        r = deployments[t]
        assert r.inputs["spec"]["replicas"] == so["minReplicaCount"] == 0
        assert list(mocks.monitor.requests[r.name].ignoreChanges) == ["spec.replicas"]
        assert so.get("initialCooldownPeriod", 0) == 0
    providers = mocks.of_type("pulumi:providers:kubernetes")
    assert providers
    for p in providers:
        assert p.inputs.get("enableServerSideApply") in (None, True, "true")


def test_secrets_never_appear_in_plaintext(stack):
    name, mocks, _ = stack
    for r in mocks.created:
        text = json.dumps(r.inputs, default=str)
        if HF_TOKEN in text or API_KEY in text:
            assert r.typ == "kubernetes:core/v1:Secret", f"secret value in {r.typ} {r.name}"
            assert field_is_secret(mocks, r.name, "stringData"), r.name
    holders = {r.name for r in mocks.of_type("kubernetes:core/v1:Secret") if HF_TOKEN in json.dumps(r.inputs, default=str)}
    gated = name.startswith("prod")  # prod serves a gated model; dev's model needs no token, so none is deployed
    assert bool(holders) == gated, holders


def test_gpu_nodes_require_imdsv2_with_hop_limit_1(stack):
    _, mocks, _ = stack
    for r in mocks.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"):
        assert r.inputs["spec"]["metadataOptions"]["httpTokens"] == "required"
        assert r.inputs["spec"]["metadataOptions"]["httpPutResponseHopLimit"] == 1


def _pools_that_fit(pod: dict, pools: dict) -> list[str]:
    """NodePools whose nodes a pod can land on (template labels satisfy its nodeSelector, taints tolerated), in the
    order Karpenter tries them: highest weight first (karpenter.sh NodePool `spec.weight`)."""
    def fits(spec: dict) -> bool:
        node_labels = {**spec["template"]["metadata"]["labels"]}
        if any(node_labels.get(k) != v for k, v in pod["nodeSelector"].items()):
            return False
        return all(any(t["key"] == taint["key"] and t.get("effect") in (None, taint["effect"])
                       and (t["operator"] == "Exists" or t.get("value") == taint.get("value"))
                       for t in pod.get("tolerations", []))
                   for taint in spec["template"]["spec"].get("taints", []))
    return sorted((n for n, s in pools.items() if fits(s)), key=lambda n: -pools[n]["weight"])


def test_model_pods_fit_every_pool_of_their_traffic_class_by_weight(stack):
    name, mocks, _ = stack
    pools = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in mocks.of_type("kubernetes:karpenter.sh/v1:NodePool")}
    gpu_pods = [r.inputs["spec"]["template"]["spec"] for r in mocks.of_type("kubernetes:apps/v1:Deployment")
                if "nvidia.com/gpu" in r.inputs["spec"]["template"]["spec"]["containers"][0]["resources"].get("limits", {})]
    assert gpu_pods
    for pod in gpu_pods:
        # Never pinned to one NodePool: that would make a fallback pool unreachable.
        assert "karpenter.sh/nodepool" not in pod["nodeSelector"]
        fitting = _pools_that_fit(pod, pools)
        if name.startswith("prod"):
            # Spot first, on-demand when spot is short: both reachable, ordered by weight.
            assert fitting == ["gpu-spot", "gpu-on-demand"]
            assert pools["gpu-spot"]["weight"] > pools["gpu-on-demand"]["weight"]
        elif name == "byo":
            assert fitting == ["gpu-burst-spot", "gpu-burst-on-demand"]
        else:
            assert fitting == ["gpu-on-demand"]


def test_gpu_nodes_are_never_load_balancer_targets(stack):
    _, mocks, _ = stack
    for r in mocks.of_type("kubernetes:karpenter.sh/v1:NodePool"):
        labels = r.inputs["spec"]["template"]["metadata"]["labels"]
        assert labels["node.kubernetes.io/exclude-from-external-load-balancers"] == "true", r.name


def test_stack_outputs_give_an_endpoint_and_ready_to_paste_requests(stack):
    name, _, outputs = stack
    values = {k: resolve(v) if isinstance(v, pulumi.Output) else v for k, v in outputs.items()}
    if name == "byo":
        # The existing cluster; its own Karpenter drains its own queue (none asked for here).
        assert values["clusterName"] == "ml-platform" and values["karpenterInterruptionQueue"] == ""
    else:
        # The chosen name, read back from the cluster resource (the mocks run every stack file as stack `dev`).
        assert values["clusterName"] == "gpu-burst-dev"
        assert values["karpenterInterruptionQueue"].startswith("gpu-burst-interruption-")
    from pulumi.runtime.sync_await import _sync_await as _await
    assert _await(outputs["kubeconfig"].is_secret()) is True
    assert {"endpoint", "models"} <= set(values), set(values)
    # One base URL for every region only where gateway.globalDns is set (tests/test_global_dns.py).
    assert ("globalEndpoint" in values) == (name == "prod-eu")
    models = values["models"]
    assert set(values["curlChatCompletions"]) == set(values["curlCompletions"]) == set(models)
    for model in models:
        chat, completion = values["curlChatCompletions"][model], values["curlCompletions"][model]
        # `endpoint` is the SDK's base_url, /v1 included.
        assert values["endpoint"].endswith("/v1")
        assert f"{values['endpoint']}/chat/completions " in chat
        assert f"{values['endpoint']}/completions " in completion
        for c in (chat, completion):
            assert API_KEY not in c and '"Authorization: Bearer $GPU_BURST_API_KEY"' in c
            assert f'"model": "{model}"' in c
    from pulumi.runtime.sync_await import _sync_await
    assert _sync_await(outputs["apiKeys"].is_secret()) is True


def test_resource_counts_are_stable(stack):
    name, mocks, _ = stack
    # A structural regression guard: a silently skipped layer would change these counts a lot (byo creates no
    # cluster, network, Karpenter or monitoring).
    assert len(mocks.created) > (60 if name == "byo" else 90)


def test_model_objects_reference_each_other_through_outputs(stack):
    # Route → Service, ScaledObject → Deployment and route, ServiceMonitor → Service: data dependencies, not
    # names typed twice, so a renamed object breaks the preview instead of silently scaling or scraping nothing.
    _, mocks, _ = stack
    for so in mocks.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject"):
        base = so.name.removesuffix("-scaler")
        spec_deps = set(mocks.monitor.requests[so.name].propertyDependencies["spec"].urns)
        deployment = next(u for u in mocks.monitor.resources if u.endswith(f"apps/v1:Deployment::{base}"))
        assert {_urn(mocks, f"{base}-route"), deployment} <= spec_deps, so.name
        route_deps = set(mocks.monitor.requests[f"{base}-route"].propertyDependencies["spec"].urns)
        assert _urn(mocks, f"{base}-svc") in route_deps
        monitor_deps = set(mocks.monitor.requests[f"{base}-monitor"].propertyDependencies["spec"].urns)
        assert _urn(mocks, f"{base}-svc") in monitor_deps
        svc_labels = mocks.named(f"{base}-svc").inputs["metadata"]["labels"]
        sel = mocks.named(f"{base}-monitor").inputs["spec"]["selector"]["matchLabels"]
        assert sel and all(svc_labels[k] == v for k, v in sel.items())


def test_interceptor_metrics_are_scraped_for_the_dashboard_and_alert(stack):
    # The no-replica alert and the held-requests panel read interceptor_request_concurrency: without a scrape of
    # the interceptor they could never fire or show anything.
    name, mocks, _ = stack
    from components.edge_gateway import INTERCEPTOR_SELECTOR

    svc = mocks.named("gpu-burst-edge-interceptor-metrics").inputs
    assert svc["spec"]["selector"] == INTERCEPTOR_SELECTOR
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 2223, "targetPort": 2223, "protocol": "TCP"}]
    sm = mocks.named("gpu-burst-edge-interceptor-monitor")
    assert sm.inputs["spec"]["selector"]["matchLabels"] == svc["metadata"]["labels"]
    assert sm.inputs["spec"]["endpoints"][0]["port"] == "metrics"
    if name == "byo":  # the cluster's kube-prometheus-stack selects monitors by its release label
        assert sm.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    else:
        assert _release_urn(mocks, "kube-prometheus-stack") in mocks.monitor.requests[sm.name].dependencies
    rules = json.dumps([r.inputs for r in mocks.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")])
    assert "interceptor_request_concurrency" in rules


def test_layer_contracts_are_typed_fields_not_grab_bags():
    """What a layer hands on is a named, typed field: no `extra` dict that later layers or outputs reach into."""
    import dataclasses

    from stacks.contracts import Addons, Foundation

    for contract in (Foundation, Addons):
        fields = {f.name: f.type for f in dataclasses.fields(contract)}
        assert "extra" not in fields, contract.__name__
        assert all(t is not dict or name in ("dashboard_label", "gpu_toleration") for name, t in fields.items())
    assert {"kubeconfig", "karpenter_interruption_queue", "private_subnet_ids"} <= {
        f.name for f in dataclasses.fields(Foundation)}
    assert {"grafana_service", "gpu_toleration", "device_plugin_release"} <= {f.name for f in dataclasses.fields(Addons)}
    src = (__import__("pathlib").Path(__file__).parents[1] / "stacks" / "main.py").read_text()
    assert ".extra" not in src


def test_stack_modules_describe_layers_not_work_items():
    import ast
    import pathlib
    import re

    for path in sorted((pathlib.Path(__file__).parents[1] / "stacks").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docs = [ast.get_docstring(n) or "" for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))]
        assert not any(re.search(r"\bissue\s*\d", d, re.I) for d in docs), path
