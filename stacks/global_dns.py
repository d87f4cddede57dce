"""Several regions behind one name: the public hosted zone of `gateway.globalDns`, looked up before any resource is
declared, and this region's latency record in it."""

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_aws as aws

from components.edge_gateway import EdgeGateway
from components.global_dns import GlobalDnsRecord

from .config import ConfigError, StackConfig
from .config.errors import NAMESPACE, invoke_reason
from .config.global_dns import in_zone


@dataclass(frozen=True)
class HostedZone:
    """The public hosted zone the records of every region go into."""

    zone_id: str
    name: str
    """Without the final dot."""


def resolve_hosted_zone(cfg: StackConfig) -> Optional[HostedZone]:
    """The hosted zone of `gateway.globalDns` (None without globalDns). A zone that this stack's AWS credentials do
    not see, a private zone, or one that cannot hold the record is one config error, before any resource."""
    g = cfg.gateway.global_dns
    if g is None:
        return None
    key, value = ("hostedZoneId", g.hosted_zone_id) if g.hosted_zone_id else ("hostedZoneName", g.hosted_zone_name)
    at = f"{NAMESPACE}:gateway.globalDns.{key}"
    try:
        # By name the provider only matches public zones (private_zone false), by id it returns either kind
        # (hashicorp/terraform-provider-aws internal/service/route53/zone_data_source.go).
        zone = (aws.route53.get_zone(zone_id=value) if g.hosted_zone_id
                else aws.route53.get_zone(name=value, private_zone=False))
    except Exception as e:  # noqa: BLE001 - a failed invoke is a plain Exception carrying the provider's message
        raise ConfigError([f"{at}: no public hosted zone {value} is visible to this stack's AWS account "
                           f"({invoke_reason(e)}); "
                           f"allowed: a public hosted zone of that account (aws route53 list-hosted-zones)"]) from None
    name = zone.name.rstrip(".")
    if zone.private_zone:
        raise ConfigError([f"{at}: {zone.zone_id} ({name}) is a private hosted zone, which the internet never "
                           "resolves; allowed: a public hosted zone"])
    if not in_zone(g.record_name, name):
        raise ConfigError([f"{NAMESPACE}:gateway.globalDns.recordName: '{g.record_name}' is not in hosted zone "
                           f"{zone.zone_id} ({name}); allowed: {name} or a name ending in .{name}"])
    return HostedZone(zone_id=zone.zone_id, name=name)


def set_identifier(region: str, stack: str) -> str:
    """Tells the records of one name apart: one per region and stack (two stacks may share a region)."""
    return f"{region}-{stack}"


def regional_record(cfg: StackConfig, zone: HostedZone, gateway: EdgeGateway) -> GlobalDnsRecord:
    """This region's record of the global name, aliasing the NLB of the edge's LoadBalancer Service: created after
    the NLB exists, deleted before the LBC deletes the NLB."""
    g = cfg.gateway.global_dns
    nlb = gateway.load_balancer
    args = {"zone_id": zone.zone_id, "record_name": g.record_name, "region": cfg.region,
            "set_identifier": set_identifier(cfg.region, pulumi.get_stack()),
            "load_balancer_hostname": gateway.hostname, "tags": {"gpu-burst.io/environment": cfg.environment}}
    if g.health_check.enabled:
        # The port the NLB listens on is the Service's own (443: a public edge always has TLS).
        args["health_check"] = {"port": nlb.spec.apply(lambda s: s.ports[0].port),
                                "request_interval": g.health_check.request_interval,
                                "failure_threshold": g.health_check.failure_threshold}
    return GlobalDnsRecord("gpu-burst-global-dns", args, opts=pulumi.ResourceOptions(depends_on=[nlb]))
