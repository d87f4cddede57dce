"""The OpenAI-compatible front door under mocks: Envoy Gateway + AI Gateway objects validated against the upstream
CRDs, the request path per model, API keys (401), per-key limits (429 + Retry-After), cold-start timeouts at every
hop, TLS, the internal credential vLLM enforces, and no plaintext key anywhere."""

import json
import re

import pulumi
import pytest
from stack_helpers import resolve
from test_workload_support import (PROD_KEYS, as_object, dependency_names, field_is_secret, of_kind, run_workload,
                                   strict_core_errors)
from upstream import AI_GATEWAY_EG_VALUES, load_upstream, needs_upstream, unknown_value_keys, validate_cr

from components import edge_gateway as eg
from components.load_balancer_controller import LOAD_BALANCER_CLASS

LB = "service.beta.kubernetes.io/aws-load-balancer-"
EDGE_KINDS = ("EnvoyProxy", "GatewayClass", "Gateway", "SecurityPolicy", "BackendTrafficPolicy",
              "ClientTrafficPolicy", "Backend", "AIServiceBackend", "BackendSecurityPolicy", "AIGatewayRoute",
              "GatewayConfig")


def _is_secret(output: pulumi.Output) -> bool:
    from pulumi.runtime.sync_await import _sync_await

    return _sync_await(output.is_secret())


def _one(mocks, kind: str) -> dict:
    objs = [as_object(r) for r in of_kind(mocks, kind) if r.name.startswith("gpu-burst-edge")]
    assert len(objs) == 1, f"{kind}: {len(objs)}"
    return objs[0]


def _nlb(mocks) -> dict:
    """The LoadBalancer Service the edge owns (the NLB's Kubernetes object)."""
    return as_object(mocks.named("gpu-burst-edge-nlb"))


def _name(mocks, resource_name: str) -> str:
    """The object's real (auto-)name, as the mock provider returned it."""
    return mocks.state(resource_name)["metadata"]["name"]


def _release(mocks, name: str) -> dict:
    return mocks.named(f"{name}-release").inputs


def _seconds(d: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    assert re.fullmatch(r"([0-9]{1,5}(h|m|s|ms)){1,4}", d), d  # Gateway API Duration
    return sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)(h|m|s)", d))


def _evaluated(stack: str):
    """One evaluation per stack for the whole module (as the `mocks` fixture sets them up, kept for reading)."""
    import asyncio

    from pulumi_mocks import Mocks, RecordingMonitor
    from stack_helpers import shared_loop

    asyncio.set_event_loop(shared_loop())
    m = Mocks()
    m.monitor = RecordingMonitor(m)
    pulumi.runtime.set_mocks(m, project="gpu-burst", stack=stack, preview=False, monitor=m.monitor)
    pulumi.runtime.set_all_config({})
    out, _, cfg = run_workload(stack)
    return m, out, cfg


@pytest.fixture(scope="module")
def prod():
    return _evaluated("prod")


@pytest.fixture(scope="module")
def dev():
    return _evaluated("dev")


# -- objects are valid for Envoy Gateway v1.9 / AI Gateway v1.1 -----------------------------------------------------

@needs_upstream
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_edge_custom_resource_validates_against_the_upstream_crds(request, stack):
    mocks, _, _ = request.getfixturevalue(stack)
    seen = set()
    for kind in EDGE_KINDS + ("PodMonitor", "ServiceMonitor", "InterceptorRoute"):
        for r in of_kind(mocks, kind):
            obj = as_object(r)
            assert validate_cr(obj) == [], f"{kind} {r.name}"
            seen.add(kind)
    assert set(EDGE_KINDS) <= seen


@needs_upstream
def test_chart_values_keys_exist_in_the_charts(prod):
    mocks, _, _ = prod
    # config.envoyGateway is Envoy Gateway's own EnvoyGateway API object (no chart keys below it): the next test
    # checks it carries everything the AI Gateway's upstream Envoy Gateway values require.
    assert unknown_value_keys("gateway-helm", _release(mocks, "gpu-burst-edge-envoy-gateway")["values"],
                              open_paths=("config.envoyGateway",)) == []
    assert unknown_value_keys("ai-gateway-helm", _release(mocks, "gpu-burst-edge-ai-gateway")["values"]) == []
    assert unknown_value_keys("aws-load-balancer-controller", _release(mocks, "gpu-burst-lbc")["values"]) == []


def _is_subset(want, have, path="") -> list:
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [path]
        return [p for k, v in want.items() for p in _is_subset(v, have.get(k), f"{path}.{k}")]
    return [] if want == have else [f"{path}: {have!r} != {want!r}"]


@needs_upstream
def test_ai_gateway_required_envoy_gateway_values_are_present(prod):
    mocks, _, _ = prod
    values = _release(mocks, "gpu-burst-edge-envoy-gateway")["values"]
    assert _is_subset(load_upstream(AI_GATEWAY_EG_VALUES), values) == []
    ai = _release(mocks, "gpu-burst-edge-ai-gateway")
    fqdn = values["config"]["envoyGateway"]["extensionManager"]["service"]["fqdn"]
    # The extension server address is the AI Gateway controller's Service in the namespace it is installed to.
    assert fqdn["hostname"] == f"{ai['values']['controller'].get('fullnameOverride', eg.AIGW_CONTROLLER)}." \
                               f"{ai['namespace']}.svc.cluster.local"
    assert ai["values"]["envoyGateway"]["namespace"] == _release(mocks, "gpu-burst-edge-envoy-gateway")["namespace"]


