"""The compile-cache program (components/staging/compile_cache.py) against moto S3, and how the model pods run it."""

import http.server
import json
import shlex
import sys
import threading
import uuid

import boto3
import pytest
from moto import mock_aws
from test_workload_support import named, run_workload

from components.model_service import COMPILE_CACHE_WRAPPER
from components.staging import compile_cache as cc

BUCKET = "gpu-burst-models-test"
URI = f"s3://{BUCKET}/_compile-cache/acme/tiny/{'0' * 40}/vllm-openai-v0.33.0/"


@pytest.fixture
def s3(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-west-2"}.items():
        monkeypatch.setenv(k, v)
    # A bucket of its own: other test modules may keep one moto account alive for the whole session.
    name = f"gpu-burst-models-{uuid.uuid4().hex[:12]}"
    monkeypatch.setattr(sys.modules[__name__], "BUCKET", name)
    monkeypatch.setattr(sys.modules[__name__], "URI", URI.replace("gpu-burst-models-test", name))
    with mock_aws():
        client = boto3.client("s3", region_name="us-west-2")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        yield client


def _write_cache(root, files):
    for rel, data in files.items():
        p = root / "torch_compile_cache" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def test_save_then_restore_round_trip_per_gpu_model(s3, tmp_path):
    a = tmp_path / "pod-a"
    _write_cache(a, {"1a2b3c4d5e/rank_0_0/backbone/model": b"aot", "1a2b3c4d5e/rank_0_0/backbone/cache_key": b"k"})
    assert cc.save(s3, URI, a, "nvidia-a10g") == 2
    assert cc.save(s3, URI, a, "nvidia-a10g") == 0  # nothing new: no second upload
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {f"_compile-cache/acme/tiny/{'0' * 40}/vllm-openai-v0.33.0/nvidia-a10g/torch_compile_cache/"
                    f"1a2b3c4d5e/rank_0_0/backbone/{n}" for n in ("model", "cache_key")}
    b = tmp_path / "pod-b"
    assert cc.restore(s3, URI, b, "nvidia-a10g") == 2
    assert (b / "torch_compile_cache/1a2b3c4d5e/rank_0_0/backbone/model").read_bytes() == b"aot"
    assert not list(b.rglob("*.part"))
    # Another GPU model never sees that cache; without a GPU nothing is read or written.
    assert cc.restore(s3, URI, tmp_path / "pod-c", "nvidia-l4") == 0
    assert cc.restore(s3, URI, tmp_path / "pod-d", None) == 0 and cc.save(s3, URI, a, None) == 0


def test_restore_refuses_keys_outside_the_cache_tree(s3, tmp_path):
    prefix = URI[len(f"s3://{BUCKET}/"):].rstrip("/")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/nvidia-a10g/../../evil.py", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/nvidia-a10g/startup.sh", Body=b"x")
    # Under an allowed tree by prefix, outside it once resolved: must not land beside the trees vLLM reads.
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/nvidia-a10g/torch_compile_cache/../hook.sh", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/nvidia-a10g/startup_plan/../../../boot.py", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/nvidia-a10g/startup_plan/startup_plan_0.json.tmp.42", Body=b"{")
    assert cc.restore(s3, URI, tmp_path / "root", "nvidia-a10g") == 0
    assert not list(tmp_path.rglob("*.py")) and not list(tmp_path.rglob("*.sh")) and not list(tmp_path.rglob("*.tmp.*"))


def test_startup_plan_travels_with_the_compile_cache(s3, tmp_path):
    """vLLM writes `$VLLM_CACHE_ROOT/startup_plan/startup_plan_<fingerprint>.json` (atomically, via `.tmp.<pid>`) next
    to torch_compile_cache/ (vllm 0.33.0 v1/worker/startup_plan.py): both go to the same per-GPU prefix and back."""
    a = tmp_path / "pod-a"
    _write_cache(a, {"1a2b3c4d5e/rank_0_0/backbone/model": b"aot"})
    plan = a / "startup_plan" / "startup_plan_0123456789abcdef.json"
    plan.parent.mkdir(parents=True)
    plan.write_text('{"schema": 1, "kv_cache_memory_bytes": 1, "free_memory_baseline": 2}')
    (plan.parent / (plan.name + ".tmp.77")).write_text("{")  # a plan still being written is never uploaded
    (a / "other").mkdir()
    (a / "other" / "x.bin").write_bytes(b"not ours")  # nor anything outside the two trees
    assert cc.save(s3, URI, a, "nvidia-a10g") == 2
    keys = {o["Key"].split("/nvidia-a10g/", 1)[1] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {"torch_compile_cache/1a2b3c4d5e/rank_0_0/backbone/model",
                    "startup_plan/startup_plan_0123456789abcdef.json"}
    b = tmp_path / "pod-b"
    assert cc.restore(s3, URI, b, "nvidia-a10g") == 2
    assert (b / "startup_plan" / plan.name).read_text() == plan.read_text()
    assert cc.restore(s3, URI, tmp_path / "pod-c", "nvidia-l4") == 0  # another GPU model: another plan


def test_save_waits_for_health_and_failures_never_stop_the_server(s3, tmp_path, monkeypatch):
    class Health(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        assert cc.wait_healthy(f"http://127.0.0.1:{srv.server_port}/health", 5, poll_s=0.05)
        assert not cc.wait_healthy(f"http://127.0.0.1:{srv.server_port}/nope", 0.2, poll_s=0.05)
    finally:
        srv.shutdown()
        srv.server_close()
    monkeypatch.setattr(cc, "gpu_model", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert cc.main(["restore", "--uri", URI, "--root", str(tmp_path)]) == 0
    assert cc.main(["restore", "--uri", "", "--root", str(tmp_path)]) == 0


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_model_pods_restore_and_save_the_cache_around_vllm(mocks, stack):
    _, _, cfg = run_workload(stack)
    for m in cfg.models:
        dep = named(mocks, "Deployment", m.served_name)
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        # The wrapper execs vllm (PID 1 gets SIGTERM); the args after the script are vLLM's own.
        assert c["command"] == ["/bin/sh", "-c", COMPILE_CACHE_WRAPPER, "vllm"]
        assert COMPILE_CACHE_WRAPPER.endswith('exec vllm serve "$@"')
        # The saver waits on the very port and path the startup probe uses, whatever the container's port is.
        save = shlex.split(COMPILE_CACHE_WRAPPER.split(";")[1].strip("() &"))
        (port,) = [p["containerPort"] for p in c["ports"] if p["name"] == c["startupProbe"]["httpGet"]["port"]]
        assert save[save.index("--health") + 1] == f"http://127.0.0.1:{int(port)}{c['startupProbe']['httpGet']['path']}"
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["COMPILE_CACHE_URI"].endswith(f"/_compile-cache/{m.hf_model_id}/{m.revision}/vllm-openai-v0.33.0/")
        assert env["VLLM_CACHE_ROOT"].startswith("/models/")
        # The startup plan lives under VLLM_CACHE_ROOT too, so it is restored and saved with the compile cache.
        assert env["VLLM_ENABLE_STARTUP_PLAN"] == "1"
        tools = {v["name"]: v for v in pod["volumes"]}["tools"]
        cm = mocks.state(f"weights-{m.served_name}-tools")
        assert tools["configMap"]["name"] == cm["metadata"]["name"]
        assert cm["data"]["compile_cache.py"] == (cc.__file__ and open(cc.__file__).read())
        assert {"name": "tools", "mountPath": "/opt/gpu-burst", "readOnly": True} in c["volumeMounts"]
        assert json.dumps(c).count("compile_cache.py") == 2


def test_no_compile_cache_keeps_the_plain_command(mocks):
    from test_workload_support import DEV_MODELS, Fakes  # noqa: F401
    import test_workload_support as tws

    orig = list(tws.DEV_MODELS)
    tws.DEV_MODELS[:] = [dict(orig[0], compileCache=False)]
    try:
        _, _, cfg = run_workload("dev")
    finally:
        tws.DEV_MODELS[:] = orig
    c = named(mocks, "Deployment", cfg.models[0].served_name)["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["vllm", "serve"]
    assert "COMPILE_CACHE_URI" not in {e["name"] for e in c["env"]}
    # The startup plan still works node-locally (a container restart on the same node reuses it).
    assert {"name": "VLLM_ENABLE_STARTUP_PLAN", "value": "1"} in c["env"]
    policy = json.loads([r for r in mocks.created if r.name == f"weights-{cfg.models[0].served_name}-reader-policy"][0]
                        .inputs["policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["ListModelPrefix", "ReadModelObjects"]
