"""Keys scoped to models, at the edge: for every API key and model, who answers, computed from the objects the stack
(and a program that adds a model) registered, the way Envoy Gateway v1.9.0 and the AI Gateway v1.1.0 configure
Envoy (tests/edge_requests.py). A key may call its models; any other model gets an OpenAI-shaped 403 from Envoy's
RBAC filter, after the AI Gateway set the model header from the body and before the router, so a refused request
never reaches the interceptor and never wakes a GPU."""

import json
import re
from typing import Optional

import pytest
import yaml

from edge_requests import Edge
from stack_cache import evaluated
from stack_helpers import ROOT, evaluate, resolve
from test_examples import _plain, run_example
from test_workload_support import as_object, of_kind
from upstream import needs_upstream, validate_cr

from components import edge_gateway as eg
from components.model_route import MODEL_HEADER

KEYS = {"team-a": "sk-team-a-scoped-0001", "ops": "sk-ops-every-model-0002"}
CHAT = "qwen2-5-1-5b-instruct"
"""The dev stack's model: team-a's only one."""
CODER = "qwen-coder"
"""A second model of the stack, outside team-a's scope."""
ADDED = "qwen-added"
"""A model another program adds (AddedModel), outside team-a's scope."""
INTERCEPTOR = "keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local:8080"


def _objects(mocks, kind: str) -> list[dict]:
    """Objects of `kind` as the API server holds them (metadata.name as the provider auto-named it)."""
    out = []
    for r in of_kind(mocks, kind):
        obj = as_object(r)
        obj["metadata"] = {**obj["metadata"], "name": mocks.state(r.name)["metadata"]["name"]}
        out.append(obj)
    return out


def edge_of(mocks, *others, routes: Optional[list] = None) -> Edge:
    """The edge of the Gateway `mocks` declared, with the routes other programs (`others`) attached to it, or
    `routes` as given."""
    (sp,) = _objects(mocks, "SecurityPolicy")
    (btp,) = _objects(mocks, "BackendTrafficPolicy")
    (gateway,) = _objects(mocks, "Gateway")
    (keys,) = [as_object(r) for r in of_kind(mocks, "Secret") if r.name.endswith("-api-keys")]
    if routes is None:
        routes = [r for m in (mocks, *others) for r in _objects(m, "AIGatewayRoute")]
    return Edge(sp, btp, keys, routes, {o["metadata"]["name"]: o for o in _objects(mocks, "AIServiceBackend")},
                {o["metadata"]["name"]: o for o in _objects(mocks, "Backend")}, gateway["metadata"]["name"],
                gateway["metadata"]["namespace"])


def _dev(path: str):
    return yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"][f"gpu-burst:{path}"]


@pytest.fixture(scope="module")
def cluster():
    """The dev stack with two models and two keys: team-a may call CHAT only, ops every model."""
    chat = _dev("models")[0]
    overrides = {"models": [chat, {**chat, "servedName": CODER}],
                 "gateway": {**_dev("gateway"), "keys": {"team-a": {"models": [CHAT]}, "ops": {}}}}
    mocks, outputs = evaluated("dev", overrides, secrets={"apiKeys": json.dumps(KEYS)})
    return mocks, _plain(outputs)


@pytest.fixture(scope="module")
def added(cluster):
    """Another program adding ADDED to that cluster (examples/add-model)."""
    _, stack_outputs = cluster
    return run_example(stack_outputs, {**_dev("models")[0], "servedName": ADDED})


@pytest.fixture(scope="module")
def edge(cluster, added) -> Edge:
    return edge_of(cluster[0], added)


# -- each key reaches only its models; a refusal is Envoy's, never the interceptor's -------------------------------

@pytest.mark.parametrize("key, model, status, by", [
    ("team-a", CHAT, 200, "upstream"),
    ("team-a", CODER, 403, "rbac"),
    ("team-a", ADDED, 403, "rbac"),
    ("team-a", "no-such-model", 403, "rbac"),
    ("ops", CHAT, 200, "upstream"),
    ("ops", CODER, 200, "upstream"),
    ("ops", ADDED, 200, "upstream"),
    ("ops", "no-such-model", 404, "router"),
    (None, CHAT, 401, "api_key_auth"),
    ("sk-not-a-key", CODER, 401, "api_key_auth"),
])
def test_each_key_reaches_only_its_models(edge, key, model, status, by):
    answer = edge.request(KEYS.get(key, key), model)
    assert (answer.status, answer.by) == (status, by)
    if by == "upstream":
        # → the model's own rule (the cluster's or the added program's) → the interceptor, named by the key
        assert answer.route[1] == model and answer.upstream == INTERCEPTOR
        assert answer.upstream_headers[eg.CLIENT_ID_HEADER] == key
        assert answer.upstream_headers[MODEL_HEADER] == model
    else:
        assert answer.upstream is None


def test_a_refused_model_gets_an_openai_shaped_403(edge):
    answer = edge.request(KEYS["team-a"], CODER)
    assert answer.status == eg.SCOPE_DENIED_STATUS == 403
    # What OpenAI answers for a project that may not use a model: the openai SDK raises PermissionDeniedError.
    assert answer.body == {"error": {"message": "This API key does not have access to the requested model.",
                                     "type": "invalid_request_error", "code": "model_not_found"}}


