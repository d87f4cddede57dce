"""`--json`: every outcome of every command, errors included, is exactly one JSON document on stdout."""

from __future__ import annotations

import json

import pytest


def _one_document(stdout: str) -> dict:
    doc = json.loads(stdout)  # the whole of stdout: one document, nothing before or after it
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize("args, code, message", [
    # parser errors (click), before the command runs
    (["burst", "--url", "http://127.0.0.1:9", "-m", "m", "-c", "0"], 2, "'--concurrency'"),
    (["burst", "-m", "m"], 2, "'--url'"),
    (["verify", "-m", "m", "--no-such-flag"], 2, "--no-such-flag"),
    (["timeline", "--no-such-flag"], 2, "--no-such-flag"),
    (["preflight"], 2, "'--stack-file'"),
    (["sweep", "--region", "us-west-2"], 2, "'--cluster-name'"),
    # bad input found by the command
    (["burst", "--url", "http://127.0.0.1:9", "-m", "m", "--out", "r.txt"], 2, "--out"),
    (["burst", "--url", "http://", "-m", "m"], 2, "--url"),
    (["verify", "-m", "m", "--selector", "app"], 2, "--selector"),
    (["sweep", "--cluster-name", "bad name!", "--region", "us-west-2"], 2, "--cluster-name"),
])
def test_errors_are_one_json_document_with_the_exit_code(invoke, monkeypatch, args, code: int, message: str):
    monkeypatch.delenv("BURSTCTL_URL", raising=False)
    r = invoke(*args, "--json")
    assert r.exit_code == code
    doc = _one_document(r.stdout)
    assert set(doc) == {"error", "exit_code"} and doc["exit_code"] == code
    assert message in doc["error"]


def test_an_internal_error_is_still_one_json_document(invoke, monkeypatch):
    import burstctl.burst

    async def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(burstctl.burst, "run_burst", boom)
    r = invoke("burst", "--url", "http://127.0.0.1:9", "-m", "m", "--json")
    assert r.exit_code == 1
    assert _one_document(r.stdout) == {"error": "internal error: RuntimeError: boom", "exit_code": 1}
    assert "Traceback" in r.stderr  # kept for the bug report, away from stdout


def test_a_run_is_one_json_document(invoke, stub):
    s = stub(tokens=1)
    r = invoke("burst", "--url", s.url, "-m", "m", "-n", 2, "-c", 2, "--json")
    assert r.exit_code == 0
    doc = _one_document(r.stdout)
    assert doc["summary"]["succeeded"] == 2 and "error" not in doc


def test_without_json_errors_stay_human(invoke):
    r = invoke("burst", "--url", "http://127.0.0.1:9", "-m", "m", "-c", "0")
    assert r.exit_code == 2 and r.stdout == ""
    assert "Invalid value for '--concurrency'" in r.stderr


def test_a_missing_dependency_names_the_install_command(invoke, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "aiohttp", None)  # `import aiohttp` now raises ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "burstctl.burst", raising=False)
    r = invoke("burst", "--url", "http://127.0.0.1:9", "-m", "m", "--json")
    assert r.exit_code == 2
    assert _one_document(r.stdout)["error"].startswith("missing Python module 'aiohttp': pip install 'gpu-burst[cli]'")
