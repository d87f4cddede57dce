"""EdgeGateway: the OpenAI-compatible front door. Envoy Gateway v1.9 + Envoy AI Gateway v1.1 behind an NLB made by
the AWS Load Balancer Controller; API keys are checked, limits applied and the model is read from the JSON body at
the edge, before the request reaches the KEDA HTTP add-on interceptor (the internal hop that holds it during a cold
start). vLLM only accepts an internal credential that the edge injects.

Request path of one model (also exposed as `request_paths`):
  NLB → Envoy (SecurityPolicy apiKeyAuth → AI Gateway ext_proc sets `x-ai-eg-model` from the body `model` →
  the key's model scope (SecurityPolicy authorization) → per-key rate limit and token budget, local or global in
  Redis) → AIGatewayRoute rule `x-ai-eg-model == <name>` → AIServiceBackend → Backend (interceptor FQDN) →
  InterceptorRoute matching `x-ai-eg-model: <name>` → the model's Service → vLLM (Authorization: internal key).
"""

import json
import shlex
from dataclasses import dataclass
from typing import Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
from typing_extensions import NotRequired

from ._common import SYSTEM_NODE_SELECTOR, child, deps_of, labels, pinned_release, token
from .load_balancer_controller import LOAD_BALANCER_CLASS
from .model_route import MAX_RULES_PER_ROUTE, MODEL_HEADER, ModelRoute, RoutedAdapterArgs, rule_names
from .model_service import API_KEY_SECRET_KEY

API_KEY_ENV = "GPU_BURST_API_KEY"
"""Environment variable every example reads the client key from; no output embeds a key."""
GENERATED_KEY_NAME = "default"
"""Name of the key generated when `gpu-burst:apiKeys` is not set."""

# -- upstream names (each cited where it is defined) ---------------------------------------------------------------
EG_CHART = "oci://docker.io/envoyproxy/gateway-helm"
EG_CRDS_CHART = "oci://docker.io/envoyproxy/gateway-crds-helm"
"""Envoy Gateway's CRD chart, published with gateway-helm at the same version: its CRDs are templates, so they follow
every version change (gateway-helm ships them in crds/, which Helm installs once and never upgrades)."""
AIGW_CRDS_CHART = "oci://docker.io/envoyproxy/ai-gateway-crds-helm"
AIGW_CHART = "oci://docker.io/envoyproxy/ai-gateway-helm"
EG_NAMESPACE = "envoy-gateway-system"
AIGW_NAMESPACE = "envoy-ai-gateway-system"
AIGW_CONTROLLER = "ai-gateway-controller"
"""`controller.fullnameOverride` default of ai-gateway-helm v1.1.0 (manifests/charts/ai-gateway-helm/values.yaml):
the Service name Envoy Gateway's extension manager calls."""
AIGW_EXTENSION_PORT = 1063
"""The controller's `grpc` Service port (same values.yaml), the extension server Envoy Gateway talks to."""
CONTROLLER_NAME = "gateway.envoyproxy.io/gatewayclass-controller"
CLIENT_ID_HEADER = "x-gpu-burst-key"
"""Header the API-key filter writes with the *name* of the matched key (SecurityPolicy forwardClientIDHeader); the
per-key rate limits and the per-key metrics read it. The key itself is stripped (sanitize)."""
MAX_SCOPE_VALUES = 256
"""Most values one header match of a SecurityPolicy authorization rule holds (envoyproxy/gateway@v1.9.0
api/v1alpha1/authorization_types.go AuthorizationHeaderMatch.Values): the served names of one scoped key, and the
names of the keys without a scope."""
SCOPE_DENIED_STATUS = 403
"""What a valid key gets for a model outside its scope: Envoy's RBAC filter answers 403, which is also what OpenAI
answers when a project may not use a model (docs/workload.md, Keys scoped to models)."""
KEY_ATTRIBUTE = "gpu_burst.key"
"""Metric attribute the AI Gateway records from CLIENT_ID_HEADER (Prometheus label `gpu_burst_key`)."""
ENVOY_METRICS_PORT = "metrics"
"""Envoy proxy container port serving /stats/prometheus (envoyproxy/gateway@v1.9.0 proxy resource)."""
AIGW_METRICS_PORT = "aigw-admin"
"""Port of the AI Gateway ext_proc sidecar serving /metrics with the gen_ai.* metrics
(envoyproxy/ai-gateway@v1.1.0: internal/controller/extproc_builder.go, examples/monitoring/monitoring.yaml)."""
PROXY_POD_LABELS = {"app.kubernetes.io/name": "envoy", "app.kubernetes.io/component": "proxy",
                    "app.kubernetes.io/managed-by": "envoy-gateway"}
"""Labels Envoy Gateway puts on the Envoy pods it deploys."""
OWNING_GATEWAY_NAME_LABEL = "gateway.envoyproxy.io/owning-gateway-name"
OWNING_GATEWAY_NAMESPACE_LABEL = "gateway.envoyproxy.io/owning-gateway-namespace"
"""Labels Envoy Gateway adds to the Envoy pods of one Gateway (envoyproxy/gateway@v1.9.0
internal/gatewayapi/translator.go); with PROXY_POD_LABELS they are its own Service's selector."""
PRIVILEGED_PORT_SHIFT = 10000
"""Envoy listens on listener port + 10000 when the listener port is below 1024 (envoyproxy/gateway@v1.9.0
internal/gatewayapi/listener.go servicePortToContainerPort), so it needs no CAP_NET_BIND_SERVICE."""
NLB_DELETE_TIMEOUT = "20m"
"""How long `pulumi destroy` waits for the LBC to delete the NLB, its target groups and security groups (the NLB's
network interfaces can hold its security group for minutes) before it reports the Service as not deleted."""
INTERCEPTOR_SELECTOR = {"app.kubernetes.io/component": "interceptor", "app.kubernetes.io/name": "http-add-on"}
"""Pod labels of the http-add-on chart's interceptor."""
INTERCEPTOR_METRICS_PORT = 2223
"""The interceptor's Prometheus endpoint (OTel exporter, `OTEL_PROM_EXPORTER_PORT`); chart 0.15.0 has no Service for
it, so this component adds one for the held-requests panel and the no-replica alert."""

_LB = "service.beta.kubernetes.io/aws-load-balancer-"
NLB_MAX_IDLE_SECONDS = 6000
"""Upper bound of the NLB TCP listener attribute tcp.idle_timeout.seconds (60-6000, AWS ELB docs
network/update-idle-timeout)."""
NLB_TLS_IDLE_SECONDS = 350
"""Idle timeout of NLB TLS listeners: fixed, not configurable (same AWS page)."""
NLB_TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
"""TLS 1.2/1.3 only on the NLB's TLS listener. The LBC's default, ELBSecurityPolicy-2016-08
(kubernetes-sigs/aws-load-balancer-controller@v3.5.0 pkg/config/controller_config.go defaultSSLPolicy), still accepts
TLS 1.0 and 1.1 on an endpoint that carries API keys."""
TCP_KEEPALIVE_IDLE_SECONDS = 60
"""Envoy sends TCP keepalives on idle downstream connections after this long, well inside the NLB's 350 s TLS-listener
idle timeout (keepalives reset the NLB idle timer, AWS ELB docs network-load-balancers#connection-idle-timeout)."""
EXTPROC_CPU, EXTPROC_MEMORY = "100m", "128Mi"
"""Requests of the AI Gateway ext_proc sidecar in each Envoy pod (set through a GatewayConfig)."""
ENVOY_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
"""Requests of the envoy container of each Envoy pod (EnvoyProxy)."""
EG_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
"""Requests of each Envoy Gateway controller replica."""
AIGW_REQUESTS = {"cpu": "50m", "memory": "128Mi"}
"""Requests of each AI Gateway controller replica."""
GATEWAY_CONFIG_ANNOTATION = "aigateway.envoyproxy.io/gateway-config"
READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"
"""Namespace label that makes the LBC's pod webhook add a readiness gate (target healthy in the NLB) to the Envoy pods
(kubernetes-sigs/aws-load-balancer-controller@v3.5.0 docs/deploy/pod_readiness_gate.md)."""
MARGIN_SECONDS = 60
"""Slack between hops so the inner hop always gives up first, with a clear error, before an outer one cuts."""
STREAM_SECONDS = 3600
"""How long a response may keep streaming after its first byte before the route's total timeout ends it."""
REQUEST_BODY_LIMIT = "50Mi"
"""Largest request body the edge takes (connection buffer and the request buffer filter); larger gets 413."""
MIN_DRAIN_SECONDS = 60
"""Envoy keeps accepting for at least this long after its pod starts terminating, while the LBC deregisters the IP
target and the NLB stops opening new flows to it (EnvoyProxy shutdown.minDrainDuration; upstream default 10 s)."""

