"""The KEDA HTTP add-on: an interceptor proxy that holds requests while a model scales from zero, and the external
scaler that feeds its pending-request counts to KEDA."""

from typing import Optional, TypedDict

import pulumi
from typing_extensions import NotRequired

from ._common import pinned_release, SYSTEM_NODE_SELECTOR, deps_of, token

CHART = "keda-add-ons-http"
CHART_REPO = "https://kedacore.github.io/charts"
RELEASE_NAME = "keda-add-ons-http"
DEFAULT_NAMESPACE = "keda"
# Service names are "{{ .Chart.Name }}-{{ .Values.<component>.service }}" in the chart templates (independent of the
# release name); ports come from the values below.
SCALER_SERVICE = f"{CHART}-external-scaler"
SCALER_PORT = 9090
PROXY_SERVICE = f"{CHART}-interceptor-proxy"
PROXY_PORT = 8080
SHUTDOWN_DELAY_SECONDS = 5
"""`interceptor.shutdownDelay` (chart default 5s): after SIGTERM the interceptor keeps serving while /readyz says 503,
so endpoint removal propagates before the listener closes (v0.15.0 interceptor/main.go, shutdown sequencing)."""
GRACE_MARGIN_SECONDS = 15
"""SIGKILL comes this long after the drain deadline: time for the interceptor to stop its informers and exit."""
SMALL_REQUESTS = {"cpu": "50m", "memory": "64Mi"}
"""Requests of the operator and of each external scaler replica."""
INTERCEPTOR_REQUESTS = {"cpu": "100m", "memory": "128Mi"}
"""Requests of each interceptor replica (the system-node capacity check counts the maximum replicas)."""


def termination_grace_seconds(drain_timeout_seconds: int) -> int:
    """`terminationGracePeriodSeconds` for a drain deadline: the chart requires at least shutdownDelay + drainTimeout
    (0.15.0 values.yaml `interceptor.terminationGracePeriodSeconds`)."""
    return SHUTDOWN_DELAY_SECONDS + drain_timeout_seconds + GRACE_MARGIN_SECONDS


def http_addon_values(node_selector: dict[str, str], readiness_timeout: pulumi.Input[str],
                      response_header_timeout: pulumi.Input[str], interceptor_min_replicas: pulumi.Input[int],
                      interceptor_max_replicas: pulumi.Input[int], scaler_replicas: pulumi.Input[int],
                      drain_timeout_seconds: int = 30) -> dict:
    """Chart values (keys from the 0.15.0 values.yaml)."""
    small = {"requests": dict(SMALL_REQUESTS), "limits": {"cpu": "500m", "memory": "256Mi"}}
    return {
        # The chart's CRDs are templates: Helm upgrades them with the release (the chart default, kept explicit).
        "crds": {"install": True},
        "operator": {"nodeSelector": dict(node_selector), "resources": small},
        "scaler": {"nodeSelector": dict(node_selector), "replicas": scaler_replicas,
                   "service": "external-scaler", "grpcPort": SCALER_PORT, "resources": small},
        "interceptor": {
            "nodeSelector": dict(node_selector),
            "replicas": {"min": interceptor_min_replicas, "max": interceptor_max_replicas},
            "proxy": {"service": "interceptor-proxy", "port": PROXY_PORT},
            # On SIGTERM (a rollout, or KEDA scaling the interceptor in) the proxy closes its listener and waits up to
            # drainTimeout for in-flight requests, then exits; the pod is killed after the grace period. The chart
            # defaults (30s / 45s) would cut a request held through a cold start. KEDA_HTTP_DRAIN_TIMEOUT
            # (v0.15.0 interceptor/config/serving.go); the drain ends as soon as nothing is in flight.
            "shutdownDelay": f"{SHUTDOWN_DELAY_SECONDS}s",
            "drainTimeout": f"{drain_timeout_seconds}s",
            "terminationGracePeriodSeconds": termination_grace_seconds(drain_timeout_seconds),
            # KEDA_HTTP_READINESS_TIMEOUT: how long a request is held while the model scales from zero (GPU node
            # launch + image pull + weight load). Unset means "bounded only by requestTimeout", i.e. forever.
            "readinessTimeout": readiness_timeout,
            # KEDA_HTTP_RESPONSE_HEADER_TIMEOUT, counted after the backend is ready: a long prompt's first token.
            "responseHeaderTimeout": response_header_timeout,
            # Held requests are not buffered (the body stays in the socket until the proxy streams it,
            # v0.15.0 interceptor/handler/upstream.go httputil.ReverseProxy), but every held or streaming connection
            # costs goroutines and TLS/HTTP buffers: the 64Mi chart default leaves no room for a burst of them.
            "resources": {"requests": dict(INTERCEPTOR_REQUESTS), "limits": {"cpu": "1", "memory": "512Mi"}},
        },
    }