def test_the_scope_is_checked_after_the_model_is_known_and_before_anything_is_spent(edge):
    """RBAC runs after the ext_proc set `x-ai-eg-model` from the body (and after the key check that names the key),
    before the per-key limits (a refused request spends none of the key's budget) and before the router."""
    c = edge.chain
    assert c.index("api_key_auth") < c.index("ai_gateway_ext_proc") < c.index("rbac") < c.index("router"), c
    assert c.index("rbac") < c.index("local_ratelimit"), c
    assert c.index("custom_response") < c.index("rbac"), c  # the 403 override sees the RBAC reply


@pytest.mark.parametrize("headers", [
    {eg.CLIENT_ID_HEADER: "ops"},
    {MODEL_HEADER: CHAT},
    {eg.CLIENT_ID_HEADER: "ops", MODEL_HEADER: CHAT},
])
def test_client_headers_cannot_widen_a_scope(edge, headers):
    """The key name is written by the key check, the model by the AI Gateway from the body: a client's own values of
    either header are overwritten before the scope is checked."""
    answer = edge.request(KEYS["team-a"], CODER, headers=headers)
    assert (answer.status, answer.by) == (403, "rbac")
    # and the model the request is routed by is the one that was checked
    allowed = edge.request(KEYS["team-a"], CHAT, headers={MODEL_HEADER: CODER})
    assert allowed.route[1] == CHAT and allowed.upstream_headers[eg.CLIENT_ID_HEADER] == "team-a"


def test_v1_models_lists_every_model_to_every_key(edge):
    """The AI Gateway answers GET /v1/models from its declared models, per host only (models_processor.go,
    selectModelsForHost): nothing per key. A scoped key sees every model listed; calling one outside its scope
    gets the 403."""
    for key in KEYS:
        answer = edge.request(KEYS[key], path="/v1/models")
        assert (answer.status, answer.by) == (200, "ai_gateway_ext_proc")
        assert [m["id"] for m in answer.body["data"]] == [CHAT, CODER, ADDED]


def test_the_stack_passes_its_key_policies_to_the_edge(cluster):
    mocks, _ = cluster
    (sp,) = _objects(mocks, "SecurityPolicy")
    assert sp["spec"]["authorization"] == {"defaultAction": "Deny", "rules": [
        {"name": "key-team-a", "action": "Allow", "principal": {"headers": [
            {"name": eg.CLIENT_ID_HEADER, "values": ["team-a"]}, {"name": MODEL_HEADER, "values": [CHAT]}]}},
        {"name": "keys-without-scope", "action": "Allow", "principal": {"headers": [
            {"name": eg.CLIENT_ID_HEADER, "values": ["ops"]}]}}]}
    # one policy on the Gateway holds key check and scopes: a route-level SecurityPolicy would replace it
    assert [t["kind"] for t in sp["spec"]["targetRefs"]] == ["Gateway"]


# -- any name on any route: models other programs add, adapter names ------------------------------------------------

def _component_edge(mocks, key_models: dict) -> Edge:
    """An EdgeGateway with models m0, m1, keys `a` and `b`, and a model `added-x` another program routes."""
    from components.edge_gateway import EdgeGateway
    from components.model_route import ModelRoute

    def program():
        e = EdgeGateway("e", {
            "namespace": "inference", "model_names": ["m0", "m1"], "interceptor_service": "svc",
            "interceptor_namespace": "keda", "interceptor_port": 8080, "hold_seconds": 900,
            "response_header_seconds": 600, "allowed_cidrs": ["10.0.0.0/8"], "key_names": ["a", "b"],
            "requests_per_minute": {"a": 60, "b": 60}, "api_keys": {"a": "sk-a", "b": "sk-b"},
            "key_models": key_models, "scrape": False})
        ModelRoute("added-x", {"namespace": "inference", "gateway_name": e.gateway_name, "served_names": ["added-x"],
                               "backend_name": e.interceptor_backend_name, "request_timeout": "60s",
                               "stream_idle_timeout": "60s"})
    evaluate(program)
    routes = _objects(mocks, "AIGatewayRoute")
    # An adapter is one more name the base model's rule matches.
    for rule in next(r for r in routes if r["metadata"]["name"].startswith("e-models"))["spec"]["rules"]:
        if rule["name"] == "m0":
            rule["matches"].append({"headers": [{"type": "Exact", "name": MODEL_HEADER, "value": "m0-sql-lora"}]})
    return edge_of(mocks, routes=routes)


def test_a_scope_names_models_of_other_programs_and_adapters(mocks):
    e = _component_edge(mocks, {"a": ["m0", "m0-sql-lora", "added-x"]})
    got = {(k, m): e.request(f"sk-{k}", m).by for k in ("a", "b") for m in ("m0", "m0-sql-lora", "m1", "added-x")}
    assert got == {("a", "m0"): "upstream", ("a", "m0-sql-lora"): "upstream", ("a", "m1"): "rbac",
                   ("a", "added-x"): "upstream", ("b", "m0"): "upstream", ("b", "m0-sql-lora"): "upstream",
                   ("b", "m1"): "upstream", ("b", "added-x"): "upstream"}
    assert e.request("sk-a", "m0-sql-lora").route[1] == "m0"


