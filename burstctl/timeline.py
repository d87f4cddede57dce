"""`timeline`: the steps of the latest scale-from-zero of a model, from what the cluster really records.

first request (``burst --from-zero`` result) -> activation (KEDA / Deployment events) -> pod created -> NodeClaim
created -> launched -> registered -> initialized -> pod scheduled -> image pulled (kubelet events) -> container
started -> weights loaded -> engine ready -> API listening (the vLLM log) -> ready -> first token.

Conditions keep only their latest transition and KEDA's carry no time at all, so activation comes from events,
which the API server keeps for about an hour: run it soon after a cold start (or save a dump then).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Optional

from burstctl.k8s import (NODEPOOL_LABEL, ClusterReader, Obj, condition, created_at, event_first, event_last,
                          is_terminal, is_true, launch_failures, name_of, nominated_claims, scale_from_zero, ts)
from burstctl.output import BadInput, CheckError
from burstctl.verify import Target, pod_pool

CLOCK_SKEW = timedelta(seconds=5)
"""Pods created this much before the activation event still belong to it (KEDA and API server clocks)."""
SAME_SCALE_UP = timedelta(minutes=15)
"""Without an activation event: pods created this long before the timed pod belong to the same scale-up (a first
pod rejected at admission and replaced); yesterday's leftovers do not."""


@dataclass
class Step:
    name: str
    at: Optional[datetime]
    source: str
    offset_s: Optional[float] = None
    """Seconds since the first step."""
    delta_s: Optional[float] = None
    """Seconds since the previous step that has a timestamp."""
    note: str = ""


# -- the vLLM log (vllm 0.29.0 / 0.33.0 format strings, see docs/cli.md#timeline) ---------------------------------
_CRI = re.compile(r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) (?P<line>.*)$")
# Optional compile-tag prefix "[backbone] " (0.33, compilation/monitor.py).
_TAG = r"(?:\[[^\]]+\] )?"
LOG_MARKERS: list[tuple[str, re.Pattern[str]]] = [
    # serve/utils/api_utils.py (0.29) / common/startup.py (0.33): first line of the API server
    ("vllm started", re.compile(r"vLLM server version (?P<version>\S+), serving model")),
    # v1/worker/gpu_model_runner.py: "Starting to load model %s..."
    ("weights loading", re.compile(r"Starting to load model ")),
    # model_loader/weight_utils.py: only when weights came from the Hugging Face Hub (> 0.5 s)
    ("weights downloaded", re.compile(r"Time spent downloading weights for .*: (?P<seconds>[\d.]+) seconds")),
    # runai_model_streamer 0.17.1 safetensors_streamer.py (only with RUNAI_STREAMER_LOG_TO_STDERR=1, as the stack sets)
    ("weights streamed", re.compile(r"\[RunAI Streamer\] Overall time to stream (?P<size>[\d.]+ \w+) of all files "
                                    r"to (?P<device>\S+): (?P<seconds>[\d.]+)s, (?P<rate>[\d.]+ \S+/s)")),
    # gpu_model_runner.py: "Model loading took %s GiB memory and %.6f seconds" (download + read + init)
    ("weights loaded", re.compile(_TAG + r"Model loading took (?P<gib>[\d.]+) GiB memory and "
                                         r"(?P<seconds>[\d.]+) seconds")),
    # compilation/monitor.py / decorators.py
    ("compiled", re.compile(_TAG + r"torch\.compile (?:and initial profiling/warmup run together )?took "
                                   r"(?P<seconds>[\d.]+) s in total")),
    # v1/engine/core.py: "init engine (profile, create kv cache, warmup model) took %.2f s" [+ " (compilation: ..)"]
    ("engine ready", re.compile(r"init engine \(profile, create kv cache, warmup model\) took (?P<seconds>[\d.]+) s"
                                r"(?: \(compilation: (?P<compile>[\d.]+) s)?")),
    # uvicorn lifespan/on.py: printed without a vLLM timestamp, with or without the "(APIServer pid=N) " prefix
    ("api listening", re.compile(r"Application startup complete\.")),
]


