"""Command-line entry point (``burstctl`` / ``python -m burstctl``).

Commands stay thin: they parse flags, call one module that does the work and render its result. Heavy imports
(kubernetes, boto3) happen inside the commands so ``--help`` and ``burst`` start quickly.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
import traceback
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import typer
from rich.text import Text
from typer.core import TyperGroup

try:  # the pinned typer vendors click as typer._click; older releases use click itself
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException

from burstctl import API_KEY_ENV, API_KEY_FIX, __version__
from burstctl.output import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, BadInput, CheckError, fmt_seconds, print_checks,
                             print_error, print_json, stderr, stdout)

class BurstctlGroup(TyperGroup):
    """The command group: one place that turns every failure into the documented exit code and, with ``--json``,
    into the one JSON document on stdout (``{"error": ..., "exit_code": ...}``), whatever command or parser stage
    failed. Commands raise :class:`BadInput` (exit 2) or :class:`CheckError` (exit 1) and never print errors."""

    def main(self, args: Optional[Sequence[str]] = None, prog_name: Optional[str] = None,
             complete_var: Optional[str] = None, standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        as_json = "--json" in (argv[:argv.index("--")] if "--" in argv else argv)
        try:
            code = super().main(args=argv, prog_name=prog_name, complete_var=complete_var, standalone_mode=False,
                                **extra)
        except BadInput as e:
            code = _fail(str(e), EXIT_USAGE, as_json)
        except CheckError as e:
            code = _fail(str(e), EXIT_FAILED, as_json)
        except ClickException as e:  # parser errors: unknown flag, value out of range, missing option
            if as_json:
                code = _fail(e.format_message(), e.exit_code, True)
            else:
                e.show()
                code = e.exit_code
        except ModuleNotFoundError as e:  # a command's dependency, imported when the command runs
            code = _fail(f"missing Python module {e.name!r}: pip install 'gpu-burst[cli]' (or -r requirements.txt)",
                         EXIT_USAGE, as_json)
        except (typer.Abort, KeyboardInterrupt):
            code = _fail("aborted", EXIT_FAILED, as_json)
        except Exception as e:
            if not as_json:
                raise
            # A defect, not bad input: keep the traceback for the bug report, keep stdout parseable.
            traceback.print_exc(file=sys.stderr)
            code = _fail(f"internal error: {type(e).__name__}: {e}", EXIT_FAILED, True)
        code = code if isinstance(code, int) else EXIT_OK
        if standalone_mode:
            sys.exit(code)
        return code

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        for param in getattr(cmd, "params", ()):
            _plain_metavar(param)
        return cmd

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # click cuts each command's summary to fit one line ("..."); wrap the whole first sentence instead.
        rows = [(name, cmd.get_short_help_str(limit=1000)) for name in self.list_commands(ctx)
                if (cmd := self.get_command(ctx, name)) is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


_METAVARS = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH", "path": "PATH"}


def _plain_metavar(param: Any) -> None:
    """``--kubeconfig PATH`` in help, click's style, instead of ``<str>`` or ``<list[Path]>``; choices and flags
    keep theirs."""
    if getattr(param, "metavar", "") is not None or getattr(param, "is_flag", False):
        return
    desc = getattr(param, "type_descriptor", None)
    if desc is None or desc.is_choice:
        return
    bare = str(param.bare_type())
    bare = bare[5:-1] if bare.startswith("list[") else bare
    if bare in _METAVARS:
        param.metavar = _METAVARS[bare]


def _fail(message: str, code: int, as_json: bool) -> int:
    print_error(message, code, as_json)
    return code


app = typer.Typer(
    name="burstctl",
    cls=BurstctlGroup,
    help="Operate a gpu-burst cluster: generate load, verify both scaling loops, time cold starts, "
         "check AWS before `pulumi up` and clean up after `pulumi destroy`.\n\n"
         "Exit codes: 0 ok, 1 a check failed, 2 bad usage or input. With --json every outcome, errors included, "
         "is one JSON document on stdout.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rich markup would eat "[default: ...]" in help texts, and rich panels truncate at 80
    # columns and print <bool> after plain flags.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

def _version(value: bool) -> None:
    if value:
        typer.echo(f"burstctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Operate a gpu-burst cluster."""


JSON_OPT = typer.Option(False, "--json", help="Print one JSON document to stdout instead of tables (errors too: "
                        "{\"error\": ..., \"exit_code\": ...}).")


# -- burst -----------------------------------------------------------------------------------------------------
class ApiChoice(str, Enum):
    chat = "chat"
    completions = "completions"


