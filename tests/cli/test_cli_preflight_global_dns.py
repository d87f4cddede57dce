"""`preflight` for a stack with `gateway.globalDns`, against moto's ACM and Route 53: what the program cannot know
before `pulumi up` (the certificate's names and status, the zone's records)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
import yaml

from burstctl import preflight as pf

REGION = "us-west-2"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def acm_issues_at_once(aws_session, monkeypatch):
    # moto issues a requested certificate once MOTO_ACM_VALIDATION_WAIT seconds have passed (default 60).
    monkeypatch.setattr("moto.settings.ACM_VALIDATION_WAIT", -1)


def _clients() -> pf.AwsClients:
    return pf.AwsClients(None, None, None, REGION, None, acm=boto3.client("acm", region_name=REGION),
                         route53=boto3.client("route53", region_name=REGION))


def _cfg(zone: str, record: str, cert: str, **global_dns):
    """Pulumi.prod-us.yaml with this zone, record and certificate."""
    doc = yaml.safe_load((ROOT / "Pulumi.prod-us.yaml").read_text())["config"]
    gw = doc["gpu-burst:gateway"]
    gw["certificateArn"] = cert
    gw["globalDns"] = {"hostedZoneName": zone, "recordName": record, **global_dns}
    from stacks.config import raw_from_values, validate

    raw, lines = raw_from_values({**doc, "gpu-burst:hfToken": {"secure": "v1:x"}})
    assert lines == []
    return validate(raw)


def _zone(name: str, private: bool = False) -> str:
    r53 = boto3.client("route53", region_name=REGION)
    extra = {"VPC": {"VPCRegion": REGION, "VPCId": "vpc-0a1b2c3d"},
             "HostedZoneConfig": {"PrivateZone": True, "Comment": ""}} if private else {}
    return r53.create_hosted_zone(Name=name, CallerReference=name + str(private), **extra)["HostedZone"]["Id"]


def _record(zone_id: str, name: str, **kw) -> None:
    boto3.client("route53", region_name=REGION).change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
        "Changes": [{"Action": "CREATE", "ResourceRecordSet": {"Name": name, "Type": "A", **kw}}]})


def _cert(*names: str) -> str:
    return boto3.client("acm", region_name=REGION).request_certificate(
        DomainName=names[0], SubjectAlternativeNames=list(names))["CertificateArn"]


def _by_name(checks):
    return {c.name: c for c in checks}


def test_wildcard_certificate_and_a_zone_with_the_other_region_pass(acm_issues_at_once, unique):
    zone = f"{unique}.example.com"
    zone_id = _zone(zone)
    # The other regional stack already added its latency record: ours goes next to it.
    _record(zone_id, f"llm.{zone}", SetIdentifier="eu-west-1-prod-eu", Region="eu-west-1", AliasTarget={
        "HostedZoneId": "Z2IFOLAFXWLO4F", "DNSName": "k8s-a-b-c.elb.eu-west-1.amazonaws.com",
        "EvaluateTargetHealth": True})
    cert = _cert(zone, f"*.{zone}")
    got = _by_name(pf.check_global_name(_clients(), _cfg(zone, f"llm.{zone}", cert)))
    assert got["global name certificate"].status == "pass", got["global name certificate"]
    z = got["global name zone"]
    assert z.status == "pass" and z.data["regions"] == ["eu-west-1"], z
    assert z.data["zone_id"] == zone_id.rsplit("/", 1)[1]


def test_certificate_without_the_name_fails(acm_issues_at_once, unique):
    zone = f"{unique}.example.com"
    _zone(zone)
    cert = _cert(f"api.{zone}", f"*.other.{zone}")
    c = _by_name(pf.check_global_name(_clients(), _cfg(zone, f"llm.{zone}", cert)))["global name certificate"]
    assert c.status == "fail"
    assert c.detail == (f"{cert} names *.other.{zone}, api.{zone}, not llm.{zone}: clients of https://llm.{zone}/v1 "
                        "would refuse the TLS handshake")
    assert f"llm.{zone} (or *.{zone})" in c.cause


def test_certificate_still_pending_fails(aws_session, unique):
    zone = f"{unique}.example.com"
    _zone(zone)
    cert = _cert(f"llm.{zone}")
    c = _by_name(pf.check_global_name(_clients(), _cfg(zone, f"llm.{zone}", cert)))["global name certificate"]
    assert c.status == "fail" and c.detail == f"{cert} is PENDING_VALIDATION, not ISSUED"


def test_plain_record_of_the_name_fails(acm_issues_at_once, unique):
    # The record the docs told users to create by hand before globalDns: Route 53 would refuse the latency one.
    zone = f"{unique}.example.com"
    _record(_zone(zone), f"llm.{zone}", TTL=60, ResourceRecords=[{"Value": "198.51.100.7"}])
    got = _by_name(pf.check_global_name(_clients(), _cfg(zone, f"llm.{zone}", _cert(f"llm.{zone}"))))
    z = got["global name zone"]
    assert z.status == "fail" and z.detail.startswith(f"llm.{zone} already has a A record without a set identifier")


def test_missing_or_private_zone_fails(acm_issues_at_once, unique):
    zone = f"{unique}.example.com"
    cert = _cert(f"llm.{zone}")
    z = _by_name(pf.check_global_name(_clients(), _cfg(zone, f"llm.{zone}", cert)))["global name zone"]
    assert (z.status, z.detail) == ("fail", f"no public hosted zone {zone} in this account")
    # By id, a private zone is found, and refused.
    private_id = _zone(zone, private=True).rsplit("/", 1)[1]
    cfg = _cfg(zone, f"llm.{zone}", cert)
    g = cfg.gateway.global_dns.model_copy(update={"hosted_zone_id": private_id, "hosted_zone_name": None})
    cfg = cfg.model_copy(update={"gateway": cfg.gateway.model_copy(update={"global_dns": g})})
    z = _by_name(pf.check_global_name(_clients(), cfg))["global name zone"]
    assert (z.status, z.detail) == ("fail", f"{private_id} ({zone}) is a private hosted zone")


def test_without_global_dns_nothing_is_asked(aws_session):
    from stacks.config import raw_from_values, validate

    raw, _ = raw_from_values({**yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"],
                              "gpu-burst:hfToken": {"secure": "v1:x"}})
    assert pf.check_global_name(pf.AwsClients(None, None, None, REGION, None), validate(raw)) == []


@pytest.mark.parametrize("names, host, ok", [
    (["llm.example.com"], "llm.example.com", True),
    (["*.example.com"], "llm.example.com", True),
    (["*.example.com"], "example.com", False),            # a wildcard never covers the apex
    (["*.example.com"], "a.llm.example.com", False),      # nor more than one label
    (["LLM.Example.com"], "llm.example.com", True),       # names compare without case
    (["example.com", "*.other.com"], "llm.example.com", False),
])
def test_certificate_names(names, host, ok):
    assert pf.certificate_names(names, host) is ok
