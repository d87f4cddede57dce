"""`burstctl usage`: requests, tokens, errors and budget per API key, GPU time, cold starts and cost per model, for a
time range, from the cluster's Prometheus.

The PromQL is the recording rules' own (components/usage.py, through `burstctl.program.usage_queries`) evaluated
over the asked range as one instant query at its end, so the numbers mean what the dashboard's do. Prometheus is
reached at a URL (`kubectl port-forward`, an ingress) or through the API server's service proxy, with the kubeconfig
`verify` uses."""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional, Protocol

from burstctl.output import BadInput, CheckError

DEFAULT_SINCE = "24h"
MAX_RANGE = timedelta(days=366)
_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (7 * 86400, 86400, 3600, 60, 1)
NOTES = [
    "Requests and tokens count what the edge admitted and sent to a model (AI Gateway metrics, per key name).",
    "401/403/429 are Envoy's own counters per filter, not per key: a 401 has no key name at all.",
    "Budget left: tokensPerDay minus input + output tokens of the 24 hours before the range's end (rolling).",
    "GPU time: GPUs held by a model's pods bound to a node, idle warm time included; node boot and the empty node "
    "waiting for consolidation are not counted.",
    "Cost: GPU-hours x the on-demand list price of the model's pool instance (burstctl estimate's table); spot "
    "capacity is priced at on-demand, an upper bound.",
]


class Prometheus(Protocol):
    """Where the queries go: GET /api/v1/query, answered as (HTTP status, body)."""

    where: str

    def get(self, query: list[tuple[str, str]]) -> tuple[int, bytes]: ...


class UrlPrometheus:
    """Prometheus at a URL (`kubectl -n monitoring port-forward svc/kps-prometheus 9090`)."""

    def __init__(self, url: str, timeout: float):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadInput(f"--prometheus-url: '{url}' is not an http(s) URL; use e.g. http://localhost:9090")
        self.base = url.rstrip("/")
        self.where = self.base
        self.timeout = timeout

    def get(self, query: list[tuple[str, str]]) -> tuple[int, bytes]:
        url = f"{self.base}/api/v1/query?{urllib.parse.urlencode(query)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:  # noqa: S310 - http(s) checked above
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except TimeoutError:
            raise CheckError(f"Prometheus at {self.base} did not answer within {self.timeout:g} s; raise "
                             "--request-timeout for a long range") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise CheckError(f"cannot reach Prometheus at {self.base}: {reason}") from None


class ClusterPrometheus:
    """Prometheus through the API server's service proxy (RBAC: `get services/proxy` in its namespace)."""

    def __init__(self, reader: Any, namespace: str, service: str):
        self.reader, self.namespace, self.service = reader, namespace, service
        self.where = f"service {namespace}/{service} through the API server"

    def get(self, query: list[tuple[str, str]]) -> tuple[int, bytes]:
        return self.reader.service_get(self.namespace, self.service, "api/v1/query", query)


# -- the time range -------------------------------------------------------------------------------------------------
def parse_duration(text: str, flag: str = "--since") -> timedelta:
    """Prometheus-style duration: 90m, 24h, 7d, 1h30m, 2w."""
    m = _DURATION.match(text.strip())
    if not text.strip() or not m or not any(m.groups()):
        raise BadInput(f"{flag}: '{text}' is not a duration; use e.g. 30m, 24h, 7d or 1h30m")
    return timedelta(seconds=sum(int(v) * u for v, u in zip(m.groups(), _UNITS) if v))


def parse_time(text: str, flag: str) -> datetime:
    """RFC 3339 / ISO 8601 (UTC when it names no zone) or Unix seconds."""
    t = text.strip()
    try:
        return datetime.fromtimestamp(float(t), tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        got = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"{flag}: '{text}' is not a time; use RFC 3339 (2026-05-01T09:00:00Z), a date "
                       "(2026-05-01, UTC) or Unix seconds") from None
    return got if got.tzinfo else got.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())


def time_range(since: Optional[str], start: Optional[str], end: Optional[str],
               now: Optional[datetime] = None) -> TimeRange:
    """The range from `--since` or `--start`/`--end` (end defaults to now, start to end - since)."""
    now = now or datetime.now(timezone.utc)
    if since is not None and start is not None:
        raise BadInput("--since and --start: give one (--since 24h, or --start T [--end T])")
    t_end = parse_time(end, "--end") if end is not None else now
    if t_end > now + timedelta(minutes=1):
        raise BadInput(f"--end: {t_end.isoformat()} is in the future; Prometheus has nothing there yet")
    t_start = parse_time(start, "--start") if start is not None else t_end - parse_duration(
        since if since is not None else DEFAULT_SINCE)
    r = TimeRange(t_start.replace(microsecond=0), t_end.replace(microsecond=0))
    if r.seconds < 60:
        raise BadInput(f"--start/--end/--since: the range must be at least 1m long (got {r.seconds} s)")
    if r.end - r.start > MAX_RANGE:
        raise BadInput("--start/--since: the range is longer than 366d; Prometheus keeps far less (retention, "
                       "168h by default)")
    return r


