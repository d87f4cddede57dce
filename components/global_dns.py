"""GlobalDnsRecord: one region's answer for a name that several regional stacks serve. A latency-routed Route 53 alias
record to this region's NLB, healthy while a Route 53 TCP health check reaches the NLB and the NLB has a healthy
target, so a resolver gets the nearest region that can take the request."""

from typing import Optional, TypedDict

import pulumi
import pulumi_aws as aws
from typing_extensions import NotRequired

from ._common import child, deps_of, token

NLB_TYPE = "network"
"""`load_balancer_type` of the ELB hosted-zone lookup: NLBs have their own alias zone per region, not the ALBs' one."""


class GlobalDnsHealthCheckArgs(TypedDict):
    """A Route 53 TCP health check of the NLB."""

    port: pulumi.Input[int]
    """The NLB listener port the checkers connect to."""
    request_interval: int
    """10 or 30 seconds between two checks of one checker."""
    failure_threshold: int
    """Consecutive results (1-10) before a checker changes its view."""


class GlobalDnsRecordArgs(TypedDict):
    """Inputs of GlobalDnsRecord."""

    zone_id: pulumi.Input[str]
    """Public hosted zone of record_name."""
    record_name: str
    """The name every region answers, e.g. llm.example.com."""
    region: str
    """This stack's region: the latency region of the record and the region of the NLB's alias zone."""
    set_identifier: str
    """Unique among the records of record_name (one per regional stack)."""
    load_balancer_hostname: pulumi.Input[str]
    """DNS name of this region's NLB (the LoadBalancer Service's status)."""
    health_check: NotRequired[GlobalDnsHealthCheckArgs]
    """Absent: no Route 53 health check, the record follows only the NLB's target health."""
    tags: NotRequired[dict[str, str]]
    """Tags of the health check (Route 53 records have none)."""


class GlobalDnsRecord(pulumi.ComponentResource):
    """Latency alias `A` record of one region, with an optional TCP health check of the NLB."""

    fqdn: pulumi.Output[str]
    """The record's name as Route 53 built it."""
    health_check_id: pulumi.Output[str]
    """Id of the Route 53 health check ('' without one)."""
    load_balancer_zone_id: pulumi.Output[str]
    """Route 53 zone of the region's NLBs that the alias points into."""

    def __init__(self, name: str, args: GlobalDnsRecordArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("GlobalDnsRecord"), name, None, opts)
        deps = deps_of(opts)
        self.load_balancer_zone_id = self._alias_zone(args["region"])
        self.health_check = self._health_check(name, args, deps)
        self.record = self._record(name, args, deps)
        self.fqdn = self.record.fqdn
        self.health_check_id = self.health_check.id if self.health_check else pulumi.Output.from_input("")
        self.register_outputs({"fqdn": self.fqdn, "health_check_id": self.health_check_id,
                               "load_balancer_zone_id": self.load_balancer_zone_id})

    def _alias_zone(self, region: str) -> pulumi.Output[str]:
        """The canonical hosted zone of NLBs in `region` (the provider's table of the ELB endpoints page)."""
        return aws.lb.get_hosted_zone_id_output(
            load_balancer_type=NLB_TYPE, region=region, opts=pulumi.InvokeOutputOptions(parent=self)).id

    def _health_check(self, name: str, args: GlobalDnsRecordArgs, deps: list) -> Optional[aws.route53.HealthCheck]:
        hc = args.get("health_check")
        if hc is None:
            return None
        # TCP: every HTTP path of the edge needs an API key, and Route 53 counts a 401 as a failure.
        return aws.route53.HealthCheck(
            f"{name}-health",
            type="TCP",
            fqdn=args["load_balancer_hostname"],
            port=hc["port"],
            request_interval=int(hc["request_interval"]),
            failure_threshold=int(hc["failure_threshold"]),
            tags={**args.get("tags", {}), "Name": f"{args['record_name']} {args['region']}"},
            opts=child(self, deps),
        )

    def _record(self, name: str, args: GlobalDnsRecordArgs, deps: list) -> aws.route53.Record:
        return aws.route53.Record(
            f"{name}-record",
            zone_id=args["zone_id"],
            name=args["record_name"],
            type="A",
            set_identifier=args["set_identifier"],
            latency_routing_policies=[{"region": args["region"]}],
            # Alias records take the target's TTL (60 s for ELB); evaluate_target_health drops the region while its
            # NLB has no healthy Envoy target.
            aliases=[{"name": args["load_balancer_hostname"], "zone_id": self.load_balancer_zone_id,
                      "evaluate_target_health": True}],
            health_check_id=self.health_check.id if self.health_check else None,
            opts=child(self, deps),
        )
