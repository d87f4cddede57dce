"""`burst`: bounded async load against an OpenAI-compatible endpoint, with per-request timings and a summary.

A fixed pool of C worker coroutines pulls request numbers from a shared iterator, so memory stays flat for large N
and at most C requests are in flight. Every request is bounded by ``timeout`` and the whole run by ``deadline``;
requests that could not start before the deadline are reported as ``deadline`` rather than silently dropped.

The HTTP client is aiohttp (one session, a connection pool of C connections): on two cores it keeps the client's
own cost per streamed request near one millisecond at 500 concurrent streams (``benchmarks/bench_burst.py``), and it
handles what a load generator must not get wrong itself: HTTP/1.0 and ``Connection: close`` servers, chunked and
length-delimited bodies, TLS, proxies from the environment and header injection (CR/LF refused).
"""

from __future__ import annotations

import asyncio
import contextvars
import csv
import json
import math
import os
import re
import time
import urllib.request
import weakref
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Literal, Optional, Sequence
from urllib.parse import urlsplit

import aiohttp
import yarl

from burstctl import API_KEY_FIX, __version__
from burstctl.output import BadInput, check_writable

Api = Literal["chat", "completions"]
PATHS: dict[str, str] = {"chat": "/chat/completions", "completions": "/completions"}
"""Appended to the base URL, which ends in ``/v1`` like the openai SDK's ``base_url``."""
COLD_START_HEADER = "x-keda-http-cold-start"
"""Set by the KEDA HTTP add-on interceptor on every response it proxied, ``true`` when it had to wait for a ready
endpoint (kedacore/http-add-on@v0.15.0:pkg/http/headers.go, interceptor/middleware/endpoint_resolver.go). It can be
turned off (``KEDA_HTTP_ENABLE_COLD_START_HEADER``) or dropped by a proxy in front, hence ``--from-zero``."""


@dataclass
class BurstConfig:
    """One run. ``api_key`` is only ever sent as a header; it is excluded from every report."""

    url: str
    """Base URL up to and including ``/v1`` (the openai SDK's ``base_url``)."""
    model: str
    prompts: list[str]
    requests: int = 40
    concurrency: int = 40
    api: Api = "chat"
    stream: bool = True
    max_tokens: int = 64
    timeout: float = 600.0
    deadline: float = 1800.0
    api_key: Optional[str] = None
    from_zero: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    """Extra request headers (``--header``); the front door routes on the body's ``model`` and needs none."""
    ramp_up: float = 0.0
    """Seconds over which the workers start, evenly spaced (0: all at once, the thundering herd of a cold start)."""

    def public(self) -> dict[str, Any]:
        """The configuration as reported (no secret, prompt count instead of the prompts, header names only)."""
        d = asdict(self)
        d.pop("api_key")
        d["api_key_set"] = bool(self.api_key)
        d["prompts"] = len(self.prompts)
        d["headers"] = sorted(self.headers)  # values may carry credentials
        return d


@dataclass
class RequestResult:
    """One request. Times are seconds; ``started`` is the offset from the start of the run."""

    index: int
    ok: bool = False
    status: Optional[int] = None
    error: Optional[str] = None
    """Error kind: http_<status>, timeout, deadline, connect_error, connection_reset, bad_response, stream_error,
    interrupted (the run was stopped before it finished)."""
    detail: Optional[str] = None
    """What the server or the network said: the error message of a 4xx/5xx body, Retry-After, the OS error."""
    ttft: Optional[float] = None
    latency: Optional[float] = None
    tokens_out: int = 0
    started: Optional[float] = None
    cold_start: bool = False
    retried: bool = False
    """Sent a second time because the server had closed the reused keep-alive connection before answering."""
    itl: Optional[float] = None
    """Mean inter-token latency of the stream: the gaps between content chunks after the first, averaged."""
    gaps: list[float] = field(default_factory=list, repr=False, compare=False)
    """Every such gap (not reported per request: the summary pools them into `itl_s`)."""

    def public(self) -> dict[str, Any]:
        """The request as reported (JSON and CSV rows)."""
        return {f: getattr(self, f) for f in CSV_FIELDS}


@dataclass
class BurstReport:
    config: dict[str, Any]
    summary: dict[str, Any]
    requests: list[RequestResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "summary": self.summary, "requests": [r.public() for r in self.requests]}


