"""The end-to-end driver's step logic (tests/e2e/driver.py) against fakes: the order of the steps, burstctl's flags
as its parser defines them, the clean-up after a failure at any step, the verdicts, the reports it saves and when the
real run is skipped. The fakes answer with the documents the real commands print; timeline and estimate run for real
on the recorded scale-up (tests/cli/fixtures), so the saved timeline report is what `estimate --measured` reads."""

import importlib
import json
import os
import shutil
from pathlib import Path

import pytest
import typer.main
import yaml
from typer._click import Context
from typer.testing import CliRunner

import burstctl
from burstctl.cli import app
from e2e import driver as d

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "cli" / "fixtures"
MODEL = "qwen2-5-1-5b-instruct"
CLUSTER = "gpu-burst-e2e-7f3a2c1"
API_KEY = "sk-e2e-not-a-real-key-0123456789"
OUTPUTS = {"clusterName": CLUSTER, "region": "us-west-2", "endpoint": "http://internal-k8s-envoygat-1a2b.elb.us-west-2"
           ".amazonaws.com/v1", "models": [MODEL], "inferenceNamespace": "inference", "apiKey": API_KEY,
           "kubeconfig": json.dumps({"apiVersion": "v1", "kind": "Config", "clusters": [], "users": []})}
"""What `up` answers, shaped as the dev stack exports it (the kubeconfig output is a JSON string)."""
_CLI = typer.main.get_command(app)


def parse_flags(args):
    """burstctl's own parser on one invocation: an unknown flag or a value out of range raises."""
    sub = _CLI.get_command(Context(_CLI, info_name="burstctl"), args[0])
    assert sub is not None, f"no burstctl command {args[0]!r}"
    return sub.make_context(args[0], list(args[1:]), parent=Context(_CLI, info_name="burstctl")).params


# -- fakes ---------------------------------------------------------------------------------------------------------
class Boom(Exception):
    pass


class FakeStack:
    def __init__(self, calls, fail=(), destroy_failures=0, remove_failures=0, state_cluster=CLUSTER):
        self.calls, self.fail, self.state_cluster = calls, set(fail), state_cluster
        self.destroy_failures, self.remove_failures = destroy_failures, remove_failures
        self.config = None
        self.destroy_args = []

    def create(self, config):
        self.calls.append("stack.create")
        self.config = config
        if "create" in self.fail:
            raise Boom("error: could not create stack: the backend is not reachable")

    def up(self):
        self.calls.append("stack.up")
        if "up" in self.fail:
            raise Boom("error: update failed: 1 resource failed to create")
        return dict(OUTPUTS)

    def preview(self):
        self.calls.append("stack.preview")
        return {"same": 118, "update": 2, "replace": 1} if "preview" in self.fail else {"same": 121}

    def cluster_name(self):
        self.calls.append("stack.cluster_name")
        return self.state_cluster

    def destroy(self, past_errors=False):
        self.calls.append("stack.destroy")
        self.destroy_args.append(past_errors)
        if self.destroy_failures:
            self.destroy_failures -= 1
            raise Boom("error: deleting VPC: DependencyViolation")

    def remove(self):
        self.calls.append("stack.remove")
        if self.remove_failures:
            self.remove_failures -= 1
            raise Boom("error: stack still has resources")


class FakeReach:
    def __init__(self, calls, fail=False):
        self.calls, self.fail = calls, fail

    def open(self, outputs, kubeconfig):
        self.calls.append("reach.open")
        assert Path(kubeconfig).read_text() == outputs["kubeconfig"]
        if self.fail:
            raise RuntimeError("kubectl port-forward did not start in 60 s")
        return "http://127.0.0.1:40123/v1"

    def close(self):
        self.calls.append("reach.close")


class FakeClock:
    def __init__(self):
        self.now, self.slept = 1000.0, []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


