"""Shared helpers for the workload tests (no tests here): dev/prod-like configs, a fake Foundation/Addons under
mocks, lookups into the recorded requests, secret detection and strict validation of core Kubernetes objects."""

import re
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

ROOT = Path(__file__).resolve().parents[1]

DEV_MODELS = [{"servedName": "qwen2-5-1-5b-instruct", "hfModelId": "Qwen/Qwen2.5-1.5B-Instruct", "revision": "989aa7980e4cf806f80c7fef2b1adb7bc71aa306", "gpus": 1,
               "maxModelLen": 8192, "minReplicas": 0, "maxReplicas": 1, "idleBeforeScaleToZero": "10m",
               "pool": "gpu-on-demand", "memory": "12Gi", "cpu": "3", "cacheSize": "20Gi",
               "prewarm": [{"start": "50 7 * * 1-5", "end": "0 18 * * 1-5", "timezone": "UTC", "replicas": 1}]}]
PROD_MODELS = [
    {"servedName": "llama-3-1-8b-instruct", "hfModelId": "meta-llama/Llama-3.1-8B-Instruct", "revision": "0e9e39f249a16976918f6564b8830bc894c89659", "gpus": 1,
     "maxModelLen": 16384, "gpuMemoryUtilization": 0.92, "minReplicas": 0, "maxReplicas": 8,
     "idleBeforeScaleToZero": "20m", "targetQueueDepth": 4, "pool": "gpu-spot", "needsHfToken": True,
     "extraArgs": ["--enable-prefix-caching"], "cacheSize": "40Gi",
     # Office hours in Berlin with two replicas warm; the New York evening batch Sunday to Thursday, across midnight.
     "prewarm": [{"start": "50 7 * * 1-5", "end": "0 19 * * 1-5", "timezone": "Europe/Berlin", "replicas": 2},
                 {"start": "0 20 * * 0-4", "end": "0 6 * * 1-5", "timezone": "America/New_York", "replicas": 1}]},
    {"servedName": "qwen2-5-1-5b-instruct", "hfModelId": "Qwen/Qwen2.5-1.5B-Instruct", "revision": "989aa7980e4cf806f80c7fef2b1adb7bc71aa306", "gpus": 1,
     "minReplicas": 0, "maxReplicas": 2, "pool": "gpu-on-demand"},
]
PROD_GATEWAY = {"public": True, "allowedCidrs": ["203.0.113.0/24"], "keyRequestsPerMinute": {"team-a": 1200},
                "certificateArn": "arn:aws:acm:us-west-2:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666"}


PROD_KEYS = {"team-a": "sk-team-a-key-value-0001", "ci": "sk-ci-key-value-0002"}
"""Named client keys of the prod-like stack (as `gpu-burst:apiKeys` would hold them)."""


def raw_config(stack: str, **extra) -> dict:
    """Raw `validate()` input from Pulumi.<stack>.yaml plus extra keys (models, gateway, hfTokenSet)."""
    cfg = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    raw = {k.split(":", 1)[1]: v for k, v in cfg.items() if k.startswith("gpu-burst:")}
    raw["region"] = cfg["aws:region"]
    raw.update(extra)
    return raw


def stack_cfg(stack: str):
    from stacks.config import validate

    if stack == "dev":
        return validate(raw_config("dev", models=DEV_MODELS))
    return validate(raw_config("prod", models=PROD_MODELS, gateway=PROD_GATEWAY, hfTokenSet=True,
                               apiKeyNames=sorted(PROD_KEYS)))