# -- statistics ------------------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default method)."""
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def distribution(values: Sequence[float]) -> dict[str, Optional[float]]:
    return {
        "p50": percentile(values, 50), "p95": percentile(values, 95), "p99": percentile(values, 99),
        "min": min(values) if values else None, "max": max(values) if values else None,
        "mean": sum(values) / len(values) if values else None,
    }


def cold_start_summary(results: list[RequestResult], from_zero: bool) -> dict[str, Any]:
    """The cold-start wait and how many requests it held.

    With the interceptor's header the held requests are the ones it marked. Without it (``--from-zero`` through a
    proxy that drops the header, or the header turned off) the model could not answer before the first token of
    the run arrived, so every request sent before that moment waited for the cold start; the warm baseline is the
    median TTFT of the requests sent after it, and the cold start added ``wait - baseline``.
    """
    ok = [r for r in results if r.ok and r.started is not None and r.ttft is not None]
    marked = [r for r in results if r.cold_start]
    detected = from_zero or bool(marked)
    # Time from the start of the run until any first token arrived: what a user waits at zero replicas.
    first_at = _first_token_at(results)
    warm = [r.ttft for r in ok if r.started >= first_at] if first_at is not None else []  # type: ignore[operator]
    baseline = percentile(warm, 50)  # type: ignore[arg-type]
    out: dict[str, Any] = {
        "detected": detected,
        "source": ("flag+header" if from_zero and marked else "flag" if from_zero else "header" if marked else None),
        "held_requests": 0, "wait_s": None, "warm_ttft_s": baseline, "added_s": None, "method": None,
    }
    if not detected:
        return out
    out["wait_s"] = first_at
    if first_at is not None and baseline is not None:
        out["added_s"] = max(0.0, first_at - baseline)
    if marked:
        out["held_requests"] = len(marked)
        out["method"] = f"{len(marked)} response(s) carried X-KEDA-HTTP-Cold-Start: true"
    elif first_at is None:
        waited = [r for r in results if r.started is not None]
        out["held_requests"] = len(waited)
        out["method"] = "no request got a first token: every request sent waited and none was answered"
    else:
        held = [r for r in results if r.started is not None and r.started < first_at]
        out["held_requests"] = len(held)
        base = (f"warm TTFT baseline {baseline * 1000:.0f} ms (median of {len(warm)} request(s) sent after it)"
                if baseline is not None else "no request was sent after it, so no warm baseline to subtract")
        out["method"] = (f"inferred without the interceptor's header: {len(held)} request(s) sent before the first "
                         f"token at {first_at:.2f} s waited; {base}")
    return out


UNSEEN_COLD_START_S = 1.0
"""A first token this much later than the warm TTFT (and 10 times it) looks like a cold start nobody reported."""


def diagnose(results: list[RequestResult], url: str, details: dict[str, str],
             cold: Optional[dict[str, Any]] = None) -> list[str]:
    """One line per thing the operator has to fix, most fundamental first."""
    lines: list[str] = []
    n = len(results)
    kinds = Counter(r.error for r in results if r.error)
    if n and kinds.get("connect_error") == n:
        lines.append(f"no request reached {target(url)}: {details.get('connect_error', 'connection failed')}")
    if kinds.get("http_401"):
        lines.append(f"no/invalid API key: {kinds['http_401']} of {n} request(s) got 401 from {url}; {API_KEY_FIX}")
    if kinds.get("http_404") and "model" in details.get("http_404", "").lower():
        lines.append(f"the gateway does not serve this model: {details['http_404']} "
                     "(GET <url>/models lists the served names)")
    if kinds.get("http_429"):
        lines.append(f"rate limited: {kinds['http_429']} request(s) got 429 ({details.get('http_429', '')}); "
                     "lower -c/-n or raise the key's limit")
    if cold is not None and not cold["detected"]:
        first_at, base = _first_token_at(results), cold["warm_ttft_s"]
        if first_at is not None and base is not None and first_at - base >= max(UNSEEN_COLD_START_S, 9 * base):
            lines.append(f"the first token came after {first_at:.2f} s against a warm TTFT of {base * 1000:.0f} ms, "
                         "but no response carried X-KEDA-HTTP-Cold-Start: true; if the model started at zero "
                         "replicas, run again with --from-zero to count the cold start")
    return lines


def _first_token_at(results: list[RequestResult]) -> Optional[float]:
    return min((r.started + r.ttft for r in results if r.ok and r.started is not None and r.ttft is not None),
               default=None)


