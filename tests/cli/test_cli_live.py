"""The live-cluster path: authentication through the kubeconfig the stack outputs, error meanings, timeouts.

The fake API server (kube_fake.py) answers 401 to any request without the expected bearer token, as EKS does.
"""

from __future__ import annotations

import json
import threading
import time
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from burstctl.k8s import KubeClusterReader
from burstctl.output import BadInput, CheckError
from kube_fake import TOKEN

ROOT = Path(__file__).resolve().parents[2]


def test_exec_credential_kubeconfig_sends_the_bearer_token(fake_kube, fixtures: Path):
    # The kubeconfig `pulumi stack output kubeconfig` prints runs `aws eks get-token`; the client must send its
    # token. kubernetes==36.0.0 sent none (kubernetes-client/python#2582): every call was 401.
    kubeconfig = fake_kube(fixtures / "scaled-up.yaml", auth="exec")
    reader = KubeClusterReader(kubeconfig=str(kubeconfig))
    so = reader.scaled_object("inference", "qwen2-5-1-5b-instruct")
    assert so is not None and so["kind"] == "ScaledObject"
    seen = fake_kube.last.requests
    assert seen and all(r["authorization"] == f"Bearer {TOKEN}" for r in seen)


def test_static_token_kubeconfig_sends_the_bearer_token(fake_kube, fixtures: Path):
    kubeconfig = fake_kube(fixtures / "scaled-up.yaml", auth="token")
    reader = KubeClusterReader(kubeconfig=str(kubeconfig), context="other")
    assert len(reader.pods("inference", {"app.kubernetes.io/name": "vllm"})) >= 1
    assert fake_kube.last.requests[-1]["authorization"] == f"Bearer {TOKEN}"


def test_verify_cli_through_exec_kubeconfig(invoke, fake_kube, fixtures: Path):
    kubeconfig = fake_kube(fixtures / "scaled-up.yaml", auth="exec")
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "--kubeconfig", kubeconfig, "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["ok"] is True


def test_in_cluster_service_account_sends_the_bearer_token(in_cluster, invoke, fixtures: Path):
    # burstctl run from a pod (a CI job in the cluster): no kubeconfig, the mounted service account token.
    server = in_cluster(fixtures / "scaled-up.yaml")
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert server.requests and all(q["authorization"].lower() == f"bearer {TOKEN}".lower() for q in server.requests)


def test_pinned_client_is_not_the_broken_release():
    pins = [Requirement(line.split("#")[0].strip()) for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip().startswith("kubernetes")]
    assert len(pins) == 1 and "36.0.0" not in pins[0].specifier
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["cli"]
    spec = next(Requirement(r) for r in extra if r.startswith("kubernetes"))
    assert not spec.specifier.contains("36.0.0")
    pinned = next(iter(pins[0].specifier)).version
    assert spec.specifier.contains(pinned)


# -- what an error means -----------------------------------------------------------------------------------------
def test_401_means_credentials_not_rbac(invoke, fake_kube, fixtures: Path):
    kubeconfig = fake_kube(fixtures / "idle.yaml", auth="token", token="expired")
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "--kubeconfig", kubeconfig)
    assert r.exit_code == 1
    assert "401 Unauthorized" in r.stderr and "credentials" in r.stderr and "access entry" in r.stderr
    assert "RBAC" not in r.stderr


def test_403_means_rbac(invoke, fake_kube, fixtures: Path):
    kubeconfig = fake_kube(fixtures / "idle.yaml", forbid=True)
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "--kubeconfig", kubeconfig)
    assert r.exit_code == 1 and "403 Forbidden" in r.stderr and "RBAC" in r.stderr


