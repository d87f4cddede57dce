"""The upgrade rules (tests/upgrade_check.py) and the alias resolution of tests/upgrade_dump.py, on small inputs:
each rule is shown to fire on the change it names and to stay quiet on changes that keep state."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import changelog
import upgrade_check as uc
import yaml
from stack_cache import evaluated
from stack_helpers import ROOT

DUMP = Path(__file__).resolve().parent / "upgrade_dump.py"
P = "urn:pulumi:dev::gpu-burst::"


def res(type_, name, inputs, parent="", aliases=(), **kw):
    qualified = f"{parent.split('::')[2]}${type_}" if parent else type_
    return f"{P}{qualified}::{name}", {"type": type_, "name": name, "custom": True, "parent": parent,
                                       "inputs": inputs, "aliases": list(aliases), "replaceOnChanges": [],
                                       "replacementTrigger": None, **kw}


def dump(*resources, lookups=()):
    return {"resources": dict(resources), "snapshotLookups": list(lookups)}


NET = f"{P}gpu-burst:index:Network::gpu-burst"
VPC = res("aws:ec2/vpc:Vpc", "gpu-burst-vpc", {"cidrBlock": "10.40.0.0/16", "tags": {"a": "1"}}, NET)


def findings(old, new):
    return [(f.verb, f.key) for f in uc.compare("dev", old, new)]


def test_same_program_finds_nothing():
    assert findings(dump(VPC), dump(VPC)) == []


def test_a_replace_on_change_input_is_a_replacement_and_other_inputs_are_not():
    urn, vpc = VPC
    assert findings(dump(VPC), dump((urn, {**vpc, "inputs": {**vpc["inputs"], "tags": {"a": "2"}}}))) == []
    changed = (urn, {**vpc, "inputs": {**vpc["inputs"], "cidrBlock": "10.41.0.0/16"}})
    assert findings(dump(VPC), dump(changed)) == [("replaced", "aws:ec2/vpc:Vpc::gpu-burst-vpc")]


def test_a_vanished_urn_is_a_deletion_unless_aliased():
    urn, vpc = VPC
    renamed = res("aws:ec2/vpc:Vpc", "gpu-burst-network", vpc["inputs"], NET)
    assert findings(dump(VPC), dump(renamed)) == [("deleted", "aws:ec2/vpc:Vpc::gpu-burst-vpc")]
    aliased = res("aws:ec2/vpc:Vpc", "gpu-burst-network", vpc["inputs"], NET, aliases=[urn])
    assert findings(dump(VPC), dump(aliased)) == []
    # An alias keeps the identity, not the inputs: a changed CIDR under the new name is still a replacement.
    moved = res("aws:ec2/vpc:Vpc", "gpu-burst-network", {"cidrBlock": "10.9.0.0/16"}, NET, aliases=[urn])
    assert findings(dump(VPC), dump(moved)) == [("replaced", "aws:ec2/vpc:Vpc::gpu-burst-vpc")]


def test_stateless_resources_come_and_go_freely():
    route = res("aws:ec2/routeTable:RouteTable", "gpu-burst-private-rt", {"vpcId": "vpc-1"}, NET)
    assert findings(dump(VPC, route), dump(VPC)) == []
    assert findings(dump(VPC), dump(VPC, route)) == []


def test_a_provider_generated_name_replaced_by_a_chosen_one_is_a_replacement():
    old = res("aws:sqs/queue:Queue", "gpu-burst-interruption", {"messageRetentionSeconds": 300.0})
    new = res("aws:sqs/queue:Queue", "gpu-burst-interruption", {"messageRetentionSeconds": 300.0,
                                                                 "name": "gpu-burst-dev-interruption"})
    assert findings(dump(old), dump(new)) == [("replaced", "aws:sqs/queue:Queue::gpu-burst-interruption")]


def test_secret_content_replaces_but_labels_do_not():
    md = {"namespace": "inference", "labels": {"a": "1"}}
    old = res("kubernetes:core/v1:Secret", "keys", {"metadata": md, "type": "Opaque", "stringData": {"default": "k"}})
    relabelled = res("kubernetes:core/v1:Secret", "keys", {"metadata": {**md, "labels": {"a": "2"}},
                                                            "type": "Opaque", "stringData": {"default": "k"}})
    rekeyed = res("kubernetes:core/v1:Secret", "keys", {"metadata": md, "type": "Opaque",
                                                         "stringData": {"client-a": "k"}})
    assert findings(dump(old), dump(relabelled)) == []
    assert findings(dump(old), dump(rekeyed)) == [("replaced", "kubernetes:core/v1:Secret::keys")]


def test_every_input_of_a_generated_password_replaces_it():
    old = res("random:index/randomPassword:RandomPassword", "key", {"length": 48.0, "special": False})
    new = res("random:index/randomPassword:RandomPassword", "key", {"length": 48.0, "special": False, "upper": True})
    assert findings(dump(old), dump(new)) == [("replaced", "random:index/randomPassword:RandomPassword::key")]


def test_node_group_presence_and_removal_modes():
    base = {"instanceTypes": ["m6i.large"], "operatingSystem": "AL2023", "kubeletExtraArgs": "--a=1"}
    old = res("eks:index:ManagedNodeGroup", "system", base)
    content = res("eks:index:ManagedNodeGroup", "system", {**base, "kubeletExtraArgs": "--a=2"})
    dropped = res("eks:index:ManagedNodeGroup", "system", {k: v for k, v in base.items() if k != "kubeletExtraArgs"})
    # Changed user data only versions the launch template; dropping it removes the template (a new node group).
    assert findings(dump(old), dump(content)) == []
    assert findings(dump(old), dump(dropped)) == [("replaced", "eks:index:ManagedNodeGroup::system")]
    cluster = res("eks:index:Cluster", "eks", {"name": "c", "encryptionConfigKeyArn": "arn:k"})
    unencrypted = res("eks:index:Cluster", "eks", {"name": "c"})
    assert findings(dump(unencrypted), dump(cluster)) == []          # envelope encryption is added in place
    assert findings(dump(cluster), dump(unencrypted)) == [("replaced", "eks:index:Cluster::eks")]


def test_the_rate_limit_redis_is_replaced_by_a_new_port_or_a_lower_engine_version_only():
    base = {"engine": "valkey", "engineVersion": "8.1", "port": 6379.0, "nodeType": "cache.t4g.micro",
            "subnetGroupName": "gpu-burst-rate-limit-subnets-1a2b3c4"}
    old = res("aws:elasticache/replicationGroup:ReplicationGroup", "gpu-burst-rate-limit-cache", base)
    key = ("replaced", "aws:elasticache/replicationGroup:ReplicationGroup::gpu-burst-rate-limit-cache")

    def new(**inputs):
        return res("aws:elasticache/replicationGroup:ReplicationGroup", "gpu-burst-rate-limit-cache",
                   {**base, **inputs})
    assert findings(dump(old), dump(new(engineVersion="8.2", nodeType="cache.t4g.small"))) == []  # in place
    assert findings(dump(old), dump(new(engineVersion="8.10"))) == []
    assert findings(dump(old), dump(new(engineVersion="8.0"))) == [key]
    assert findings(dump(old), dump(new(engineVersion="7.2"))) == [key]
    assert findings(dump(old), dump(new(port=6380.0))) == [key]
    assert findings(dump(old), dump(new(subnetGroupName="other"))) == [key]
    group = res("aws:elasticache/subnetGroup:SubnetGroup", "gpu-burst-rate-limit-subnets",
                {"subnetIds": ["subnet-1", "subnet-2"]})
    moved = res("aws:elasticache/subnetGroup:SubnetGroup", "gpu-burst-rate-limit-subnets",
                {"subnetIds": ["subnet-3", "subnet-4"]})
    assert findings(dump(group), dump(moved)) == []  # ModifyCacheSubnetGroup


def test_variants_apply_once_the_previous_release_accepts_their_keys():
    assert uc.variants_for("0.1.0") == {}
    assert set(uc.variants_for("0.2.0")) == set(uc.variants_for("1.0.0")) == {"prod-budget", "dev-budget"}
    assert uc.with_patch({"gpu-burst:gateway": {"public": False, "keys": {"a": {}}}, "aws:region": "x"},
                         {"gpu-burst:gateway": {"keys": {"default": {"tokensPerDay": 1}}}}) == {
        "gpu-burst:gateway": {"public": False, "keys": {"a": {}, "default": {"tokensPerDay": 1}}}, "aws:region": "x"}


STACKS = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))


@pytest.mark.parametrize("name", [*STACKS, *sorted(uc.VARIANTS)])
def test_every_type_the_program_registers_is_judged_stateful_or_not(name):
    """Every resource type the program can register (each stack file, and the variants with a token budget, whose
    Redis no stack file has) is in REPLACE_ON_CHANGE or has a reason not to be: a new type is judged when it is
    added, so the next release's upgrade test protects it."""
    stack, patch = (name, {}) if name in STACKS else (uc.VARIANTS[name][0], uc.VARIANTS[name][2])
    raw = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    overrides = {k: v for k, v in uc.with_patch(raw, patch).items() if k in patch}
    secrets = {"hfToken": "hf_classify", **({} if stack == "dev" else {"apiKey": "classify-key"})}
    mocks, _ = evaluated(stack, overrides, secrets)
    types = {c.typ for c in mocks.created if not c.typ.startswith(("gpu-burst:", "pulumi:"))}
    verdicts = uc.classify(types)
    assert [t for t, v in verdicts.items() if v == "unclassified"] == [], name
    stateful = {t for t, v in verdicts.items() if v == "stateful"}
    if name == "prod-budget":
        assert {"aws:elasticache/replicationGroup:ReplicationGroup", "aws:elasticache/subnetGroup:SubnetGroup",
                "random:index/randomPassword:RandomPassword", "kubernetes:core/v1:Secret"} <= stateful
    if name == "dev-budget":
        redis = [c for c in mocks.created if c.typ == "kubernetes:core/v1:Secret"
                 and c.name.startswith(("gpu-burst-rate-limit", "gpu-burst-edge-rate-limit"))]
        assert len(redis) == 3 and "kubernetes:core/v1:Namespace" in stateful, [c.name for c in redis]


