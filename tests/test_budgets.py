"""Token budgets per key and the Redis behind them, under mocks and against the upstream CRDs: the global rate-limit
rules and their token costs, the Envoy Gateway configuration that points at the Redis, the Redis itself (ElastiCache:
TLS, AUTH, its security group; in cluster: TLS, password, restricted pod), its secrets, and what is created when."""

import json
import os
import re
import subprocess
from pathlib import Path

import pulumi
import pytest
import yaml
from stack_helpers import evaluate, resolve
from test_workload_support import (DEV_MODELS, PROD_GATEWAY, PROD_KEYS, PROD_MODELS, Fakes, as_object,
                                   dependency_names, field_is_secret, of_kind, raw_config, strict_core_errors)
from upstream import AI_GATEWAY_EG_VALUES, crd_schema, load_upstream, needs_upstream, unknown_value_keys, validate_cr

from components import edge_gateway as eg
from components import rate_limit_redis as rl
from stacks.config import capacity

BUDGETS = {"team-a": {"models": ["llama-3-1-8b-instruct"], "requestsPerMinute": 1200, "tokensPerMinute": 20000,
                      "tokensPerDay": 2_000_000},
           "ci": {"tokensPerDay": 50000}}
CLUSTER_SG = "sg-1"
"""The cluster security group the test Foundation hands the workload (tests/test_workload_support.Fakes)."""


def _run(mocks, stack: str, gateway: dict, api_keys=None):
    """build_workload on a dev- or prod-like config with `gateway` merged into its gateway section."""
    from stacks.config import validate
    from stacks.workload import build_workload

    if stack == "prod":
        cfg = validate(raw_config("prod", models=PROD_MODELS, gateway={**PROD_GATEWAY, **gateway}, hfTokenSet=True,
                                  apiKeyNames=sorted(PROD_KEYS)))
        api_keys = PROD_KEYS if api_keys is None else api_keys
    else:
        cfg = validate(raw_config("dev", models=DEV_MODELS, gateway={"public": False, **gateway}))

    def program():
        fakes = Fakes(cfg)
        keys = pulumi.Output.secret(api_keys) if api_keys else None
        return build_workload(fakes.foundation, fakes.addons, keys, pulumi.Output.secret("hf_x"))

    return evaluate(program), cfg


def _fresh_mocks(stack: str):
    import asyncio

    from pulumi_mocks import Mocks, RecordingMonitor
    from stack_helpers import shared_loop

    asyncio.set_event_loop(shared_loop())
    m = Mocks()
    m.monitor = RecordingMonitor(m)
    pulumi.runtime.set_mocks(m, project="gpu-burst", stack=stack, preview=False, monitor=m.monitor)
    pulumi.runtime.set_all_config({})
    return m


@pytest.fixture(scope="module")
def managed():
    """prod-like: two keys with budgets → ElastiCache, fail open (the default)."""
    m = _fresh_mocks("prod")
    out, cfg = _run(m, "prod", {"keys": BUDGETS})
    return m, out, cfg


@pytest.fixture(scope="module")
def in_cluster():
    """dev-like: the generated key with a daily budget → one Valkey pod, fail closed."""
    m = _fresh_mocks("dev")
    out, cfg = _run(m, "dev", {"keys": {"default": {"tokensPerDay": 100000}}, "rateLimit": {"failOpen": False}})
    return m, out, cfg


@pytest.fixture(scope="module")
def no_budget():
    m = _fresh_mocks("prod")
    out, cfg = _run(m, "prod", {"keys": {"team-a": {"requestsPerMinute": 1200}}})
    return m, out, cfg


def _one(mocks, kind: str) -> dict:
    objs = [as_object(r) for r in of_kind(mocks, kind) if r.name.startswith("gpu-burst-edge")]
    assert len(objs) == 1, f"{kind}: {len(objs)}"
    return objs[0]


def _eg_values(mocks) -> dict:
    return as_object(mocks.named("gpu-burst-edge-envoy-gateway-release"))["values"]


def _inputs(mocks, name: str) -> dict:
    from test_workload_support import _unwrap

    return _unwrap(dict(mocks.named(name).inputs))


# -- what exists when --------------------------------------------------------------------------------------------