def test_without_events_or_log_permission_the_checks_still_run(invoke, fake_kube, fixtures: Path):
    kubeconfig = fake_kube(fixtures / "scaled-up.yaml", forbid_suffixes=("/events", "/log"))
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "--kubeconfig", kubeconfig, "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    r = invoke("timeline", "-m", "qwen2-5-1-5b-instruct", "--kubeconfig", kubeconfig, "--json")
    tl = json.loads(r.stdout)
    assert r.exit_code == 0 and tl["pod"].endswith("x2k4p") and not tl["engine"]
    assert "pass --logs" in next(s for s in tl["steps"] if s["name"] == "API listening")["note"]


def test_5xx_is_reported_as_a_server_error(invoke, fake_kube, fixtures: Path):
    kubeconfig = fake_kube(fixtures / "idle.yaml", fail_status=503)
    r = invoke("timeline", "-m", "qwen2-5-1-5b-instruct", "--kubeconfig", kubeconfig)
    assert r.exit_code == 1 and "503" in r.stderr and "RBAC" not in r.stderr and "Traceback" not in r.stderr


def test_exec_plugin_failure_points_at_aws_credentials(invoke, fake_kube, fixtures: Path):
    kubeconfig = fake_kube(fixtures / "idle.yaml", exec_exit=255)
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "--kubeconfig", kubeconfig)
    assert r.exit_code == 1 and "credential plugin failed" in r.stderr and "Unable to locate credentials" in r.stderr


def test_hung_credential_plugin_fails_in_seconds(invoke, fake_kube, fixtures: Path, monkeypatch):
    import burstctl.k8s

    monkeypatch.setattr(burstctl.k8s, "credential_timeout", lambda request_timeout: 0.5)
    kubeconfig = fake_kube(fixtures / "idle.yaml", exec_hang_s=4)
    out, took = _run_bounded(lambda: invoke("verify", "-m", "m", "--kubeconfig", kubeconfig), 10)
    r = out["value"]
    assert r.exit_code == 1 and "credential plugin" in r.stderr and "did not finish within 0.5 s" in r.stderr
    assert took < 3


def test_credential_timeout_leaves_interactive_prompts_alone(monkeypatch):
    import burstctl.k8s

    class Tty:
        def isatty(self):
            return True

    assert burstctl.k8s.credential_timeout(10) == 30
    monkeypatch.setattr(burstctl.k8s.sys, "stdin", Tty())
    monkeypatch.setattr(burstctl.k8s.sys, "stdout", Tty())
    assert burstctl.k8s.credential_timeout(10) is None


@pytest.mark.parametrize("text", [
    "clusters: [\n",                                     # not YAML
    "- just\n- a list\n",                                # not a mapping
    "apiVersion: v1\nkind: Config\nclusters: 3\n",       # wrong types
    "apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
    "clusters: [{name: c, cluster: {}}]\nusers: [{name: u, user: {}}]\n",  # no server
    "",                                                  # empty
])
def test_malformed_kubeconfig_is_one_line_naming_the_flag(invoke, tmp_path: Path, text: str):
    bad = tmp_path / "kubeconfig"
    bad.write_text(text)
    r = invoke("verify", "-m", "qwen2-5-1-5b-instruct", "--kubeconfig", bad)
    assert r.exit_code == 2, r.stderr
    assert "--kubeconfig" in r.stderr and "Traceback" not in r.stderr
    r = invoke("timeline", "-m", "qwen2-5-1-5b-instruct", "--kubeconfig", bad, "--json")
    assert r.exit_code == 2 and "Traceback" not in r.stderr