def summarize(results: list[RequestResult], wall: float, from_zero: bool, url: str = "") -> dict[str, Any]:
    """Success rate, error kinds with what the server said, TTFT/latency distributions, throughput, the cold-start
    wait and the diagnosis lines."""
    ok = [r for r in results if r.ok]
    errors = Counter(r.error or "unknown" for r in results if not r.ok)
    # The most frequent message per kind: "The model `x` does not exist." says more than "http_404".
    per_kind: dict[str, Counter[str]] = {}
    for r in results:
        if not r.ok and r.detail:
            per_kind.setdefault(r.error or "unknown", Counter())[r.detail] += 1
    details = {k: c.most_common(1)[0][0] for k, c in sorted(per_kind.items())}
    tokens = sum(r.tokens_out for r in ok)
    cold = cold_start_summary(results, from_zero)
    busy = sum(r.latency for r in results if r.latency is not None)
    return {
        "requests": len(results),
        "succeeded": len(ok),
        "failed": len(results) - len(ok),
        "success_rate": len(ok) / len(results) if results else 0.0,
        "errors": dict(sorted(errors.items())),
        "error_details": details,
        "retried_stale_connections": sum(1 for r in results if r.retried),
        "ttft_s": distribution([r.ttft for r in ok if r.ttft is not None]),
        # Every gap between streamed chunks of every successful stream: a stall of one slice shows in the tail.
        "itl_s": distribution([g for r in ok for g in r.gaps]),
        "latency_s": distribution([r.latency for r in ok if r.latency is not None]),
        "tokens_out": tokens,
        "tokens_per_s": tokens / wall if wall > 0 else 0.0,
        "wall_s": wall,
        # Mean number of requests in flight over the run (Little's law), to compare with the configured concurrency.
        "achieved_concurrency": busy / wall if wall > 0 else 0.0,
        "cold_start": cold,
        "diagnosis": diagnose(results, url, details, cold),
    }


# -- the load --------------------------------------------------------------------------------------------------
def _body(cfg: BurstConfig, prompt: str) -> dict[str, Any]:
    # The front door routes on this `model` field, as OpenAI-compatible gateways do; no header is needed.
    body: dict[str, Any] = {"model": cfg.model, "max_tokens": cfg.max_tokens, "stream": cfg.stream}
    if cfg.api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if cfg.stream:
        # vLLM then ends the stream with a usage chunk: exact token counts instead of counting chunks.
        body["stream_options"] = {"include_usage": True}
    return body


def _chunk_text(obj: dict[str, Any]) -> str:
    choices = obj.get("choices") or []
    if not choices:
        return ""
    c = choices[0]
    if "delta" in c:
        return (c.get("delta") or {}).get("content") or ""
    return c.get("text") or ""


def error_message(raw: bytes, limit: int = 300) -> Optional[str]:
    """The human part of an error body: OpenAI/vLLM ``{"error": {"message"}}``, vLLM ``{"message"}``, FastAPI
    ``{"detail"}``, or the text of a proxy's plain answer; one line, bounded."""
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict):
        inner = obj.get("error")
        msg = (inner.get("message") if isinstance(inner, dict) else inner) or obj.get("message") or obj.get("detail")
        if msg:
            text = msg if isinstance(msg, str) else json.dumps(msg)
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


class _SSE:
    """Incremental parser of an OpenAI-style SSE stream: first-token time, token count, end and errors."""

    def __init__(self, res: RequestResult, t0: float):
        self.res, self.t0 = res, t0
        self.counted = 0
        self.last = t0
        self.usage_tokens: Optional[int] = None

    def line(self, line: bytes) -> bool:
        """Feed one line; True once the stream is over ([DONE] or an error event)."""
        if not line.startswith(b"data:"):
            return False
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return True
        obj = json.loads(payload)
        if "error" in obj:
            self.res.error = "stream_error"
            self.res.detail = error_message(payload)
            return True
        if _chunk_text(obj):
            now = time.perf_counter()
            if self.res.ttft is None:
                self.res.ttft = now - self.t0
            else:
                self.res.gaps.append(now - self.last)
            self.last = now
            self.counted += 1
        usage = obj.get("usage")
        if usage and usage.get("completion_tokens") is not None:
            self.usage_tokens = int(usage["completion_tokens"])
        return False

    def finish(self) -> None:
        self.res.tokens_out = self.usage_tokens if self.usage_tokens is not None else self.counted
        if self.res.gaps:
            self.res.itl = sum(self.res.gaps) / len(self.res.gaps)
        if self.res.error is None and self.res.ttft is None:
            self.res.error = "bad_response"  # a 200 stream that never produced a token
            self.res.detail = "the stream ended without a token"