@app.command()
def burst(
    url: str = typer.Option(..., "--url", envvar="BURSTCTL_URL", show_envvar=True, metavar="URL",
                            help="Base URL of the front door, as the openai SDK's base_url: the stack output "
                                 "`endpoint`, e.g. https://llm.example.com/v1 (a bare host gets /v1)."),
    model: str = typer.Option(..., "--model", "-m", metavar="NAME", help="Served model name, sent as `model` in "
                              "the JSON body (the gateway routes on it)."),
    requests: int = typer.Option(40, "--requests", "-n", min=1, max=100_000, metavar="N",
                                 help="Total requests to send."),
    concurrency: int = typer.Option(40, "--concurrency", "-c", min=1, max=5_000, metavar="C",
                                    help="Requests in flight at once."),
    api: ApiChoice = typer.Option(ApiChoice.chat, "--api", help="Endpoint: chat (<url>/chat/completions) or "
                                                               "completions (<url>/completions)."),
    stream: bool = typer.Option(True, "--stream/--no-stream", help="Stream tokens (SSE); needed for a real TTFT."),
    prompt: list[str] = typer.Option([], "--prompt", "-p", metavar="TEXT",
                                     help="Prompt text; repeat for several (round-robin)."),
    prompts_file: Optional[Path] = typer.Option(None, "--prompts-file", metavar="FILE", help="Prompts, one per "
                                                "line (.txt) or JSON strings / {\"prompt\": ...} objects per line "
                                                "(.jsonl)."),
    max_tokens: int = typer.Option(64, "--max-tokens", min=1, max=131_072, metavar="N",
                                   help="max_tokens per request."),
    timeout: float = typer.Option(600.0, "--timeout", min=0.001, max=7200, metavar="SECONDS",
                                  help="Per-request limit (must cover a cold start when starting from zero)."),
    deadline: float = typer.Option(1800.0, "--deadline", min=0.001, max=86_400, metavar="SECONDS",
                                   help="Limit for the whole run; requests not finished by then count as "
                                        "`deadline`."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar=API_KEY_ENV, show_envvar=True,
                                          show_default=False, metavar="KEY", help="Bearer token (never printed)."),
    from_zero: bool = typer.Option(False, "--from-zero", help="The model is at zero replicas: report the cold-start "
                                   "wait even without the interceptor's X-KEDA-HTTP-Cold-Start header (inferred "
                                   "from TTFT against the warm baseline)."),
    header: list[str] = typer.Option([], "--header", "-H", metavar="'NAME: VALUE'",
                                     help="Extra request header; repeatable. Not needed by the front door."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="FILE", help="Write per-request results to a "
                                       ".json or .csv file (checked before the first request is sent)."),
    min_success: float = typer.Option(1.0, "--min-success", min=0.0, max=1.0, metavar="FRACTION",
                                      help="Exit 1 when the success rate is below this fraction."),
    ramp_up: float = typer.Option(0.0, "--ramp-up", min=0.0, max=3600, metavar="SECONDS", help="Time over which "
                                  "the concurrent workers start (0: all at once, like a burst of users)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress on stderr: a bar on a "
                                  "terminal, a line every --progress-interval otherwise (CI logs)."),
    progress_interval: float = typer.Option(5.0, "--progress-interval", min=0.05, max=3600, metavar="SECONDS",
                                            help="Interval of the progress lines when stderr is not a terminal."),
    as_json: bool = JSON_OPT,
) -> None:
    """Load the OpenAI-compatible endpoint and report TTFT, latency, tokens/s and errors.

    N requests at concurrency C, bounded per request (--timeout) and overall (--deadline). Reports the cold-start
    wait when the run started at zero replicas (X-KEDA-HTTP-Cold-Start header or --from-zero). Exits 1 when the
    success rate is below --min-success.
    """
    from burstctl.burst import (BurstConfig, check_header_value, check_model, check_out, load_prompts, normalize_url,
                                parse_header, write_results)

    # Everything that can be wrong with the input is found before the first request: a cold start can only be
    # measured again after the cooldown and the node consolidation.
    if out is not None:
        check_out(out)
    headers = dict(parse_header(h) for h in header)
    if api_key is not None:
        check_header_value(api_key, f"--api-key (or ${API_KEY_ENV})")
        if not api_key:
            raise BadInput(f"--api-key (or ${API_KEY_ENV}): empty; {API_KEY_FIX}")
    cfg = BurstConfig(
        url=normalize_url(url), model=check_model(model), prompts=load_prompts(prompt, prompts_file),
        requests=requests, concurrency=concurrency, api=api.value, stream=stream, max_tokens=max_tokens,
        timeout=timeout, deadline=deadline, api_key=api_key, from_zero=from_zero, headers=headers, ramp_up=ramp_up,
    )
    show = "off" if not progress or as_json else "bar" if sys.stderr.isatty() else "lines"
    report = asyncio.run(_run_with_progress(cfg, show, progress_interval))
    if out is not None:
        write_results(report, out)
    s = report.summary
    if as_json:
        print_json({"config": report.config, "summary": s, "out": str(out) if out else None})
    else:
        _print_burst_summary(s, cfg)
        if out is not None:
            stdout().print(f"results written to {out}")
    if s["interrupted"]:
        if not as_json:
            stderr().print("[bold red]interrupted[/]: the summary covers the requests that finished")
        raise typer.Exit(130)
    if s["success_rate"] < min_success:
        if not as_json:
            stderr().print(f"[bold red]success rate {s['success_rate']:.1%} is below --min-success "
                           f"{min_success:.1%}[/]")
        raise typer.Exit(EXIT_FAILED)


async def _run_with_progress(cfg: Any, show: str, interval: float) -> Any:
    # Ctrl-C stops the load but keeps what finished: the report and --out still get written.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals (Windows)
        pass
    try:
        return await _run_shown(cfg, show, interval, stop)
    finally:
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError, ValueError):
            pass