class FakeBurstctl:
    """Checks every invocation with burstctl's parser and answers as the command would. `fail` names commands that
    exit 1; `idle` is the exit codes of successive `verify --expect-idle` runs; `leftovers` what sweep finds."""

    def __init__(self, calls, fail=(), idle=(0,), leftovers=()):
        self.calls, self.fail, self.idle, self.leftovers = calls, set(fail), list(idle), list(leftovers)
        self.invocations = []

    def __call__(self, args, env):
        params = parse_flags(args)
        name = args[0] + (" --expect-idle" if params.get("expect_idle") else "")
        self.calls.append(f"burstctl {name}")
        self.invocations.append((list(args), dict(env), params))
        return getattr(self, "_" + args[0])(args, params)

    def _done(self, command, doc, code=None):
        code = (1 if command in self.fail else 0) if code is None else code
        return d.Completed(code, json.dumps(doc))

    def _preflight(self, args, p):
        ok = "preflight" not in self.fail
        return self._done("preflight", {"ok": ok, "stack": {"region": "us-west-2"}, "checks": [
            {"name": "gpu vcpu quota g", "status": "pass" if ok else "fail", "detail": "16 of 16 vCPUs free" if ok
             else "0 of 16 vCPUs free", "cause": "" if ok else "request a quota increase", "data": {}}]})

    def _burst(self, args, p):
        if "burst" in self.fail:
            return self._done("burst", {"config": {}, "summary": {
                "requests": 8, "succeeded": 0, "success_rate": 0.0, "errors": {"http_503": 8}, "diagnosis": [
                    "every request got 503: the interceptor timed out waiting for a ready replica"]}})
        shutil.copyfile(FIXTURES / "scaled-up.burst.json", p["out"])
        return self._done("burst", {"config": {"model": p["model"]}, "summary": {
            "requests": 8, "succeeded": 8, "success_rate": 1.0, "errors": {}, "diagnosis": [],
            "cold_start": {"detected": True, "wait_s": 201.6}}, "out": str(p["out"])})

    def _verify(self, args, p):
        if p["expect_idle"]:
            code = self.idle.pop(0) if len(self.idle) > 1 else self.idle[0]
            return self._done("idle", {"ok": code == 0, "checks": [
                {"name": "gpu nodes", "status": "pass" if code == 0 else "fail",
                 "detail": "none" if code == 0 else "1 GPU node still running", "cause": ""}]}, code)
        ok = "verify" not in self.fail
        return self._done("verify", {"ok": ok, "checks": [
            {"name": "nodeclaims", "status": "pass" if ok else "fail",
             "detail": "1 launched" if ok else "none", "cause": "" if ok else "Karpenter launched nothing"}]})

    def _real(self, args):
        r = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
        return d.Completed(r.exit_code, r.stdout, r.stderr)

    def _timeline(self, args, p):
        if "timeline" in self.fail:
            return self._done("timeline", {"error": "ScaledObject inference/x not found", "exit_code": 1})
        # the recorded cluster instead of --kubeconfig; the burst result the driver passes, as given
        return self._real(["timeline", "--model", p["model"], "--namespace", p["namespace"],
                           "-f", FIXTURES / "scaled-up.yaml", "--logs", FIXTURES / "scaled-up.vllm.log",
                           "--burst-result", p["burst_result"], *(["--json"] if p["as_json"] else [])])

    def _estimate(self, args, p):
        if "estimate" in self.fail:
            return self._done("estimate", {"error": "--measured: not a timeline report", "exit_code": 2}, 2)
        return self._real(args)

    def _sweep(self, args, p):
        found = [{"kind": "instance", "id": i, "name": f"{CLUSTER}-gpu", "detail": "running", "action": "found"}
                 for i in self.leftovers]
        return self._done("sweep", {"cluster": p["cluster_name"], "region": p["region"], "dry_run": True,
                                    "found": len(found), "errors": 0, "leftovers": found}, 1 if found else 0)


@pytest.fixture
def world(tmp_path):
    """A fresh run over fakes: world(...) -> (report, calls, stack, burstctl, clock, log lines, settings)."""
    def make(stack_fail=(), destroy_failures=0, remove_failures=0, burstctl_fail=(), idle=(0,), leftovers=(),
             reach_fail=False, state_cluster=CLUSTER):
        calls, log = [], []
        settings = settings_for(tmp_path)
        stack = FakeStack(calls, stack_fail, destroy_failures, remove_failures, state_cluster)
        bc = FakeBurstctl(calls, burstctl_fail, idle, leftovers)
        clock = FakeClock()
        run = d.Run(settings, stack, bc, FakeReach(calls, reach_fail), clock, log.append)
        return run.execute(), calls, stack, bc, clock, log, settings, run
    return make


def settings_for(tmp_path, **env):
    return d.settings_from_env({"GPU_BURST_E2E_STACK": "e2e-test", "GPU_BURST_E2E_REPORT_DIR": str(tmp_path / "r"),
                                **env})


