"""The AWS Load Balancer Controller: provisions the Network Load Balancer in front of the edge gateway (IP targets,
listener attributes such as the TCP idle timeout), with its IAM role assumed through EKS Pod Identity."""

import json
from typing import Optional, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from ._common import SYSTEM_NODE_SELECTOR, child, deps_of, pod_identity_trust, token
from .lbc_iam import controller_policy

CHART = "aws-load-balancer-controller"
CHART_REPO = "https://aws.github.io/eks-charts"
RELEASE_NAME = "aws-load-balancer-controller"
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "aws-load-balancer-controller"
CRD_FILES = ("crds.yaml", "gateway-crds.yaml")
"""The chart's crds/ folder (7 CRDs: elbv2.k8s.aws, aga.k8s.aws, gateway.k8s.aws), which Helm installs only once."""
LOAD_BALANCER_CLASS = "service.k8s.aws/nlb"
"""`spec.loadBalancerClass` the controller reconciles (kubernetes-sigs/aws-load-balancer-controller@v3.5.0:
docs/guide/service/nlb.md): a Service with it is never touched by the in-tree cloud provider."""


CONTROLLER_REQUESTS = {"cpu": "50m", "memory": "128Mi"}
"""Requests of each controller replica."""


def crd_urls(chart_version: str) -> list[str]:
    """The chart's CRD files at the controller's release tag: chart X.Y.Z is controller vX.Y.Z, and aws/eks-charts
    publishes the chart with the same crds/ files as kubernetes-sigs/aws-load-balancer-controller's helm/ folder."""
    base = (f"https://raw.githubusercontent.com/kubernetes-sigs/aws-load-balancer-controller/v{chart_version}"
            "/helm/aws-load-balancer-controller/crds")
    return [f"{base}/{f}" for f in CRD_FILES]


def lbc_values(cluster_name: str, region: str, vpc_id: str, service_account: str, replicas: int,
               node_selector: dict) -> dict:
    """Chart values (keys from the 3.5.0 values.yaml)."""
    values = {
        "clusterName": cluster_name,
        # Region and VPC given explicitly: the controller would otherwise ask IMDS, which pods on nodes with
        # hop limit 1 cannot reach.
        "region": region,
        "vpcId": vpc_id,
        "replicaCount": replicas,
        "serviceAccount": {"create": True, "name": service_account},
        "nodeSelector": dict(node_selector),
        "resources": {"requests": dict(CONTROLLER_REQUESTS), "limits": {"memory": "256Mi"}},
        # Only Services that ask for it (loadBalancerClass service.k8s.aws/nlb) get an LBC load balancer; the
        # mutating webhook would otherwise take over every LoadBalancer Service created later.
        "enableServiceMutatorWebhook": False,
        # No ALB ingress in this stack.
        "createIngressClassResource": False,
    }
    if replicas >= 2:
        values["podDisruptionBudget"] = {"maxUnavailable": 1}
    return values


class LoadBalancerControllerArgs(TypedDict):
    """Inputs of the LoadBalancerController."""

    cluster_name: pulumi.Input[str]
    """The real EKS cluster name (Pod Identity association, controller `--cluster-name`, resource tags)."""
    vpc_id: pulumi.Input[str]
    """VPC of the cluster."""
    chart_version: str
    """Pinned chart version, e.g. 3.5.0 (controller v3.5.0)."""
    replicas: NotRequired[int]
    """Controller replicas (2 with a PodDisruptionBudget in prod). Default 2."""
    node_selector: NotRequired[dict[str, str]]
    """nodeSelector of the controller pods. Default: the system node group."""
    tags: NotRequired[dict[str, str]]
    """Tags of the IAM role and policy."""


class LoadBalancerController(pulumi.ComponentResource):
    """AWS Load Balancer Controller as a pinned Helm release on the system nodes, with the upstream IAM policy on a
    role that only its service account can assume (EKS Pod Identity)."""

    release_name: pulumi.Output[str]
    """Helm release name; LoadBalancer Services must wait for the release (its webhooks and controller)."""
    role_arn: pulumi.Output[str]
    """IAM role of the controller."""
    service_account: pulumi.Output[str]
    """Service account bound to the role (from the Pod Identity association)."""
    load_balancer_class: pulumi.Output[str]
    """The loadBalancerClass this controller serves."""

    def __init__(self, name: str, args: LoadBalancerControllerArgs,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("LoadBalancerController"), name, None, opts)
        deps = deps_of(opts)
        tags = dict(args.get("tags") or {})
        replicas = int(args.get("replicas", 2))
        partition = aws.get_partition_output()
        region = aws.get_region_output()
        identity = aws.get_caller_identity_output()

        self.role = aws.iam.Role(
            f"{name}-role",
            # Only the chart's service account in this cluster may assume it (Pod Identity session tags).
            assume_role_policy=pulumi.Output.all(identity.account_id, args["cluster_name"]).apply(
                lambda v: json.dumps(pod_identity_trust(v[0], v[1], NAMESPACE, SERVICE_ACCOUNT))),
            description="AWS Load Balancer Controller (EKS Pod Identity)",
            tags=tags,
            opts=child(self),
        )
        self.policy = aws.iam.Policy(
            f"{name}-policy",
            description="AWS Load Balancer Controller policy (upstream iam_policy.json)",
            policy=partition.partition.apply(lambda p: json.dumps(controller_policy(p))),
            tags=tags,
            opts=child(self),
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-policy-attach", role=self.role.name, policy_arn=self.policy.arn, opts=child(self))
        association = aws.eks.PodIdentityAssociation(
            f"{name}-identity",
            cluster_name=args["cluster_name"],
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            role_arn=self.role.arn,
            tags=tags,
            opts=child(self, depends_on=[attachment]),
        )
        values = pulumi.Output.all(args["cluster_name"], region.region, args["vpc_id"],
                                   association.service_account).apply(
            lambda v: lbc_values(v[0], v[1], v[2], v[3], replicas,
                                 args.get("node_selector", SYSTEM_NODE_SELECTOR)))
        # Applied by Pulumi from the pinned tag, so a chart bump upgrades them before the controller.
        self.crds = k8s.yaml.v2.ConfigGroup(f"{name}-crds", files=crd_urls(args["chart_version"]),
                                            opts=child(self, depends_on=deps))
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=RELEASE_NAME,
            chart=CHART,
            version=args["chart_version"],
            repository_opts={"repo": CHART_REPO},
            namespace=NAMESPACE,
            cleanup_on_fail=True,
            skip_crds=True,
            values=values,
            opts=child(self, depends_on=[association, self.crds, *deps]),
        )
        self.release_name = self.release.status.name
        self.role_arn = self.role.arn
        self.service_account = association.service_account
        self.load_balancer_class = pulumi.Output.from_input(LOAD_BALANCER_CLASS)
        self.register_outputs({"release_name": self.release_name, "role_arn": self.role_arn,
                               "service_account": self.service_account,
                               "load_balancer_class": self.load_balancer_class})