def test_without_a_token_budget_nothing_of_redis_exists_and_limits_stay_local(no_budget):
    mocks, _, cfg = no_budget
    assert cfg.rate_limit_redis is None
    types = {r.typ for r in mocks.created}
    assert not {t for t in types if t.startswith(("aws:elasticache", "tls:"))}, types
    assert not [r for r in mocks.created if r.name.startswith("gpu-burst-rate-limit")]
    assert "rateLimit" not in _eg_values(mocks)["config"]["envoyGateway"]
    spec = _one(mocks, "BackendTrafficPolicy")["spec"]["rateLimit"]
    assert set(spec) == {"local"}
    # Token costs are recorded anyway: the usage metrics need streamed responses to report their usage.
    assert _one(mocks, "GatewayConfig")["spec"]["globalLLMRequestCosts"] == eg.token_costs()
    assert not [r for r in of_kind(mocks, "Secret") if r.name == "gpu-burst-edge-rate-limit-redis"]


def test_a_budget_creates_the_managed_redis_in_prod_and_the_in_cluster_one_in_dev(managed, in_cluster):
    m_managed, m_dev = managed[0], in_cluster[0]
    assert len(m_managed.of_type("aws:elasticache/replicationGroup:ReplicationGroup")) == 1
    assert not [r for r in m_managed.created if r.typ.startswith("tls:")]
    assert not m_dev.of_type("aws:elasticache/replicationGroup:ReplicationGroup")
    assert [r.name for r in of_kind(m_dev, "Deployment") if r.name.startswith("gpu-burst-rate-limit")] == [
        "gpu-burst-rate-limit-valkey"]


# -- the global rate limit ---------------------------------------------------------------------------------------

@needs_upstream
@pytest.mark.parametrize("fixture", ["managed", "in_cluster"])
def test_traffic_policy_and_gateway_config_validate_against_the_upstream_crds(fixture, request):
    mocks = request.getfixturevalue(fixture)[0]
    for kind in ("BackendTrafficPolicy", "GatewayConfig"):
        obj = _one(mocks, kind)
        assert validate_cr(obj) == [], (kind, validate_cr(obj))


def test_every_key_gets_a_global_request_limit_and_its_token_budgets_shared_by_all_routes(managed):
    mocks, _, cfg = managed
    rate = _one(mocks, "BackendTrafficPolicy")["spec"]["rateLimit"]
    assert set(rate) == {"global"}  # with Redis no limit multiplies with the replicas
    rules = rate["global"]["rules"]
    by_key: dict = {}
    for r in rules:
        (sel,) = r["clientSelectors"]
        hdr, distinct = sel["headers"]
        assert (hdr["name"], hdr["type"]) == (eg.CLIENT_ID_HEADER, "Exact")
        # The key name joins the Redis counter's descriptor: a rule moving to another position (a key or budget
        # added) never inherits another key's count.
        assert distinct == {"name": eg.CLIENT_ID_HEADER, "type": "Distinct"}
        # One bucket per key across every route of the Gateway (per-model routes included), not one per route.
        assert r["shared"] is True
        by_key.setdefault(hdr["value"], []).append(r)
    assert sorted(by_key) == sorted(PROD_KEYS)
    for key, policy in cfg.key_policies.items():
        requests = [r for r in by_key[key] if "cost" not in r]
        assert [r["limit"] for r in requests] == [{"requests": policy.requests_per_minute, "unit": "Minute"}]
        tokens = {r["limit"]["unit"]: r for r in by_key[key] if "cost" in r}
        want = {u: n for u, n in (("Minute", policy.tokens_per_minute), ("Day", policy.tokens_per_day)) if n}
        assert {u: r["limit"]["requests"] for u, r in tokens.items()} == want
        for r in tokens.values():
            # checked before the request (cost 0), charged the response's tokens when it ends
            assert r["cost"] == {"request": {"from": "Number", "number": 0},
                                 "response": {"from": "Metadata", "metadata": {
                                     "namespace": "io.envoy.ai_gateway", "key": eg.TOTAL_TOKENS_KEY}}}
    assert len(rules) <= eg.MAX_GLOBAL_RULES


