"""Karpenter v1.14 on EKS: node role + access entry, controller role for EKS Pod Identity, interruption queue and
EventBridge rules, and the karpenter-crd and karpenter Helm releases."""

import json
from dataclasses import dataclass
from typing import Optional, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from ._common import child, deps_of, pod_identity_trust, token
from .karpenter_iam import INTERRUPTION_EVENTS, POLICY_NAMES, controller_policies, interruption_queue_policy

CHART_REPO = "oci://public.ecr.aws/karpenter"
NAMESPACE = "kube-system"
"""kube-system puts Karpenter in the system-leader-election and kube-system-service-accounts FlowSchemas."""
SERVICE_ACCOUNT = "karpenter"
NODE_MANAGED_POLICIES = (
    "AmazonEKS_CNI_Policy", "AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly",
    "AmazonSSMManagedInstanceCore",
)


class KarpenterArgs(TypedDict):
    """Inputs for Karpenter."""

    cluster_name: pulumi.Input[str]
    """Real EKS cluster name (an Output of the cluster): used in IAM conditions, settings and the access entry."""
    cluster_endpoint: pulumi.Input[str]
    """API server endpoint, so the controller needs no DescribeCluster call at start-up."""
    chart_version: pulumi.Input[str]
    """Pinned karpenter and karpenter-crd chart version, e.g. 1.14.1 (no `v` prefix)."""
    replicas: NotRequired[pulumi.Input[int]]
    """Controller replicas; they repel each other by hostname, so at most the number of system nodes. Default 2."""
    node_selector: NotRequired[pulumi.Input[dict[str, str]]]
    """Extra nodeSelector that pins the controller to the managed system node group."""
    log_level: NotRequired[pulumi.Input[str]]
    """Controller log level: debug, info or error. Default info."""
    controller_cpu: NotRequired[str]
    """CPU request and limit of each controller replica. Default 1 (upstream getting-started)."""
    controller_memory: NotRequired[str]
    """Memory request and limit of each controller replica. Default 1Gi (upstream getting-started)."""
    create_spot_service_linked_role: NotRequired[bool]
    """Create AWSServiceRoleForEC2Spot; off by default because it is account-wide and may already exist. Once
    created it is never deleted by `destroy` (other stacks and users in the account rely on it)."""
    tags: NotRequired[pulumi.Input[dict[str, str]]]
    """Tags for the AWS resources."""
    node_overlay: NotRequired[bool]
    """Turn on the NodeOverlay feature gate (alpha in 1.14), which time-sliced GPU pools need: it is how Karpenter
    learns that their instance types offer `nvidia.com/gpu.shared`. Default False (the chart's default)."""


@dataclass(frozen=True)
class _KarpenterPlan:
    """What every step of a Karpenter reads: its arguments and the account it runs in."""

    name: str
    args: KarpenterArgs
    deps: list
    """The caller's `depends_on` (the pod identity agent among them), passed to the releases."""
    tags: pulumi.Input[dict]
    cluster_name: pulumi.Output[str]
    partition: pulumi.Output
    region: pulumi.Output
    identity: pulumi.Output



