"""`sweep`: what Karpenter and the AWS Load Balancer Controller created outside Pulumi for a cluster, and (with
``--yes``) its removal.

Pulumi only knows the resources it declared. GPU instances, their launch templates and the instance profiles that
Karpenter creates for an EC2NodeClass, and the load balancers, target groups and security groups the AWS Load
Balancer Controller creates for a LoadBalancer Service, survive a `pulumi destroy` that ran while the controller
could not clean up (for example when it went away before the objects it serves). They are found by the tags and paths
the controllers put on them, never by name patterns, so nothing of another cluster is touched. Every delete tolerates
"already gone", so a second run is a no-op.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

from burstctl import aws
from burstctl.output import BadInput, CheckError

NODEPOOL_TAG = "karpenter.sh/nodepool"
NODECLASS_TAG = "karpenter.k8s.aws/ec2nodeclass"
CLUSTER_TAG = "karpenter.k8s.aws/cluster"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]

# The LBC's tagging (kubernetes-sigs/aws-load-balancer-controller@v3.5.0 pkg/deploy/tracking/provider.go): every AWS
# object it creates carries `elbv2.k8s.aws/cluster: <cluster>` and `<prefix>/stack: <stack>` (a Service's stack is
# `namespace/name`); the cluster's shared backend security group carries `elbv2.k8s.aws/resource: backend-sg` instead
# (pkg/networking/backend_sg_provider.go).
LBC_CLUSTER_TAG = "elbv2.k8s.aws/cluster"
LBC_RESOURCE_TAG = "elbv2.k8s.aws/resource"
LBC_BACKEND_SG = "backend-sg"
LBC_STACK_TAGS = ("service.k8s.aws/stack", "ingress.k8s.aws/stack", "gateway.k8s.aws.nlb/stack",
                  "gateway.k8s.aws.alb/stack")
"""`<prefix>/stack` of the controller's Service, Ingress and Gateway (NLB/ALB) reconcilers."""
ELBV2_TAGS_PER_CALL = 20
"""DescribeTags takes at most 20 ARNs."""
RETRY_SECONDS = 300.0
"""How long a target group or security group delete is retried while AWS still reports it in use: a deleted NLB
releases its network interfaces (which hold its security groups) only after a few minutes."""
RETRY_INTERVAL = 10.0

_GONE = {"InvalidInstanceID.NotFound", "InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateName.NotFound",
         "InvalidLaunchTemplateId.Malformed", "NoSuchEntity", "LoadBalancerNotFound", "TargetGroupNotFound",
         "InvalidGroup.NotFound"}

Kind = Literal["instance", "launch-template", "instance-profile", "load-balancer", "target-group", "security-group"]
KINDS: tuple[str, ...] = ("load-balancer", "instance", "launch-template", "instance-profile", "target-group",
                          "security-group")
"""Deletion order: load balancers first (their listeners hold the target groups, their network interfaces the
security groups), instances before the profiles they hold, security groups last."""


@dataclass
class Leftover:
    kind: Kind
    id: str
    name: str
    detail: str
    action: str = "found"
    """found (dry run) -> deleted / already gone / error: <code>."""


@dataclass
class SweepClients:
    ec2: Any
    iam: Any
    region: str
    elbv2: Any
    eks: Any = None
    """Only asked whether the cluster still runs (no EKS client: not asked)."""


def make_clients(region: str, profile: Optional[str] = None, timeout: Optional[float] = None) -> SweepClients:
    s, config = aws.session(region, profile), aws.client_config(timeout)
    return SweepClients(s.client("ec2", config=config), s.client("iam", config=config), region,
                        s.client("elbv2", config=config), s.client("eks", config=config))


RUNNING_CLUSTER = ("ACTIVE", "CREATING", "UPDATING", "PENDING")
"""EKS cluster statuses in which its controllers may still run and own what a sweep finds."""


