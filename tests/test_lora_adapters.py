"""LoRA adapters on a base model, end to end in dev- and prod-shaped stacks under mocks: the vLLM flags, the staging
Jobs (token only there), the copy to the pod before vLLM starts, the edge's rules and GET /v1/models, the
InterceptorRoute that sends an adapter's requests to its model (waking and scaling it), and the upstream CRDs.

What was read, at which version: vllm 0.33.0 wheel (engine/arg_utils.py LoRAConfig group, config/lora.py,
entrypoints/common/cli_args.py LoRAParserAction, entrypoints/openai/models/serving.py, v1/metrics/loggers.py);
kedacore/http-add-on v0.15.0 (InterceptorRoute CRD, pkg/routing/tablememory.go, interceptor/middleware/counting.go);
envoyproxy/ai-gateway v1.1.0 through the listing helpers of tests/test_examples.py."""

import copy
import json

import pytest
import yaml

from stack_cache import evaluated
from stack_helpers import ROOT, evaluate
from test_examples import _ai_routes, _plain, declared_models, envoy_route_for
from test_workload_support import as_object, dependency_names, field_is_secret, named, of_kind, strict_core_errors
from upstream import needs_upstream, validate_cr

from components.model_route import MODEL_HEADER, ModelRoute, RoutedAdapterArgs
from components.model_service import ADAPTERS_DIR, lora_args, lora_problems, queue_depth_query
from components.model_store import SYNC_ADAPTERS_PROGRAM, manifest_key, model_prefix

HF_TOKEN = "hf_lora_test_token"
ADAPTERS = {
    # dev: two adapters of the Qwen model, default rank and slots
    "dev": ([{"name": "qwen-sql", "hfModelId": "acme/qwen2.5-1.5b-sql-lora",
              "revision": "1111111111222222222233333333334444444444"},
             {"name": "qwen-support", "hfModelId": "acme/qwen2.5-1.5b-support-lora",
              "revision": "aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd"}], {}),
    # prod: three adapters of the gated Llama model, rank 64, two slots per batch
    "prod": ([{"name": f"llama-{t}", "hfModelId": f"acme/llama-3.1-8b-{t}-lora", "revision": f"{i}" * 40}
              for i, t in enumerate(["sql", "legal", "medical"], 1)], {"maxLoraRank": 64, "maxLoras": 2}),
}


def _models(stack: str) -> list[dict]:
    models = copy.deepcopy(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]["gpu-burst:models"])
    adapters, extra = ADAPTERS[stack]
    models[0] = {**models[0], "adapters": adapters, **extra}
    return models


@pytest.fixture(scope="module", params=["dev", "prod"])
def lora(request):
    """(stack, mocks, outputs as plain values, the models config) of the stack with adapters on its first model."""
    stack = request.param
    models = _models(stack)
    mocks, outputs = evaluated(stack, overrides={"models": models},
                               secrets={"hfToken": HF_TOKEN, "apiKey": "sk-lora-test-key"})
    values, _ = _plain(outputs)
    return stack, mocks, values, models


def _base(models):
    m = models[0]
    return m, m["servedName"], [a["name"] for a in m["adapters"]]


def _rank(m) -> int:
    return m.get("maxLoraRank", 16)


def _bucket(mocks) -> str:
    return mocks.state("gpu-burst-models-bucket")["bucket"]


def _pod(mocks, name) -> dict:
    return named(mocks, "Deployment", name)["spec"]["template"]["spec"]


# -- vLLM ---------------------------------------------------------------------------------------------------------

