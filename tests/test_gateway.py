"""Gateway under mocks: the NLB Service in front of the interceptor, the API key (generated or given, always secret),
and the secret-free curl outputs."""

import pulumi
import pytest
from pulumi_mocks import autoname
from stack_helpers import resolve
from test_workload_support import as_object, dependency_names, field_is_secret, of_kind, run_workload, strict_core_errors

from components.gateway import INTERCEPTOR_SELECTOR

LB = "service.beta.kubernetes.io/aws-load-balancer-"


def _is_secret(output: pulumi.Output) -> bool:
    from pulumi.runtime.sync_await import _sync_await

    return _sync_await(output.is_secret())


def _lb(mocks) -> dict:
    (svc,) = [as_object(r) for r in of_kind(mocks, "Service") if r.name == "gpu-burst-gateway-lb"]
    return svc


def test_dev_internal_nlb_in_front_of_the_interceptor(mocks):
    run_workload("dev")
    svc = _lb(mocks)
    assert svc["metadata"]["namespace"] == "keda"
    ann = svc["metadata"]["annotations"]
    assert ann[f"{LB}type"] == "nlb" and ann[f"{LB}internal"] == "true"
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["selector"] == INTERCEPTOR_SELECTOR
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "proxy", "protocol": "TCP"}]
    assert svc["spec"]["loadBalancerSourceRanges"] == ["10.40.0.0/16"]  # VPC CIDR by default
    assert strict_core_errors(svc, "V1Service") == []
    assert {"http-add-on", "gpu-burst-inference"} <= dependency_names(mocks, "gpu-burst-gateway-lb")


def test_prod_public_lbc_tls_and_idle_timeout(mocks):
    out, _, cfg = run_workload("prod")
    svc = _lb(mocks)
    ann = svc["metadata"]["annotations"]
    assert ann[f"{LB}type"] == "external" and ann[f"{LB}nlb-target-type"] == "ip"
    assert ann[f"{LB}scheme"] == "internet-facing"
    assert ann[f"{LB}listener-attributes.TCP-443"] == "tcp.idle_timeout.seconds=1200"
    assert ann[f"{LB}ssl-cert"] == cfg.gateway.certificate_arn and ann[f"{LB}ssl-ports"] == "443"
    assert svc["spec"]["loadBalancerSourceRanges"] == ["203.0.113.0/24"]
    assert svc["spec"]["ports"][0]["port"] == 443
    assert resolve(out["endpoint"]).startswith("https://") and resolve(out["endpoint"]).endswith(".amazonaws.com")


def test_generated_api_key_is_secret_end_to_end(mocks):
    out, _, _ = run_workload("dev", api_key=None)
    (pw,) = mocks.of_type("random:index/randomPassword:RandomPassword")
    assert pw.inputs["length"] >= 32 and pw.inputs["special"] is False
    assert field_is_secret(mocks, "gpu-burst-gateway-api-key", "stringData")
    assert _is_secret(out["apiKey"]) is True
    key_secret = [as_object(r) for r in of_kind(mocks, "Secret") if r.name == "gpu-burst-gateway-api-key"][0]
    assert key_secret["metadata"]["namespace"] == "inference"
    assert list(key_secret["stringData"]) == ["api-key"]
    assert strict_core_errors(key_secret, "V1Secret") == []


def test_configured_api_key_is_used_and_never_printed(mocks):
    out, _, cfg = run_workload("dev", api_key="sk-configured-key-123")
    assert mocks.of_type("random:index/randomPassword:RandomPassword") == []
    assert resolve(out["apiKey"]) == "sk-configured-key-123"
    assert field_is_secret(mocks, "gpu-burst-gateway-api-key", "stringData")
    for key in ("curlCompletions", "curlChatCompletions"):
        assert _is_secret(out[key]) is False
        for cmd in resolve(out[key]).values():
            assert "sk-configured-key-123" not in cmd
    for r in mocks.created:  # the literal key only ever sits in the Secret's stringData
        if r.name != "gpu-burst-gateway-api-key":
            assert "sk-configured-key-123" not in repr(r.inputs), r.name


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_outputs_endpoint_models_and_curl(mocks, stack):
    out, _, cfg = run_workload(stack)
    endpoint = resolve(out["endpoint"])
    assert endpoint == ("https://" if stack == "prod" else "http://") + f"{autoname('gpu-burst-gateway-lb')}.elb.us-west-2.amazonaws.com"
    assert out["models"] == [m.served_name for m in cfg.models]
    completions, chat = resolve(out["curlCompletions"]), resolve(out["curlChatCompletions"])
    for m in cfg.models:
        for cmd, path in ((completions[m.served_name], "/v1/completions"), (chat[m.served_name], "/v1/chat/completions")):
            assert cmd.startswith(f"curl -sS --max-time 1200 {endpoint}{path} ")
            assert '-H "Authorization: Bearer $GPU_BURST_API_KEY"' in cmd
            assert f"-H 'X-Model: {m.served_name}'" in cmd and f'"model": "{m.served_name}"' in cmd
    assert '"messages"' in chat[cfg.models[0].served_name] and '"prompt"' in completions[cfg.models[0].served_name]


def test_bad_gateway_values_rejected():
    from stacks.config import ConfigError, validate
    from test_workload_support import raw_config

    with pytest.raises(ConfigError) as e:
        validate(raw_config("dev", gateway={"allowedCidrs": ["10.0.0.0/33"], "loadBalancerController": "nginx",
                                            "certificateArn": "not-an-arn"}))
    lines = e.value.lines
    assert any(ln.startswith("gpu-burst:gateway.allowedCidrs[0]: '10.0.0.0/33' is not a CIDR block") for ln in lines)
    assert any(ln.startswith("gpu-burst:gateway.loadBalancerController:") and "in-tree" in ln for ln in lines)
    assert any(ln.startswith("gpu-burst:gateway.certificateArn: 'not-an-arn' is not an ACM certificate ARN") for ln in lines)


def test_public_without_tls_warns(mocks, monkeypatch):
    warnings = []
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: warnings.append(msg))
    from components.gateway import Gateway
    from stack_helpers import evaluate

    evaluate(lambda: Gateway("gw", {"models_namespace": "inference", "interceptor_namespace": "keda",
                                    "model_names": ["m"], "model_header": "X-Model", "allowed_cidrs": ["0.0.0.0/0"],
                                    "public": True}))
    assert any("without TLS" in w for w in warnings)
