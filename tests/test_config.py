"""Stack configuration: validated once at the edge, every problem on one `gpu-burst:<path>: …` line,
raised as pulumi.RunError before any resource is declared."""

import json

import pulumi
import pytest

from stack_helpers import apply_stack_config, evaluate_stack, stack_config
from stacks.config import ConfigError, load, validate

BASE = {"environment": "dev", "region": "us-west-2"}


def errors(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as e:
        validate({**BASE, **raw})
    assert isinstance(e.value, pulumi.RunError), "must surface without a stack trace"
    return e.value.lines


def test_both_stack_files_validate():
    import json

    for stack, secrets in (("dev", None), ("prod", {"hfToken": "x"})):
        raw = {k.split(":", 1)[1]: json.loads(v) if v[:1] in "[{" else v
               for k, v in stack_config(stack, secrets=secrets).items() if k.startswith("gpu-burst:")}
        raw.pop("hfToken", None)
        cfg = validate({**raw, "region": "us-west-2", "hfTokenSet": bool(secrets)})
        assert cfg.environment == stack


def test_dev_and_prod_differ_by_values():
    import json

    dev = {k: v for k, v in stack_config("dev").items()}
    prod = {k: v for k, v in stack_config("prod").items()}
    assert json.loads(dev["gpu-burst:network"])["natGateways"] == "single"
    assert json.loads(prod["gpu-burst:network"])["natGateways"] == "perAz"
    assert json.loads(dev["gpu-burst:systemNodes"])["desiredSize"] == 2
    assert json.loads(prod["gpu-burst:systemNodes"])["minSize"] >= 2
    assert "enabledLogTypes" in json.loads(prod["gpu-burst:cluster"])
    # prod's allow-list is a real one (documentation ranges are refused); 0.0.0.0/0 is the documented default.
    assert json.loads(prod["gpu-burst:cluster"])["publicAccessCidrs"] == ["0.0.0.0/0"]


def test_unknown_keys_are_rejected_at_every_level_and_list_the_valid_keys():
    assert errors({"bogus": 1, "network": {"cidrr": "10.0.0.0/16"}}) == [
        "gpu-burst:network.cidrr: unknown key; valid keys here: mode, cidr, azCount, natGateways, vpcId, "
        "privateSubnetIds, publicSubnetIds, tagExistingSubnets, s3GatewayEndpoint, interfaceEndpoints",
        "gpu-burst:bogus: unknown key; valid keys here: environment, network, cluster, systemNodes, karpenter, gpu, "
        "addons, models, gateway",
    ]


def test_wrong_types_say_the_type_and_how_to_write_it():
    assert errors({"network": {"azCount": "three"}}) == [
        "gpu-burst:network.azCount: expected an integer, got 'three'; write a whole number without quotes, "
        "e.g. azCount: 3",
    ]
    assert errors({"cluster": {"endpointPublicAccess": "maybe"}}) == [
        "gpu-burst:cluster.endpointPublicAccess: expected true or false, got 'maybe'; write endpointPublicAccess: "
        "true or endpointPublicAccess: false",
    ]
    # YAML reads an unquoted 1.35 as a number (and 1.30 as 1.3): the message says to quote it
    assert errors({"cluster": {"kubernetesVersion": 1.35}}) == [
        'gpu-burst:cluster.kubernetesVersion: expected a string, got the number 1.35 (YAML reads it as a number); '
        'quote it, e.g. kubernetesVersion: "1.35"; allowed: \'1.35\' or \'1.36\'',
    ]


def test_out_of_range_numbers_and_enums_list_the_allowed_values():
    assert errors({"network": {"azCount": 9, "natGateways": "two"}}) == [
        "gpu-burst:network.azCount: 9 is out of range; allowed: an integer from 2 to 6",
        "gpu-burst:network.natGateways: 'two' is not allowed; allowed: 'single' or 'perAz'",
    ]
    assert errors({"environment": "qa"}) == [
        "gpu-burst:environment: 'qa' is not allowed; allowed: 'dev', 'staging' or 'prod'",
    ]


def test_empty_lists_and_inconsistent_sizes():
    assert errors({"systemNodes": {"instanceTypes": []}}) == [
        "gpu-burst:systemNodes.instanceTypes: has 0 items; allowed: at least 1",
    ]
    assert errors({"systemNodes": {"desiredSize": 5, "maxSize": 3}}) == [
        "gpu-burst:systemNodes.desiredSize: 5 is outside minSize 2 .. maxSize 3; allowed: minSize <= desiredSize "
        "<= maxSize",
    ]
    assert errors({"network": {"cidr": "10.0.0.0/8"}}) == [
        "gpu-burst:network.cidr: '10.0.0.0/8' has the wrong size; allowed: an IPv4 block with a prefix from /16 "
        "to /20, e.g. 10.0.0.0/16",
    ]


@pytest.mark.parametrize("sizes, line", [
    ({"minSize": 3, "maxSize": 2}, "minSize: 3 is above maxSize 2; allowed: at most 2, or raise maxSize"),
    ({"minSize": 4}, "minSize: 4 is above maxSize 3 (the default); allowed: at most 3, or raise maxSize"),
    ({"maxSize": 1}, "maxSize: 1 is below minSize 2 (the default); allowed: at least 2"),
    ({"minSize": 3}, "minSize: 3 is above desiredSize 2 (the default); allowed: at most 2, or set desiredSize: 3"),
    ({"minSize": 1, "maxSize": 1}, "maxSize: 1 is below desiredSize 2 (the default); allowed: at least 2, or set "
                                   "desiredSize: 1"),
    ({"minSize": 1, "maxSize": 4, "diskSizeGib": "big", "desiredSize": 5},
     "desiredSize: 5 is outside minSize 1 .. maxSize 4; allowed: minSize <= desiredSize <= maxSize"),
])
def test_system_node_sizes_are_reported_on_a_key_the_user_wrote(sizes, line):
    """Never on a key left at its default (the user did not write it, so that is not where to fix it), also on the
    partial section rebuilt around an invalid key."""
    assert f"gpu-burst:systemNodes.{line}" in errors({"systemNodes": sizes})


def test_existing_network_with_default_create_keys_is_valid():
    """The create-mode keys have defaults; only written ones are refused in mode existing."""
    cfg = validate({**BASE, "network": {"mode": "existing", "vpcId": "vpc-0a1b2c3d",
                                        "privateSubnetIds": ["subnet-0a1b2c3d", "subnet-0a1b2c3e"]}})
    assert cfg.network.cidr == "10.0.0.0/16" and cfg.network.az_count == 3 and not cfg.network.interface_endpoints
    assert errors({"network": {"mode": "existing", "vpcId": "vpc-0a1b2c3d", "cidr": "10.0.0.0/16",
                               "privateSubnetIds": ["subnet-0a1b2c3d", "subnet-0a1b2c3e"]}}) == [
        "gpu-burst:network.cidr: is only read when mode is 'create' (the adopted VPC keeps its own CIDR); allowed: "
        "remove it",
    ]


def test_existing_network_needs_its_ids():
    assert errors({"network": {"mode": "existing"}}) == [
        "gpu-burst:network.vpcId: required when mode is 'existing'; allowed: the id of the VPC to adopt, e.g. "
        "vpc-0a1b2c3d4e5f67890",
        "gpu-burst:network.privateSubnetIds: lists 0 subnets; allowed: at least 2, in different AZs, when mode is "
        "'existing'",
    ]


def test_all_problems_are_reported_together():
    lines = errors({"environment": "qa", "network": {"azCount": 1}, "karpenter": {"chartVersion": "1.13.0"}})
    assert len(lines) == 3
    assert all(line.startswith("gpu-burst:") for line in lines)


def test_cross_field_checks_run_although_other_fields_are_invalid():
    """A typo in one field must not hide a cross-field problem elsewhere (pydantic alone skips after-validators
    of a model with an invalid field, and of every model above it)."""
    lines = errors({
        "environment": "qa",
        "systemNodes": {"minSize": 1, "desiredSize": 1, "diskSizeGib": "big"},
        "karpenter": {"replicas": 2},
        "gpu": {"pools": [{"name": "a", "gpusPerNode": [3], "weight": "x"}, {"name": "a"}]},
        "models": [{"servedName": "m", "hfModelId": "x/y", "revision": "0" * 40, "pool": "missing", "cpu": "lots"}],
    })
    assert lines == [
        "gpu-burst:environment: 'qa' is not allowed; allowed: 'dev', 'staging' or 'prod'",
        "gpu-burst:systemNodes.diskSizeGib: expected an integer, got 'big'; write a whole number without quotes, "
        "e.g. diskSizeGib: 50",
        "gpu-burst:gpu.pools[0].weight: expected an integer, got 'x'; write a whole number without quotes, "
        "e.g. weight: 10",
        "gpu-burst:models[0].cpu: 'lots' is not a CPU amount; allowed: a positive Kubernetes quantity such as 4, \"3.5\" "
        "or 3500m (units: no unit, 'm')",
        "gpu-burst:gpu.pools[0].gpusPerNode: no instance of g5, g6 has [3] GPUs (g5: [1, 4, 8]; g6: [1, 4, 8]); "
        "allowed: [1, 4, 8]",
        "gpu-burst:gpu.pools[1].name: 'a' is already the name of pools[0]; allowed: a name unique across gpu.pools",
        "gpu-burst:models[0].pool: 'missing' is not a pool of gpu.pools; allowed: a",
        "gpu-burst:karpenter.replicas: 2 replicas need 2 system nodes (required hostname anti-affinity) but "
        "systemNodes.desiredSize is 1; allowed: at most 1, or raise systemNodes.desiredSize",
    ]


def test_cross_section_problems_are_one_line_each():
    lines = errors({"karpenter": {"replicas": 3}, "systemNodes": {"maxSize": 3, "desiredSize": 2}})
    assert lines == ["gpu-burst:karpenter.replicas: 3 replicas need 3 system nodes (required hostname "
                     "anti-affinity) but systemNodes.desiredSize is 2; allowed: at most 2, or raise "
                     "systemNodes.desiredSize"]


def test_missing_region_is_reported_with_the_command(mocks):
    apply_stack_config("dev")
    cfg = pulumi.runtime.config.CONFIG.get()
    del cfg["aws:region"]
    with pytest.raises(ConfigError) as e:
        load()
    assert e.value.lines == ["aws:region: required but not set; AWS region, read from the AWS provider's key: "
                             "`pulumi config set aws:region us-west-2`."]


def test_region_under_the_project_namespace_is_not_silently_ignored(mocks):
    apply_stack_config("dev", overrides={"gpu-burst:region": "eu-west-1", "gpu-burst:hfTokenSet": "true"})
    with pytest.raises(ConfigError) as e:
        load()
    assert e.value.lines == [
        "gpu-burst:region: is not read (the AWS provider reads aws:region); use aws:region: "
        "`pulumi config rm gpu-burst:region && pulumi config set aws:region <region>`",
        "gpu-burst:hfTokenSet: is set by the program, not by config; remove it: `pulumi config rm "
        "gpu-burst:hfTokenSet` (set the token with `pulumi config set --secret hfToken <token>`)",
    ]


@pytest.mark.parametrize("key, value, line", [
    ("hfToken", "hf_abc", "gpu-burst:hfToken: is in plain text in the stack file; it must be a Pulumi secret: "
                          "`pulumi config set --secret hfToken <token>`"),
    ("apiKey", "sk-abc", "gpu-burst:apiKey: is in plain text in the stack file; it must be a Pulumi secret: "
                         "`pulumi config set --secret apiKey <key>`"),
    ("apiKeys", '{"alice": "sk-abc"}', "gpu-burst:apiKeys: is in plain text in the stack file; a key must be a "
                                       "Pulumi secret: `pulumi config rm gpu-burst:apiKeys` then `pulumi config set "
                                       "--secret --path 'apiKeys.<name>' <key>`"),
])
def test_plaintext_secrets_fail_with_the_command_to_use(mocks, key, value, line):
    apply_stack_config("dev", overrides={f"gpu-burst:{key}": value})
    with pytest.raises(ConfigError) as e:
        load()
    assert e.value.lines == [line]
    assert "hf_abc" not in str(e.value) and "sk-abc" not in str(e.value), "a secret must never reach a log"


def test_secret_keys_as_pulumi_reports_them_are_accepted(mocks, monkeypatch):
    # under mocks: set_all_config(config, secret_keys)
    apply_stack_config("dev", secrets={"hfToken": "hf_abc", "apiKey": "sk-abc"})
    cfg = load()
    assert cfg.hf_token_set is True
    assert "hf_abc" not in cfg.model_dump_json() and "sk-abc" not in cfg.model_dump_json()
    # under `pulumi up`: the language host passes the secret key names in PULUMI_CONFIG_SECRET_KEYS
    apply_stack_config("dev", overrides={"gpu-burst:hfToken": "hf_abc"})
    pulumi.runtime.set_all_config(pulumi.runtime.config.CONFIG.get(), secret_keys=[])
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["gpu-burst:hfToken"]))
    assert load().hf_token_set is True