def test_replace_on_changes_and_replacement_trigger_of_the_new_program_count():
    urn, vpc = VPC
    tagged = (urn, {**vpc, "inputs": {**vpc["inputs"], "tags": {"a": "2"}}, "replaceOnChanges": ["tags"]})
    assert findings(dump(VPC), dump(tagged)) == [("replaced", "aws:ec2/vpc:Vpc::gpu-burst-vpc")]
    triggered = (urn, {**vpc, "replacementTrigger": "v2"})
    assert findings(dump(VPC), dump(triggered)) == [("replaced", "aws:ec2/vpc:Vpc::gpu-burst-vpc")]


def test_snapshots_the_previous_release_built_must_still_be_found():
    lookup = {"owners": ["self"], "filters": [{"name": "tag:gpu-burst.io/image-snapshot", "values": ["abc"]},
                                              {"name": "status", "values": ["completed"]}]}
    other = {"owners": ["self"], "filters": [{"name": "tag:gpu-burst.io/image-snapshot", "values": ["def"]},
                                             {"name": "status", "values": ["completed"]}]}
    extra = {"owners": ["self"], "filters": [*lookup["filters"], {"name": "tag:gpu-burst.io/arch", "values": ["x"]}]}
    assert findings(dump(lookups=[lookup]), dump(lookups=[lookup])) == []
    assert findings(dump(lookups=[lookup]), dump(lookups=[other])) == [("replaced", uc.SNAPSHOT_KEY)]
    # A new required tag that old snapshots do not carry loses them too.
    assert findings(dump(lookups=[lookup]), dump(lookups=[extra])) == [("replaced", uc.SNAPSHOT_KEY)]