class Fakes:
    """The Foundation/Addons contracts with real (mocked) resources where dependency edges matter."""

    def __init__(self, cfg):
        from stacks.contracts import Addons, Foundation

        self.provider = k8s.Provider("k8s", kubeconfig="{}")
        po = pulumi.ResourceOptions(provider=self.provider)
        rel = lambda n, chart, ns: k8s.helm.v3.Release(n, chart=chart, version="1.0.0", namespace=ns, opts=po)  # noqa: E731
        self.karpenter = rel("karpenter", "karpenter", "kube-system")
        self.karpenter_crd = rel("karpenter-crd", "karpenter-crd", "kube-system")
        self.keda = rel("keda", "keda", "keda")
        self.http_addon = rel("http-add-on", "keda-add-ons-http", "keda")
        self.monitoring = rel("monitoring", "kube-prometheus-stack", "monitoring")
        self.pools = k8s.core.v1.ConfigMap("gpu-pools-standin", data={"pools": "x"}, opts=po)
        self.foundation = Foundation(
            cfg=cfg, cluster_name=pulumi.Output.from_input("gpu-burst-eks"),
            cluster_security_group_id=pulumi.Output.from_input("sg-1"), vpc_id=pulumi.Output.from_input("vpc-1"),
            vpc_cidr=pulumi.Output.from_input("10.40.0.0/16"), k8s_provider=self.provider,
            private_subnet_ids=pulumi.Output.from_input(["subnet-1"]), kubeconfig=pulumi.Output.from_input("{}"),
            node_role_name=pulumi.Output.from_input("node-role"), karpenter_release=self.karpenter,
            karpenter_interruption_queue=pulumi.Output.from_input("queue"),
            control_plane_log_group=pulumi.Output.from_input(""),
            karpenter_crd_release=self.karpenter_crd, system_ready=[])
        self.addons = Addons(
            gpu_pool_names=[p.name for p in cfg.gpu.pools], gpu_pools=self.pools, keda_release=self.keda,
            http_addon_release=self.http_addon, monitoring_release=self.monitoring,
            prometheus_url=pulumi.Output.from_input("http://kps-prometheus.monitoring.svc:9090"),
            external_scaler_address=pulumi.Output.from_input("keda-add-ons-http-external-scaler.keda:9090"),
            interceptor_namespace=pulumi.Output.from_input("keda"),
            interceptor_proxy_service=pulumi.Output.from_input("keda-add-ons-http-interceptor-proxy"),
            interceptor_proxy_port=8080, dashboards_namespace=pulumi.Output.from_input("monitoring"),
            dashboard_label={"grafana_dashboard": "1"}, monitoring_namespace=pulumi.Output.from_input("monitoring"),
            grafana_service=pulumi.Output.from_input("kube-prometheus-stack-grafana"),
            gpu_toleration={"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})


def run_workload(stack: str, api_keys: Optional[dict] = None, hf_token: Optional[str] = "hf_secret_token_value"):
    """Evaluate build_workload under the active mocks; returns (outputs, fakes, cfg). `api_keys` defaults to
    PROD_KEYS on prod and to none (one generated key) on dev."""
    from stack_helpers import evaluate

    from stacks.workload import build_workload

    cfg = stack_cfg(stack)
    box = {}

    def program():
        fakes = Fakes(cfg)
        box["fakes"] = fakes
        keys = api_keys if api_keys is not None else (PROD_KEYS if stack == "prod" else None)
        key = pulumi.Output.secret(keys) if keys else None
        token = pulumi.Output.secret(hf_token) if hf_token and cfg.hf_token_set else None
        return build_workload(fakes.foundation, fakes.addons, key, token)

    outputs = evaluate(program)
    return outputs, box["fakes"], cfg


# -- recorded resources ----------------------------------------------------------------------------------------
def of_kind(mocks, kind: str) -> list:
    return [r for r in mocks.created if r.typ.startswith("kubernetes:") and r.typ.endswith(f":{kind}")]


def _unwrap(v):
    """Recorded inputs keep Pulumi secrets as {<sig>: <secret sig>, "value": ...}; return the plain value."""
    if isinstance(v, dict):
        if v.get(_SECRET_SIG[0]) == _SECRET_SIG[1]:
            return _unwrap(v.get("value"))
        return {k: _unwrap(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_unwrap(x) for x in v]
    return v


def as_object(r) -> dict:
    """apiVersion/kind/metadata/spec of a recorded Kubernetes resource (type token kubernetes:<group/ver>:<Kind>)."""
    _, api_version, kind = r.typ.split(":")
    api_version = api_version.removeprefix("core/")
    obj = {"apiVersion": api_version, "kind": kind}
    obj.update({k: _unwrap(v) for k, v in r.inputs.items() if k not in ("apiVersion", "kind")})
    return obj


def named(mocks, kind: str, name: str) -> dict:
    matches = [as_object(r) for r in of_kind(mocks, kind) if (r.inputs.get("metadata") or {}).get("name") == name]
    assert len(matches) == 1, f"expected one {kind} named {name}, found {len(matches)}"
    return matches[0]


def dependency_names(mocks, resource_name: str) -> set:
    """Logical names of the explicit + data dependencies recorded for a resource."""
    req = mocks.monitor.requests[resource_name]
    return {u.split("::")[-1] for u in req.dependencies}


# -- secrets -----------------------------------------------------------------------------------------------------
_SECRET_SIG = ("4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270")


def _contains_secret(value) -> bool:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        fields = value.struct_value.fields
        if _SECRET_SIG[0] in fields and fields[_SECRET_SIG[0]].string_value == _SECRET_SIG[1]:
            return True
        return any(_contains_secret(v) for v in fields.values())
    if kind == "list_value":
        return any(_contains_secret(v) for v in value.list_value.values)
    return False


def field_is_secret(mocks, resource_name: str, field: str) -> bool:
    """Whether the recorded RegisterResource input `field` is (or contains) a Pulumi secret."""
    obj = mocks.monitor.requests[resource_name].object
    return field in obj.fields and _contains_secret(obj.fields[field])


# -- strict validation of core objects ---------------------------------------------------------------------------
def strict_core_errors(obj: dict, model: str) -> list[str]:
    """Errors of `obj` against the kubernetes python client model `model` (e.g. V1Deployment): unknown (misspelt)
    keys at any depth, wrong container types, and the client's own required-field checks on deserialization."""
    import kubernetes.client as kc
    from kubernetes.client import ApiClient

    errors: list[str] = []

    def walk(value, typ: str, path: str):
        if value is None:
            return
        if typ.startswith("list["):
            if not isinstance(value, list):
                errors.append(f"{path}: expected a list")
                return
            for i, v in enumerate(value):
                walk(v, typ[5:-1], f"{path}[{i}]")
            return
        if typ.startswith(("dict(", "dict[")):
            if not isinstance(value, dict):
                errors.append(f"{path}: expected a map")
                return
            inner = re.match(r"dict[(\[]str, (.*)[)\]]$", typ).group(1)
            for k, v in value.items():
                walk(v, inner, f"{path}.{k}")
            return
        if typ in ("str", "int", "bool", "float", "object", "datetime", "date"):
            if typ == "str" and not isinstance(value, str):
                errors.append(f"{path}: expected a string, got {value!r}")
            # Recorded inputs went through protobuf, so integers arrive as floats: accept whole numbers.
            if typ == "int" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                 or not float(value).is_integer()):
                errors.append(f"{path}: expected an integer, got {value!r}")
            if typ == "bool" and not isinstance(value, bool):
                errors.append(f"{path}: expected a boolean, got {value!r}")
            return
        cls = getattr(kc, typ)
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object ({typ})")
            return
        json_to_attr = {j: a for a, j in cls.attribute_map.items()}
        for k, v in value.items():
            if k not in json_to_attr:
                errors.append(f"{path}.{k}: unknown field of {typ}")
                continue
            walk(v, cls.openapi_types[json_to_attr[k]], f"{path}.{k}")

    walk(obj, model, obj.get("kind", model))
    if not errors:
        try:
            ApiClient()._ApiClient__deserialize(obj, model)
        except (ValueError, TypeError) as e:
            errors.append(f"{model}: {e}")
    return errors
