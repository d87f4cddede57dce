"""Ground truth from ../shared/reference/upstream: CRD schemas and chart default values.

Tests that need these files skip with a clear reason when the folder is absent (e.g. outside this workplace)."""

import functools
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

UPSTREAM = Path(os.environ.get("GPU_BURST_UPSTREAM", Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "upstream"))

needs_upstream = pytest.mark.skipif(
    not UPSTREAM.is_dir(), reason=f"upstream reference files not found at {UPSTREAM} (set GPU_BURST_UPSTREAM)"
)

CRD_FILES = {
    ("karpenter.sh", "NodePool"): "karpenter/karpenter.sh_nodepools.yaml",
    ("karpenter.sh", "NodeClaim"): "karpenter/karpenter.sh_nodeclaims.yaml",
    ("karpenter.k8s.aws", "EC2NodeClass"): "karpenter/karpenter.k8s.aws_ec2nodeclasses.yaml",
    ("keda.sh", "ScaledObject"): "keda/keda.sh_scaledobjects.yaml",
    ("keda.sh", "TriggerAuthentication"): "keda/keda.sh_triggerauthentications.yaml",
    ("http.keda.sh", "HTTPScaledObject"): "http-add-on/http.keda.sh_httpscaledobjects.yaml",
    ("http.keda.sh", "InterceptorRoute"): "http-add-on/http.keda.sh_interceptorroutes.yaml",
    ("monitoring.coreos.com", "ServiceMonitor"): "prometheus-operator/monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com", "PodMonitor"): "prometheus-operator/monitoring.coreos.com_podmonitors.yaml",
    ("monitoring.coreos.com", "PrometheusRule"): "prometheus-operator/monitoring.coreos.com_prometheusrules.yaml",
    ("gateway.networking.k8s.io", "GatewayClass"): "envoy-gateway/gatewayapi-crds.yaml",
    ("gateway.networking.k8s.io", "Gateway"): "envoy-gateway/gatewayapi-crds.yaml",
    ("gateway.networking.k8s.io", "HTTPRoute"): "envoy-gateway/gatewayapi-crds.yaml",
    ("gateway.envoyproxy.io", "EnvoyProxy"): "envoy-gateway/gateway.envoyproxy.io_envoyproxies.yaml",
    ("gateway.envoyproxy.io", "SecurityPolicy"): "envoy-gateway/gateway.envoyproxy.io_securitypolicies.yaml",
    ("gateway.envoyproxy.io", "BackendTrafficPolicy"): "envoy-gateway/gateway.envoyproxy.io_backendtrafficpolicies.yaml",
    ("gateway.envoyproxy.io", "ClientTrafficPolicy"): "envoy-gateway/gateway.envoyproxy.io_clienttrafficpolicies.yaml",
    ("gateway.envoyproxy.io", "Backend"): "envoy-gateway/gateway.envoyproxy.io_backends.yaml",
    ("aigateway.envoyproxy.io", "AIGatewayRoute"): "envoy-ai-gateway/aigateway.envoyproxy.io_aigatewayroutes.yaml",
    ("aigateway.envoyproxy.io", "AIServiceBackend"): "envoy-ai-gateway/aigateway.envoyproxy.io_aiservicebackends.yaml",
    ("aigateway.envoyproxy.io", "GatewayConfig"): "envoy-ai-gateway/aigateway.envoyproxy.io_gatewayconfigs.yaml",
    ("aigateway.envoyproxy.io", "BackendSecurityPolicy"):
        "envoy-ai-gateway/aigateway.envoyproxy.io_backendsecuritypolicies.yaml",
}

CHART_VALUES = {
    "karpenter": "karpenter/values.yaml",
    "keda": "keda/values.yaml",
    "keda-add-ons-http": "http-add-on/values.yaml",
    "kube-prometheus-stack": "kube-prometheus-stack/values.yaml",
    "nvidia-device-plugin": "nvidia-device-plugin/values.yaml",
    "gateway-helm": "envoy-gateway/values.tmpl.yaml",
    "ai-gateway-helm": "envoy-ai-gateway/values.yaml",
    "aws-load-balancer-controller": "aws-load-balancer-controller/values.yaml",
    "gateway-crds-helm": "envoy-gateway/gateway-crds-helm/values.yaml",
    "prometheus-operator-crds": "prometheus-operator-crds/values.yaml",
}

AI_GATEWAY_EG_VALUES = "envoy-ai-gateway/envoy-gateway-config-for-ai-gateway.yaml"
"""The Envoy Gateway values the AI Gateway requires (upstream manifests/envoy-gateway-values.yaml)."""
LBC_IAM_POLICY = "aws-load-balancer-controller/iam_policy.json"


@functools.cache
def _load(rel: str) -> Any:
    with open(UPSTREAM / rel) as f:
        return yaml.safe_load(f)


@functools.cache
def _load_all(rel: str) -> tuple:
    with open(UPSTREAM / rel) as f:
        return tuple(d for d in yaml.safe_load_all(f) if d)


def load_upstream(rel: str) -> Any:
    """An upstream file, parsed (JSON or YAML)."""
    return _load(rel)


def crd_schema(api_version: str, kind: str) -> dict:
    """The openAPIV3Schema of `kind` at `api_version` from the upstream CRD file (a file may hold several CRDs)."""
    group, _, version = api_version.partition("/")
    crds = [d for d in _load_all(CRD_FILES[(group, kind)])
            if d.get("kind") == "CustomResourceDefinition" and d["spec"]["names"]["kind"] == kind
            and d["spec"]["group"] == group]
    assert crds, f"no CRD for {group}/{kind} in {CRD_FILES[(group, kind)]}"
    crd = crds[0]
    for v in crd["spec"]["versions"]:
        if v["name"] == version:
            return v["schema"]["openAPIV3Schema"]
    raise AssertionError(f"{kind} CRD has no version {version}")


def _strict(schema: Any) -> Any:
    """Make a CRD schema reject unknown fields, as the API server's structural pruning + strict field validation
    does (kubectl/SSA report unknown fields as errors); preserve-unknown-fields objects stay open."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes")}
        if schema.get("type") == "object" and "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        if "x-kubernetes-int-or-string" in schema:
            out.pop("type", None)
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def validate_cr(obj: dict) -> list[str]:
    """Validate a custom resource (apiVersion, kind, metadata, spec) against its upstream CRD schema.
    Returns the list of error messages (empty when valid). CEL rules (x-kubernetes-validations) are not evaluated."""
    import jsonschema

    schema = _strict(crd_schema(obj["apiVersion"], obj["kind"]))
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(obj)]


def chart_values(chart: str) -> dict:
    return _load(CHART_VALUES[chart])


def unknown_value_keys(chart: str, values: dict, open_paths: tuple[str, ...] = ()) -> list[str]:
    """Dotted paths in `values` that do not exist in the chart's default values.yaml.

    Below a key whose default is an empty map/list, or listed in `open_paths`, anything goes (free-form maps such as
    nodeSelector, podAnnotations or resources)."""
    defaults = chart_values(chart)
    missing: list[str] = []

    def walk(user: Any, default: Any, path: str) -> None:
        if path in open_paths or not isinstance(user, dict):
            return
        if not isinstance(default, dict) or not default:
            return
        for k, v in user.items():
            p = f"{path}.{k}" if path else k
            if k not in default:
                missing.append(p)
            else:
                walk(v, default[k], p)

    walk(values, defaults, "")
    return missing
