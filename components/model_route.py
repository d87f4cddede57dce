"""ModelRoute: the edge's route to one or more models, an AIGatewayRoute on the shared Gateway that any program may add.

The AI Gateway controller merges every AIGatewayRoute whose parentRefs name the Gateway: all their models are listed
by GET /v1/models, and Envoy Gateway orders the rules of all their HTTPRoutes by Gateway API precedence, so a rule
matching `x-ai-eg-model` always wins over the header-less "route-not-found" catch-all each route gets. The upstream
sources behind this are in docs/library.md (Routes from several programs).
"""

import re
from typing import Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from ._common import child, deps_of, labels, token

MODEL_HEADER = "x-ai-eg-model"
"""Header the AI Gateway sets from the body's `model` before routing, overwriting any client value
(envoyproxy/ai-gateway@v1.1.0: api/v1beta1/shared_types.go AIModelHeaderKey, internal/extproc/processor_impl.go).
It reaches the upstream, so the interceptor's route matches it too; /v1/models lists exact matches on it only."""
MAX_RULES_PER_ROUTE = 15
"""AIGatewayRoute.spec.rules maxItems (one HTTPRoute slot is the controller's catch-all)."""
MODELS_OWNED_BY = "gpu-burst"
"""`owned_by` of the models in GET /v1/models."""
RESERVED_RULE_NAME = "route-not-found"
"""Rule name the AI Gateway keeps for its catch-all (the CRD refuses it)."""
_RULE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
"""Gateway API SectionName, the type of a rule's name (at most 253 characters)."""


def route_problems(served_names: list) -> list[str]:
    """Why `served_names` cannot be the rules of one AIGatewayRoute ([] when they can)."""
    out = []
    if not 1 <= len(served_names) <= MAX_RULES_PER_ROUTE:
        out.append(f"{len(served_names)} served names; allowed: 1 to {MAX_RULES_PER_ROUTE} per route "
                   "(add another ModelRoute for more)")
    dupes = sorted({n for n in served_names if served_names.count(n) > 1})
    if dupes:
        out.append(f"served names repeat {dupes}; allowed: each model once")
    for n in served_names:
        if n == RESERVED_RULE_NAME or not _RULE_NAME.match(n) or len(n) > 253:
            out.append(f"'{n}' cannot name a route rule; allowed: lowercase letters, digits and '-', starting and "
                       f"ending with a letter or digit, not '{RESERVED_RULE_NAME}'")
    return out


class ModelRouteArgs(TypedDict):
    """Inputs of a ModelRoute."""

    namespace: pulumi.Input[str]
    """Namespace of the Gateway (the route lives there: the Gateway's listener admits routes from its own namespace
    only, and the backend is looked up there)."""
    gateway_name: pulumi.Input[str]
    """The shared Gateway (EdgeGateway output `gateway_name`, cluster stack output `gatewayName`)."""
    served_names: list[str]
    """Models routed by this object, one rule each, named after the model: 1 to 15."""
    backend_name: pulumi.Input[str]
    """AIServiceBackend every rule sends to: the edge's interceptor backend (EdgeGateway `interceptor_backend_name`,
    stack output `interceptorBackendName`), whose BackendSecurityPolicy injects the internal key vLLM expects."""
    request_timeout: pulumi.Input[str]
    """Total timeout of a request (Gateway API duration): the edge's `route_request_timeout`, which covers a cold
    start and a long stream."""
    stream_idle_timeout: pulumi.Input[str]
    """Longest silence of a request (Gateway API duration): the edge's `route_stream_idle_timeout`."""
    owned_by: NotRequired[str]
    """`owned_by` of these models in GET /v1/models. Default `gpu-burst`."""


class ModelRoute(pulumi.ComponentResource):
    """One AIGatewayRoute on the shared Gateway: for each served name, the rule `x-ai-eg-model == <name>` → the
    interceptor backend. The model is then routed by the edge and listed by GET /v1/models. Pass the release that
    serves the AI Gateway CRDs (or nothing, on a running cluster) in `opts.depends_on`."""

    route_name: pulumi.Output[str]
    """Name of the AIGatewayRoute (and of the HTTPRoute the AI Gateway generates from it)."""
    request_paths: pulumi.Output[dict[str, dict[str, str]]]
    """Per model: the header and value the rule matches, the route, the rule and the backend."""

    def __init__(self, name: str, args: ModelRouteArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        models = list(args["served_names"])
        problems = route_problems(models)
        if problems:
            raise ValueError(f"ModelRoute '{name}': " + "; ".join(problems))
        super().__init__(token("ModelRoute"), name, None, opts)
        backend = args["backend_name"]
        owned_by = args.get("owned_by", MODELS_OWNED_BY)
        # Before ModelRoute existed, EdgeGateway declared this object itself under the same name: the alias keeps it
        # (an upgrade updates the route in place instead of deleting and recreating it).
        parent = opts.parent if opts is not None else None
        aliases = [pulumi.Alias(parent=parent)] if parent is not None else []
        self.route = k8s.apiextensions.CustomResource(
            name,
            api_version="aigateway.envoyproxy.io/v1beta1",
            kind="AIGatewayRoute",
            metadata={"namespace": args["namespace"], "labels": labels("model-route", name)},
            spec={
                "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                "name": args["gateway_name"]}],
                "rules": [{
                    "name": m,
                    "matches": [{"headers": [{"type": "Exact", "name": MODEL_HEADER, "value": m}]}],
                    "backendRefs": [{"name": backend}],
                    # The AI Gateway's default request timeout is 60 s; a cold start is minutes.
                    "timeouts": {"request": args["request_timeout"]},
                    "streamIdleTimeout": args["stream_idle_timeout"],
                    "modelsOwnedBy": owned_by,
                } for m in models],
            },
            opts=child(self, deps_of(opts), aliases=aliases),
        )
        self.route_name = self.route.metadata.apply(lambda md: md["name"])
        self.request_paths = pulumi.Output.all(self.route_name, backend).apply(
            lambda v: {m: {"header": MODEL_HEADER, "value": m, "route": v[0], "rule": m, "backend": v[1]}
                       for m in models})
        self.register_outputs({"route_name": self.route_name, "request_paths": self.request_paths})
