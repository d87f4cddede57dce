"""Several regions behind one name: Pulumi.prod-us.yaml and Pulumi.prod-eu.yaml evaluated with the same keys, each
adding its NLB to one latency-routed Route 53 name, and the hosted-zone lookup that runs before any resource."""

import pytest

from pulumi_mocks import configured_region
from stack_cache import evaluated
from stack_helpers import ROOT, apply_stack_config, evaluate, resolve

KEYS = {"alice": "sk-alice-test-key-value", "bob": "sk-bob-test-key-value"}
SECRETS = {"hfToken": "hf_global_dns_test_token", "apiKeys": KEYS}
STACKS = {"prod-us": "us-west-2", "prod-eu": "eu-west-1"}
NLB_ZONE = {"us-west-2": "Z18D5FSROUN65G", "eu-west-1": "Z2IFOLAFXWLO4F"}
"""Route 53 hosted zone ids of Network Load Balancers, as AWS publishes them ("Elastic Load Balancing endpoints
and quotas", docs.aws.amazon.com/general/latest/gr/elb.html, column "Route 53 Hosted Zone ID (Network Load
Balancers)"). The ALB column (Z1H1FL5HABSF5, Z32O12XQLNTSW2) would make every alias fail to create."""
PUBLIC_ZONE = "Z0123456789ABCDEFGHIJ"
"""The mocked account's public example.com zone (a private zone of the same name exists too)."""
RECORD = "llm.example.com"


@pytest.fixture(scope="module")
def regions():
    """{stack: (mocks, outputs)}, each evaluated as the Pulumi stack of that name."""
    return {s: evaluated(s, secrets=SECRETS, pulumi_stack=s) for s in STACKS}


def _one(mocks, typ):
    found = mocks.of_type(typ)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def _urn(mocks, name):
    return next(u for u in mocks.monitor.resources if u.endswith(f"::{name}"))


def _nlb_hostname(mocks):
    return mocks.state("gpu-burst-edge-nlb")["status"]["loadBalancer"]["ingress"][0]["hostname"]


def test_each_region_aliases_its_own_nlb_with_the_nlb_zone_of_its_region(regions):
    for stack, region in STACKS.items():
        mocks, _ = regions[stack]
        rec = _one(mocks, "aws:route53/record:Record").inputs
        assert (rec["name"], rec["type"], rec["zoneId"]) == (RECORD, "A", PUBLIC_ZONE)
        assert rec["latencyRoutingPolicies"] == [{"region": region}]
        hostname = _nlb_hostname(mocks)
        assert f".elb.{region}.amazonaws.com" in hostname
        assert rec["aliases"] == [{"name": hostname, "zoneId": NLB_ZONE[region], "evaluateTargetHealth": True}]
        # An alias record carries no TTL of its own (Route 53 uses the target's) and no plain values.
        assert "ttl" not in rec and "records" not in rec
        # The zone id is the provider's lookup for NLBs of this region, not a table of ours.
        lookups = [c.args for c in mocks.calls if c.token == "aws:lb/getHostedZoneId:getHostedZoneId"]
        assert lookups == [{"loadBalancerType": "network", "region": region}]


def test_two_regions_with_the_same_keys_share_the_name_with_distinct_set_identifiers(regions):
    records = {s: _one(regions[s][0], "aws:route53/record:Record").inputs for s in STACKS}
    assert {r["name"] for r in records.values()} == {RECORD}
    assert {r["zoneId"] for r in records.values()} == {PUBLIC_ZONE}
    ids = {s: r["setIdentifier"] for s, r in records.items()}
    assert ids == {"prod-us": "us-west-2-prod-us", "prod-eu": "eu-west-1-prod-eu"}
    # Clients use one base URL, whichever region answers; every region takes the same keys.
    outputs = {s: regions[s][1] for s in STACKS}
    assert {resolve(o["globalEndpoint"]) for o in outputs.values()} == {f"https://{RECORD}/v1"}
    assert {resolve(o["endpoint"]) for o in outputs.values()} == {f"https://{RECORD}/v1"}
    assert [resolve(o["apiKeys"]) for o in outputs.values()] == [KEYS, KEYS]
    for stack in STACKS:
        assert f"https://{RECORD}/v1/chat/completions" in resolve(outputs[stack]["curlChatCompletions"])[
            "llama-3-1-8b-instruct"]


def test_health_check_connects_to_the_nlb_listener_over_tcp(regions):
    for stack, region in STACKS.items():
        mocks, _ = regions[stack]
        hc = _one(mocks, "aws:route53/healthCheck:HealthCheck")
        nlb = mocks.named("gpu-burst-edge-nlb").inputs
        (listener,) = nlb["spec"]["ports"]
        assert hc.inputs == {
            # TCP: every HTTP path of the edge answers 401 without a key, which Route 53 counts as a failure.
            "type": "TCP", "fqdn": _nlb_hostname(mocks), "port": listener["port"], "requestInterval": 30,
            "failureThreshold": 3,
            "tags": {"gpu-burst.io/environment": "prod", "Name": f"{RECORD} {region}"}}
        assert listener["port"] == 443
        rec = _one(mocks, "aws:route53/record:Record").inputs
        assert rec["healthCheckId"] == mocks.state(hc.name)["arn"].rsplit("/", 1)[1]