HAPPY = ["stack.create", "burstctl preflight", "stack.up", "stack.preview", "reach.open", "burstctl burst", "burstctl verify",
         "burstctl timeline", "burstctl estimate", "burstctl estimate", "reach.close", "burstctl verify --expect-idle",
         "reach.close", "stack.destroy", "stack.remove", "burstctl sweep", "reach.close"]


# -- the order of the steps ------------------------------------------------------------------------------------------
def test_a_passing_run_in_order_with_burstctl_flags_as_its_parser_defines_them(world):
    report, calls, stack, bc, clock, log, s, run = world()
    assert report.ok and [r.name for r in report.steps] == list(d.Run.STEPS) and report.cleanup == []
    assert calls == HAPPY
    by_cmd = {a[0]: (a, env, p) for a, env, p in bc.invocations if not p.get("expect_idle")}
    kubeconfig = str(run.kubeconfig)
    target = {"model": MODEL, "namespace": "inference", "kubeconfig": kubeconfig}
    _, _, p = by_cmd["burst"]
    assert (p["url"], p["model"], p["from_zero"], p["requests"], p["out"]) == (
        "http://127.0.0.1:40123/v1", MODEL, True, d.BURST_REQUESTS, s.report_dir / d.BURST_RESULT)
    assert {k: by_cmd["verify"][2][k] for k in target} == target and by_cmd["verify"][2]["expect_idle"] is False
    idle = [p for a, env, p in bc.invocations if p.get("expect_idle")]
    assert len(idle) == 1 and {k: idle[0][k] for k in target} == target
    tl = by_cmd["timeline"][2]
    assert {k: tl[k] for k in target} == target and tl["burst_result"] == s.report_dir / d.BURST_RESULT
    est = by_cmd["estimate"][2]
    assert (est["stack_file"], est["model"], est["measured"]) == (s.stack_file, MODEL, s.report_dir / d.TIMELINE)
    sw = by_cmd["sweep"][2]
    assert (sw["cluster_name"], sw["region"], sw["yes"], sw["as_json"]) == (CLUSTER, "us-west-2", False, True)
    assert by_cmd["preflight"][2]["stack_file"] == s.stack_file
    # the stack got the stack file the commands read, and the report says so
    assert stack.config == yaml.safe_load(s.stack_file.read_text())["config"] == s.config
    saved = json.loads((s.report_dir / d.REPORT).read_text())
    assert saved["ok"] is True and [x["name"] for x in saved["steps"]] == list(d.Run.STEPS)
    assert log[-1].startswith("== PASSED: stack e2e-test")


def test_secrets_stay_out_of_argv_and_the_report_dir(world):
    report, calls, stack, bc, clock, log, s, run = world()
    assert report.ok
    for args, env, _ in bc.invocations:
        assert API_KEY not in " ".join(map(str, args))
        assert env == ({burstctl.API_KEY_ENV: API_KEY} if args[0] == "burst" else
                       {"COLUMNS": "160"} if args[0] == "estimate" and "--json" not in args else {})
    assert d.API_KEY_ENV == burstctl.API_KEY_ENV
    assert all(API_KEY not in p.read_text() for p in s.report_dir.iterdir())
    # the kubeconfig lived in a private directory (0600), gone after the run
    assert not run.kubeconfig.exists() and not run.kubeconfig.parent.exists()
    assert s.report_dir not in run.kubeconfig.parents


def test_the_timeline_report_is_saved_and_estimate_prints_it_next_to_its_own(world):
    report, calls, stack, bc, clock, log, s, run = world()
    timeline = json.loads((s.report_dir / d.TIMELINE).read_text())
    assert timeline["model"] == MODEL and timeline["complete"] is True and timeline["total_s"] == 203.3
    assert [p["phase"] for p in timeline["phases"]][0] == "request to activation"  # the burst result was used
    est = json.loads((s.report_dir / d.ESTIMATE_JSON).read_text())
    assert est["measured"]["source"] == str(s.report_dir / d.TIMELINE)
    assert est["measured"]["measured_total_s"] == 203.3
    text = (s.report_dir / d.ESTIMATE_TEXT).read_text()
    assert "measured vs estimated" in text and "203.3 s" in text
    assert "measured 203.3 s" in next(r.detail for r in report.steps if r.name == "estimate")
    assert json.loads((s.report_dir / d.RUN).read_text()) == {
        "stack": "e2e-test", "clusterName": CLUSTER, "region": "us-west-2", "endpoint": OUTPUTS["endpoint"],
        "models": [MODEL], "namespace": "inference"}