async def _run_shown(cfg: Any, show: str, interval: float, stop: asyncio.Event) -> Any:
    from burstctl.burst import run_burst

    if show == "off":
        return await run_burst(cfg, stop=stop)
    counts = {"ok": 0, "err": 0}
    if show == "lines":
        # Logs get a line at fixed times (t0 + k*interval), however the requests are going: a stalled run shows.
        async def ticker() -> None:
            loop = asyncio.get_running_loop()
            t0, k = loop.time(), 1
            while True:
                await asyncio.sleep(max(0.0, t0 + k * interval - loop.time()))
                _progress_line(counts, cfg.requests, k * interval)
                k += 1

        task = asyncio.create_task(ticker())
        t_start = time.perf_counter()

        def tally(r: Any) -> None:
            counts["ok" if r.ok else "err"] += 1

        try:
            report = await run_burst(cfg, on_done=tally, stop=stop)
        finally:
            task.cancel()
        _progress_line(counts, cfg.requests, time.perf_counter() - t_start, final=True)
        return report

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("burst"), BarColumn(), MofNCompleteColumn(), TextColumn("ok {task.fields[ok]} "
                  "err {task.fields[err]}"), TimeElapsedColumn(), console=stderr(), transient=False) as bar:
        bar_task = bar.add_task("burst", total=cfg.requests, ok=0, err=0)

        def done(r: Any) -> None:
            counts["ok" if r.ok else "err"] += 1
            bar.update(bar_task, advance=1, ok=counts["ok"], err=counts["err"])

        return await run_burst(cfg, on_done=done, stop=stop)


def _progress_line(counts: dict[str, int], total: int, at: float, final: bool = False) -> None:
    finished = counts["ok"] + counts["err"]
    sys.stderr.write(f"burst [{at:7.1f} s] {finished}/{total} done, ok {counts['ok']}, err {counts['err']}"
                     f"{' (finished)' if final else ''}\n")
    sys.stderr.flush()


def _print_burst_summary(s: dict[str, Any], cfg: Any) -> None:
    from rich.table import Table

    con = stdout()
    if s["requests"] and s["errors"].get("connect_error") == s["requests"]:
        # Nothing reached the gateway: the timing tables would be all dashes; one line says what to fix.
        stderr().print(Text.assemble(("error: ", "bold red"), s["diagnosis"][0]), soft_wrap=True)
        return
    head = Table(title=f"burst {cfg.model}: {cfg.requests} @ {cfg.concurrency} ({cfg.api}, "
                       f"{'stream' if cfg.stream else 'no stream'})", title_justify="left")
    head.add_column("metric")
    head.add_column("value", justify="right")
    head.add_row("succeeded", f"{s['succeeded']}/{s['requests']} ({s['success_rate']:.1%})")
    head.add_row("tokens out", str(s["tokens_out"]))
    head.add_row("tokens/s", f"{s['tokens_per_s']:.1f}")
    head.add_row("wall time", fmt_seconds(s["wall_s"]))
    head.add_row("achieved concurrency", f"{s['achieved_concurrency']:.1f}")
    cs = s["cold_start"]
    if cs["detected"]:
        added = f", +{fmt_seconds(cs['added_s'])} over warm TTFT" if cs["added_s"] is not None else ""
        head.add_row("cold-start wait", f"{fmt_seconds(cs['wait_s'])}{added} ({cs['held_requests']} held, "
                     f"via {cs['source']})")
    else:
        head.add_row("cold-start wait", "- (warm: no cold start detected)")
    if s["retried_stale_connections"]:
        head.add_row("resent on a fresh connection", str(s["retried_stale_connections"]))
    con.print(head)
    if cs["detected"] and cs["method"]:
        con.print(Text(f"cold start: {cs['method']}"), soft_wrap=True)
    lat = Table(title="timings of successful requests", title_justify="left")
    lat.add_column("")
    for k in ("p50", "p95", "p99", "min", "max"):
        lat.add_column(k, justify="right")
    lat.add_row("TTFT", *(fmt_seconds(s["ttft_s"][k]) for k in ("p50", "p95", "p99", "min", "max")))
    if s["itl_s"]["p50"] is not None:
        lat.add_row("inter-token", *(fmt_seconds(s["itl_s"][k]) for k in ("p50", "p95", "p99", "min", "max")))
    lat.add_row("latency", *(fmt_seconds(s["latency_s"][k]) for k in ("p50", "p95", "p99", "min", "max")))
    con.print(lat)
    if s["errors"]:
        err = Table(title="errors by kind", title_justify="left")
        err.add_column("kind", no_wrap=True)
        err.add_column("count", justify="right")
        err.add_column("what the server or network said")
        for kind, n in s["errors"].items():
            err.add_row(kind, str(n), Text(s["error_details"].get(kind, "")))
        con.print(err)
    for line in s["diagnosis"]:
        stderr().print(Text.assemble(("=> ", "bold yellow"), line), soft_wrap=True)