def test_vllm_serves_every_adapter_with_the_lora_flags(lora):
    _, mocks, _, models = lora
    m, base, names = _base(models)
    (c,) = _pod(mocks, base)["containers"]
    args = c["args"]
    i = args.index("--enable-lora")
    n = len(names)
    assert args[i:i + 5 + n] == [
        "--enable-lora", f"--max-loras={m.get('maxLoras', n)}", f"--max-cpu-loras={n}", f"--max-lora-rank={_rank(m)}",
        "--lora-modules", *[f"{a}={ADAPTERS_DIR}/{a}" for a in names]]
    # vLLM's LoRAParserAction replaces its list on each --lora-modules, and reads an item as name=path only without
    # a comma; the user's flags follow, each starting with "--", which ends the list.
    assert args.count("--lora-modules") == 1 and all("," not in a for a in args[i + 5:i + 5 + n])
    assert args[i + 5 + n:] == m.get("extraArgs", [])
    # The model's own name is the engine's only served name: metrics and /v1/models' `parent` of each adapter.
    assert f"--served-model-name={base}" in args
    for other in models[1:]:
        assert "--enable-lora" not in _pod(mocks, other["servedName"])["containers"][0]["args"]


def test_no_adapter_costs_a_gpu_or_a_deployment_of_its_own(lora):
    _, mocks, _, models = lora
    m, base, names = _base(models)
    deployments = {as_object(d)["metadata"]["name"] for d in of_kind(mocks, "Deployment")
                   if as_object(d)["metadata"]["namespace"] == "inference"}
    assert deployments == {x["servedName"] for x in models}
    for kind in ("Service", "InterceptorRoute", "ScaledObject"):
        objs = {as_object(r)["metadata"].get("name") for r in of_kind(mocks, kind)}
        assert not objs & set(names), kind
    (c,) = _pod(mocks, base)["containers"]
    assert c["resources"]["requests"]["nvidia.com/gpu"] == str(m.get("gpus", 1))


# -- the adapters reach the pod before vLLM starts ------------------------------------------------------------------

def test_an_init_container_copies_the_adapters_from_the_store_before_vllm_starts(lora):
    _, mocks, _, models = lora
    m, base, names = _base(models)
    pod = _pod(mocks, base)
    (init,) = pod["initContainers"]
    (c,) = pod["containers"]
    bucket = _bucket(mocks)
    assert init["name"] == "adapters" and init["image"] == c["image"]  # on the node already, with boto3
    assert init["command"] == ["python3", "/opt/gpu-burst/sync_adapters.py", "--dest", ADAPTERS_DIR]
    assert init["args"] == [f"{a['name']}=s3://{bucket}/{a['hfModelId']}/{a['revision']}/" for a in m["adapters"]]
    # Same volume as vLLM's /models, so `--lora-modules name=/models/adapters/name` finds what was copied.
    cache = {v["mountPath"]: v["name"] for v in c["volumeMounts"]}
    assert {"name": cache["/models"], "mountPath": "/models"} in init["volumeMounts"]
    assert ADAPTERS_DIR.startswith("/models/")
    tools = next(v for v in init["volumeMounts"] if v["mountPath"] == "/opt/gpu-burst")
    (cm,) = [r for r in of_kind(mocks, "ConfigMap") if r.name == f"weights-{base}-tools"]
    volume = next(v for v in pod["volumes"] if v["name"] == tools["name"])
    assert volume["configMap"]["name"] == mocks.state(cm.name)["metadata"]["name"]
    assert cm.inputs["data"]["sync_adapters.py"] == SYNC_ADAPTERS_PROGRAM.read_text()
    # The model's read-only grant (Pod Identity injects init containers too); no token, no Hub.
    assert pod["serviceAccountName"] == f"{base}-weights"
    env = {e["name"]: e.get("value") for e in init["env"]}
    assert env["AWS_REGION"] and "HF_TOKEN" not in env
    sc = init["securityContext"]
    assert sc == c["securityContext"] and sc["allowPrivilegeEscalation"] is False and sc["runAsNonRoot"] is True
    # Smaller than the vLLM container: the pod's effective requests do not change.
    assert init["resources"]["requests"]["cpu"] == "500m" and "nvidia.com/gpu" not in init["resources"]["requests"]
    assert strict_core_errors(named(mocks, "Deployment", base), "V1Deployment") == []
    # Models without adapters keep their pod as it was.
    for other in models[1:]:
        assert "initContainers" not in _pod(mocks, other["servedName"])