# -- rate limits and token budgets ---------------------------------------------------------------------------------
MAX_LOCAL_RULES = 16
"""BackendTrafficPolicy rateLimit.local.rules maxItems (envoyproxy/gateway@v1.9.0 api/v1alpha1/ratelimit_types.go)."""
MAX_GLOBAL_RULES = 256
"""BackendTrafficPolicy rateLimit.global.rules maxItems (same file)."""
RETRY_AFTER_SECONDS = 60
"""Retry-After of every 429: a minute window (requests or tokens per minute) refills within it; a spent daily budget
keeps answering 429 until 00:00 UTC."""
TOKEN_COST_NAMESPACE = "io.envoy.ai_gateway"
"""Dynamic-metadata namespace the AI Gateway writes request costs to at the end of a response
(envoyproxy/ai-gateway@v1.1.0 api/v1beta1/shared_types.go AIGatewayFilterMetadataNamespace)."""
TOTAL_TOKENS_KEY = "llm_total_token"
"""Metadata key of a response's input + output tokens, declared by the GatewayConfig's globalLLMRequestCosts."""
RATE_LIMIT_TIMEOUT = "250ms"
"""How long Envoy waits for the rate-limit service before failing open or closed."""
RATE_LIMIT_SECRET = "gpu-burst-rate-limit-redis"
"""Secret in Envoy Gateway's namespace with the Redis password (and the CA of an in-cluster Redis), read by the
envoy-ratelimit pods Envoy Gateway deploys there. A fixed name: the Envoy Gateway values refer to it."""
RATE_LIMIT_AUTH_KEY = "auth"
RATE_LIMIT_CA_KEY = "ca.crt"
RATE_LIMIT_CERTS_VOLUME = "redis-certs"
"""Envoy Gateway mounts a volume of this name at /redis-certs whenever the Redis backend has `tls`, but declares it
only with a client certificate (envoyproxy/gateway@v1.9.0 internal/infrastructure/kubernetes/ratelimit/resource.go):
the edge declares it itself."""
RATE_LIMIT_CERTS_DIR = "/redis-certs"
RATELIMIT_REQUESTS = {"cpu": "25m", "memory": "64Mi"}
"""Requests of each envoy-ratelimit replica (EnvoyGateway provider.kubernetes.rateLimitDeployment)."""
RATE_LIMIT_MODE_ANNOTATION = "gpu-burst.io/rate-limit"
"""Pod annotation of the Envoy Gateway controller that changes when global rate limits are turned on or off."""


@dataclass(frozen=True)
class HopTimeouts:
    """Every timeout on the request path, derived from one value: the interceptor's hold (readiness) budget."""

    hold_seconds: int
    """Interceptor readiness timeout: how long a request waits for a replica (cold start)."""
    first_byte_seconds: int
    """Hold + the interceptor's response-header timeout: the longest a request can be silent before its first byte."""
    silence_seconds: int
    """First byte + margin: Envoy's stream/connection idle timeouts, the route's per-try idle and the NLB idle."""
    request_seconds: int
    """Route total: silence + a long stream."""


def hop_timeouts(hold_seconds: int, response_header_seconds: int) -> HopTimeouts:
    """Timeouts of every hop from the hold budget; each outer hop waits longer than the one inside it."""
    first = int(hold_seconds) + int(response_header_seconds)
    silence = first + MARGIN_SECONDS
    return HopTimeouts(hold_seconds=int(hold_seconds), first_byte_seconds=first, silence_seconds=silence,
                       request_seconds=silence + STREAM_SECONDS)


def gw_duration(seconds: int) -> str:
    """A Gateway API / Envoy Gateway duration (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)."""
    return f"{int(seconds)}s"


def ai_gateway_eg_config(ai_controller_host: str) -> dict:
    """The Envoy Gateway `config.envoyGateway` the AI Gateway requires (envoyproxy/ai-gateway@v1.1.0:
    manifests/envoy-gateway-values.yaml): Backend API, extension manager hooks on every xDS kind, and the extension
    server address."""
    return {
        "gateway": {"controllerName": CONTROLLER_NAME},
        "logging": {"level": {"default": "info"}},
        "provider": {"type": "Kubernetes"},
        "extensionApis": {"enableEnvoyPatchPolicy": True, "enableBackend": True},
        "extensionManager": {
            "hooks": {"xdsTranslator": {
                "translation": {k: {"includeAll": True} for k in ("listener", "route", "cluster", "secret")},
                "post": ["Translation", "Cluster", "Route"]}},
            "service": {"fqdn": {"hostname": ai_controller_host, "port": AIGW_EXTENSION_PORT}},
        },
    }


def envoy_gateway_crds_values() -> dict:
    """gateway-crds-helm v1.9.0 values (charts/gateway-crds-helm/values.yaml): what gateway-helm's crds/ holds, the
    experimental-channel Gateway API CRDs (with the safe-upgrades admission policy) and Envoy Gateway's own CRDs."""
    return {"crds": {"gatewayAPI": {"enabled": True, "channel": "experimental"}, "envoyGateway": {"enabled": True}}}


def rate_limit_eg_config(redis_url: pulumi.Input[str], fail_open: bool, replicas: int, node_selector: dict,
                         with_ca: bool) -> dict:
    """The EnvoyGateway `rateLimit` and `provider.kubernetes.rateLimitDeployment` (envoyproxy/gateway@v1.9.0
    api/v1alpha1/envoygateway_types.go): the envoy-ratelimit pods on the system nodes, counting in the Redis at
    `redis_url` (host:port) over TLS with the password of RATE_LIMIT_SECRET; `with_ca`: the server's certificate is
    signed by the CA in that Secret rather than a public one. The image stays the chart's pin."""
    env = [{"name": "REDIS_AUTH", "valueFrom": {"secretKeyRef": {"name": RATE_LIMIT_SECRET,
                                                                 "key": RATE_LIMIT_AUTH_KEY}}}]
    if with_ca:
        env.append({"name": "REDIS_TLS_CACERT", "value": f"{RATE_LIMIT_CERTS_DIR}/{RATE_LIMIT_CA_KEY}"})
        certs = {"secret": {"secretName": RATE_LIMIT_SECRET,
                            "items": [{"key": RATE_LIMIT_CA_KEY, "path": RATE_LIMIT_CA_KEY}]}}
    else:
        certs = {"emptyDir": {}}
    deployment = {
        "replicas": replicas,
        "pod": {"nodeSelector": dict(node_selector), "volumes": [{"name": RATE_LIMIT_CERTS_VOLUME, **certs}]},
        "container": {"resources": {"requests": dict(RATELIMIT_REQUESTS), "limits": {"memory": "256Mi"}},
                      "env": env},
    }
    kubernetes = {"rateLimitDeployment": deployment}
    if replicas >= 2:
        kubernetes["rateLimitPDB"] = {"minAvailable": 1}
    return {
        # `tls` turns on REDIS_TLS (the system roots verify ElastiCache; REDIS_TLS_CACERT adds an in-cluster CA).
        "rateLimit": {"backend": {"type": "Redis", "redis": {"url": redis_url, "tls": {}}},
                      # Envoy answers 500 while the rate-limit service cannot answer, instead of letting requests pass.
                      "failClosed": not fail_open,
                      # Envoy's default (20 ms) is short for a TLS Redis in another AZ behind the rate-limit service.
                      "timeout": RATE_LIMIT_TIMEOUT},
        "provider": {"type": "Kubernetes", "kubernetes": kubernetes},
    }