# -- compare ---------------------------------------------------------------------------------------------------
@app.command()
def compare(
    a: Path = typer.Argument(..., metavar="A.json", help="Baseline: a `burst --out FILE.json` result (e.g. whole "
                             "GPUs)."),
    b: Path = typer.Argument(..., metavar="B.json", help="Candidate: a result of the same model and load (e.g. the "
                             "same model on N time-slices per GPU)."),
    max_regression: str = typer.Option("20%", "--max-regression", metavar="PERCENT", help="Exit 1 when B's p95 "
                                       "TTFT is worse than A's by more than this (20% or 20)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Compare two `burst` results side by side: TTFT and inter-token latency p50/p95/p99, tokens/s, errors, B/A.

    Exits 1 when B's p95 time to first token is worse than A's by more than --max-regression (default 20%), or B has
    no successful request; 2 when a file is not a burst result or A has no successful request.
    """
    from burstctl import compare as cmp

    result = cmp.compare(a, b, cmp.parse_regression(max_regression))
    if as_json:
        print_json(result.as_dict())
    else:
        cmp.render(result, stdout())
    if result.regressed:
        raise typer.Exit(EXIT_FAILED)


# -- verify / timeline -----------------------------------------------------------------------------------------
def _target(model: str, namespace: str, scaledobject: Optional[str], selector: Optional[str], pool: Optional[str]):
    from burstctl.k8s import parse_selector
    from burstctl.verify import Target

    # The ModelService component labels pods app.kubernetes.io/name=vllm, app.kubernetes.io/instance=<served name>.
    sel = parse_selector(selector) if selector else {"app.kubernetes.io/name": "vllm",
                                                     "app.kubernetes.io/instance": model}
    if not sel:
        raise BadInput("--selector: empty; use key=value[,key=value]")
    return Target(namespace=namespace, scaled_object=scaledobject or model, model=model, selector=sel, pool=pool)


MODEL_OPT = typer.Option(..., "--model", "-m", help="Served model name (the Kubernetes name stem of its objects).")
NS_OPT = typer.Option("inference", "--namespace", envvar="BURSTCTL_NAMESPACE", show_envvar=True,
                      help="Namespace of the model's Deployment and ScaledObject (gpu-burst:gateway.namespace).")
SO_OPT = typer.Option(None, "--scaledobject", help="ScaledObject name [default: the model name].")
SEL_OPT = typer.Option(None, "--selector", "-l", help="Label selector of the model pods "
                       "[default: app.kubernetes.io/name=vllm,app.kubernetes.io/instance=<model>].")
POOL_OPT = typer.Option(None, "--pool", help="Look at this Karpenter NodePool only "
                        "[default: every pool of the traffic class the pods select].")
KUBECONFIG_OPT = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG", help="kubeconfig file.")
CONTEXT_OPT = typer.Option(None, "--context", help="kubeconfig context [default: the current context].")
FROM_FILE_OPT = typer.Option(None, "--from-file", "-f", metavar="PATH", help="Read objects from a dump instead of the cluster "
                             "(`kubectl get scaledobjects,hpa,pods,nodeclaims,nodes,events -A -o yaml`); "
                             "repeatable.")
KUBE_TIMEOUT_OPT = typer.Option(10.0, "--request-timeout", help="Seconds each Kubernetes API call may take "
                                "(connect, then read) before the command gives up.")


@app.command()
def verify(
    model: str = MODEL_OPT,
    namespace: str = NS_OPT,
    scaledobject: Optional[str] = SO_OPT,
    selector: Optional[str] = SEL_OPT,
    pool: Optional[str] = POOL_OPT,
    expect_idle: bool = typer.Option(False, "--expect-idle", help="Check the end state after the cooldown instead: "
                                     "KEDA inactive, 0 replicas, no NodeClaim and no GPU node in the pool."),
    kubeconfig: Optional[str] = KUBECONFIG_OPT,
    context: Optional[str] = CONTEXT_OPT,
    from_file: Optional[list[Path]] = FROM_FILE_OPT,
    request_timeout: float = KUBE_TIMEOUT_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Check that both scaling loops fired (or, with --expect-idle, that everything scaled back to zero).

    ScaledObject Ready/Active, HPA desired replicas, model pods, NodeClaims (Launched, Registered, Initialized) and
    the pool's GPU nodes. Failing checks name the likely cause; exits 1 when any check fails.
    """
    from burstctl.k8s import make_reader
    from burstctl.verify import verify as run_verify

    target = _target(model, namespace, scaledobject, selector, pool)
    checks, info = run_verify(make_reader(from_file, kubeconfig, context, request_timeout), target, expect_idle)
    title = f"verify {namespace}/{model} ({'expect idle' if expect_idle else 'scaled up'})"
    raise typer.Exit(print_checks(checks, title, as_json, target=info))


@app.command()
def timeline(
    model: str = MODEL_OPT,
    namespace: str = NS_OPT,
    scaledobject: Optional[str] = SO_OPT,
    selector: Optional[str] = SEL_OPT,
    container: Optional[str] = typer.Option(None, "--container", help="Container whose start is timed "
                                            "[default: the first]."),
    kubeconfig: Optional[str] = KUBECONFIG_OPT,
    context: Optional[str] = CONTEXT_OPT,
    from_file: Optional[list[Path]] = FROM_FILE_OPT,
    logs: Optional[Path] = typer.Option(None, "--logs", help="The model container's log with timestamps (`kubectl "
                                        "logs --timestamps <pod> -c vllm`) [default: read from the cluster]."),
    burst_result: Optional[Path] = typer.Option(None, "--burst-result", help="The `burst --from-zero --out "
                                                "<file>.json` result of the cold start: adds first request and "
                                                "first token."),
    request_timeout: float = KUBE_TIMEOUT_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Time the steps of the latest scale-from-zero of a model.

    activation -> pod created -> NodeClaim created/launched/registered/initialized -> pod scheduled -> image pull
    -> container started -> weights loaded -> engine ready -> API listening -> ready (-> first token with
    --burst-result), with the time each step took. Exits 1 when there is nothing to time or the pod is not ready.
    """
    from burstctl.k8s import make_reader
    from burstctl.timeline import build_timeline, print_timeline, read_burst_result

    target = _target(model, namespace, scaledobject, selector, None)
    burst = read_burst_result(burst_result) if burst_result else None
    tl = build_timeline(make_reader(from_file, kubeconfig, context, request_timeout, logs), target, container, burst)
    if as_json:
        print_json(tl)
    else:
        print_timeline(tl)
    if not tl["complete"]:
        raise typer.Exit(EXIT_FAILED)


# -- preflight -------------------------------------------------------------------------------------------------
AWS_TIMEOUT_OPT = typer.Option(20.0, "--request-timeout", help="Seconds each AWS API call may wait for an answer "
                               "(3 attempts with backoff on throttling and 5xx).")


@app.command()
def preflight(
    stack_file: Path = typer.Option(..., "--stack-file", "-s", help="The stack's Pulumi.<stack>.yaml."),
    region: Optional[str] = typer.Option(None, "--region", help="Override aws:region of the stack file."),
    profile: Optional[str] = typer.Option(None, "--profile", envvar="AWS_PROFILE", help="AWS profile."),
    after_deploy: bool = typer.Option(False, "--after-deploy", help="Also check that subnets and security groups "
                                      "carry the Karpenter discovery tag (needs --cluster-name)."),
    cluster_name: Optional[str] = typer.Option(None, "--cluster-name", help="EKS cluster name (for --after-deploy)."),
    cluster: bool = typer.Option(False, "--cluster", help="Also check what is installed inside the cluster, through "
                                 "the Kubernetes API (--kubeconfig/--context): the add-ons declared present with "
                                 "install: false, and none of those the stack installs."),
    kubeconfig: Optional[str] = KUBECONFIG_OPT,
    context: Optional[str] = CONTEXT_OPT,
    request_timeout: float = AWS_TIMEOUT_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Check the AWS account before `pulumi up`.

    GPU vCPU quotas against the pools' cpuLimit, the pools' instance families offered in the stack's AZs, the GPU AMI
    alias, every pinned EKS add-on build for the cluster version, the spot service-linked role, the data-volume
    snapshot, and that the caller (an admin as the cluster's creator) is not listed as an access entry too; with
    --after-deploy, the discovery tag on subnets and security groups. On an existing cluster (cluster.mode:
    existing) its version and authentication mode; with --cluster, Karpenter, KEDA, the HTTP add-on, Prometheus and
    its selectors, the device plugin, Envoy Gateway, the AI Gateway and the load balancer controller in the cluster.
    """
    from burstctl import aws
    from burstctl import preflight as pf

    if region is not None:
        aws.check_region(region)
    if not request_timeout > 0:
        raise BadInput(f"--request-timeout: {request_timeout:g} must be a positive number of seconds")
    if after_deploy and not cluster_name:
        raise BadInput("--after-deploy needs --cluster-name NAME (the EKS cluster the discovery tag names)")
    if cluster_name:
        from burstctl.sweep import check_cluster_name

        check_cluster_name(cluster_name)
    stack = pf.load_stack_file(stack_file, region)
    cfg = stack.config
    clients = pf.make_clients(aws.check_region(cfg.region, "aws:region"), profile, request_timeout)
    reader = None
    if cluster:
        from burstctl.k8s import KubeClusterReader

        reader = KubeClusterReader(kubeconfig=kubeconfig, context=context)
    checks = stack.notes + pf.preflight(clients, cfg, cluster_name if after_deploy else None, reader)
    info = {"stack_file": str(stack_file), "region": cfg.region, "environment": cfg.environment,
            "pools": [p.name for p in cfg.gpu.pools]}
    raise typer.Exit(print_checks(checks, f"preflight {stack_file.name} ({cfg.region})", as_json, stack=info))


# -- estimate --------------------------------------------------------------------------------------------------
@app.command()
def estimate(
    stack_file: Path = typer.Option(..., "--stack-file", "-s", help="The stack's Pulumi.<stack>.yaml."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Served name of the model (default: the first)."),
    instance_type: Optional[str] = typer.Option(None, "--instance-type", help="GPU instance type (default: the "
                                                "smallest of the model's pool that holds its GPUs)."),
    weights_gb: Optional[float] = typer.Option(None, "--weights-gb", min=0.01, max=2000, help="Weight bytes in GB "
                                               "(default: parameters in the model id x 2)."),
    image_gb: float = typer.Option(10.0, "--image-gb", min=0.1, max=100, help="vLLM image size in GB."),
    measured: Optional[Path] = typer.Option(None, "--measured", metavar="FILE", help="A measured cold start, the "
                                            "`burstctl timeline --json` report: print it next to the estimate, "
                                            "phase by phase (its model is the default --model)."),
    week: Optional[datetime] = typer.Option(None, "--week", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="A day of the week whose "
                                            "pre-warm windows are priced (Monday-Sunday UTC; default: this week)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Estimate time to first token from zero GPU nodes, phase by phase, and the GPU cost of one cold start.

    Baseline (no acceleration) next to what the stack file configures; every constant is shown with its kind
    (measured elsewhere, vendor spec, stack config, or our estimate) and its source. With --measured: the stack's
    estimate next to a measured cold start, phase by phase. For a model with pre-warm windows (models[].prewarm),
    also the GPU-hours per week they buy without a request, at the instance's price.
    """
    from burstctl import estimate as est
    from burstctl import measured as ms

    timeline = ms.read_measured(measured) if measured is not None else None
    if timeline is not None and model is not None and model != timeline["model"]:
        raise BadInput(f"--model: '{model}' differs from the model of --measured {measured} "
                       f"('{timeline['model']}'); compare a model with its own timeline")
    cfg = est.load_stack(stack_file)
    chosen = est.pick_model(cfg, model or (timeline["model"] if timeline is not None else None))
    result = est.estimate(cfg, chosen, instance_type, weights_gb, image_gb, week.date() if week else None)
    comparison = ms.compare(result, timeline, str(measured)) if timeline is not None else None
    if as_json:
        print_json({**result.as_dict(), **({"measured": comparison} if comparison is not None else {})})
    elif comparison is not None:
        ms.render(comparison, result, stdout())
    else:
        est.render(result, stdout())


# -- snapshot --------------------------------------------------------------------------------------------------
snapshot_app = typer.Typer(
    cls=BurstctlGroup, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]},
    help="Pre-loaded Bottlerocket data-volume snapshots (gpu.dataVolumeSnapshotId: auto).")
app.add_typer(snapshot_app, name="snapshot")


@snapshot_app.command("build")
def snapshot_build(
    stack_file: Path = typer.Option(..., "--stack-file", "-s", help="The stack's Pulumi.<stack>.yaml."),
    subnet_id: str = typer.Option(..., "--subnet-id", metavar="SUBNET", help="Subnet of the builder instance; it "
                                  "needs a route to SSM and the image registry (a private subnet of the stack)."),
    instance_profile: str = typer.Option(..., "--instance-profile", metavar="NAME|ARN", help="Instance profile of "
                                         "the builder: its role needs AmazonSSMManagedInstanceCore (docs/cli.md)."),
    instance_type: str = typer.Option("m6i.large", "--instance-type", metavar="TYPE", help="x86_64 builder "
                                      "instance type (no GPU needed)."),
    security_group_id: list[str] = typer.Option([], "--security-group-id", metavar="SG", help="Security group of "
                                                "the builder (repeatable; default: the VPC's default group)."),
    volume_size_gib: Optional[int] = typer.Option(None, "--volume-size-gib", metavar="GIB", help="Data volume "
                                                  "size; at most gpu.volumeSizeGib (default: 100 or that)."),
    public_ip: bool = typer.Option(False, "--public-ip/--no-public-ip", help="Give the builder a public IP (a "
                                   "public subnet without NAT)."),
    region: Optional[str] = typer.Option(None, "--region", help="Override aws:region of the stack file."),
    profile: Optional[str] = typer.Option(None, "--profile", envvar="AWS_PROFILE", help="AWS profile."),
    yes: bool = typer.Option(False, "--yes", help="Launch the builder (without it: report what exists or would be "
                             "built, and check the flags against the account)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress on stderr."),
    request_timeout: float = AWS_TIMEOUT_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Build the data-volume snapshot for the stack's pinned vLLM image (idempotent).

    The snapshot holds the image references the model pods pull (through the ECR pull-through cache when
    gpu.imageCache is set), unpacked by containerd for the stack's Bottlerocket release (gpu.amiVersion), Kubernetes
    version and architecture, and carries tags that `gpu.dataVolumeSnapshotId: auto` finds. A completed snapshot
    with those tags means nothing to do. The builder instance is terminated on success and on every failure.
    """
    from burstctl import aws
    from burstctl import preflight as pf
    from burstctl import snapshot as sn

    if region is not None:
        aws.check_region(region)
    if not request_timeout > 0:
        raise BadInput(f"--request-timeout: {request_timeout:g} must be a positive number of seconds")
    cfg = pf.load_stack(stack_file, region)
    # An existing cluster's own version is in the snapshot tags `auto` looks for.
    cfg = pf.with_cluster_version(cfg, cfg.region, profile, request_timeout)
    gpu = cfg.gpu
    sn.check_flags(subnet_id, instance_profile, instance_type, security_group_id, volume_size_gib,
                   gpu.volume_size_gib)
    clients = sn.make_clients(aws.check_region(cfg.region, "aws:region"), profile, request_timeout)
    result = _aws_call(lambda: _snapshot_build(sn, clients, cfg, subnet_id, instance_profile, instance_type,
                                               security_group_id, volume_size_gib, public_ip, yes, progress))
    if as_json:
        print_json(result.as_dict())
    else:
        _print_snapshot(result, stack_file)
    if result.cleanup.startswith("could not"):
        raise typer.Exit(EXIT_FAILED)  # built, but a builder is still running (and billing): the message says how


_ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")


@snapshot_app.command("policy")
def snapshot_policy(
    stack_file: Path = typer.Option(..., "--stack-file", "-s", help="The stack's Pulumi.<stack>.yaml."),
    builder_role_arn: str = typer.Option(..., "--builder-role-arn", metavar="ARN", help="Role of the builder's "
                                         "instance profile (the only role the policy lets you pass to EC2)."),
    region: Optional[str] = typer.Option(None, "--region", help="Override aws:region of the stack file."),
) -> None:
    """Print the least IAM policy (JSON) that runs `snapshot build` for the stack.

    Scoped by the builder and snapshot tags; with gpu.imageCache it adds the ECR pull rights on the cache prefix.
    Attach it to the identity that runs the build, e.g. `aws iam put-role-policy --policy-document "$(...)"`.
    """
    from burstctl import aws
    from burstctl import preflight as pf
    from burstctl import snapshot as sn

    if region is not None:
        aws.check_region(region)
    m = _ROLE_ARN.match(builder_role_arn)
    if not m:
        raise BadInput(f"--builder-role-arn: '{builder_role_arn}' is not an IAM role ARN; allowed: e.g. "
                       "arn:aws:iam::123456789012:role/gpu-burst-snapshot-builder")
    cfg = pf.load_stack(stack_file, region)
    cfg = pf.with_cluster_version(cfg, cfg.region)
    images, _ = sn.stack_identity(cfg, m.group(2))
    print_json(sn.operator_policy(m.group(1), cfg.region, m.group(2), builder_role_arn,
                                  sn.ecr_repositories(m.group(1), images)))


def _tty() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _aws_call(fn: Callable[[], Any]) -> Any:
    from botocore.exceptions import BotoCoreError, NoCredentialsError

    from burstctl import aws

    try:
        return fn()
    except NoCredentialsError:
        raise CheckError("no AWS credentials found: set AWS_PROFILE (or --profile) or AWS_ACCESS_KEY_ID") from None
    except BotoCoreError as e:
        raise CheckError(aws.unreachable(e)) from None


def _snapshot_build(sn: Any, clients: Any, cfg: Any, subnet_id: str, instance_profile: str, instance_type: str,
                    groups: list[str], size: Optional[int], public_ip: bool, yes: bool, show: bool) -> Any:
    p = sn.plan(cfg, sn.account_id(clients), subnet_id, instance_profile, instance_type, groups, size, public_ip)
    if not show:
        return sn.build(clients, p, yes)
    if _tty():
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=stderr(), transient=False) as bar:
            tasks: dict[str, Any] = {}

            def report(step: str, state: str, detail: str) -> None:
                if state == "start":
                    tasks[step] = bar.add_task(step, total=1)
                elif state == "tick":
                    bar.update(tasks[step], description=f"{step}: {detail}")
                else:
                    mark = "[green]ok[/]" if state == "done" else "[bold red]failed[/]"
                    bar.update(tasks[step], completed=1, description=f"{step}: {mark} {detail}")

            return sn.build(clients, p, yes, progress=report)

    def line(step: str, state: str, detail: str) -> None:
        if state != "tick":
            stderr().print(f"{time.strftime('%H:%M:%S')} {step}: {state} {detail}".rstrip(), soft_wrap=True)

    return sn.build(clients, p, yes, progress=line)


def _print_snapshot(r: Any, stack_file: Path) -> None:
    from rich.table import Table

    p = r.plan
    table = Table(title=f"data-volume snapshot for {stack_file.name} ({p.region})", title_justify="left",
                  show_header=False)
    table.add_column("", no_wrap=True)
    table.add_column("")
    status = {"exists": "[green]exists: nothing to do[/]", "built": "[green]built[/]",
              "pending": "[yellow]being written (run with --yes to wait for it)[/]",
              "planned": "[yellow]not built yet (run with --yes to build it)[/]"}[r.status]
    table.add_row("status", status)
    table.add_row("snapshot", r.snapshot_id or "-")
    table.add_row("images", "\n".join(p.images))
    table.add_row("bottlerocket", f"{p.bottlerocket_version} aws-k8s-{p.kubernetes_version} {p.arch}")
    table.add_row("tags", "\n".join(f"{k}={v}" for k, v in p.tags.items()))
    if r.status == "planned":
        table.add_row("builder", f"{p.instance_type} in {p.subnet_id}, profile {p.instance_profile}, "
                                 f"{p.volume_size_gib} GiB data volume, AMI {p.ami_parameter}")
    for step in r.steps:
        table.add_row(step.name, f"{fmt_seconds(step.seconds)}  {step.detail}")
    if r.cleanup:
        table.add_row("clean-up", r.cleanup)
    con = stdout()
    con.print(table)
    if r.status in ("exists", "built"):
        con.print("GPU nodes restore it with `gpu.dataVolumeSnapshotId: auto` (or `pulumi config set --path "
                  f"'gpu.dataVolumeSnapshotId' {r.snapshot_id}`) on the next `pulumi up`.", soft_wrap=True)


# -- sweep -----------------------------------------------------------------------------------------------------
@app.command()
def sweep(
    cluster_name: str = typer.Option(..., "--cluster-name", help="EKS cluster whose controller leftovers to find."),
    region: str = typer.Option(..., "--region", envvar="AWS_REGION", show_envvar=True, help="AWS region."),
    profile: Optional[str] = typer.Option(None, "--profile", envvar="AWS_PROFILE", help="AWS profile."),
    yes: bool = typer.Option(False, "--yes", help="Delete what was found (without it: report only)."),
    force: bool = typer.Option(False, "--force", help="With --yes: delete even though the EKS cluster still runs "
                               "(a destroy that stopped after removing its controllers)."),
    request_timeout: float = AWS_TIMEOUT_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Find (and with --yes delete) what Karpenter and the AWS Load Balancer Controller left behind after
    `pulumi destroy`.

    EC2 instances, launch templates and instance profiles Karpenter created for the cluster; load balancers, target
    groups and security groups the AWS Load Balancer Controller created for it. --yes refuses while the cluster
    still runs (its controllers own these; add --force once they are gone). Exits 1 when leftovers remain (dry run)
    or a delete failed; a second run after --yes finds nothing and exits 0.
    """
    from rich.table import Table

    from burstctl import sweep as sw

    from burstctl import aws

    sw.check_cluster_name(cluster_name)
    aws.check_region(region)
    if not request_timeout > 0:
        raise BadInput(f"--request-timeout: {request_timeout:g} must be a positive number of seconds")
    clients = sw.make_clients(region, profile, request_timeout)
    found = sw.find(clients, cluster_name)
    if yes and found and not force:
        # A live cluster's controllers own what was found: deleting its NLB takes the edge down and a new one
        # comes back under another DNS name.
        status = sw.cluster_status(clients, cluster_name)
        if status in sw.RUNNING_CLUSTER:
            raise BadInput(f"--yes: cluster {cluster_name} in {region} is {status}, so its Karpenter and load "
                           "balancer controller may still own these objects; destroy the stack first, or add "
                           "--force if its controllers are already gone")
    if yes and found:
        _sweep_delete(sw, clients, found)
    errors = [x for x in found if x.action.startswith("error")]
    remaining = bool(found) and not yes
    if as_json:
        from dataclasses import asdict

        print_json({"cluster": cluster_name, "region": region, "dry_run": not yes, "found": len(found),
                    "errors": len(errors), "leftovers": [asdict(x) for x in found]})
    else:
        con = stdout()
        if not found:
            con.print(f"[green]nothing left behind[/] for cluster {cluster_name} in {region}")
        else:
            table = Table(title=f"Leftovers of {cluster_name} in {region}", title_justify="left")
            for col in ("kind", "id", "name / path", "detail", "action"):
                table.add_column(col)
            for x in found:
                action = "would delete" if not yes else x.action
                style = "red" if action.startswith("error") else "yellow" if not yes else "green"
                # An ARN's last part is its unique id (the name is in the next column; --json has the full ARN).
                shown = x.id.rsplit("/", 1)[-1] if x.id.startswith("arn:") else x.id
                table.add_row(x.kind, shown, x.name, x.detail, f"[{style}]{action}[/]")
            con.print(table)
            if not yes:
                con.print(f"{len(found)} leftover(s); run again with --yes to delete them")
    if errors or remaining:
        raise typer.Exit(EXIT_FAILED)


def _sweep_delete(sw: Any, clients: Any, found: list) -> None:
    """Delete with a progress bar on stderr when it is a terminal (security groups can take minutes)."""
    if not _tty():
        sw.delete(clients, found)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=stderr(), transient=True) as bar:
        task = bar.add_task("", total=len(found))

        def report(item: Any, note: str) -> None:
            if note:
                bar.update(task, description=f"{item.kind} {item.name or item.id}: {note}")
            else:
                bar.update(task, advance=1, description=f"{item.kind} {item.name or item.id}: {item.action}")

        sw.delete(clients, found, progress=report)


# -- usage -----------------------------------------------------------------------------------------------------
@app.command()
def usage(
    since: Optional[str] = typer.Option(None, "--since", metavar="DURATION", help="Range ending at --end (or now): "
                                       "30m, 24h, 7d, 1h30m [default: 24h]."),
    start: Optional[str] = typer.Option(None, "--start", metavar="TIME", help="Start of the range: RFC 3339 "
                                        "(2026-05-01T09:00:00Z), a date (UTC) or Unix seconds."),
    end: Optional[str] = typer.Option(None, "--end", metavar="TIME", help="End of the range [default: now]."),
    prometheus_url: Optional[str] = typer.Option(None, "--prometheus-url", envvar="BURSTCTL_PROMETHEUS_URL",
                                                 show_envvar=True, help="Prometheus base URL, e.g. "
                                                 "http://localhost:9090 after `kubectl -n monitoring port-forward "
                                                 "svc/kps-prometheus 9090` [default: through the API server's "
                                                 "service proxy, with the kubeconfig]."),
    prometheus_namespace: Optional[str] = typer.Option(None, "--prometheus-namespace", help="Namespace of the "
                                                       "Prometheus Service [default: the stack's, monitoring]."),
    prometheus_service: Optional[str] = typer.Option(None, "--prometheus-service", metavar="NAME:PORT",
                                                     help="Prometheus Service and port [default: the stack's, "
                                                     "kps-prometheus:9090]."),
    kubeconfig: Optional[str] = KUBECONFIG_OPT,
    context: Optional[str] = CONTEXT_OPT,
    request_timeout: float = typer.Option(30.0, "--request-timeout", help="Seconds each Prometheus query may "
                                          "take before the command gives up."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr (a terminal)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Requests, tokens, errors and daily budget left per API key; GPU-hours, cold starts and cost per model.

    For a time range, from the cluster's Prometheus: the same PromQL as the stack's usage recording rules and the
    dashboard's "Usage and cost" row, evaluated over the range. Cost is GPU time x the price `burstctl estimate`
    uses (on-demand list price). Exits 1 when Prometheus cannot be reached or refuses a query.
    """
    from burstctl import usage as us
    from burstctl.program import monitoring

    if not request_timeout > 0:
        raise BadInput(f"--request-timeout: {request_timeout:g} must be a positive number of seconds")
    tr = us.time_range(since, start, end)
    if prometheus_url is not None:
        prom: Any = us.UrlPrometheus(prometheus_url, request_timeout)
    else:
        from burstctl.k8s import KubeClusterReader

        mon = monitoring()
        service = prometheus_service or f"{mon.PROMETHEUS_SERVICE}:{mon.PROMETHEUS_PORT}"
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(:[0-9]{1,5})?", service):
            raise BadInput(f"--prometheus-service: '{service}' is not NAME[:PORT]; e.g. kps-prometheus:9090")
        prom = us.ClusterPrometheus(KubeClusterReader(kubeconfig=kubeconfig, context=context, timeout=request_timeout),
                                    prometheus_namespace or mon.DEFAULT_NAMESPACE, service)
    names = list(us.queries("1h"))
    if progress and not as_json and sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("querying Prometheus"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=stderr(), transient=True) as bar:
            task = bar.add_task("usage", total=len(names))
            results = us.collect(prom, tr, lambda _: bar.advance(task))
    else:
        results = us.collect(prom, tr)
    rep = us.report(results, tr, prom.where)
    if as_json:
        print_json(rep)
    else:
        us.render(rep, stdout())


def run() -> None:  # pragma: no cover - console-script convenience
    app(prog_name="burstctl")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