def test_the_gateway_records_the_tokens_the_budgets_are_charged(managed):
    """The cost the BackendTrafficPolicy reads is declared once on the GatewayConfig the Gateway references, so it
    covers every route of the Gateway, including routes other programs attach."""
    mocks, _, _ = managed
    gc = _one(mocks, "GatewayConfig")
    assert gc["spec"]["globalLLMRequestCosts"] == [{"metadataKey": eg.TOTAL_TOKENS_KEY, "type": "TotalToken"}]
    gw = _one(mocks, "Gateway")
    assert gw["metadata"]["annotations"][eg.GATEWAY_CONFIG_ANNOTATION] == \
        mocks.state("gpu-burst-edge-ai-config")["metadata"]["name"]
    # the key the limit reads is the key the costs write
    keys = {r["cost"]["response"]["metadata"]["key"] for r in
            _one(mocks, "BackendTrafficPolicy")["spec"]["rateLimit"]["global"]["rules"] if "cost" in r}
    assert keys == {c["metadataKey"] for c in gc["spec"]["globalLLMRequestCosts"]}


def test_the_request_that_crosses_a_budget_completes_and_the_next_is_refused(managed):
    """Requests through the registered objects (tests/edge_requests.py): a spent budget answers 429 before the
    model, the request that spends it completes, and one key's budget is not another's."""
    from test_key_scopes import edge_of

    mocks, _, _ = managed
    edge = edge_of(mocks)
    assert edge.chain.index("ratelimit") > edge.chain.index("ai_gateway_ext_proc") > edge.chain.index("api_key_auth")
    model = "llama-3-1-8b-instruct"
    tokens = lambda n: {eg.TOKEN_COST_NAMESPACE: {eg.TOTAL_TOKENS_KEY: n}}  # noqa: E731
    # ci: 50000 tokens per day. A request admitted with 49000 spent streams 5000 tokens: it completes.
    first = edge.request(PROD_KEYS["ci"], model)
    assert first.by == "upstream"
    edge.complete(first, tokens(49000))
    crossing = edge.request(PROD_KEYS["ci"], model)
    assert crossing.by == "upstream"
    edge.complete(crossing, tokens(5000))
    # 54000 > 50000: refused before the router, on any model or route; team-a's budget is its own.
    for m in (model, "qwen2-5-1-5b-instruct"):
        refused = edge.request(PROD_KEYS["ci"], m)
        assert (refused.status, refused.by) == (429, "ratelimit")
        assert refused.body["error"]["code"] == "rate_limit_exceeded"
    assert edge.request(PROD_KEYS["team-a"], model).by == "upstream"
    assert edge.request("sk-wrong", model).status == 401  # the key check still comes first
    o429 = [o for o in _one(mocks, "BackendTrafficPolicy")["spec"]["responseOverride"]
            if o["match"]["statusCodes"][0]["value"] == 429][0]["response"]
    assert {"name": "Retry-After", "value": str(eg.RETRY_AFTER_SECONDS)} in o429["header"]["set"]


