"""examples/add-model: a second Pulumi program that adds a model to a running cluster through a StackReference.

The cluster stack (dev, prod) is evaluated under mocks; its outputs become the referenced stack of a fresh mock run of
the example, as the engine would read them (secret outputs as secrets). The added model must then cross the same
objects as the cluster's own: body `model` → the edge's route on the shared Gateway → the interceptor backend →
its InterceptorRoute → its Service, be listed by GET /v1/models, and scale like the cluster's model it copies.
"""

import asyncio
import copy
import functools
import json
import re
import runpy
from pathlib import Path

import pulumi
import pytest
import yaml
from pulumi.runtime.sync_await import _sync_await

from pulumi_mocks import Mocks, RecordingMonitor
from stack_cache import evaluated
from stack_helpers import evaluate, resolve, shared_loop
from test_workload_support import as_object, dependency_names, field_is_secret, of_kind
from upstream import needs_upstream, validate_cr

from components._common import GPU_RESOURCE, SHARED_GPU_RESOURCE, TIME_SLICING_TAINT_KEY
from components.added_model import SharedClusterArgs, stack_output_name
from components.model_route import MODEL_HEADER

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "add-model"
CLUSTER_STACK = "acme/gpu-burst/dev"
ADDED = "qwen-added"
HF_TOKEN = "hf_examples_test_token"


def _plain(outputs: dict) -> tuple[dict, set]:
    """A stack's outputs as the engine stores them: plain values, and the names of the secret ones."""
    values, secret = {}, set()
    for k, v in outputs.items():
        if isinstance(v, pulumi.Output):
            if _sync_await(v.is_secret()):
                secret.add(k)
            v = resolve(v)
        values[k] = v
    return values, secret


@functools.cache
def _cluster(stack: str) -> tuple:
    mocks, outputs = evaluated(stack, secrets={"hfToken": HF_TOKEN, "apiKey": "sk-examples-test-key"})
    values, secret = _plain(outputs)
    raw = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return stack, mocks, values, secret, raw["gpu-burst:models"][0]


@pytest.fixture(scope="module", params=["dev", "prod"])
def cluster(request):
    """(stack, mocks, outputs, secret output names, the stack's first model entry) of the evaluated cluster."""
    return _cluster(request.param)


def _fresh_mocks() -> Mocks:
    asyncio.set_event_loop(shared_loop())
    m = Mocks()
    m.monitor = RecordingMonitor(m)
    pulumi.runtime.set_mocks(m, project="add-model", stack="dev", preview=False, monitor=m.monitor)
    return m


def run_example(stack_outputs: tuple[dict, set], model: dict, hf_token: str = "", mocks: Mocks = None) -> Mocks:
    """Fresh mocks (or `mocks`) whose backend holds the cluster stack, and the example evaluated on them."""
    m = mocks or _fresh_mocks()
    m.stacks[CLUSTER_STACK] = stack_outputs
    cfg = {"add-model:clusterStack": CLUSTER_STACK, "add-model:model": json.dumps(model)}
    if hf_token:
        cfg["add-model:hfToken"] = hf_token
    pulumi.runtime.set_all_config(cfg, secret_keys=["add-model:hfToken"] if hf_token else [])
    m.program = evaluate(lambda: runpy.run_path(str(EXAMPLE / "__main__.py"), run_name="__main__"))
    return m


@pytest.fixture(scope="module")
def added(cluster):
    """The example adding a copy of the cluster's first model under another served name."""
    _, _, values, secret, model = cluster
    return run_example((values, secret), {**model, "servedName": ADDED}, HF_TOKEN)


def _state_name(mocks, r) -> str:
    return mocks.state(r.name)["metadata"]["name"]


def _ai_routes(mocks) -> list[dict]:
    """AIGatewayRoutes as the API server holds them (metadata.name as the provider auto-named it)."""
    out = []
    for r in of_kind(mocks, "AIGatewayRoute"):
        obj = as_object(r)
        obj["metadata"] = {**obj["metadata"], "name": _state_name(mocks, r)}
        out.append(obj)
    return out


