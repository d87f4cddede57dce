"""The edge's request path as data (no tests here): what Envoy answers to one request, computed from the custom
resources a stack registered, the way Envoy Gateway v1.9.0 and the Envoy AI Gateway v1.1.0 turn them into Envoy
configuration. Used to check, per API key and model, who answers: the key check (401), the AI Gateway (the model
list), the key's model scope (403), the router's catch-all (404) or the interceptor.

What it follows, and where upstream says so:
- the HTTP filters run in Envoy Gateway's order (envoyproxy/gateway@v1.9.0 internal/xds/translator/httpfilters.go
  newOrderedHTTPFilter), with the AI Gateway's ext_proc inserted before the first of its "after" filters, or right
  after the last buffer filter when that comes later (envoyproxy/ai-gateway@v1.1.0
  internal/extensionserver/post_translate_modify.go insertAIGatewayExtProcFilter);
- api_key_auth looks the key up among the Secret's values and overwrites the client-id header with the matched name
  (Envoy source/extensions/filters/http/api_key_auth/api_key_auth.cc, `headers.setCopy`); 401 otherwise;
- the ext_proc answers GET /v1/models itself from the declared models (internal/extproc/models_processor.go); for a
  body it overwrites `x-ai-eg-model` with the body's `model` and clears the route cache
  (internal/extproc/processor_impl.go), so later filters and the router see the model's route;
- the RBAC filter evaluates the SecurityPolicy's authorization rules in order, the first match deciding, all header
  matches of a rule required, any listed value matching exactly, else the default action, Deny when unset
  (envoyproxy/gateway@v1.9.0 internal/xds/translator/authorization.go buildRBACPerRoute, buildHeadersPredicate);
- the router takes the rule `envoy_route_for` picks; a route's `route-not-found` rule answers 404
  (ai-gateway@v1.1.0 internal/controller/ai_gateway_route.go generateHTTPRouteFilters);
- the custom_response filter, first in the chain, rewrites the local replies the BackendTrafficPolicy's
  responseOverride names (envoyproxy/gateway@v1.9.0 internal/xds/translator/custom_response.go);
- the global rate limit sends every rule whose client selectors match to the rate-limit service, each with its
  request cost (1 unless `cost.request` says otherwise), which adds them to the counters and answers over-limit when
  any counter passes its limit (envoyproxy/ratelimit: the rules are ORed); a rule's response cost is added when the
  response ends, from the dynamic metadata the AI Gateway wrote (envoyproxy/gateway@v1.9.0
  internal/xds/translator/ratelimit.go, `apply_on_stream_done`). `shared` rules keep one counter for every route.
"""

import json
from dataclasses import dataclass, field
from typing import Optional

from test_examples import declared_models, envoy_route_for

from components.edge_gateway import CLIENT_ID_HEADER
from components.model_route import MODEL_HEADER

EG_FILTER_ORDER = {"custom_response": 0, "api_key_auth": 7, "buffer": 12, "rbac": 301, "local_ratelimit": 302,
                   "ratelimit": 303, "router": 310}
"""Envoy Gateway's order of the filters the edge's policies turn on (httpfilters.go)."""
AIGW_BEFORE = ("ext_proc", "wasm", "lua", "rbac", "local_ratelimit", "ratelimit", "custom_response",
               "credential_injector", "compressor", "router")
"""Filters the AI Gateway puts its ext_proc before (afterExtProcFilterPrefixes)."""
MODEL_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
"""Paths whose JSON body names the model (the OpenAI endpoints the ext_proc parses)."""


def filter_chain(security_policy: dict, traffic_policy: dict) -> list[str]:
    """The listener's HTTP filters in the order Envoy runs them, from the Gateway's SecurityPolicy and
    BackendTrafficPolicy specs, after the AI Gateway's extension server added its ext_proc."""
    present = ["router"]
    present += ["api_key_auth"] if "apiKeyAuth" in security_policy else []
    present += ["rbac"] if "authorization" in security_policy else []
    present += ["custom_response"] if traffic_policy.get("responseOverride") else []
    present += ["buffer"] if "requestBuffer" in traffic_policy else []
    limits = traffic_policy.get("rateLimit") or {}
    present += ["local_ratelimit"] if limits.get("local") else []
    present += ["ratelimit"] if limits.get("global") else []
    chain = sorted(present, key=EG_FILTER_ORDER.__getitem__)
    at = next(i for i, f in enumerate(chain) if f in AIGW_BEFORE)
    if "buffer" in chain and chain.index("buffer") >= at:
        at = chain.index("buffer") + 1
    return chain[:at] + ["ai_gateway_ext_proc"] + chain[at:]


def authorize(authorization: dict, headers: dict) -> str:
    """Allow or Deny: the first rule whose principal's header matches all hold, else the default action."""
    for rule in authorization.get("rules", []):
        principal = rule.get("principal") or {}
        assert set(principal) <= {"headers"}, f"only header principals are modelled: {rule}"
        if all(headers.get(h["name"].lower()) in h["values"] for h in principal.get("headers", [])):
            return rule["action"]
    return authorization.get("defaultAction") or "Deny"


@dataclass
class Answer:
    """What the client gets, and who answered."""

    status: int
    by: str
    """The filter that answered: api_key_auth, ai_gateway_ext_proc, rbac, router (a local reply), or `upstream`."""
    body: object = None
    upstream: Optional[str] = None
    """host:port the router sent the request to (only when `by` is upstream)."""
    route: Optional[tuple] = None
    """(route, rule) the router used."""
    upstream_headers: dict = field(default_factory=dict)


