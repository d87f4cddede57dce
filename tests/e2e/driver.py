"""The steps of an end-to-end release run and their verdicts, over four small interfaces.

stack -> preflight -> up -> preview (must show no change) -> reach the front door -> burst --from-zero -> verify ->
timeline -> estimate --measured -> idle (verify --expect-idle until the cooldown is over) -> destroy -> remove stack
-> sweep (must find nothing).

Whatever step fails, the clean-up destroys the stack (a second time past errors before giving up), removes it once
destroyed, and reports what `burstctl sweep` finds. The stack, the burstctl runner, the way to the front door and
the clock are parameters: automation.py has the real ones, tests/test_e2e_driver.py has fakes.
"""

import copy
import json
import re
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE_STACK_FILE = ROOT / "Pulumi.dev.yaml"
OPT_IN = "GPU_BURST_E2E"
API_KEY_ENV = "GPU_BURST_API_KEY"  # burstctl's API_KEY_ENV (test_e2e_driver checks they agree)

# The dev stack file, shrunk: two AZs, one GPU of at most 8 vCPUs, and a short cooldown so the run waits minutes,
# not half an hour, for the way back to zero.
SMALL_FOOTPRINT: dict[str, Any] = {
    "gpu-burst:network": {"azCount": 2},
    "gpu-burst:gpu": {"pools": [{"gpuLimit": 1, "cpuLimit": 8, "consolidateAfter": "1m"}]},
    "gpu-burst:models": [{"idleBeforeScaleToZero": "2m", "maxReplicas": 1}],
}
IDLE_MARGIN_S = 600.0
"""After idleBeforeScaleToZero and consolidateAfter: KEDA's next poll, Karpenter's disruption pass, the instance's
termination and the NodeClaim's finalizer."""
POLL_S = 30.0
BURST_REQUESTS = 8
REACHES = ("port-forward", "endpoint")
REQUIRED_OUTPUTS = ("clusterName", "region", "kubeconfig", "apiKey", "endpoint", "models", "inferenceNamespace")
_STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

# Files of the report directory (the workflow uploads it; nothing secret goes there).
STACK_FILE, RUN, REPORT, CLEANUP_REPORT = "stack-config.yaml", "run.json", "report.json", "cleanup-report.json"
PREFLIGHT, BURST_RESULT, BURST_SUMMARY, VERIFY = "preflight.json", "burst.json", "burst-summary.json", "verify.json"
TIMELINE, ESTIMATE_JSON, ESTIMATE_TEXT, IDLE, SWEEP = ("timeline.json", "estimate.json", "estimate.txt", "idle.json",
                                                      "sweep.json")


class E2EError(Exception):
    """Bad settings: raised before anything is created."""


class StepFailed(Exception):
    pass


# -- when to run ---------------------------------------------------------------------------------------------------
def skip_reason(env: Mapping[str, str], has_aws_credentials: Callable[[], bool]) -> Optional[str]:
    """Why the run is skipped, or None. The opt-in is checked first: without it no credential lookup happens."""
    if env.get(OPT_IN) != "1":
        return (f"end-to-end run on a real AWS account (deploys and destroys a stack, billed): opt in with "
                f"{OPT_IN}=1 (docs/delivery.md)")
    if not has_aws_credentials():
        return f"{OPT_IN}=1 but no AWS credentials were found (AWS_PROFILE, AWS_ACCESS_KEY_ID or a role)"
    return None


def preconditions(env: Mapping[str, str], which: Callable[[str], Optional[str]]) -> list[str]:
    """What an opted-in run still needs, as one line each (checked before anything is created)."""
    out = []
    if not which("pulumi"):
        out.append("the Pulumi CLI is not on PATH (the version in .pulumi.version; README quick start)")
    if (env.get("GPU_BURST_E2E_REACH") or "port-forward") == "port-forward" and not which("kubectl"):
        out.append("kubectl is not on PATH (GPU_BURST_E2E_REACH=port-forward reaches the internal gateway with it)")
    if not (env.get("GPU_BURST_E2E_SECRETS_PROVIDER") or "PULUMI_CONFIG_PASSPHRASE" in env
            or env.get("PULUMI_CONFIG_PASSPHRASE_FILE")):
        out.append("no secrets provider: set PULUMI_CONFIG_PASSPHRASE (keep it: destroying a stack a failed run left "
                   "needs it again) or GPU_BURST_E2E_SECRETS_PROVIDER (e.g. awskms://alias/gpu-burst-state)")
    return out