def test_request_limits_are_one_bucket_per_key_for_every_model(managed):
    from test_key_scopes import edge_of

    mocks, _, cfg = managed
    edge = edge_of(mocks)
    rpm = cfg.key_policies["ci"].requests_per_minute
    answers = [edge.request(PROD_KEYS["ci"], m).status
               for m in ["llama-3-1-8b-instruct", "qwen2-5-1-5b-instruct"] * (rpm // 2 + 1)]
    assert answers[:rpm] == [200] * rpm and set(answers[rpm:]) == {429}


# -- Envoy Gateway's rate-limit service ------------------------------------------------------------------------------

def _rate_limit_config(mocks) -> tuple[dict, dict]:
    egc = _eg_values(mocks)["config"]["envoyGateway"]
    return egc["rateLimit"], egc["provider"]["kubernetes"]


def test_envoy_gateway_points_its_rate_limit_service_at_the_elasticache_primary(managed):
    mocks, _, _ = managed
    rate, kube = _rate_limit_config(mocks)
    primary = mocks.state("gpu-burst-rate-limit-cache")["primaryEndpointAddress"]
    assert rate["backend"] == {"type": "Redis", "redis": {"url": f"{primary}:6379", "tls": {}}}
    assert rate["failClosed"] is False  # failOpen defaults to true
    assert rate["timeout"] == eg.RATE_LIMIT_TIMEOUT  # not Envoy's 20 ms default
    dep = kube["rateLimitDeployment"]
    assert dep["pod"]["nodeSelector"] == {"gpu-burst.io/node-role": "system"}
    assert dep["replicas"] == 2 and kube["rateLimitPDB"] == {"minAvailable": 1}
    assert dep["container"]["resources"]["requests"] == eg.RATELIMIT_REQUESTS
    # The password never enters the values (no secret in them at all): the pods read it from the Secret the edge
    # keeps in EG's namespace.
    assert not field_is_secret(mocks, "gpu-burst-edge-envoy-gateway-release", "values")
    (auth,) = [e for e in dep["container"]["env"] if e["name"] == "REDIS_AUTH"]
    assert auth == {"name": "REDIS_AUTH", "valueFrom": {"secretKeyRef": {"name": eg.RATE_LIMIT_SECRET,
                                                                         "key": eg.RATE_LIMIT_AUTH_KEY}}}
    secret = as_object(mocks.named("gpu-burst-edge-rate-limit-redis"))
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"]) == (eg.RATE_LIMIT_SECRET, eg.EG_NAMESPACE)
    assert set(secret["stringData"]) == {eg.RATE_LIMIT_AUTH_KEY}
    # ElastiCache's certificate chains to a public root: no CA file, but the volume Envoy Gateway mounts exists.
    assert [v["name"] for v in dep["pod"]["volumes"]] == [eg.RATE_LIMIT_CERTS_VOLUME]
    assert "REDIS_TLS_CACERT" not in {e["name"] for e in dep["container"]["env"]}
    # The image stays the chart's pin: no override of the container image.
    assert "image" not in dep["container"]


def test_the_in_cluster_redis_is_verified_with_its_own_ca_and_fails_closed_when_chosen(in_cluster):
    mocks, _, _ = in_cluster
    rate, kube = _rate_limit_config(mocks)
    assert rate["failClosed"] is True
    assert not field_is_secret(mocks, "gpu-burst-edge-envoy-gateway-release", "values")
    host, port = rate["backend"]["redis"]["url"].rsplit(":", 1)
    assert (host, port) == (f"{rl.IN_CLUSTER_SERVICE}.{rl.IN_CLUSTER_NAMESPACE}.svc.cluster.local", "6379")
    csr = _inputs(mocks, "gpu-burst-rate-limit-server-csr")
    assert host in csr["dnsNames"]  # hostname verification stays on
    dep = kube["rateLimitDeployment"]
    env = {e["name"]: e for e in dep["container"]["env"]}
    ca_path = env["REDIS_TLS_CACERT"]["value"]
    (vol,) = dep["pod"]["volumes"]
    assert vol["name"] == eg.RATE_LIMIT_CERTS_VOLUME
    assert vol["secret"] == {"secretName": eg.RATE_LIMIT_SECRET,
                             "items": [{"key": eg.RATE_LIMIT_CA_KEY, "path": eg.RATE_LIMIT_CA_KEY}]}
    assert ca_path == f"{eg.RATE_LIMIT_CERTS_DIR}/{eg.RATE_LIMIT_CA_KEY}"
    secret = as_object(mocks.named("gpu-burst-edge-rate-limit-redis"))
    assert set(secret["stringData"]) == {eg.RATE_LIMIT_AUTH_KEY, eg.RATE_LIMIT_CA_KEY}
    assert dep["replicas"] == 2 and kube["rateLimitPDB"] == {"minAvailable": 1}


@needs_upstream
@pytest.mark.parametrize("fixture", ["managed", "in_cluster"])
def test_rate_limit_deployment_settings_validate_against_the_kubernetes_deployment_schema(fixture, request):
    """rateLimitDeployment and rateLimitPDB are the KubernetesDeploymentSpec and KubernetesPodDisruptionBudgetSpec
    types the EnvoyProxy CRD also embeds (envoyDeployment, envoyPDB): validated against that schema."""
    import jsonschema

    from upstream import _strict

    mocks = request.getfixturevalue(fixture)[0]
    _, kube = _rate_limit_config(mocks)
    k8s_schema = crd_schema("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy")["properties"]["spec"]["properties"][
        "provider"]["properties"]["kubernetes"]["properties"]
    for ours, theirs in (("rateLimitDeployment", "envoyDeployment"), ("rateLimitPDB", "envoyPDB")):
        errors = [e.message for e in jsonschema.Draft7Validator(_strict(k8s_schema[theirs])).iter_errors(kube[ours])]
        assert errors == [], (ours, errors)


@needs_upstream
def test_the_chart_values_still_hold_what_the_ai_gateway_requires(managed):
    """The rate-limit settings are merged into config.envoyGateway without dropping the AI Gateway's needs."""
    from test_gateway import _is_subset

    values = _eg_values(managed[0])
    assert unknown_value_keys("gateway-helm", values,
                              open_paths=("config.envoyGateway", "deployment.pod.annotations")) == []
    assert _is_subset(load_upstream(AI_GATEWAY_EG_VALUES), values) == []


MIRROR = Path(os.environ.get("GPU_BURST_MIRROR", Path(__file__).resolve().parents[2] / ".mirror"))
EG_REPO = MIRROR / "envoyproxy+gateway" / "repo"


def _go_json_fields(source: str, struct: str) -> dict:
    """JSON name → Go type of the fields of `struct` in a Go source file."""
    body = re.search(rf"type {struct} struct {{(.*?)\n}}", source, re.S).group(1)
    return {m[2]: m[1] for m in re.findall(r"^\s+(\w+)\s+(\S+)\s+`json:\"([^,\"]+)", body, re.M)}


@pytest.mark.skipif(not EG_REPO.is_dir(), reason=f"no envoyproxy/gateway mirror at {EG_REPO} (set GPU_BURST_MIRROR)")
def test_rate_limit_configuration_keys_exist_in_envoy_gateway_v1_9_0(managed):
    """EnvoyGateway `rateLimit` has no CRD (it is the controller's own configuration file): its keys are checked
    against the Go types at the pinned tag."""
    source = subprocess.run(["git", "--git-dir", str(EG_REPO), "show", "v1.9.0:api/v1alpha1/envoygateway_types.go"],
                            capture_output=True, text=True, check=True).stdout
    types = {"rateLimit": "RateLimit", "backend": "RateLimitDatabaseBackend", "redis": "RateLimitRedisSettings",
             "tls": "RedisTLSSettings"}
    rate, kube = _rate_limit_config(managed[0])

    def walk(value: dict, struct: str, at: str):
        fields = _go_json_fields(source, struct)
        for k, v in value.items():
            assert k in fields, f"{at}.{k} is not a field of {struct}: {sorted(fields)}"
            if isinstance(v, dict) and k in types:
                walk(v, types[k], f"{at}.{k}")

    walk(rate, "RateLimit", "rateLimit")
    infra = _go_json_fields(source, "EnvoyGatewayKubernetesInfrastructureConfiguration")
    assert set(kube) <= set(infra), sorted(infra)
    assert infra["rateLimitDeployment"] == "*KubernetesDeploymentSpec" and infra["rateLimitPDB"] == \
        "*KubernetesPodDisruptionBudgetSpec"


# -- ElastiCache --------------------------------------------------------------------------------------------------

def test_elasticache_is_valkey_multi_az_encrypted_and_authenticated(managed):
    mocks, _, cfg = managed
    rg = _inputs(mocks, "gpu-burst-rate-limit-cache")
    assert (rg["engine"], rg["engineVersion"]) == ("valkey", rl.VALKEY_ENGINE_VERSION)
    assert re.fullmatch(r"\d+\.\d+", rg["engineVersion"])  # pinned major.minor, never latest
    assert rg["nodeType"] == cfg.gateway.rate_limit.redis.node_type == "cache.t4g.micro"
    assert (rg["numCacheClusters"], rg["automaticFailoverEnabled"], rg["multiAzEnabled"]) == (2, True, True)
    assert (rg["transitEncryptionEnabled"], rg["transitEncryptionMode"]) == (True, "required")
    assert rg["atRestEncryptionEnabled"] is True and rg["port"] == 6379
    assert field_is_secret(mocks, "gpu-burst-rate-limit-cache", "authToken")
    assert 16 <= int(_inputs(mocks, "gpu-burst-rate-limit-auth")["length"]) <= 128  # ElastiCache AUTH token bounds
    subnets = _inputs(mocks, "gpu-burst-rate-limit-subnets")
    assert subnets["subnetIds"] == ["subnet-1"]  # the cluster's private subnets (test Foundation)
    assert rg["subnetGroupName"] == mocks.state("gpu-burst-rate-limit-subnets")["name"]
    assert rg["securityGroupIds"] == [_sg_id()]


SG_DESCRIPTION = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}")
"""EC2 CreateSecurityGroup `Description`: 'Valid characters: a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{}!$*'."""
SG_RULE_DESCRIPTION = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=;{}!$*]{0,255}")
"""EC2 security group rule `Description`: the same characters without '&'."""