def test_stack_file_secrets_read_without_decrypting():
    """A stack file's `secure:` values count as secrets; a plain entry in a mapping of keys is named by path."""
    from stacks.config import raw_from_values

    raw, lines = raw_from_values({
        "aws:region": "us-west-2", "gpu-burst:environment": "dev",
        "gpu-burst:hfToken": {"secure": "v1:abc"},
        "gpu-burst:apiKeys": {"alice": {"secure": "v1:def"}, "bob": "sk-plain"},
    })
    # The key names (not the keys) reach the typed config: per-key limits and the edge's Secret are keyed by them.
    assert raw == {"environment": "dev", "region": "us-west-2", "hfTokenSet": True, "apiKeyNames": ["alice", "bob"]}
    assert lines == ["gpu-burst:apiKeys.bob: is in plain text in the stack file; a key must be a Pulumi secret: "
                     "`pulumi config rm gpu-burst:apiKeys` then `pulumi config set --secret --path 'apiKeys.bob' "
                     "<key>`"]


def test_bad_config_declares_no_resource(mocks):
    with pytest.raises(Exception) as e:
        evaluate_stack("dev", overrides={"gpu": {"amiFamily": "al2"}})
    assert "gpu-burst:gpu.amiFamily: AL2 is not supported" in str(e.value)
    assert mocks.created == [], "nothing may be half-created"