def declared_models(routes: list[dict], gateway: str, namespace: str) -> list[str]:
    """What GET /v1/models answers: the AI Gateway controller lists every AIGatewayRoute whose parentRefs name the
    Gateway (namespace defaulting to the route's) and declares each exact `x-ai-eg-model` header match of each rule
    (envoyproxy/ai-gateway@v1.1.0 internal/controller/gateway_mutator.go listAIGatewayRoutesForGateway,
    controller.go aiGatewayRouteToAttachedGatewayIndexFunc, gateway.go reconcileFilterConfigSecret)."""
    models = []
    for route in routes:
        ns = route["metadata"]["namespace"]
        if not any(p["name"] == gateway and p.get("namespace", ns) == namespace for p in route["spec"]["parentRefs"]):
            continue
        for rule in route["spec"]["rules"]:
            models += [h["value"] for m in rule.get("matches", []) for h in m.get("headers", [])
                       if h["name"] == MODEL_HEADER and h.get("type", "Exact") == "Exact"]
    return models


def envoy_route_for(routes: list[dict], model: str) -> tuple[str, str]:
    """(route, rule) Envoy picks for a request whose `x-ai-eg-model` is `model`. Each AIGatewayRoute becomes an
    HTTPRoute of its rules on path prefix / plus a header-less `route-not-found` rule (ai-gateway@v1.1.0
    internal/controller/ai_gateway_route.go newHTTPRoute); Envoy Gateway merges the rules of all HTTPRoutes of a
    listener and orders them by path, then by the number of header matches, then of exact ones
    (envoyproxy/gateway@v1.9.0 internal/gatewayapi/sort.go), and the first match wins."""
    candidates = []
    for route in routes:
        name = route["metadata"]["name"]
        for rule in route["spec"]["rules"]:
            for match in rule["matches"]:
                headers = match.get("headers", [])
                if all(h["name"] == MODEL_HEADER and h["value"] == model for h in headers):
                    exact = sum(h.get("type", "Exact") == "Exact" for h in headers)
                    candidates.append((len(headers), exact, name, rule["name"]))
        candidates.append((0, 0, name, "route-not-found"))
    best = max(c[:2] for c in candidates)
    # Among equals the order is not specified: the answer must not depend on it.
    winners = {c[3] if c[3] == "route-not-found" else c[2:] for c in candidates if c[:2] == best}
    assert len(winners) == 1, f"{model}: rules of equal precedence {winners}"
    (w,) = winners
    return ("*", w) if w == "route-not-found" else w


# -- the cluster stack exports what a second program needs ---------------------------------------------------------

