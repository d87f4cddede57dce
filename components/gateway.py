"""Gateway: the single entry point for every model — the HTTP add-on interceptor behind an AWS Network Load Balancer —
and the API key that vLLM enforces."""

import json
import shlex
from typing import Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
from typing_extensions import NotRequired

from ._common import child, deps_of, labels, token
from .model_service import API_KEY_SECRET_KEY

API_KEY_ENV = "GPU_BURST_API_KEY"
"""Shell variable the curl examples read the key from (`export GPU_BURST_API_KEY=$(pulumi stack output apiKey
--show-secrets)`), so no output ever embeds the key."""
INTERCEPTOR_SELECTOR = {"app.kubernetes.io/component": "interceptor", "app.kubernetes.io/name": "http-add-on"}
"""Pod labels of the http-add-on chart's interceptor (its own interceptor-proxy Service selects the same labels)."""
INTERCEPTOR_PROXY_PORT_NAME = "proxy"
INTERCEPTOR_METRICS_PORT = 2223
"""The interceptor's Prometheus endpoint (OTel exporter, on by default, `OTEL_PROM_EXPORTER_PORT`). Chart 0.15.0 has
no Service for it, so the Gateway adds one: the scale-chain dashboard and the no-replica alert read
`interceptor_request_concurrency` from there."""
_LB = "service.beta.kubernetes.io/aws-load-balancer-"


def lb_annotations(controller: str, public: bool, idle_timeout_seconds: int, port: int,
                   certificate_arn: Optional[str]) -> dict:
    """Service annotations for an NLB, for the in-tree cloud provider or the AWS Load Balancer Controller."""
    if controller == "aws-lbc":
        ann = {
            f"{_LB}type": "external",
            f"{_LB}nlb-target-type": "ip",
            f"{_LB}scheme": "internet-facing" if public else "internal",
            f"{_LB}attributes": "load_balancing.cross_zone.enabled=true",
            # Long generations with few tokens/s and cold starts that hold a request for minutes.
            f"{_LB}listener-attributes.TCP-{port}": f"tcp.idle_timeout.seconds={idle_timeout_seconds}",
        }
    else:
        # In-tree (EKS built-in cloud provider): NLB with instance targets; TCP idle timeout stays 350 s.
        ann = {f"{_LB}type": "nlb", f"{_LB}cross-zone-load-balancing-enabled": "true"}
        if not public:
            ann[f"{_LB}internal"] = "true"
    if certificate_arn:
        ann[f"{_LB}ssl-cert"] = certificate_arn
        ann[f"{_LB}ssl-ports"] = str(port)
        ann[f"{_LB}backend-protocol"] = "tcp"
    return ann


def curl_example(endpoint: str, served_name: str, header: str, kind: str) -> str:
    """A ready-to-paste curl for /v1/completions or /v1/chat/completions (key read from $GPU_BURST_API_KEY)."""
    if kind == "chat":
        path = "/v1/chat/completions"
        body = {"model": served_name, "messages": [{"role": "user", "content": "Say hello in one sentence."}],
                "max_tokens": 64}
    else:
        path = "/v1/completions"
        body = {"model": served_name, "prompt": "The capital of France is", "max_tokens": 16}
    # --max-time covers a cold start (GPU node + image + weights) held by the interceptor.
    return (f"curl -sS --max-time 1200 {endpoint}{path} -H \"Authorization: Bearer ${API_KEY_ENV}\" "
            f"-H '{header}: {served_name}' -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}")


class GatewayArgs(TypedDict):
    """Inputs of the Gateway."""

    models_namespace: pulumi.Input[str]
    """Namespace of the model services; the API key Secret is created there."""
    interceptor_namespace: pulumi.Input[str]
    """Namespace of the HTTP add-on interceptor (the LoadBalancer Service must select its pods there)."""
    model_names: list[str]
    """Served names routed through the gateway (for outputs and curl examples)."""
    model_header: str
    """Header that selects the model at the interceptor."""
    allowed_cidrs: pulumi.Input[list[str]]
    """loadBalancerSourceRanges (resolved by the caller: config, else VPC CIDR / 0.0.0.0/0)."""
    public: NotRequired[bool]
    """Internet-facing NLB instead of an internal one."""
    load_balancer_controller: NotRequired[str]
    """`in-tree` (default) or `aws-lbc`."""
    idle_timeout_seconds: NotRequired[int]
    """NLB TCP idle timeout (aws-lbc only)."""
    certificate_arn: NotRequired[str]
    """ACM certificate: terminate TLS on 443 at the NLB."""
    api_key: NotRequired[pulumi.Input[str]]
    """API key (Pulumi secret); generated with random.RandomPassword when absent."""
    scrape_interceptor: NotRequired[bool]
    """Create a metrics Service + ServiceMonitor for the interceptor (needs the Prometheus operator CRDs: pass the
    monitoring release in `opts.depends_on`). Default true."""


