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


WORKFLOW_PERMISSIONS = {
    # Least privilege per workflow: nothing at the top, each job only what it uses.
    "ci.yml": {"contents": "read"},
    "preview.yml": {"contents": "read", "id-token": "write", "pull-requests": "write"},
    "e2e.yml": {"contents": "read", "id-token": "write"},
}
_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<action>[\w.-]+/[\w./-]+)@(?P<ref>\S+)(?:\s+#\s*(?P<tag>\S+))?\s*$")


def _action_pins(name):
    """(action, commit, tag comment) of every `uses:` line, read from the raw text: the comment is not YAML data."""
    return [(m["action"], m["ref"], m["tag"]) for line in (WORKFLOWS / name).read_text().splitlines()
            if (m := _USES.match(line))]


def test_every_workflow_is_tested_here():
    assert sorted(p.name for p in WORKFLOWS.glob("*.y*ml")) == sorted(WORKFLOW_PERMISSIONS)


@pytest.mark.parametrize("name", sorted(WORKFLOW_PERMISSIONS))
def test_workflows_pin_actions_to_commits_and_hold_least_permissions(name):
    doc = _load(name)
    assert doc["jobs"] and all(job.get("steps") for job in doc["jobs"].values())
    uses = [s["uses"] for s in _steps(doc) if "uses" in s]
    pins = _action_pins(name)
    assert [f"{a}@{r}" for a, r, _ in pins] == uses  # every `uses:` was read from the text
    for action, ref, tag in pins:
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{name}: {action}@{ref} is not pinned to a commit"
        assert tag and re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"{name}: {action}@{ref} has no `# vX.Y.Z` comment"
    for step in _steps(doc):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, f"{name}: checkout keeps the token in .git/config"
    assert doc["permissions"] == {}, f"{name}: permissions belong to the jobs"
    for job in doc["jobs"].values():
        assert job["permissions"] == WORKFLOW_PERMISSIONS[name]


def test_one_commit_per_action_version_across_workflows():
    seen = {}
    for name in WORKFLOW_PERMISSIONS:
        for action, ref, tag in _action_pins(name):
            assert seen.setdefault((action, tag), ref) == ref, f"{action} {tag} pinned to two commits"
            assert seen.setdefault(action, tag) == tag, f"{action} pinned at two versions"


def _zizmor():
    exe = shutil.which("zizmor") or str(Path(sys.executable).parent / "zizmor")
    assert os.path.exists(exe), "zizmor is not installed: pip install -r requirements.txt"
    return exe


def test_zizmor_reports_nothing_offline():
    """`zizmor --offline .github/workflows`, as the pinned zizmor in requirements.txt runs it (exit 0, no finding);
    and the same run over a copy with one floating action tag must find it, so this test can fail."""
    assert re.search(r"^zizmor==\d+\.\d+\.\d+$", (ROOT / "requirements.txt").read_text(), re.M)
    out = subprocess.run([_zizmor(), "--offline", "--format", "json", str(WORKFLOWS)], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    findings = json.loads(out.stdout)
    assert out.returncode == 0 and findings == [], [(f["ident"], f["locations"][0]["symbolic"]["key"])
                                                    for f in findings]


def test_zizmor_finds_a_floating_tag_and_a_persisted_token(tmp_path):
    bad = tmp_path / ".github" / "workflows"
    bad.mkdir(parents=True)
    text = (WORKFLOWS / "ci.yml").read_text()
    text = re.sub(r"actions/checkout@[0-9a-f]{40} # \S+", "actions/checkout@v7", text)
    (bad / "ci.yml").write_text(text.replace("          persist-credentials: false\n", "          fetch-depth: 1\n"))
    out = subprocess.run([_zizmor(), "--offline", "--format", "json", str(bad)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode >= 10  # zizmor: 10 + the highest severity found
    assert {f["ident"] for f in json.loads(out.stdout)} >= {"unpinned-uses", "artipacked"}


def test_every_workflow_setting_is_documented():
    text = (ROOT / "docs" / "delivery.md").read_text()
    for name in WORKFLOW_PERMISSIONS:
        used = set(re.findall(r"\$\{\{[^}]*?\b(?:vars|secrets)\.(\w+)", (WORKFLOWS / name).read_text()))
        for setting in used - {"GITHUB_TOKEN"}:
            assert f"`vars.{setting}`" in text or f"`secrets.{setting}`" in text, f"{name}: {setting} undocumented"


def test_e2e_workflow():
    """On demand and weekly, one run at a time and never cancelled (a destroy must finish), OIDC credentials, the
    Pulumi CLI of .pulumi.version, the opt-in test, an always-run clean-up and the report uploaded."""
    doc = _load("e2e.yml")
    assert set(doc["on"]) == {"workflow_dispatch", "schedule"}
    (cron,) = [c["cron"] for c in doc["on"]["schedule"]]
    assert len(cron.split()) == 5 and cron.split()[2:4] == ["*", "*"] and cron.split()[4] != "*"  # weekly
    assert doc["concurrency"]["cancel-in-progress"] is False and "${{" not in doc["concurrency"]["group"]
    (job,) = doc["jobs"].values()
    env = job["env"]
    assert env["GPU_BURST_E2E"] == "1" and "github.run_id" in env["GPU_BURST_E2E_STACK"]
    assert env["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
    steps = job["steps"]
    kinds = [s.get("uses", "").split("@")[0] or s["run"].split()[0] for s in steps]

    def at(kind, start=0):
        return kinds.index(kind, start)

    cli = steps[at("pulumi/actions")]
    assert cli["with"] == {"pulumi-version-file": ".pulumi.version"}  # install only, the pinned version
    creds = steps[at("aws-actions/configure-aws-credentials")]
    assert creds["with"]["role-to-assume"] == "${{ vars.E2E_ROLE_ARN }}" and "if" not in creds
    assert int(creds["with"]["role-duration-seconds"]) >= 60 * 60 * 3
    run = next(i for i, s in enumerate(steps) if "-m pytest" in s.get("run", ""))
    words = shlex.split(steps[run]["run"])
    assert words[words.index("pytest") + 1:] == ["-q", "-s", "-n", "0", "tests/e2e"] and "if" not in steps[run]
    assert at("pulumi/actions") < run and at("aws-actions/configure-aws-credentials") < run
    clean = next(i for i, s in enumerate(steps) if "tests.e2e.cleanup" in s.get("run", ""))
    assert clean > run and "always()" in steps[clean]["if"]
    refresh = at("aws-actions/configure-aws-credentials", run)
    assert refresh < clean and steps[refresh]["if"] == steps[clean]["if"]  # fresh credentials for the destroy
    assert (ROOT / "tests" / "e2e" / "cleanup.py").is_file()
    upload = steps[at("actions/upload-artifact")]
    assert upload["if"] == "always()" and at("actions/upload-artifact") > clean
    assert upload["with"]["path"].rstrip("/") == "e2e-report"
    assert env["GPU_BURST_E2E_REPORT_DIR"] == "${{ github.workspace }}/e2e-report"
    assert steps[run]["timeout-minutes"] + steps[clean]["timeout-minutes"] < job["timeout-minutes"]


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
    (job,) = doc["jobs"].values()
    assert job["if"].replace(" ", "") == "github.event.pull_request.head.repo.full_name==github.repository"
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod", "prod-us", "prod-eu"]
    # Every stack the repository can preview on its own: an existing-cluster example (Pulumi.byo.yaml) reads a
    # cluster that only its team has, so CI previews it nowhere.
    stacks = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml")
                    if (yaml.safe_load(p.read_text())["config"].get("gpu-burst:cluster") or {}).get("mode")
                    != "existing")
    assert sorted(job["strategy"]["matrix"]["stack"]) == stacks
    steps = {s["uses"].split("@")[0]: s for s in job["steps"] if "uses" in s}
    aws = steps["aws-actions/configure-aws-credentials"]
    assert aws["with"]["role-to-assume"] == "${{ vars.PULUMI_PREVIEW_ROLE_ARN }}"
    pulumi = steps["pulumi/actions"]
    w = pulumi["with"]
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


# -- the first hour: README, Python version, pins, CI upstream files, console script, example ---------------------
import functools  # noqa: E402
import http.server  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import tomllib  # noqa: E402

from upstream import (AI_GATEWAY_EG_VALUES, CHART_VALUES, CRD_FILES, LBC_IAM_POLICY, UPSTREAM,  # noqa: E402
                      needs_upstream)

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pins(path):
    return dict(l.split("==", 1) for l in (ROOT / path).read_text().splitlines() if "==" in l and not l.startswith("#"))


def _quick_start():
    text = (ROOT / "README.md").read_text()
    return text.split("## Quick start", 1)[1].split("\n## ", 1)[0]


def test_python_311_everywhere():
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    matrix = _load("ci.yml")["jobs"]["test"]["strategy"]["matrix"]["python-version"]
    assert min(matrix, key=lambda v: tuple(map(int, v.split(".")))) == "3.11"
    assert "Python 3.11+" in _quick_start() and "python3.11 -m venv" in _quick_start()


def test_grafana_sdk_pinned_with_its_epoch():
    """Its versions carry an epoch (a build timestamp): a plain `>=11.6.0` picks the highest epoch, a 10.1 build."""
    (dep,) = [d for d in PYPROJECT["project"]["dependencies"] if d.startswith("grafana-foundation-sdk")]
    pinned = _pins("requirements.txt")["grafana-foundation-sdk"]
    assert re.fullmatch(r"\d+!11\.6\.0", pinned)
    assert dep == f"grafana-foundation-sdk=={pinned}"


def test_quick_start_works_in_order_without_prompts():
    quick = _quick_start()
    version = (ROOT / ".pulumi.version").read_text().strip()
    assert f"Pulumi CLI {version}" in quick and f"--version {version}" in quick
    block = re.search(r"```bash\n(.*?)```", quick, re.S).group(1)
    cmds = [l.strip() for l in block.splitlines() if l.strip() and not l.lstrip().startswith("#")]

    def first(prefix):
        return next(i for i, c in enumerate(cmds) if c.startswith(prefix))

    assert first("export PULUMI_CONFIG_PASSPHRASE=") < first("pulumi stack init dev") < first("pulumi up")
    assert first("venv/bin/python -m burstctl preflight --stack-file Pulumi.dev.yaml") < first("pulumi up")
    assert "pulumi stack output kubeconfig --show-secrets" in quick and "export KUBECONFIG=" in quick
    assert "port-forward svc/gpu-burst-edge-envoy 8080:80" in quick
    assert "export GPU_BURST_API_KEY=$(pulumi stack output apiKey --show-secrets)" in quick
    assert "AWS credentials" in quick and "Service Quotas" in quick


def test_readme_config_error_example_is_the_real_output(mocks):
    """The excerpt and the error block in README's Configuration section: load() on that excerpt (over the dev
    stack file) prints exactly those lines."""
    from stack_helpers import apply_stack_config
    from stacks.config import ConfigError, load

    conf = (ROOT / "README.md").read_text().split("## Configuration", 1)[1]
    excerpt, output = re.findall(r"```(?:yaml)?\n(.*?)```", conf, re.S)[:2]
    overrides = yaml.safe_load(excerpt)
    apply_stack_config("dev", overrides=overrides)
    with pytest.raises(ConfigError) as e:
        load()
    assert "error: " + str(e.value) == output.rstrip("\n")


def test_every_stack_output_the_docs_name_exists(mocks):
    from stack_helpers import evaluate_stack

    outputs = evaluate_stack("dev")
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {m for p in docs for m in re.findall(r"stack output ([A-Za-z]+)", p.read_text())}
    assert {"kubeconfig", "apiKey", "endpoint", "apiKeySecretName"} <= named
    assert named <= set(outputs), sorted(named - set(outputs))


# -- upstream reference files in CI -----------------------------------------------------------------------------
def _manifest():
    rows = [l.split("\t") for l in (ROOT / ".ci" / "upstream-files.tsv").read_text().splitlines()
            if l and not l.startswith("#")]
    return {r[0]: r[1:] for r in rows}


def test_ci_fetches_the_upstream_files_and_requires_them():
    doc = _load("ci.yml")
    job = doc["jobs"]["test"]
    assert job["env"]["GPU_BURST_REQUIRE_UPSTREAM"] == "1" and job["env"]["GPU_BURST_UPSTREAM"]
    runs = [s.get("run", "") for s in job["steps"]]
    fetch = next(i for i, r in enumerate(runs) if r.startswith(".ci/fetch-upstream"))
    test = next(i for i, r in enumerate(runs) if "-m pytest" in r)
    assert fetch < test and '"$GPU_BURST_UPSTREAM"' in runs[fetch]
    # every file the tests read is in the manifest, pinned to a commit with a checksum
    manifest = _manifest()
    needed = set(CRD_FILES.values()) | set(CHART_VALUES.values()) | {"karpenter/cloudformation.yaml",
                                                                      AI_GATEWAY_EG_VALUES, LBC_IAM_POLICY}
    assert needed <= set(manifest), sorted(needed - set(manifest))
    for repo, path, commit, sha in manifest.values():
        assert re.fullmatch(r"[0-9a-f]{40}", commit) and re.fullmatch(r"[0-9a-f]{64}", sha) and "/" in repo


@needs_upstream
def test_manifest_matches_the_reference_copies():
    import hashlib

    for rel, (_, _, _, sha) in _manifest().items():
        assert hashlib.sha256((UPSTREAM / rel).read_bytes()).hexdigest() == sha, rel


@needs_upstream
def test_fetch_script_downloads_and_verifies(tmp_path):
    """.ci/fetch-upstream against a server on 127.0.0.1 laid out like raw.githubusercontent.com
    (/<owner>/<repo>/<commit>/<path>): every file arrives and is checked; a tampered file fails the script."""
    served = tmp_path / "served"
    for rel, (repo, path, commit, _) in _manifest().items():
        dst = served / repo / commit / path
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(UPSTREAM / rel, dst)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    env = {**os.environ, "UPSTREAM_BASE_URL": f"http://127.0.0.1:{httpd.server_port}"}
    try:
        out = subprocess.run([str(ROOT / ".ci" / "fetch-upstream"), str(tmp_path / "got")], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert f"verified {len(_manifest())} upstream reference files" in out.stdout
        assert all((tmp_path / "got" / rel).is_file() for rel in _manifest())
        rel, (repo, path, commit, _) = next(iter(_manifest().items()))
        (served / repo / commit / path).write_text("tampered")
        (tmp_path / "got" / rel).unlink()
        bad = subprocess.run([str(ROOT / ".ci" / "fetch-upstream"), str(tmp_path / "got")], env=env,
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode != 0 and f"checksum mismatch: {tmp_path / 'got' / rel}" in bad.stderr
    finally:
        httpd.shutdown()


def test_required_upstream_files_fail_the_run_when_missing(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_nothing():\n    pass\n")
    env = {**os.environ, "GPU_BURST_REQUIRE_UPSTREAM": "1", "GPU_BURST_UPSTREAM": str(tmp_path / "none")}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--confcutdir", str(ROOT / "tests"), "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
                          str(ROOT / "tests" / "test_delivery.py::test_every_workflow_is_tested_here")],
                         env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode != 0
    assert "GPU_BURST_REQUIRE_UPSTREAM is set but" in out.stdout + out.stderr


# -- the console script without the `cli` extra ------------------------------------------------------------------
def test_console_script_without_cli_extra_prints_a_hint():
    assert PYPROJECT["project"]["scripts"]["burstctl"] == "burstctl.entry:main"
    code = ("import sys; sys.modules['typer'] = None\n"  # as if the cli extra were not installed
            "from burstctl.entry import main\nmain()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2
    assert out.stderr.strip() == ("burstctl needs the operator CLI dependencies: pip install 'gpu-burst[cli]' "
                                  "(missing module: typer)")
    ok = subprocess.run([sys.executable, "-c", "from burstctl.entry import main; import sys; "
                         "sys.argv = ['burstctl', '--help']; main()"], capture_output=True, text=True, timeout=60,
                        cwd=ROOT)
    assert ok.returncode == 0 and "preflight" in ok.stdout
    # `python -m burstctl` takes the same path
    code = "import sys, runpy; sys.modules['rich'] = None; runpy.run_module('burstctl', run_name='__main__')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2 and "pip install 'gpu-burst[cli]' (missing module: rich)" in out.stderr


def test_installed_cli_finds_the_program_modules_it_reuses():
    """`burstctl preflight`/`estimate` reuse the program's typed config and model constants: in a checkout as
    `stacks.config`/`components`, installed as `gpu_burst.config`/`gpu_burst`. Every installed name burstctl falls
    back to must be a package the wheel really ships (pyproject `package-dir` + `packages`)."""
    import inspect
    import tomllib

    import burstctl.program as program

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs, shipped = tool["package-dir"], set(tool["packages"])
    installed = re.findall(r'"(gpu_burst[\w.]*)"\)', inspect.getsource(program))
    assert installed, "burstctl.program names no installed fallback"
    for name in installed:
        package = next((p for p in sorted(shipped, key=len, reverse=True) if name == p or name.startswith(p + ".")),
                       None)
        assert package, f"{name} is in no package the wheel ships ({sorted(shipped)})"
        folder = ROOT / dirs[package] if package in dirs else ROOT / dirs[package.split(".")[0]] / \
            package.split(".", 1)[1].replace(".", "/")
        rest = name[len(package):].lstrip(".").replace(".", "/")
        target = folder / rest if rest else folder
        assert (target / "__init__.py").exists() or target.with_suffix(".py").exists(), (name, target)


def test_installed_config_reads_the_components_constants(tmp_path):
    """The typed config imports the components' request and timeout constants; installed, the components are
    `gpu_burst` and the config `gpu_burst.config`. Lay the packages out as the wheel does (pyproject `package-dir` +
    `packages`, the .py files of each) and validate the dev stack there, with no checkout on the path."""
    import json
    import subprocess
    import sys
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = tool["package-dir"]
    for package in tool["packages"]:
        top = next(p for p in sorted(dirs, key=len, reverse=True) if package == p or package.startswith(p + "."))
        source = ROOT / dirs[top] / package[len(top):].lstrip(".").replace(".", "/")
        target = tmp_path / package.replace(".", "/")
        target.mkdir(parents=True, exist_ok=True)
        for f in source.glob("*.py"):
            (target / f.name).write_bytes(f.read_bytes())
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    code = ("import json, sys\n"
            "import gpu_burst.config as c\n"
            "from gpu_burst.config import component_constants as k\n"
            "assert 'components' not in sys.modules and 'stacks' not in sys.modules\n"
            "raw, lines = c.raw_from_values(json.loads(sys.argv[1]))\n"
            "cfg = c.validate(raw)\n"
            "print(k.keda.__name__, cfg.environment, c.capacity.fit(cfg, 'm6i.large', 2).ok)\n")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(dev)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["gpu_burst.keda", "dev", "True"]


def test_every_package_folder_is_shipped():
    """setuptools installs only the packages pyproject lists: a folder with an `__init__.py` under a `package-dir`
    root that is not listed would be missing from `pip install` (its imports fail there, and only there)."""
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs, shipped = tool["package-dir"], set(tool["packages"])
    roots = {(ROOT / folder).resolve(): name for name, folder in dirs.items()}
    found = set()
    for root, name in roots.items():
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root)
            if "__pycache__" in rel.parts or any((root / Path(*rel.parts[:i])).resolve() in roots
                                                 for i in range(1, len(rel.parts) + 1)):
                continue   # a folder with a package-dir of its own is found under that root
            found.add(".".join([name, *rel.parts]))
    assert found - shipped == set(), f"pyproject.toml [tool.setuptools] packages lacks {sorted(found - shipped)}"
    assert shipped - found == set(), f"pyproject.toml lists packages with no folder: {sorted(shipped - found)}"
