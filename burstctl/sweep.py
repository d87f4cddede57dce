"""`sweep`: what Karpenter created outside Pulumi for a cluster, and (with ``--yes``) its removal.

Pulumi only knows the resources it declared. GPU instances, their launch templates and the instance profiles that
Karpenter creates for an EC2NodeClass survive a `pulumi destroy` that ran while Karpenter could not clean up (for
example when the controller went away before its NodePools). They are found by the tags and paths Karpenter puts on
them, never by name patterns, so nothing of another cluster is touched. Every delete tolerates "already gone", so a
second run is a no-op.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Optional

from burstctl import aws
from burstctl.output import BadInput, CheckError

NODEPOOL_TAG = "karpenter.sh/nodepool"
NODECLASS_TAG = "karpenter.k8s.aws/ec2nodeclass"
CLUSTER_TAG = "karpenter.k8s.aws/cluster"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
_GONE = {"InvalidInstanceID.NotFound", "InvalidLaunchTemplateId.NotFound", "InvalidLaunchTemplateName.NotFound",
         "InvalidLaunchTemplateId.Malformed", "NoSuchEntity"}

Kind = Literal["instance", "launch-template", "instance-profile"]


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


def make_clients(region: str, profile: Optional[str] = None, timeout: Optional[float] = None) -> SweepClients:
    s, config = aws.session(region, profile), aws.client_config(timeout)
    return SweepClients(s.client("ec2", config=config), s.client("iam", config=config), region)


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


def find(c: SweepClients, cluster: str) -> list[Leftover]:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return find_instances(c, cluster) + find_launch_templates(c, cluster) + find_instance_profiles(c, cluster)
    except NoCredentialsError:
        raise CheckError("no AWS credentials found: set AWS_PROFILE (or --profile) or AWS_ACCESS_KEY_ID") from None
    except ClientError as e:
        what, todo = aws.explain(e, "ec2:DescribeInstances, ec2:DescribeLaunchTemplates, iam:ListInstanceProfiles, "
                                    "iam:GetInstanceProfile")
        raise CheckError(f"listing leftovers failed ({what}): {todo}") from None
    except BotoCoreError as e:
        raise CheckError(aws.unreachable(e)) from None


def delete(c: SweepClients, leftovers: list[Leftover]) -> list[Leftover]:
    """Delete in dependency order: instances first (they hold the profile), then templates, then profiles."""
    from botocore.exceptions import ClientError

    def attempt(item: Leftover, fn: Any) -> None:
        try:
            fn()
            item.action = "deleted"
        except ClientError as e:
            code = aws.error_code(e)
            gone = code in _GONE or code.endswith((".NotFound", ".NotFoundException"))
            item.action = "already gone" if gone else f"error: {code}"

    instances = [x for x in leftovers if x.kind == "instance"]
    for i in range(0, len(instances), 500):
        batch = instances[i:i + 500]
        try:
            c.ec2.terminate_instances(InstanceIds=[x.id for x in batch])
            for x in batch:
                x.action = "deleted"
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
    return leftovers