# -- clean-up after a failure at any step --------------------------------------------------------------------------
FAILURES = {
    "stack": {"stack_fail": ["create"]},
    "preflight": {"burstctl_fail": ["preflight"]},
    "up": {"stack_fail": ["up"]},
    "preview": {"stack_fail": ["preview"]},
    "reach": {"reach_fail": True},
    "burst": {"burstctl_fail": ["burst"]},
    "verify": {"burstctl_fail": ["verify"]},
    "timeline": {"burstctl_fail": ["timeline"]},
    "estimate": {"burstctl_fail": ["estimate"]},
    "idle": {"idle": (1,)},
    "destroy": {"destroy_failures": 1},
    "remove stack": {"remove_failures": 1},
    "sweep": {"leftovers": ["i-0123456789abcdef0"]},
}


@pytest.mark.parametrize("step", d.Run.STEPS)
def test_destroy_always_runs_after_a_failure(world, step):
    report, calls, stack, bc, clock, log, s, run = world(**FAILURES[step])
    assert not report.ok
    assert [r.name for r in report.steps] == list(d.Run.STEPS[:d.Run.STEPS.index(step) + 1])
    assert report.steps[-1].name == step and not report.steps[-1].ok and report.steps[-1].detail
    failed_at = max(i for i, c in enumerate(calls) if c in _calls_of(step))
    later = calls[failed_at + 1:]
    # nothing of the later steps ran, except the clean-up's destroy, remove and sweep
    assert set(later) <= {"reach.close", "stack.cluster_name", "stack.destroy", "stack.remove", "burstctl sweep"}
    assert "stack.destroy" in calls
    assert calls.index("stack.remove") > max(i for i, c in enumerate(calls) if c == "stack.destroy")
    assert calls[-1] in ("burstctl sweep", "reach.close") and "burstctl sweep" in calls
    assert calls.index("burstctl sweep") > calls.index("stack.remove")
    assert not report.kept_stack
    if step not in ("destroy", "remove stack", "sweep"):
        assert [r.name for r in report.cleanup] == ["clean-up: destroy (attempt 1)", "clean-up: remove stack",
                                                    "clean-up: sweep"]
        assert all(r.ok for r in report.cleanup)
    assert log[-2].startswith("== FAILED") and log[-1].startswith(f"   {step}: ")


def _calls_of(step):
    return {"stack": {"stack.create"}, "preflight": {"burstctl preflight"}, "up": {"stack.up"},
            "preview": {"stack.preview"},
            "reach": {"reach.open"}, "burst": {"burstctl burst"}, "verify": {"burstctl verify"},
            "timeline": {"burstctl timeline"}, "estimate": {"burstctl estimate"},
            "idle": {"burstctl verify --expect-idle"}, "destroy": {"stack.destroy"},
            "remove stack": {"stack.remove"}, "sweep": {"burstctl sweep"}}[step]


def test_a_failed_up_sweeps_the_cluster_the_state_names(world):
    report, calls, stack, bc, clock, log, s, run = world(stack_fail=["up"], state_cluster="gpu-burst-eks-9e8d7c6")
    assert calls.index("stack.cluster_name") < calls.index("stack.destroy")  # read before the state is gone
    (sweep,) = [p for a, env, p in bc.invocations if a[0] == "sweep"]
    assert sweep["cluster_name"] == "gpu-burst-eks-9e8d7c6"
    report, calls, *_ = world(stack_fail=["up"], state_cluster=None)  # no cluster yet: nothing to sweep
    assert "burstctl sweep" not in calls and "stack.remove" in calls


def test_sweep_finding_leftovers_fails_the_run(world):
    report, calls, stack, bc, clock, log, s, run = world(leftovers=["i-0123456789abcdef0", "i-0fedcba9876543210"])
    assert not report.ok and report.steps[-1].name == "sweep"
    detail = report.steps[-1].detail
    assert detail.startswith("2 leftover(s) after destroy: instance i-0123456789abcdef0")
    assert "i-0fedcba9876543210" in detail
    assert f"burstctl sweep --cluster-name {CLUSTER} --region us-west-2 --yes" in detail
    assert calls.count("burstctl sweep") == 1 and not report.kept_stack  # destroyed and removed all the same
    assert json.loads((s.report_dir / d.SWEEP).read_text())["found"] == 2