def test_charts_are_pinned_oci_releases_on_the_system_nodes(prod):
    mocks, _, _ = prod
    for rel, chart, version in (("gpu-burst-edge-envoy-gateway", eg.EG_CHART, "v1.9.0"),
                                ("gpu-burst-edge-ai-gateway-crds", eg.AIGW_CRDS_CHART, "v1.1.0"),
                                ("gpu-burst-edge-ai-gateway", eg.AIGW_CHART, "v1.1.0")):
        inputs = _release(mocks, rel)
        assert inputs["chart"] == chart and inputs["version"] == version and "repositoryOpts" not in inputs
    v = _release(mocks, "gpu-burst-edge-envoy-gateway")["values"]
    assert v["deployment"]["pod"]["nodeSelector"] == {"gpu-burst.io/node-role": "system"}
    assert v["deployment"]["replicas"] == 2 and v["podDisruptionBudget"] == {"minAvailable": 1}
    c = _release(mocks, "gpu-burst-edge-ai-gateway")["values"]["controller"]
    assert c["replicaCount"] == 2 and c["podDisruptionBudget"]["enabled"] is True
    assert c["nodeSelector"] == {"gpu-burst.io/node-role": "system"}
    proxy = _one(mocks, "EnvoyProxy")["spec"]["provider"]["kubernetes"]
    assert proxy["envoyDeployment"]["replicas"] == 2 and proxy["envoyPDB"] == {"minAvailable": 1}
    assert proxy["envoyDeployment"]["pod"]["nodeSelector"] == {"gpu-burst.io/node-role": "system"}
    lbc = _release(mocks, "gpu-burst-lbc")
    assert lbc["chart"] == "aws-load-balancer-controller" and lbc["version"] == "3.5.0"
    assert lbc["values"]["replicaCount"] == 2 and lbc["values"]["podDisruptionBudget"] == {"maxUnavailable": 1}


def test_a_single_system_node_runs_single_replicas_without_pdbs(mocks):
    from stack_helpers import evaluate

    from components.edge_gateway import EdgeGateway
    from components.load_balancer_controller import LoadBalancerController

    def program():
        LoadBalancerController("gpu-burst-lbc", {"cluster_name": "c", "vpc_id": "vpc-1", "chart_version": "3.5.0",
                                                 "replicas": 1})
        EdgeGateway("gpu-burst-edge", {
            "namespace": "inference", "model_names": ["m"], "interceptor_service": "svc",
            "interceptor_namespace": "keda", "interceptor_port": 8080, "hold_seconds": 900,
            "response_header_seconds": 600, "allowed_cidrs": ["10.0.0.0/8"], "key_names": [],
            "requests_per_minute": {"default": 60}, "replicas": 1, "scrape": False})

    evaluate(program)
    proxy = _one(mocks, "EnvoyProxy")["spec"]["provider"]["kubernetes"]
    assert proxy["envoyDeployment"]["replicas"] == 1 and "envoyPDB" not in proxy
    assert "podDisruptionBudget" not in _release(mocks, "gpu-burst-lbc")["values"]


def test_dependency_order_crds_before_crs_eg_before_ai_gateway_lbc_before_the_load_balancer(prod):
    mocks, _, _ = prod
    assert "gpu-burst-edge-envoy-gateway-release" in dependency_names(mocks, "gpu-burst-edge-ai-gateway-crds-release")
    assert {"gpu-burst-edge-envoy-gateway-release", "gpu-burst-edge-ai-gateway-crds-release"} <= dependency_names(
        mocks, "gpu-burst-edge-ai-gateway-release")
    releases = {"gpu-burst-edge-envoy-gateway-release", "gpu-burst-edge-ai-gateway-crds-release",
                "gpu-burst-edge-ai-gateway-release"}
    for kind in EDGE_KINDS:
        for r in of_kind(mocks, kind):
            assert releases <= dependency_names(mocks, r.name), r.name
    # The NLB's Service is created after the LBC runs and the Gateway has its Envoy pods, and deleted before both.
    assert {"gpu-burst-lbc-release", "gpu-burst-edge-gateway"} <= dependency_names(mocks, "gpu-burst-edge-nlb")
    assert "gpu-burst-lbc-identity" in dependency_names(mocks, "gpu-burst-lbc-release")


# -- the request path -----------------------------------------------------------------------------------------------

def test_request_path_per_model_body_model_to_route_to_interceptor_to_service(prod):
    mocks, out, cfg = prod
    paths = resolve(out["requestPaths"])
    (route,) = [as_object(r) for r in of_kind(mocks, "AIGatewayRoute")]
    rules = {r["name"]: r for r in route["spec"]["rules"]}
    backend = _one(mocks, "Backend")
    ai_backend = _one(mocks, "AIServiceBackend")
    assert backend and ai_backend
    irs = {mocks.state(x.name)["metadata"]["name"]: as_object(x) for x in of_kind(mocks, "InterceptorRoute")}
    services = {mocks.state(x.name)["metadata"]["name"] for x in of_kind(mocks, "Service")}
    assert sorted(paths) == sorted(m.served_name for m in cfg.models)
    for m in cfg.models:
        p = paths[m.served_name]
        # body `model` → x-ai-eg-model (set by the AI Gateway) → this rule
        assert rules[p["rule"]]["matches"] == [{"headers": [
            {"type": "Exact", "name": eg.MODEL_HEADER, "value": m.served_name}]}]
        assert p["route"] == _name(mocks, "gpu-burst-edge-models")
        # → the AIServiceBackend → Backend → the interceptor Service
        assert rules[p["rule"]]["backendRefs"] == [{"name": _name(mocks, "gpu-burst-edge-interceptor-ai")}]
        assert ai_backend["spec"]["backendRef"]["name"] == _name(mocks, "gpu-burst-edge-interceptor")
        ep = backend["spec"]["endpoints"][0]["fqdn"]
        assert f"{ep['hostname']}:{int(ep['port'])}" == p["interceptor"]
        assert ep["hostname"] == "keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local" and ep["port"] == 8080
        # → the interceptor matches the same header the edge sets → the model's Service
        ir = irs[m.served_name]
        assert ir["spec"]["rules"][0]["headers"] == [{"name": p["header"], "value": p["value"]}]
        assert ir["spec"]["target"]["service"] == m.served_name and m.served_name in services


