"""Config of `gateway.globalDns`: one name that several regional stacks serve, each stack adding its NLB as a
latency-routed Route 53 record. What the config alone can judge is checked here; whether the hosted zone exists and
is public is looked up before any resource is declared (stacks/global_dns.py); whether the certificate names the
record is checked by `burstctl preflight` (docs/regions.md)."""

import re
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field, model_validator

from .base import Problems, Strict, pattern_type

_HOST = re.compile(r"([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", re.ASCII)


def _host_name(v: str) -> str:
    # Route 53 stores names in lowercase without the final dot; the config takes them the same way, so a name
    # compares equal to the certificate's and the zone's.
    if not _HOST.fullmatch(v) or len(v) > 253:
        raise ValueError(f"'{v}' is not a DNS host name; allowed: lowercase labels separated by dots, without a "
                         "final dot, e.g. llm.example.com")
    return v


HostName = Annotated[str, AfterValidator(_host_name)]
"""A fully qualified host name, lowercase, no final dot, no wildcard."""

ZoneId = pattern_type(r"Z[A-Z0-9]{1,31}", "a Route 53 hosted zone id", "Z0123456789ABCDEFGHIJ (without /hostedzone/)")

def in_zone(record: str, zone: str) -> bool:
    """Whether `record` is the zone's apex or a name below it."""
    zone = zone.rstrip(".").lower()
    return record == zone or record.endswith("." + zone)


class GlobalDnsHealthCheckConfig(Strict):
    """The Route 53 health check of this region's record: a TCP connection to the NLB's port 443 from Route 53's
    checkers around the world (an HTTPS check would need a path that answers 2xx without an API key; the edge has
    none)."""

    enabled: bool = True
    """false: no Route 53 health check; the record follows only the NLB's target health (evaluateTargetHealth)."""
    request_interval: Literal[10, 30] = 30
    """Seconds between two checks of one Route 53 checker (10 is the faster, dearer interval); fixed at creation."""
    failure_threshold: Annotated[int, Field(ge=1, le=10)] = 3
    """Consecutive failed (or passed) checks before a checker changes its view of the region."""


class GlobalDnsConfig(Strict):
    """`gateway.globalDns`: this stack's NLB answers `recordName` for the clients nearest its region (Route 53
    latency routing), as long as it is healthy. Every regional stack of the name sets the same block."""

    hosted_zone_id: Optional[ZoneId] = None
    """Public Route 53 hosted zone of recordName, by id (or give hostedZoneName)."""
    hosted_zone_name: Optional[HostName] = None
    """Public Route 53 hosted zone of recordName, by name, e.g. example.com (or give hostedZoneId)."""
    record_name: HostName
    """The one name clients use in every region, e.g. llm.example.com; the base URL is https://<recordName>/v1."""
    health_check: GlobalDnsHealthCheckConfig = GlobalDnsHealthCheckConfig()

    @model_validator(mode="after")
    def _one_zone(self):
        if (self.hosted_zone_id is None) == (self.hosted_zone_name is None):
            what = "both hostedZoneId and hostedZoneName are set" if self.hosted_zone_id else \
                "neither hostedZoneId nor hostedZoneName is set"
            raise Problems(("", f"{what}; allowed: one of them, e.g. hostedZoneName: example.com"))
        return self

    @model_validator(mode="after")
    def _record_in_zone(self):
        zone = self.hosted_zone_name
        if zone is not None and not in_zone(self.record_name, zone):
            raise Problems(("recordName", f"'{self.record_name}' is not in hosted zone {zone}; allowed: {zone} or "
                                          f"a name ending in .{zone}"))
        return self


def gateway_problems(public: bool, allowed_cidrs: list, domain: Optional[str],
                     global_dns: GlobalDnsConfig) -> list[tuple[str, str]]:
    """(path relative to `gateway`, message) for each way the rest of the gateway section defeats globalDns."""
    out = []
    if not public:
        # Route 53's checkers and the clients a public record serves are on the internet; an internal NLB's
        # addresses are private. A CloudWatch-alarm health check could watch it, but nobody outside could connect.
        out.append(("globalDns", "needs an internet-facing NLB: Route 53 health checkers and the clients of a public "
                                 "record reach it from the internet, and an internal NLB has only private addresses; "
                                 "allowed: gateway.public: true (with gateway.certificateArn), or no globalDns"))
    if domain is not None and domain != global_dns.record_name:
        out.append(("domain", f"'{domain}' differs from globalDns.recordName '{global_dns.record_name}', the one name "
                              "clients use and the certificate must name in every region; allowed: "
                              f"{global_dns.record_name}, or leave domain unset"))
    if public and global_dns.health_check.enabled and allowed_cidrs and not any(
            c in ("0.0.0.0/0", "::/0") for c in allowed_cidrs):
        # The LBC writes loadBalancerSourceRanges into the NLB's security group: checkers outside it time out.
        out.append(("allowedCidrs", f"{list(allowed_cidrs)} keep Route 53's health checkers out of the NLB, so this "
                                    "region's health check would always fail; allowed: no allowedCidrs "
                                    "(every request still needs an API key), or globalDns.healthCheck.enabled: false "
                                    "(the record then follows only the NLB's target health)"))
    return out