def test_a_stack_that_will_not_destroy_is_kept_and_the_log_says_how_to_finish(world):
    report, calls, stack, bc, clock, log, s, run = world(destroy_failures=3)
    assert calls.count("stack.destroy") == 3 and stack.destroy_args == [False, False, True]  # last: past errors
    assert "stack.remove" not in calls and report.kept_stack and not report.ok
    assert [r.name for r in report.cleanup] == ["clean-up: destroy (attempt 1)", "clean-up: destroy (attempt 2)",
                                                "clean-up: sweep"]
    assert "DependencyViolation" in report.cleanup[1].detail
    assert any("pulumi destroy --stack e2e-test" in line for line in log)
    assert json.loads((s.report_dir / d.REPORT).read_text())["kept_stack"] is True


def test_idle_polls_until_back_to_zero_with_the_tunnel_closed(world):
    report, calls, stack, bc, clock, log, s, run = world(idle=(1, 1, 0))
    assert report.ok and calls.count("burstctl verify --expect-idle") == 3 and clock.slept == [d.POLL_S] * 2
    assert calls.index("reach.close") < calls.index("burstctl verify --expect-idle")
    report, calls, stack, bc, clock, log, s, run = world(idle=(1,))
    polls = calls.count("burstctl verify --expect-idle")
    assert polls == int(s.idle_timeout_s // d.POLL_S) + 1
    assert report.steps[-1].detail.startswith(f"not idle {s.idle_timeout_s:.0f} s after the burst: gpu nodes: "
                                              "1 GPU node still running")


def test_failures_say_what_the_command_said(world):
    report, *_ = world(burstctl_fail=["preflight"])
    assert report.steps[-1].detail == "gpu vcpu quota g: 0 of 16 vCPUs free (request a quota increase)"
    report, *_ = world(burstctl_fail=["burst"])
    assert "0/8 succeeded, errors {'http_503': 8}; every request got 503" in report.steps[-1].detail
    report, *_ = world(burstctl_fail=["timeline"])
    assert report.steps[-1].detail == "timeline exited 1: ScaledObject inference/x not found"
    report, *_ = world(stack_fail=["up"])
    assert report.steps[-1].detail == "Boom: error: update failed: 1 resource failed to create"
    report, *_ = world(stack_fail=["preview"])
    assert report.steps[-1].detail.startswith("the preview right after `up` is not empty: 1 to replace, 2 to update")


def test_clean_up_only_for_a_killed_run(tmp_path):
    calls, log = [], []
    settings = d.Settings("e2e-killed", {"aws:region": "eu-west-1"}, tmp_path, idle_timeout_s=0)
    stack = FakeStack(calls)
    report = d.Run(settings, stack, FakeBurstctl(calls), FakeReach(calls), FakeClock(), log.append).clean_up(CLUSTER)
    assert report.cleaned and calls == ["reach.close", "stack.destroy", "stack.remove", "burstctl sweep"]
    assert json.loads((tmp_path / d.CLEANUP_REPORT).read_text())["kept_stack"] is False


# -- settings, skip condition, pure helpers --------------------------------------------------------------------------
def test_skip_unless_opted_in_and_credentialed():
    asked = []

    def creds(answer):
        return lambda: asked.append(1) or answer

    assert "opt in with GPU_BURST_E2E=1" in d.skip_reason({}, creds(True)) and asked == []
    assert d.skip_reason({"GPU_BURST_E2E": "0"}, creds(True)) is not None and asked == []
    assert "no AWS credentials" in d.skip_reason({"GPU_BURST_E2E": "1"}, creds(False))
    assert d.skip_reason({"GPU_BURST_E2E": "1"}, creds(True)) is None


def test_the_release_test_follows_the_skip_condition(monkeypatch):
    from e2e import automation, test_release

    try:
        monkeypatch.delenv("GPU_BURST_E2E", raising=False)
        (mark,) = importlib.reload(test_release).test_release_on_a_real_account.pytestmark
        assert mark.name == "skipif" and mark.args == (True,) and "GPU_BURST_E2E=1" in mark.kwargs["reason"]
        monkeypatch.setenv("GPU_BURST_E2E", "1")
        monkeypatch.setattr(automation, "has_aws_credentials", lambda: False)
        (mark,) = importlib.reload(test_release).test_release_on_a_real_account.pytestmark
        assert mark.args == (True,) and "no AWS credentials" in mark.kwargs["reason"]
        monkeypatch.setattr(automation, "has_aws_credentials", lambda: True)
        (mark,) = importlib.reload(test_release).test_release_on_a_real_account.pytestmark
        assert mark.args == (False,)
    finally:
        monkeypatch.undo()
        importlib.reload(test_release)


def test_settings_shrink_the_dev_stack_and_validate_it(tmp_path):
    s = settings_for(tmp_path)
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    pool, model = s.config["gpu-burst:gpu"]["pools"][0], s.config["gpu-burst:models"][0]
    assert (pool["gpuLimit"], pool["cpuLimit"], pool["consolidateAfter"]) == (1, 8, "1m")
    assert pool["instanceFamilies"] == dev["gpu-burst:gpu"]["pools"][0]["instanceFamilies"]  # the rest is dev's
    assert model["idleBeforeScaleToZero"] == "2m" and model["servedName"] == MODEL
    assert s.config["gpu-burst:network"] == {**dev["gpu-burst:network"], "azCount": 2}
    assert s.idle_timeout_s == 120 + 60 + d.IDLE_MARGIN_S
    assert s.config["aws:region"] == dev["aws:region"] and s.reach == "port-forward"
    assert settings_for(tmp_path, AWS_REGION="eu-west-1").config["aws:region"] == "eu-west-1"
    assert settings_for(tmp_path, AWS_REGION="eu-west-1", GPU_BURST_E2E_REGION="us-east-2").config["aws:region"] \
        == "us-east-2"
    over = tmp_path / "over.yaml"
    over.write_text(yaml.safe_dump({"config": {"gpu-burst:cluster": {"publicAccessCidrs": ["52.10.0.0/16"]}}}))
    s2 = settings_for(tmp_path, GPU_BURST_E2E_OVERRIDES=str(over))
    assert s2.config["gpu-burst:cluster"]["publicAccessCidrs"] == ["52.10.0.0/16"]
    assert s2.config["gpu-burst:cluster"]["kubernetesVersion"] == dev["gpu-burst:cluster"]["kubernetesVersion"]
    assert d.default_stack_name() != d.default_stack_name()
    assert d._STACK_NAME.match(d.default_stack_name())


def test_bad_settings_fail_before_anything_is_created(tmp_path):
    over = tmp_path / "over.yaml"
    over.write_text(yaml.safe_dump({"config": {"gpu-burst:models": [{"idleBeforeScaleToZero": "10s"}]}}))
    with pytest.raises(d.E2EError) as e:
        settings_for(tmp_path, GPU_BURST_E2E_OVERRIDES=str(over))
    assert "gpu-burst:models[0].idleBeforeScaleToZero: '10s' would thrash GPU nodes" in str(e.value)
    over.write_text("nothing: here\n")
    with pytest.raises(d.E2EError, match="GPU_BURST_E2E_OVERRIDES: .* has no `config:` mapping"):
        settings_for(tmp_path, GPU_BURST_E2E_OVERRIDES=str(over))
    with pytest.raises(d.E2EError, match="GPU_BURST_E2E_STACK: 'my stack' is not a stack name"):
        settings_for(tmp_path, GPU_BURST_E2E_STACK="my stack")
    with pytest.raises(d.E2EError, match="GPU_BURST_E2E_REACH: 'vpn'; allowed: port-forward, endpoint"):
        settings_for(tmp_path, GPU_BURST_E2E_REACH="vpn")


def test_preconditions():
    every = {"pulumi": "/usr/bin/pulumi", "kubectl": "/usr/bin/kubectl"}
    assert d.preconditions({"PULUMI_CONFIG_PASSPHRASE": ""}, every.get) == []  # an empty passphrase is one
    assert d.preconditions({"GPU_BURST_E2E_SECRETS_PROVIDER": "awskms://alias/x"}, every.get) == []
    lines = d.preconditions({}, {}.get)
    assert len(lines) == 3 and "Pulumi CLI" in lines[0] and "kubectl" in lines[1]
    assert "PULUMI_CONFIG_PASSPHRASE" in lines[2]
    assert d.preconditions({"GPU_BURST_E2E_REACH": "endpoint", "PULUMI_CONFIG_PASSPHRASE_FILE": "/p"},
                           {"pulumi": "/p"}.get) == []


def test_merge():
    base = {"a": {"b": 1, "c": [1, 2]}, "l": [{"x": 1, "y": 2}, {"x": 3}], "s": "v"}
    got = d.merge(base, {"a": {"c": [9]}, "l": [{"y": 5}], "n": {"k": 1}})
    assert got == {"a": {"b": 1, "c": [9]}, "l": [{"x": 1, "y": 5}, {"x": 3}], "s": "v", "n": {"k": 1}}
    assert base["l"][0] == {"x": 1, "y": 2}  # untouched


def test_cluster_name_from_state():
    state = {"resources": [{"type": "pulumi:pulumi:Stack", "outputs": {}},
                           {"type": "eks:index:Cluster", "outputs": {}},
                           {"type": "aws:eks/cluster:Cluster", "outputs": {"name": "gpu-burst-eks-1a2b3c"}}]}
    assert d.cluster_name_from_state(state) == "gpu-burst-eks-1a2b3c"
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
              "plaintext": json.dumps("gpu-burst-eks-1a2b3c")}
    state["resources"][2]["outputs"]["name"] = secret
    assert d.cluster_name_from_state(state) == "gpu-burst-eks-1a2b3c"
    assert d.cluster_name_from_state({"resources": state["resources"][:2]}) is None
    assert d.cluster_name_from_state(None) is None