def cluster_name_from_state(deployment: Optional[Mapping[str, Any]]) -> Optional[str]:
    """The EKS cluster's name from an exported state (`pulumi stack export --show-secrets`)."""
    for res in (deployment or {}).get("resources") or []:
        if res.get("type") != "aws:eks/cluster:Cluster":
            continue
        name = (res.get("outputs") or {}).get("name")
        if isinstance(name, dict) and isinstance(name.get("plaintext"), str):  # a secret, shown
            name = json.loads(name["plaintext"])
        if isinstance(name, str) and name:
            return name
    return None


def front_door_service(services: Mapping[str, Any], endpoint: str) -> tuple[str, str, int]:
    """(namespace, name, port) of the Service whose load balancer the `endpoint` output names: the port-forward
    target when the gateway is internal."""
    split = urlsplit(endpoint)
    port = split.port or {"http": 80, "https": 443}.get(split.scheme, 0)
    for svc in services.get("items") or []:
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if split.hostname and any(i.get("hostname") == split.hostname for i in ingress):
            meta = svc.get("metadata") or {}
            ports = [p.get("port") for p in (svc.get("spec") or {}).get("ports") or []]
            if port not in ports:
                raise StepFailed(f"Service {meta.get('namespace')}/{meta.get('name')} has the endpoint's load "
                                 f"balancer but no port {port} (ports: {ports})")
            return str(meta.get("namespace")), str(meta.get("name")), port
    raise StepFailed(f"no Service has the load balancer of the endpoint {endpoint!r} (an endpoint on "
                     "gateway.domain: set GPU_BURST_E2E_REACH=endpoint where that name resolves)")


# -- settings ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    stack_name: str
    config: dict[str, Any]
    """The throwaway stack's whole config, namespaced keys as in a stack file."""
    report_dir: Path
    idle_timeout_s: float
    reach: str = "port-forward"
    burst_requests: int = BURST_REQUESTS
    poll_s: float = POLL_S

    @property
    def stack_file(self) -> Path:
        return self.report_dir / STACK_FILE


def merge(base: Any, over: Any) -> Any:
    """`over` on top of `base`: mappings key by key, a list of mappings item by item, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = copy.deepcopy(base)
        for k, v in over.items():
            out[k] = merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(over, list) and over and all(isinstance(o, dict) for o in over):
        return [merge(b, o) for b, o in zip(base, over)] + copy.deepcopy(base[len(over):] + over[len(base):])
    return copy.deepcopy(over)


def read_config(path: Path, what: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise E2EError(f"{what}: cannot read {path}: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise E2EError(f"{what}: {path} has no `config:` mapping (the shape of a Pulumi.<stack>.yaml file)")
    return doc["config"]


def typed_config(config: Mapping[str, Any]) -> Any:
    """The program's own validation (stacks.config), so bad overrides fail here and not 20 minutes into `up`."""
    from stacks.config import ConfigError, raw_from_values, validate

    raw, problems = raw_from_values(config)
    try:
        if problems:
            raise ConfigError(problems)
        return validate(raw)
    except ConfigError as e:
        raise E2EError("the end-to-end stack config is not valid:\n  " + "\n  ".join(e.lines)) from None


def idle_timeout_s(cfg: Any) -> float:
    from stacks.config import duration_seconds

    return (max(m.idle_seconds for m in cfg.models) + max(duration_seconds(p.consolidate_after) for p in cfg.gpu.pools)
            + IDLE_MARGIN_S)


