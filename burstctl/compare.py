"""`compare`: two `burst` results side by side with the ratio B/A, and a gate on B's p95 time to first token.

Made for A/B runs of the same model under the same load, e.g. whole GPUs (A) against N time-slices per GPU (B):
TTFT and inter-token latency percentiles, tokens/s and errors. The gate is the p95 TTFT: B fails when it is worse
than A's by more than the allowed regression.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from burstctl.output import BadInput

DEFAULT_MAX_REGRESSION = "20%"
SAME_LOAD = ("model", "requests", "concurrency", "api", "stream", "max_tokens", "prompts", "ramp_up")
"""Config keys of a `burst` result that make two runs the same load."""


@dataclass
class Row:
    """One metric of both runs."""

    metric: str
    unit: str
    a: Optional[float]
    b: Optional[float]
    better: str
    """`lower` or `higher`: which direction of B/A is an improvement."""

    @property
    def ratio(self) -> Optional[float]:
        if self.a is None or self.b is None or self.a == 0:
            return None
        return self.b / self.a


@dataclass
class Comparison:
    a: str
    b: str
    rows: list[Row]
    max_regression: float
    """Allowed rise of B's p95 TTFT over A's, as a fraction (0.2 = 20%)."""
    regressed: bool
    verdict: str
    notes: list[str] = field(default_factory=list)
    """What makes the two runs less comparable (different load, a cold start inside a run)."""

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "ok": not self.regressed, "verdict": self.verdict,
                "max_regression": self.max_regression,
                "rows": [{**asdict(r), "ratio": r.ratio} for r in self.rows], "notes": self.notes}


def parse_regression(text: str) -> float:
    """`20%` or `20` (percent) -> 0.2."""
    raw = text.strip().removesuffix("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"--max-regression: '{text}' is not a percentage; allowed: a number of percent from 0, "
                       "e.g. 20% or 20") from None
    if not 0 <= value <= 10_000:
        raise BadInput(f"--max-regression: '{text}' is out of range; allowed: 0% to 10000%")
    return value / 100


def load_result(path: Path, flag: str) -> dict[str, Any]:
    """A `burst --out FILE.json` result (or the `burst --json` document): its config and summary."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BadInput(f"{flag}: cannot read {path}: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError):
        raise BadInput(f"{flag}: {path} is not JSON; give a file written by `burstctl burst --out FILE.json`") \
            from None
    summary = data.get("summary") if isinstance(data, dict) else None
    if not isinstance(summary, dict) or not isinstance(summary.get("ttft_s"), dict) or "requests" not in summary:
        raise BadInput(f"{flag}: {path} is not a burst result (no summary with ttft_s); give a file written by "
                       "`burstctl burst --out FILE.json`")
    return {"config": data.get("config") or {}, "summary": summary}


def _dist(summary: dict[str, Any], key: str, q: str) -> Optional[float]:
    d = summary.get(key)
    v = d.get(q) if isinstance(d, dict) else None
    return float(v) if isinstance(v, (int, float)) else None


def _num(summary: dict[str, Any], key: str) -> Optional[float]:
    v = summary.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def rows_of(a: dict[str, Any], b: dict[str, Any]) -> list[Row]:
    rows = [Row(f"TTFT {q}", "s", _dist(a, "ttft_s", q), _dist(b, "ttft_s", q), "lower") for q in ("p50", "p95", "p99")]
    rows += [Row(f"ITL {q}", "s", _dist(a, "itl_s", q), _dist(b, "itl_s", q), "lower") for q in ("p50", "p95", "p99")]
    rows.append(Row("tokens/s", "tokens/s", _num(a, "tokens_per_s"), _num(b, "tokens_per_s"), "higher"))
    rows.append(Row("succeeded", "requests", _num(a, "succeeded"), _num(b, "succeeded"), "higher"))
    rows.append(Row("errors", "requests", _num(a, "failed"), _num(b, "failed"), "lower"))
    return rows


def _notes(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    notes = []
    differ = [k for k in SAME_LOAD if k in a["config"] and k in b["config"] and a["config"][k] != b["config"][k]]
    if differ:
        notes.append("not the same load: " + ", ".join(f"{k} {a['config'][k]!r} vs {b['config'][k]!r}"
                                                      for k in differ))
    for name, r in (("A", a), ("B", b)):
        cold = r["summary"].get("cold_start") or {}
        if cold.get("detected"):
            notes.append(f"{name} started at zero replicas: its TTFT includes a cold start; compare warm runs")
        if not _dist(r["summary"], "itl_s", "p50") and r["config"].get("stream", True):
            notes.append(f"{name} has no inter-token latency (a result from a burstctl without it, or single-token "
                         "answers)")
    for name, r in (("A", a), ("B", b)):
        errs = r["summary"].get("errors") or {}
        if errs:
            notes.append(f"{name} errors: " + ", ".join(f"{k} x{n}" for k, n in errs.items()))
    return notes


def compare(a_path: Path, b_path: Path, max_regression: float) -> Comparison:
    a, b = load_result(a_path, "A"), load_result(b_path, "B")
    rows = rows_of(a["summary"], b["summary"])
    pa, pb = _dist(a["summary"], "ttft_s", "p95"), _dist(b["summary"], "ttft_s", "p95")
    if pa is None:
        raise BadInput(f"A: {a_path} has no successful request, so no p95 TTFT to compare against; run the baseline "
                       "again")
    limit = pa * (1 + max_regression)
    if pb is None:
        regressed, verdict = True, f"B has no successful request (A's p95 TTFT {pa:.3f} s)"
    else:
        regressed = pb > limit
        verdict = (f"B's p95 TTFT {pb:.3f} s is {pb / pa:.2f}x A's {pa:.3f} s "
                   f"({'above' if regressed else 'within'} the allowed +{max_regression:.0%}: {limit:.3f} s)")
    return Comparison(str(a_path), str(b_path), rows, max_regression, regressed, verdict, _notes(a, b))


def _fmt(row: Row, v: Optional[float]) -> str:
    if v is None:
        return "-"
    if row.unit == "s":
        return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"
    if row.unit == "tokens/s":
        return f"{v:.1f}"
    return f"{v:g}"


def render(c: Comparison, console: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    t = Table(title=f"compare A={c.a}  B={c.b}", title_justify="left")
    for col, just in (("metric", "left"), ("A", "right"), ("B", "right"), ("B/A", "right")):
        t.add_column(col, justify=just)
    for r in c.rows:
        ratio = r.ratio
        shown = "-" if ratio is None else f"{ratio:.2f}x"
        worse = ratio is not None and ((ratio > 1) if r.better == "lower" else (ratio < 1))
        style = "" if ratio is None or abs(ratio - 1) < 0.005 else ("red" if worse else "green")
        t.add_row(r.metric, _fmt(r, r.a), _fmt(r, r.b), Text(shown, style=style))
    console.print(t)
    for n in c.notes:
        console.print(Text.assemble(("note: ", "yellow"), n), soft_wrap=True)
    console.print(Text.assemble(("FAIL: " if c.regressed else "ok: ", "bold red" if c.regressed else "green"),
                                c.verdict), soft_wrap=True)