def token_costs() -> list:
    """GatewayConfig globalLLMRequestCosts: every route of the Gateway, whoever declared it, records the tokens of
    each response where the global rate limit reads its response cost."""
    return [{"metadataKey": TOTAL_TOKENS_KEY, "type": "TotalToken"}]


def envoy_gateway_values(replicas: int, node_selector: dict, rate_limit: Optional[dict] = None) -> dict:
    """gateway-helm v1.9.0 values (keys from charts/gateway-helm/values.tmpl.yaml); `rate_limit`: the output of
    :func:`rate_limit_eg_config` (global rate limits), merged into the Envoy Gateway configuration."""
    host = f"{AIGW_CONTROLLER}.{AIGW_NAMESPACE}.svc.cluster.local"
    eg_config = ai_gateway_eg_config(host)
    if rate_limit:
        eg_config = {**eg_config, **rate_limit}
    return {
        # The CRDs and the safe-upgrades policy come from gateway-crds-helm (the upstream switch for that case).
        "crds": {"enabled": False},
        "config": {"envoyGateway": eg_config},
        "deployment": {
            "replicas": replicas,
            # Envoy Gateway rejects a global rule until its configuration has a rate limit, and it rereads a changed
            # ConfigMap only after the kubelet syncs it: switching restarts it, so the release is done only once
            # pods with the new configuration run (the traffic policy waits for the release).
            "pod": {"nodeSelector": dict(node_selector),
                    **({"annotations": {RATE_LIMIT_MODE_ANNOTATION: "global"}} if rate_limit else {})},
            "envoyGateway": {"resources": {"requests": dict(EG_REQUESTS),
                                           "limits": {"memory": "1024Mi"}}},
        },
        "podDisruptionBudget": {"minAvailable": 1 if replicas >= 2 else 0},
    }


def ai_gateway_values(replicas: int, node_selector: dict, envoy_gateway_namespace: str = EG_NAMESPACE) -> dict:
    """ai-gateway-helm v1.1.0 values (keys from manifests/charts/ai-gateway-helm/values.yaml)."""
    return {
        "controller": {
            "replicaCount": replicas,
            "nodeSelector": dict(node_selector),
            "resources": {"requests": dict(AIGW_REQUESTS), "limits": {"memory": "512Mi"}},
            "podDisruptionBudget": {"enabled": replicas >= 2, "minAvailable": 1},
            # The key *name* (never the key) and the model become metric labels: usage per key and per model.
            "metricsRequestHeaderAttributes": f"{CLIENT_ID_HEADER}:{KEY_ATTRIBUTE}",
        },
        "envoyGateway": {"namespace": envoy_gateway_namespace},
    }


def nlb_annotations(public: bool, certificate_arn: Optional[str], port: int, idle_seconds: int) -> dict:
    """AWS Load Balancer Controller v3.5.0 Service annotations (docs/guide/service/annotations.md)."""
    ann = {
        # IP targets: the Envoy pods (system nodes) are the targets, never a GPU node's kube-proxy.
        f"{_LB}nlb-target-type": "ip",
        f"{_LB}scheme": "internet-facing" if public else "internal",
        f"{_LB}attributes": "load_balancing.cross_zone.enabled=true",
    }
    if certificate_arn:
        ann[f"{_LB}ssl-cert"] = certificate_arn
        ann[f"{_LB}ssl-ports"] = str(port)
        ann[f"{_LB}ssl-negotiation-policy"] = NLB_TLS_POLICY
        ann[f"{_LB}backend-protocol"] = "tcp"
        # A TLS listener's idle timeout is fixed at 350 s: Envoy's TCP keepalives carry a silent cold start instead.
    else:
        ann[f"{_LB}listener-attributes.TCP-{port}"] = f"tcp.idle_timeout.seconds={idle_seconds}"
    return ann


def envoy_container_port(listener_port: int) -> int:
    """The port the Envoy container listens on for a Gateway listener port (the NLB Service's targetPort)."""
    port = int(listener_port)
    return port + PRIVILEGED_PORT_SHIFT if port < 1024 else port


def proxy_selector(gateway_namespace: str, gateway_name: str) -> dict:
    """Labels of the Envoy pods Envoy Gateway runs for one Gateway (not merged Gateways)."""
    return {**PROXY_POD_LABELS, OWNING_GATEWAY_NAMESPACE_LABEL: gateway_namespace,
            OWNING_GATEWAY_NAME_LABEL: gateway_name}


def _body(name: str, kind: str) -> dict:
    if kind == "chat":
        return {"model": name, "messages": [{"role": "user", "content": "Say hello in one sentence."}],
                "max_tokens": 64}
    return {"model": name, "prompt": "The capital of France is", "max_tokens": 16}


def curl_example(base_url: str, served_name: str, kind: str, max_time: int) -> str:
    """Ready-to-paste curl (model in the body, key from $GPU_BURST_API_KEY, no custom header)."""
    path = "/chat/completions" if kind == "chat" else "/completions"
    return (f"curl -sS --max-time {max_time} {base_url}{path} -H \"Authorization: Bearer ${API_KEY_ENV}\" "
            f"-H 'Content-Type: application/json' -d {shlex.quote(json.dumps(_body(served_name, kind)))}")


def python_example(base_url: str, served_name: str, timeout: int) -> str:
    """Ready-to-paste Python with the official openai SDK (key from the environment)."""
    return (
        "import os\nfrom openai import OpenAI\n\n"
        f"client = OpenAI(base_url={base_url!r}, api_key=os.environ[{API_KEY_ENV!r}], timeout={timeout})\n"
        f"resp = client.chat.completions.create(model={served_name!r}, "
        "messages=[{'role': 'user', 'content': 'Say hello in one sentence.'}], max_tokens=64)\n"
        "print(resp.choices[0].message.content)\n")


def _key_selector(key: str, counted_by_key: bool = False) -> list:
    headers = [{"name": CLIENT_ID_HEADER, "type": "Exact", "value": key}]
    if counted_by_key:
        # A global rule's Redis counter is named after its position in the list; the key name in the descriptor
        # keeps a key's count its own when keys or budgets are added and the positions shift.
        headers.append({"name": CLIENT_ID_HEADER, "type": "Distinct"})
    return [{"headers": headers}]


def rate_limit_rules(limits: dict) -> list:
    """Local rate-limit rules, one per key name, on the header the API-key filter sets from the matched key."""
    return [{"clientSelectors": _key_selector(key), "limit": {"requests": int(rpm), "unit": "Minute"}}
            for key, rpm in sorted(limits.items())]


def global_rate_limit_rules(requests_per_minute: dict, tokens_per_minute: dict, tokens_per_day: dict) -> list:
    """Global rate-limit rules per key name, counted in Redis for every Envoy replica and shared by every route of
    the Gateway (one bucket per key, not per model): requests per minute, and token budgets that only check on the
    request path (cost 0) and are charged the response's total tokens when it ends (the AI Gateway's cost
    metadata). A request is refused once a budget is spent, so the request that crosses it still completes."""
    rules = []
    for key in sorted(requests_per_minute):
        rules.append({"clientSelectors": _key_selector(key, counted_by_key=True), "shared": True,
                      "limit": {"requests": int(requests_per_minute[key]), "unit": "Minute"}})
        for budgets, unit in ((tokens_per_minute, "Minute"), (tokens_per_day, "Day")):
            if key in budgets:
                rules.append({
                    "clientSelectors": _key_selector(key, counted_by_key=True), "shared": True,
                    "limit": {"requests": int(budgets[key]), "unit": unit},
                    "cost": {"request": {"from": "Number", "number": 0},
                             "response": {"from": "Metadata", "metadata": {"namespace": TOKEN_COST_NAMESPACE,
                                                                           "key": TOTAL_TOKENS_KEY}}}})
    return rules