def test_model_list_is_answered_from_route_config(prod):
    """GET /v1/models is an immediate response of the AI Gateway's ext_proc built from the route rules that match
    x-ai-eg-model exactly (ai-gateway@v1.1.0 internal/extproc/models_processor.go): every model must have one, and
    nothing else routes to the interceptor, so listing models never wakes one."""
    mocks, _, cfg = prod
    (route,) = [as_object(r) for r in of_kind(mocks, "AIGatewayRoute")]
    listed = [h["value"] for r in route["spec"]["rules"] for mt in r["matches"] for h in mt["headers"]
              if h["name"] == eg.MODEL_HEADER and h["type"] == "Exact"]
    assert listed == [m.served_name for m in cfg.models]
    assert all(r["modelsOwnedBy"] == "gpu-burst" for r in route["spec"]["rules"])
    assert of_kind(mocks, "HTTPRoute") == []


def test_more_models_than_one_route_holds_are_split(mocks):
    from components.edge_gateway import EdgeGateway
    from stack_helpers import evaluate

    names = [f"m{i}" for i in range(17)]
    evaluate(lambda: EdgeGateway("e", {
        "namespace": "inference", "model_names": names, "interceptor_service": "svc", "interceptor_namespace": "keda",
        "interceptor_port": 8080, "hold_seconds": 900, "response_header_seconds": 600, "allowed_cidrs": ["10.0.0.0/8"],
        "key_names": [], "requests_per_minute": {"default": 60}, "scrape": False}))
    # Registration order of sibling resources is not deterministic: order the routes by their resource names
    # (stable child names ending in the route's index).
    routes = [as_object(r) for r in sorted(of_kind(mocks, "AIGatewayRoute"), key=lambda r: (len(r.name), r.name))]
    assert [len(r["spec"]["rules"]) for r in routes] == [15, 2]
    assert [r["name"] for rt in routes for r in rt["spec"]["rules"]] == names


def _alias_urns(req) -> set:
    """The URNs a resource's alias specs stand for, as the engine resolves them: name and type default to the
    resource's own, `parentUrn` is the old parent (its type chain prefixes the old URN)."""
    out = set()
    for a in req.aliases:
        if a.spec.parentUrn:
            chain = a.spec.parentUrn[:a.spec.parentUrn.rfind("::")]
            out.add(f"{chain}${a.spec.type or req.type}::{a.spec.name or req.name}")
    return out


def test_routes_keep_their_urns_now_that_model_route_declares_them(mocks):
    """EdgeGateway declared its AIGatewayRoutes as direct children `<name>-models`, `<name>-models-1`, ...; they
    are ModelRoute children now, and an alias keeps each URN, so an upgrade updates them in place."""
    from components.edge_gateway import EdgeGateway
    from stack_helpers import evaluate

    evaluate(lambda: EdgeGateway("e", {
        "namespace": "inference", "model_names": [f"m{i}" for i in range(17)], "interceptor_service": "svc",
        "interceptor_namespace": "keda", "interceptor_port": 8080, "hold_seconds": 900,
        "response_header_seconds": 600, "allowed_cidrs": ["10.0.0.0/8"], "key_names": [],
        "requests_per_minute": {"default": 60}, "scrape": False}))
    edge = next(u for u in mocks.monitor.resources if u.endswith("gpu-burst:index:EdgeGateway::e"))
    route_type = "kubernetes:aigateway.envoyproxy.io/v1beta1:AIGatewayRoute"
    for name in ("e-models", "e-models-1"):
        req = mocks.monitor.requests[name]
        assert req.type == route_type and "gpu-burst:index:ModelRoute::" in req.parent
        before = f"{edge[:edge.rfind('::')]}${route_type}::{name}"
        assert before in _alias_urns(req), (name, req.aliases)


@pytest.mark.parametrize("names, expected", [
    ([], "0 served names; allowed: 1 to 15 per route"),
    ([f"m{i}" for i in range(16)], "16 served names; allowed: 1 to 15 per route"),
    (["a", "b", "a"], "served names repeat ['a']"),
    (["route-not-found"], "'route-not-found' cannot name a route rule"),
    (["Qwen_2"], "'Qwen_2' cannot name a route rule"),
])
def test_model_route_refuses_what_the_ai_gateway_route_crd_would(names, expected):
    """AIGatewayRoute rules: at most 15, unique names, `route-not-found` reserved (ai-gateway@v1.1.0
    api/v1beta1/ai_gateway_route.go); a rule name is a Gateway API SectionName. Refused before anything is declared."""
    from components.model_route import ModelRoute

    with pytest.raises(ValueError, match=re.escape(expected)):
        ModelRoute("r", {"namespace": "inference", "gateway_name": "gw", "served_names": names, "backend_name": "b",
                         "request_timeout": "60s", "stream_idle_timeout": "60s"})