def cluster_status(c: SweepClients, cluster: str) -> Optional[str]:
    """The EKS cluster's status, or None when no cluster of that name exists in the region."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if c.eks is None:
        return None
    try:
        return c.eks.describe_cluster(name=cluster)["cluster"]["status"]
    except NoCredentialsError:
        raise CheckError("no AWS credentials found: set AWS_PROFILE (or --profile) or AWS_ACCESS_KEY_ID") from None
    except ClientError as e:
        if aws.error_code(e) == "ResourceNotFoundException":
            return None
        what, todo = aws.explain(e, "eks:DescribeCluster")
        raise CheckError(f"asking whether cluster {cluster} still runs failed ({what}): {todo}") from None
    except BotoCoreError as e:
        raise CheckError(aws.unreachable(e)) from None


def check_cluster_name(name: str) -> str:
    # EKS cluster name rules; also keeps the tag filters below from matching something unintended.
    if not re.fullmatch(r"[0-9A-Za-z][A-Za-z0-9\-_]{0,99}", name):
        raise BadInput(f"--cluster-name: '{name}' is not an EKS cluster name (letters, digits, - and _, "
                       "starting with a letter or digit, at most 100)")
    return name


def _tags(items: Optional[list[dict[str, str]]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or []}


def find_instances(c: SweepClients, cluster: str) -> list[Leftover]:
    out = []
    filters = [{"Name": f"tag:kubernetes.io/cluster/{cluster}", "Values": ["owned"]},
               {"Name": "tag-key", "Values": [NODEPOOL_TAG]},
               {"Name": "instance-state-name", "Values": LIVE_STATES}]
    for page in c.ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for res in page["Reservations"]:
            for i in res["Instances"]:
                tags = _tags(i.get("Tags"))
                # Filters again client-side: a Karpenter-less instance of the cluster must never be terminated.
                if tags.get(f"kubernetes.io/cluster/{cluster}") != "owned" or NODEPOOL_TAG not in tags:
                    continue
                out.append(Leftover("instance", i["InstanceId"], tags.get("Name", ""),
                                    f"{i.get('InstanceType')} {i['State']['Name']} nodepool={tags[NODEPOOL_TAG]}"))
    return out


def find_launch_templates(c: SweepClients, cluster: str) -> list[Leftover]:
    seen: dict[str, Leftover] = {}
    for flt in ([{"Name": f"tag:kubernetes.io/cluster/{cluster}", "Values": ["owned"]}],
                [{"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]}]):
        for page in c.ec2.get_paginator("describe_launch_templates").paginate(Filters=flt):
            for lt in page["LaunchTemplates"]:
                tags = _tags(lt.get("Tags"))
                ours = tags.get(f"kubernetes.io/cluster/{cluster}") == "owned" or tags.get(CLUSTER_TAG) == cluster
                by_karpenter = any(k in tags for k in (NODEPOOL_TAG, NODECLASS_TAG, CLUSTER_TAG))
                if ours and by_karpenter:
                    seen[lt["LaunchTemplateId"]] = Leftover(
                        "launch-template", lt["LaunchTemplateId"], lt.get("LaunchTemplateName", ""),
                        f"ec2nodeclass={tags.get(NODECLASS_TAG, '?')}")
    return list(seen.values())


def find_instance_profiles(c: SweepClients, cluster: str) -> list[Leftover]:
    """Profiles under Karpenter's path `/karpenter/<region>/<cluster>/`, or tagged by Karpenter for the cluster."""
    prefix = f"/karpenter/{c.region}/{cluster}/"
    out = []
    for page in c.iam.get_paginator("list_instance_profiles").paginate():
        for p in page["InstanceProfiles"]:
            match = p.get("Path", "").startswith(prefix)
            if not match:
                # ListInstanceProfiles leaves tags out; GetInstanceProfile carries them.
                tags = _tags(p.get("Tags") or c.iam.get_instance_profile(
                    InstanceProfileName=p["InstanceProfileName"])["InstanceProfile"].get("Tags"))
                match = NODECLASS_TAG in tags and tags.get(f"kubernetes.io/cluster/{cluster}") == "owned"
            if match:
                roles = [r["RoleName"] for r in p.get("Roles", [])]
                out.append(Leftover("instance-profile", p["InstanceProfileName"], p.get("Path", ""),
                                    f"roles: {', '.join(roles) or 'none'}"))
    return out


def lbc_stack(tags: dict[str, str], cluster: str) -> Optional[str]:
    """What the LBC made an AWS object for (`service envoy-gateway-system/edge`, `shared backend`), or None when the
    LBC did not make it for this cluster."""
    if tags.get(LBC_CLUSTER_TAG) != cluster:
        return None
    for key in LBC_STACK_TAGS:
        if key in tags:
            return f"{key.split('.', 1)[0]} {tags[key]}"
    return "shared backend" if tags.get(LBC_RESOURCE_TAG) == LBC_BACKEND_SG else None


def _elbv2_tags(c: SweepClients, arns: list[str]) -> dict[str, dict[str, str]]:
    out = {}
    for i in range(0, len(arns), ELBV2_TAGS_PER_CALL):
        for d in c.elbv2.describe_tags(ResourceArns=arns[i:i + ELBV2_TAGS_PER_CALL])["TagDescriptions"]:
            out[d["ResourceArn"]] = _tags(d.get("Tags"))
    return out


