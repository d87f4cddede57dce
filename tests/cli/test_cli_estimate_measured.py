"""`burstctl estimate --measured`: a `timeline --json` report next to the stack's estimate, row by row."""

import json

import pytest

from burstctl import estimate as est
from burstctl import measured as ms
from burstctl.timeline import PHASES

MODEL = "qwen2-5-1-5b-instruct"


@pytest.fixture
def timeline_report(invoke, fixtures, tmp_path):
    """What the e2e run saves: `timeline --json` of the recorded scale-up, with its logs and burst result."""
    r = invoke("timeline", "-m", MODEL, "-f", fixtures / "scaled-up.yaml", "--logs", fixtures / "scaled-up.vllm.log",
               "--burst-result", fixtures / "scaled-up.burst.json", "--json")
    assert r.exit_code == 0, r.stdout
    path = tmp_path / "timeline.json"
    path.write_text(r.stdout)
    return path


def _stack_phases(fixtures):
    cfg = est.load_stack(fixtures / "Pulumi.dev.yaml")
    return {p.name: p.seconds for p in est.estimate(cfg, cfg.models[0]).paths[1].phases}


def test_measured_next_to_estimated_by_hand(invoke, fixtures, timeline_report):
    r = invoke("estimate", "-s", fixtures / "Pulumi.dev.yaml", "--measured", timeline_report, "--json")
    assert r.exit_code == 0, r.stdout
    doc = json.loads(r.stdout)
    assert doc["model"] == MODEL  # the report's model, without --model
    m = doc["measured"]
    rows = {row["row"]: row for row in m["rows"]}
    e = _stack_phases(fixtures)
    # The recorded scale-up (docs/cli.md#timeline): 0.812 + 0.588 s trigger; the pod bound 65.0 s after it was
    # created (scheduling counted 0); kubelet pull 65.871 s + 1 s to start; 17.407 + 40.889 + 2.004 s of vLLM
    # start-up, engine init and API start; 2.788 s readiness; 0.900 s to the first token.
    by_hand = {"trigger": (0.812223 + 0.587663, e["scale-from-zero trigger"]),
               "GPU node: launch, Ready, GPU allocatable, pod bound":
                   (65.0 + 0.0, e["node launch -> Ready"] + e["Ready -> GPU allocatable"]),
               "image": (65.871 + 1.0, e["image pull (SOCI parallel, al2023)"]),
               "weights in GPU": (4.912313, e["weights in GPU"]),
               "engine: start-up, init, API": (17.407215 + 40.888783 + 2.003672, e["engine init"]),
               "ready and routed": (2.788017, e["ready -> request routed"]),
               "first token": (0.900114, e["first token"])}
    for row, (measured, estimated) in by_hand.items():
        assert rows[row]["measured_s"] == round(measured, 1), row
        assert rows[row]["estimated_s"] == round(estimated, 1), row
        assert rows[row]["difference_s"] == round(round(measured, 1) - round(estimated, 1), 1), row
        assert rows[row]["not_measured"] == [], row
    # the rows add up to the timeline's total: the short waits between its phases are a row of their own
    assert m["measured_total_s"] == 203.3 and m["estimated_total_s"] == sum(e.values()).__round__(1) == 128.3
    gaps = rows[ms.GAPS]["measured_s"]
    assert gaps == round(203.3 - sum(round(v[0], 1) for v in by_hand.values()), 1) == 1.1
    assert m["complete"] is True and m["warm_node"] is False and m["notes"] == []
    assert m["source"] == str(timeline_report)
    # the estimate itself is all there too
    assert [p["path"] for p in doc["paths"]] == ["baseline", "stack"] and doc["figures"]