# -- queries --------------------------------------------------------------------------------------------------------
def queries(window: str) -> dict[str, str]:
    """Every query the report needs, by name; `window` is the range as a PromQL duration."""
    from burstctl.program import usage_queries

    q = usage_queries()
    return {
        "key_requests": q.key_requests_expr(window),
        "key_errors": q.key_errors_expr(window),
        "key_tokens": q.key_tokens_expr(window),
        "key_tokens_24h": q.key_tokens_expr("1d"),
        "budgets": q.BUDGET,
        **{f"rejected_{code}": q.rejected_expr(code, window) for code in q.REJECTIONS},
        "model_requests": q.model_requests_expr(window),
        "model_tokens": q.model_tokens_expr(window),
        "model_gpu_seconds": q.gpu_seconds_expr(window),
        "model_cold_starts": q.cold_starts_expr(window),
        "prices": q.PRICE,
    }


def _vector(name: str, status: int, body: bytes, where: str) -> list[tuple[dict[str, str], Optional[float]]]:
    """The samples of an instant-query answer, or one CheckError that says what went wrong."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        text = body[:200].decode("utf-8", "replace").strip() or "an empty body"
        raise CheckError(f"{where} answered HTTP {status} with something that is not the Prometheus API ({text})")
    if doc.get("kind") == "Status":  # the API server's own error (no endpoints, service not found)
        raise CheckError(f"the API server could not reach Prometheus ({where}): HTTP {status} "
                         f"{doc.get('message', '')}; check --prometheus-namespace/--prometheus-service")
    if doc.get("status") != "success":
        raise CheckError(f"Prometheus ({where}) refused the {name} query: HTTP {status} "
                         f"{doc.get('errorType', 'error')}: {doc.get('error', 'no message')}")
    data = doc.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        raise CheckError(f"Prometheus ({where}) answered the {name} query without an instant vector "
                         f"(resultType {data.get('resultType') if isinstance(data, dict) else None!r})")
    out = []
    for sample in data["result"]:
        try:
            value = float(sample["value"][1])
            labels = dict(sample.get("metric") or {})
        except (KeyError, IndexError, TypeError, ValueError):
            raise CheckError(f"Prometheus ({where}) answered the {name} query with a malformed sample: "
                             f"{json.dumps(sample)[:200]}") from None
        out.append((labels, value if math.isfinite(value) else None))
    return out


def collect(prom: Prometheus, tr: TimeRange, progress: Optional[Callable[[str], None]] = None) -> dict[str, list]:
    """Run every query at the range's end; `progress(name)` after each."""
    results = {}
    at = f"{tr.end.timestamp():.3f}"
    for name, expr in queries(f"{tr.seconds}s").items():
        status, body = prom.get([("query", expr), ("time", at)])
        results[name] = _vector(name, status, body, prom.where)
        if progress:
            progress(name)
    return results


