"""`timeline` on the objects, events and vLLM log lines a real cold start leaves behind."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from burstctl.k8s import FileClusterReader
from burstctl.timeline import build_timeline, go_duration, parse_vllm_log, read_burst_result
from dumps import TARGET, mutated


def full(invoke, fixtures: Path, dump: Path = None, *extra: str):
    return invoke("timeline", "-m", "qwen2-5-1-5b-instruct", "-f", dump or fixtures / "scaled-up.yaml", "--logs",
                  fixtures / "scaled-up.vllm.log", "--burst-result", fixtures / "scaled-up.burst.json", *extra)


def test_every_phase_from_first_request_to_first_token(invoke, fixtures: Path):
    r = full(invoke, fixtures, None, "--json")
    assert r.exit_code == 0, r.stderr
    tl = json.loads(r.stdout)
    assert tl["pod"] == "qwen2-5-1-5b-instruct-7c9f8d6b5-x2k4p" and tl["nodeclaim"] == "gpu-on-demand-7xk2p"
    assert tl["complete"] is True and tl["warm_node"] is False
    steps = [(s["name"], s["at"][11:-6][:12] if s["at"] else None) for s in tl["steps"]]
    assert steps == [
        ("first request", "09:59:59.600"), ("activation", "10:00:00.412"), ("pod created", "10:00:01"),
        ("nodeclaim created", "10:00:02"), ("nodeclaim launched", "10:00:08"), ("node registered", "10:00:41"),
        ("replacement pod created", "10:01:05"), ("pod scheduled", "10:01:06"), ("image pull started", "10:01:08"),
        ("node initialized", "10:01:12"), ("image pulled", "10:02:13"), ("container started", "10:02:14"),
        ("vLLM started", "10:02:21.884"), ("weights loading", "10:02:31.407"), ("weights loaded", "10:02:36.319"),
        ("engine ready", "10:03:17.208"), ("API listening", "10:03:19.211"), ("ready", "10:03:22"),
        ("first token", "10:03:22.900")]
    phases = {p["phase"]: round(p["seconds"], 2) for p in tl["phases"]}
    assert phases == {
        "request to activation": 0.81, "scale decision": 0.59, "node provisioning": 65.0, "scheduling": 0.0,
        "image pull": 65.87, "container start": 1.0, "vLLM start-up (imports, config)": 17.41,
        "weights load": 4.91, "engine init (profile, KV cache, compile, CUDA graphs)": 40.89, "API start": 2.0,
        "readiness probe": 2.79, "first token after ready": 0.9}
    assert round(tl["total_s"], 1) == 203.3  # first request -> first token, what the user waited
    assert tl["engine"] == {"vllm_version": "0.33.0", "weights_load_s": 4.912301, "weights_download_s": None,
                            "weights_stream_s": 3.41, "engine_init_s": 40.9, "compile_s": 23.47}
    loaded = next(s for s in tl["steps"] if s["name"] == "weights loaded")
    assert loaded["note"] == "vLLM: 4.9 s, 2.8908 GiB (Run:ai streamer: 2.9 GiB in 3.4 s, 869.2 MiB/s)"
    assert tl["image"] == {"image": "vllm/vllm-openai:v0.33.0", "pull_s": 65.871, "total_s": 65.871,
                           "size_bytes": 10284719301}


def test_the_timed_pod_is_the_live_first_replica(invoke, fixtures: Path):
    tl = json.loads(full(invoke, fixtures, None, "--json").stdout)
    assert tl["first_pod"] == "qwen2-5-1-5b-instruct-7c9f8d6b5-f9w2c"  # the scale-up's first attempt: "pod created"
    replaced = next(s for s in tl["steps"] if s["name"] == "replacement pod created")
    assert "f9w2c will never run (Failed: UnexpectedAdmissionError" in replaced["note"]


def test_yesterdays_evicted_pod_is_not_timed(fixtures: Path, tmp_path: Path):
    # Events expire after an hour; without them the oldest pod used to be picked.
    def edit(items):
        items[:] = [o for o in items if o["kind"] != "Event"]
        old = copy.deepcopy(next(o for o in items if o["kind"] == "Pod" and o["metadata"]["name"].endswith("x2k4p")))
        old["metadata"]["name"] = "qwen2-5-1-5b-instruct-6d8f7b9c4-h7tq2"
        old["metadata"]["creationTimestamp"] = "2026-08-31T16:20:11Z"
        old["status"].update(phase="Failed", reason="Evicted", message="The node was low on resource: "
                             "ephemeral-storage.")
        items.insert(2, old)

    tl = build_timeline(FileClusterReader(mutated(fixtures, tmp_path, edit)), TARGET)
    assert tl["pod"] == "qwen2-5-1-5b-instruct-7c9f8d6b5-x2k4p"
    assert tl["first_pod"] == "qwen2-5-1-5b-instruct-7c9f8d6b5-f9w2c"  # same ReplicaSet attempt, minutes before: same scale-up
    act = next(s for s in tl["steps"] if s["name"] == "activation")
    assert act["at"] is None and "events ~1 h" in act["note"]


def test_activation_from_the_deployment_event_when_keda_s_is_gone(fixtures: Path, tmp_path: Path):
    def edit(items):
        items[:] = [o for o in items if not (o["kind"] == "Event" and o["reason"] == "KEDAScaleTargetActivated")]

    tl = build_timeline(FileClusterReader(mutated(fixtures, tmp_path, edit)), TARGET)
    act = next(s for s in tl["steps"] if s["name"] == "activation")
    assert act["at"] == "2026-09-01T10:00:00+00:00" and act["source"] == "Deployment event ScalingReplicaSet (0 -> N)"


def test_scale_from_one_to_two_is_not_an_activation(fixtures: Path, tmp_path: Path):
    def edit(items):
        items[:] = [o for o in items if not (o["kind"] == "Event" and "from 0 to" in o["message"])]

    tl = build_timeline(FileClusterReader(mutated(fixtures, tmp_path, edit)), TARGET)
    assert next(s for s in tl["steps"] if s["name"] == "activation")["at"] is None


def test_scheduler_before_initialized_is_explained(invoke, fixtures: Path):
    tl = json.loads(full(invoke, fixtures, None, "--json").stdout)
    sched = next(p for p in tl["phases"] if p["phase"] == "scheduling")
    assert sched["seconds"] == 0.0 and "6 s overlap" in sched["note"] and "Initialized" in sched["note"]
    init = next(s for s in tl["steps"] if s["name"] == "node initialized")
    assert "recorded 6 s after the pod was bound" in init["note"]
    assert all(s["delta_s"] is None or s["delta_s"] >= 0 for s in tl["steps"])
    assert all(p["seconds"] >= 0 for p in tl["phases"])


def test_launch_failure_reason_is_in_the_timeline(invoke, fixtures: Path):
    r = invoke("timeline", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "launch-failed.yaml", "--json")
    assert r.exit_code == 1
    tl = json.loads(r.stdout)
    launched = next(s for s in tl["steps"] if s["name"] == "nodeclaim launched")
    assert launched["at"] is None
    assert launched["note"] == ("NodeClaim gpu-on-demand-z5r2k Launched=Unknown Unauthorized: User is not authorized "
                                "to perform this operation because no identity-based policy allows it")
    r = invoke("timeline", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "pending-no-capacity.yaml")
    assert r.exit_code == 1
    assert "launch failed: NodeClaim gpu-on-demand-b7m2x InsufficientCapacityError (deleted by Karpenter)" in r.stdout
    assert "VcpuLimitExceeded" in r.stdout and "not ready yet" in r.stdout


def test_cached_image_is_a_zero_pull(fixtures: Path, tmp_path: Path):
    def edit(items):
        for o in items:
            if o["kind"] == "Event" and o["involvedObject"]["name"].endswith("x2k4p") and o["reason"] == "Pulled":
                o["message"] = 'Container image "vllm/vllm-openai:v0.29.0" already present on machine'
        items[:] = [o for o in items if not (o["kind"] == "Event" and o["reason"] == "Pulling"
                                             and o["involvedObject"]["name"].endswith("x2k4p"))]

    tl = build_timeline(FileClusterReader(mutated(fixtures, tmp_path, edit)), TARGET)
    assert tl["image"]["cached"] is True
    assert next(s for s in tl["steps"] if s["name"] == "image pulled")["note"] == "image already on the node"


def test_table_output(invoke, fixtures: Path):
    r = full(invoke, fixtures)
    assert r.exit_code == 0
    for text in ("first token", "weights load", "engine init", "156 MB/s", "total: 3m23.3s (ready)"):
        assert text in r.stdout, text


def test_warm_node_skips_node_steps(fixtures: Path, tmp_path: Path):
    def edit(items):
        next(o for o in items if o["kind"] == "NodeClaim")["metadata"]["creationTimestamp"] = "2026-09-01T09:00:00Z"

    tl = build_timeline(FileClusterReader(mutated(fixtures, tmp_path, edit)), TARGET)
    assert tl["warm_node"] is True
    chained = [s["name"] for s in tl["steps"] if s["offset_s"] is not None]
    assert not any(n.startswith(("nodeclaim", "node ")) for n in chained)
    assert "node provisioning" not in {p["phase"] for p in tl["phases"]}


def test_stuck_and_empty(invoke, fixtures: Path):
    r = invoke("timeline", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "crashloop.yaml", "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["complete"] is False
    r = invoke("timeline", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "idle.yaml")
    assert r.exit_code == 1 and "no pod matches" in r.stderr


def test_no_log_says_how_to_get_engine_phases(fixtures: Path):
    tl = build_timeline(FileClusterReader(fixtures / "scaled-up.yaml"), TARGET)
    assert "--logs" in next(s for s in tl["steps"] if s["name"] == "API listening")["note"]


# -- the parsers, on the exact strings the pinned releases print ---------------------------------------------------
def test_hub_download_line_of_the_default_loader():
    # Without the S3 streamer, weights come from the Hub: weight_utils.py "Time spent downloading weights ...".
    got = parse_vllm_log("2026-09-01T10:00:04.5Z (EngineCore pid=9) INFO 09-01 10:00:04 [weight_utils.py:538] Time "
                         "spent downloading weights for Qwen/Qwen2.5-1.5B-Instruct: 31.224502 seconds")
    assert got["weights downloaded"][1] == {"seconds": "31.224502"}


def test_vllm_log_markers_0_29_and_0_33_shapes():
    lines = "\n".join([
        # 0.33: process prefix in the format, compile lines tagged, uvicorn line without prefix
        "2026-09-01T10:00:01.000000001Z (APIServer pid=1) INFO 09-01 10:00:01 [startup.py:18] vLLM server version "
        "0.33.0, serving model m",
        "2026-09-01T10:00:05Z (EngineCore pid=9) INFO 09-01 10:00:05 [gpu_model_runner.py:4979] Starting to load "
        "model s3://bucket/m/rev/...",
        "2026-09-01T10:00:12.5Z (EngineCore pid=9) INFO 09-01 10:00:12 [gpu_model_runner.py:5089] Model loading took "
        "15.02 GiB memory and 7.412 seconds",
        "2026-09-01T10:00:20Z (EngineCore pid=9) INFO 09-01 10:00:20 [monitor.py:20] [backbone] torch.compile took "
        "3.10 s in total",
        "2026-09-01T10:00:30Z (EngineCore pid=9) INFO 09-01 10:00:30 [core.py:396] init engine (profile, create kv "
        "cache, warmup model) took 17.88 s (compilation: 3.10 s — language_model: 3.10 s, encoder: 0.00 s)",
        "Capturing CUDA graphs (mixed prefill-decode, PIECEWISE): 100%|██████████| 67/67",
        "2026-09-01T10:00:31Z INFO:     Application startup complete.",
    ])
    got = parse_vllm_log(lines)
    assert got["vllm started"][1] == {"version": "0.33.0"}
    assert got["weights loaded"][1] == {"gib": "15.02", "seconds": "7.412"}
    assert got["compiled"][1] == {"seconds": "3.10"}
    assert got["engine ready"][1] == {"seconds": "17.88", "compile": "3.10"}
    assert got["api listening"][0].isoformat() == "2026-09-01T10:00:31+00:00"
    assert "weights downloaded" not in got  # the S3 streamer path downloads nothing from the Hub


def test_go_durations():
    assert go_duration("1m5.871s") == pytest.approx(65.871)
    assert go_duration("812ms") == pytest.approx(0.812)
    assert go_duration("1h2m3s") == 3723
    assert go_duration("fast") is None


def test_burst_result_inputs(invoke, fixtures: Path, tmp_path: Path):
    got = read_burst_result(fixtures / "scaled-up.burst.json")
    assert got["first_request"].isoformat() == "2026-09-01T09:59:59.600114+00:00"
    assert got["first_token"].isoformat() == "2026-09-01T10:03:22.900114+00:00"
    for text, message in (("{", "is not JSON"), ('{"requests": []}', "has no `started_at`"),
                          ("[1]", "is not a `burstctl burst --out")):
        bad = tmp_path / "b.json"
        bad.write_text(text)
        r = invoke("timeline", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "scaled-up.yaml", "--burst-result", bad)
        assert r.exit_code == 2 and "--burst-result" in r.stderr and message in r.stderr
    r = invoke("timeline", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "scaled-up.yaml", "--logs", tmp_path / "none.log")
    assert r.exit_code == 2 and "--logs" in r.stderr


def test_burst_out_records_its_wall_clock_start(invoke, stub, tmp_path: Path):
    s = stub(tokens=2)
    out = tmp_path / "r.json"
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 2, "-c", 2, "--out", out, "--json")
    assert r.exit_code == 0, r.stderr
    got = read_burst_result(out)
    assert got["first_token"] is not None and got["first_token"] >= got["first_request"]