def find_load_balancers(c: SweepClients, cluster: str) -> list[Leftover]:
    out = []
    for page in c.elbv2.get_paginator("describe_load_balancers").paginate():
        lbs = {lb["LoadBalancerArn"]: lb for lb in page["LoadBalancers"]}
        for arn, tags in _elbv2_tags(c, list(lbs)).items():
            stack = lbc_stack(tags, cluster)
            if stack:
                lb = lbs[arn]
                out.append(Leftover("load-balancer", arn, lb["LoadBalancerName"],
                                    f"{lb.get('Type', '?')} {lb.get('Scheme', '?')} for {stack}"))
    return out


def find_target_groups(c: SweepClients, cluster: str) -> list[Leftover]:
    out = []
    for page in c.elbv2.get_paginator("describe_target_groups").paginate():
        tgs = {tg["TargetGroupArn"]: tg for tg in page["TargetGroups"]}
        for arn, tags in _elbv2_tags(c, list(tgs)).items():
            stack = lbc_stack(tags, cluster)
            if stack:
                tg = tgs[arn]
                out.append(Leftover("target-group", arn, tg["TargetGroupName"],
                                    f"{tg.get('Protocol', '?')}:{tg.get('Port', '?')} {tg.get('TargetType', '?')} "
                                    f"for {stack}"))
    return out


def find_security_groups(c: SweepClients, cluster: str) -> list[Leftover]:
    out = []
    flt = [{"Name": f"tag:{LBC_CLUSTER_TAG}", "Values": [cluster]}]
    for page in c.ec2.get_paginator("describe_security_groups").paginate(Filters=flt):
        for g in page["SecurityGroups"]:
            stack = lbc_stack(_tags(g.get("Tags")), cluster)  # filters again client-side, as for instances
            if stack:
                out.append(Leftover("security-group", g["GroupId"], g.get("GroupName", ""),
                                    f"{g.get('VpcId', '?')} for {stack}"))
    return out


def find(c: SweepClients, cluster: str) -> list[Leftover]:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        found = (find_instances(c, cluster) + find_launch_templates(c, cluster) + find_instance_profiles(c, cluster)
                 + find_load_balancers(c, cluster) + find_target_groups(c, cluster)
                 + find_security_groups(c, cluster))
    except NoCredentialsError:
        raise CheckError("no AWS credentials found: set AWS_PROFILE (or --profile) or AWS_ACCESS_KEY_ID") from None
    except ClientError as e:
        what, todo = aws.explain(e, "ec2:DescribeInstances, ec2:DescribeLaunchTemplates, iam:ListInstanceProfiles, "
                                    "iam:GetInstanceProfile, elasticloadbalancing:DescribeLoadBalancers, "
                                    "elasticloadbalancing:DescribeTargetGroups, elasticloadbalancing:DescribeTags, "
                                    "ec2:DescribeSecurityGroups")
        raise CheckError(f"listing leftovers failed ({what}): {todo}") from None
    except BotoCoreError as e:
        raise CheckError(aws.unreachable(e)) from None
    return sorted(found, key=lambda x: KINDS.index(x.kind))


Progress = Callable[[Leftover, str], None]
"""Called with an item and "" once its action is set, or with a note while its delete waits."""


def _quiet(item: Leftover, note: str) -> None:
    pass


def _retrying(fn: Callable[[], Any], codes: set[str], wait: Callable[[str], None]) -> None:
    """`fn`, retried while AWS answers one of `codes` (still in use), for at most RETRY_SECONDS."""
    from botocore.exceptions import ClientError

    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            fn()
            return
        except ClientError as e:
            if aws.error_code(e) not in codes or time.monotonic() >= deadline:
                raise
            wait(f"{aws.error_code(e)}, retrying")
            time.sleep(RETRY_INTERVAL)