def test_front_door_service_is_the_one_behind_the_endpoint():
    def svc(ns, name, host, ports):
        return {"metadata": {"namespace": ns, "name": name}, "spec": {"ports": [{"port": p} for p in ports]},
                "status": {"loadBalancer": {"ingress": [{"hostname": host}] if host else []}}}

    host = "internal-k8s-envoygat-1a2b.elb.us-west-2.amazonaws.com"
    services = {"items": [svc("kube-system", "kube-dns", None, [53]),
                          svc("monitoring", "other-lb", "other.elb.amazonaws.com", [80]),
                          svc("envoy-gateway-system", "gpu-burst-edge-envoy", host, [80])]}
    assert d.front_door_service(services, f"http://{host}/v1") == ("envoy-gateway-system", "gpu-burst-edge-envoy", 80)
    with pytest.raises(d.StepFailed, match="has the endpoint's load balancer but no port 443"):
        d.front_door_service(services, f"https://{host}/v1")
    with pytest.raises(d.StepFailed, match="no Service has the load balancer of the endpoint"):
        d.front_door_service(services, "https://llm.example.com/v1")


def test_ci_never_opts_in():
    text = "\n".join(p.read_text() for p in (ROOT / ".github" / "workflows").glob("*.yml") if p.name != "e2e.yml")
    assert d.OPT_IN not in text and d.OPT_IN not in (ROOT / ".ci" / "run").read_text()
    assert os.environ.get(d.OPT_IN) != "1" or "CI" not in os.environ


