"""`estimate --measured`: a measured cold start (the `burstctl timeline --json` report) next to the estimate.

The estimate cuts a cold start where figures can be looked up or computed, the timeline where the cluster records a
time, so each row groups the phases of either side that cover the same span. Karpenter's batch idle second is in the
estimate's trigger and in the timeline's node provisioning; nothing else crosses a row boundary.
"""

import json
from pathlib import Path
from typing import Any, Optional

from burstctl.output import BadInput

ROWS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    # (row, estimate phases (a name, or a prefix followed by a space or "("), timeline phases)
    ("trigger", ("scale-from-zero trigger",), ("request to activation", "scale decision")),
    ("GPU node: launch, Ready, GPU allocatable, pod bound", ("node launch -> Ready", "Ready -> GPU allocatable"),
     ("node provisioning", "scheduling")),
    ("image", ("image",), ("image pull", "container start")),
    ("weights in GPU", ("weights in GPU",), ("weights load",)),
    ("engine: start-up, init, API", ("engine init",),
     ("vLLM start-up (imports, config)", "engine init (profile, KV cache, compile, CUDA graphs)", "API start")),
    ("ready and routed", ("ready -> request routed",), ("readiness probe",)),
    ("first token", ("first token",), ("first token after ready",)),
]

GAPS = "between the timeline's phases"


def _is(name: str, key: str) -> bool:
    return name == key or name.startswith(key + " ")


def read_measured(path: Path) -> dict[str, Any]:
    """The timeline report, checked for what the comparison reads: `model`, `phases` [{phase, seconds}],
    `total_s`, `warm_node`, `complete`."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BadInput(f"--measured: cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise BadInput(f"--measured: {path} is not JSON ({e}); give the output of `burstctl timeline --json`") \
            from None
    if isinstance(doc, dict) and "error" in doc and "phases" not in doc:
        raise BadInput(f"--measured: {path} holds a failed timeline run: {doc['error']}")
    phases = doc.get("phases") if isinstance(doc, dict) else None
    if not isinstance(phases, list) or not isinstance(doc.get("model"), str) or not all(
            isinstance(p, dict) and isinstance(p.get("phase"), str) and isinstance(p.get("seconds"), (int, float))
            for p in phases):
        raise BadInput(f"--measured: {path} is not a `burstctl timeline --json` report (expected `model` and "
                       "`phases`: [{\"phase\": ..., \"seconds\": ...}])")
    return doc


def compare(estimate: Any, timeline: dict[str, Any], source: str = "") -> dict[str, Any]:
    """Rows of (estimated, measured, measured - estimated) seconds for the stack path of `estimate`."""
    stack = estimate.paths[-1]
    measured = {p["phase"]: float(p["seconds"]) for p in timeline["phases"]}
    rows = []
    for label, est_keys, tl_keys in ROWS:
        est_phases = [p for p in stack.phases if any(_is(p.name, k) for k in est_keys)]
        have = [k for k in tl_keys if k in measured]
        est_s = round(sum(p.seconds for p in est_phases), 1)
        got: Optional[float] = round(sum(measured[k] for k in have), 1) if have else None
        rows.append({"row": label, "estimated_s": est_s, "measured_s": got,
                     "difference_s": None if got is None else round(got - est_s, 1),
                     "estimate_phases": [p.name for p in est_phases], "timeline_phases": list(tl_keys),
                     "not_measured": [k for k in tl_keys if k not in measured]})
    total = timeline.get("total_s")
    total_s = round(float(total), 1) if isinstance(total, (int, float)) else None
    if total_s is not None and timeline.get("complete") is not False:
        # The phases leave out a few short waits (pod bound -> pull started, a replaced pod): shown, so the rows
        # add up to the total.
        rest = round(total_s - sum(r["measured_s"] or 0.0 for r in rows), 1)
        rows.append({"row": GAPS, "estimated_s": 0.0, "measured_s": rest, "difference_s": rest,
                     "estimate_phases": [], "timeline_phases": [], "not_measured": []})
    notes = []
    if timeline.get("warm_node"):
        notes.append("the measured start found its GPU node already running: not a cold start from zero GPU nodes")
    if timeline.get("complete") is False:
        notes.append("the timeline is incomplete (the pod was not ready): later rows are missing")
    if not any(p["phase"] == "request to activation" for p in timeline["phases"]):
        notes.append("no burst result in the timeline (`timeline --burst-result`): it starts at the activation and "
                     "ends at ready, without the first token")
    return {"source": source, "model": timeline["model"], "pod": timeline.get("pod"),
            "warm_node": bool(timeline.get("warm_node")), "complete": timeline.get("complete"),
            "estimated_total_s": stack.total_s,
            "measured_total_s": total_s,
            "rows": rows, "notes": notes}


def render(comparison: dict[str, Any], estimate: Any, console: Any) -> None:
    from rich.table import Table

    def s(v: Optional[float], signed: bool = False) -> str:
        return "-" if v is None else (f"{v:+.1f} s" if signed else f"{v:.1f} s")

    c = comparison
    t = Table(title=f"measured vs estimated: {c['model']} on {estimate.instance_type} (this stack's path; measured: "
                    f"{c['source'] or 'timeline report'})", title_justify="left")
    t.add_column("phase")
    t.add_column("estimated", justify="right")
    t.add_column("measured", justify="right")
    t.add_column("measured - estimated", justify="right")
    t.add_column("timeline phases")
    for r in c["rows"]:
        missing = f" (not measured: {', '.join(r['not_measured'])})" if r["not_measured"] and r["measured_s"] \
            is not None else ""
        what = ", ".join(r["timeline_phases"]) if r["row"] != GAPS else "short waits no phase covers"
        t.add_row(r["row"], s(r["estimated_s"]), s(r["measured_s"]), s(r["difference_s"], signed=True),
                  what + missing)
    # An incomplete timeline's total is the time so far, not a first token: no difference to show.
    diff = (None if c["measured_total_s"] is None or c["complete"] is False
            else round(c["measured_total_s"] - c["estimated_total_s"], 1))
    t.add_row("[bold]first token after[/]", f"[bold]{s(c['estimated_total_s'])}[/]",
              f"[bold]{s(c['measured_total_s'])}[/]", s(diff, signed=True), "timeline total")
    console.print(t)
    for note in c["notes"]:
        console.print(f"[yellow]note:[/] {note}", soft_wrap=True)
    console.print("Every figure behind the estimate and its source: `burstctl estimate` without --measured.",
                  soft_wrap=True)