def route_chunks(models: list, adapters: list) -> list[list[str]]:
    """The models, in order, cut into routes of at most MAX_RULES_PER_ROUTE rules, a model's adapters counted with it
    (without adapters: 15 models per route, as before adapters existed)."""
    chunks, rules = [], 0
    for m in models:
        n = len(rule_names([m], adapters))
        if not chunks or rules + n > MAX_RULES_PER_ROUTE:
            chunks.append([])
            rules = 0
        chunks[-1].append(m)
        rules += n
    return chunks


def openai_error(message: str, kind: str, code: str) -> str:
    """An OpenAI-shaped error body, so SDKs print a readable message."""
    return json.dumps({"error": {"message": message, "type": kind, "code": code}})


class RateLimitRedisArgs(TypedDict):
    """The Redis that holds the global rate-limit counters."""

    url: pulumi.Input[str]
    """host:port of the primary, reached over TLS."""
    password: pulumi.Input[str]
    """Its password (a Pulumi secret)."""
    ca_pem: NotRequired[pulumi.Input[str]]
    """PEM CA of its server certificate when that is not publicly trusted (an in-cluster Redis)."""
    fail_open: NotRequired[bool]
    """While the rate-limit service cannot answer: true lets requests pass, false answers 500. Default true."""


def key_scope_problems(key_names: list, key_models: dict) -> list[str]:
    """Why `key_models` (key name → served names it may call) cannot scope the keys `key_names` ([] when it can)."""
    out = []
    strangers = sorted(set(key_models) - set(key_names))
    if strangers:
        out.append(f"key_models names keys {strangers} that are not API keys; allowed: {', '.join(key_names)}")
    for key, models in sorted(key_models.items()):
        if not 1 <= len(set(models)) <= MAX_SCOPE_VALUES:
            out.append(f"key '{key}' may call {len(set(models))} models; allowed: 1 to {MAX_SCOPE_VALUES} served "
                       "names (leave the key out to let it call every model)")
    if len(set(key_names) - set(key_models)) > MAX_SCOPE_VALUES:
        out.append(f"{len(set(key_names) - set(key_models))} keys without a scope; allowed: at most "
                   f"{MAX_SCOPE_VALUES} (scope some of them)")
    return out


def key_scope_authorization(key_names: list, key_models: dict) -> Optional[dict]:
    """SecurityPolicy `authorization` that lets each key in `key_models` call only its served names, and every other
    key every model; None when no key is scoped.

    Envoy Gateway renders it as the RBAC filter, which runs after the AI Gateway's ext_proc has set `x-ai-eg-model`
    from the body (and re-selected the route) and before the router: the model checked is the one the request is
    routed by, whichever route or program declared it, and a refused request never reaches the interceptor. Rules
    match in order; anything they do not allow is denied."""
    if not key_models:
        return None
    rules = [{"name": f"key-{key}", "action": "Allow", "principal": {"headers": [
        {"name": CLIENT_ID_HEADER, "values": [key]},
        {"name": MODEL_HEADER, "values": sorted(set(models))}]}} for key, models in sorted(key_models.items())]
    unscoped = sorted(set(key_names) - set(key_models))
    if unscoped:
        rules.append({"name": "keys-without-scope", "action": "Allow",
                      "principal": {"headers": [{"name": CLIENT_ID_HEADER, "values": unscoped}]}})
    return {"rules": rules, "defaultAction": "Deny"}


def scope_denied_override() -> dict:
    """The BackendTrafficPolicy responseOverride that words the edge's own 403 (a key outside its scope) as OpenAI
    does for a project that may not use a model (the openai SDK raises PermissionDeniedError)."""
    return {"source": "Local", "match": {"statusCodes": [{"type": "Value", "value": SCOPE_DENIED_STATUS}]},
            "response": {"contentType": "application/json", "body": {"type": "Inline", "inline": openai_error(
                "This API key does not have access to the requested model.", "invalid_request_error",
                "model_not_found")}}}


class EdgeGatewayArgs(TypedDict):
    """Inputs of the EdgeGateway."""

    namespace: pulumi.Input[str]
    """Namespace of the Gateway, routes, policies and key Secrets (the models' namespace: the internal key Secret is
    read there by both the AI Gateway and vLLM)."""
    model_names: list[str]
    """Served names; one route rule each, in this order."""
    adapters: NotRequired[list[RoutedAdapterArgs]]
    """LoRA adapters of those models: a rule each, in its model's route right after the model's rule."""
    interceptor_service: pulumi.Input[str]
    """Name of the interceptor proxy Service (ClusterIP)."""
    interceptor_namespace: pulumi.Input[str]
    """Namespace of the interceptor."""
    interceptor_port: int
    """Port of the interceptor proxy Service."""
    hold_seconds: int
    """The interceptor's hold (readiness) budget; every other timeout derives from it."""
    response_header_seconds: int
    """The interceptor's response-header timeout once the backend is ready."""
    allowed_cidrs: pulumi.Input[list[str]]
    """loadBalancerSourceRanges of the NLB."""
    key_names: list[str]
    """Names of the client API keys (not secret); empty: one key named `default` is generated."""
    requests_per_minute: dict[str, int]
    """Requests per minute per key name (every name in `key_names`, or `default`)."""
    tokens_per_minute: NotRequired[dict[str, int]]
    """Per key name: input + output tokens per minute (needs `rate_limit_redis`)."""
    tokens_per_day: NotRequired[dict[str, int]]
    """Per key name: input + output tokens per UTC day (needs `rate_limit_redis`)."""
    rate_limit_redis: NotRequired[RateLimitRedisArgs]
    """Redis for global limits: every limit is then counted across all Envoy replicas and all routes."""
    key_models: NotRequired[dict[str, list[str]]]
    """Key name → the served names it may call (any name a route on this Gateway matches: this stack's models,
    models other programs add, adapter names); a key left out may call every model. Any other model gets 403 at
    the edge, before the interceptor. Default: every key may call every model."""
    api_keys: NotRequired[pulumi.Input[dict[str, str]]]
    """Key name → key (a Pulumi secret). Required when `key_names` is not empty."""
    public: NotRequired[bool]
    """Internet-facing NLB (requires `certificate_arn`). Default internal."""
    certificate_arn: NotRequired[str]
    """ACM certificate: the NLB terminates TLS on 443."""
    domain: NotRequired[str]
    """DNS name clients use (you point it at the NLB); the endpoint uses it instead of the NLB's name."""
    envoy_chart_version: NotRequired[str]
    """gateway-helm version. Default v1.9.0."""
    ai_gateway_chart_version: NotRequired[str]
    """ai-gateway-helm / ai-gateway-crds-helm version. Default v1.1.0."""
    replicas: NotRequired[int]
    """Replicas of Envoy and of both controllers (≥ 2 gets a PodDisruptionBudget). Default 2."""
    node_selector: NotRequired[dict[str, str]]
    """nodeSelector of every edge pod. Default: the system node group."""
    scrape: NotRequired[bool]
    """PodMonitor/ServiceMonitor for Envoy, the AI Gateway and the interceptor (needs the Prometheus operator CRDs;
    pass the monitoring release in `opts.depends_on`). Default true."""
    monitor_labels: NotRequired[dict[str, str]]
    """More labels on those monitors: those a Prometheus that selects monitors by label needs. Default none."""
    install_envoy_gateway: NotRequired[bool]
    """Install Envoy Gateway; false: the cluster runs one (1.9+, configured for the AI Gateway: its extension
    manager and the Backend API). Default true."""
    install_ai_gateway: NotRequired[bool]
    """Install the Envoy AI Gateway (CRDs and controller); false: the cluster runs one (1.1+). Default true."""
    envoy_gateway_namespace: NotRequired[str]
    """Namespace where Envoy Gateway deploys the Envoy proxies and their Service. Default envoy-gateway-system (where
    the stack installs it); with an existing Envoy Gateway, the one it uses."""


