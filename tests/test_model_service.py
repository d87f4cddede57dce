"""ModelService under mocks for dev- and prod-like configs: Deployment shape, probes, drain, secrets, Service/PDB,
ServiceMonitor, InterceptorRoute, ScaledObject (CRD-validated), dependency edges, and config errors."""

import json

import pytest

from components.edge_gateway import MODEL_HEADER
from pulumi_mocks import autoname
from test_workload_support import (
    DEV_MODELS,
    PROD_MODELS,
    as_object,
    dependency_names,
    field_is_secret,
    named,
    of_kind,
    raw_config,
    run_workload,
    strict_core_errors,
)
from upstream import needs_upstream, validate_cr

from components.model_service import queue_depth_query
from stacks.config import ConfigError, duration_seconds, validate

STACKS = ["dev", "prod"]


def _container(dep: dict) -> dict:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


@pytest.mark.parametrize("stack", STACKS)
def test_deployment_leaves_replicas_to_keda(mocks, stack):
    _, _, cfg = run_workload(stack)
    for m in cfg.models:
        dep = named(mocks, "Deployment", m.served_name)
        # Created at minReplicas (0: no GPU bought by `pulumi up`), then left to KEDA.
        assert dep["spec"]["replicas"] == m.min_replicas == 0
        assert list(mocks.monitor.requests[f"model-{m.served_name}"].ignoreChanges) == ["spec.replicas"]
        assert "pulumi.com/patchForce" not in dep["metadata"].get("annotations", {})


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_placement_and_volumes(mocks, stack):
    _, _, cfg = run_workload(stack)
    for m in cfg.models:
        dep = named(mocks, "Deployment", m.served_name)
        pod = dep["spec"]["template"]["spec"]
        c = _container(dep)
        assert c["resources"]["requests"]["nvidia.com/gpu"] == str(m.gpus)
        assert c["resources"]["limits"]["nvidia.com/gpu"] == str(m.gpus)
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        assert pod["nodeSelector"] == {"gpu-burst.io/traffic-class": cfg.gpu.traffic_class_of(m.pool),
                                       "nvidia.com/gpu.present": "true"}
        vols = {v["name"]: v for v in pod["volumes"]}
        assert vols["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": m.shm_size}
        assert vols["model-cache"]["emptyDir"]["sizeLimit"] == m.cache_size
        assert c["resources"]["requests"]["ephemeral-storage"] == m.cache_size
        assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
        assert not any("hostPath" in v for v in pod["volumes"]) and not pod.get("hostNetwork")
        assert c["image"] == m.image and not c["image"].endswith(":latest") and ":v" in c["image"]


@pytest.mark.parametrize("stack", STACKS)
def test_vllm_args(mocks, stack):
    _, _, cfg = run_workload(stack)
    for m in cfg.models:
        args = _container(named(mocks, "Deployment", m.served_name))["args"]
        # The model is positional (`serve --model=X` is deprecated in vLLM 0.33) and is the model store's prefix.
        assert args[0].startswith("s3://gpu-burst-models-") and args[0].endswith(f"/{m.hf_model_id}/{m.revision}/")
        assert args[1] == "--load-format=runai_streamer"
        assert json.loads(args[2].removeprefix("--model-loader-extra-config=")) == {
            "concurrency": m.runai_concurrency, "memory_limit": m.runai_memory_limit_gib * 2**30}
        assert args[3:9] == [f"--served-model-name={m.served_name}", "--host=0.0.0.0",
                             "--port=8000", f"--tensor-parallel-size={m.gpus}", f"--max-model-len={m.max_model_len}",
                             f"--gpu-memory-utilization={m.gpu_memory_utilization}"]
        assert args[9:] == list(m.extra_args)
        assert not any(a.startswith("--api-key") for a in args)