class Karpenter(pulumi.ComponentResource):
    """Everything Karpenter v1.14 needs on EKS, following the upstream getting-started CloudFormation: a node role
    with an EC2_LINUX access entry, a controller role assumed through EKS Pod Identity with the six controller
    policies scoped to the real cluster name, an SSE-encrypted interruption queue fed by EventBridge, and the
    CRD + controller Helm releases. Pass the pod identity agent add-on in `opts.depends_on`."""

    node_role_name: pulumi.Output[str]
    """Node role name for EC2NodeClass `spec.role`."""
    node_role_arn: pulumi.Output[str]
    """Node role ARN."""
    controller_role_arn: pulumi.Output[str]
    """Controller role ARN (Pod Identity)."""
    interruption_queue_name: pulumi.Output[str]
    """SQS queue name given to `settings.interruptionQueue`."""
    service_account: pulumi.Output[str]
    """Service account the Pod Identity association and the chart agree on."""
    release_name: pulumi.Output[str]
    """Helm release name of the controller."""

    def __init__(self, name: str, args: KarpenterArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("Karpenter"), name, None, opts)
        p = self._plan(name, args, deps_of(opts))
        node_attachments = self._node_role(p)
        # The controller's AWS side: everything the release waits for, so that on destroy the NodePools and the
        # EC2NodeClass (which depend on the release) go first, while Karpenter can still terminate their instances
        # and delete their launch templates and instance profiles.
        self.queue, controller_aws = interruption_queue(self, name, p.tags)
        access_entry = self._node_access(p, controller_aws[0])
        association, policy_attachments = self._controller_identity(p)
        if args.get("create_spot_service_linked_role"):
            controller_aws.append(self._spot_service_linked_role(p))
        self._releases(p, association, [access_entry, *node_attachments, *policy_attachments, *controller_aws])
        self._outputs(association)

    def _plan(self, name: str, args: KarpenterArgs, deps: list) -> "_KarpenterPlan":
        invoke = pulumi.InvokeOutputOptions(parent=self)
        return _KarpenterPlan(
            name=name, args=args, deps=deps, tags=args.get("tags") or {},
            cluster_name=pulumi.Output.from_input(args["cluster_name"]),
            partition=aws.get_partition_output(opts=invoke), region=aws.get_region_output(opts=invoke),
            identity=aws.get_caller_identity_output(opts=invoke))

    def _node_role(self, p: "_KarpenterPlan") -> list:
        """The role Karpenter-launched instances run as, with its managed policies (returned)."""
        partition = p.partition
        self.node_role = aws.iam.Role(
            f"{p.name}-node-role",
            assume_role_policy=partition.dns_suffix.apply(lambda s: json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": f"ec2.{s}"}, "Action": "sts:AssumeRole"}],
            })),
            description="Karpenter-launched GPU nodes",
            tags=p.tags,
            opts=child(self),
        )
        return [
            aws.iam.RolePolicyAttachment(
                f"{p.name}-node-role-{policy}",
                role=self.node_role.name,
                policy_arn=partition.partition.apply(lambda part, n=policy: f"arn:{part}:iam::aws:policy/{n}"),
                opts=child(self),
            )
            for policy in NODE_MANAGED_POLICIES
        ]

    def _node_access(self, p: "_KarpenterPlan", queue_policy: pulumi.Resource) -> aws.eks.AccessEntry:
        """Nodes join through an access entry (authentication mode API); STANDARD would break node join."""
        return aws.eks.AccessEntry(
            f"{p.name}-node-access",
            cluster_name=p.cluster_name,
            principal_arn=self.node_role.arn,
            type="EC2_LINUX",
            tags=p.tags,
            # Creating it right after the role can fail on IAM propagation; the queue policy gives it a moment.
            opts=child(self, depends_on=[queue_policy]),
        )

    def _controller_identity(self, p: "_KarpenterPlan") -> tuple:
        """The controller role, assumed through EKS Pod Identity, with the upstream controller policies: (the Pod
        Identity association, the policy attachments)."""
        name, tags = p.name, p.tags
        self.controller_role = aws.iam.Role(
            f"{name}-controller-role",
            # Only the chart's service account in this cluster may assume it (Pod Identity session tags).
            assume_role_policy=pulumi.Output.all(p.identity.account_id, p.cluster_name).apply(
                lambda v: json.dumps(pod_identity_trust(v[0], v[1], NAMESPACE, SERVICE_ACCOUNT))),
            description="Karpenter controller (EKS Pod Identity)",
            tags=tags,
            opts=child(self),
        )
        documents = pulumi.Output.all(
            p.partition.partition, p.region.region, p.identity.account_id, p.cluster_name, self.node_role.arn,
            self.queue.arn
        ).apply(lambda v: controller_policies(*v))
        attachments = []
        for policy_name in POLICY_NAMES:
            # Separate managed policies as upstream: one merged document exceeds the 6,144-character limit.
            policy = aws.iam.Policy(
                f"{name}-{policy_name.lower()}-policy",
                description=f"Karpenter controller {policy_name} policy",
                policy=documents.apply(lambda d, n=policy_name: json.dumps(d[n])),
                tags=tags,
                opts=child(self),
            )
            attachments.append(aws.iam.RolePolicyAttachment(
                f"{name}-{policy_name.lower()}-policy-attach",
                role=self.controller_role.name,
                policy_arn=policy.arn,
                opts=child(self),
            ))
        association = aws.eks.PodIdentityAssociation(
            f"{name}-controller-identity",
            cluster_name=p.cluster_name,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            role_arn=self.controller_role.arn,
            tags=tags,
            opts=child(self, depends_on=attachments),
        )
        return association, attachments

    def _spot_service_linked_role(self, p: "_KarpenterPlan") -> aws.iam.ServiceLinkedRole:
        # Account-wide: deleting it on `destroy` would break spot launches of everything else in the account.
        return aws.iam.ServiceLinkedRole(f"{p.name}-spot", aws_service_name="spot.amazonaws.com",
                                         opts=child(self, retain_on_delete=True))

    def _releases(self, p: "_KarpenterPlan", association: aws.eks.PodIdentityAssociation, aws_side: list) -> None:
        """The karpenter-crd and karpenter Helm releases; the controller waits for its CRDs, its AWS side
        (`aws_side`, the association first) and the caller's dependencies."""
        name, args = p.name, p.args
        # CRDs from their own chart: the controller chart's crds/ folder is installed once and never upgraded.
        self.crd_release = k8s.helm.v3.Release(
            f"{name}-crds",
            name="karpenter-crd",
            chart=f"{CHART_REPO}/karpenter-crd",
            version=args["chart_version"],
            namespace=NAMESPACE,
            opts=child(self, depends_on=p.deps),
        )
        resources = {"cpu": args.get("controller_cpu", "1"), "memory": args.get("controller_memory", "1Gi")}
        values = {
            "settings": {
                "clusterName": p.cluster_name,
                "clusterEndpoint": args["cluster_endpoint"],
                "interruptionQueue": self.queue.name,
                # Only the gate we need; the chart renders every other gate from its own defaults.
                **({"featureGates": {"nodeOverlay": True}} if args.get("node_overlay") else {}),
            },
            # The association's own output, so the chart's service account and Pod Identity can never disagree.
            "serviceAccount": {"name": association.service_account},
            "replicas": args.get("replicas", 2),
            "logLevel": args.get("log_level", "info"),
            "nodeSelector": args.get("node_selector") or {},
            "controller": {
                # Without AWS_REGION the controller asks IMDS for its region, and panics where IMDS is unreachable.
                "env": [{"name": "AWS_REGION", "value": p.region.region}],
                "resources": {"requests": resources, "limits": resources},
            },
        }
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            # A fixed name: an auto-named release would produce service account `karpenter-<random>-karpenter`.
            name="karpenter",
            chart=f"{CHART_REPO}/karpenter",
            version=args["chart_version"],
            namespace=NAMESPACE,
            skip_crds=True,
            values=values,
            opts=child(self, depends_on=[self.crd_release, association, *aws_side, *p.deps]),
        )

    def _outputs(self, association: aws.eks.PodIdentityAssociation) -> None:
        self.node_role_name = self.node_role.name
        self.node_role_arn = self.node_role.arn
        self.controller_role_arn = self.controller_role.arn
        self.interruption_queue_name = self.queue.name
        self.service_account = association.service_account
        self.release_name = self.release.status.name
        self.register_outputs({
            "node_role_name": self.node_role_name, "node_role_arn": self.node_role_arn,
            "controller_role_arn": self.controller_role_arn, "interruption_queue_name": self.interruption_queue_name,
            "service_account": self.service_account, "release_name": self.release_name,
        })