def test_security_group_descriptions_use_only_the_characters_ec2_accepts(managed):
    mocks, _, _ = managed
    sg = _inputs(mocks, "gpu-burst-rate-limit-sg")
    assert SG_DESCRIPTION.fullmatch(sg["description"]), sg["description"]
    rule = _inputs(mocks, "gpu-burst-rate-limit-from-nodes")
    assert SG_RULE_DESCRIPTION.fullmatch(rule["description"]), rule["description"]


def _sg_id() -> str:
    """The id the mock EC2 gives the Redis security group."""
    from pulumi_mocks import suffix

    return f"sg-{suffix('gpu-burst-rate-limit-sg')}0000000000"


def test_elasticache_is_reachable_only_from_the_cluster_security_group_on_6379(managed):
    mocks, _, _ = managed
    sg = _inputs(mocks, "gpu-burst-rate-limit-sg")
    assert sg["vpcId"] == "vpc-1"
    assert "ingress" not in sg and "egress" not in sg  # no inline rules, and no egress at all
    rules = [r for r in mocks.created if r.typ.startswith("aws:vpc/securityGroup") or
             r.typ == "aws:ec2/securityGroupRule:SecurityGroupRule"]
    ours = [r for r in rules if r.name.startswith("gpu-burst-rate-limit")]
    assert [(r.typ, _inputs(mocks, r.name)) for r in ours] == [(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        {"securityGroupId": _sg_id(), "referencedSecurityGroupId": CLUSTER_SG, "ipProtocol": "tcp",
         "fromPort": 6379, "toPort": 6379, "description": "Redis (TLS) from the EKS cluster security group",
         "tags": {"gpu-burst:environment": "prod", "gpu-burst.io/component": "rate-limit-redis"}})]