def test_the_record_comes_after_the_nlb_service_and_goes_before_it(regions):
    # Pulumi creates dependencies first and deletes dependents first: the record never points at an NLB that does
    # not exist yet, and it is gone before the Service's delete waits for the LBC to remove the NLB.
    mocks, _ = regions["prod-eu"]
    service = _urn(mocks, "gpu-burst-edge-nlb")
    hc, rec = (mocks.monitor.requests[n] for n in ("gpu-burst-global-dns-health", "gpu-burst-global-dns-record"))
    assert service in hc.dependencies and service in rec.dependencies
    assert service in rec.propertyDependencies["aliases"].urns
    assert service in hc.propertyDependencies["fqdn"].urns
    assert _urn(mocks, "gpu-burst-global-dns-health") in rec.propertyDependencies["healthCheckId"].urns


def test_models_are_staged_to_each_regions_own_store(regions):
    for stack, region in STACKS.items():
        mocks, _ = regions[stack]
        bucket = _one(mocks, "aws:s3/bucket:Bucket")
        jobs = [r for r in mocks.of_type("kubernetes:batch/v1:Job") if r.name.startswith("weights-")]
        assert jobs
        for job in jobs:
            c = job.inputs["spec"]["template"]["spec"]["containers"][0]
            assert c["args"][c["args"].index("--bucket") + 1] == mocks.state(bucket.name)["bucket"]
            assert {"name": "AWS_REGION", "value": region} in c["env"]


def test_the_zone_is_looked_up_before_any_resource(regions):
    for stack in STACKS:
        mocks, _ = regions[stack]
        (i,) = [i for i, c in enumerate(mocks.calls) if c.token == "aws:route53/getZone:getZone"]
        assert mocks.calls[i].args == {"name": "example.com", "privateZone": False}
        assert mocks.resources_at_call[i] == 0


# -- the lookup on its own ---------------------------------------------------------------------------------------
def _resolve(mocks, global_dns: dict):
    """resolve_hosted_zone for Pulumi.prod-us.yaml with another globalDns block (no resource is declared)."""
    import yaml

    from stacks.config import load
    from stacks.global_dns import resolve_hosted_zone

    gw = yaml.safe_load((ROOT / "Pulumi.prod-us.yaml").read_text())["config"]["gpu-burst:gateway"]
    apply_stack_config("prod-us", {"gateway": {**gw, "globalDns": global_dns}}, {"hfToken": "x"})
    return evaluate(lambda: resolve_hosted_zone(load()))


def test_zone_by_id_is_found_and_the_record_may_be_its_apex(mocks):
    zone = _resolve(mocks, {"hostedZoneId": PUBLIC_ZONE, "recordName": "example.com"})
    assert (zone.zone_id, zone.name) == (PUBLIC_ZONE, "example.com")
    assert mocks.created == []


@pytest.mark.parametrize("global_dns, line", [
    ({"hostedZoneName": "example.org", "recordName": "llm.example.org"},
     "gpu-burst:gateway.globalDns.hostedZoneName: no public hosted zone example.org is visible to this stack's AWS "
     "account (no matching Route 53 Hosted Zone found); allowed: a public hosted zone of that account (aws route53 "
     "list-hosted-zones)"),
    ({"hostedZoneId": "Z0987654321KLMNOPQRST", "recordName": "llm.example.com"},
     "gpu-burst:gateway.globalDns.hostedZoneId: Z0987654321KLMNOPQRST (example.com) is a private hosted zone, which "
     "the internet never resolves; allowed: a public hosted zone"),
    ({"hostedZoneId": PUBLIC_ZONE, "recordName": "llm.example.org"},
     f"gpu-burst:gateway.globalDns.recordName: 'llm.example.org' is not in hosted zone {PUBLIC_ZONE} (example.com); "
     "allowed: example.com or a name ending in .example.com"),
], ids=["unknown-name", "private-by-id", "record-outside-zone"])
def test_zone_problems_are_one_line_before_any_resource(mocks, global_dns, line):
    from stacks.config import ConfigError

    with pytest.raises(ConfigError) as e:
        _resolve(mocks, global_dns)
    assert e.value.lines == [line]
    assert mocks.created == []


def test_without_global_dns_there_is_no_lookup_and_no_record(mocks):
    from stacks.config import load
    from stacks.global_dns import resolve_hosted_zone

    apply_stack_config("prod", secrets={"hfToken": "x"})
    assert evaluate(lambda: resolve_hosted_zone(load())) is None
    assert [c.token for c in mocks.calls if "route53" in c.token] == []


def test_record_without_health_check_follows_the_nlb_target_health(mocks):
    import pulumi

    from components.global_dns import GlobalDnsRecord

    apply_stack_config("prod-eu", secrets={"hfToken": "x"})
    assert evaluate(configured_region) == "eu-west-1"
    evaluate(lambda: GlobalDnsRecord("g", {
        "zone_id": PUBLIC_ZONE, "record_name": RECORD, "region": "eu-west-1", "set_identifier": "eu-west-1-x",
        "load_balancer_hostname": pulumi.Output.from_input("k8s-a-b-c.elb.eu-west-1.amazonaws.com")}))
    assert mocks.of_type("aws:route53/healthCheck:HealthCheck") == []
    rec = _one(mocks, "aws:route53/record:Record").inputs
    assert "healthCheckId" not in rec
    assert rec["aliases"] == [{"name": "k8s-a-b-c.elb.eu-west-1.amazonaws.com", "zoneId": "Z2IFOLAFXWLO4F",
                               "evaluateTargetHealth": True}]