def test_karpenter_replicas_follow_the_system_node_count():
    assert validate({**BASE, "systemNodes": {"minSize": 1, "desiredSize": 1}}).karpenter_replicas == 1
    assert validate({**BASE, "systemNodes": {"minSize": 2, "desiredSize": 2}}).karpenter_replicas == 2


def test_every_repeat_names_the_first_occurrence():
    """A name or subnet listed three times gives two lines, both pointing at the first occurrence."""
    lines = errors({
        "gpu": {"pools": [{"name": "a"}, {"name": "a"}, {"name": "a"}]},
        "models": [{"servedName": "m", "hfModelId": "o/m", "revision": "0" * 40, "pool": "a"}] * 3,
        "network": {"mode": "existing", "vpcId": "vpc-0a1b2c3d",
                    "privateSubnetIds": ["subnet-0a1b2c3d", "subnet-0a1b2c3e", "subnet-0a1b2c3d", "subnet-0a1b2c3d"]},
    })
    assert [l for l in lines if "already" in l or "twice" in l] == [
        "gpu-burst:network.privateSubnetIds[2]: 'subnet-0a1b2c3d' is listed twice (privateSubnetIds[0]); allowed: "
        "each subnet once",
        "gpu-burst:network.privateSubnetIds[3]: 'subnet-0a1b2c3d' is listed twice (privateSubnetIds[0]); allowed: "
        "each subnet once",
        "gpu-burst:gpu.pools[1].name: 'a' is already the name of pools[0]; allowed: a name unique across gpu.pools",
        "gpu-burst:gpu.pools[2].name: 'a' is already the name of pools[0]; allowed: a name unique across gpu.pools",
        "gpu-burst:models[1].servedName: 'm' is already used by models[0]; allowed: a servedName unique across "
        "gpu-burst:models",
        "gpu-burst:models[2].servedName: 'm' is already used by models[0]; allowed: a servedName unique across "
        "gpu-burst:models",
    ]


def test_a_failed_lookup_is_reported_in_the_providers_own_words():
    """What a failed invoke raises for real (pulumi/runtime/invoke.py: `invoke of <tok> failed: <grpc error>`, the
    engine's details carrying the provider's gRPC status), reduced to what the provider said."""
    from stacks.config.errors import invoke_reason

    tok = "aws:route53/getZone:getZone"
    raised = Exception(f"invoke of {tok} failed: invocation of {tok} returned an error: rpc error: code = Unknown "
                       "desc = no matching Route 53 Hosted Zone found")
    assert invoke_reason(raised) == "no matching Route 53 Hosted Zone found"
    assert invoke_reason(Exception("")) == "Exception"