@dataclass(frozen=True)
class _EdgePlan:
    """An EdgeGateway's arguments, checked and derived once, before any child is declared."""

    name: str
    args: EdgeGatewayArgs
    deps: list
    """The caller's `depends_on` (the LBC release among them), passed to each child."""
    public: bool
    cert: Optional[str]
    port: int
    """The Gateway listener's and the NLB's port: 443 with TLS at the NLB, else 80."""
    models: list
    adapters: list
    client_names: list
    """Every name a client may send as `model`: each model, then its adapters."""
    key_names: list
    scope: Optional[dict]
    """SecurityPolicy authorization of the keys scoped to models (None: every key may call every model)."""
    redis: Optional[RateLimitRedisArgs]
    tokens_per_minute: dict
    tokens_per_day: dict
    timeouts: HopTimeouts
    replicas: int
    node_selector: dict
    namespace: pulumi.Input[str]
    eg_namespace: str
    labels: dict
    interceptor_host: pulumi.Output[str]

    @property
    def has_token_budgets(self) -> bool:
        return bool(self.tokens_per_minute or self.tokens_per_day)


def _edge_plan(name: str, args: EdgeGatewayArgs, deps: list) -> _EdgePlan:
    """The EdgeGateway's arguments checked (ValueError naming the component) and what the steps derive from them."""
    public = bool(args.get("public", False))
    cert = args.get("certificate_arn")
    if public and not cert:
        raise ValueError(f"EdgeGateway '{name}': a public endpoint needs certificate_arn (TLS); the API keys "
                         "would cross the internet in clear text")
    models = list(args["model_names"])
    adapters = list(args.get("adapters", []))
    clients_names = rule_names(models, adapters)
    orphans = sorted(a["name"] for a in adapters if a["base"] not in models)
    if orphans:
        raise ValueError(f"EdgeGateway '{name}': adapters {orphans} name a base that is not in model_names")
    key_names = list(args["key_names"]) or [GENERATED_KEY_NAME]
    if args["key_names"] and args.get("api_keys") is None:
        raise ValueError(f"EdgeGateway '{name}': key_names given without api_keys")
    missing = sorted(set(key_names) - set(args["requests_per_minute"]))
    if missing:
        raise ValueError(f"EdgeGateway '{name}': no requests_per_minute for keys {missing}")
    redis = args.get("rate_limit_redis")
    tpm, tpd = dict(args.get("tokens_per_minute") or {}), dict(args.get("tokens_per_day") or {})
    if (tpm or tpd) and not redis:
        raise ValueError(f"EdgeGateway '{name}': token budgets need rate_limit_redis (they are counted across "
                         "every Envoy replica)")
    strangers = sorted((set(tpm) | set(tpd)) - set(key_names))
    if strangers:
        raise ValueError(f"EdgeGateway '{name}': token budgets for unknown keys {strangers}")
    key_models = {k: list(v) for k, v in (args.get("key_models") or {}).items()}
    scope_problems = key_scope_problems(key_names, key_models)
    if scope_problems:
        raise ValueError(f"EdgeGateway '{name}': " + "; ".join(scope_problems))
    t = hop_timeouts(args["hold_seconds"], args["response_header_seconds"])
    if not cert and t.silence_seconds > NLB_MAX_IDLE_SECONDS:
        raise ValueError(f"EdgeGateway '{name}': hold + response header ({t.first_byte_seconds}s) exceed the NLB "
                         f"idle timeout limit ({NLB_MAX_IDLE_SECONDS}s)")
    if redis and not args.get("install_envoy_gateway", True):
        # The global limits live in Envoy Gateway's own configuration, which only an installed release carries.
        raise ValueError(f"EdgeGateway '{name}': token budgets (rate_limit_redis) need install_envoy_gateway")
    return _EdgePlan(
        name=name, args=args, deps=deps, public=public, cert=cert, port=443 if cert else 80, models=models,
        adapters=adapters, client_names=clients_names, key_names=key_names,
        scope=key_scope_authorization(key_names, key_models), redis=redis, tokens_per_minute=tpm,
        tokens_per_day=tpd, timeouts=t, replicas=int(args.get("replicas", 2)),
        node_selector=dict(args.get("node_selector", SYSTEM_NODE_SELECTOR)), namespace=args["namespace"],
        eg_namespace=args.get("envoy_gateway_namespace", EG_NAMESPACE), labels=labels("edge-gateway", name),
        interceptor_host=pulumi.Output.concat(args["interceptor_service"], ".", args["interceptor_namespace"],
                                              ".svc.cluster.local"))