# -- the report -----------------------------------------------------------------------------------------------------
def _by(samples: list, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value in samples:
        if labels.get(label) and value is not None:
            out[labels[label]] = out.get(labels[label], 0.0) + value
    return out


def _by2(samples: list, label: str, second: str, want: str) -> dict[str, float]:
    return _by([(lbl, v) for lbl, v in samples if lbl.get(second) == want], label)


def _int(v: Optional[float]) -> Optional[int]:
    return None if v is None else int(round(v))


def report(results: dict[str, list], tr: TimeRange, where: str) -> dict[str, Any]:
    from burstctl.program import usage_queries

    q = usage_queries()
    key, model = q.KEY_LABEL, q.MODEL_LABEL
    requests, errors = _by(results["key_requests"], key), _by(results["key_errors"], key)
    tok_in = _by2(results["key_tokens"], key, "gen_ai_token_type", "input")
    tok_out = _by2(results["key_tokens"], key, "gen_ai_token_type", "output")
    used_24h = _by(results["key_tokens_24h"], key)
    budgets = _by(results["budgets"], key)
    keys = []
    for k in sorted(set(requests) | set(errors) | set(tok_in) | set(tok_out) | set(budgets)):
        budget = budgets.get(k)
        used = used_24h.get(k, 0.0)
        keys.append({
            "key": k, "requests": _int(requests.get(k, 0.0)), "errors": _int(errors.get(k, 0.0)),
            "input_tokens": _int(tok_in.get(k, 0.0)), "output_tokens": _int(tok_out.get(k, 0.0)),
            "tokens_per_day": _int(budget), "used_last_24h": _int(used) if budget is not None else None,
            "budget_left": _int(max(budget - used, 0.0)) if budget is not None else None,
        })
    m_req = _by(results["model_requests"], model)
    m_in = _by2(results["model_tokens"], model, "gen_ai_token_type", "input")
    m_out = _by2(results["model_tokens"], model, "gen_ai_token_type", "output")
    gpu_s, cold = _by(results["model_gpu_seconds"], model), _by(results["model_cold_starts"], model)
    prices = {lbl[model]: (lbl, v) for lbl, v in results["prices"] if lbl.get(model) and v is not None}
    models = []
    for m in sorted(set(m_req) | set(m_in) | set(m_out) | set(gpu_s) | set(cold) | set(prices)):
        row = [m_req.get(m, 0.0), m_in.get(m, 0.0), m_out.get(m, 0.0), gpu_s.get(m, 0.0), cold.get(m, 0.0)]
        if not any(row) and m not in prices:
            continue  # a Deployment of the namespace that is no model and did nothing
        labels, per_gpu_hour = prices.get(m, ({}, None))
        cost = gpu_s.get(m, 0.0) / 3600 * per_gpu_hour if per_gpu_hour is not None else None
        out = m_out.get(m, 0.0)
        models.append({
            "model": m, "requests": _int(row[0]), "input_tokens": _int(row[1]), "output_tokens": _int(out),
            "gpu_seconds": _int(row[3]), "gpu_hours": round(row[3] / 3600, 3), "cold_starts": _int(row[4]),
            "pool": labels.get("pool"), "instance_type": labels.get("instance_type"),
            "capacity_type": labels.get("capacity_type"), "usd_per_gpu_hour": per_gpu_hour,
            "cost_usd": round(cost, 4) if cost is not None else None,
            "usd_per_million_output_tokens": round(cost / out * 1e6, 4) if cost is not None and out > 0 else None,
        })
    rejected = {code: _int(sum(v for _, v in results[f"rejected_{code}"] if v is not None)) for code in q.REJECTIONS}
    notes = list(NOTES)
    if not results["prices"] and not results["model_gpu_seconds"]:
        notes.append("No gpu_burst:* series: the usage recording rules are not deployed in this cluster, or were "
                     "deployed after the range's end (GPU time, cold starts, prices and budgets come from them).")
    return {
        "range": {"start": tr.start.isoformat(), "end": tr.end.isoformat(), "seconds": tr.seconds},
        "prometheus": where, "keys": keys, "edge_rejections": rejected, "models": models, "notes": notes,
    }


def _n(v: Any) -> str:
    return "-" if v is None else f"{v:,}"


def _usd(v: Optional[float]) -> str:
    return "-" if v is None else f"${v:,.4f}" if 0 < v < 1 else f"${v:,.2f}"


def render(rep: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    r = rep["range"]
    span = f"{r['start']} -> {r['end']}"
    if rep["keys"]:
        keys = Table(title=f"usage per API key, {span}", title_justify="left")
        for col in ("key", "requests", "failed", "in tokens", "out tokens", "budget/day", "used 24 h", "left"):
            keys.add_column(col, justify="left" if col == "key" else "right", overflow="fold")
        for k in rep["keys"]:
            keys.add_row(k["key"], _n(k["requests"]), _n(k["errors"]), _n(k["input_tokens"]),
                         _n(k["output_tokens"]), _n(k["tokens_per_day"]), _n(k["used_last_24h"]), _n(k["budget_left"]))
        console.print(keys)
    else:
        console.print(f"usage per API key, {span}: no request with a key in this range", soft_wrap=True)
    rej = rep["edge_rejections"]
    console.print(f"refused at the edge (all keys): 401 {_n(rej.get('401'))}, 403 {_n(rej.get('403'))}, "
                  f"429 {_n(rej.get('429'))}")
    if rep["models"]:
        models = Table(title=f"usage and cost per model, {span}", title_justify="left")
        for col in ("model", "requests", "in tokens", "out tokens", "GPU-h", "cold", "priced at", "$/GPU-h", "cost",
                    "$/1M out"):
            models.add_column(col, justify="left" if col in ("model", "priced at") else "right",
                              no_wrap=col == "model", overflow="fold")
        for m in rep["models"]:
            priced = f"{m['instance_type']}/{m['capacity_type']}" if m["usd_per_gpu_hour"] is not None else "no price"
            models.add_row(m["model"], _n(m["requests"]), _n(m["input_tokens"]), _n(m["output_tokens"]),
                           f"{m['gpu_hours']:,.3f}", _n(m["cold_starts"]), priced, _n(m["usd_per_gpu_hour"]),
                           _usd(m["cost_usd"]), _usd(m["usd_per_million_output_tokens"]))
        console.print(models)
    else:
        console.print(f"usage and cost per model, {span}: no model used a GPU or served a request in this range",
                      soft_wrap=True)
    for note in rep["notes"]:
        console.print(f"[dim]- {note}[/]", soft_wrap=True)
