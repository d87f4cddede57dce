"""Every fixture has the shape the real thing produces, so the CLI is tested against what a cluster returns.

- Kubernetes dumps: custom resources validate against the upstream CRDs (strict: unknown fields rejected, as the
  API server prunes them; tests/upstream.py), core objects against the official client's models (strict, required
  fields; k8s_models.py). A field a controller does not write (e.g. a lastTransitionTime on a KEDA condition) fails.
- Stack files validate with the program's own config model.
- vLLM logs are `kubectl logs --timestamps` output of the pinned vLLM's start-up lines.
- Burst results are what `burstctl burst --out` writes.
A file of any other kind fails the test: add its validation here first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from k8s_models import MODELS, validate_core
from upstream import CRD_FILES, needs_upstream, validate_cr

FIXTURES = Path(__file__).parent / "fixtures"
ALL = sorted(p.name for p in FIXTURES.iterdir() if p.is_file())
DUMPS = [n for n in ALL if n.endswith(".yaml") and not n.startswith("Pulumi.")]


def test_every_fixture_has_a_validator():
    known = [n for n in ALL if n in DUMPS or n.startswith("Pulumi.") or n.endswith((".vllm.log", ".burst.json"))]
    assert known == ALL, f"fixtures without a validation rule: {sorted(set(ALL) - set(known))}"
    assert len(DUMPS) >= 5


@needs_upstream
@pytest.mark.parametrize("name", DUMPS)
def test_dump_objects_are_what_the_api_server_returns(name: str):
    doc = yaml.safe_load((FIXTURES / name).read_text())
    assert doc["apiVersion"] == "v1" and doc["kind"] == "List"
    problems = []
    for i, obj in enumerate(doc["items"]):
        key = (obj.get("apiVersion"), obj.get("kind"))
        group = key[0].split("/")[0] if "/" in key[0] else ""
        if key in MODELS:
            errors = validate_core(obj)
        elif (group, obj.get("kind")) in CRD_FILES:
            errors = validate_cr(obj)
        else:
            errors = [f"no validator for {key}"]
        problems += [f"items[{i}] {obj.get('kind')} {obj.get('metadata', {}).get('name')}: {e}" for e in errors]
    assert not problems, "\n".join(problems)


@needs_upstream
def test_the_validation_rejects_what_keda_does_not_write():
    # The check that caught the old fixtures: KEDA conditions carry no lastTransitionTime.
    so = next(o for o in yaml.safe_load((FIXTURES / "scaled-up.yaml").read_text())["items"]
              if o["kind"] == "ScaledObject")
    so["status"]["conditions"][1]["lastTransitionTime"] = "2026-09-01T10:00:00Z"
    assert any("lastTransitionTime" in e for e in validate_cr(so))
    pod = next(o for o in yaml.safe_load((FIXTURES / "scaled-up.yaml").read_text())["items"] if o["kind"] == "Pod")
    pod["status"]["startedAt"] = "2026-09-01T10:00:00Z"
    assert any("startedAt" in e for e in validate_core(pod))
    del pod["status"]["startedAt"]
    del pod["spec"]["containers"][0]["name"]
    assert any("name" in e for e in validate_core(pod))


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.mark.parametrize("name", DUMPS)
def test_uids_are_the_api_servers_and_events_point_at_their_object(name: str):
    # The API server sets metadata.uid to a random UUID; an event recorder copies the object's reference, uid
    # included (client-go tools/reference GetReference), so an event about an object in the dump carries its uid.
    items = yaml.safe_load((FIXTURES / name).read_text())["items"]
    uids = {(o["kind"], o["metadata"]["name"]): o["metadata"]["uid"] for o in items if o["kind"] != "Event"}
    assert [u for u in uids.values() if not _UUID.match(u)] == []
    for ev in (o for o in items if o["kind"] == "Event"):
        ref = ev["involvedObject"]
        assert _UUID.match(ref["uid"]), ref
        assert ref["uid"] == uids.get((ref["kind"], ref["name"]), ref["uid"]), (ev["reason"], ref)
    # Owner references carry the owner's uid (Karpenter's registration sets the Node's owner to its NodeClaim).
    for o in items:
        for ref in o["metadata"].get("ownerReferences") or []:
            assert ref["uid"] == uids.get((ref["kind"], ref["name"]), ref["uid"]), (o["metadata"]["name"], ref)


@pytest.mark.parametrize("name", DUMPS)
def test_keda_activation_names_the_active_metrics(name: str):
    # KEDA names what activated the target by its external metric names ("s<index>-<metric>"), not by trigger
    # names: kedacore/keda@v2.20.2 pkg/scaling/scale_handler.go (push scalers: ActiveTriggers: []string{metricName};
    # polled scalers: metric.MetricName), message format in pkg/scaling/executor/scale_scaledobjects.go.
    items = yaml.safe_load((FIXTURES / name).read_text())["items"]
    metrics = {m for o in items if o["kind"] == "ScaledObject" for m in o["status"].get("externalMetricNames", [])}
    for ev in (o for o in items if o["kind"] == "Event" and o.get("reason") == "KEDAScaleTargetActivated"):
        m = re.fullmatch(r"Scaled \S+ \S+ from \d+ to \d+, triggered by (.+)", ev["message"])
        assert m, ev["message"]
        assert set(m[1].split(";")) <= metrics, (m[1], metrics)


@pytest.mark.parametrize("name", DUMPS)
def test_keda_prometheus_failures_are_the_http_clients_error(name: str):
    # The prometheus scaler returns the Go HTTP client's error unwrapped (`Get "<url>": ...`) for a query it could
    # not send, and KEDA records err.Error() as the event (kedacore/keda@v2.20.2 pkg/scalers/prometheus_scaler.go
    # ExecutePromQuery, pkg/scaling/scale_handler.go KEDAScalerFailed); "error requesting metrics endpoint" is the
    # metrics-api scaler's wording, not this one's.
    from urllib.parse import quote_plus

    items = yaml.safe_load((FIXTURES / name).read_text())["items"]
    proms = [tr["metadata"] for o in items if o["kind"] == "ScaledObject" for tr in o["spec"]["triggers"]
             if tr["type"] == "prometheus"]
    for ev in (o for o in items if o["kind"] == "Event" and o.get("reason") == "KEDAScalerFailed"):
        assert any(re.match(re.escape(f'Get "{p["serverAddress"]}/api/v1/query?query={quote_plus(p["query"])}&time=')
                            + r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ": ', ev["message"]) for p in proms), ev["message"]


@pytest.mark.parametrize("name", DUMPS)
def test_keda_hpa_active_mirrors_the_hpa_in_the_dump(name: str):
    # KEDA copies the HPA's ScalingActive condition into HPAActive on every scale loop: True/HPAActive when scaling,
    # True/ScalingDisabled (the HPA's message) at zero replicas, else False with the HPA's reason
    # (kedacore/keda@v2.20.2 pkg/scaling/executor/scale_scaledobjects.go getHPAHealth).
    items = yaml.safe_load((FIXTURES / name).read_text())["items"]
    hpas = {o["metadata"]["name"]: o for o in items if o["kind"] == "HorizontalPodAutoscaler"}
    for so in (o for o in items if o["kind"] == "ScaledObject"):
        mirrored = next((c for c in so["status"].get("conditions", []) if c["type"] == "HPAActive"), None)
        hpa = hpas.get(so["status"].get("hpaName", ""))
        if mirrored is None or hpa is None:
            continue
        active = next(c for c in hpa["status"]["conditions"] if c["type"] == "ScalingActive")
        if active["status"] == "True":
            want = ("True", "HPAActive")
        elif active["reason"] == "ScalingDisabled":
            want = ("True", "ScalingDisabled")
        else:
            want = ("False", active["reason"] or "HPAMetricsUnavailable")
        assert (mirrored["status"], mirrored["reason"]) == want, (mirrored, active)


@pytest.mark.parametrize("name", DUMPS)
def test_keda_health_only_with_a_fallback(name: str):
    # "Health is only tracked for ScaledObjects with a valid fallback configured" (kedacore/keda@v2.20.2
    # pkg/fallback/fallback.go GetMetricsWithFallback); the stack's ScaledObjects set no fallback.
    for so in (o for o in yaml.safe_load((FIXTURES / name).read_text())["items"] if o["kind"] == "ScaledObject"):
        assert "health" not in so["status"] or so["spec"].get("fallback"), so["metadata"]["name"]


# Karpenter's launch events carry the cloud provider's error cut to 300 characters plus "..."
# (kubernetes-sigs/karpenter@v1.14.1:pkg/controllers/nodeclaim/lifecycle/events.go, launch.go truncateMessage); an
# EC2 fleet error with its full quota text is longer than that, so a fixture that keeps it whole was never written.
_KARPENTER_LAUNCH_EVENTS = ("InsufficientCapacityError", "NodeClassNotReady")


@pytest.mark.parametrize("name", DUMPS)
def test_karpenter_launch_events_are_truncated_as_karpenter_writes_them(name: str):
    events = [o for o in yaml.safe_load((FIXTURES / name).read_text())["items"]
              if o["kind"] == "Event" and o.get("reason") in _KARPENTER_LAUNCH_EVENTS]
    for ev in events:
        prefix = f"NodeClaim {ev['involvedObject']['name']} event: "
        assert ev["message"].startswith(prefix), ev["message"]
        err = ev["message"][len(prefix):]
        assert len(err) < 300 or (len(err) == 303 and err.endswith("...")), (len(err), err)


@pytest.mark.parametrize("name", [n for n in ALL if n.startswith("Pulumi.")])
def test_stack_files_validate_with_the_program_config(name: str):
    from burstctl import preflight as pf

    assert pf.load_stack(FIXTURES / name).region == "us-west-2"


# CRI timestamp, then one of: a vLLM record (vllm/logger.py _FORMAT: "(<process> pid=<n>) <LEVEL> <MM-DD HH:MM:SS>
# [<file>:<line>] "), a uvicorn line ("INFO:     "), a Run:ai streamer record ("%(asctime)s [%(levelname)s] ").
_CRI = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (?:\((?:APIServer|EngineCore[\w-]*|Worker[\w-]*) pid=\d+\) )?"
                  r"(?:(?:DEBUG|INFO|WARNING|ERROR) \d\d-\d\d \d\d:\d\d:\d\d \[[\w.]+:\d+\] |INFO:     |"
                  r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[INFO\] )")


@pytest.mark.parametrize("name", [n for n in ALL if n.endswith(".vllm.log")])
def test_vllm_logs_have_the_runtime_and_vllm_line_shapes(name: str):
    from burstctl.timeline import LOG_MARKERS, parse_vllm_log

    text = (FIXTURES / name).read_text()
    for line in text.splitlines():
        # tqdm progress bars go to stderr without a log prefix, and the runtime timestamps them too in real logs;
        # here they are kept bare, as some log collectors show them.
        assert _CRI.match(line) or re.search(r"\d+%\|?", line), line
    found = parse_vllm_log(text)
    # Weights come from the S3 model store (Run:ai streamer), never the Hub, as the stack configures it.
    assert set(found) == {name for name, _ in LOG_MARKERS} - {"weights downloaded"}


@pytest.mark.parametrize("name", [n for n in ALL if n.endswith(".burst.json")])
def test_burst_results_are_what_burst_writes(name: str):
    from burstctl.burst import CSV_FIELDS  # the fields the writer reports per request

    doc = json.loads((FIXTURES / name).read_text())
    assert set(doc) == {"config", "summary", "requests"}
    assert all(list(r) == CSV_FIELDS for r in doc["requests"])
    assert {"ttft_s", "itl_s", "latency_s"} <= set(doc["summary"])
    assert doc["summary"]["requests"] == len(doc["requests"]) and "started_at" in doc["summary"]
