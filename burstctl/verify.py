"""`verify`: did both scaling loops fire (or, with ``--expect-idle``, did everything scale back to zero)?

Each check names the likely cause from the troubleshooting list when it fails, so the operator knows where to
look next instead of reading five ``kubectl describe`` outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from burstctl.k8s import (GPU_PRESENT_LABEL, NODEPOOL_LABEL, TRAFFIC_CLASS_LABEL, ClusterReader, Obj, condition,
                          event_last, is_serving, is_terminal, is_true, launch_failures, matches, name_of,
                          nominated_claims, scale_from_zero)
from burstctl.output import Check

# Likely causes, phrased once so verify's checks and the docs stay consistent.
CAUSE_KEDA_NEVER_SCALES = (
    "KEDA never scales: the Prometheus query returns nothing (try `sum(vllm:num_requests_waiting"
    "{{model_name=\"{model}\"}}) or vector(0)` in Prometheus), the model's ServiceMonitor is not selected by "
    "Prometheus, or the interceptor route (HTTPScaledObject/InterceptorRoute host) is missing so requests never "
    "reach the external-push trigger"
)
CAUSE_SO_NOT_READY = (
    "a trigger fails, and while none works KEDA scales neither up nor down to zero: for prometheus, Prometheus must "
    "answer the query at serverAddress (is it running? `kubectl -n monitoring get pods`); for external-push, the "
    "HTTP add-on external scaler (scalerAddress) must be up and the interceptorRoute must exist; then "
    "`kubectl describe scaledobject {name} -n {ns}`"
)
CAUSE_NO_GPU_NODE = (
    "no GPU node: look at the NodeClaim and EC2NodeClass status (`kubectl describe nodeclaim`, `kubectl get "
    "ec2nodeclass -o yaml`), the GPU vCPU quotas (`burstctl preflight`), and whether the pod's nodeSelector/"
    "tolerations match the pool's labels and nvidia.com/gpu taint"
)
CAUSE_NO_NODECLAIM = (
    "Karpenter created no NodeClaim: the NodePool's gpuLimit/cpuLimit is used up, the pod's nodeSelector/"
    "tolerations do not match the pool, or the NodePool/EC2NodeClass is not Ready (`kubectl get nodepool,"
    "ec2nodeclass`); see the Karpenter controller logs"
)
CAUSE_LAUNCH = (
    "EC2 did not launch the instance: insufficient capacity or GPU vCPU quota (`burstctl preflight`), EC2NodeClass "
    "status (subnet/security-group selectors, AMI alias, instance profile: `kubectl describe ec2nodeclass`)"
)
CAUSE_REGISTER = (
    "the instance never joined the cluster: node role access entry, cluster security group, bootstrap user data "
    "(check the instance's console output)"
)
CAUSE_INITIALIZE = (
    "the node joined but is not initialized: nvidia.com/gpu is not advertised (AL2023: the nvidia-device-plugin "
    "DaemonSet pod is not running on the node; Bottlerocket: the host service nvidia-k8s-device-plugin failed, see "
    "`apiclient logs` via the admin container) or a startup taint was not removed"
)
CAUSE_IMAGE = "the image pull fails: image tag, registry access, or the GPU node's disk is too small for the image"
CAUSE_CRASH = (
    "vLLM exits at startup: VRAM (CUDA out of memory: lower gpuMemoryUtilization/maxModelLen or give it more "
    "GPUs), a gated model without the HF token, or bad extraArgs; `kubectl logs --previous`"
)
CAUSE_NOT_READY = (
    "pod never ready: the model is still loading (weights streamed from the model store into VRAM, torch.compile, "
    "CUDA graphs), the model store was never staged (the staging Job of the revision failed), or the startup probe "
    "budget (startupBudget) is too short; `kubectl logs` and `kubectl describe pod`"
)
CAUSE_STILL_ACTIVE = (
    "still active: requests are still arriving (interceptor pending count), the Prometheus query is non-zero, a "
    "pre-warm window (models[].prewarm, a cron trigger) is open, or the cooldownPeriod (idleBeforeScaleToZero) has "
    "not elapsed"
)
CAUSE_PREWARM_OPEN = (
    "a pre-warm window is open: its cron trigger (models[].prewarm) keeps the model active until the window's end, "
    "then the cooldownPeriod applies; check again after the window"
)
CAUSE_NOT_ZERO = (
    "not scaled to zero: minReplicaCount > 0, a pre-warm window (models[].prewarm) is open, the cooldownPeriod "
    "(idleBeforeScaleToZero) has not elapsed, or a trigger still reports load; terminating pods first drain "
    "in-flight requests"
)
CAUSE_NODE_LEFT = (
    "Karpenter has not removed the GPU node: consolidateAfter has not elapsed, a karpenter.sh/do-not-disrupt "
    "annotation, non-DaemonSet pods still on the node, or a disruption budget of 0"
)


@dataclass
class Target:
    """Which model to look at. ``pool`` is inferred from the pods' node selector when not given."""

    namespace: str
    scaled_object: str
    model: str
    selector: dict[str, str]
    pool: Optional[str] = None