def default_stack_name(now: Optional[datetime] = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"e2e-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """GPU_BURST_E2E_STACK (default: a unique name), GPU_BURST_E2E_REGION (else AWS_REGION, else the dev stack
    file's), GPU_BURST_E2E_OVERRIDES (a stack file whose `config:` goes on top), GPU_BURST_E2E_REACH
    (port-forward | endpoint), GPU_BURST_E2E_REPORT_DIR (default: e2e-report)."""
    name = env.get("GPU_BURST_E2E_STACK") or default_stack_name()
    if not _STACK_NAME.match(name):
        raise E2EError(f"GPU_BURST_E2E_STACK: '{name}' is not a stack name; allowed: letters, digits, '-', '_', '.' "
                       "(at most 100, starting with a letter or digit)")
    reach = env.get("GPU_BURST_E2E_REACH") or "port-forward"
    if reach not in REACHES:
        raise E2EError(f"GPU_BURST_E2E_REACH: '{reach}'; allowed: {', '.join(REACHES)}")
    config = merge(read_config(BASE_STACK_FILE, "base stack file"), SMALL_FOOTPRINT)
    if env.get("GPU_BURST_E2E_OVERRIDES"):
        config = merge(config, read_config(Path(env["GPU_BURST_E2E_OVERRIDES"]), "GPU_BURST_E2E_OVERRIDES"))
    region = env.get("GPU_BURST_E2E_REGION") or env.get("AWS_REGION")
    if region:
        config["aws:region"] = region
    cfg = typed_config(config)
    return Settings(stack_name=name, config=config, idle_timeout_s=idle_timeout_s(cfg), reach=reach,
                    report_dir=Path(env.get("GPU_BURST_E2E_REPORT_DIR") or ROOT / "e2e-report").resolve())


# -- what the steps run against ----------------------------------------------------------------------------------
class Stack(Protocol):
    def create(self, config: Mapping[str, Any]) -> None:
        """Create (or select) the stack and set its whole config."""

    def up(self) -> dict[str, Any]:
        """Deploy; the stack outputs with secrets in plaintext."""

    def preview(self) -> dict[str, int]:
        """A preview of the deployed stack: resource counts per operation (`same`, `update`, ...)."""

    def cluster_name(self) -> Optional[str]:
        """The EKS cluster's name from the state (when `up` failed before its outputs), or None."""

    def destroy(self, past_errors: bool = False) -> None:
        """Delete every resource (nothing to do when the stack does not exist)."""

    def remove(self) -> None:
        """Remove the (empty) stack and its config file."""


@dataclass
class Completed:
    code: int
    stdout: str
    stderr: str = ""


Burstctl = Callable[[Sequence[str], Mapping[str, str]], Completed]
"""Runs `burstctl <args>` with extra environment variables."""


class Reach(Protocol):
    def open(self, outputs: Mapping[str, Any], kubeconfig: Path) -> str:
        """The base URL (`.../v1`) burst sends to."""

    def close(self) -> None:
        """Idempotent."""


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


# -- the run -------------------------------------------------------------------------------------------------------
@dataclass
class StepResult:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass
class Report:
    stack: str
    steps: list[StepResult] = field(default_factory=list)
    cleanup: list[StepResult] = field(default_factory=list)
    kept_stack: bool = False

    @property
    def ok(self) -> bool:
        return [s.name for s in self.steps] == list(Run.STEPS) and all(s.ok for s in self.steps + self.cleanup)

    @property
    def cleaned(self) -> bool:
        return not self.kept_stack and all(s.ok for s in self.cleanup)

    @property
    def failures(self) -> list[StepResult]:
        return [s for s in self.steps + self.cleanup if not s.ok]

    def as_dict(self) -> dict[str, Any]:
        return {"stack": self.stack, "ok": self.ok, "kept_stack": self.kept_stack,
                "steps": [asdict(s) for s in self.steps], "cleanup": [asdict(s) for s in self.cleanup]}


class Run:
    STEPS = ("stack", "preflight", "up", "preview", "reach", "burst", "verify", "timeline", "estimate", "idle",
             "destroy", "remove stack", "sweep")

    def __init__(self, settings: Settings, stack: Stack, burstctl: Burstctl, reach: Reach, clock: Clock,
                 log: Callable[[str], None] = print) -> None:
        self.s, self.stack, self.burstctl, self.reach, self.clock, self.log = (settings, stack, burstctl, reach,
                                                                               clock, log)
        self.outputs: dict[str, Any] = {}
        self.cluster: Optional[str] = None
        self.url = ""
        self.created = self.destroyed = self.removed = self.swept = False
        self._private = Path(tempfile.mkdtemp(prefix="gpu-burst-e2e-"))  # kubeconfig: never in the report dir

    # the table of contents
    def execute(self) -> Report:
        self.s.report_dir.mkdir(parents=True, exist_ok=True)
        report = Report(self.s.stack_name)
        try:
            for name in self.STEPS:
                result = self._step(name, getattr(self, "_" + name.replace(" ", "_")))
                report.steps.append(result)
                if not result.ok:
                    break
        finally:
            report.cleanup = self._cleanup()
            report.kept_stack = self.created and not self.removed
            self._finish(report, REPORT, report.ok)
        return report

    def clean_up(self, cluster: Optional[str] = None) -> Report:
        """Only the clean-up, for a stack whose run was killed (the workflow's always-run step)."""
        self.s.report_dir.mkdir(parents=True, exist_ok=True)
        self.created, self.cluster = True, cluster
        report = Report(self.s.stack_name, cleanup=self._cleanup())
        report.kept_stack = not self.removed
        self._finish(report, CLEANUP_REPORT, report.cleaned)
        return report

    def _step(self, name: str, fn: Callable[[], Optional[str]]) -> StepResult:
        self.log(f"== {name}")
        t0 = self.clock.monotonic()
        try:
            ok, detail = True, fn() or ""
        except StepFailed as e:
            ok, detail = False, str(e)
        except Exception as e:  # the Automation API's CommandError, a lost port-forward: the step failed
            ok, detail = False, f"{type(e).__name__}: {e}"
        result = StepResult(name, ok, round(self.clock.monotonic() - t0, 1), detail)
        self.log(f"{'ok' if ok else 'FAILED'} {name} ({result.seconds:.0f} s){': ' + detail if detail else ''}")
        return result

    # -- steps ---------------------------------------------------------------------------------------------------
    def _stack(self) -> str:
        self.s.stack_file.write_text(yaml.safe_dump({"config": self.s.config}, sort_keys=False))
        self.created = True  # from here on the clean-up destroys, even a half-created stack
        self.stack.create(self.s.config)
        return f"{self.s.stack_name} in {self.s.config['aws:region']}"

    def _preflight(self) -> str:
        r, doc = self._burstctl_json(["preflight", "--stack-file", str(self.s.stack_file), "--json"], PREFLIGHT)
        if r.code != 0:
            raise StepFailed(_failed_checks(doc, r))
        return "AWS account ready"

    def _up(self) -> str:
        outputs = self.stack.up()
        missing = [k for k in REQUIRED_OUTPUTS if outputs.get(k) in (None, "", [])]
        self.outputs, self.cluster = outputs, outputs.get("clusterName") or None
        if missing:
            raise StepFailed(f"stack outputs missing: {', '.join(missing)}")
        kubeconfig = outputs["kubeconfig"]
        self.kubeconfig.write_text(kubeconfig if isinstance(kubeconfig, str) else json.dumps(kubeconfig))
        self.kubeconfig.chmod(0o600)
        self._write(RUN, json.dumps({"stack": self.s.stack_name, "clusterName": self.cluster,
                                     "region": self.region, "endpoint": outputs["endpoint"],
                                     "models": outputs["models"], "namespace": self.namespace}, indent=2))
        return f"cluster {self.cluster}, endpoint {outputs['endpoint']}"

    def _preview(self) -> str:
        # Nothing resolves "newest" at deploy time and no resource fights a controller: a second look is empty.
        changes = {op: n for op, n in self.stack.preview().items() if op != "same" and n}
        if changes:
            raise StepFailed("the preview right after `up` is not empty: " + ", ".join(
                f"{n} to {op}" for op, n in sorted(changes.items())) + " (its diff is in the log above)")
        return "no changes"

    def _reach(self) -> str:
        self.url = self.reach.open(self.outputs, self.kubeconfig)
        return self.url

    def _burst(self) -> str:
        n = str(self.s.burst_requests)
        r, doc = self._burstctl_json(["burst", "--url", self.url, "--model", self.model, "--from-zero",
                                      "--requests", n, "--concurrency", n, "--out", str(self._path(BURST_RESULT)),
                                      "--json"], BURST_SUMMARY, env={API_KEY_ENV: str(self.outputs["apiKey"])})
        s = (doc or {}).get("summary") or {}
        if r.code != 0:
            raise StepFailed(f"burst exited {r.code}: " + (
                f"{s.get('succeeded')}/{s.get('requests')} succeeded, errors {s.get('errors')}; "
                + "; ".join(s.get("diagnosis") or []) if s else _error_of(doc, r)))
        cold = s.get("cold_start") or {}
        return (f"{s.get('succeeded')}/{s.get('requests')} ok, cold-start wait {cold.get('wait_s')} s"
                if cold.get("detected") else f"{s.get('succeeded')}/{s.get('requests')} ok, no cold start detected")

    def _verify(self) -> str:
        r, doc = self._burstctl_json(["verify", *self._target(), "--json"], VERIFY)
        if r.code != 0:
            raise StepFailed(_failed_checks(doc, r))
        return "both scaling loops fired"

    def _timeline(self) -> str:
        r, doc = self._burstctl_json(["timeline", *self._target(), "--burst-result", str(self._path(BURST_RESULT)),
                                      "--json"], TIMELINE)
        if r.code != 0:
            raise StepFailed(f"timeline exited {r.code}: " + (
                "the pod is not ready" if doc and "complete" in doc else _error_of(doc, r)))
        return f"first token {doc.get('total_s')} s after the first request, report {self._path(TIMELINE)}"

    def _estimate(self) -> str:
        args = ["estimate", "--stack-file", str(self.s.stack_file), "--model", self.model,
                "--measured", str(self._path(TIMELINE))]
        r, doc = self._burstctl_json([*args, "--json"], ESTIMATE_JSON)
        if r.code != 0:
            raise StepFailed(f"estimate exited {r.code}: {_error_of(doc, r)}")
        text = self.burstctl(args, {"COLUMNS": "160"})
        self._write(ESTIMATE_TEXT, text.stdout)
        self.log(text.stdout)
        m = doc["measured"]
        return f"measured {m['measured_total_s']} s, estimated {m['estimated_total_s']} s"

    def _idle(self) -> str:
        self.reach.close()  # nothing may keep the model busy
        t0 = self.clock.monotonic()
        deadline = t0 + self.s.idle_timeout_s
        while True:
            r, doc = self._burstctl_json(["verify", *self._target(), "--expect-idle", "--json"], IDLE)
            if r.code == 0:
                return f"back to zero {self.clock.monotonic() - t0:.0f} s after the checks"
            if self.clock.monotonic() + self.s.poll_s > deadline:
                raise StepFailed(f"not idle {self.s.idle_timeout_s:.0f} s after the burst: {_failed_checks(doc, r)}")
            self.clock.sleep(self.s.poll_s)

    def _destroy(self) -> str:
        self.reach.close()
        self.stack.destroy()
        self.destroyed = True
        return "every resource deleted"

    def _remove_stack(self) -> str:
        self.stack.remove()
        self.removed = True
        return "stack and its config file removed"

    def _sweep(self) -> str:
        self.swept = True
        region = self.region
        r, doc = self._burstctl_json(["sweep", "--cluster-name", str(self.cluster), "--region", region, "--json"],
                                     SWEEP)
        found = (doc or {}).get("leftovers")
        if r.code != 0 or found:
            what = "; ".join(f"{x.get('kind')} {x.get('id')} {x.get('name')}".strip() for x in found or []) \
                or _error_of(doc, r)
            raise StepFailed(f"{len(found or [])} leftover(s) after destroy: {what}; delete them with `burstctl "
                             f"sweep --cluster-name {self.cluster} --region {region} --yes`")
        return f"nothing left behind for {self.cluster}"

    # -- clean-up ------------------------------------------------------------------------------------------------
    def _cleanup(self) -> list[StepResult]:
        results: list[StepResult] = []
        try:
            self.reach.close()
        except Exception as e:  # a tunnel that will not close must not keep the stack alive
            self.log(f"closing the way to the front door failed: {e}")
        if self.created and not self.destroyed:
            if self.cluster is None:  # `up` failed before its outputs: the state still knows the cluster
                try:
                    self.cluster = self.stack.cluster_name()
                except Exception as e:
                    self.log(f"cannot read the cluster name from the state: {e}")
            for attempt in (1, 2):
                r = self._step(f"clean-up: destroy (attempt {attempt})", lambda: self._destroy_past(attempt > 1))
                results.append(r)
                if r.ok:
                    break
        if self.destroyed and not self.removed:
            results.append(self._step("clean-up: remove stack", self._remove_stack))
        if self.cluster and not self.swept:
            results.append(self._step("clean-up: sweep", self._sweep))
        shutil.rmtree(self._private, ignore_errors=True)
        return results

    def _destroy_past(self, past_errors: bool) -> str:
        self.stack.destroy(past_errors=past_errors)
        self.destroyed = True
        return "every resource deleted" + (" (second attempt, past errors)" if past_errors else "")

    def _finish(self, report: Report, save_as: str, passed: bool) -> None:
        self._write(save_as, json.dumps(report.as_dict(), indent=2))
        self.log(f"== {'PASSED' if passed else 'FAILED'}: stack {self.s.stack_name}, report in {self.s.report_dir}")
        for f in report.failures:
            self.log(f"   {f.name}: {f.detail}")
        if report.kept_stack:
            self.log(f"   the stack {self.s.stack_name} still holds resources: run `pulumi destroy --stack "
                     f"{self.s.stack_name}` (then `pulumi stack rm {self.s.stack_name}`) from {ROOT}")

    # -- helpers -------------------------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self._private / "kubeconfig.json"

    @property
    def model(self) -> str:
        return str(self.outputs["models"][0])

    @property
    def namespace(self) -> str:
        return str(self.outputs["inferenceNamespace"])

    @property
    def region(self) -> str:
        return str(self.outputs.get("region") or self.s.config["aws:region"])

    def _target(self) -> list[str]:
        return ["--model", self.model, "--namespace", self.namespace, "--kubeconfig", str(self.kubeconfig)]

    def _path(self, name: str) -> Path:
        return self.s.report_dir / name

    def _write(self, name: str, text: str) -> None:
        self._path(name).write_text(text)

    def _burstctl_json(self, args: list[str], save_as: str,
                       env: Optional[Mapping[str, str]] = None) -> tuple[Completed, Any]:
        r = self.burstctl(args, dict(env or {}))
        self._write(save_as, r.stdout)
        try:
            doc = json.loads(r.stdout)
        except ValueError:
            doc = None
        return r, doc


def _error_of(doc: Any, r: Completed) -> str:
    if isinstance(doc, dict) and doc.get("error"):
        return str(doc["error"])
    return (r.stderr.strip().splitlines() or ["no output"])[-1]


def _failed_checks(doc: Any, r: Completed) -> str:
    checks = doc.get("checks") if isinstance(doc, dict) else None
    if not checks:
        return _error_of(doc, r)
    failed = [c for c in checks if c.get("status") == "fail"]
    return "; ".join(f"{c.get('name')}: {c.get('detail')}" + (f" ({c['cause']})" if c.get("cause") else "")
                     for c in failed) or f"exit {r.code}"