def test_interceptor_stays_internal_and_only_envoy_gets_an_nlb(prod):
    mocks, _, _ = prod
    lbs = [s.name for s in of_kind(mocks, "Service") if (s.inputs.get("spec") or {}).get("type") == "LoadBalancer"]
    assert lbs == ["gpu-burst-edge-nlb"]
    svc = _nlb(mocks)
    assert svc["spec"]["loadBalancerClass"] == LOAD_BALANCER_CLASS
    # IP targets are the Envoy pods, which run on the system nodes only: a GPU node is never a target, and no node
    # needs a NodePort for it.
    assert svc["metadata"]["annotations"][f"{LB}nlb-target-type"] == "ip"
    assert svc["spec"]["allocateLoadBalancerNodePorts"] is False
    assert svc["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    # Envoy Gateway's own Service stays inside the cluster (its default type would be LoadBalancer).
    assert _one(mocks, "EnvoyProxy")["spec"]["provider"]["kubernetes"]["envoyService"] == {
        "name": "gpu-burst-edge-envoy", "type": "ClusterIP"}
    assert strict_core_errors(svc, "V1Service") == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_nlb_service_selects_this_gateways_envoy_pods_on_envoys_port(request, stack):
    """The selector is what Envoy Gateway v1.9.0 labels the Envoy pods of one Gateway with
    (internal/infrastructure/kubernetes/proxy/resource.go EnvoyAppLabel + internal/gatewayapi/translator.go owning
    gateway labels); the target port is the listener port Envoy Gateway shifts above 1024
    (internal/gatewayapi/listener.go servicePortToContainerPort: 80 → 10080, 443 → 10443)."""
    mocks, out, _ = request.getfixturevalue(stack)
    svc = _nlb(mocks)
    gateway = mocks.state("gpu-burst-edge-gateway")["metadata"]
    assert svc["spec"]["selector"] == {
        "app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy",
        "app.kubernetes.io/managed-by": "envoy-gateway",
        "gateway.envoyproxy.io/owning-gateway-namespace": gateway["namespace"],
        "gateway.envoyproxy.io/owning-gateway-name": gateway["name"]}
    (listener,) = _one(mocks, "Gateway")["spec"]["listeners"]
    (port,) = svc["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["protocol"]) == (
        {"dev": (80, 10080, "TCP"), "prod": (443, 10443, "TCP")}[stack])
    assert port["port"] == listener["port"]
    # Envoy pods run in Envoy Gateway's namespace (controller namespace mode); a Service selects in its own.
    assert svc["metadata"]["namespace"] == eg.EG_NAMESPACE
    # Envoy Gateway deletes every Service of its namespace that carries its own selector labels except its own
    # (internal/infrastructure/kubernetes/infra_resource.go createOrUpdateService → DeleteAllExcept): ours must not.
    assert not all(svc["metadata"]["labels"].get(k) == v for k, v in svc["spec"]["selector"].items())
    eg_service = _one(mocks, "EnvoyProxy")["spec"]["provider"]["kubernetes"]["envoyService"]["name"]
    assert _name(mocks, "gpu-burst-edge-nlb") != eg_service
    # The endpoint is the NLB's DNS name from our Service's status (no `gateway.domain` in these stacks).
    hostname = mocks.state("gpu-burst-edge-nlb")["status"]["loadBalancer"]["ingress"][0]["hostname"]
    assert resolve(out["endpoint"]) == f"{'https' if stack == 'prod' else 'http'}://{hostname}/v1"


def test_envoy_pods_wait_for_their_nlb_target_before_a_rollout_moves_on(prod):
    """Readiness gate on the IP targets: the LBC injects it into pods of a labelled namespace, at pod creation, so the
    label must be on Envoy Gateway's namespace before the EnvoyProxy makes it create Envoy pods."""
    mocks, _, _ = prod
    (patch,) = [r for r in of_kind(mocks, "NamespacePatch") if r.name == "gpu-burst-edge-envoy-namespace"]
    meta = as_object(patch)["metadata"]
    assert meta["name"] == _release(mocks, "gpu-burst-edge-envoy-gateway")["namespace"] == eg.EG_NAMESPACE
    assert meta["labels"] == {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}
    assert "gpu-burst-edge-envoy-gateway-release" in dependency_names(mocks, "gpu-burst-edge-envoy-namespace")
    assert "gpu-burst-edge-envoy-namespace" in dependency_names(mocks, "gpu-burst-edge-proxy-config")
    # The gate needs a TargetGroupBinding for a Service in the pods' (labelled) namespace that selects them: the LBC
    # makes it from our Service (docs/deploy/pod_readiness_gate.md), for IP targets only.
    svc = _nlb(mocks)
    assert svc["metadata"]["namespace"] == meta["name"]
    assert svc["metadata"]["annotations"][f"{LB}nlb-target-type"] == "ip"


# -- keys, 401 and 429 ----------------------------------------------------------------------------------------------

# Envoy Gateway's default HTTP filter order (envoyproxy/gateway@v1.9.0 internal/xds/translator/httpfilters.go
# newOrderedHTTPFilter) for the filters the edge's policies produce, and the filters before which the AI Gateway
# inserts its router-level ext_proc (envoyproxy/ai-gateway@v1.1.0 internal/extensionserver/post_translate_modify.go
# afterExtProcFilterPrefixes).
_EG_ORDER = {"custom_response": 0, "api_key_auth": 7, "buffer": 12, "local_ratelimit": 302, "router": 310}
_AIGW_BEFORE = ("ext_proc", "wasm", "lua", "rbac", "local_ratelimit", "ratelimit", "custom_response",
                "credential_injector", "compressor", "router")


def _listener_filter_chain(mocks) -> list:
    """The listener's HTTP filters in the order Envoy runs them, from the rendered policies, after the AI Gateway's
    extension server added its ext_proc (insertAIGatewayExtProcFilter@v1.1.0, buffer exception included)."""
    sp = _one(mocks, "SecurityPolicy")["spec"]
    btp = _one(mocks, "BackendTrafficPolicy")["spec"]
    present = ["router"]
    present += ["api_key_auth"] if "apiKeyAuth" in sp else []
    present += ["custom_response"] if btp.get("responseOverride") else []
    present += ["buffer"] if "requestBuffer" in btp else []
    present += ["local_ratelimit"] if (btp.get("rateLimit") or {}).get("local") else []
    chain = sorted(present, key=_EG_ORDER.__getitem__)
    at = next(i for i, f in enumerate(chain) if f in _AIGW_BEFORE)
    if "buffer" in chain and chain.index("buffer") >= at:
        at = chain.index("buffer") + 1
    return chain[:at] + ["ai_gateway_ext_proc"] + chain[at:]


def test_api_key_check_runs_before_the_ai_gateway_ext_proc(prod):
    """The ext_proc answers GET /v1/models itself (models_processor.go) and parses every body: it must only ever
    see requests that passed the key check, and the 401/429 overrides must see both local replies."""
    mocks, _, _ = prod
    chain = _listener_filter_chain(mocks)
    assert chain.index("api_key_auth") < chain.index("ai_gateway_ext_proc") < chain.index("router"), chain
    assert chain.index("custom_response") < chain.index("api_key_auth") < chain.index("local_ratelimit"), chain
    btp = _one(mocks, "BackendTrafficPolicy")["spec"]
    ctp = _one(mocks, "ClientTrafficPolicy")["spec"]
    # The request buffer cannot be smaller than the connection buffer the AI Gateway's body processing relies on.
    assert btp["requestBuffer"]["limit"] == ctp["connection"]["bufferLimit"] == eg.REQUEST_BODY_LIMIT


def test_api_keys_are_checked_at_the_edge_before_anything_else(prod):
    mocks, out, _ = prod
    sp = _one(mocks, "SecurityPolicy")["spec"]
    assert sp["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                 "name": _name(mocks, "gpu-burst-edge-gateway")}]
    auth = sp["apiKeyAuth"]
    assert auth["credentialRefs"] == [{"group": "", "kind": "Secret", "name": resolve(out["apiKeySecretName"])}]
    assert auth["extractFrom"] == [{"headers": ["authorization"]}]
    assert auth["forwardClientIDHeader"] == eg.CLIENT_ID_HEADER and auth["sanitize"] is True
    keys = [as_object(r) for r in of_kind(mocks, "Secret") if r.name == "gpu-burst-edge-api-keys"][0]
    assert sorted(keys["stringData"]) == sorted(PROD_KEYS)  # one data key per key name (the client id)
    assert field_is_secret(mocks, "gpu-burst-edge-api-keys", "stringData")
    override = {o["match"]["statusCodes"][0]["value"]: o["response"] for o in
                _one(mocks, "BackendTrafficPolicy")["spec"]["responseOverride"]}
    assert json.loads(override[401]["body"]["inline"])["error"]["code"] == "invalid_api_key"
    # Only the edge's own 401/429 are reworded (a 401 from vLLM is an internal-credential problem, not the client's).
    assert {o.get("source") for o in _one(mocks, "BackendTrafficPolicy")["spec"]["responseOverride"]} == \
        {"Local"}


def test_requests_per_minute_per_key_answer_429_with_retry_after(prod):
    mocks, _, cfg = prod
    spec = _one(mocks, "BackendTrafficPolicy")["spec"]
    rules = {r["clientSelectors"][0]["headers"][0]["value"]: r for r in spec["rateLimit"]["local"]["rules"]}
    assert sorted(rules) == sorted(PROD_KEYS)
    assert rules["team-a"]["limit"] == {"requests": 1200, "unit": "Minute"}  # keyRequestsPerMinute
    assert rules["ci"]["limit"] == {"requests": cfg.gateway.requests_per_minute, "unit": "Minute"}
    for r in rules.values():
        assert r["clientSelectors"][0]["headers"][0]["name"] == eg.CLIENT_ID_HEADER
        assert r["clientSelectors"][0]["headers"][0]["type"] == "Exact"
    (o429,) = [o for o in spec["responseOverride"] if o["match"]["statusCodes"][0]["value"] == 429]
    assert {"name": "Retry-After", "value": "60"} in o429["response"]["header"]["set"]
    assert json.loads(o429["response"]["body"]["inline"])["error"]["type"] == "rate_limit_error"


def test_generated_key_when_none_is_configured_is_secret_end_to_end(dev):
    mocks, out, _ = dev
    pw = [r for r in mocks.of_type("random:index/randomPassword:RandomPassword") if r.name == "gpu-burst-edge-api-key-value"]
    assert pw and pw[0].inputs["length"] >= 32 and pw[0].inputs["special"] is False
    assert _is_secret(out["apiKeys"]) is True
    assert sorted(resolve(out["apiKeys"])) == [eg.GENERATED_KEY_NAME]
    assert '"default"' in out["apiKeyHowTo"]


def test_no_plaintext_key_anywhere_in_state_or_specs(prod):
    mocks, out, _ = prod
    internal = mocks.state("gpu-burst-edge-internal-key-value")["result"]
    for r in mocks.created:
        blob = repr(r.inputs)
        for key in PROD_KEYS.values():
            if key in blob:
                assert r.name == "gpu-burst-edge-api-keys", r.name
        if internal in blob:
            assert r.name in ("gpu-burst-edge-internal-key", "gpu-burst-edge-internal-key-value"), r.name
    assert field_is_secret(mocks, "gpu-burst-edge-internal-key", "stringData")
    assert _is_secret(out["apiKeys"]) is True
    for k in ("curlCompletions", "curlChatCompletions", "pythonExamples", "endpoint", "requestPaths"):
        assert _is_secret(out[k]) is False
        assert not any(key in json.dumps(resolve(out[k])) for key in PROD_KEYS.values())


def test_vllm_accepts_only_the_internal_credential_the_edge_injects(prod):
    mocks, out, cfg = prod
    bsp = _one(mocks, "BackendSecurityPolicy")["spec"]
    ai_backend = _one(mocks, "AIServiceBackend")
    assert bsp["type"] == "APIKey"
    assert bsp["targetRefs"] == [{"group": "aigateway.envoyproxy.io", "kind": "AIServiceBackend",
                                  "name": _name(mocks, "gpu-burst-edge-interceptor-ai")}]
    internal = [as_object(r) for r in of_kind(mocks, "Secret") if r.name == "gpu-burst-edge-internal-key"][0]
    internal_name = _name(mocks, "gpu-burst-edge-internal-key")
    assert bsp["apiKey"]["secretRef"]["name"] == internal_name
    assert list(internal["stringData"]) == ["apiKey"]
    keys_secret = resolve(out["apiKeySecretName"])
    for d in of_kind(mocks, "Deployment"):
        env = {e["name"]: e for e in as_object(d)["spec"]["template"]["spec"]["containers"][0]["env"]}
        ref = env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]
        # Rotating a client key edits only the SecurityPolicy's Secret, which no model pod references.
        assert ref == {"name": internal_name, "key": "apiKey"} and ref["name"] != keys_secret


# -- timeouts -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_hop_waits_at_least_the_hold_budget(request, stack):
    mocks, _, cfg = request.getfixturevalue(stack)
    from stacks.config import duration_seconds

    h = cfg.addons.http_addon
    hold = duration_seconds(h.readiness_timeout)
    first_byte = hold + duration_seconds(h.response_header_timeout)
    irs = [as_object(r) for r in of_kind(mocks, "InterceptorRoute")]
    assert {r["spec"]["timeouts"]["readiness"] for r in irs} == {h.readiness_timeout}
    (route,) = [as_object(r) for r in of_kind(mocks, "AIGatewayRoute")]
    for rule in route["spec"]["rules"]:
        assert _seconds(rule["timeouts"]["request"]) > first_byte
        assert _seconds(rule["streamIdleTimeout"]) > first_byte
    ctp = _one(mocks, "ClientTrafficPolicy")["spec"]
    assert _seconds(ctp["timeout"]["http"]["idleTimeout"]) > first_byte
    assert _seconds(ctp["timeout"]["http"]["streamIdleTimeout"]) > first_byte
    ann = _nlb(mocks)["metadata"]["annotations"]
    if cfg.gateway.certificate_arn:
        # TLS listeners keep a fixed 350 s idle timeout: Envoy's keepalives must come well before it.
        assert not any(k.startswith(f"{LB}listener-attributes") for k in ann)
        assert _seconds(ctp["tcpKeepalive"]["idleTime"]) < eg.NLB_TLS_IDLE_SECONDS
    else:
        idle = int(ann[f"{LB}listener-attributes.TCP-80"].removeprefix("tcp.idle_timeout.seconds="))
        assert first_byte < idle <= eg.NLB_MAX_IDLE_SECONDS


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_envoy_drains_for_the_longest_request_before_it_exits(request, stack):
    """A rollout or system-node drain terminates Envoy pods: their drain (default 60 s) must outlast any request the
    route still lets live, held cold starts and streams included."""
    mocks, _, _ = request.getfixturevalue(stack)
    shutdown = _one(mocks, "EnvoyProxy")["spec"]["shutdown"]
    (route,) = [as_object(r) for r in of_kind(mocks, "AIGatewayRoute")]
    longest = max(_seconds(r["timeouts"]["request"]) for r in route["spec"]["rules"])
    assert _seconds(shutdown["drainTimeout"]) >= longest
    assert _seconds(shutdown["minDrainDuration"]) >= 30


def test_timeouts_follow_the_one_budget():
    a, b = eg.hop_timeouts(900, 600), eg.hop_timeouts(1800, 600)
    assert a.hold_seconds < a.first_byte_seconds < a.silence_seconds < a.request_seconds
    assert b.silence_seconds - a.silence_seconds == 900 and b.request_seconds - a.request_seconds == 900


# -- TLS, endpoint and examples -------------------------------------------------------------------------------------

def test_prod_terminates_tls_at_the_nlb_with_the_acm_certificate(prod):
    mocks, out, cfg = prod
    ann = _nlb(mocks)["metadata"]["annotations"]
    assert ann[f"{LB}ssl-cert"] == cfg.gateway.certificate_arn and ann[f"{LB}ssl-ports"] == "443"
    # TLS 1.2+ only (the LBC's default policy, ELBSecurityPolicy-2016-08, still takes TLS 1.0/1.1).
    assert ann[f"{LB}ssl-negotiation-policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert ann[f"{LB}scheme"] == "internet-facing"
    assert _one(mocks, "Gateway")["spec"]["listeners"][0]["port"] == 443
    assert resolve(out["endpoint"]).startswith("https://k8s-envoygat-gpubur") and resolve(out["endpoint"]).endswith(
        ".elb.us-west-2.amazonaws.com/v1")


def test_ext_proc_sidecar_requests_are_set_and_counted_by_the_capacity_model(prod):
    mocks, _, cfg = prod
    from stacks.config import capacity

    gc = _one(mocks, "GatewayConfig")
    gw = _one(mocks, "Gateway")
    assert gw["metadata"]["annotations"][eg.GATEWAY_CONFIG_ANNOTATION] == _name(mocks, "gpu-burst-edge-ai-config")
    assert gc["metadata"]["namespace"] == gw["metadata"]["namespace"]
    req = gc["spec"]["extProc"]["kubernetes"]["resources"]["requests"]
    envoy = _one(mocks, "EnvoyProxy")["spec"]["provider"]["kubernetes"]["envoyDeployment"]["container"]["resources"]
    (modelled,) = [a for a in capacity.SYSTEM_ADDONS if a.name == "envoy-proxy"]
    (pod,) = modelled.pods(cfg)
    from stacks.config.capacity import parse_cpu_m, parse_memory_mi

    assert pod.cpu_m >= parse_cpu_m(req["cpu"]) + parse_cpu_m(envoy["requests"]["cpu"])
    assert pod.memory_mi >= parse_memory_mi(req["memory"]) + parse_memory_mi(envoy["requests"]["memory"])
    assert pod.replicas == _one(mocks, "EnvoyProxy")["spec"]["provider"]["kubernetes"]["envoyDeployment"]["replicas"]


def test_dev_is_an_internal_plain_http_nlb_from_the_vpc(dev):
    mocks, out, _ = dev
    svc = _nlb(mocks)
    ann = svc["metadata"]["annotations"]
    assert ann[f"{LB}scheme"] == "internal" and f"{LB}ssl-cert" not in ann
    assert svc["spec"]["loadBalancerSourceRanges"] == ["10.40.0.0/16"]
    assert resolve(out["endpoint"]).startswith("http://") and resolve(out["endpoint"]).endswith("/v1")


def test_readme_port_forward_names_the_service_and_ports_the_stack_renders(dev, prod):
    """README's laptop port-forward must name the Envoy Service Envoy Gateway creates from the EnvoyProxy, in its
    namespace, on the Gateway's listener port (80 plain, 443 when the NLB terminates TLS)."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for (mocks, _, _), tls in ((dev, False), (prod, True)):
        svc = _one(mocks, "EnvoyProxy")["spec"]["provider"]["kubernetes"]["envoyService"]["name"]
        (listener,) = _one(mocks, "Gateway")["spec"]["listeners"]
        port = int(listener["port"])
        assert port == (443 if tls else 80)
        assert f"kubectl -n {eg.EG_NAMESPACE} port-forward svc/{svc} 8080:80" in readme
        assert port == 80 or f"`8080:{port}`" in readme


def test_examples_need_no_custom_header_and_embed_no_key(prod):
    mocks, out, cfg = prod
    base = resolve(out["endpoint"])
    chat, py = resolve(out["curlChatCompletions"]), resolve(out["pythonExamples"])
    for m in cfg.models:
        cmd = chat[m.served_name]
        assert cmd.startswith(f"curl -sS --max-time ") and f" {base}/chat/completions " in cmd
        assert [h for h in re.findall(r"-H '([^:]+):", cmd)] == ["Content-Type"]
        assert '-H "Authorization: Bearer $GPU_BURST_API_KEY"' in cmd and f'"model": "{m.served_name}"' in cmd
        code = py[m.served_name]
        compile(code, "example.py", "exec")
        assert f"base_url={base!r}" in code and "os.environ['GPU_BURST_API_KEY']" in code
        # The SDK's default 600 s would give up during a cold start; the example waits past the first-byte budget.
        timeout = int(re.search(r"timeout=(\d+)", code).group(1))
        assert timeout > eg.hop_timeouts(900, 600).first_byte_seconds


def test_domain_replaces_the_nlb_name_in_the_endpoint(mocks):
    from components.edge_gateway import EdgeGateway
    from stack_helpers import evaluate

    gw = evaluate(lambda: EdgeGateway("e", {
        "namespace": "inference", "model_names": ["m"], "interceptor_service": "svc", "interceptor_namespace": "keda",
        "interceptor_port": 8080, "hold_seconds": 900, "response_header_seconds": 600, "allowed_cidrs": ["0.0.0.0/0"],
        "key_names": [], "requests_per_minute": {"default": 60}, "public": True, "domain": "llm.example.com",
        "certificate_arn": "arn:aws:acm:us-west-2:123456789012:certificate/abc", "scrape": False}))
    assert resolve(gw.endpoint) == "https://llm.example.com/v1"


def test_public_gateway_without_tls_is_refused_by_the_component(mocks):
    from components.edge_gateway import EdgeGateway
    from stack_helpers import evaluate

    with pytest.raises(Exception, match="needs certificate_arn"):
        evaluate(lambda: EdgeGateway("e", {
            "namespace": "inference", "model_names": ["m"], "interceptor_service": "svc",
            "interceptor_namespace": "keda", "interceptor_port": 8080, "hold_seconds": 900,
            "response_header_seconds": 600, "allowed_cidrs": ["0.0.0.0/0"], "key_names": [],
            "requests_per_minute": {"default": 60}, "public": True}))


# -- metrics --------------------------------------------------------------------------------------------------------

def test_envoy_and_ai_gateway_metrics_are_scraped(prod):
    mocks, _, _ = prod
    pm = [as_object(r) for r in of_kind(mocks, "PodMonitor") if r.name == "gpu-burst-edge-edge-monitor"][0]
    assert pm["metadata"]["namespace"] == eg.EG_NAMESPACE
    assert pm["spec"]["selector"]["matchLabels"] == eg.PROXY_POD_LABELS
    assert {(e["port"], e["path"]) for e in pm["spec"]["podMetricsEndpoints"]} == {
        ("metrics", "/stats/prometheus"), ("aigw-admin", "/metrics")}
    ai = _release(mocks, "gpu-burst-edge-ai-gateway")["values"]["controller"]
    assert ai["metricsRequestHeaderAttributes"].startswith(f"{eg.CLIENT_ID_HEADER}:")


# -- config: one clear line per problem, before anything is declared -------------------------------------------------

def _config_lines(**gateway) -> list[str]:
    from stacks.config import ConfigError, validate
    from test_workload_support import raw_config

    extra = gateway.pop("_extra", {})
    with pytest.raises(ConfigError) as e:
        validate(raw_config("dev", gateway=gateway, **extra))
    return e.value.lines


def test_public_gateway_without_tls_is_a_config_error():
    (line,) = [ln for ln in _config_lines(public=True) if "gateway.public" in ln]
    assert line.startswith("gpu-burst:gateway.public: an internet-facing endpoint without TLS") and "allowed:" in line


def test_certificate_from_another_region_is_refused():
    lines = _config_lines(certificateArn="arn:aws:acm:eu-west-1:123456789012:certificate/abc")
    assert ("gpu-burst:gateway.certificateArn: the certificate is in eu-west-1, the NLB in us-west-2; allowed: an "
            "ACM certificate from us-west-2") in lines


@pytest.mark.parametrize("namespace", ["kube-system", "keda", "monitoring", "envoy-gateway-system"])
def test_reserved_namespaces_are_refused(namespace):
    (line,) = [ln for ln in _config_lines(namespace=namespace) if "gateway.namespace" in ln]
    assert line.startswith(f"gpu-burst:gateway.namespace: '{namespace}' is reserved") and "inference" in line


@pytest.mark.parametrize("domain,what", [("https://llm.example.com", "is a URL"), ("*.example.com", "is a wildcard"),
                                         ("llm.example.com/v1", "is a URL"), ("LLM_example", "is not a DNS host")])
def test_domain_must_be_one_host_name(domain, what):
    (line,) = [ln for ln in _config_lines(domain=domain) if "gateway.domain" in ln]
    assert line.startswith(f"gpu-burst:gateway.domain: '{domain}' {what}") and "llm.example.com" in line


def test_limits_for_unknown_keys_and_bad_key_names_are_refused():
    lines = _config_lines(keyRequestsPerMinute={"nobody": 10}, _extra={"apiKeyNames": ["team-a", "Bad_Name"]})
    assert any(ln.startswith("gpu-burst:gateway.keyRequestsPerMinute: ['nobody'] are not keys of gpu-burst:apiKeys")
               for ln in lines)
    assert any(ln.startswith("gpu-burst:apiKeys: key names ['Bad_Name'] are not usable") for ln in lines)


def test_a_hold_budget_beyond_what_the_nlb_can_carry_is_refused():
    from stacks.config import ConfigError, validate
    from test_workload_support import raw_config

    with pytest.raises(ConfigError) as e:
        validate(raw_config("dev", addons={"httpAddon": {"readinessTimeout": "95m"}}))
    assert any(ln.startswith("gpu-burst:addons.httpAddon.readinessTimeout: readinessTimeout + responseHeaderTimeout")
               for ln in e.value.lines)


def test_removed_gateway_keys_are_unknown():
    lines = _config_lines(modelHeader="X-Model", idleTimeoutSeconds=900)
    assert any(ln.startswith("gpu-burst:gateway.modelHeader:") for ln in lines)
    # The NLB idle timeout is derived from the hold budget now, never set on its own.
    assert any(ln.startswith("gpu-burst:gateway.idleTimeoutSeconds: unknown key") for ln in lines)


def test_docs_name_only_gateway_keys_the_config_accepts():
    """A `gateway.<key>` the docs tell users to set must be a key the stack config takes (an unknown one fails
    `pulumi up`)."""
    from pathlib import Path

    from stacks.config.models import GatewayConfig

    root = Path(__file__).resolve().parents[1]
    keys = {f.alias or n for n, f in GatewayConfig.model_fields.items()}
    named = {(doc, k) for doc in ("README.md", "docs/workload.md")
             for k in re.findall(r"`gateway\.([A-Za-z]+)", (root / doc).read_text())}
    assert named and {(doc, k) for doc, k in named if k not in keys} == set()


# -- dashboard ------------------------------------------------------------------------------------------------------

def test_dashboard_shows_tokens_per_model_rejections_and_held_requests():
    from components.dashboards import KEY_LABEL, build_dashboard

    d = build_dashboard(["m"], "inference")
    exprs = {p["title"]: " ".join(t["expr"] for t in p.get("targets", [])) for p in d["panels"]}
    assert "gen_ai_client_token_usage_sum" in exprs["Tokens/s per model (edge)"]
    assert "by (gen_ai_original_model" in exprs["Tokens/s per model (edge)"]
    assert f"by ({KEY_LABEL})" in exprs["Tokens/s and requests/s per API key"]
    assert "api_key_auth_unauthorized" in exprs["Rejected at the edge: 401 / 429"]
    assert "local_rate_limit_rate_limited" in exprs["Rejected at the edge: 401 / 429"]
    assert "interceptor_request_concurrency" in exprs["Requests held at the interceptor"]
    # The label the panels group by is the attribute the AI Gateway is told to record.
    assert eg.ai_gateway_values(1, {})["controller"]["metricsRequestHeaderAttributes"] == \
        f"{eg.CLIENT_ID_HEADER}:{eg.KEY_ATTRIBUTE}"
    assert KEY_LABEL == eg.KEY_ATTRIBUTE.replace(".", "_")