class Edge:
    """One Gateway's edge, from its objects as the API server holds them (metadata.name set to the real name)."""

    def __init__(self, security_policy: dict, traffic_policy: dict, keys_secret: dict, routes: list[dict],
                 ai_backends: dict, backends: dict, gateway: str, namespace: str):
        self.sp, self.btp = security_policy["spec"], traffic_policy["spec"]
        self.credentials = {v: k for k, v in keys_secret["stringData"].items()}
        self.routes, self.ai_backends, self.backends = routes, ai_backends, backends
        self.gateway, self.namespace = gateway, namespace
        self.chain = filter_chain(self.sp, self.btp)
        self.counters: dict[tuple, int] = {}
        """Global rate-limit counters in the current window: (rule index, route when the rule is not shared)."""

    def models(self) -> list[str]:
        return declared_models(self.routes, self.gateway, self.namespace)

    def request(self, key: Optional[str], model: Optional[str] = None, path: str = "/v1/chat/completions",
                headers: Optional[dict] = None) -> Answer:
        """Send one request: `key` as `Authorization: Bearer <key>`, `model` in the JSON body, extra client
        `headers` as given (a client may send anything, `x-ai-eg-model` and `x-gpu-burst-key` included)."""
        h = {k.lower(): v for k, v in (headers or {}).items()}
        if key is not None:
            h["authorization"] = f"Bearer {key}"
        route = None
        for f in self.chain:
            if f == "api_key_auth":
                given = (h.get("authorization") or "").removeprefix("Bearer ")
                if given not in self.credentials:
                    return self._local(401, "api_key_auth", "Client authentication failed.")
                h[CLIENT_ID_HEADER] = self.credentials[given]
                if self.sp["apiKeyAuth"].get("sanitize"):
                    h.pop("authorization")
            elif f == "ai_gateway_ext_proc":
                if path == "/v1/models":
                    return Answer(200, "ai_gateway_ext_proc", {"object": "list", "data": [
                        {"id": m, "object": "model"} for m in self.models()]})
                if path in MODEL_ENDPOINTS:
                    h[MODEL_HEADER] = model if model is not None else ""
                route = envoy_route_for(self.routes, h.get(MODEL_HEADER, ""))
            elif f == "rbac":
                if authorize(self.sp["authorization"], h) == "Deny":
                    return self._local(403, "rbac", "RBAC: access denied")
            elif f == "ratelimit":
                over = False
                for counter, rule in self._global_rules(h, route):
                    cost = int((rule.get("cost") or {}).get("request", {}).get("number", 1))
                    self.counters[counter] = self.counters.get(counter, 0) + cost
                    over |= self.counters[counter] > rule["limit"]["requests"]
                if over:
                    return self._local(429, "ratelimit", "Too Many Requests", route)
            elif f == "router":
                route = route or envoy_route_for(self.routes, h.get(MODEL_HEADER, ""))
                if route[1] == "route-not-found":
                    return self._local(404, "router", "No matching route found.", route)
                return Answer(200, "upstream", upstream=self._upstream(route), route=route, upstream_headers=h)
        raise AssertionError(f"no filter answered: {self.chain}")

    def complete(self, answer: Answer, metadata: dict) -> None:
        """The response to `answer` ended with this dynamic metadata (`{namespace: {key: number}}`, what the AI
        Gateway writes): charge the response costs of the global rules it matched."""
        for counter, rule in self._global_rules(answer.upstream_headers, answer.route):
            response = (rule.get("cost") or {}).get("response")
            if response and response["from"] == "Metadata":
                md = response["metadata"]
                self.counters[counter] = self.counters.get(counter, 0) + int(
                    metadata.get(md["namespace"], {}).get(md["key"], 0))

    def _global_rules(self, headers: dict, route: Optional[tuple]) -> list:
        """(counter, rule) of every global rule whose client selectors all match `headers`."""
        out = []
        for i, rule in enumerate(((self.btp.get("rateLimit") or {}).get("global") or {}).get("rules", [])):
            matches, distinct = [], []
            for selector in rule.get("clientSelectors", []):
                assert set(selector) == {"headers"}, f"only header selectors are modelled: {selector}"
                for m in selector["headers"]:
                    kind = m.get("type", "Exact")
                    assert kind in ("Exact", "Distinct") and not m.get("invert"), f"not modelled: {m}"
                    value = headers.get(m["name"].lower())
                    if kind == "Distinct":
                        # Envoy Gateway: each distinct value gets its own bucket (the value joins the descriptor).
                        matches.append(value is not None)
                        distinct.append(value)
                    else:
                        matches.append(value == m["value"])
            if all(matches):
                counter = (i, *distinct) if rule.get("shared") else (i, *distinct, route)
                out.append((counter, rule))
        return out

    def _upstream(self, route: tuple) -> str:
        (r,) = [r for r in self.routes if r["metadata"]["name"] == route[0]]
        (rule,) = [x for x in r["spec"]["rules"] if x["name"] == route[1]]
        (ref,) = rule["backendRefs"]
        backend = self.backends[self.ai_backends[ref["name"]]["spec"]["backendRef"]["name"]]
        fqdn = backend["spec"]["endpoints"][0]["fqdn"]
        return f"{fqdn['hostname']}:{int(fqdn['port'])}"

    def _local(self, status: int, by: str, text: str, route: Optional[tuple] = None) -> Answer:
        """A local reply as the client sees it: the responseOverride for its status, when there is one."""
        body = text
        if "custom_response" in self.chain:
            for o in self.btp["responseOverride"]:
                codes = [c["value"] for c in o["match"]["statusCodes"] if c.get("type", "Value") == "Value"]
                if o.get("source") in ("Local", "All") and status in codes:
                    body = json.loads(o["response"]["body"]["inline"])
                    status = o["response"].get("statusCode", status)
                    break
        return Answer(status, by, body, route=route)
