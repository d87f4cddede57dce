"""Upgrades keep state: the previous release's program and this tree, evaluated with the same stack files under the
same mocks, must not replace or delete a stateful resource unless CHANGELOG.md documents the migration.

- The previous release is the newest CHANGELOG.md section with a recorded commit; its program comes from git history
  (`git archive <sha>`), so a shallow clone skips with the reason (CI fetches the history and sets
  GPU_BURST_REQUIRE_HISTORY=1, which turns the skip into a failure).
- Stack files: the previous release's own, with the CHANGELOG's "Stack-file changes" applied, because that is what
  an operator keeps across an upgrade. A new key therefore needs a default that leaves existing stacks as they are,
  or a documented stack-file change.
- Variants (tests/upgrade_check.py VARIANTS): a stack file with config merged in, evaluated by both programs once the
  previous release accepts that config; token budgets, whose rate-limit Redis no stack file has.
- Secrets: dev without `apiKey` (the generated-key path, a RandomPassword), the other stacks with one; `hfToken`
  for every stack.
- Each program runs in its own process (tests/upgrade_dump.py); the rules are in tests/upgrade_check.py.
"""

import io
import json
import os
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml

import changelog
import upgrade_check as uc

ROOT = Path(__file__).resolve().parents[1]
DUMP = Path(__file__).resolve().parent / "upgrade_dump.py"
SECRETS = {"hfToken": "hf_upgradeTestToken", "apiKey": "upgrade-test-key"}
GENERATED_KEY_STACKS = {"dev"}
"""Stacks evaluated without `apiKey`, so the gateway generates the key (a RandomPassword that must survive)."""


def _secrets(stack: str) -> dict:
    return {k: v for k, v in SECRETS.items() if not (k == "apiKey" and stack in GENERATED_KEY_STACKS)}


def _git(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, **kw)


def _releases() -> list[changelog.Release]:
    return changelog.load(ROOT / "CHANGELOG.md")


def _require_commit(sha: str) -> None:
    """Skip (or fail in CI) when the release commit is not in this clone's history."""
    found = _git("cat-file", "-e", f"{sha}^{{commit}}").returncode == 0
    if found:
        return
    shallow = _git("rev-parse", "--is-shallow-repository", text=True).stdout.strip()
    how = "a shallow clone: git fetch --unshallow" if shallow == "true" else "not a git checkout, or not fetched"
    why = f"release commit {sha[:12]} is not in this clone's history ({how})"
    if os.environ.get("GPU_BURST_REQUIRE_HISTORY", "") not in ("", "0"):
        pytest.fail(f"GPU_BURST_REQUIRE_HISTORY is set but the {why}")
    pytest.skip(why)