def test_every_key_scoped_leaves_no_key_unchecked(mocks):
    e = _component_edge(mocks, {"a": ["m1"], "b": ["added-x"]})
    assert [r["name"] for r in e.sp["authorization"]["rules"]] == ["key-a", "key-b"]
    assert {m: (e.request("sk-a", m).by, e.request("sk-b", m).by) for m in ("m0", "m1", "added-x")} == {
        "m0": ("rbac", "rbac"), "m1": ("upstream", "rbac"), "added-x": ("rbac", "upstream")}


def test_without_scopes_the_policies_stay_as_they_were(mocks):
    """No key scoped: no authorization (no RBAC filter) and no 403 override, so nothing changes for such a stack."""
    e = _component_edge(mocks, {})
    assert "authorization" not in e.sp and "rbac" not in e.chain
    assert sorted(o["match"]["statusCodes"][0]["value"] for o in e.btp["responseOverride"]) == [401, 429]
    assert {m: e.request("sk-a", m).by for m in ("m0", "m1", "added-x")} == dict.fromkeys(("m0", "m1", "added-x"),
                                                                                          "upstream")


@needs_upstream
def test_scoped_policies_validate_against_the_upstream_crds(cluster):
    mocks, _ = cluster
    for kind in ("SecurityPolicy", "BackendTrafficPolicy"):
        (obj,) = _objects(mocks, kind)
        assert validate_cr(obj) == [], kind
    (sp,) = _objects(mocks, "SecurityPolicy")
    # the CEL rule of an AuthorizationRule (not evaluated by validate_cr): a principal or a cel expression
    assert all("principal" in r or "cel" in r for r in sp["spec"]["authorization"]["rules"])


@pytest.mark.parametrize("key_models, expected", [
    ({"c": ["m0"]}, "key_models names keys ['c'] that are not API keys; allowed: a, b"),
    ({"a": []}, "key 'a' may call 0 models; allowed: 1 to 256 served names"),
    ({"a": [f"m{i}" for i in range(257)]}, "key 'a' may call 257 models; allowed: 1 to 256 served names"),
])
def test_the_component_refuses_scopes_envoy_gateway_would_not_take(mocks, key_models, expected):
    from components.edge_gateway import EdgeGateway

    with pytest.raises(ValueError, match=re.escape(expected)):
        EdgeGateway("e", {
            "namespace": "inference", "model_names": ["m0"], "interceptor_service": "svc",
            "interceptor_namespace": "keda", "interceptor_port": 8080, "hold_seconds": 900,
            "response_header_seconds": 600, "allowed_cidrs": ["10.0.0.0/8"], "key_names": ["a", "b"],
            "requests_per_minute": {"a": 60, "b": 60}, "api_keys": {"a": "sk-a", "b": "sk-b"},
            "key_models": key_models})


# -- configuration --------------------------------------------------------------------------------------------------

def _problems(keys: dict, api_keys=("ops", "team-a")) -> list[str]:
    from stacks.config import ConfigError, validate
    from test_workload_support import raw_config

    raw = raw_config("dev", gateway={**_dev("gateway"), "keys": keys}, apiKeyNames=sorted(api_keys))
    try:
        validate(raw)
    except ConfigError as e:
        return str(e).splitlines()[1:]
    return []


@pytest.mark.parametrize("keys, lines", [
    ({"team-a": {"models": [CHAT]}, "ops": {}}, []),
    ({"team-a": {}, "ops": {}}, []),
    ({"team-b": {}}, ["gpu-burst:gateway.keys.team-b: no key 'team-b' in gpu-burst:apiKeys; allowed: a policy for "
                      "ops, team-a, or add the key: `pulumi config set --secret --path 'apiKeys.team-b' <key>`"]),
    ({"team-a": {"models": ["llama-70b"]}, "ops": {}}, [
        f"gpu-burst:gateway.keys.team-a.models: ['llama-70b'] are not served by this stack; allowed: {CHAT}"]),
    ({"team-a": {"models": [CHAT]}}, [
        "gpu-burst:gateway.keys.ops: key 'ops' has no policy while ['team-a'] may call only some models; allowed: a "
        "policy for every key, gateway.keys.ops: {} for every model or {models: [...]}"]),
    ({"team-a": {"models": []}, "ops": {}}, ["gpu-burst:gateway.keys.team-a.models: has 0 items; allowed: at least 1"]),
    ({"team-a": {"model": [CHAT]}, "ops": {}}, [
        "gpu-burst:gateway.keys.team-a.model: unknown key; valid keys here: models"]),
])
def test_key_policies_are_checked_before_anything_is_declared(keys, lines):
    assert _problems(keys) == lines


def test_the_generated_key_is_named_default():
    assert _problems({"default": {"models": [CHAT]}}, api_keys=()) == []