def test_project_file():
    project = yaml.safe_load((EXAMPLE / "Pulumi.yaml").read_text())
    assert project["name"] == "add-model" and project["runtime"]["name"] == "python"
    assert "clusterStack" in project["config"]
    reqs = [line for line in (EXAMPLE / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert reqs == ["../..[config]"]  # the components and the typed config (pydantic) it validates the model with


def test_cluster_stack_exports_every_shared_field_in_plain_text(cluster):
    stack, mocks, values, secret, _ = cluster
    for field in SharedClusterArgs.__annotations__:
        key = stack_output_name(field)
        assert key in values, f"{stack}: no output {key} for SharedClusterArgs.{field}"
        assert key not in secret, (stack, key)
        if field in SharedClusterArgs.__required_keys__:
            assert values[key] not in (None, ""), (stack, key)
    extra = ("interceptorService", "interceptorNamespace", "interceptorPort", "gpuTrafficClasses", "gpuToleration",
             "vllmImage", "models", "endpoint")
    assert all(k in values and k not in secret for k in extra)
    assert {"kubeconfig", "apiKey", "apiKeys"} <= secret
    # The values are those the stack's own objects use, not guesses.
    gw = [r for r in of_kind(mocks, "Gateway")]
    assert [_state_name(mocks, r) for r in gw] == [values["gatewayName"]]
    assert gw[0].inputs["metadata"]["namespace"] == values["inferenceNamespace"]
    pools = {p.inputs["metadata"]["name"]: p.inputs["spec"]["template"] for p in of_kind(mocks, "NodePool")}
    for pool, cls in values["gpuTrafficClasses"].items():
        template = pools[pool]
        assert template["metadata"]["labels"]["gpu-burst.io/traffic-class"] == cls
        assert values["gpuToleration"] in [{k: t[k] for k in ("key", "effect")} | {"operator": "Exists"}
                                           for t in template["spec"]["taints"]]


# -- the added model: routed, listed, scaled like the cluster's own ---------------------------------------------------

def test_added_model_request_path_body_model_to_route_to_interceptor_to_service(cluster, added):
    _, cmocks, values, _, _ = cluster
    routes = _ai_routes(added)
    assert len(routes) == 1
    route = routes[0]
    # body `model` → x-ai-eg-model → the added route, attached to the cluster's Gateway from its own namespace (the
    # listener admits routes of the Gateway's namespace only)
    (gateway,) = [as_object(r) for r in of_kind(cmocks, "Gateway")]
    assert gateway["spec"]["listeners"][0]["allowedRoutes"] == {"namespaces": {"from": "Same"}}
    assert route["metadata"]["namespace"] == gateway["metadata"]["namespace"]
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                            "name": _state_name(cmocks, of_kind(cmocks, "Gateway")[0])}]
    every_route = _ai_routes(cmocks) + routes
    assert envoy_route_for(every_route, ADDED) == (route["metadata"]["name"], ADDED)
    (rule,) = route["spec"]["rules"]
    # → the cluster's interceptor backend (whose BackendSecurityPolicy injects the internal key) → the interceptor
    backends = {_state_name(cmocks, r): as_object(r) for r in of_kind(cmocks, "AIServiceBackend")}
    assert rule["backendRefs"] == [{"name": values["interceptorBackendName"]}]
    ai_backend = backends[values["interceptorBackendName"]]
    (backend,) = [as_object(r) for r in of_kind(cmocks, "Backend")
                  if _state_name(cmocks, r) == ai_backend["spec"]["backendRef"]["name"]]
    fqdn = backend["spec"]["endpoints"][0]["fqdn"]
    assert (fqdn["hostname"], fqdn["port"]) == (
        f"{values['interceptorService']}.{values['interceptorNamespace']}.svc.cluster.local", values["interceptorPort"])
    (bsp,) = [as_object(r) for r in of_kind(cmocks, "BackendSecurityPolicy")]
    assert bsp["spec"]["targetRefs"][0]["name"] == values["interceptorBackendName"]
    assert bsp["spec"]["apiKey"]["secretRef"]["name"] == values["internalKeySecretName"]
    # → the added InterceptorRoute matches the header the edge set → the added Service → its pods
    (ir,) = [as_object(r) for r in of_kind(added, "InterceptorRoute")]
    (svc,) = [as_object(r) for r in of_kind(added, "Service")]
    (dep,) = [as_object(r) for r in of_kind(added, "Deployment")]
    assert ir["spec"]["rules"][0]["headers"] == [{"name": values["modelHeader"], "value": ADDED}]
    assert values["modelHeader"] == MODEL_HEADER
    assert ir["spec"]["target"]["service"] == svc["metadata"]["name"] == ADDED
    assert ir["metadata"]["namespace"] == svc["metadata"]["namespace"] == values["inferenceNamespace"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in svc["spec"]["selector"].items())
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == values["internalKeySecretName"]
    # the component's output tells the same path
    assert resolve(added.program["added"].request_path) == {
        "header": MODEL_HEADER, "value": ADDED, "route": route["metadata"]["name"], "rule": ADDED,
        "backend": values["interceptorBackendName"], "interceptor_route": ADDED, "service": ADDED}
    # the edge routes to the model only once its InterceptorRoute exists (and stops before it is deleted)
    assert f"model-{ADDED}-route" in dependency_names(added, f"route-{ADDED}")