class EdgeGateway(pulumi.ComponentResource):
    """Envoy Gateway + Envoy AI Gateway (pinned OCI charts on the system nodes), the Gateway behind an LBC NLB, one
    AIGatewayRoute rule per model to the interceptor, API keys (401), keys scoped to models (403), per-key request
    limits and, with a Redis, token budgets counted across replicas (429 + Retry-After), cold-start-proof timeouts,
    the internal credential for vLLM and the scrape of the edge's metrics. Pass the LoadBalancerController release
    in `opts.depends_on`: the NLB's Service depends on it, so `destroy` waits until the controller has deleted what
    it made for that Service before the controller goes."""

    endpoint: pulumi.Output[str]
    """The SDK's base_url: http(s)://<host>/v1."""
    hostname: pulumi.Output[str]
    """DNS name of the NLB."""
    api_keys: pulumi.Output[dict[str, str]]
    """Key name → key (secret)."""
    api_key_secret_name: pulumi.Output[str]
    """Secret holding the client keys (one data key per key name) referenced by the SecurityPolicy."""
    internal_key_secret_name: pulumi.Output[str]
    """Secret (key `apiKey`) with the credential the edge injects and vLLM enforces."""
    model_header: pulumi.Output[str]
    """Header carrying the model name to the interceptor (what each InterceptorRoute must match)."""
    curl_examples: pulumi.Output[dict[str, dict[str, str]]]
    """Per model: curl for `completions` and `chat`."""
    python_examples: pulumi.Output[dict[str, str]]
    """Per model: a Python snippet with the openai SDK."""
    request_paths: pulumi.Output[dict[str, dict[str, str]]]
    """Per model: the objects a request crosses (route, rule, backend, interceptor target)."""
    gateway_name: pulumi.Output[str]
    """The Gateway (in `namespace`) every ModelRoute attaches to, this stack's and other programs' alike."""
    interceptor_backend_name: pulumi.Output[str]
    """The AIServiceBackend of the interceptor, with the internal key injected: the backend of every ModelRoute."""
    route_request_timeout: pulumi.Output[str]
    """Total request timeout (Gateway API duration) of every route rule on this Gateway: a cold start and a stream."""
    route_stream_idle_timeout: pulumi.Output[str]
    """Stream idle timeout (Gateway API duration) of every route rule on this Gateway."""

    def __init__(self, name: str, args: EdgeGatewayArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("EdgeGateway"), name, None, opts)
        p = _edge_plan(name, args, deps_of(opts))
        self.timeouts = p.timeouts
        cr_deps = self._controllers(p)
        self._secrets(p)
        gateway_ref = self._data_plane(p, cr_deps)
        self._security(p, gateway_ref, cr_deps)
        self._traffic_policies(p, gateway_ref, cr_deps)
        self._backends(p, cr_deps)
        self._routes(p, gateway_ref["name"], cr_deps + [self.backend_auth])
        if args.get("scrape", True):
            self._monitors(p, cr_deps)
        self._load_balancer(p)
        self._outputs(p)

    def _controllers(self, p: "_EdgePlan") -> list:
        """Gateway API + Envoy Gateway CRDs → Envoy Gateway → AI Gateway CRDs → AI Gateway, each only when the
        cluster does not run it already, and the readiness-gate label on the Envoy pods' namespace. Returns what
        every custom resource waits for: what installs its CRD, and the caller's dependencies."""
        name, args, deps = p.name, p.args, p.deps
        eg_crds = eg = aigw_crds = aigw = None
        if args.get("install_envoy_gateway", True):
            eg_version = args.get("envoy_chart_version", "v1.9.0")
            # Rendered by Pulumi and applied object by object, as upstream installs this chart (`helm template |
            # kubectl apply --server-side`): as a Helm release, its multi-megabyte templates would not fit Helm's
            # 1 MiB release Secret.
            eg_crds = k8s.helm.v4.Chart(f"{name}-gateway-crds", chart=EG_CRDS_CHART, version=eg_version,
                                        name="eg-crds", values=envoy_gateway_crds_values(), opts=child(self, deps))
            # With a Redis, the release's configuration points at it: Redis comes first and goes last (its URL is
            # an Output of the resources that make it).
            redis = p.redis
            rate_limit = rate_limit_eg_config(redis["url"], bool(redis.get("fail_open", True)), p.replicas,
                                              p.node_selector, redis.get("ca_pem") is not None) if redis else None
            eg = pinned_release(self, f"{name}-envoy-gateway", "eg", EG_CHART, None, eg_version, p.eg_namespace,
                                values=envoy_gateway_values(p.replicas, p.node_selector, rate_limit),
                                depends_on=[eg_crds, *deps], skip_crds=True)
        if args.get("install_ai_gateway", True):
            aigw_crds = pinned_release(self, f"{name}-ai-gateway-crds", "aieg-crd", AIGW_CRDS_CHART, None,
                                       args.get("ai_gateway_chart_version", "v1.1.0"), AIGW_NAMESPACE, values={},
                                       depends_on=[*([eg] if eg else []), *deps])
            aigw = pinned_release(self, f"{name}-ai-gateway", "aieg", AIGW_CHART, None,
                                  args.get("ai_gateway_chart_version", "v1.1.0"), AIGW_NAMESPACE,
                                  values=ai_gateway_values(p.replicas, p.node_selector, p.eg_namespace),
                                  depends_on=[aigw_crds, *([eg] if eg else []), *deps])
        self.envoy_gateway_crds, self.envoy_gateway_release = eg_crds, eg
        self.ai_gateway_crds_release, self.ai_gateway_release = aigw_crds, aigw
        installed = [r for r in (eg_crds, eg, aigw_crds, aigw) if r is not None]
        # Envoy's pods are the NLB's IP targets. With 2 replicas a rollout finishes faster than the NLB registers
        # and health-checks the new pods, so it could leave only initial/draining targets (the LBC doc's outage
        # case); the readiness gate keeps an old pod until its successor is healthy in the target group. The LBC
        # adds it to pods created once our Service's TargetGroupBinding exists: rollouts, not the first pods.
        self.envoy_namespace_label = k8s.core.v1.NamespacePatch(
            f"{name}-envoy-namespace",
            metadata={"name": p.eg_namespace, "labels": {READINESS_GATE_LABEL: "enabled"}},
            opts=child(self, [*([eg] if eg else []), *deps]),
        )
        # Every custom resource waits for what installs its CRD; the Gateway also waits for the AI
        # Gateway's webhook, which adds the ext_proc sidecar to the Envoy pods when they are created.
        return [*installed, *deps]

    def _secrets(self, p: "_EdgePlan") -> None:
        """The client keys (read by the SecurityPolicy), the internal credential (AI Gateway → vLLM) and, with a
        Redis, its password where the rate-limit service reads it."""
        name, args, deps, ns, lbl = p.name, p.args, p.deps, p.namespace, p.labels
        api_keys = args.get("api_keys")
        if not args["key_names"]:
            generated = random.RandomPassword(f"{name}-api-key-value", length=48, special=False, opts=child(self))
            api_keys = generated.result.apply(lambda v: {GENERATED_KEY_NAME: v})
        self.api_keys = pulumi.Output.secret(api_keys)
        self.keys_secret = k8s.core.v1.Secret(
            f"{name}-api-keys",
            metadata={"namespace": ns, "labels": lbl},
            type="Opaque",
            # envoyproxy/gateway@v1.9.0 api/v1alpha1/api_key_auth_types.go: each data key is a client id, its value
            # the key (without "Bearer ").
            string_data=self.api_keys,
            opts=child(self, deps, additional_secret_outputs=["data", "stringData"]),
        )
        internal = random.RandomPassword(f"{name}-internal-key-value", length=48, special=False, opts=child(self))
        self.internal_secret = k8s.core.v1.Secret(
            f"{name}-internal-key",
            metadata={"namespace": ns, "labels": lbl},
            type="Opaque",
            # BackendSecurityPolicy APIKey reads data key "apiKey"; vLLM reads the same key (API_KEY_SECRET_KEY).
            string_data={API_KEY_SECRET_KEY: pulumi.Output.secret(internal.result)},
            opts=child(self, deps, additional_secret_outputs=["data", "stringData"]),
        )
        if p.redis:
            self._rate_limit_secret(name, p.redis, p.eg_namespace, lbl, [self.envoy_gateway_release, *deps])

    def _data_plane(self, p: "_EdgePlan", cr_deps: list) -> dict:
        """EnvoyProxy, the AI Gateway's GatewayConfig, GatewayClass and Gateway. Returns the reference every policy
        of the Gateway targets."""
        name, ns, lbl, t, replicas = p.name, p.namespace, p.labels, p.timeouts, p.replicas
        svc_name = f"{name}-envoy"
        self.envoy_proxy = k8s.apiextensions.CustomResource(
            f"{name}-proxy-config",
            api_version="gateway.envoyproxy.io/v1alpha1",
            kind="EnvoyProxy",
            metadata={"namespace": ns, "labels": lbl},
            spec={
                # A rollout or node drain must not cut a held or streaming request: Envoy drains for as long as the
                # route lets a request live (default 60 s), and exits as soon as its connections are gone
                # (envoyproxy/gateway@v1.9.0 internal/cmd/envoy/shutdown_manager.go); Envoy Gateway sets the pod's
                # terminationGracePeriodSeconds to drainTimeout + 300 s
                # (internal/infrastructure/kubernetes/proxy/resource_provider.go).
                "shutdown": {"drainTimeout": gw_duration(t.request_seconds + MARGIN_SECONDS),
                             "minDrainDuration": gw_duration(MIN_DRAIN_SECONDS)},
                "provider": {"type": "Kubernetes", "kubernetes": {
                    "envoyDeployment": {
                        "replicas": replicas,
                        "pod": {"nodeSelector": p.node_selector,
                                "labels": {"app.kubernetes.io/part-of": "gpu-burst"}},
                        "container": {"resources": {"requests": dict(ENVOY_REQUESTS),
                                                    "limits": {"memory": "1Gi"}}},
                    },
                    **({"envoyPDB": {"minAvailable": 1}} if replicas >= 2 else {}),
                    # The NLB belongs to our own Service (below): Envoy Gateway's would go with the Gateway, nobody
                    # waiting for the LBC to delete the NLB. A fixed name for `kubectl port-forward`.
                    "envoyService": {"name": svc_name, "type": "ClusterIP"},
                }},
            },
            opts=child(self, cr_deps + [self.envoy_namespace_label]),
        )
        # Requests for the AI Gateway ext_proc sidecar its webhook adds to each Envoy pod (none by default,
        # internal/controller/extproc_builder.go), so the system-node capacity model counts what really runs.
        self.ai_gateway_config = k8s.apiextensions.CustomResource(
            f"{name}-ai-config",
            api_version="aigateway.envoyproxy.io/v1beta1",
            kind="GatewayConfig",
            metadata={"namespace": ns, "labels": lbl},
            spec={"extProc": {"kubernetes": {"resources": {
                "requests": {"cpu": EXTPROC_CPU, "memory": EXTPROC_MEMORY}, "limits": {"memory": "512Mi"}}}},
                # Always: the AI Gateway asks a streamed response for its usage only when some cost is configured,
                # and the usage metrics and cost rules count tokens with or without budgets.
                "globalLLMRequestCosts": token_costs()},
            opts=child(self, cr_deps),
        )
        self.gateway_class = k8s.apiextensions.CustomResource(
            f"{name}-class",
            api_version="gateway.networking.k8s.io/v1",
            kind="GatewayClass",
            metadata={"labels": lbl},
            spec={"controllerName": CONTROLLER_NAME},
            opts=child(self, cr_deps),
        )
        self.gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version="gateway.networking.k8s.io/v1",
            kind="Gateway",
            metadata={"namespace": ns, "labels": lbl, "annotations": {
                # pulumi-kubernetes ≥ 4.18 waits until Envoy Gateway has published its Service's (cluster) address.
                "pulumi.com/waitFor": "jsonpath={.status.addresses[0].value}",
                # internal/controller/ai_gateway_route.go GatewayConfigAnnotationKey (same namespace as the Gateway).
                GATEWAY_CONFIG_ANNOTATION: self.ai_gateway_config.metadata.apply(lambda m: m["name"])}},
            spec={
                "gatewayClassName": self.gateway_class.metadata.apply(lambda m: m["name"]),
                # TLS (if any) ends at the NLB; Envoy listens in plain HTTP on the NLB's port.
                "listeners": [{"name": "http", "protocol": "HTTP", "port": p.port,
                               "allowedRoutes": {"namespaces": {"from": "Same"}}}],
                "infrastructure": {"parametersRef": {
                    "group": "gateway.envoyproxy.io", "kind": "EnvoyProxy",
                    "name": self.envoy_proxy.metadata.apply(lambda m: m["name"])}},
            },
            opts=child(self, cr_deps + [self.envoy_proxy, self.ai_gateway_config]),
        )
        gw_name = self.gateway.metadata.apply(lambda m: m["name"])
        return {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gw_name}

    def _security(self, p: "_EdgePlan", gateway_ref: dict, cr_deps: list) -> None:
        """401 before anything, 403 for a model outside the key's scope: on the Gateway, so both cover every route
        (/v1/models included for the key check), whoever declared it."""
        self.security_policy = k8s.apiextensions.CustomResource(
            f"{p.name}-api-key-auth",
            api_version="gateway.envoyproxy.io/v1alpha1",
            kind="SecurityPolicy",
            metadata={"namespace": p.namespace, "labels": p.labels},
            spec={"targetRefs": [gateway_ref], "apiKeyAuth": {
                "credentialRefs": [{"group": "", "kind": "Secret",
                                    "name": self.keys_secret.metadata.apply(lambda m: m["name"])}],
                # The openai SDK sends `Authorization: Bearer <key>` (the filter strips "Bearer ").
                "extractFrom": [{"headers": ["authorization"]}],
                # Overwrites any client value (Envoy api_key_auth setCopy): the scope rules can trust it.
                "forwardClientIDHeader": CLIENT_ID_HEADER,
                # The client's key never travels past the edge; the upstream gets the internal key instead.
                "sanitize": True,
            }, **({"authorization": p.scope} if p.scope else {})},
            opts=child(self, cr_deps + [self.keys_secret]),
        )

    def _traffic_policies(self, p: "_EdgePlan", gateway_ref: dict, cr_deps: list) -> None:
        """429 per key (requests, and tokens with a Redis), OpenAI-shaped errors, and client timeouts that cover a
        cold start."""
        t = p.timeouts
        limits = {k: p.args["requests_per_minute"][k] for k in p.key_names}
        rate_limit_spec = ({"global": {"rules": global_rate_limit_rules(limits, p.tokens_per_minute,
                                                                        p.tokens_per_day)}} if p.redis
                           else {"local": {"rules": rate_limit_rules(limits)}})
        self.traffic_policy = k8s.apiextensions.CustomResource(
            f"{p.name}-limits",
            api_version="gateway.envoyproxy.io/v1alpha1",
            kind="BackendTrafficPolicy",
            metadata={"namespace": p.namespace, "labels": p.labels},
            spec={
                "targetRefs": [gateway_ref],
                "rateLimit": rate_limit_spec,
                # The buffer filter is what puts the AI Gateway's ext_proc after the API-key check: without it GET
                # /v1/models would answer without a key (test_api_key_check_runs_before_the_ai_gateway_ext_proc).
                "requestBuffer": {"limit": REQUEST_BODY_LIMIT},
                # Only Envoy's own replies (source Local): a 401 from vLLM means the internal credential is out of
                # step, not that the client's key is wrong, and must not be reworded as such.
                "responseOverride": [
                    {"source": "Local", "match": {"statusCodes": [{"type": "Value", "value": 429}]},
                     "response": {"contentType": "application/json",
                                  "body": {"type": "Inline", "inline": openai_error(
                                      "Rate limit or token budget reached for this API key; retry after the time in "
                                      "Retry-After (a daily token budget renews at 00:00 UTC).",
                                      "rate_limit_error", "rate_limit_exceeded")},
                                  # The openai SDK honours Retry-After.
                                  "header": {"set": [{"name": "Retry-After",
                                                      "value": str(RETRY_AFTER_SECONDS)}]}}},
                    {"source": "Local", "match": {"statusCodes": [{"type": "Value", "value": 401}]},
                     "response": {"contentType": "application/json",
                                  "body": {"type": "Inline", "inline": openai_error(
                                      f"Missing or invalid API key; send Authorization: Bearer ${API_KEY_ENV}.",
                                      "invalid_request_error", "invalid_api_key")}}},
                    *([scope_denied_override()] if p.scope else []),
                ],
            },
            opts=child(self, cr_deps),
        )
        self.client_policy = k8s.apiextensions.CustomResource(
            f"{p.name}-client",
            api_version="gateway.envoyproxy.io/v1alpha1",
            kind="ClientTrafficPolicy",
            metadata={"namespace": p.namespace, "labels": p.labels},
            spec={
                "targetRefs": [gateway_ref],
                # Envoy's default stream idle timeout (5 min) would cut a held request before its first byte.
                "timeout": {"http": {"idleTimeout": gw_duration(t.silence_seconds),
                                     "streamIdleTimeout": gw_duration(t.silence_seconds)}},
                "tcpKeepalive": {"idleTime": gw_duration(TCP_KEEPALIVE_IDLE_SECONDS), "interval": "30s",
                                 "probes": 9},
                # Envoy Gateway's 32 KiB default buffer is too small for LLM request bodies (upstream basic example).
                "connection": {"bufferLimit": REQUEST_BODY_LIMIT},
            },
            opts=child(self, cr_deps),
        )

    def _backends(self, p: "_EdgePlan", cr_deps: list) -> None:
        """The interceptor as the only backend, with the internal credential injected."""
        name, ns, lbl = p.name, p.namespace, p.labels
        self.backend = k8s.apiextensions.CustomResource(
            f"{name}-interceptor",
            api_version="gateway.envoyproxy.io/v1alpha1",
            kind="Backend",
            metadata={"namespace": ns, "labels": lbl},
            spec={"endpoints": [{"fqdn": {"hostname": p.interceptor_host, "port": int(p.args["interceptor_port"])}}]},
            opts=child(self, cr_deps),
        )
        self.ai_backend = k8s.apiextensions.CustomResource(
            f"{name}-interceptor-ai",
            api_version="aigateway.envoyproxy.io/v1beta1",
            kind="AIServiceBackend",
            metadata={"namespace": ns, "labels": lbl},
            spec={"schema": {"name": "OpenAI"},
                  "backendRef": {"group": "gateway.envoyproxy.io", "kind": "Backend",
                                 "name": self.backend.metadata.apply(lambda m: m["name"])}},
            opts=child(self, cr_deps),
        )
        self.interceptor_backend_name = self.ai_backend.metadata.apply(lambda m: m["name"])
        self.backend_auth = k8s.apiextensions.CustomResource(
            f"{name}-internal-auth",
            api_version="aigateway.envoyproxy.io/v1beta1",
            kind="BackendSecurityPolicy",
            metadata={"namespace": ns, "labels": lbl},
            spec={"targetRefs": [{"group": "aigateway.envoyproxy.io", "kind": "AIServiceBackend",
                                  "name": self.interceptor_backend_name}],
                  # internal/backendauth/api_key.go: sets `Authorization: Bearer <apiKey>` on the upstream request.
                  "type": "APIKey",
                  "apiKey": {"secretRef": {"name": self.internal_secret.metadata.apply(lambda m: m["name"])}}},
            opts=child(self, cr_deps + [self.internal_secret]),
        )

    def _routes(self, p: "_EdgePlan", gateway_name: pulumi.Output[str], deps: list) -> None:
        """One rule per model (body model → x-ai-eg-model → interceptor): the stack's own models as ModelRoutes of
        at most 15 rules, in order, each model with its adapters in the same route: the same component any other
        program adds to this Gateway. Names are those the routes had as direct children (ModelRoute aliases
        them)."""
        t = p.timeouts
        self.gateway_name = gateway_name
        request_timeout, stream_idle_timeout = gw_duration(t.request_seconds), gw_duration(t.silence_seconds)
        self.route_request_timeout = pulumi.Output.from_input(request_timeout)
        self.route_stream_idle_timeout = pulumi.Output.from_input(stream_idle_timeout)
        self.routes = []
        for i, chunk in enumerate(route_chunks(p.models, p.adapters)):
            self.routes.append(ModelRoute(
                f"{p.name}-models" + (f"-{i}" if i else ""),
                {"namespace": p.namespace, "gateway_name": self.gateway_name, "served_names": chunk,
                 "backend_name": self.interceptor_backend_name, "request_timeout": request_timeout,
                 "stream_idle_timeout": stream_idle_timeout,
                 **({"adapters": [a for a in p.adapters if a["base"] in chunk]} if p.adapters else {})},
                opts=pulumi.ResourceOptions(parent=self, depends_on=deps)))
        interceptor = pulumi.Output.concat(p.interceptor_host, ":", str(int(p.args["interceptor_port"])))
        self.request_paths = pulumi.Output.all(interceptor, *[r.request_paths for r in self.routes]).apply(
            lambda v: {m: {**path, "interceptor": v[0]} for paths in v[1:] for m, path in paths.items()})

    def _load_balancer(self, p: "_EdgePlan") -> None:
        """The NLB: a LoadBalancer Service of ours in front of the Gateway's Envoy pods. Its delete waits for the
        LBC's finalizer (NLB, target groups, security groups gone); it depends on the LBC release (the caller's
        dependencies), so that happens before the controller, its IAM and its Pod Identity association go."""
        port = p.port
        self.load_balancer = k8s.core.v1.Service(
            f"{p.name}-nlb",
            metadata={"namespace": p.eg_namespace, "labels": p.labels,
                      "annotations": nlb_annotations(p.public, p.cert, port, p.timeouts.silence_seconds)},
            spec={
                "type": "LoadBalancer",
                "loadBalancerClass": LOAD_BALANCER_CLASS,
                "loadBalancerSourceRanges": p.args["allowed_cidrs"],
                # IP targets: the NLB sends to the pods, no NodePort is needed on any node.
                "allocateLoadBalancerNodePorts": False,
                "selector": self.gateway.metadata.apply(lambda m: proxy_selector(m["namespace"], m["name"])),
                "ports": [{"name": f"http-{port}", "protocol": "TCP", "port": port,
                           "targetPort": envoy_container_port(port)}],
            },
            opts=child(self, [*p.deps, self.gateway],
                       custom_timeouts=pulumi.CustomTimeouts(delete=NLB_DELETE_TIMEOUT)),
        )

    def _outputs(self, p: "_EdgePlan") -> None:
        t = p.timeouts
        self.hostname = self.load_balancer.status.apply(
            lambda s: ((s.load_balancer.ingress or [None])[0].hostname or "") if s and s.load_balancer
            and s.load_balancer.ingress else "")
        scheme = "https" if p.cert else "http"
        host = pulumi.Output.from_input(p.args["domain"]) if p.args.get("domain") else self.hostname
        self.endpoint = host.apply(lambda h: f"{scheme}://{h}/v1")
        self.api_key_secret_name = self.keys_secret.metadata.apply(lambda m: m["name"])
        self.internal_key_secret_name = self.internal_secret.metadata.apply(lambda m: m["name"])
        self.model_header = pulumi.Output.from_input(MODEL_HEADER)
        client_timeout = t.request_seconds
        clients_names = p.client_names
        self.curl_examples = self.endpoint.apply(lambda ep: {
            m: {"completions": curl_example(ep, m, "completions", client_timeout),
                "chat": curl_example(ep, m, "chat", client_timeout)} for m in clients_names})
        self.python_examples = self.endpoint.apply(
            lambda ep: {m: python_example(ep, m, t.first_byte_seconds + MARGIN_SECONDS) for m in clients_names})
        self.register_outputs({
            "endpoint": self.endpoint, "hostname": self.hostname, "api_keys": self.api_keys,
            "api_key_secret_name": self.api_key_secret_name, "internal_key_secret_name": self.internal_key_secret_name,
            "model_header": self.model_header, "curl_examples": self.curl_examples,
            "python_examples": self.python_examples, "request_paths": self.request_paths,
            "gateway_name": self.gateway_name, "interceptor_backend_name": self.interceptor_backend_name,
            "route_request_timeout": self.route_request_timeout,
            "route_stream_idle_timeout": self.route_stream_idle_timeout})

    def _rate_limit_secret(self, name: str, redis: RateLimitRedisArgs, namespace: str, lbl: dict, deps: list) -> None:
        """The Redis password (and CA) where Envoy Gateway's envoy-ratelimit pods read them. The chart creates the
        namespace, so the Secret follows the release; the pods wait for it (an env var from a missing Secret)."""
        data = {RATE_LIMIT_AUTH_KEY: pulumi.Output.secret(redis["password"])}
        if redis.get("ca_pem") is not None:
            data[RATE_LIMIT_CA_KEY] = redis["ca_pem"]
        self.rate_limit_secret = k8s.core.v1.Secret(
            f"{name}-rate-limit-redis",
            metadata={"name": RATE_LIMIT_SECRET, "namespace": namespace, "labels": lbl},
            type="Opaque",
            string_data=data,
            opts=child(self, deps, additional_secret_outputs=["data", "stringData"], delete_before_replace=True),
        )

    def _monitors(self, p: "_EdgePlan", cr_deps: list) -> None:
        """Envoy's and the AI Gateway's metrics (PodMonitor on the proxy pods) and the interceptor's (Service +
        ServiceMonitor)."""
        name, args, lbl = p.name, p.args, p.labels
        extra = dict(args.get("monitor_labels") or {})
        self.edge_monitor = k8s.apiextensions.CustomResource(
            f"{name}-edge-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata={"namespace": p.eg_namespace, "labels": {**extra, **lbl}},
            spec={
                "selector": {"matchLabels": dict(PROXY_POD_LABELS)},
                "namespaceSelector": {"matchNames": [p.eg_namespace]},
                "podMetricsEndpoints": [
                    {"port": ENVOY_METRICS_PORT, "path": "/stats/prometheus", "interval": "15s"},
                    {"port": AIGW_METRICS_PORT, "path": "/metrics", "interval": "15s"},
                ],
            },
            opts=child(self, cr_deps),
        )
        metrics_labels = {**lbl, "app.kubernetes.io/component": "interceptor-metrics"}
        self.interceptor_metrics = k8s.core.v1.Service(
            f"{name}-interceptor-metrics",
            metadata={"namespace": args["interceptor_namespace"], "labels": metrics_labels},
            spec={"type": "ClusterIP", "selector": dict(INTERCEPTOR_SELECTOR),
                  # Numeric targetPort: the interceptor container does not declare this port by name.
                  "ports": [{"name": "metrics", "port": INTERCEPTOR_METRICS_PORT,
                             "targetPort": INTERCEPTOR_METRICS_PORT, "protocol": "TCP"}]},
            opts=child(self, cr_deps),
        )
        self.interceptor_monitor = k8s.apiextensions.CustomResource(
            f"{name}-interceptor-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="ServiceMonitor",
            metadata={"namespace": self.interceptor_metrics.metadata.namespace, "labels": {**extra, **metrics_labels}},
            spec={"selector": {"matchLabels": self.interceptor_metrics.metadata.labels},
                  "namespaceSelector": {"matchNames": [self.interceptor_metrics.metadata.namespace]},
                  "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "10s"}]},
            opts=child(self, cr_deps),
        )
