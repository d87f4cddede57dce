"""`burst`: bounded async load against an OpenAI-compatible endpoint, with per-request timings and a summary.

A fixed pool of C worker coroutines pulls request numbers from a shared iterator, so memory stays flat for large N
and at most C requests are in flight. Every request is bounded by ``timeout`` and the whole run by ``deadline``;
requests that could not start before the deadline are reported as ``deadline`` rather than silently dropped.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

import httpx

from burstctl.fasthttp import ConnectError, Connection, ProtocolError
from burstctl.output import BadInput

Api = Literal["chat", "completions"]
PATHS: dict[str, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
COLD_START_HEADER = "x-keda-http-cold-start"
"""Set by the KEDA HTTP add-on interceptor on responses it had to hold while the workload scaled from zero."""


@dataclass
class BurstConfig:
    """One run. ``api_key`` is only ever sent as a header; it is excluded from every report."""

    url: str
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
    host_header: Optional[str] = None
    model_header: Optional[str] = "X-Model"
    """The interceptor cannot read the JSON body, so the gateway routes on this header (value: the model)."""
    ramp_up: float = 0.0
    """Seconds over which the workers start, evenly spaced (0: all at once, the thundering herd of a cold start)."""
    engine: Literal["fast", "httpx"] = "fast"
    """HTTP client: the lean asyncio one (default; see burstctl.fasthttp) or httpx."""

    def public(self) -> dict[str, Any]:
        """The configuration as reported (no secret, prompt count instead of the prompts)."""
        d = asdict(self)
        d.pop("api_key")
        d["api_key_set"] = bool(self.api_key)
        d["prompts"] = len(self.prompts)
        return d


@dataclass
class RequestResult:
    """One request. Times are seconds; ``started`` is the offset from the start of the run."""

    index: int
    ok: bool = False
    status: Optional[int] = None
    error: Optional[str] = None
    """Error kind: http_<status>, timeout, deadline, connect_error, connection_reset, bad_response, stream_error."""
    ttft: Optional[float] = None
    latency: Optional[float] = None
    tokens_out: int = 0
    started: Optional[float] = None
    cold_start: bool = False


@dataclass
class BurstReport:
    config: dict[str, Any]
    summary: dict[str, Any]
    requests: list[RequestResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "summary": self.summary, "requests": [asdict(r) for r in self.requests]}


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


def summarize(results: list[RequestResult], wall: float, from_zero: bool) -> dict[str, Any]:
    """Success rate, error kinds, TTFT/latency distributions, throughput and the cold-start wait."""
    ok = [r for r in results if r.ok]
    errors: dict[str, int] = {}
    for r in results:
        if not r.ok:
            errors[r.error or "unknown"] = errors.get(r.error or "unknown", 0) + 1
    tokens = sum(r.tokens_out for r in ok)
    held = [r for r in results if r.cold_start]
    detected = from_zero or bool(held)
    # Time from the start of the run until any first token arrived: that is what a user waits at zero replicas.
    first_token = [r.started + r.ttft for r in ok if r.started is not None and r.ttft is not None]
    busy = sum(r.latency for r in results if r.latency is not None)
    return {
        "requests": len(results),
        "succeeded": len(ok),
        "failed": len(results) - len(ok),
        "success_rate": len(ok) / len(results) if results else 0.0,
        "errors": dict(sorted(errors.items())),
        "ttft_s": distribution([r.ttft for r in ok if r.ttft is not None]),
        "latency_s": distribution([r.latency for r in ok if r.latency is not None]),
        "tokens_out": tokens,
        "tokens_per_s": tokens / wall if wall > 0 else 0.0,
        "wall_s": wall,
        # Mean number of requests in flight over the run (Little's law), to compare with the configured concurrency.
        "achieved_concurrency": busy / wall if wall > 0 else 0.0,
        "cold_start": {
            "detected": detected,
            "source": ("flag+header" if from_zero and held else "flag" if from_zero else "header" if held else None),
            "held_requests": len(held),
            "wait_s": min(first_token) if detected and first_token else None,
        },
    }


# -- the load --------------------------------------------------------------------------------------------------
def _body(cfg: BurstConfig, prompt: str) -> dict[str, Any]:
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


class _SSE:
    """Incremental parser of an OpenAI-style SSE stream: first-token time, token count, end and errors."""

    def __init__(self, res: RequestResult, t0: float):
        self.res, self.t0 = res, t0
        self.counted = 0
        self.usage_tokens: Optional[int] = None

    def line(self, line: Any) -> bool:
        """Feed one line (str or bytes); True once the stream is over ([DONE] or an error event)."""
        if not line.startswith(b"data:" if isinstance(line, bytes) else "data:"):
            return False
        payload = line[5:].strip()
        if payload in (b"[DONE]", "[DONE]"):
            return True
        obj = json.loads(payload)
        if "error" in obj:
            self.res.error = "stream_error"
            return True
        if _chunk_text(obj):
            if self.res.ttft is None:
                self.res.ttft = time.perf_counter() - self.t0
            self.counted += 1
        usage = obj.get("usage")
        if usage and usage.get("completion_tokens") is not None:
            self.usage_tokens = int(usage["completion_tokens"])
        return False

    def finish(self) -> None:
        self.res.tokens_out = self.usage_tokens if self.usage_tokens is not None else self.counted
        if self.res.error is None and self.res.ttft is None:
            self.res.error = "bad_response"  # a 200 stream that never produced a token


def _non_stream(res: RequestResult, raw: bytes, t0: float) -> None:
    data = json.loads(raw)
    res.latency = time.perf_counter() - t0
    # Without streaming the first token arrives with the whole body.
    res.ttft = res.latency
    res.tokens_out = int((data.get("usage") or {}).get("completion_tokens") or 0)
    if not data.get("choices"):
        res.error = "bad_response"


async def _one_fast(conn: Connection, cfg: BurstConfig, headers: dict[str, str], index: int, t_run: float,
                    deadline_at: float) -> RequestResult:
    res = RequestResult(index=index)
    body = json.dumps(_body(cfg, cfg.prompts[index % len(cfg.prompts)])).encode()
    t0 = time.perf_counter()
    res.started = t0 - t_run
    limit_at = min(t0 + cfg.timeout, deadline_at)
    try:
        async with asyncio.timeout(max(0.0, limit_at - t0)):
            resp = await conn.request("POST", PATHS[cfg.api], headers, body)
            res.status = resp.status_code
            res.cold_start = resp.headers.get(COLD_START_HEADER, "").lower() == "true"
            if resp.status_code != 200:
                await resp.read()
                res.error = f"http_{resp.status_code}"
                res.latency = time.perf_counter() - t0
            elif cfg.stream:
                sse = _SSE(res, t0)
                buf = b""
                done = False
                async for chunk in resp.iter_bytes():
                    if done:
                        continue  # drain to the end so the connection can be reused
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if sse.line(line):
                            done = True
                            break
                sse.finish()
            else:
                _non_stream(res, await resp.read(), t0)
            conn.finish(resp)
        if res.latency is None:
            res.latency = time.perf_counter() - t0
        res.ok = res.error is None
    except TimeoutError:
        conn.close()
        res.error = "deadline" if limit_at == deadline_at else "timeout"
    except ConnectError:
        conn.close()
        res.error = "connect_error"
    except (asyncio.IncompleteReadError, ConnectionError):
        conn.close()
        res.error = "connection_reset"
    except (ProtocolError, ValueError, KeyError, TypeError, AttributeError, asyncio.LimitOverrunError):
        conn.close()
        res.error = "bad_response"
    return res


async def _one_httpx(client: httpx.AsyncClient, cfg: BurstConfig, index: int, t_run: float, deadline_at: float
                     ) -> RequestResult:
    res = RequestResult(index=index)
    body = _body(cfg, cfg.prompts[index % len(cfg.prompts)])
    t0 = time.perf_counter()
    res.started = t0 - t_run
    limit_at = min(t0 + cfg.timeout, deadline_at)
    try:
        async with asyncio.timeout(max(0.0, limit_at - t0)):
            async with client.stream("POST", PATHS[cfg.api], json=body) as resp:
                res.status = resp.status_code
                res.cold_start = resp.headers.get(COLD_START_HEADER, "").lower() == "true"
                if resp.status_code != 200:
                    await resp.aread()
                    res.error = f"http_{resp.status_code}"
                    res.latency = time.perf_counter() - t0
                elif cfg.stream:
                    sse = _SSE(res, t0)
                    async for line in resp.aiter_lines():
                        if sse.line(line):
                            break
                    sse.finish()
                else:
                    _non_stream(res, await resp.aread(), t0)
        if res.latency is None:
            res.latency = time.perf_counter() - t0
        res.ok = res.error is None
    except TimeoutError:
        res.error = "deadline" if limit_at == deadline_at else "timeout"
    except httpx.TimeoutException:
        res.error = "timeout"
    except httpx.ConnectError:
        res.error = "connect_error"
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, ConnectionResetError):
        res.error = "connection_reset"
    except (ValueError, KeyError, TypeError, AttributeError):
        res.error = "bad_response"
    except httpx.HTTPError:
        res.error = "http_error"
    return res


async def run_burst(cfg: BurstConfig, on_done: Optional[Callable[[RequestResult], None]] = None) -> BurstReport:
    """Run the load and return per-request results plus the summary. Never raises for server or network trouble."""
    headers = {"Accept": "text/event-stream" if cfg.stream else "application/json",
               "Content-Type": "application/json"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    if cfg.model_header:
        headers[cfg.model_header] = cfg.model
    if cfg.host_header:
        headers["Host"] = cfg.host_header
    results: list[Optional[RequestResult]] = [None] * cfg.requests
    numbers = iter(range(cfg.requests))
    t_run = time.perf_counter()
    deadline_at = t_run + cfg.deadline

    async def drive(send: Callable[[int], Any], worker: int) -> None:
        if cfg.ramp_up > 0:
            await asyncio.sleep(cfg.ramp_up * worker / workers)
        for i in numbers:  # shared iterator: each number is taken by exactly one worker
            if time.perf_counter() >= deadline_at:
                r = RequestResult(index=i, error="deadline")
            else:
                r = await send(i)
            results[i] = r
            if on_done:
                on_done(r)

    workers = min(cfg.concurrency, cfg.requests)
    if cfg.engine == "fast":
        async def fast_worker(worker: int) -> None:
            conn = Connection(cfg.url, connect_timeout=min(cfg.timeout, 30.0))  # one connection per worker
            try:
                await drive(lambda i: _one_fast(conn, cfg, headers, i, t_run, deadline_at), worker)
            finally:
                conn.close()

        await asyncio.gather(*(fast_worker(w) for w in range(workers)))
    else:
        limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
        # The per-request bound is enforced around each request; httpx's own timeouts only catch a dead socket.
        timeout = httpx.Timeout(cfg.timeout, connect=min(cfg.timeout, 30.0), pool=None)
        async with httpx.AsyncClient(base_url=cfg.url, headers=headers, limits=limits, timeout=timeout) as client:
            await asyncio.gather(*(drive(lambda i: _one_httpx(client, cfg, i, t_run, deadline_at), w)
                                   for w in range(workers)))
    wall = time.perf_counter() - t_run
    final = [r if r is not None else RequestResult(index=i, error="deadline") for i, r in enumerate(results)]
    return BurstReport(cfg.public(), summarize(final, wall, cfg.from_zero), final)


# -- inputs and outputs ----------------------------------------------------------------------------------------
def normalize_url(url: str) -> str:
    """Base URL without a trailing ``/v1`` (the API paths add it)."""
    if not url.startswith(("http://", "https://")):
        raise BadInput(f"--url: '{url}' is not an http(s) URL; use e.g. http://gateway.example:80")
    url = url.rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def load_prompts(prompts: list[str], prompts_file: Optional[Path]) -> list[str]:
    """Prompts from ``--prompt`` flags and/or a file: plain text (one per line) or ``.jsonl`` (strings or
    objects with a ``prompt`` key)."""
    out = list(prompts)
    if prompts_file is not None:
        try:
            text = prompts_file.read_text(encoding="utf-8")
        except OSError as e:
            raise BadInput(f"--prompts-file: cannot read {prompts_file}: {e.strerror}") from None
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


CSV_FIELDS = ["index", "ok", "status", "error", "ttft", "latency", "tokens_out", "started", "cold_start"]


def write_results(report: BurstReport, path: Path) -> None:
    """JSON (config, summary, requests) or CSV (one row per request), chosen by the file suffix."""
    if path.suffix == ".json":
        path.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    elif path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            for r in report.requests:
                w.writerow(asdict(r))
    else:
        raise BadInput(f"--out: '{path}' must end in .json or .csv")