def test_the_model_pods_may_read_their_adapters_and_nothing_more(lora):
    _, mocks, _, models = lora
    m, base, _ = _base(models)
    bucket = _bucket(mocks)
    prefix = model_prefix(m["hfModelId"], m["revision"])
    adapters = [model_prefix(a["hfModelId"], a["revision"]) for a in m["adapters"]]
    policy = json.loads(next(r for r in mocks.created if r.name == f"weights-{base}-reader-policy").inputs["policy"])
    listed, read, cache = policy["Statement"]
    assert listed["Condition"]["StringLike"]["s3:prefix"] == [
        f"{prefix}/*", f"_compile-cache/{prefix}/vllm-openai-v0.33.0/*", *[f"{a}/*" for a in adapters]]
    assert read == {"Sid": "ReadModelObjects", "Effect": "Allow", "Action": "s3:GetObject",
                    "Resource": [f"arn:aws:s3:::{bucket}/{p}/*" for p in [prefix, *adapters]]}
    assert cache["Sid"] == "ReadWriteCompileCache"


# -- staging ------------------------------------------------------------------------------------------------------

def test_each_adapter_is_staged_by_a_job_the_model_waits_for_with_the_token_only_there(lora):
    stack, mocks, _, models = lora
    m, base, _ = _base(models)
    bucket = _bucket(mocks)
    for a in m["adapters"]:
        job = named(mocks, "Job", f"stage-{a['name']}-{a['revision'][:10]}")
        pod = job["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        prefix, manifest = model_prefix(a["hfModelId"], a["revision"]), manifest_key(a["hfModelId"], a["revision"])
        assert c["args"] == ["--repo", a["hfModelId"], "--revision", a["revision"], "--bucket", bucket,
                             "--prefix", prefix, "--manifest-key", manifest, "--adapter-max-rank", str(_rank(m))]
        assert pod["serviceAccountName"] == f"{base}-staging"
        assert pod["nodeSelector"] == {"gpu-burst.io/node-role": "system"} and "nvidia.com/gpu" not in json.dumps(pod)
        assert strict_core_errors(job, "V1Job") == []
        env = {e["name"]: e for e in c["env"]}
        if m.get("needsHfToken"):
            secret = f"weights-{base}-hf-token"
            assert field_is_secret(mocks, secret, "stringData")
            assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {
                "name": mocks.state(secret)["metadata"]["name"], "key": "token"}
        else:
            assert "HF_TOKEN" not in env
        assert HF_TOKEN not in json.dumps(job)
        # pulumi up waits for the copy; the model's Deployment waits for it.
        assert f"weights-{base}-adapter-{a['name']}" in dependency_names(mocks, f"model-{base}")
    for dep in of_kind(mocks, "Deployment"):
        assert "HF_TOKEN" not in json.dumps(as_object(dep)) and HF_TOKEN not in json.dumps(as_object(dep))
    assert (stack == "prod") == bool(m.get("needsHfToken"))


def test_the_staging_grant_covers_the_adapters_revisions_and_manifests(lora):
    _, mocks, _, models = lora
    m, base, _ = _base(models)
    bucket = _bucket(mocks)
    pairs = [(model_prefix(x["hfModelId"], x["revision"]), manifest_key(x["hfModelId"], x["revision"]))
             for x in [m, *m["adapters"]]]
    policy = json.loads(next(r for r in mocks.created if r.name == f"weights-{base}-staging-policy").inputs["policy"])
    listed, write = policy["Statement"]
    assert listed["Condition"]["StringLike"]["s3:prefix"] == [k for p, mf in pairs for k in (f"{p}/*", mf)]
    assert write["Resource"] == [f"arn:aws:s3:::{bucket}/{k}" for p, mf in pairs for k in (f"{p}/*", mf)]


# -- the edge: routed, listed, authorized and limited like the model ----------------------------------------------

def test_each_adapter_has_a_rule_in_its_models_route_and_is_listed_by_v1_models(lora):
    _, mocks, values, models = lora
    m, base, names = _base(models)
    routes = _ai_routes(mocks)
    listed = declared_models(routes, values["gatewayName"], values["inferenceNamespace"])
    assert listed == [base, *names, *[x["servedName"] for x in models[1:]]]
    base_route, base_rule = envoy_route_for(routes, base)
    (route,) = [r for r in routes if r["metadata"]["name"] == base_route]
    rules = {r["name"]: r for r in route["spec"]["rules"]}
    for a in names:
        assert envoy_route_for(routes, a) == (base_route, a)
        rule = rules[a]
        assert rule["matches"] == [{"headers": [{"type": "Exact", "name": MODEL_HEADER, "value": a}]}]
        # Same backend (the interceptor, with the internal key), timeouts and owner as the model's own rule.
        assert {k: v for k, v in rule.items() if k not in ("name", "matches")} == \
            {k: v for k, v in rules[base_rule].items() if k not in ("name", "matches")}
    assert envoy_route_for(routes, "no-such-adapter") == ("*", "route-not-found")
    # The route data names each adapter and its model (what per-key model scopes can be written against).
    paths = values["requestPaths"]
    for a in names:
        assert paths[a] == {**paths[base], "value": a, "rule": a, "adapter_of": base}
    assert "adapter_of" not in paths[base]
    assert values["adapters"] == {base: names} and values["models"] == [x["servedName"] for x in models]
    assert all(a in values["curlChatCompletions"] and f'"model": "{a}"' in values["curlChatCompletions"][a]
               for a in names)


def test_api_keys_and_limits_apply_to_the_adapter_rules(lora):
    """The key check and the per-key limit attach to the Gateway, so they cover every rule of every route on it,
    the adapters' included (Envoy Gateway policy attachment)."""
    _, mocks, values, _ = lora
    for kind in ("SecurityPolicy", "BackendTrafficPolicy"):
        assert of_kind(mocks, kind), kind
        for r in of_kind(mocks, kind):
            refs = as_object(r)["spec"]["targetRefs"]
            assert refs == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": values["gatewayName"]}]


# -- the interceptor: wakes and scales the model for its adapters ---------------------------------------------------

def interceptor_route_for(irs: list[dict], host: str, path: str, headers: dict) -> dict:
    """The InterceptorRoute the HTTP add-on's interceptor picks (kedacore/http-add-on@v0.15.0
    pkg/routing/tablememory.go Route): hosts (exact, then wildcard, then "*"), the longest path prefix, then the
    entry with the most header matches whose every header is present with that exact value."""
    candidates = []
    for ir in irs:
        for rule in ir["spec"]["rules"]:
            hosts = rule.get("hosts", ["*"])
            if host not in hosts and "*" not in hosts:
                continue
            for p in rule.get("paths", [{"value": "/"}]):
                if not path.startswith(p["value"]):
                    continue
                hs = rule.get("headers", [])
                if all(h["name"] in headers and ("value" not in h or h["value"] in headers[h["name"]]) for h in hs):
                    candidates.append((len(p["value"]), len(hs), ir["metadata"]["name"], ir))
    assert candidates, (path, headers)
    best = max(c[:2] for c in candidates)
    winners = {c[2]: c[3] for c in candidates if c[:2] == best}
    assert len(winners) == 1, winners
    return next(iter(winners.values()))


def test_the_interceptor_sends_an_adapters_requests_to_its_model_and_counts_them_there(lora):
    _, mocks, _, models = lora
    m, base, names = _base(models)
    irs = [as_object(r) for r in of_kind(mocks, "InterceptorRoute")]
    for a in names:
        ir = interceptor_route_for(irs, "keda-add-ons-http-interceptor-proxy.keda", "/v1/chat/completions",
                                   {MODEL_HEADER: [a]})
        # The model's Service; the interceptor counts the request against this route (counting.go keys the queue by
        # the InterceptorRoute), the push trigger of the model's ScaledObject, which wakes it from zero.
        assert ir["metadata"]["name"] == base and ir["spec"]["target"]["service"] == base
    base_ir = named(mocks, "InterceptorRoute", base)
    assert [r["headers"] for r in base_ir["spec"]["rules"]] == [
        [{"name": MODEL_HEADER, "value": n}] for n in [base, *names]]
    assert all(r["hosts"] == ["*"] and r["paths"] == [{"value": "/v1"}] for r in base_ir["spec"]["rules"])
    push, prom, *_ = named(mocks, "ScaledObject", base)["spec"]["triggers"]
    assert push["metadata"]["interceptorRoute"] == base
    # Queue depth: vLLM labels every series with the engine's served name, adapter requests included (0.33.0
    # v1/metrics/loggers.py: labelnames ["model_name", "engine"], model_name = served_model_name): the base's name
    # is the only filter, and no series exists per adapter.
    assert prom["metadata"]["query"] == queue_depth_query(base)
    assert not any(a in prom["metadata"]["query"] for a in names)


@needs_upstream
def test_adapter_custom_resources_validate_against_the_upstream_crds(lora):
    _, mocks, _, _ = lora
    for kind in ("AIGatewayRoute", "InterceptorRoute", "ScaledObject"):
        for r in of_kind(mocks, kind):
            assert validate_cr(as_object(r)) == [], (kind, r.name)


# -- the pieces on their own -----------------------------------------------------------------------------------------

def test_lora_flags_and_their_limits():
    two = [{"name": "a", "uri": "s3://b/a/"}, {"name": "b", "uri": "s3://b/b/"}]
    assert lora_args([], 0, 16) == []
    assert lora_args(two, 1, 8) == ["--enable-lora", "--max-loras=1", "--max-cpu-loras=2", "--max-lora-rank=8",
                                    "--lora-modules", f"a={ADAPTERS_DIR}/a", f"b={ADAPTERS_DIR}/b"]
    assert lora_problems("m", two, 2, 16) == []
    assert lora_problems("a", two, 3, 24) == [
        "adapter names ['a', 'b'] repeat each other or the served name 'a'",
        "max_loras 3 is outside 1..2 (the number of adapters)",
        "max_lora_rank 24 is not one of [1, 8, 16, 32, 64, 128, 256, 320, 512]"]


def _route(mocks, served: list, adapters: list):
    return evaluate(lambda: ModelRoute("r", {
        "namespace": "inference", "gateway_name": "gw", "served_names": served, "backend_name": "b",
        "request_timeout": "60s", "stream_idle_timeout": "60s", "adapters": adapters}))


def test_a_route_holds_a_model_and_up_to_fourteen_adapters(mocks):
    adapters = [RoutedAdapterArgs(name=f"a{i}", base="m") for i in range(14)]
    _route(mocks, ["m"], adapters)
    (r,) = of_kind(mocks, "AIGatewayRoute")
    assert [x["name"] for x in as_object(r)["spec"]["rules"]] == ["m", *[f"a{i}" for i in range(14)]]
    with pytest.raises(ValueError, match=r"16 served names; allowed: 1 to 15 per route"):
        ModelRoute("r2", {"namespace": "inference", "gateway_name": "gw", "served_names": ["m"], "backend_name": "b",
                          "request_timeout": "60s", "stream_idle_timeout": "60s",
                          "adapters": adapters + [RoutedAdapterArgs(name="a14", base="m")]})
    with pytest.raises(ValueError, match=r"adapters \['x'\] name a base that is not one of the served names"):
        ModelRoute("r3", {"namespace": "inference", "gateway_name": "gw", "served_names": ["m"], "backend_name": "b",
                          "request_timeout": "60s", "stream_idle_timeout": "60s",
                          "adapters": [RoutedAdapterArgs(name="x", base="other")]})


def test_the_edge_keeps_a_model_and_its_adapters_in_one_route(mocks):
    from components.edge_gateway import EdgeGateway, route_chunks

    many = [{"name": f"a{i}", "base": "m1"} for i in range(13)]
    assert route_chunks([f"m{i}" for i in range(17)], []) == [[f"m{i}" for i in range(15)], ["m15", "m16"]]
    assert route_chunks(["m0", "m1", "m2"], many) == [["m0", "m1"], ["m2"]]
    assert route_chunks(["m0", "m1", "m2"], many + [{"name": "a13", "base": "m1"}]) == [["m0"], ["m1"], ["m2"]]
    evaluate(lambda: EdgeGateway("e", {
        "namespace": "inference", "model_names": ["m0", "m1", "m2"], "adapters": many, "interceptor_service": "svc",
        "interceptor_namespace": "keda", "interceptor_port": 8080, "hold_seconds": 900,
        "response_header_seconds": 600, "allowed_cidrs": ["10.0.0.0/8"], "key_names": [],
        "requests_per_minute": {"default": 60}, "scrape": False}))
    routes = [as_object(r) for r in sorted(of_kind(mocks, "AIGatewayRoute"), key=lambda r: (len(r.name), r.name))]
    assert [[x["name"] for x in r["spec"]["rules"]] for r in routes] == [
        ["m0", "m1", *[f"a{i}" for i in range(13)]], ["m2"]]


def test_an_adapter_of_an_unknown_model_is_refused_by_the_edge(mocks):
    from components.edge_gateway import EdgeGateway

    with pytest.raises(ValueError, match=r"adapters \['a'\] name a base that is not in model_names"):
        EdgeGateway("e", {
            "namespace": "inference", "model_names": ["m"], "adapters": [{"name": "a", "base": "x"}],
            "interceptor_service": "svc", "interceptor_namespace": "keda", "interceptor_port": 8080,
            "hold_seconds": 900, "response_header_seconds": 600, "allowed_cidrs": ["10.0.0.0/8"], "key_names": [],
            "requests_per_minute": {"default": 60}, "scrape": False})


def test_model_service_refuses_adapters_it_cannot_sync(mocks):
    from components.model_service import ModelService

    with pytest.raises(ValueError, match="adapters need weights with tools_config_map"):
        ModelService("m", {"served_name": "m", "adapters": [{"name": "a", "uri": "s3://b/a/"}]})  # type: ignore


def test_models_without_adapters_declare_what_they_did_before(lora):
    """No new key, object or policy statement for a model without adapters (an upgrade is no diff for them)."""
    _, mocks, _, models = lora
    for other in models[1:]:
        name = other["servedName"]
        pod = _pod(mocks, name)
        assert "initContainers" not in pod
        (cm,) = [r for r in of_kind(mocks, "ConfigMap") if r.name == f"weights-{name}-tools"]
        assert list(cm.inputs["data"]) == ["compile_cache.py"]
        ir = named(mocks, "InterceptorRoute", name)
        assert len(ir["spec"]["rules"]) == 1
        policy = json.loads(next(r for r in mocks.created if r.name == f"weights-{name}-reader-policy")
                            .inputs["policy"])
        assert isinstance(policy["Statement"][1]["Resource"], str)


# -- another program adds a model with adapters ------------------------------------------------------------------------

ADDED_ADAPTERS = [{"name": "added-sql", "hfModelId": "acme/qwen2.5-1.5b-sql-lora",
                   "revision": "1111111111222222222233333333334444444444"}]


def test_a_program_adds_a_model_with_its_adapters_to_a_running_cluster():
    from test_examples import _cluster, run_example

    _, cmocks, values, secret, model = _cluster("dev")
    added = run_example((values, secret), {**model, "servedName": "qwen-added", "adapters": ADDED_ADAPTERS,
                                           "maxLoraRank": 32})
    routes = _ai_routes(cmocks) + _ai_routes(added)
    assert declared_models(routes, values["gatewayName"], values["inferenceNamespace"]) == \
        [*values["models"], "qwen-added", "added-sql"]
    assert envoy_route_for(routes, "added-sql")[1] == "added-sql"
    (ir,) = [as_object(r) for r in of_kind(added, "InterceptorRoute")]
    assert interceptor_route_for([ir], "any", "/v1/completions", {MODEL_HEADER: ["added-sql"]}) is ir
    (dep,) = [as_object(r) for r in of_kind(added, "Deployment")]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--max-lora-rank=32" in args and f"added-sql={ADAPTERS_DIR}/added-sql" in args
    (init,) = dep["spec"]["template"]["spec"]["initContainers"]
    assert init["args"] == [f"added-sql=s3://{values['modelStoreBucket']}/acme/qwen2.5-1.5b-sql-lora/{'1' * 10}"
                            f"{'2' * 10}{'3' * 10}{'4' * 10}/"]
    jobs = {as_object(r)["metadata"]["name"] for r in of_kind(added, "Job")}
    assert jobs == {f"stage-qwen-added-{model['revision'][:10]}", "stage-added-sql-1111111111"}
    deps = dependency_names(added, "model-qwen-added")
    assert {"weights-qwen-added-staging", "weights-qwen-added-adapter-added-sql"} <= deps


def test_an_added_adapter_may_not_take_a_name_the_cluster_serves():
    from test_examples import _cluster, _error_of, _fresh_mocks, run_example

    _, _, values, secret, model = _cluster("dev")
    base = values["models"][0]
    with_adapters = {**values, "adapters": {base: ["added-sql"]}}  # the cluster stack serves an adapter of that name
    m = _fresh_mocks()
    msg = _error_of(lambda: run_example((with_adapters, secret), {**model, "servedName": "qwen-added",
                                                                  "adapters": ADDED_ADAPTERS}, mocks=m))
    assert f"adapters ['added-sql'] are already served by the cluster stack; allowed: names not in " \
           f"{sorted([base, 'added-sql'])}" in msg
    assert [r.typ for r in m.created if r.typ.startswith(("kubernetes:", "aws:"))] == []


# -- keys scoped to models: an adapter is a model name of its own ------------------------------------------------------

SCOPED_KEYS = {"team-a": "sk-team-a-lora-0001", "ops": "sk-ops-lora-0002"}


@pytest.fixture(scope="module")
def scoped():
    """The dev stack with its adapters and two keys: team-a may call the SQL adapter only, ops every model."""
    from test_key_scopes import edge_of

    gateway = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["gpu-burst:gateway"]
    mocks, _ = evaluated("dev", {"models": _models("dev"),
                                 "gateway": {**gateway, "keys": {"team-a": {"models": ["qwen-sql"]}, "ops": {}}}},
                         secrets={"apiKeys": json.dumps(SCOPED_KEYS)})
    return edge_of(mocks)


@pytest.mark.parametrize("key, model, status", [
    ("team-a", "qwen-sql", 200),
    ("team-a", "qwen-support", 403),
    ("team-a", "qwen2-5-1-5b-instruct", 403),  # the model's name does not grant its adapters, nor the reverse
    ("ops", "qwen-support", 200),
    ("ops", "qwen2-5-1-5b-instruct", 200),
    ("ops", "no-such-adapter", 404),
])
def test_a_key_calls_an_adapter_only_when_its_scope_names_it(scoped, key, model, status):
    answer = scoped.request(SCOPED_KEYS[key], model)
    assert answer.status == status
    if status == 200:
        assert answer.route[1] == model and answer.upstream_headers[MODEL_HEADER] == model
        assert answer.upstream == "keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local:8080"
    else:
        assert answer.upstream is None


def test_a_scope_may_name_adapters_and_only_served_names():
    from stacks.config import ConfigError, validate
    from test_workload_support import raw_config

    def problems(models):
        gateway = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["gpu-burst:gateway"]
        raw = raw_config("dev", models=_models("dev"), apiKeyNames=["ops", "team-a"],
                         gateway={**gateway, "keys": {"team-a": {"models": models}, "ops": {}}})
        try:
            validate(raw)
        except ConfigError as e:
            return str(e).splitlines()[1:]
        return []

    assert problems(["qwen-sql", "qwen2-5-1-5b-instruct"]) == []
    assert problems(["qwen-legal"]) == [
        "gpu-burst:gateway.keys.team-a.models: ['qwen-legal'] are not served by this stack; allowed: "
        "qwen2-5-1-5b-instruct, qwen-sql, qwen-support"]


# -- usage and cost: an adapter's tokens are its own, its GPU time is its model's -----------------------------------------

def test_the_usage_rules_count_adapter_tokens_in_their_models_cost_per_million(lora):
    _, mocks, _, models = lora
    _, base, names = _base(models)
    (rule,) = [as_object(r) for r in of_kind(mocks, "PrometheusRule") if r.name == "gpu-burst-usage-rules"]
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]
             if "cost_per_million_output_tokens" in r.get("record", "")]
    assert exprs and all(f'"served_by", "{base}", "model", "{"|".join(names)}")' in e for e in exprs)


