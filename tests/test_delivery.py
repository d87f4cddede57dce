"""CI wiring: the workflow files parse, pin their versions and run the same test command as the README and .ci/run."""

import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
TEST_CMD = ["-m", "pytest", "-q", "tests"]


def _load(name):
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as boolean True
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def _steps(doc):
    return [s for job in doc["jobs"].values() for s in job["steps"]]


def _pytest_args(line):
    """The part of a shell line from `-m pytest` on: `venv/bin/python -m pytest -q tests` -> [-m, pytest, -q, tests]."""
    words = shlex.split(line.split("#", 1)[0])
    i = words.index("-m")
    return words[i:]


def _readme_test_command():
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1]
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", quick, re.S).group(1)
    lines = [l for l in block.splitlines() if "-m pytest" in l and not l.lstrip().startswith("#")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("name", ["ci.yml", "preview.yml"])
def test_workflows_parse(name):
    doc = _load(name)
    assert doc["jobs"] and all(job.get("steps") for job in doc["jobs"].values())
    for step in _steps(doc):
        if "uses" in step:
            assert re.search(r"@v\d+$", step["uses"]), f"{name}: action not pinned to a major: {step['uses']}"


def test_readme_ci_run_and_ci_workflow_share_one_test_command():
    readme = _pytest_args(_readme_test_command())
    ci_run = [l for l in (ROOT / ".ci" / "run").read_text().splitlines()
              if "-m pytest" in l and not l.lstrip().startswith("#")]
    assert len(ci_run) == 1 and _pytest_args(ci_run[0]) == readme == TEST_CMD
    doc = _load("ci.yml")
    assert {"push", "pull_request"} <= set(doc["on"])
    runs = [s["run"] for s in _steps(doc) if "run" in s]
    assert any("pip install -r requirements.txt" in r for r in runs)
    pytest_lines = [l for r in runs for l in r.splitlines() if "-m pytest" in l]
    assert [_pytest_args(l) for l in pytest_lines] == [readme]


def test_preview_workflow():
    doc = _load("preview.yml")
    assert set(doc["on"]) == {"pull_request"}
    assert doc["permissions"]["id-token"] == "write" and doc["permissions"]["pull-requests"] == "write"
    (job,) = doc["jobs"].values()
    assert job["if"].replace(" ", "") == "github.event.pull_request.head.repo.full_name==github.repository"
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    stacks = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
    assert sorted(job["strategy"]["matrix"]["stack"]) == stacks
    steps = {s["uses"].split("@")[0]: s for s in job["steps"] if "uses" in s}
    aws = steps["aws-actions/configure-aws-credentials"]
    assert aws["uses"].endswith("@v6") and aws["with"]["role-to-assume"] == "${{ vars.PULUMI_PREVIEW_ROLE_ARN }}"
    pulumi = steps["pulumi/actions"]
    w = pulumi["with"]
    assert pulumi["uses"] == "pulumi/actions@v7"
    assert w["command"] == "preview" and w["stack-name"] == "${{ matrix.stack }}"
    assert w["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert w["comment-on-pr"] is True and w["policyPacks"] == "policy"
    assert w["pulumi-version-file"] == ".pulumi.version"
    assert (ROOT / w["policyPacks"] / "PulumiPolicy.yaml").exists()
    assert pulumi["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    # dependencies installed before the action (it does not install them): program venv and policy pack venv
    runs = "\n".join(s["run"] for s in job["steps"] if "run" in s)
    assert "venv/bin/pip install -r requirements.txt" in runs and "policy/requirements.txt" in runs
    order = [s.get("uses", "run").split("@")[0] for s in job["steps"]]
    assert order.index("aws-actions/configure-aws-credentials") < order.index("pulumi/actions")


def test_pulumi_cli_version_pinned_and_matches_the_sdk():
    version = (ROOT / ".pulumi.version").read_text().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    pins = dict(l.split("==", 1) for l in (ROOT / "requirements.txt").read_text().splitlines() if "==" in l)
    assert pins["pulumi"] == version, "CLI and Python SDK versions drift: update .pulumi.version with the pulumi pin"
    assert f"pulumi=={version}" in (ROOT / "policy" / "requirements.txt").read_text()