@pytest.mark.parametrize("stack", STACKS)
def test_probes_survive_a_cold_start(mocks, stack):
    _, _, cfg = run_workload(stack)
    for m in cfg.models:
        c = _container(named(mocks, "Deployment", m.served_name))
        sp = c["startupProbe"]
        assert sp["httpGet"]["path"] == "/health"
        assert sp["failureThreshold"] * sp["periodSeconds"] >= duration_seconds(m.startup_budget) >= 900
        assert c["livenessProbe"]["httpGet"]["path"] == "/health"
        ready = " ".join(c["readinessProbe"]["exec"]["command"])
        assert "/v1/models" in ready and "os.environ['VLLM_API_KEY']" in ready
        # On the cold-start path: the startup probe is a cheap refused connection until the engine is up, probed every
        # second; the readiness exec runs at once after startup succeeds and only its retries wait a period.
        assert sp["periodSeconds"] == 1
        assert c["readinessProbe"]["periodSeconds"] == 2 and c["readinessProbe"]["failureThreshold"] == 3
        dep = named(mocks, "Deployment", m.served_name)
        assert dep["spec"]["progressDeadlineSeconds"] > m.startup_seconds


@pytest.mark.parametrize("stack", STACKS)
def test_graceful_drain_and_disruption(mocks, stack):
    _, _, cfg = run_workload(stack)
    for m in cfg.models:
        dep = named(mocks, "Deployment", m.served_name)
        pod = dep["spec"]["template"]["spec"]
        c = _container(dep)
        assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(m.drain_seconds)]
        assert pod["terminationGracePeriodSeconds"] >= m.drain_seconds + 30
        assert dep["spec"]["template"]["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
        pdb = named(mocks, "PodDisruptionBudget", m.served_name)
        assert pdb["spec"]["maxUnavailable"] == 1
        assert pdb["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("stack", STACKS)
def test_container_security(mocks, stack):
    _, _, cfg = run_workload(stack)
    for m in cfg.models:
        dep = named(mocks, "Deployment", m.served_name)
        sc = _container(dep)["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsNonRoot"] is True and sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert dep["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_never_in_plaintext(mocks, stack):
    _, _, cfg = run_workload(stack, hf_token="hf_secret_token_value")
    for m in cfg.models:
        dep = named(mocks, "Deployment", m.served_name)
        env = {e["name"]: e for e in _container(dep)["env"]}
        assert "value" not in env["VLLM_API_KEY"] and env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "apiKey"
        assert "hf_secret_token_value" not in repr(dep)
        # Replicas stream from the model store: the token lives only with the staging Job (tests/test_model_store.py).
        assert "HF_TOKEN" not in env and [r for r in of_kind(mocks, "Secret")
                                          if r.name == f"model-{m.served_name}-hf-token"] == []
        hf_secrets = [r for r in of_kind(mocks, "Secret") if r.name == f"weights-{m.served_name}-hf-token"]
        if m.needs_hf_token:
            (sec,) = hf_secrets
            assert field_is_secret(mocks, sec.name, "stringData")
            assert strict_core_errors(as_object(sec), "V1Secret") == []
        else:
            assert hf_secrets == []


@pytest.mark.parametrize("stack", STACKS)
def test_core_objects_are_strictly_valid(mocks, stack):
    _, _, cfg = run_workload(stack)
    for m in cfg.models:
        assert strict_core_errors(named(mocks, "Deployment", m.served_name), "V1Deployment") == []
        assert strict_core_errors(named(mocks, "Service", m.served_name), "V1Service") == []
        assert strict_core_errors(named(mocks, "PodDisruptionBudget", m.served_name), "V1PodDisruptionBudget") == []


def test_strict_validation_catches_a_misspelt_field(mocks):
    run_workload("dev")
    dep = named(mocks, "Deployment", DEV_MODELS[0]["servedName"])
    dep["spec"]["template"]["spec"]["containers"][0]["startupPobe"] = {"periodSeconds": 1}
    dep["spec"]["template"]["spec"]["tolerations"][0]["efect"] = "NoSchedule"
    errs = strict_core_errors(dep, "V1Deployment")
    assert any("startupPobe: unknown field of V1Container" in e for e in errs)
    assert any("efect: unknown field of V1Toleration" in e for e in errs)
    assert strict_core_errors({"apiVersion": "v1", "kind": "Service", "spec": {"ports": "http"}}, "V1Service")


@pytest.mark.parametrize("stack", STACKS)
def test_service_and_service_monitor(mocks, stack):
    _, fakes, cfg = run_workload(stack)
    for m in cfg.models:
        svc = named(mocks, "Service", m.served_name)
        assert svc["spec"]["type"] == "ClusterIP"
        assert svc["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP",
                                         "appProtocol": "http"}]
        dep = named(mocks, "Deployment", m.served_name)
        assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
        sm = named(mocks, "ServiceMonitor", m.served_name)
        assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        (ep,) = sm["spec"]["endpoints"]
        assert ep["port"] == "http" and ep["path"] == "/metrics" and ep["interval"] == "5s"
        assert sm["metadata"]["labels"]["release"] == autoname("monitoring")  # harmless extra selector label


@needs_upstream
@pytest.mark.parametrize("stack", STACKS)
def test_custom_resources_validate_against_upstream_crds(mocks, stack):
    _, _, cfg = run_workload(stack)
    kinds = ("ScaledObject", "InterceptorRoute", "ServiceMonitor")
    for kind in kinds:
        objs = [as_object(r) for r in of_kind(mocks, kind)]
        per_model = [o for o in objs if o["metadata"]["labels"].get("app.kubernetes.io/component") == "model-service"]
        assert len(per_model) == len(cfg.models)
        for obj in objs:  # the gateway's interceptor ServiceMonitor included
            assert validate_cr(obj) == [], (kind, obj["metadata"].get("name"))


@pytest.mark.parametrize("stack", STACKS)
def test_scaled_object_two_tier(mocks, stack):
    _, _, cfg = run_workload(stack)
    for m in cfg.models:
        so = named(mocks, "ScaledObject", m.served_name)["spec"]
        assert so["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": m.served_name}
        assert (so["minReplicaCount"], so["maxReplicaCount"]) == (m.min_replicas, m.max_replicas)
        assert so["pollingInterval"] <= 5
        assert so["cooldownPeriod"] == duration_seconds(m.idle_before_scale_to_zero)
        assert so["initialCooldownPeriod"] == 0  # nothing runs at creation, so nothing to protect
        beh = so["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert beh["scaleUp"]["stabilizationWindowSeconds"] == 0
        assert beh["scaleDown"]["stabilizationWindowSeconds"] >= 300
        push, prom, *cron = so["triggers"]
        assert cron == [{"type": "cron", "name": f"prewarm-{i}", "metricType": "AverageValue", "metadata": {
            "timezone": w.timezone, "start": w.start, "end": w.end, "desiredReplicas": str(w.replicas)}}
            for i, w in enumerate(m.prewarm)]
        assert push == {"type": "external-push", "name": "interceptor", "metadata": {
            "scalerAddress": "keda-add-ons-http-external-scaler.keda:9090", "interceptorRoute": m.served_name,
            "concurrencyTargetValue": str(m.target_concurrency)}}
        assert prom["type"] == "prometheus"
        assert prom["metadata"] == {
            "serverAddress": "http://kps-prometheus.monitoring.svc:9090",
            "query": f'sum(vllm:num_requests_waiting{{model_name="{m.served_name}"}}) or vector(0)',
            "threshold": str(m.target_queue_depth), "activationThreshold": str(m.target_queue_depth)}
        assert all(isinstance(v, str) for t in so["triggers"] for v in t["metadata"].values())


def test_promql_text_per_model():
    assert queue_depth_query("qwen2-5-1-5b-instruct") == \
        'sum(vllm:num_requests_waiting{model_name="qwen2-5-1-5b-instruct"}) or vector(0)'
    assert queue_depth_query("llama-3-1-8b-instruct") == \
        'sum(vllm:num_requests_waiting{model_name="llama-3-1-8b-instruct"}) or vector(0)'


@pytest.mark.parametrize("stack", STACKS)
def test_interceptor_route(mocks, stack):
    _, _, cfg = run_workload(stack)
    http = cfg.addons.http_addon
    for m in cfg.models:
        ir = named(mocks, "InterceptorRoute", m.served_name)
        assert ir["apiVersion"] == "http.keda.sh/v1beta1" and ir["metadata"]["namespace"] == cfg.gateway.namespace
        spec = ir["spec"]
        assert spec["target"] == {"service": m.served_name, "portName": "http"}
        assert spec["rules"][0] == {"hosts": ["*"], "paths": [{"value": "/v1"}],
                                    "headers": [{"name": MODEL_HEADER, "value": m.served_name}]}
        assert spec["timeouts"] == {"readiness": http.readiness_timeout, "responseHeader": http.response_header_timeout}
        assert spec["scalingMetric"] == {"concurrency": {"targetValue": m.target_concurrency}}
        assert "coldStart" not in spec  # hold the request; no placeholder/fallback


@pytest.mark.parametrize("stack", STACKS)
def test_dependency_edges(mocks, stack):
    _, _, cfg = run_workload(stack)
    for m in cfg.models:
        so = dependency_names(mocks, f"model-{m.served_name}-scaler")
        assert {"keda", "http-add-on", f"model-{m.served_name}-route", f"model-{m.served_name}"} <= so
        assert {"http-add-on"} <= dependency_names(mocks, f"model-{m.served_name}-route")
        assert {"monitoring"} <= dependency_names(mocks, f"model-{m.served_name}-monitor")
        assert {"gpu-pools-standin", "gpu-burst-inference"} <= dependency_names(mocks, f"model-{m.served_name}")
        # vLLM reads the internal key from the edge's Secret: the Deployment waits for it (data dependency).
        assert "gpu-burst-edge-internal-key" in dependency_names(mocks, f"model-{m.served_name}")


# -- config errors ------------------------------------------------------------------------------------------------
def _errors(**extra) -> list[str]:
    with pytest.raises(ConfigError) as e:
        validate(raw_config("dev", **extra))
    return e.value.lines


def test_duplicate_served_names_rejected():
    lines = _errors(models=[DEV_MODELS[0], dict(DEV_MODELS[0], hfModelId="Qwen/Qwen2.5-3B-Instruct")])
    assert "gpu-burst:models[1].servedName: 'qwen2-5-1-5b-instruct' is already used by models[0]; allowed: a " \
           "servedName unique across gpu-burst:models" in lines


def test_min_above_max_rejected():
    lines = _errors(models=[dict(DEV_MODELS[0], minReplicas=5, maxReplicas=2)])
    assert lines == ["gpu-burst:models[0].minReplicas: 5 is above maxReplicas (2); allowed: 0 to 2"]


def test_gpus_above_pool_per_node_rejected():
    lines = _errors(models=[dict(DEV_MODELS[0], gpus=4)])
    assert lines == ["gpu-burst:models[0].gpus: 4 GPUs do not fit on one node of pool 'gpu-on-demand' "
                     "(gpusPerNode [1]); allowed: at most 1, or a pool with larger nodes"]


def test_missing_token_for_gated_model_rejected():
    lines = _errors(models=[dict(PROD_MODELS[0], pool="gpu-on-demand", maxReplicas=1, prewarm=[])])
    assert lines == ["gpu-burst:models[0].needsHfToken: model 'meta-llama/Llama-3.1-8B-Instruct' is gated but "
                     "gpu-burst:hfToken is not set; run `pulumi config set --secret hfToken <token>`"]
    # ...unless the stack opts out of the check
    validate(raw_config("dev", models=[dict(PROD_MODELS[0], pool="gpu-on-demand", maxReplicas=1, prewarm=[])],
                        gateway={"requireHfTokenForGated": False}))


@pytest.mark.parametrize("patch, message", [
    ({"servedName": "Llama-3.1"}, "gpu-burst:models[0].servedName: 'Llama-3.1' is not a DNS label"),
    ({"image": "vllm/vllm-openai:latest"}, "gpu-burst:models[0].image: image 'vllm/vllm-openai:latest' is not pinned"),
    ({"image": "vllm/vllm-openai"}, "gpu-burst:models[0].image: image 'vllm/vllm-openai' is not pinned"),
    ({"extraArgs": ["--api-key=abc"]}, "gpu-burst:models[0].extraArgs[0]: '--api-key' is --api-key: the program "
                                       "manages it"),
    ({"startupBudget": "5m"}, "gpu-burst:models[0].startupBudget: '5m' cannot cover node + image + weights"),
    ({"pool": "nope"}, "gpu-burst:models[0].pool: 'nope' is not a pool of gpu.pools; allowed: gpu-on-demand"),
])
def test_bad_model_values_have_clear_messages(patch, message):
    lines = _errors(models=[dict(DEV_MODELS[0], **patch)])
    assert len(lines) == 1 and lines[0].startswith(message), lines


def test_readiness_probe_program_really_checks_the_key():
    """Run the probe's exact Python against a server on 127.0.0.1 that, like vLLM with --api-key, answers 401 to a
    wrong key: ready only with the right key, not ready when nothing listens."""
    import os
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from components.model_service import readiness_program

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.path == "/v1/models" and self.headers.get("Authorization") == "Bearer right-key"
            self.send_response(200 if ok else 401)
            self.end_headers()
            self.wfile.write(b'{"data": []}')

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        def probe(key: str, p: int = port) -> int:
            return subprocess.run([sys.executable, "-c", readiness_program(p)], capture_output=True, timeout=20,
                                  env={**os.environ, "VLLM_API_KEY": key}).returncode
        assert probe("right-key") == 0
        assert probe("wrong-key") != 0
    finally:
        server.shutdown()
        server.server_close()
    assert probe("right-key", port) != 0  # nothing listens any more


@pytest.mark.parametrize("stack", STACKS)
def test_deployment_readiness_probe_runs_that_program(mocks, stack):
    from components.model_service import VLLM_PORT, readiness_program

    _, _, cfg = run_workload(stack)
    for m in cfg.models:
        probe = named(mocks, "Deployment", m.served_name)["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
        assert probe["exec"]["command"] == ["python3", "-c", readiness_program(VLLM_PORT)]
        assert "VLLM_API_KEY" in probe["exec"]["command"][2] and "Bearer" in probe["exec"]["command"][2]


def test_a_streamer_buffer_as_large_as_the_memory_limit_is_refused():
    """memory_limit is a CPU buffer inside the vLLM container: at or above the memory limit the pod is OOM-killed
    while loading, so the config refuses it, naming the key."""
    from stacks.config import ConfigError, validate

    model = {"servedName": "m", "hfModelId": "o/m", "revision": "0" * 40, "memory": "12Gi"}
    ok = validate({"environment": "dev", "region": "us-west-2", "models": [{**model, "runaiMemoryLimitGib": 11}]})
    assert ok.models[0].runai_memory_limit_gib == 11
    with pytest.raises(ConfigError) as e:
        validate({"environment": "dev", "region": "us-west-2", "models": [{**model, "runaiMemoryLimitGib": 12}]})
    assert any(line.startswith("gpu-burst:models[0].runaiMemoryLimitGib:") and "allowed: less than memory" in line
               for line in e.value.lines), e.value.lines