def test_added_model_is_listed_by_v1_models_next_to_the_clusters_own(cluster, added):
    _, cmocks, values, _, _ = cluster
    gateway, ns = values["gatewayName"], values["inferenceNamespace"]
    listed = declared_models(_ai_routes(cmocks) + _ai_routes(added), gateway, ns)
    assert listed == list(values["models"]) + [ADDED]
    # every cluster model still reaches its own rule; an unknown model gets the catch-all 404
    routes = _ai_routes(cmocks) + _ai_routes(added)
    for model in values["models"]:
        assert envoy_route_for(routes, model)[1] == model
    assert envoy_route_for(routes, "no-such-model") == ("*", "route-not-found")


@needs_upstream
def test_added_custom_resources_validate_against_the_upstream_crds(added):
    kinds = ("AIGatewayRoute", "InterceptorRoute", "ScaledObject", "ServiceMonitor")
    for kind in kinds:
        (r,) = of_kind(added, kind)
        assert validate_cr(as_object(r)) == [], kind


def _normalised(obj, twin: str) -> str:
    """An object's spec with the twin model's name and provider auto-name suffixes made comparable."""
    text = json.dumps(obj, sort_keys=True).replace(twin, ADDED)
    return re.sub(r"-[0-9a-f]{7}\b", "-<auto>", text)


@pytest.mark.parametrize("kind", ["ScaledObject", "InterceptorRoute", "Deployment", "ServiceMonitor", "Service",
                                  "PodDisruptionBudget", "Job", "PodIdentityAssociation"])
def test_added_model_is_deployed_and_scaled_like_the_clusters_own(cluster, added, kind):
    """The added model copies the cluster's first model entry: every object of it must equal the twin's, up to the
    served name (same Prometheus, scaler, timeouts, traffic class, GPU toleration, monitor label, weights prefix)."""
    _, cmocks, _, _, model = cluster
    twin = model["servedName"]

    def objects(mocks, name):
        if kind == "PodIdentityAssociation":
            found = [{k: v for k, v in r.inputs.items() if k != "roleArn"}
                     for r in mocks.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
                     if r.inputs["serviceAccount"].startswith(name)]
        else:
            found = [as_object(r) for r in of_kind(mocks, kind) if r.name.startswith((f"model-{name}",
                                                                                      f"weights-{name}"))]
        assert found, f"no {kind} for {name}"
        return sorted(_normalised(o, twin) for o in found)

    assert objects(added, ADDED) == objects(cmocks, twin)


def test_on_an_existing_cluster_the_added_models_monitor_carries_the_labels_its_prometheus_selects():
    """byo's Prometheus (an existing kube-prometheus-stack) selects ServiceMonitors by `release`: the added model's
    monitor must carry the cluster stack's serviceMonitorLabels like its own models', or nothing scrapes the queue
    depth its Prometheus trigger reads."""
    _, cmocks, values, secret, model = _cluster("byo")
    assert values["serviceMonitorLabels"] == {"release": "kube-prometheus-stack"}
    m = run_example((values, secret), {**model, "servedName": ADDED})

    def monitor_labels(mocks, name):
        (sm,) = [as_object(r) for r in of_kind(mocks, "ServiceMonitor") if r.name.startswith(f"model-{name}")]
        return sm["metadata"]["labels"]
    theirs = monitor_labels(cmocks, model["servedName"])
    assert theirs["release"] == "kube-prometheus-stack"
    mine = monitor_labels(m, ADDED)
    assert {k: v for k, v in mine.items() if ADDED not in v} == {k: v for k, v in theirs.items()
                                                                 if model["servedName"] not in v}