def _non_stream(res: RequestResult, raw: bytes, t0: float) -> None:
    data = json.loads(raw)
    res.latency = time.perf_counter() - t0
    # Without streaming the first token arrives with the whole body.
    res.ttft = res.latency
    res.tokens_out = int((data.get("usage") or {}).get("completion_tokens") or 0)
    if not data.get("choices"):
        res.error = "bad_response"
        res.detail = "no choices in the response"


MAX_RESENDS = 16
"""Bound on resends of one request after failures on stale pooled connections (each failure drops one of them)."""

_ATTEMPT: contextvars.ContextVar[SimpleNamespace] = contextvars.ContextVar("burstctl_attempt")
"""The send in progress in this task; the connector marks whether it got a pooled (already used) connection."""


class _Connector(aiohttp.TCPConnector):
    """aiohttp's connector, noting whether a request was given a connection that already carried one. (aiohttp's
    tracing signals could say so too, but they cost more CPU per request than the rest of the request.)"""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._used: weakref.WeakSet[Any] = weakref.WeakSet()

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
        conn = await super().connect(req, traces, timeout)
        attempt = _ATTEMPT.get(None)
        if attempt is not None and conn.protocol is not None:
            attempt.reused = conn.protocol in self._used
            self._used.add(conn.protocol)
        return conn


async def _post(session: aiohttp.ClientSession, url: Any, proxy: Optional[str], body: bytes, res: RequestResult
                ) -> aiohttp.ClientResponse:
    """POST; again if the server had closed the pooled connection before answering.

    A server may close an idle keep-alive connection at any moment (its idle timeout, an HTTP/1.1 server that
    closes without saying so); the request then dies on the stale socket before any byte of a response. Sending it
    again is what RFC 9112 section 9.3.1 allows when the request was not processed; aiohttp does it only for
    idempotent methods, so completions (POST) get it here, and only after a failure on a reused connection, so a
    server that drops fresh connections is still reported as ``connection_reset``. aiohttp drops the connection that
    failed, but the resend may be handed another pooled one that went stale the same way (several workers share the
    pool), so it is resent until it fails on a connection that carried nothing before, within a bound. Resent
    requests are counted.
    """
    for _ in range(MAX_RESENDS):
        attempt = SimpleNamespace(reused=False)
        _ATTEMPT.set(attempt)
        try:
            return await session.post(url, data=body, proxy=proxy)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
            if isinstance(e, aiohttp.ClientConnectorError) or not attempt.reused:
                raise
        res.retried = True
    _ATTEMPT.set(SimpleNamespace(reused=False))
    return await session.post(url, data=body, proxy=proxy)


async def _one(session: aiohttp.ClientSession, cfg: BurstConfig, endpoint: yarl.URL, proxy: Optional[str],
               index: int, t_run: float, deadline_at: float) -> RequestResult:
    res = RequestResult(index=index)
    body = json.dumps(_body(cfg, cfg.prompts[index % len(cfg.prompts)])).encode()
    t0 = time.perf_counter()
    res.started = t0 - t_run
    limit_at = min(t0 + cfg.timeout, deadline_at)
    try:
        async with asyncio.timeout(max(0.0, limit_at - t0)):
            async with await _post(session, endpoint, proxy, body, res) as resp:
                res.status = resp.status
                res.cold_start = resp.headers.get(COLD_START_HEADER, "").lower() == "true"
                if resp.status != 200:
                    res.error = f"http_{resp.status}"
                    res.detail = error_message(await resp.read())
                    retry_after = resp.headers.get("Retry-After")
                    if retry_after:
                        res.detail = f"{res.detail or resp.reason}; Retry-After: {retry_after}"
                    res.latency = time.perf_counter() - t0
                elif cfg.stream:
                    sse = _SSE(res, t0)
                    buf = b""
                    done = False
                    async for chunk in resp.content.iter_any():
                        if done:
                            continue  # read to the end of the body so the connection can be reused
                        buf += chunk
                        *lines, buf = buf.split(b"\n")
                        done = any(sse.line(line) for line in lines)
                    sse.finish()
                else:
                    _non_stream(res, await resp.read(), t0)
        if res.latency is None:
            res.latency = time.perf_counter() - t0
        res.ok = res.error is None
    except aiohttp.ConnectionTimeoutError:
        res.error, res.detail = "connect_error", "connect timed out"
    except aiohttp.ClientConnectorError as e:
        res.error, res.detail = "connect_error", _os_error_text(e)
    except TimeoutError:
        res.error = "deadline" if limit_at == deadline_at else "timeout"
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError) as e:
        res.error, res.detail = "connection_reset", str(e) or type(e).__name__
    except aiohttp.ClientResponseError as e:  # not HTTP as expected (bad status line, bad headers)
        res.error, res.detail = "bad_response", e.message
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        res.error, res.detail = "bad_response", f"{type(e).__name__}: {e}"[:300]
    except aiohttp.ClientError as e:
        res.error, res.detail = "http_error", f"{type(e).__name__}: {e}"[:300]
    return res