def test_adapter_tokens_under_prometheus(tmp_path):
    """Prometheus' rule engine on synthetic series: m1 serves adapter m1-sql; m1's GPU hour costs 0.8 USD, and the
    cost per million output tokens divides it by m1's and m1-sql's output tokens together."""
    import subprocess

    from test_usage_rules import PRICES, PROMTOOL, _sample, _series

    from components import usage

    if PROMTOOL is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    tok = "gen_ai_client_token_usage_sum"
    pod = {"namespace": "inference", "pod": "m1-5d8f7c9b6-abcde"}
    series = [
        _series(tok, {"gpu_burst_key": "a", "gen_ai_original_model": "m1", "gen_ai_token_type": "output"}, "0+40x180"),
        _series(tok, {"gpu_burst_key": "a", "gen_ai_original_model": "m1-sql", "gen_ai_token_type": "output"},
                "0+60x180"),
        _series("kube_pod_container_resource_requests", {**pod, "container": "vllm", "node": "ip-10-0-1-1",
                                                         "resource": "nvidia_com_gpu", "unit": "integer"},
                "_x60 1x59 stale"),
        _series("kube_pod_status_phase", {**pod, "phase": "Running"}, "_x60 1x59 stale"),
        _series("kube_pod_status_scheduled", {**pod, "condition": "true"}, "_x60 1x59 stale"),
        _series("kube_deployment_spec_replicas", {"namespace": "inference", "deployment": "m1"}, "0x59 1x59 0x60"),
    ]
    price = {"model": "m1", "pool": "gpu-spot", "instance_type": "g6.xlarge", "capacity_type": "spot"}
    r = usage.record
    checks = [
        # Tokens per name: the adapter has its own row, GPU time and cost only its model.
        ("150m", r("model_tokens", "1d"), [({"model": "m1", "gen_ai_token_type": "output"}, 6000),
                                           ({"model": "m1-sql", "gen_ai_token_type": "output"}, 9000)]),
        ("150m", r("model_gpu_seconds", "1d"), [({"model": "m1"}, 3600)]),
        # 0.8 USD for 6,000 + 9,000 output tokens.
        ("150m", r("model_cost_per_million_output_tokens", "1d"), [(price, 0.8 / 15000 * 1e6)]),
    ]
    test = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [{"expr": name, "eval_time": at, "exp_samples": [_sample(name, lbl, v) for lbl, v in exp]}
                             for at, name, exp in checks]}]}
    groups = usage.rule_groups("inference", {"m1": PRICES["m1"]}, {}, {"m1": ["m1-sql"]})
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    (tmp_path / "test.yaml").write_text(json.dumps(test))
    run = subprocess.run([PROMTOOL, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    # Without adapters the rule reads as it did before they existed.
    assert usage.served_output_tokens_expr("out", {}) == 'sum by (model) (out{gen_ai_token_type="output"})'