def _program_at(sha: str, dest: Path) -> Path:
    out = _git("archive", "--format=tar", sha)
    if out.returncode:
        raise RuntimeError(f"git archive {sha}: {out.stderr.decode()}")
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _dump_process(program: Path, stacks: list[dict]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.Popen([sys.executable, str(DUMP), "--program", str(program), "--stacks", json.dumps(stacks)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _collect(proc: subprocess.Popen, what: str) -> dict:
    out, err = proc.communicate(timeout=300)
    if proc.returncode:
        raise AssertionError(f"evaluating {what} failed:\n{err[-4000:]}")
    return json.loads(out)


@pytest.fixture(scope="module")
def upgrade(tmp_path_factory):
    """(previous release, newer sections, {stack: (old dump, new dump)})."""
    base, newer = changelog.upgrade_from(_releases())
    _require_commit(base.commit)
    work = tmp_path_factory.mktemp("upgrade")
    old_tree = _program_at(base.commit, work / f"release-{base.version}")
    changes = {}
    for rel in reversed(newer):
        changes.update(rel.stack_file_changes)
    old_stacks, new_stacks = [], []
    for path in sorted(old_tree.glob("Pulumi.*.yaml")):
        stack = path.name.split(".")[1]
        secrets = _secrets(stack)
        doc = yaml.safe_load(path.read_text())
        doc["config"] = changelog.apply_stack_file_changes(doc["config"], changes)
        kept = work / f"Pulumi.{stack}.yaml"
        kept.write_text(yaml.safe_dump(doc))
        old_stacks.append({"stack": stack, "file": str(path), "secrets": secrets})
        new_stacks.append({"stack": stack, "file": str(kept), "secrets": secrets})
    assert old_stacks, f"release {base.version} has no Pulumi.<stack>.yaml"
    # Variants (token budgets: the rate-limit Redis) once the previous release accepts their keys.
    for variant, (stack, patch) in uc.variants_for(base.version).items():
        before = next((s for s in old_stacks if s["stack"] == stack), None)
        if before is None:
            continue
        for stacks, source in ((old_stacks, before["file"]), (new_stacks, str(work / f"Pulumi.{stack}.yaml"))):
            doc = yaml.safe_load(Path(source).read_text())
            doc["config"] = uc.with_patch(doc["config"], patch)
            out = Path(source).parent / f"Pulumi.{variant}.yaml"
            out.write_text(yaml.safe_dump(doc))
            stacks.append({"stack": variant, "file": str(out), "secrets": _secrets(stack)})
    old_proc, new_proc = _dump_process(old_tree, old_stacks), _dump_process(ROOT, new_stacks)
    old = _collect(old_proc, f"release {base.version} ({base.commit[:12]})")
    new = _collect(new_proc, "this tree with the previous release's stack files")
    return base, newer, {s["stack"]: (old[s["stack"]], new[s["stack"]]) for s in old_stacks}


def _migrations(newer: list[changelog.Release]) -> dict[str, str]:
    out = {}
    for rel in newer:
        out.update(rel.migrations)
    return out


# -- the release records ---------------------------------------------------------------------------------------------
def test_changelog_records_releases_in_order():
    releases = _releases()
    assert releases[-1].version == "0.1.0" and releases[-1].commit == "5fe7f71f8518f926ca939ee17c1c614fef1ca2de"
    pending = [r for r in releases if not r.commit]
    assert pending == releases[:len(pending)], "only the newest sections may still be pending"


def test_pyproject_version_is_the_newest_dated_release():
    """Between releases pyproject.toml keeps the last release's version; the release commit sets the new one."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    dated = [r for r in _releases() if r.date]
    assert version == dated[0].version, (
        f"pyproject.toml says {version} but the newest dated CHANGELOG.md section is {dated[0].version}")
    import burstctl
    import components

    assert burstctl.__version__ == components.__version__ == version


def test_recorded_commits_are_those_releases():
    """A recorded commit is in history and its pyproject.toml carries that section's version."""
    for rel in _releases():
        if not rel.commit:
            continue
        _require_commit(rel.commit)
        pyproject = _git("show", f"{rel.commit}:pyproject.toml", text=True, check=True).stdout
        assert tomllib.loads(pyproject)["project"]["version"] == rel.version, rel.commit


# -- the upgrade itself ----------------------------------------------------------------------------------------------
# One test for all stacks: the evaluations are module-scoped, and pytest-xdist would repeat them on every worker that
# receives a test of this module.
def test_upgrade_replaces_or_deletes_no_stateful_resource_undocumented(upgrade):
    base, newer, dumps = upgrade
    assert set(dumps) >= {"dev", "prod"}
    for stack, (old, _) in dumps.items():
        # The comparison must have something to protect, or it passes for the wrong reason.
        assert {"aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "eks:index:Cluster", "eks:index:ManagedNodeGroup",
                "aws:s3/bucket:Bucket", "aws:sqs/queue:Queue", "aws:iam/role:Role", "kubernetes:core/v1:Secret",
                "random:index/randomPassword:RandomPassword"} <= uc.stateful_types(old), stack
    # Both key paths: dev generates its client key (one more password than prod, which takes it from config).
    passwords = {s: sum(r["type"] == "random:index/randomPassword:RandomPassword" for r in old["resources"].values())
                 for s, (old, _) in dumps.items()}
    assert passwords["dev"] == passwords["prod"] + 1
    assert dumps["prod"][0]["snapshotLookups"], "prod's `dataVolumeSnapshotId: auto` lookup is compared"
    assert "aws:cloudwatch/logGroup:LogGroup" in uc.stateful_types(dumps["prod"][0])
    # From the release after the one that introduced token budgets on, the rate-limit Redis is compared too.
    assert set(uc.variants_for(base.version)) <= set(dumps)
    if "prod-budget" in dumps:
        assert {"aws:elasticache/replicationGroup:ReplicationGroup",
                "aws:elasticache/subnetGroup:SubnetGroup"} <= uc.stateful_types(dumps["prod-budget"][0])

    found = [f for stack, (old, new) in dumps.items() for f in uc.compare(stack, old, new)]
    problems = uc.undocumented(found, _migrations(newer))
    assert not problems, (
        f"upgrading from {base.version} ({base.commit[:12]}) would lose state:\n"
        + "\n".join(f"  {p}" for p in problems)
        + "\nKeep the logical name and parent (or add `aliases`), keep the replace-on-change inputs, or document the "
          "migration under '#### Migrations' of the newest CHANGELOG.md section as `- `<type>::<name>` "
          "replaced|deleted: <what the operator does>`.")
    # A Migrations entry that no stack needs is stale: it would excuse a future accident under the same name.
    stale = sorted(set(_migrations(newer)) - {f.key for f in found})
    assert not stale, f"CHANGELOG.md documents migrations that no stack performs: {stale}"

def test_ci_runs_the_upgrade_test_instead_of_skipping_it():
    """A default checkout is one commit deep: CI must fetch the history and make a missing release commit fatal."""
    job = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["jobs"]["test"]
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout.get("with", {}).get("fetch-depth") == 0
    assert job["env"]["GPU_BURST_REQUIRE_HISTORY"] == "1"