def test_every_setting_the_run_reads_is_documented():
    import re

    names = set()
    for f in ("driver.py", "automation.py", "cleanup.py"):
        names |= set(re.findall(r"GPU_BURST_E2E_[A-Z_]+", (ROOT / "tests" / "e2e" / f).read_text()))
    doc = (ROOT / "docs" / "delivery.md").read_text()
    assert names and {n for n in names if n not in doc} == set()
    assert "GPU_BURST_E2E=1" in doc and "python -m tests.e2e.cleanup" in doc


def test_the_fake_stack_answers_with_the_outputs_the_program_exports():
    """The fake `up` must answer what the dev stack exports (names and JSON types of the outputs the driver reads), or
    the driver is tested against a shape the real stack never returns (the kubeconfig output is a JSON string)."""
    from stack_cache import evaluated
    from stack_helpers import resolve

    _, outputs = evaluated("dev", secrets={"hfToken": "hf_e2e_fake_check"})
    assert set(d.REQUIRED_OUTPUTS) <= set(outputs)
    real = {k: resolve(v) if hasattr(v, "future") else v for k, v in outputs.items() if k in d.REQUIRED_OUTPUTS}
    assert {k: type(v) for k, v in real.items()} == {k: type(OUTPUTS[k]) for k in d.REQUIRED_OUTPUTS}
    assert real["models"][0] == MODEL and real["endpoint"].endswith("/v1")
    assert json.loads(real["kubeconfig"])["kind"] == json.loads(OUTPUTS["kubeconfig"])["kind"] == "Config"