def parse_vllm_log(text: str) -> dict[str, tuple[datetime, dict[str, str]]]:
    """First occurrence of each start-up marker: (CRI timestamp, named groups). The vLLM timestamp itself has no
    year and no sub-second part, so only the container runtime's RFC 3339 prefix (`kubectl logs --timestamps`) is
    used; lines without it (tqdm bars) are skipped."""
    found: dict[str, tuple[datetime, dict[str, str]]] = {}
    for raw in text.splitlines():
        m = _CRI.match(raw)
        if not m:
            continue
        at = ts(m["ts"])
        if at is None:
            continue
        for name, rx in LOG_MARKERS:
            if name not in found and (hit := rx.search(m["line"])):
                found[name] = (at, {k: v for k, v in hit.groupdict().items() if v is not None})
    return found


# -- kubelet image events (kubernetes pkg/kubelet/images/image_manager.go) -----------------------------------------
_PULLED = re.compile(r'Successfully pulled image "(?P<image>[^"]+)" in (?P<pull>\S+) \((?P<total>\S+) including '
                     r"waiting\)(?:\. Image size: (?P<size>\d+) bytes)?")
_PRESENT = re.compile(r'Container image "(?P<image>[^"]+)" already present on machine')
_GO_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)(?P<unit>h|ms|us|µs|ns|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def go_duration(text: str) -> Optional[float]:
    """Seconds of a Go `time.Duration` string (`1m5.871s`, `812ms`)."""
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(v + u for v, u in parts) != text:
        return None
    return sum(float(v) * _UNIT[u] for v, u in parts)


def image_pull(pod_events: list[Obj]) -> dict[str, Any]:
    """When the kubelet started and finished pulling the model image, its size and pull time, from `Pulling` /
    `Pulled` events (seconds resolution; the Pulled message carries the duration in ms)."""
    pulling = [e for e in pod_events if e.get("reason") == "Pulling"]
    pulled = [e for e in pod_events if e.get("reason") == "Pulled"]
    out: dict[str, Any] = {}
    if pulling:
        out["started"] = min(filter(None, map(event_first, pulling)), default=None)
    for ev in pulled:
        msg = ev.get("message") or ""
        if m := _PULLED.search(msg):
            out.update(done=event_last(ev), image=m["image"], pull_s=go_duration(m["pull"]),
                       total_s=go_duration(m["total"]), size_bytes=int(m["size"]) if m["size"] else None)
            break
        if m := _PRESENT.search(msg):
            out.update(done=event_last(ev), image=m["image"], cached=True, pull_s=0.0)
            break
    return out


# -- the burst result ---------------------------------------------------------------------------------------------
def read_burst_result(path: Path) -> dict[str, Any]:
    """`burst --from-zero --out <file>.json`: when the first request went out and when the first token came back.

    Uses the run's wall-clock start (`started_at`) and the earliest `started + ttft` of a successful request."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BadInput(f"--burst-result: cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise BadInput(f"--burst-result: {path} is not JSON ({e}); give the .json file of `burst --out`") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("requests"), list):
        raise BadInput(f"--burst-result: {path} is not a `burstctl burst --out <file>.json` result "
                       "(no `requests` list)")
    start = ts((doc.get("summary") or {}).get("started_at") or (doc.get("config") or {}).get("started_at"))
    if start is None:
        raise BadInput(f"--burst-result: {path} has no `started_at` (wall-clock start of the run); re-run "
                       "`burstctl burst --from-zero --out <file>.json` with this burstctl")
    firsts = []
    for r in doc["requests"]:
        if isinstance(r, dict) and r.get("ok") and isinstance(r.get("started"), (int, float)) \
                and isinstance(r.get("ttft"), (int, float)):
            firsts.append(r["started"] + r["ttft"])
    sent = [r["started"] for r in doc["requests"] if isinstance(r, dict) and isinstance(r.get("started"),
                                                                                         (int, float))]
    return {"first_request": start + timedelta(seconds=min(sent)) if sent else start,
            "first_token": start + timedelta(seconds=min(firsts)) if firsts else None,
            "model": (doc.get("config") or {}).get("model")}


# -- picking the pods ----------------------------------------------------------------------------------------------
def _pod_failure(pod: Obj) -> str:
    st = pod.get("status") or {}
    return f"{st.get('phase', '?')}: {st.get('reason') or ''} {st.get('message') or ''}".strip()


def pick_pods(pods: list[Obj], activation: Optional[datetime]) -> tuple[Optional[Obj], Optional[Obj]]:
    """(first pod of the latest scale-up, the pod to time: its first replica that is not Failed/Succeeded).

    Terminal pods (evicted yesterday, rejected at admission) are never timed; the first pod may be one when it was
    the scale-up's own first attempt, so "pod created" still measures the scale decision."""
    dated = sorted((p for p in pods if created_at(p)), key=lambda p: created_at(p))  # type: ignore[arg-type,return-value]
    if activation is not None:
        dated = [p for p in dated if created_at(p) >= activation - CLOCK_SKEW]  # type: ignore[operator]
    live = [p for p in dated if not is_terminal(p)]
    if not live:
        return (dated[-1], dated[-1]) if dated else (None, None)
    timed = live[0]
    if activation is None:
        # Without the event: the scale-up is the timed pod and what its ReplicaSet tried just before it.
        window = created_at(timed) - SAME_SCALE_UP  # type: ignore[operator]
        dated = [p for p in dated if created_at(p) >= window]  # type: ignore[operator]
    return dated[0], timed


def _cond_time(obj: Optional[Obj], ctype: str) -> Optional[datetime]:
    c = condition(obj, ctype)
    return ts(c.get("lastTransitionTime")) if c and c.get("status") == "True" else None


def _container_started(pod: Obj, container: Optional[str]) -> Optional[datetime]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if container is None or cs.get("name") == container:
            running = (cs.get("state") or {}).get("running") or {}
            return ts(running.get("startedAt"))
    return None


def _find_claim(reader: ClusterReader, pod: Obj, nominated: list[str]) -> Optional[Obj]:
    claims = reader.nodeclaims()
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        hit = next((c for c in claims if (c.get("status") or {}).get("nodeName") == node_name), None)
        if hit:
            return hit
    for n in reversed(nominated):  # the latest nomination is the claim that is (or was) coming
        hit = next((c for c in claims if name_of(c) == n), None)
        if hit:
            return hit
    if node_name:
        return None
    created = created_at(pod)
    pool = pod_pool(pod)
    later = sorted((c for c in claims
                    if pool and ((c.get("metadata") or {}).get("labels") or {}).get(NODEPOOL_LABEL) == pool
                    and created and (created_at(c) or created) >= created - CLOCK_SKEW),
                   key=lambda c: created_at(c) or created)  # type: ignore[arg-type,return-value]
    return later[0] if later else None


# -- the timeline --------------------------------------------------------------------------------------------------
def _seconds(a: Optional[datetime], b: Optional[datetime]) -> Optional[float]:
    return (b - a).total_seconds() if a and b else None


def _size(n: Optional[int]) -> str:
    return f"{n / 1e9:.1f} GB" if n else "size unknown"


def build_timeline(reader: ClusterReader, t: Target, container: Optional[str] = None,
                   burst: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    so = reader.scaled_object(t.namespace, t.scaled_object)
    if so is None:
        raise CheckError(f"ScaledObject {t.namespace}/{t.scaled_object} not found; check --namespace/--scaledobject")
    target = ((so.get("spec") or {}).get("scaleTargetRef") or {}).get("name") or t.scaled_object
    act = scale_from_zero(reader.events(t.namespace, "ScaledObject", t.scaled_object),
                          reader.events(t.namespace, "Deployment", target))
    activation, act_source = act if act else (None, "")
    pods = reader.pods(t.namespace, t.selector)
    first, pod = pick_pods(pods, activation)
    if pod is None:
        raise CheckError(f"no pod matches {t.selector} in {t.namespace}"
                         + (f" since the activation at {activation.isoformat()}" if activation else "")
                         + ": nothing scaled up yet, so there is no timeline (run `burstctl burst --from-zero` "
                           "first)")
    assert first is not None
    pod_events = reader.events(t.namespace, "Pod", name_of(pod))
    first_events = pod_events if first is pod else reader.events(t.namespace, "Pod", name_of(first))
    nominated = nominated_claims(first_events + ([] if first is pod else pod_events))
    claim = _find_claim(reader, pod, nominated)
    created = created_at(first)
    node_name = (pod.get("spec") or {}).get("nodeName")

    steps: list[Step] = []
    if burst:
        steps.append(Step("first request", burst["first_request"], "burst result started_at + first request"))
    steps.append(Step("activation", activation, act_source or "KEDA/Deployment events",
                      note="" if activation else "no activation event left (the API server keeps events ~1 h); "
                                                 "the timeline starts later than the real activation"))
    steps.append(Step("pod created", created, f"Pod {name_of(first)} creationTimestamp"))
    if first is not pod:
        steps.append(Step("replacement pod created", created_at(pod), f"Pod {name_of(pod)} creationTimestamp",
                          note=f"{name_of(first)} will never run ({_pod_failure(first)}); {name_of(pod)} replaced "
                               "it"))
    warm = False
    failures = launch_failures(reader, claim, nominated)
    if claim is not None:
        claim_created = created_at(claim)
        # A NodeClaim older than the scale-up means the pod landed on a node that was already up: no node steps.
        warm = bool(claim_created and created and claim_created < created - CLOCK_SKEW)
        note = "node was already running (warm start)" if warm else ""
        launched = _cond_time(claim, "Launched")
        steps += [
            Step("nodeclaim created", claim_created, f"NodeClaim {name_of(claim)} creationTimestamp", note=note),
            Step("nodeclaim launched", launched, "NodeClaim Launched", note=note or "; ".join(failures)),
            Step("node registered", _cond_time(claim, "Registered"), "NodeClaim Registered", note=note),
            Step("node initialized", _cond_time(claim, "Initialized"), "NodeClaim Initialized", note=note),
        ]
    else:
        steps.append(Step("nodeclaim launched", None, "NodeClaim Launched",
                          note="; ".join(failures) or f"no NodeClaim for node {node_name or '(pod not scheduled)'}"))
    pull = image_pull(pod_events)
    pull_note = ""
    if pull.get("cached"):
        pull_note = "image already on the node"
    elif pull.get("pull_s") is not None:
        rate = (pull["size_bytes"] / pull["pull_s"] / 1e6) if pull.get("size_bytes") and pull["pull_s"] else None
        pull_note = (f"{_size(pull.get('size_bytes'))} in {pull['pull_s']:.1f} s"
                     + (f" ({rate:.0f} MB/s)" if rate else "") + " (kubelet)")
    steps += [
        Step("pod scheduled", _cond_time(pod, "PodScheduled"), "Pod PodScheduled"),
        Step("image pull started", pull.get("started"), "Pod event Pulling"),
        Step("image pulled", pull.get("done"), "Pod event Pulled", note=pull_note),
        Step("container started", _container_started(pod, container), "container state.running.startedAt"),
    ]
    log_text = reader.pod_log(t.namespace, name_of(pod), container) if _container_started(pod, container) else None
    markers = parse_vllm_log(log_text or "")
    engine: dict[str, Any] = {}
    for name, label in (("vllm started", "vLLM started"), ("weights loading", "weights loading"),
                        ("weights loaded", "weights loaded"), ("engine ready", "engine ready"),
                        ("api listening", "API listening")):
        at, groups = markers.get(name, (None, {}))
        note = ""
        if name == "weights loaded" and groups:
            dl = markers.get("weights downloaded", (None, {}))[1].get("seconds")
            streamed = markers.get("weights streamed", (None, {}))[1]
            note = f"vLLM: {float(groups['seconds']):.1f} s, {groups['gib']} GiB" + \
                (f" (of which {float(dl):.1f} s downloading from Hugging Face)" if dl else "") + \
                (f" (Run:ai streamer: {streamed['size']} in {float(streamed['seconds']):.1f} s, {streamed['rate']})"
                 if streamed else "")
            engine["weights_load_s"] = float(groups["seconds"])
            engine["weights_download_s"] = float(dl) if dl else None
            engine["weights_stream_s"] = float(streamed["seconds"]) if streamed else None
        if name == "engine ready" and groups:
            note = f"vLLM: init engine {float(groups['seconds']):.1f} s" + \
                (f" (compilation {float(groups['compile']):.1f} s)" if groups.get("compile") else "")
            engine["engine_init_s"] = float(groups["seconds"])
            engine["compile_s"] = float(groups["compile"]) if groups.get("compile") else None
        steps.append(Step(label, at, "vLLM log (kubectl logs --timestamps)", note=note))
    if "vllm started" in markers:
        engine["vllm_version"] = markers["vllm started"][1].get("version")
    if log_text is None and _container_started(pod, container):
        steps[-1].note = steps[-1].note or "no container log (pass --logs to time the engine phases)"
    steps.append(Step("ready", _cond_time(pod, "Ready"), "Pod Ready"))
    if burst:
        steps.append(Step("first token", burst.get("first_token"), "burst result: first started + ttft",
                          note="" if burst.get("first_token") else "no request of the run succeeded"))

    sched, init = _cond_time(pod, "PodScheduled"), _cond_time(claim, "Initialized") if claim else None
    if sched and init and sched < init and not warm:
        for s in steps:
            if s.name == "node initialized":
                s.note = (f"recorded {(init - sched).total_seconds():.0f} s after the pod was bound: the scheduler "
                          "binds once the node is Ready and advertises nvidia.com/gpu; Karpenter marks Initialized "
                          "on its next reconcile")
    steps = _in_time_order(steps)
    chain = [s for s in steps if s.at is not None and not (warm and s.name.startswith(("nodeclaim", "node ")))]
    start = min((s.at for s in chain), default=None)  # type: ignore[type-var]
    prev: Optional[Step] = None
    for s in chain:
        s.offset_s = _seconds(start, s.at)
        if prev is not None:
            s.delta_s = _seconds(prev.at, s.at)
        prev = s
    at = {s.name: s.at for s in chain}
    phases = _phases(at, warm, pull, engine)
    complete = is_true(pod, "Ready") and not is_terminal(pod)
    end = at.get("first token") or at.get("ready") or (chain[-1].at if chain else None)
    return {
        "model": t.model, "namespace": t.namespace, "scaled_object": t.scaled_object, "pod": name_of(pod),
        "first_pod": name_of(first), "node": node_name, "nodeclaim": name_of(claim) if claim else None,
        "warm_node": warm, "complete": complete, "launch_failures": failures,
        "total_s": _seconds(start, end),
        "engine": engine,
        "image": {k: v for k, v in pull.items() if k not in ("started", "done")},
        "steps": [{**asdict(s), "at": s.at.isoformat() if s.at else None} for s in steps],
        "phases": phases,
    }


def _in_time_order(steps: list[Step]) -> list[Step]:
    """Steps by when they happened (components record them independently: the scheduler may bind the pod before
    Karpenter marks the node Initialized); a step without a time stays after the step it follows."""
    keyed, last = [], None
    for i, s in enumerate(steps):
        last = s.at or last
        keyed.append(((last.timestamp() if last else float("-inf")), 0 if s.at else 1, i, s))
    return [k[-1] for k in sorted(keyed, key=lambda k: k[:3])]


PHASES = [
    # (phase, from step, to step): what an operator tunes separately.
    ("request to activation", "first request", "activation"),
    ("scale decision", "activation", "pod created"),
    ("node provisioning", "pod created", "node initialized"),
    ("scheduling", "node initialized", "pod scheduled"),
    ("image pull", "image pull started", "image pulled"),
    ("container start", "image pulled", "container started"),
    ("vLLM start-up (imports, config)", "container started", "weights loading"),
    ("weights load", "weights loading", "weights loaded"),
    ("engine init (profile, KV cache, compile, CUDA graphs)", "weights loaded", "engine ready"),
    ("API start", "engine ready", "API listening"),
    ("readiness probe", "API listening", "ready"),
    ("first token after ready", "ready", "first token"),
]


def _phases(at: dict[str, Optional[datetime]], warm: bool, pull: dict[str, Any],
            engine: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for phase, a, b in PHASES:
        if a in ("pod created",) and warm and b == "node initialized":
            continue
        start, end = at.get(a), at.get(b)
        if not (start and end):
            continue
        seconds = (end - start).total_seconds()
        note = ""
        if phase == "node provisioning" and at.get("pod scheduled") and at["pod scheduled"] < end:  # type: ignore[operator]
            # The pod was bound before Karpenter's Initialized: provisioning ended at the binding.
            seconds = (at["pod scheduled"] - start).total_seconds()  # type: ignore[operator]
            note = "ends at pod scheduled: the pod was bound before the NodeClaim was marked Initialized"
        if seconds < 0:
            note = (f"{-seconds:.0f} s overlap, counted as 0: '{b}' was recorded before '{a}' (here: the scheduler "
                    "bound the pod before Karpenter marked the node Initialized)" if phase == "scheduling" else
                    f"{-seconds:.0f} s overlap, counted as 0: '{b}' was recorded before '{a}'")
            seconds = 0.0
        if phase == "image pull" and pull.get("pull_s") is not None:
            seconds, note = pull["pull_s"], "kubelet's measured pull time (events have 1 s resolution)"
        out.append({"phase": phase, "from": a, "to": b, "seconds": seconds, "note": note})
    return out


def print_timeline(tl: dict[str, Any]) -> None:
    """The steps and phases as tables (the `--json` document has the same content)."""
    from rich.table import Table

    from burstctl.output import fmt_seconds, stdout

    con = stdout()
    table = Table(title=f"scale-from-zero of {tl['namespace']}/{tl['model']}: pod {tl['pod']}"
                        + (f", nodeclaim {tl['nodeclaim']}" if tl["nodeclaim"] else ""), title_justify="left")
    for col, just in (("step", "left"), ("at (UTC)", "left"), ("+since start", "right"), ("step took", "right"),
                      ("note", "left")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for st in tl["steps"]:
        at = st["at"][11:19] if st["at"] else "-"
        table.add_row(st["name"], at, fmt_seconds(st["offset_s"]), fmt_seconds(st["delta_s"]), st["note"])
    con.print(table)
    if tl["phases"]:
        ph = Table(title="phases", title_justify="left")
        ph.add_column("phase")
        ph.add_column("took", justify="right")
        ph.add_column("note")
        for p in tl["phases"]:
            ph.add_row(p["phase"], fmt_seconds(p["seconds"]), p["note"])
        con.print(ph)
    for failure in tl["launch_failures"]:
        con.print(f"[bold red]launch failed:[/] {failure}")
    state = "ready" if tl["complete"] else "[yellow]not ready yet[/]"
    con.print(f"total: {fmt_seconds(tl['total_s'])} ({state})")