# -- in cluster ------------------------------------------------------------------------------------------------------

def test_in_cluster_valkey_is_pinned_tls_only_and_passes_the_restricted_profile(in_cluster):
    mocks, _, _ = in_cluster
    ns = as_object(mocks.named("gpu-burst-rate-limit-namespace"))
    assert ns["metadata"]["name"] == rl.IN_CLUSTER_NAMESPACE
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    dep = as_object(mocks.named("gpu-burst-rate-limit-valkey"))
    assert strict_core_errors(dep, "V1Deployment") == []
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert re.fullmatch(r"valkey/valkey:\d+\.\d+\.\d+-alpine", c["image"]) and c["image"] == rl.VALKEY_IMAGE
    assert c["image"].split(":")[1].startswith(rl.VALKEY_ENGINE_VERSION + ".")  # same minor as the managed engine
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == rl.VALKEY_UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}
    assert pod["nodeSelector"] == {"gpu-burst.io/node-role": "system"}
    assert pod["automountServiceAccountToken"] is False
    assert not any("hostPath" in v for v in pod["volumes"]) and not pod.get("hostNetwork")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    svc = as_object(mocks.named("gpu-burst-rate-limit-service"))
    assert strict_core_errors(svc, "V1Service") == []
    assert svc["metadata"]["name"] == rl.IN_CLUSTER_SERVICE and svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()


def test_in_cluster_valkey_listens_only_on_tls_and_requires_its_password():
    conf = rl.valkey_conf("pw").splitlines()
    assert "port 0" in conf and "tls-port 6379" in conf and "requirepass pw" in conf
    assert {"tls-cert-file /tls/tls.crt", "tls-key-file /tls/tls.key", "tls-ca-cert-file /tls/ca.crt"} <= set(conf)
    assert "appendonly no" in conf and 'save ""' in conf