class Gateway(pulumi.ComponentResource):
    """NLB in front of the KEDA HTTP add-on interceptor, plus the API key Secret that every vLLM replica enforces and
    the scrape of the interceptor's own metrics (requests held during a cold start)."""

    endpoint: pulumi.Output[str]
    """Base URL of the gateway (http(s)://<nlb-hostname>)."""
    hostname: pulumi.Output[str]
    """DNS name of the NLB."""
    api_key: pulumi.Output[str]
    """The API key (secret)."""
    api_key_secret_name: pulumi.Output[str]
    """Name of the Secret (key `api-key`) in the models namespace."""
    curl_examples: pulumi.Output[dict[str, dict[str, str]]]
    """Per model: ready-to-paste curl commands for `completions` and `chat` (no key inside)."""

    def __init__(self, name: str, args: GatewayArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("Gateway"), name, None, opts)
        deps = deps_of(opts)
        public = bool(args.get("public", False))
        controller = args.get("load_balancer_controller", "in-tree")
        if controller not in ("in-tree", "aws-lbc"):
            raise ValueError(f"Gateway '{name}': load_balancer_controller must be 'in-tree' or 'aws-lbc', got {controller!r}")
        cert = args.get("certificate_arn")
        port = 443 if cert else 80
        scheme = "https" if cert else "http"
        if public and not cert:
            pulumi.log.warn(f"Gateway '{name}': public endpoint without TLS; the API key travels in clear text. "
                            "Set gateway.certificateArn.", resource=self)

        api_key = args.get("api_key")
        if api_key is None:
            self.generated_key = random.RandomPassword(f"{name}-api-key-value", length=48, special=False,
                                                       opts=child(self))
            api_key = self.generated_key.result
        self.api_key = pulumi.Output.secret(api_key)

        lbl = labels("gateway", name)
        self.key_secret = k8s.core.v1.Secret(
            f"{name}-api-key",
            metadata={"namespace": args["models_namespace"], "labels": lbl},
            type="Opaque",
            string_data={API_KEY_SECRET_KEY: self.api_key},
            opts=child(self, deps, additional_secret_outputs=["data", "stringData"]),
        )

        self.service = k8s.core.v1.Service(
            f"{name}-lb",
            metadata={"namespace": args["interceptor_namespace"], "labels": lbl,
                      "annotations": lb_annotations(controller, public, int(args.get("idle_timeout_seconds", 900)),
                                                    port, cert)},
            spec={
                "type": "LoadBalancer",
                "selector": INTERCEPTOR_SELECTOR,
                "ports": [{"name": "http", "port": port, "targetPort": INTERCEPTOR_PROXY_PORT_NAME, "protocol": "TCP"}],
                "loadBalancerSourceRanges": args["allowed_cidrs"],
                "externalTrafficPolicy": "Cluster",
            },
            opts=child(self, deps),
        )

        if args.get("scrape_interceptor", True):
            metrics_labels = {**lbl, "app.kubernetes.io/component": "interceptor-metrics"}
            self.metrics_service = k8s.core.v1.Service(
                f"{name}-interceptor-metrics",
                metadata={"namespace": args["interceptor_namespace"], "labels": metrics_labels},
                spec={"type": "ClusterIP", "selector": INTERCEPTOR_SELECTOR,
                      # A numeric targetPort: the interceptor container does not declare this port by name.
                      "ports": [{"name": "metrics", "port": INTERCEPTOR_METRICS_PORT,
                                 "targetPort": INTERCEPTOR_METRICS_PORT, "protocol": "TCP"}]},
                opts=child(self, deps),
            )
            self.metrics_monitor = k8s.apiextensions.CustomResource(
                f"{name}-interceptor-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata={"namespace": self.metrics_service.metadata.namespace, "labels": metrics_labels},
                spec={
                    "selector": {"matchLabels": self.metrics_service.metadata.labels},
                    "namespaceSelector": {"matchNames": [self.metrics_service.metadata.namespace]},
                    "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "10s"}],
                },
                opts=child(self, deps),
            )

        def _host(status) -> str:
            ingress = (status.load_balancer.ingress or []) if status and status.load_balancer else []
            return (ingress[0].hostname or ingress[0].ip or "") if ingress else ""

        self.hostname = self.service.status.apply(_host)
        suffix = "" if port in (80, 443) else f":{port}"
        self.endpoint = self.hostname.apply(lambda h: f"{scheme}://{h}{suffix}")
        header = args["model_header"]
        models = list(args["model_names"])
        self.curl_examples = self.endpoint.apply(lambda ep: {
            m: {"completions": curl_example(ep, m, header, "completions"),
                "chat": curl_example(ep, m, header, "chat")} for m in models})
        self.api_key_secret_name = self.key_secret.metadata.name
        self.register_outputs({"endpoint": self.endpoint, "hostname": self.hostname, "api_key": self.api_key,
                               "api_key_secret_name": self.api_key_secret_name, "curl_examples": self.curl_examples})