def test_documented_migrations_excuse_exactly_their_resource_and_verb():
    urn, vpc = VPC
    found = uc.compare("dev", dump(VPC), dump((urn, {**vpc, "inputs": {"cidrBlock": "10.41.0.0/16"}})))
    assert uc.undocumented(found, {"aws:ec2/vpc:Vpc::gpu-burst-vpc": "replaced"}) == []
    assert uc.undocumented(found, {"aws:ec2/vpc:Vpc::gpu-burst-vpc": "deleted"}) == found
    assert uc.undocumented(found, {"aws:ec2/vpc:Vpc::other": "replaced"}) == found


# -- CHANGELOG.md format -------------------------------------------------------------------------------------------
SHA = "5fe7f71f8518f926ca939ee17c1c614fef1ca2de"


def section(version, when, commit, extra=""):
    return f"## {version} ({when})\n\nCommit: {commit}\n\n### Upgrading\n\nText.\n{extra}\n"


def test_changelog_parses_migrations_and_stack_file_changes():
    extra = ("\n#### Stack-file changes\n\n- `gpu-burst:cluster.addonVersions`: `{\"coredns\": \"v1\"}` — why\n"
             "\n#### Migrations\n\n- `aws:s3/bucket:Bucket::gpu-burst-models-bucket` replaced: copy the weights\n")
    rels = changelog.parse(section("0.2.0", "unreleased", "pending", extra) + section("0.1.0", "2026-12-02", SHA))
    base, newer = changelog.upgrade_from(rels)
    assert base.version == "0.1.0" and [r.version for r in newer] == ["0.2.0"]
    assert newer[0].migrations == {"aws:s3/bucket:Bucket::gpu-burst-models-bucket": "replaced"}
    assert newer[0].stack_file_changes == {"gpu-burst:cluster.addonVersions": {"coredns": "v1"}}
    cfg = changelog.apply_stack_file_changes({"gpu-burst:cluster": {"name": "x"}}, newer[0].stack_file_changes)
    assert cfg == {"gpu-burst:cluster": {"name": "x", "addonVersions": {"coredns": "v1"}}}
    kept = changelog.apply_stack_file_changes({"gpu-burst:cluster": {"addonVersions": {}}},
                                              newer[0].stack_file_changes)
    assert kept == {"gpu-burst:cluster": {"addonVersions": {}}}, "a value the operator set is kept"