def test_in_cluster_certificates_chain_to_the_ca_handed_to_the_rate_limit_service(in_cluster):
    mocks, _, _ = in_cluster
    ca = _inputs(mocks, "gpu-burst-rate-limit-ca")
    assert ca["isCaCertificate"] is True and set(ca["allowedUses"]) == {"cert_signing", "crl_signing"}
    cert = _inputs(mocks, "gpu-burst-rate-limit-server-cert")
    assert "server_auth" in cert["allowedUses"] and cert["earlyRenewalHours"] < cert["validityPeriodHours"]
    ca_pem = mocks.state("gpu-burst-rate-limit-ca")["certPem"]
    assert cert["caCertPem"] == ca_pem
    assert _inputs(mocks, "gpu-burst-rate-limit-tls")["stringData"]["ca.crt"] == ca_pem
    assert _inputs(mocks, "gpu-burst-edge-rate-limit-redis")["stringData"][eg.RATE_LIMIT_CA_KEY] == ca_pem


# -- secrets ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture, fields", [
    ("managed", [("gpu-burst-rate-limit-cache", "authToken"), ("gpu-burst-edge-rate-limit-redis", "stringData")]),
    ("in_cluster", [("gpu-burst-rate-limit-config", "stringData"), ("gpu-burst-rate-limit-tls", "stringData"),
                    ("gpu-burst-edge-rate-limit-redis", "stringData")]),
])
def test_redis_credentials_are_pulumi_secrets_wherever_they_are_registered(fixture, fields, request):
    mocks, out, _ = request.getfixturevalue(fixture)
    for name, field in fields:
        assert field_is_secret(mocks, name, field), (name, field)
    # and nowhere in plain text: not in any other input, not in the Envoy Gateway values
    password = "x" * int(_inputs(mocks, next(r.name for r in mocks.created if r.typ.startswith("random:")
                                                and r.name.startswith("gpu-burst-rate-limit")))["length"])
    secret_fields = set(fields)
    for r in mocks.created:
        obj = mocks.monitor.requests[r.name].object
        for f, v in obj.fields.items():
            if (r.name, f) in secret_fields:
                continue
            from test_workload_support import _contains_secret
            if _contains_secret(v):
                continue
            assert password not in str(v), (r.name, f)


# -- order -----------------------------------------------------------------------------------------------------------

def test_turning_global_limits_on_restarts_envoy_gateway_before_the_policy_that_needs_them(managed, no_budget):
    """Envoy Gateway refuses a global rule while its configuration has no rate limit, and rereads a changed
    ConfigMap only after the kubelet syncs it: a pod annotation rolls it when the mode changes, and the traffic
    policy waits for the release."""
    on = _eg_values(managed[0])["deployment"]["pod"]
    off = _eg_values(no_budget[0])["deployment"]["pod"]
    assert on["annotations"] == {eg.RATE_LIMIT_MODE_ANNOTATION: "global"} and "annotations" not in off
    assert "gpu-burst-edge-envoy-gateway-release" in dependency_names(managed[0], "gpu-burst-edge-limits")


def test_redis_exists_before_the_envoy_gateway_configuration_that_points_at_it(managed, in_cluster):
    release = "gpu-burst-edge-envoy-gateway-release"
    # created first, deleted last: the release depends on what serves the URL it carries
    assert "gpu-burst-rate-limit-cache" in dependency_names(managed[0], release)
    assert {"gpu-burst-rate-limit-valkey", "gpu-burst-rate-limit-service"} <= dependency_names(in_cluster[0], release)
    assert "gpu-burst-rate-limit-from-nodes" in dependency_names(managed[0], "gpu-burst-rate-limit-cache")
    # The credentials Secret lives in the namespace the release creates.
    for mocks in (managed[0], in_cluster[0]):
        assert release in dependency_names(mocks, "gpu-burst-edge-rate-limit-redis")
    dev = in_cluster[0]
    assert {"gpu-burst-rate-limit-namespace", "gpu-burst-rate-limit-tls", "gpu-burst-rate-limit-config"} <= \
        dependency_names(dev, "gpu-burst-rate-limit-valkey")