def _os_error_text(e: aiohttp.ClientConnectorError) -> str:
    # "Connection refused" says more than aiohttp's "Connect call failed ('10.0.0.1', 80)".
    err = e.os_error
    if isinstance(err, OSError) and err.errno:
        return os.strerror(err.errno)
    return str(err or e)


def _session(cfg: BurstConfig) -> aiohttp.ClientSession:
    headers = {"Accept": "text/event-stream" if cfg.stream else "application/json",
               "Content-Type": "application/json", "User-Agent": f"burstctl/{__version__}",
               # A compressing proxy would buffer the event stream and distort TTFT.
               "Accept-Encoding": "identity"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    headers.update(cfg.headers)
    # One connection per worker at most; the per-request bound is enforced around each request, aiohttp's own
    # timeouts only catch a connect that hangs.
    connector = _Connector(limit=cfg.concurrency, limit_per_host=0, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(cfg.timeout, 30.0))
    return aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers,
                                 cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)


def env_proxy(url: str) -> Optional[str]:
    """The proxy ``HTTPS_PROXY``/``HTTP_PROXY`` name for this URL, unless ``NO_PROXY`` excludes its host."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return proxies.get(parts.scheme)


async def run_burst(cfg: BurstConfig, on_done: Optional[Callable[[RequestResult], None]] = None,
                    stop: Optional[asyncio.Event] = None) -> BurstReport:
    """Run the load and return per-request results plus the summary. Never raises for server or network trouble.

    Setting ``stop`` (Ctrl-C in the CLI) ends the run early: what finished is kept, the rest is ``interrupted``,
    so a long cold-start measurement is never lost to an impatient keystroke."""
    results: list[Optional[RequestResult]] = [None] * cfg.requests
    numbers = iter(range(cfg.requests))
    workers = min(cfg.concurrency, cfg.requests)
    t_run = time.perf_counter()
    # Wall-clock start, so `timeline --burst-result` can place the first request and first token among cluster events.
    started_at = datetime.now(timezone.utc)
    deadline_at = t_run + cfg.deadline
    endpoint = yarl.URL(cfg.url + PATHS[cfg.api])  # parsed once, not per request
    # The proxy from the environment is looked up once here: aiohttp's trust_env would do it (and a netrc lookup)
    # in a thread for every request, which costs more CPU than the request itself.
    proxy = env_proxy(cfg.url)

    async def worker(session: aiohttp.ClientSession, w: int) -> None:
        if cfg.ramp_up > 0:
            await asyncio.sleep(cfg.ramp_up * w / workers)
        for i in numbers:  # shared iterator: each number is taken by exactly one worker
            if time.perf_counter() >= deadline_at:
                r = RequestResult(index=i, error="deadline")
            else:
                r = await _one(session, cfg, endpoint, proxy, i, t_run, deadline_at)
            results[i] = r
            if on_done:
                on_done(r)

    interrupted = False
    async with _session(cfg) as session:
        load = asyncio.ensure_future(asyncio.gather(*(worker(session, w) for w in range(workers))))
        if stop is None:
            await load
        else:
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait([load, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not load.done():
                interrupted = True
                load.cancel()
                await asyncio.gather(load, return_exceptions=True)
    wall = time.perf_counter() - t_run
    left = "interrupted" if interrupted else "deadline"
    final = [r if r is not None else RequestResult(index=i, error=left) for i, r in enumerate(results)]
    summary = summarize(final, wall, cfg.from_zero, cfg.url)
    summary["interrupted"] = interrupted
    summary["started_at"] = started_at.isoformat()
    return BurstReport(cfg.public(), summary, final)


# -- inputs and outputs ----------------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
"""An HTTP field name (RFC 9110 section 5.1: a token)."""


def check_header_value(value: str, flag: str) -> str:
    """A value that goes into a request header: no CR, LF or other control character (header injection)."""
    m = _CONTROL.search(value)
    if m:
        raise BadInput(f"{flag}: contains the control character {m.group()!r}; header values must be printable "
                       "(a key read from a file often ends in a newline: strip it)")
    return value


def parse_header(text: str) -> tuple[str, str]:
    """``--header 'Name: value'``."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _TOKEN.match(name):
        raise BadInput(f"--header: {text!r} is not 'Name: value' with a valid header name "
                       "(letters, digits and !#$%&'*+.^_`|~-)")
    if name.lower() in ("content-length", "transfer-encoding", "connection"):
        raise BadInput(f"--header: {name} is set by the HTTP client and cannot be overridden")
    return name, check_header_value(value, "--header")