class KedaHttpAddonArgs(TypedDict):
    """Inputs for KedaHttpAddon."""

    chart_version: pulumi.Input[str]
    """Pinned keda-add-ons-http chart version, e.g. 0.15.0."""
    readiness_timeout: pulumi.Input[str]
    """Go duration the interceptor holds a request waiting for a ready replica (cold start), e.g. 15m."""
    response_header_timeout: pulumi.Input[str]
    """Go duration the interceptor waits for response headers once the backend is ready, e.g. 10m."""
    interceptor_min_replicas: NotRequired[pulumi.Input[int]]
    """Interceptor replicas at idle. Default 2."""
    interceptor_max_replicas: NotRequired[pulumi.Input[int]]
    """Interceptor replicas under load (scaled by KEDA). Default 10."""
    scaler_replicas: NotRequired[pulumi.Input[int]]
    """External scaler replicas. Default 2."""
    drain_timeout_seconds: NotRequired[int]
    """How long a stopping interceptor waits for in-flight requests: at least the longest hold (readiness timeout)
    plus the response-header timeout, so neither a rollout nor a scale-in cuts a held request. Default 30."""
    namespace: NotRequired[pulumi.Input[str]]
    """Namespace (created). Default keda."""
    node_selector: NotRequired[dict[str, str]]
    """nodeSelector for every add-on pod. Default: the system node group."""


class KedaHttpAddon(pulumi.ComponentResource):
    """The KEDA HTTP add-on as a pinned Helm release on the system nodes, with interceptor timeouts long enough
    for a GPU cold start. Pass the KEDA release in `opts.depends_on`: the chart creates a ScaledObject for the
    interceptor, which needs KEDA's CRDs and webhook. HTTPScaledObjects/InterceptorRoutes depend on `release`."""

    release_name: pulumi.Output[str]
    """Helm release name."""
    namespace: pulumi.Output[str]
    """Namespace of the interceptor, scaler and operator."""
    external_scaler_address: pulumi.Output[str]
    """host:port of the external scaler, for ScaledObject triggers of type `external-push`."""
    interceptor_proxy_service: pulumi.Output[str]
    """Service name of the interceptor proxy (the HTTP entry point)."""
    interceptor_proxy_port: pulumi.Output[int]
    """Port of that service."""

    def __init__(self, name: str, args: KedaHttpAddonArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("KedaHttpAddon"), name, None, opts)
        min_replicas = args.get("interceptor_min_replicas", 2)
        max_replicas = args.get("interceptor_max_replicas", 10)
        if isinstance(min_replicas, int) and isinstance(max_replicas, int) and max_replicas < min_replicas:
            raise ValueError(f"KedaHttpAddon '{name}': interceptor_max_replicas ({max_replicas}) < "
                             f"interceptor_min_replicas ({min_replicas})")
        self.release = pinned_release(
            self, name, RELEASE_NAME, CHART, CHART_REPO, args["chart_version"],
            args.get("namespace", DEFAULT_NAMESPACE),
            values=http_addon_values(
                args.get("node_selector", SYSTEM_NODE_SELECTOR), args["readiness_timeout"],
                args["response_header_timeout"], min_replicas, max_replicas, args.get("scaler_replicas", 2),
                args.get("drain_timeout_seconds", 30)),
            depends_on=deps_of(opts),
        )
        self.release_name = self.release.status.name
        # From the release status, so consumers of these names also wait for the release.
        self.namespace = self.release.status.namespace
        self.external_scaler_address = self.namespace.apply(lambda ns: f"{SCALER_SERVICE}.{ns}:{SCALER_PORT}")
        self.interceptor_proxy_service = self.release.status.apply(lambda _: PROXY_SERVICE)
        self.interceptor_proxy_port = pulumi.Output.from_input(PROXY_PORT)
        self.register_outputs({
            "release_name": self.release_name, "namespace": self.namespace,
            "external_scaler_address": self.external_scaler_address,
            "interceptor_proxy_service": self.interceptor_proxy_service,
            "interceptor_proxy_port": self.interceptor_proxy_port,
        })