def test_a_model_entry_with_only_its_identity_runs_next_to_the_stacks_own(cluster):
    """The model's defaults are those of a `gpu-burst:models` entry: the stack's vLLM release and the default pool,
    which both example stacks have."""
    _, _, values, secret, model = cluster
    m = run_example((values, secret), {k: model[k] for k in ("hfModelId", "revision")} | {"servedName": ADDED})
    (dep,) = [as_object(r) for r in of_kind(m, "Deployment")]
    pod = dep["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == values["vllmImage"]
    assert pod["nodeSelector"]["gpu-burst.io/traffic-class"] == values["gpuTrafficClasses"]["gpu-on-demand"]


def test_added_model_reaches_the_cluster_through_its_kubeconfig_which_stays_secret(added):
    (provider,) = added.of_type("pulumi:providers:kubernetes")
    assert provider.name == "existing-cluster"  # the earlier example's provider, kept
    assert field_is_secret(added, provider.name, "kubeconfig")
    for r in added.created:
        if r.typ.startswith("kubernetes:"):
            req = added.monitor.requests[r.name]
            assert req.provider.split("::")[-2] == provider.name, r.name
    (ref,) = added.of_type("pulumi:pulumi:StackReference")
    assert ref.inputs["name"] == CLUSTER_STACK


def test_weights_grants_go_to_the_clusters_region_whatever_the_programs_aws_region(cluster, added):
    _, _, values, _, _ = cluster
    (aws_provider,) = added.of_type("pulumi:providers:aws")
    assert aws_provider.inputs["region"] == values["region"]
    aws_resources = [r for r in added.created if r.typ.startswith("aws:")]
    assert {r.typ for r in aws_resources} >= {"aws:iam/role:Role", "aws:eks/podIdentityAssociation:PodIdentityAssociation"}
    for r in aws_resources:
        assert added.monitor.requests[r.name].provider.split("::")[-2] == aws_provider.name, r.name
    lookups = [c for c in added.calls if c.token.startswith("aws:index/get")]
    assert lookups and all(aws_provider.name in (c.provider or "") for c in lookups), [c.provider for c in lookups]


def test_the_earlier_examples_model_service_is_adopted_in_place(added):
    """The earlier example declared `ModelService("model-<served name>")` at the top of its program; under
    AddedModel it keeps that URN through an alias to the root stack (children inherit it)."""
    (req,) = added.monitor.by_type["gpu-burst:index:ModelService"]
    assert req.name == f"model-{ADDED}"
    assert [(a.spec.name, a.spec.type, a.spec.noParent) for a in req.aliases] == [("", "", True)]


def test_gated_model_stages_with_the_programs_token_only(cluster, added):
    stack, *_ = cluster
    jobs = [r for r in of_kind(added, "Job")]
    secrets = [r for r in of_kind(added, "Secret")]
    if stack == "prod":  # prod's first model is gated
        assert len(secrets) == 1 and field_is_secret(added, secrets[0].name, "stringData")
    else:
        assert secrets == []
    assert len(jobs) == 1


# -- bad input is one line naming the key --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dev_outputs():
    _, _, values, secret, _ = _cluster("dev")
    return values, secret


def _dev_model():
    raw = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    return copy.deepcopy(raw["gpu-burst:models"][0])


def _error_of(fn) -> str:
    with pytest.raises(Exception) as e:
        fn()
    return str(e.value)


def test_invalid_model_is_reported_per_key_before_anything_is_declared(dev_outputs):
    model = {**_dev_model(), "servedName": "Qwen_Bad", "maxReplicas": 0, "bogus": 1}
    m = _fresh_mocks()
    msg = _error_of(lambda: run_example(dev_outputs, model, mocks=m))
    assert "add-model:model.servedName: 'Qwen_Bad' is not a DNS label" in msg
    assert "add-model:model.maxReplicas:" in msg and "add-model:model.bogus: unknown key" in msg
    assert m.created == []


@pytest.mark.parametrize("change, expected", [
    ({"pool": "gpu-nowhere"}, "pool 'gpu-nowhere' is not a GPU pool of the cluster; allowed: gpu-on-demand"),
    ({"servedName": "qwen2-5-1-5b-instruct"}, "served_name 'qwen2-5-1-5b-instruct' is already served by the "
                                              "cluster stack; allowed: a name not in ['qwen2-5-1-5b-instruct']"),
])
def test_model_that_does_not_fit_the_cluster_declares_nothing(dev_outputs, change, expected):
    """Known only from the referenced stack: every object of the model waits on the check, so none is declared."""
    m = _fresh_mocks()
    msg = _error_of(lambda: run_example(dev_outputs, {**_dev_model(), "servedName": ADDED, **change}, mocks=m))
    assert expected in msg
    assert [r.typ for r in m.created if r.typ.startswith(("kubernetes:", "aws:"))] == []


def test_gated_model_without_a_token_is_refused(dev_outputs):
    msg = _error_of(lambda: run_example(dev_outputs, {**_dev_model(), "servedName": ADDED, "needsHfToken": True}))
    assert "add-model:model.needsHfToken: the model is gated and add-model:hfToken is not set" in msg


def test_a_cluster_stack_without_the_shared_outputs_is_named(dev_outputs):
    values, secret = dev_outputs
    older = {k: v for k, v in values.items() if k != "gatewayName"}
    msg = _error_of(lambda: run_example((older, secret), {**_dev_model(), "servedName": ADDED}))
    assert "the cluster stack has no output 'gatewayName'" in msg


def test_a_model_entry_on_time_slices_asks_for_one_slice(dev_outputs):
    """`sharedGpu` of the model entry reaches the pods as it does for the cluster stack's own models: one
    `nvidia.com/gpu.shared`, no whole GPU, and the time-sliced pools' taint tolerated."""
    m = run_example(dev_outputs, {**_dev_model(), "servedName": ADDED, "gpus": 1, "sharedGpu": True})
    (dep,) = [as_object(r) for r in of_kind(m, "Deployment")]
    pod = dep["spec"]["template"]["spec"]
    requests = pod["containers"][0]["resources"]["requests"]
    assert requests[SHARED_GPU_RESOURCE] == "1" and GPU_RESOURCE not in requests
    assert TIME_SLICING_TAINT_KEY in [t["key"] for t in pod["tolerations"]]


def test_time_slices_of_several_gpus_are_refused_before_anything_is_declared(dev_outputs):
    m = _fresh_mocks()
    msg = _error_of(lambda: run_example(dev_outputs, {**_dev_model(), "servedName": ADDED, "gpus": 2,
                                                      "sharedGpu": True}, mocks=m))
    assert "shared_gpu with gpus 2; allowed: gpus 1" in msg
    assert [r.typ for r in m.created if r.typ.startswith(("kubernetes:", "aws:"))] == []


def test_a_model_entrys_prewarm_windows_become_its_cron_triggers(dev_outputs):
    window = {"start": "50 7 * * 1-5", "end": "0 19 * * 1-5", "timezone": "Europe/Berlin", "replicas": 1}
    m = run_example(dev_outputs, {**_dev_model(), "servedName": ADDED, "prewarm": [window]})
    (so,) = [as_object(r) for r in of_kind(m, "ScaledObject")]
    cron = [t for t in so["spec"]["triggers"] if t["type"] == "cron"]
    assert cron == [{"type": "cron", "name": "prewarm-0", "metricType": "AverageValue",
                     "metadata": {"timezone": "Europe/Berlin", "start": "50 7 * * 1-5", "end": "0 19 * * 1-5",
                                  "desiredReplicas": "1"}}]