def target(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def normalize_url(url: str) -> str:
    """The base URL as the openai SDK's ``base_url``: up to ``/v1``. A bare host gets ``/v1``, as the stack's
    ``endpoint`` output and the docs give it; any other path is kept (a gateway mounted under a prefix)."""
    if _CONTROL.search(url) or " " in url:
        raise BadInput(f"--url: {url!r} contains whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BadInput(f"--url: '{url}' is not an http(s) URL; use e.g. http://gateway.example/v1")
    try:
        port = parts.port
    except ValueError:
        raise BadInput(f"--url: '{url}' has an invalid port; allowed: 1-65535") from None
    if not parts.hostname:
        raise BadInput(f"--url: '{url}' has no host; use e.g. http://gateway.example/v1")
    if port == 0:
        raise BadInput(f"--url: '{url}' has port 0; allowed: 1-65535")
    if parts.query or parts.fragment:
        raise BadInput(f"--url: '{url}' must not have a query or fragment; give the base URL, e.g. "
                       "http://gateway.example/v1")
    path = parts.path.rstrip("/")
    if path == "":
        path = "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


def check_model(model: str) -> str:
    if not model.strip():
        raise BadInput("--model: empty; give the served model name (GET <url>/models lists them)")
    if _CONTROL.search(model):
        raise BadInput(f"--model: {model!r} contains control characters")
    return model


def load_prompts(prompts: list[str], prompts_file: Optional[Path]) -> list[str]:
    """Prompts from ``--prompt`` flags and/or a file: plain text (one per line) or ``.jsonl`` (strings or
    objects with a ``prompt`` key)."""
    out = list(prompts)
    if prompts_file is not None:
        try:
            text = prompts_file.read_text(encoding="utf-8")
        except OSError as e:
            raise BadInput(f"--prompts-file: cannot read {prompts_file}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise BadInput(f"--prompts-file: {prompts_file} is not UTF-8 text") from None
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            if prompts_file.suffix == ".jsonl":
                try:
                    item = json.loads(line)
                except ValueError:
                    raise BadInput(f"--prompts-file: {prompts_file}:{n} is not valid JSON") from None
                if isinstance(item, dict) and isinstance(item.get("prompt"), str):
                    item = item["prompt"]
                if not isinstance(item, str):
                    raise BadInput(f"--prompts-file: {prompts_file}:{n} must be a string or "
                                   "an object with a string 'prompt'")
                out.append(item)
            else:
                out.append(line)
        if not out:
            raise BadInput(f"--prompts-file: {prompts_file} contains no prompts")
    return out or ["Write a haiku about GPUs waking up."]


CSV_FIELDS = ["index", "ok", "status", "error", "detail", "ttft", "latency", "tokens_out", "started", "cold_start",
              "retried", "itl"]
OUT_SUFFIXES = (".json", ".csv")


def check_out(path: Path, flag: str = "--out") -> Path:
    """Fail now, not after the run, when the results could not be written: a cold start can only be measured
    again after the cooldown and the node consolidation."""
    if path.is_dir():
        raise BadInput(f"{flag}: {path} is a directory; give a file name ending in .json or .csv")
    if path.suffix not in OUT_SUFFIXES:
        raise BadInput(f"{flag}: '{path}' must end in .json or .csv")
    return check_writable(path, flag)


def write_results(report: BurstReport, path: Path) -> None:
    """JSON (config, summary, requests) or CSV (one row per request), chosen by the file suffix. Written to a
    temporary file next to the target and renamed, so a failure never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if path.suffix == ".json":
            tmp.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        else:
            with tmp.open("w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
                w.writeheader()
                for r in report.requests:
                    w.writerow(r.public())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise BadInput(f"--out: cannot write {path}: {e.strerror}") from None