@dataclass
class Snapshot:
    scaled_object: Optional[Obj]
    hpa: Optional[Obj]
    hpa_name: str
    pods: list[Obj]
    nodeclaims: list[Obj]
    nodes: list[Obj]
    pool: Optional[str]
    """The NodePool the pods are pinned to (`--pool`, or a pod's `karpenter.sh/nodepool` selector)."""
    activation: Optional[tuple[Any, str]] = None
    """(when, which event) of the latest 0 -> N scale, if the API server still has the event."""
    so_events: list[Obj] = field(default_factory=list)
    launch_failures: list[str] = field(default_factory=list)
    """Why NodeClaims Karpenter made for pending pods did not launch (condition reason, or events of deleted ones)."""
    notes: list[str] = field(default_factory=list)
    traffic_class: Optional[str] = None
    """The traffic class the pods select (`gpu-burst.io/traffic-class`), shared by the NodePools they can land on."""

    @property
    def where(self) -> str:
        """Which GPU capacity the checks looked at, for messages."""
        if self.pool:
            return f"pool {self.pool}"
        return f"the pools of traffic class {self.traffic_class}" if self.traffic_class else "any GPU pool"


def pod_placement(pod: Obj) -> Optional[tuple[str, str]]:
    """The node label a pod's GPU placement is keyed on, from its nodeSelector or a required node-affinity term.

    Model pods select a traffic class (`gpu-burst.io/traffic-class`) that several NodePools carry as a template
    label, so Karpenter's NodePool weights choose among them (spot first, on-demand fallback); a pod pinned to one
    NodePool (`karpenter.sh/nodepool`) is keyed on that pool."""
    spec = pod.get("spec") or {}
    selector = spec.get("nodeSelector") or {}
    terms = ((((spec.get("affinity") or {}).get("nodeAffinity") or {})
              .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or [])
    for label in (TRAFFIC_CLASS_LABEL, NODEPOOL_LABEL):
        if selector.get(label):
            return label, selector[label]
        for term in terms:
            for expr in term.get("matchExpressions") or []:
                if expr.get("key") == label and expr.get("operator") == "In" and expr.get("values"):
                    return label, expr["values"][0]
    return None


def gather(reader: ClusterReader, t: Target) -> Snapshot:
    so = reader.scaled_object(t.namespace, t.scaled_object)
    hpa_name = ((so or {}).get("status") or {}).get("hpaName") or f"keda-hpa-{t.scaled_object}"
    hpa = reader.hpa(t.namespace, hpa_name)
    pods = reader.pods(t.namespace, t.selector)
    placement = (NODEPOOL_LABEL, t.pool) if t.pool else next((p for p in map(pod_placement, pods) if p), None)
    node_sel = {GPU_PRESENT_LABEL: "true", **(dict([placement]) if placement else {})}
    pool = placement[1] if placement and placement[0] == NODEPOOL_LABEL else None
    traffic_class = placement[1] if placement and placement[0] == TRAFFIC_CLASS_LABEL else None
    # NodeClaims carry the NodePool template labels (the traffic class among them), so the same selector finds the
    # claims of every pool the pods can land on.
    claims = [c for c in reader.nodeclaims() if matches(c, node_sel)]
    activation, so_events = None, []
    if so is not None:
        target = ((so.get("spec") or {}).get("scaleTargetRef") or {}).get("name") or t.scaled_object
        so_events = reader.events(t.namespace, "ScaledObject", t.scaled_object)
        activation = scale_from_zero(so_events, reader.events(t.namespace, "Deployment", target))
    failures: list[str] = []
    pending = [p for p in pods if not is_terminal(p) and not (p.get("spec") or {}).get("nodeName")]
    if pending and not any(is_serving(p) for p in pods):
        nominated = nominated_claims([e for p in pending for e in reader.events(t.namespace, "Pod", name_of(p))])
        names = {name_of(c) for c in claims}
        failures = launch_failures(reader, None, [n for n in nominated if n not in names])
    return Snapshot(so, hpa, hpa_name, pods, claims, reader.nodes(node_sel), pool, activation, so_events, failures,
                    traffic_class=traffic_class)


def _phase_summary(pods: list[Obj]) -> str:
    counts: dict[str, int] = {}
    for p in pods:
        phase = (p.get("status") or {}).get("phase", "Unknown")
        counts[phase] = counts.get(phase, 0) + 1
    ready = sum(1 for p in pods if is_true(p, "Ready"))
    return f"{len(pods)} pod(s): " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f"; {ready} ready"


def diagnose_pod(pod: Obj) -> Optional[tuple[str, str]]:
    """(what is wrong, likely cause) for a pod that is not serving, or None when it is Running and Ready."""
    status = pod.get("status") or {}
    if status.get("phase") == "Running" and is_true(pod, "Ready"):
        return None
    sched = condition(pod, "PodScheduled")
    if sched and sched.get("status") != "True":
        return (f"{name_of(pod)} unschedulable: {sched.get('message') or sched.get('reason', '')}".strip(),
                CAUSE_NO_GPU_NODE)
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        reason = waiting.get("reason", "")
        if reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
            return f"{name_of(pod)}: {reason} {waiting.get('message', '')}".strip(), CAUSE_IMAGE
        if reason == "CrashLoopBackOff" or last.get("reason") in ("OOMKilled", "Error"):
            why = last.get("reason") or reason
            return (f"{name_of(pod)}: {reason or 'restarting'} (last exit: {why}, restarts "
                    f"{cs.get('restartCount', 0)})", CAUSE_CRASH)
        if reason in ("ContainerCreating", "PodInitializing"):
            return f"{name_of(pod)}: {reason} (image pull or volume mount in progress)", CAUSE_IMAGE
    return f"{name_of(pod)}: {status.get('phase', 'Unknown')}, not Ready", CAUSE_NOT_READY


def _nodeclaim_line(c: Obj) -> str:
    labels = (c.get("metadata") or {}).get("labels") or {}
    conds = "/".join(f"{k}={'✓' if is_true(c, k) else '✗'}" for k in ("Launched", "Registered", "Initialized"))
    return (f"{name_of(c)} {labels.get('node.kubernetes.io/instance-type', '?')} "
            f"{labels.get('karpenter.sh/capacity-type', '?')} {labels.get('topology.kubernetes.io/zone', '?')} "
            f"{conds}")


def _scaled_object_ready(s: Snapshot, t: Target) -> list[Check]:
    so = s.scaled_object
    where = f"{t.namespace}/{t.scaled_object}"
    if so is None:
        return [Check("scaledobject ready", "fail", f"ScaledObject {where} not found",
                      "wrong --namespace/--scaledobject, or the stack did not deploy this model (`kubectl get "
                      "scaledobjects -A`)")]
    out = []
    ready = condition(so, "Ready")
    if is_true(so, "Ready"):
        out.append(Check("scaledobject ready", "pass", f"{where} Ready"))
    else:
        status = (ready or {}).get("status", "Unknown")
        msg = (f"{(ready or {}).get('reason') or ''}: {(ready or {}).get('message') or ''}".strip(": ")
               or "no Ready condition yet")
        failing = failing_triggers(so)
        detail = f"{where} Ready={status}: {msg}"
        if failing:
            detail += "; failing: " + ", ".join(failing)
        last = latest_scaler_error(s.so_events)
        if last:
            detail += f"; last scaler error: {last}"
        # Ready=Unknown/PartialTriggerError: another trigger is active, so KEDA still scales (scale executor).
        partial = status == "Unknown" and (ready or {}).get("reason") == "PartialTriggerError"
        out.append(Check("scaledobject ready", "warn" if partial else "fail", detail,
                         CAUSE_SO_NOT_READY.format(name=t.scaled_object, ns=t.namespace),
                         {"ready": status, "reason": (ready or {}).get("reason"), "failing": failing,
                          "health": (so.get("status") or {}).get("health") or {}}))
    if is_true(so, "Paused"):
        out.append(Check("scaledobject paused", "warn", f"{where} is paused (autoscaling.keda.sh/paused)",
                         "remove the paused annotation to let KEDA scale"))
    if is_true(so, "Fallback"):
        out.append(Check("scaledobject fallback", "warn", f"{where} uses fallback replicas: "
                         f"{(condition(so, 'Fallback') or {}).get('message', '')}",
                         "a trigger's metric query is failing; check Prometheus reachability and the query"))
    return out


def failing_triggers(so: Obj) -> list[str]:
    """The triggers KEDA counts failures for (status.health, keyed by external metric name `s<index>-<metric>`,
    kedacore/keda@v2.20.2 pkg/fallback/fallback.go), named as in the spec. KEDA keeps status.health only for a
    ScaledObject with a valid spec.fallback; without one this is empty and the KEDAScalerFailed event says more."""
    triggers = (so.get("spec") or {}).get("triggers") or []
    out = []
    for metric, h in sorted(((so.get("status") or {}).get("health") or {}).items()):
        if (h or {}).get("status") != "Failing":
            continue
        index = metric.split("-", 1)[0].lstrip("s")
        trig = triggers[int(index)] if index.isdigit() and int(index) < len(triggers) else {}
        label = f"trigger '{trig.get('name')}' ({trig.get('type')})" if trig.get("name") else \
            f"trigger {trig.get('type') or '?'}"
        out.append(f"{label}, metric {metric}: {h.get('numberOfFailures', '?')} failures in a row")
    return out


def latest_scaler_error(so_events: list[Obj]) -> str:
    errors = [e for e in so_events if e.get("reason") == "KEDAScalerFailed"]
    if not errors:
        return ""
    last = max(errors, key=lambda e: event_last(e).timestamp() if event_last(e) else 0.0)
    return (last.get("note") or last.get("message") or "").strip()


def _skipped(names: list[str], where: str) -> list[Check]:
    return [Check(n, "skip", f"not checked: {where} is not Ready, so nothing downstream scales (see 'scaledobject "
                  "ready')") for n in names]


def verify_active(s: Snapshot, t: Target) -> list[Check]:
    """The model was just under load: KEDA active, replicas >= 1, pods serving on GPU nodes Karpenter launched."""
    checks = _scaled_object_ready(s, t)
    if s.scaled_object is not None and checks[0].status == "fail":
        # One root cause: a ScaledObject that is not Ready scales nothing; quotas, pods or nodes are not to blame.
        return checks + _skipped(["scaledobject active", "hpa desired replicas", "model pods", "nodeclaims",
                                  "gpu nodes"], f"{t.namespace}/{t.scaled_object}")
    keda_cause = CAUSE_KEDA_NEVER_SCALES.format(model=t.model)
    so = s.scaled_object
    if so is not None:
        act = condition(so, "Active")
        if is_true(so, "Active"):
            # KEDA writes no lastTransitionTime: say when from the activation event when there is one.
            since = (f"; scaled from zero at {s.activation[0].isoformat()} ({s.activation[1]})" if s.activation
                     else "")
            checks.append(Check("scaledobject active", "pass", f"Active: {act.get('message') or act.get('reason')}"
                                f"{since}"))
        else:
            checks.append(Check("scaledobject active", "fail",
                                f"not Active: {(act or {}).get('message') or 'no Active condition'}", keda_cause))

    desired = 0
    if s.hpa is None:
        checks.append(Check("hpa desired replicas", "fail", f"HPA {s.hpa_name} not found",
                            "KEDA creates the HPA once the ScaledObject is Ready; see the scaledobject checks"))
    else:
        st, spec = s.hpa.get("status") or {}, s.hpa.get("spec") or {}
        desired = int(st.get("desiredReplicas") or 0)
        detail = (f"{s.hpa_name}: desired {desired}, current {st.get('currentReplicas', 0)} "
                  f"(min {spec.get('minReplicas', 1)}, max {spec.get('maxReplicas', '?')})")
        checks.append(Check("hpa desired replicas", "pass" if desired >= 1 else "fail", detail,
                            "" if desired >= 1 else keda_cause, {"desired": desired,
                                                                 "current": st.get("currentReplicas", 0)}))

    live = [p for p in s.pods if not is_terminal(p)]
    old = [p for p in s.pods if is_terminal(p)]
    old_text = (f"; {len(old)} finished pod(s) ignored (" + ", ".join(
        f"{name_of(p)} {(p.get('status') or {}).get('reason') or (p.get('status') or {}).get('phase')}"
        for p in old) + ")") if old else ""
    serving = [p for p in live if is_serving(p)]
    if not s.pods:
        cause = ("the Deployment did not create pods: check --selector, then `kubectl describe rs` (quota, "
                 "admission webhooks)") if desired >= 1 else keda_cause
        checks.append(Check("model pods", "fail", f"no pods match {t.selector} in {t.namespace}", cause))
    elif serving:
        # A ready replica serves: that is what the check asks; others still starting are not a failure.
        starting = [d[0] for d in map(diagnose_pod, live) if d]
        checks.append(Check("model pods", "pass", _phase_summary(live) + old_text
                            + (f"; still starting: {'; '.join(starting)}" if starting else ""),
                            data={"serving": [name_of(p) for p in serving], "ignored": [name_of(p) for p in old]}))
    elif live:
        problems = [d for d in map(diagnose_pod, live) if d]
        checks.append(Check("model pods", "fail", _phase_summary(live) + "; " + problems[0][0] + old_text,
                            problems[0][1], {"problems": [p[0] for p in problems]}))
    else:
        why = "; ".join(f"{name_of(p)}: {(p.get('status') or {}).get('reason') or ''} "
                        f"{(p.get('status') or {}).get('message') or ''}".strip() for p in old)
        checks.append(Check("model pods", "fail", f"no live pod, only finished ones: {why}",
                            "the ReplicaSet replaces failed pods; if none appears, check `kubectl describe rs` and "
                            "the KEDA/HPA replica count"))

    pending = any(condition(p, "PodScheduled") and not is_true(p, "PodScheduled") for p in live)
    if not s.nodeclaims:
        if pending and s.launch_failures:
            checks.append(Check("nodeclaims", "fail", f"no NodeClaim left for {s.where}: "
                                + "; ".join(s.launch_failures), CAUSE_LAUNCH, {"launch_failures": s.launch_failures}))
        elif pending:
            checks.append(Check("nodeclaims", "fail", f"no NodeClaim for {s.where}",
                                CAUSE_NO_NODECLAIM))
        elif s.pods:
            checks.append(Check("nodeclaims", "warn", "no NodeClaim, yet pods are scheduled",
                                "the pods run on nodes Karpenter did not launch (check the pool's nodeSelector)"))
        else:
            checks.append(Check("nodeclaims", "fail", "no NodeClaim (and no pod asking for a GPU node)", keda_cause))
    else:
        bad = None
        # A claim still launching/registering next to a serving one (1 -> N) is not a failure of this burst.
        for c in ([] if serving and all(is_true(c, "Launched") for c in s.nodeclaims) else s.nodeclaims):
            for ctype, cause in (("Launched", CAUSE_LAUNCH), ("Registered", CAUSE_REGISTER),
                                 ("Initialized", CAUSE_INITIALIZE)):
                if not is_true(c, ctype):
                    cond = condition(c, ctype) or {}
                    bad = bad or Check("nodeclaims", "fail", f"{name_of(c)} not {ctype}: "
                                       f"{cond.get('reason', '')} {cond.get('message', '')}".strip(), cause)
                    break
        lines = "; ".join(_nodeclaim_line(c) for c in s.nodeclaims)
        checks.append(Check("nodeclaims", "fail", lines + " — " + bad.detail, bad.cause) if bad
                      else Check("nodeclaims", "pass", lines))

    if not s.nodes:
        checks.append(Check("gpu nodes", "fail", f"no Node with {GPU_PRESENT_LABEL}=true in {s.where}", CAUSE_NO_GPU_NODE))
    else:
        parts, failing = [], None
        for n in s.nodes:
            alloc = (n.get("status") or {}).get("allocatable") or {}
            # A time-sliced pool's node advertises its slices (nvidia.com/gpu.shared) instead of whole GPUs.
            gpus = str(alloc.get("nvidia.com/gpu") or alloc.get("nvidia.com/gpu.shared") or "0")
            ready = is_true(n, "Ready")
            parts.append(f"{name_of(n)} Ready={ready} gpus={gpus}")
            if not ready:
                failing = failing or ("node not Ready", CAUSE_REGISTER)
            elif gpus in ("0", ""):
                failing = failing or ("node advertises no nvidia.com/gpu (nor nvidia.com/gpu.shared)", CAUSE_INITIALIZE)
        detail = "; ".join(parts)
        checks.append(Check("gpu nodes", "fail", f"{detail} — {failing[0]}", failing[1]) if failing
                      else Check("gpu nodes", "pass", detail))
    return checks


def verify_idle(s: Snapshot, t: Target) -> list[Check]:
    """After the cooldown: KEDA inactive, zero replicas, no NodeClaim and no GPU node left in the pool."""
    checks = _scaled_object_ready(s, t)
    so = s.scaled_object
    if so is not None:
        last = ((so.get("status") or {}).get("lastActiveTime"))
        # lastActiveTime is refreshed on every poll while a trigger is active, so once inactive it is when
        # activity ended (KEDA scale executor); conditions have no timestamps.
        last_text = f"last active at {last}" if last else "never active since KEDA took it over"
        # status.triggersActivity: KEDA's metric name per trigger ("s<index>-cron-<zone>-<start>-<end>" for cron)
        activity = (so.get("status") or {}).get("triggersActivity") or {}
        active = sorted(k for k, v in activity.items() if (v or {}).get("isActive"))
        if active:
            last_text += f"; active: {', '.join(active)}"
        if is_true(so, "Active"):
            cause = CAUSE_PREWARM_OPEN if any("-cron-" in a for a in active) else CAUSE_STILL_ACTIVE
            checks.append(Check("scaledobject inactive", "fail", f"still Active ({last_text})", cause))
        else:
            checks.append(Check("scaledobject inactive", "pass", f"not Active; {last_text}"))
    current = int(((s.hpa or {}).get("status") or {}).get("currentReplicas") or 0)
    live = [p for p in s.pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    if live or current:
        checks.append(Check("replicas at zero", "fail", f"{len(live)} pod(s) left, HPA current replicas {current}",
                            CAUSE_NOT_ZERO))
    else:
        checks.append(Check("replicas at zero", "pass", f"no pods; HPA {s.hpa_name} current replicas 0"
                            if s.hpa else "no pods"))
    if s.nodeclaims:
        checks.append(Check("nodeclaims gone", "fail", "; ".join(_nodeclaim_line(c) for c in s.nodeclaims),
                            CAUSE_NODE_LEFT))
    else:
        checks.append(Check("nodeclaims gone", "pass", f"no NodeClaim in {s.where}"))
    if s.nodes:
        checks.append(Check("gpu nodes gone", "fail", ", ".join(name_of(n) for n in s.nodes), CAUSE_NODE_LEFT))
    else:
        checks.append(Check("gpu nodes gone", "pass", f"no GPU node in {s.where}"))
    return checks


def verify(reader: ClusterReader, t: Target, expect_idle: bool = False) -> tuple[list[Check], dict[str, Any]]:
    """Run the checks; returns them with a description of what was looked at (for ``--json``)."""
    s = gather(reader, t)
    checks = verify_idle(s, t) if expect_idle else verify_active(s, t)
    info = {"mode": "idle" if expect_idle else "active", "namespace": t.namespace,
            "scaled_object": t.scaled_object, "hpa": s.hpa_name, "selector": t.selector, "pool": s.pool,
            "traffic_class": s.traffic_class}
    return checks, info