# -- timeouts ----------------------------------------------------------------------------------------------------
def _run_bounded(fn, limit_s: float):
    """Run fn in a thread; fail (instead of hanging the suite) if it does not return within limit_s."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    started = time.monotonic()
    t.start()
    t.join(limit_s)
    assert not t.is_alive(), f"still waiting after {limit_s} s: no timeout on the call"
    return out, time.monotonic() - started


def test_hung_api_server_fails_in_seconds(silent_server: str, tmp_path: Path):
    from kube_fake import write_token_kubeconfig

    kubeconfig = write_token_kubeconfig(tmp_path / "kubeconfig", silent_server)
    out, took = _run_bounded(lambda: KubeClusterReader(kubeconfig=str(kubeconfig), timeout=0.3)
                             .scaled_object("inference", "qwen2-5-1-5b-instruct"), 10)
    err = out.get("error")
    assert isinstance(err, CheckError), out
    assert "did not answer within 0.3 s" in str(err) and "--request-timeout" in str(err)
    assert took < 3


def test_hung_api_server_cli(invoke, silent_server: str, tmp_path: Path):
    from kube_fake import write_token_kubeconfig

    kubeconfig = write_token_kubeconfig(tmp_path / "kubeconfig", silent_server)
    out, _ = _run_bounded(lambda: invoke("verify", "-m", "m", "--kubeconfig", kubeconfig, "--request-timeout",
                                         "0.3"), 10)
    r = out["value"]
    assert r.exit_code == 1 and "did not answer within 0.3 s" in r.stderr
    r = invoke("verify", "-m", "m", "--kubeconfig", kubeconfig, "--request-timeout", "0")
    assert r.exit_code == 2 and "--request-timeout" in r.stderr


def test_bad_input_type_errors_are_bad_input():
    with pytest.raises(BadInput):
        KubeClusterReader(kubeconfig="/nonexistent/kubeconfig")


# -- --json: one document in every case --------------------------------------------------------------------------
def test_json_errors_of_the_cluster_and_aws_commands(invoke, fake_kube, fixtures: Path, tmp_path: Path,
                                                      silent_server: str):
    from kube_fake import write_token_kubeconfig

    bad_kubeconfig = tmp_path / "bad-kubeconfig"
    bad_kubeconfig.write_text("clusters: [\n")
    garbage = tmp_path / "garbage.yaml"
    garbage.write_text("kind: List\nitems: 3\n")
    hung = write_token_kubeconfig(tmp_path / "hung", silent_server)
    expired = fake_kube(fixtures / "idle.yaml", auth="token", token="expired")
    cases = [
        (["verify", "-m", "m", "--kubeconfig", bad_kubeconfig], 2, "--kubeconfig"),
        (["timeline", "-m", "m", "--kubeconfig", bad_kubeconfig], 2, "--kubeconfig"),
        (["verify", "-m", "m", "--kubeconfig", hung, "--request-timeout", "0.2"], 1, "did not answer"),
        (["verify", "-m", "m", "--kubeconfig", expired], 1, "401 Unauthorized"),
        (["verify", "-m", "m", "-f", garbage], 2, "--from-file"),
        (["timeline", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "idle.yaml"], 1, "no pod matches"),
        (["timeline", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "scaled-up.yaml", "--burst-result", garbage], 2,
         "--burst-result"),
        (["preflight", "--stack-file", fixtures / "Pulumi.dev.yaml", "--region", "mars-1"], 2, "--region"),
        (["preflight", "--stack-file", tmp_path / "Pulumi.none.yaml"], 2, "--stack-file"),
        (["sweep", "--cluster-name", "c", "--region", "mars-1"], 2, "--region"),
    ]
    for args, code, message in cases:
        r = invoke(*args, "--json")
        doc = json.loads(r.stdout)  # all of stdout is one document
        assert r.exit_code == code and doc == {"error": doc["error"], "exit_code": code}, (args, r.stdout)
        assert message in doc["error"], (args, doc)


def test_json_results_are_one_document(invoke, fixtures: Path):
    for args in (["verify", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "scaled-up.yaml"],
                 ["verify", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "so-not-ready.yaml"],
                 ["timeline", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "launch-failed.yaml"],
                 ["timeline", "-m", "qwen2-5-1-5b-instruct", "-f", fixtures / "scaled-up.yaml"]):
        r = invoke(*args, "--json")
        doc = json.loads(r.stdout)
        assert "error" not in doc and r.exit_code in (0, 1)