# -- capacity and the component's own checks -------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", ["managed", "in_cluster"])
def test_the_capacity_model_counts_the_rate_limit_pods(fixture, request):
    mocks, _, cfg = request.getfixturevalue(fixture)
    from stacks.config.capacity import parse_cpu_m, parse_memory_mi

    _, kube = _rate_limit_config(mocks)
    dep = kube["rateLimitDeployment"]
    edge = next(a for a in capacity.SYSTEM_ADDONS if a.name == "eg").pods(cfg)
    (ratelimit,) = [p for p in edge if p.name == "envoy-ratelimit"]
    req = dep["container"]["resources"]["requests"]
    assert (ratelimit.cpu_m, ratelimit.memory_mi, ratelimit.replicas) == (
        parse_cpu_m(req["cpu"]), parse_memory_mi(req["memory"]), dep["replicas"])
    valkey = next(a for a in capacity.SYSTEM_ADDONS if a.name == "gpu-burst-rate-limit-valkey").pods(cfg)
    rendered = [as_object(r) for r in of_kind(mocks, "Deployment") if r.name == "gpu-burst-rate-limit-valkey"]
    if rendered:
        (c,) = rendered[0]["spec"]["template"]["spec"]["containers"]
        assert [(p.cpu_m, p.memory_mi) for p in valkey] == [
            (parse_cpu_m(c["resources"]["requests"]["cpu"]), parse_memory_mi(c["resources"]["requests"]["memory"]))]
    else:
        assert valkey == []


def test_token_budgets_without_a_redis_are_refused_by_the_component(mocks):
    from components.edge_gateway import EdgeGateway

    with pytest.raises(Exception, match="token budgets need rate_limit_redis"):
        evaluate(lambda: EdgeGateway("e", {
            "namespace": "inference", "model_names": ["m"], "interceptor_service": "svc",
            "interceptor_namespace": "keda", "interceptor_port": 8080, "hold_seconds": 900,
            "response_header_seconds": 600, "allowed_cidrs": ["10.0.0.0/8"], "key_names": [],
            "requests_per_minute": {"default": 60}, "tokens_per_day": {"default": 1000}, "scrape": False}))


def test_the_redis_secret_goes_where_the_installed_envoy_gateway_runs(mocks):
    """The envoy-ratelimit pods run in Envoy Gateway's namespace, which a library user may choose."""
    from components.edge_gateway import EdgeGateway

    evaluate(lambda: EdgeGateway("e", {
        "namespace": "inference", "model_names": ["m"], "interceptor_service": "svc",
        "interceptor_namespace": "keda", "interceptor_port": 8080, "hold_seconds": 900,
        "response_header_seconds": 600, "allowed_cidrs": ["10.0.0.0/8"], "key_names": [],
        "requests_per_minute": {"default": 60}, "tokens_per_day": {"default": 1000}, "scrape": False,
        "envoy_gateway_namespace": "edge-system",
        "rate_limit_redis": {"url": "redis.example:6379", "password": "p"}}))
    secret = as_object(mocks.named("e-rate-limit-redis"))
    assert secret["metadata"]["namespace"] == "edge-system"


def test_the_usage_rules_know_each_keys_daily_budget(managed, no_budget):
    """The daily budgets the edge enforces are the ones the usage rules record and alert on (80% of a day)."""
    from components.usage import BUDGET, KEY_LABEL

    def budgets(mocks):
        (rule,) = [as_object(r) for r in of_kind(mocks, "PrometheusRule") if r.name.startswith("gpu-burst-usage")]
        return {r["labels"][KEY_LABEL]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]
                if r.get("record") == BUDGET}

    mocks, _, cfg = managed
    assert budgets(mocks) == {k: f"vector({p.tokens_per_day})" for k, p in cfg.key_policies.items()
                              if p.tokens_per_day}
    assert budgets(no_budget[0]) == {}


@pytest.mark.parametrize("args, expected", [
    ({}, {"gpu-burst.io/node-role": "system"}),
    ({"node_selector": {"role": "infra"}}, {"role": "infra"}),
    # An existing cluster without `cluster.systemNodeSelector`: any node, as for every other controller.
    ({"node_selector": {}}, {}),
], ids=["default", "chosen", "none"])
def test_the_in_cluster_valkey_runs_where_the_caller_places_controllers(mocks, args, expected):
    evaluate(lambda: rl.InClusterRedis("r", args))
    pod = as_object(mocks.named("r-valkey"))["spec"]["template"]["spec"]
    assert pod.get("nodeSelector", {}) == expected