def _revoke_references(c: SweepClients, group_ids: set[str]) -> dict[str, int]:
    """Remove the rules of other security groups that refer to `group_ids` (the LBC adds such rules to the nodes'
    group for its targets); AWS refuses to delete a group another group still refers to. Returns, per group id, how
    many rules referred to it."""
    referring = set()
    for flt in ("ip-permission.group-id", "egress.ip-permission.group-id"):
        pages = c.ec2.get_paginator("describe_security_groups").paginate(
            Filters=[{"Name": flt, "Values": sorted(group_ids)}])
        referring |= {g["GroupId"] for page in pages for g in page["SecurityGroups"]}
    removed: dict[str, int] = {}
    for gid in sorted(referring):
        pages = c.ec2.get_paginator("describe_security_group_rules").paginate(
            Filters=[{"Name": "group-id", "Values": [gid]}])
        rules = [r for page in pages for r in page["SecurityGroupRules"]
                 if (r.get("ReferencedGroupInfo") or {}).get("GroupId") in group_ids - {gid}]
        for egress, revoke in ((False, c.ec2.revoke_security_group_ingress),
                               (True, c.ec2.revoke_security_group_egress)):
            chosen = [r for r in rules if bool(r.get("IsEgress")) is egress]
            if chosen:
                revoke(GroupId=gid, SecurityGroupRuleIds=[r["SecurityGroupRuleId"] for r in chosen])
                for r in chosen:
                    ref = r["ReferencedGroupInfo"]["GroupId"]
                    removed[ref] = removed.get(ref, 0) + 1
    return removed


def delete(c: SweepClients, leftovers: list[Leftover], progress: Progress = _quiet) -> list[Leftover]:
    """Delete in dependency order (KINDS): load balancers, instances, templates, profiles, then target groups once
    the load balancers are gone, and security groups once nothing refers to them."""
    from botocore.exceptions import ClientError, WaiterError

    def attempt(item: Leftover, fn: Any, busy: Optional[set[str]] = None) -> None:
        try:
            _retrying(fn, busy or set(), lambda note: progress(item, note))
            item.action = "deleted"
        except ClientError as e:
            code = aws.error_code(e)
            gone = code in _GONE or code.endswith((".NotFound", ".NotFoundException"))
            item.action = "already gone" if gone else f"error: {code}"
        progress(item, "")

    def of(kind: str) -> list[Leftover]:
        return [x for x in leftovers if x.kind == kind]

    for x in of("load-balancer"):
        attempt(x, lambda x=x: c.elbv2.delete_load_balancer(LoadBalancerArn=x.id))
    instances = of("instance")
    for i in range(0, len(instances), 500):
        batch = instances[i:i + 500]
        try:
            c.ec2.terminate_instances(InstanceIds=[x.id for x in batch])
            for x in batch:
                x.action = "deleted"
                progress(x, "")
        except ClientError:
            for x in batch:  # one bad id fails the batch: retry one by one
                attempt(x, lambda x=x: c.ec2.terminate_instances(InstanceIds=[x.id]))
    for x in leftovers:
        if x.kind == "launch-template":
            attempt(x, lambda x=x: c.ec2.delete_launch_template(LaunchTemplateId=x.id))
        elif x.kind == "instance-profile":
            def remove(x: Leftover = x) -> None:
                try:
                    roles = c.iam.get_instance_profile(InstanceProfileName=x.id)["InstanceProfile"]["Roles"]
                except ClientError as e:
                    if aws.error_code(e) == "NoSuchEntity":
                        raise
                    roles = []
                for r in roles:
                    c.iam.remove_role_from_instance_profile(InstanceProfileName=x.id, RoleName=r["RoleName"])
                c.iam.delete_instance_profile(InstanceProfileName=x.id)
            attempt(x, remove)

    deleted_lbs = [x.id for x in of("load-balancer") if x.action == "deleted"]
    if deleted_lbs:
        try:  # a target group stays "in use" until its load balancer's listeners are gone
            c.elbv2.get_waiter("load_balancers_deleted").wait(
                LoadBalancerArns=deleted_lbs,
                WaiterConfig={"Delay": RETRY_INTERVAL,
                              "MaxAttempts": max(1, int(RETRY_SECONDS // max(RETRY_INTERVAL, 1.0)))})
        except (WaiterError, ClientError):
            pass  # the target group deletes below then retry, and report what is still in use
    for x in of("target-group"):
        attempt(x, lambda x=x: c.elbv2.delete_target_group(TargetGroupArn=x.id), {"ResourceInUse"})
    groups = of("security-group")
    if groups:
        try:
            removed = _revoke_references(c, {x.id for x in groups})
        except ClientError as e:
            for x in groups:
                x.action = f"error: {aws.error_code(e)}"
                progress(x, "")
            return leftovers
        for x in groups:
            if removed.get(x.id):
                x.detail += f"; {removed[x.id]} rule(s) of other groups referring to it removed"
            attempt(x, lambda x=x: c.ec2.delete_security_group(GroupId=x.id), {"DependencyViolation"})
    return leftovers