def test_measured_table(invoke, fixtures, timeline_report):
    r = invoke("estimate", "-s", fixtures / "Pulumi.dev.yaml", "--measured", timeline_report,
               env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.stdout
    out = r.stdout
    assert f"measured vs estimated: {MODEL} on g6.xlarge" in out
    line = next(l for l in out.splitlines() if "│ image " in l)
    assert [c.strip() for c in line.split("│")[1:5]] == ["image", "42.3 s", "66.9 s", "+24.6 s"]
    total = next(l for l in out.splitlines() if "timeline total" in l)
    assert "128.3 s" in total and "203.3 s" in total and "+75.0 s" in total


def test_every_phase_of_either_side_is_in_exactly_one_row(fixtures):
    """Renaming a phase in timeline.py or estimate.py must not drop it from the comparison silently."""
    timeline_phases = [p for _, _, tl in ms.ROWS for p in tl]
    assert sorted(timeline_phases) == sorted(name for name, _, _ in PHASES)
    from stacks.config import validate

    base = {"environment": "dev", "region": "us-west-2",
            "models": [{"servedName": "m", "hfModelId": "acme/Tiny-8B-Instruct",
                        "revision": "989aa7980e4cf806f80c7fef2b1adb7bc71aa306", "pool": "gpu-on-demand"}]}
    for gpu in ({}, {"fastImagePull": False},
                {"amiFamily": "bottlerocket", "amiVersion": "v1.64.0", "fastImagePull": False,
                 "dataVolumeSnapshotId": "snap-0123456789abcdef0"}):
        cfg = validate({**base, "gpu": gpu})
        for path in est.estimate(cfg, cfg.models[0], "g6.xlarge").paths:
            for phase in path.phases:
                hits = [row for row, keys, _ in ms.ROWS if any(ms._is(phase.name, k) for k in keys)]
                assert len(hits) == 1, (gpu, path.path, phase.name, hits)


def test_partial_and_warm_timelines_say_so(invoke, fixtures, tmp_path):
    r = invoke("timeline", "-m", MODEL, "-f", fixtures / "launch-failed.yaml", "--json")
    assert r.exit_code == 1  # not ready: the report is still written
    path = tmp_path / "partial.json"
    path.write_text(r.stdout)
    r = invoke("estimate", "-s", fixtures / "Pulumi.dev.yaml", "--measured", path, "--json")
    m = json.loads(r.stdout)["measured"]
    rows = {row["row"]: row for row in m["rows"]}
    assert rows["image"]["measured_s"] is None and rows["image"]["not_measured"] == ["image pull", "container start"]
    assert ms.GAPS not in rows  # an unfinished start has no total to add up to
    assert any("incomplete" in n for n in m["notes"]) and any("--burst-result" in n for n in m["notes"])
    warm = json.loads(path.read_text())
    warm["warm_node"] = True
    path.write_text(json.dumps(warm))
    r = invoke("estimate", "-s", fixtures / "Pulumi.dev.yaml", "--measured", path)
    assert "not a cold start from zero GPU nodes" in r.stdout and "incomplete" in r.stdout


def test_bad_measured_input(invoke, fixtures, tmp_path, timeline_report):
    stack = fixtures / "Pulumi.dev.yaml"
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    r = invoke("estimate", "-s", stack, "--measured", bad)
    assert r.exit_code == 2 and f"--measured: {bad} is not JSON" in r.stderr
    bad.write_text(json.dumps({"error": "ScaledObject inference/x not found", "exit_code": 1}))
    r = invoke("estimate", "-s", stack, "--measured", bad, "--json")
    assert r.exit_code == 2
    assert json.loads(r.stdout)["error"] == (f"--measured: {bad} holds a failed timeline run: ScaledObject "
                                             "inference/x not found")
    bad.write_text(json.dumps({"model": MODEL, "phases": [{"phase": "image pull"}]}))
    r = invoke("estimate", "-s", stack, "--measured", bad)
    assert r.exit_code == 2 and "is not a `burstctl timeline --json` report" in r.stderr
    r = invoke("estimate", "-s", stack, "--measured", tmp_path / "missing.json")
    assert r.exit_code == 2 and "--measured: cannot read" in r.stderr
    r = invoke("estimate", "-s", stack, "--measured", timeline_report, "--model", "other")
    assert r.exit_code == 2 and f"differs from the model of --measured {timeline_report} ('{MODEL}')" in r.stderr
    other = json.loads(timeline_report.read_text())
    other["model"] = "not-in-the-stack"
    bad.write_text(json.dumps(other))
    r = invoke("estimate", "-s", stack, "--measured", bad)
    assert r.exit_code == 2 and f"--model: 'not-in-the-stack' is not a model of the stack; allowed: {MODEL}" \
        in r.stderr