@pytest.mark.parametrize("text, message", [
    (section("0.1.0", "2026-12-02", "5fe7f71"), "exactly one 'Commit"),
    (section("0.1.0", "unreleased", SHA), "still '(unreleased)'"),
    (section("0.1.0", "2026-12-02", SHA).replace("### Upgrading", "### Notes"), "no '### Upgrading'"),
    (section("0.1.0", "2026-12-02", SHA) + section("0.2.0", "unreleased", "pending"), "newest first"),
    (section("0.2.0", "2026-12-09", SHA) + section("0.1.0", "2026-12-02", "pending"), "is not"),
    (section("0.2.0", "unreleased", "pending", "\n#### Migrations\n\n- the bucket, replaced\n"), "is not '- `<type>"),
    ("## Unreleased\n", "is not '## <major.minor.patch>"),
])
def test_changelog_format_errors_name_the_section(text, message):
    with pytest.raises(changelog.ChangelogError, match=message.replace("(", r"\(").replace(")", r"\)")):
        changelog.parse(text)


# -- alias resolution through the real SDK ------------------------------------------------------------------------
PROGRAMS = {
    "before": """
        box = Box("keys")
        random.RandomPassword("top", length=8)
    """,
    # The component is renamed (its child's name follows it) and the top-level password moves into it.
    "aliased": """
        box = Box("vault", opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="keys")]))
        random.RandomPassword("top", length=8, opts=pulumi.ResourceOptions(
            parent=box, aliases=[pulumi.Alias(parent=None)]))
    """,
    "unaliased": """
        box = Box("vault")
        random.RandomPassword("top", length=8, opts=pulumi.ResourceOptions(parent=box))
    """,
}
PROGRAM = """
import pulumi
import pulumi_random as random


class Box(pulumi.ComponentResource):
    def __init__(self, name, opts=None):
        super().__init__("test:index:Box", name, None, opts)
        random.RandomPassword(f"{{name}}-key", length=16, opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({{}})


def build(cfg):
{body}
"""


@pytest.fixture(scope="module")
def alias_dumps(tmp_path_factory):
    procs = {}
    for variant, body in PROGRAMS.items():
        root = tmp_path_factory.mktemp(variant)
        (root / "stacks" / "config").mkdir(parents=True)
        (root / "stacks" / "__init__.py").write_text("")
        (root / "stacks" / "config" / "__init__.py").write_text("def load():\n    return None\n")
        (root / "stacks" / "main.py").write_text(PROGRAM.format(body=textwrap.indent(textwrap.dedent(body), "    ")))
        (root / "Pulumi.dev.yaml").write_text("config: {}\n")
        stacks = json.dumps([{"stack": "dev", "file": str(root / "Pulumi.dev.yaml")}])
        procs[variant] = subprocess.Popen([sys.executable, str(DUMP), "--program", str(root), "--stacks", stacks],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {}
    for variant, p in procs.items():
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        out[variant] = json.loads(stdout)["dev"]
    return out


def test_aliases_are_resolved_as_the_engine_resolves_them(alias_dumps):
    # One test on the module-scoped evaluations, so that pytest-xdist runs them once.
    before, aliased = alias_dumps["before"], alias_dumps["aliased"]
    assert set(before["resources"]) == {
        f"{P}test:index:Box::keys", f"{P}test:index:Box$random:index/randomPassword:RandomPassword::keys-key",
        f"{P}random:index/randomPassword:RandomPassword::top"}
    child = aliased["resources"][f"{P}test:index:Box$random:index/randomPassword:RandomPassword::vault-key"]
    # Inherited from the parent's alias, with the parent's old name in place of the new prefix.
    assert f"{P}test:index:Box$random:index/randomPassword:RandomPassword::keys-key" in child["aliases"]
    moved = aliased["resources"][f"{P}test:index:Box$random:index/randomPassword:RandomPassword::top"]
    assert f"{P}random:index/randomPassword:RandomPassword::top" in moved["aliases"]
    assert uc.compare("dev", before, aliased) == []
    # Without the aliases, the same change deletes both passwords.
    found = sorted((f.verb, f.key) for f in uc.compare("dev", before, alias_dumps["unaliased"]))
    assert found == [("deleted", "random:index/randomPassword:RandomPassword::keys-key"),
                     ("deleted", "random:index/randomPassword:RandomPassword::top")]
