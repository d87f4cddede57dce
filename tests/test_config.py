"""Stack configuration: validated once at the edge, every problem on one `gpu-burst:<path>: …` line,
raised as pulumi.RunError before any resource is declared."""

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


def test_unknown_keys_are_rejected_at_every_level():
    assert errors({"bogus": 1, "network": {"cidrr": "10.0.0.0/16"}}) == [
        "gpu-burst:network.cidrr: unknown key",
        "gpu-burst:bogus: unknown key",
    ]


def test_wrong_types_name_the_key():
    assert errors({"network": {"azCount": "three"}}) == [
        "gpu-burst:network.azCount: Input should be a valid integer, unable to parse string as an integer",
    ]
    assert errors({"cluster": {"endpointPublicAccess": "maybe"}}) == [
        "gpu-burst:cluster.endpointPublicAccess: Input should be a valid boolean, unable to interpret input",
    ]


def test_out_of_range_numbers_and_enums_list_the_allowed_values():
    assert errors({"network": {"azCount": 9, "natGateways": "two"}}) == [
        "gpu-burst:network.azCount: Input should be less than or equal to 6",
        "gpu-burst:network.natGateways: Input should be 'single' or 'perAz' (got 'two')",
    ]
    assert errors({"cluster": {"kubernetesVersion": "1.29"}}) == [
        "gpu-burst:cluster.kubernetesVersion: Input should be '1.35' or '1.36' (got '1.29')",
    ]
    assert errors({"environment": "qa"}) == [
        "gpu-burst:environment: Input should be 'dev', 'staging' or 'prod' (got 'qa')",
    ]


def test_empty_lists_and_inconsistent_sizes():
    assert errors({"systemNodes": {"instanceTypes": []}}) == [
        "gpu-burst:systemNodes.instanceTypes: List should have at least 1 item after validation, not 0",
    ]
    assert errors({"systemNodes": {"desiredSize": 5, "maxSize": 3}}) == [
        "gpu-burst:systemNodes: need minSize <= desiredSize <= maxSize, got 2 <= 5 <= 3",
    ]
    assert errors({"network": {"cidr": "10.0.0.0/8"}}) == [
        "gpu-burst:network.cidr: '10.0.0.0/8' must be an IPv4 CIDR with a prefix from /16 to /20",
    ]


def test_existing_network_needs_its_ids():
    assert errors({"network": {"mode": "existing"}}) == [
        "gpu-burst:network: vpcId is required when mode is 'existing'",
    ]


def test_all_problems_are_reported_together():
    lines = errors({"environment": "qa", "network": {"azCount": 1}, "karpenter": {"chartVersion": "1.13.0"}})
    assert len(lines) == 3
    assert all(line.startswith("gpu-burst:") for line in lines)


def test_cross_section_problems_are_one_line_each():
    lines = errors({"karpenter": {"replicas": 3}, "systemNodes": {"minSize": 2, "desiredSize": 2, "maxSize": 4}})
    assert lines == ["gpu-burst:karpenter.replicas: 3 replicas need as many system nodes (hostname anti-affinity) "
                     "but systemNodes.minSize is 2"]


def test_missing_region_is_reported_before_anything_else(mocks):
    apply_stack_config("dev")
    cfg = pulumi.runtime.config.CONFIG.get()
    del cfg["aws:region"]
    with pytest.raises(ConfigError) as e:
        load()
    assert e.value.lines == ["aws:region: required; run `pulumi config set aws:region us-west-2`"]


def test_bad_config_declares_no_resource(mocks):
    with pytest.raises(Exception) as e:
        evaluate_stack("dev", overrides={"gpu": {"amiFamily": "al2"}})
    assert "gpu-burst:gpu.amiFamily: AL2 is not supported" in str(e.value)
    assert mocks.created == [], "nothing may be half-created"


def test_karpenter_replicas_follow_the_system_node_count():
    assert validate({**BASE, "systemNodes": {"minSize": 1, "desiredSize": 1}}).karpenter_replicas == 1
    assert validate({**BASE, "systemNodes": {"minSize": 2, "desiredSize": 2}}).karpenter_replicas == 2