def interruption_queue(parent: pulumi.Resource, name: str, tags: pulumi.Input[dict]) -> tuple:
    """The SSE-encrypted SQS queue Karpenter drains, its policy and the EventBridge rules that feed it, as children
    of `parent`: (the queue, [its policy, then each rule and target])."""
    queue = aws.sqs.Queue(
        f"{name}-interruption",
        message_retention_seconds=300,
        sqs_managed_sse_enabled=True,
        tags=tags,
        opts=child(parent),
    )
    created: list[pulumi.Resource] = [aws.sqs.QueuePolicy(
        f"{name}-interruption-queue-policy",
        queue_url=queue.url,
        policy=queue.arn.apply(lambda arn: json.dumps(interruption_queue_policy(arn))),
        opts=child(parent),
    )]
    for event, pattern in INTERRUPTION_EVENTS.items():
        # No explicit rule names: auto-naming lets two stacks share an account and region.
        rule = aws.cloudwatch.EventRule(
            f"{name}-{event}", event_pattern=json.dumps(pattern), tags=tags, opts=child(parent)
        )
        created += [rule, aws.cloudwatch.EventTarget(
            f"{name}-{event}-target",
            rule=rule.name,
            target_id="KarpenterInterruptionQueueTarget",
            arn=queue.arn,
            opts=child(parent),
        )]
    return queue, created


class KarpenterInterruptionQueueArgs(TypedDict):
    """Inputs for KarpenterInterruptionQueue."""

    tags: NotRequired[pulumi.Input[dict[str, str]]]
    """Tags for the queue and the rules."""


class KarpenterInterruptionQueue(pulumi.ComponentResource):
    """Only the interruption queue and its EventBridge rules, for a Karpenter the stack does not install: point its
    `settings.interruptionQueue` at `queue_name` and let its controller role receive and delete messages there (the
    Interruption statement of the upstream controller policy)."""

    queue_name: pulumi.Output[str]
    """SQS queue name for Karpenter's `settings.interruptionQueue`."""
    queue_arn: pulumi.Output[str]
    """Queue ARN (the resource of the controller's sqs:ReceiveMessage/DeleteMessage/GetQueueUrl statement)."""

    def __init__(self, name: str, args: KarpenterInterruptionQueueArgs,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(token("KarpenterInterruptionQueue"), name, None, opts)
        queue, _ = interruption_queue(self, name, args.get("tags") or {})
        self.queue_name = queue.name
        self.queue_arn = queue.arn
        self.register_outputs({"queue_name": self.queue_name, "queue_arn": self.queue_arn})
