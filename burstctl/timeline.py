"""`timeline`: the steps of the latest scale-from-zero of a model, from object timestamps and conditions.

activation (ScaledObject Active) -> pod created -> NodeClaim created -> launched -> registered -> initialized ->
pod scheduled -> container started -> ready. Kubernetes keeps only the latest transition of each condition, so this
measures the most recent cold start; run it right after one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Optional

from burstctl.k8s import NODEPOOL_LABEL, ClusterReader, Obj, condition, is_true, name_of, ts
from burstctl.output import CheckError
from burstctl.verify import Target, pod_pool

CLOCK_SKEW = timedelta(seconds=5)
"""Pods created this much before the activation timestamp still belong to it (KEDA and the API server clocks)."""


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


PHASES = [
    # (phase, from step, to step): what an operator tunes separately.
    ("scale decision", "activation", "pod created"),
    ("node provisioning", "pod created", "node initialized"),
    ("scheduling", "node initialized", "pod scheduled"),
    ("image pull + container start", "pod scheduled", "container started"),
    ("model load (startup probe)", "container started", "ready"),
]


def _cond_time(obj: Optional[Obj], ctype: str) -> Optional[datetime]:
    c = condition(obj, ctype)
    return ts(c.get("lastTransitionTime")) if c and c.get("status") == "True" else None


def _container_started(pod: Obj, container: Optional[str]) -> Optional[datetime]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for cs in statuses:
        if container is None or cs.get("name") == container:
            running = (cs.get("state") or {}).get("running") or {}
            return ts(running.get("startedAt"))
    return None


def pick_pod(pods: list[Obj], activation: Optional[datetime]) -> Optional[Obj]:
    """The first pod of the latest scale-up: the earliest one created at/after activation (or the earliest)."""
    dated = sorted((p for p in pods if ts((p.get("metadata") or {}).get("creationTimestamp"))),
                   key=lambda p: ts(p["metadata"]["creationTimestamp"]))  # type: ignore[arg-type,return-value]
    if activation is not None:
        after = [p for p in dated if ts(p["metadata"]["creationTimestamp"]) >= activation - CLOCK_SKEW]  # type: ignore[operator]
        if after:
            return after[0]
    return dated[0] if dated else None


def build_timeline(reader: ClusterReader, t: Target, container: Optional[str] = None) -> dict[str, Any]:
    so = reader.scaled_object(t.namespace, t.scaled_object)
    if so is None:
        raise CheckError(f"ScaledObject {t.namespace}/{t.scaled_object} not found; check --namespace/--scaledobject")
    activation = _cond_time(so, "Active")
    pods = reader.pods(t.namespace, t.selector)
    pod = pick_pod(pods, activation)
    if pod is None:
        raise CheckError(f"no pod matches {t.selector} in {t.namespace}: nothing scaled up yet, so there is no "
                         "timeline (run `burstctl burst --from-zero` first)")
    node_name = (pod.get("spec") or {}).get("nodeName")
    claim = next((c for c in reader.nodeclaims() if node_name and (c.get("status") or {}).get("nodeName") == node_name),
                 None)
    created = ts((pod.get("metadata") or {}).get("creationTimestamp"))
    if claim is None and not node_name:
        # Not scheduled yet: the claim Karpenter made for it is the pool's first one created after the pod.
        pool = pod_pool(pod)
        later = sorted((c for c in reader.nodeclaims()
                        if pool and ((c.get("metadata") or {}).get("labels") or {}).get(NODEPOOL_LABEL) == pool
                        and created and (ts((c.get("metadata") or {}).get("creationTimestamp")) or created)
                        >= created - CLOCK_SKEW),
                       key=lambda c: ts(c["metadata"].get("creationTimestamp")) or created)  # type: ignore[arg-type,return-value]
        claim = later[0] if later else None
    steps = [
        Step("activation", activation, "ScaledObject Active lastTransitionTime",
             note="" if activation else "ScaledObject is not Active now; its activation time is gone"),
        Step("pod created", created, f"Pod {name_of(pod)} creationTimestamp"),
    ]
    warm = False
    if claim is not None:
        claim_created = ts((claim.get("metadata") or {}).get("creationTimestamp"))
        # A NodeClaim older than the pod means the pod landed on a node that was already up: no node steps.
        warm = bool(claim_created and created and claim_created < created - CLOCK_SKEW)
        note = "node was already running (warm start)" if warm else ""
        steps += [
            Step("nodeclaim created", claim_created, f"NodeClaim {name_of(claim)} creationTimestamp", note=note),
            Step("nodeclaim launched", _cond_time(claim, "Launched"), "NodeClaim Launched", note=note),
            Step("node registered", _cond_time(claim, "Registered"), "NodeClaim Registered", note=note),
            Step("node initialized", _cond_time(claim, "Initialized"), "NodeClaim Initialized", note=note),
        ]
    else:
        steps.append(Step("node initialized", None, "NodeClaim Initialized",
                          note=f"no NodeClaim for node {node_name or '(pod not scheduled)'}"))
    steps += [
        Step("pod scheduled", _cond_time(pod, "PodScheduled"), "Pod PodScheduled"),
        Step("container started", _container_started(pod, container), "container state.running.startedAt"),
        Step("ready", _cond_time(pod, "Ready"), "Pod Ready"),
    ]
    chain = [s for s in steps if s.at is not None and not (warm and s.name.startswith(("nodeclaim", "node ")))]
    start = chain[0].at if chain else None
    prev: Optional[datetime] = None
    for s in chain:
        s.offset_s = (s.at - start).total_seconds()  # type: ignore[operator]
        s.delta_s = (s.at - prev).total_seconds() if prev else None
        prev = s.at
    at = {s.name: s.at for s in chain}
    phases = []
    for phase, a, b in PHASES:
        if at.get(a) and at.get(b):
            phases.append({"phase": phase, "from": a, "to": b, "seconds": (at[b] - at[a]).total_seconds()})  # type: ignore[operator]
    complete = is_true(pod, "Ready")
    return {
        "model": t.model, "namespace": t.namespace, "scaled_object": t.scaled_object, "pod": name_of(pod),
        "node": node_name, "nodeclaim": name_of(claim) if claim else None, "warm_node": warm,
        "complete": complete,
        "total_s": (chain[-1].at - start).total_seconds() if chain and start else None,  # type: ignore[operator]
        "steps": [{**asdict(s), "at": s.at.isoformat() if s.at else None} for s in steps],
        "phases": phases,
    }
