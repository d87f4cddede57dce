"""Foundation: network, EKS cluster, system nodes, Karpenter IAM/queue/Helm — under mocks."""

import json
import re

import pytest
import yaml

from pulumi_mocks import ACCOUNT, CLUSTER_SG, REGION, autoname
from stack_cache import evaluated, shipped
from stack_helpers import evaluate_stack
from upstream import UPSTREAM, needs_upstream, unknown_value_keys

CLUSTER_NAME = "gpu-burst-dev"
"""`<prefix>-<stack>` (the mocks run every stack file as stack `dev`)."""


def _policies(mocks) -> dict:
    """Controller policy documents keyed by the IAM policy description's name."""
    out = {}
    for r in mocks.of_type("aws:iam/policy:Policy"):
        m = re.match(r"Karpenter controller (\w+) policy", r.inputs["description"])
        if m:  # other controllers' policies (the load balancer controller) are tested with them
            out[m.group(1)] = json.loads(r.inputs["policy"])
    return out


def _deps(mocks, name):
    return set(mocks.monitor.requests[name].dependencies)


def _urn(mocks, name):
    return mocks.monitor.requests[name] and next(
        u for u in mocks.monitor.resources if u.endswith(f"::{name}")
    )


@pytest.fixture(scope="module")
def dev():
    return shipped("dev")[0]


@pytest.fixture(scope="module")
def prod():
    return shipped("prod")[0]


# -- cluster --------------------------------------------------------------------------------------------------------

def test_cluster_uses_access_entries_only_and_no_default_node_group(dev):
    c = dev.named("gpu-burst-eks").inputs
    assert c["authenticationMode"] == "API"
    assert c["skipDefaultNodeGroup"] is True
    assert c["endpointPrivateAccess"] is True
    assert c["corednsAddonOptions"]["enabled"] is False
    assert c["version"] == "1.35"
    assert c["name"] == CLUSTER_NAME
    # No-op arguments are gone: they only concern the default node group / pulumi-eks defaults.
    for noop in ("nodeAssociatePublicIpAddress", "createOidcProvider"):
        assert noop not in c, noop


def test_cluster_stays_in_standard_support_without_pulumi_eks_security_groups(dev):
    c = dev.named("gpu-burst-eks").inputs
    assert c["upgradePolicy"] == {"supportType": "STANDARD"}
    assert c["skipDefaultSecurityGroups"] is True


def test_kubeconfig_uses_the_stacks_aws_profile(mocks):
    evaluate_stack("dev", overrides={"aws:profile": "gpu-burst-admin"})
    c = mocks.named("gpu-burst-eks").inputs
    assert c["providerCredentialOpts"] == {"profileName": "gpu-burst-admin"}


def test_kubeconfig_has_no_profile_when_none_is_configured(dev):
    assert "providerCredentialOpts" not in dev.named("gpu-burst-eks").inputs


def test_control_plane_log_group_is_owned_with_retention_before_the_cluster(prod):
    lg = prod.named("gpu-burst-control-plane-logs").inputs
    assert lg["name"] == f"/aws/eks/{CLUSTER_NAME}/cluster"
    assert lg["retentionInDays"] == 90  # prod sets cluster.logRetentionDays
    assert prod.named("gpu-burst-eks").inputs["name"] == CLUSTER_NAME
    assert _urn(prod, "gpu-burst-control-plane-logs") in _deps(prod, "gpu-burst-eks")


def test_no_log_group_without_log_types(dev):
    assert dev.of_type("aws:cloudwatch/logGroup:LogGroup") == []


def test_admins_and_typed_access_entries(mocks):
    role = f"arn:aws:iam::{ACCOUNT}:role/platform-admin"
    ci = f"arn:aws:iam::{ACCOUNT}:role/ci/gpu-burst-preview"
    evaluate_stack("dev", overrides={"cluster": {
        "kubernetesVersion": "1.35", "publicAccessCidrs": ["0.0.0.0/0"], "adminPrincipalArns": [role],
        "accessEntries": [{"principalArn": ci, "policy": "AmazonEKSViewPolicy"},
                          {"principalArn": f"arn:aws:iam::{ACCOUNT}:user/alice", "policy": "AmazonEKSEditPolicy",
                           "namespaces": ["inference"]}]}})
    entries = mocks.named("gpu-burst-eks").inputs["accessEntries"]
    by_arn = {e["principalArn"]: e for e in entries.values()}
    assert set(by_arn) == {role, ci, f"arn:aws:iam::{ACCOUNT}:user/alice"}
    assert all(e["type"] == "STANDARD" for e in entries.values())
    admin = by_arn[role]["accessPolicies"]["AmazonEKSClusterAdminPolicy"]
    assert admin == {"policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                     "accessScope": {"type": "cluster"}}
    view = by_arn[ci]["accessPolicies"]["AmazonEKSViewPolicy"]
    assert view == {"policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
                    "accessScope": {"type": "cluster"}}
    edit = by_arn[f"arn:aws:iam::{ACCOUNT}:user/alice"]["accessPolicies"]["AmazonEKSEditPolicy"]
    assert edit["accessScope"] == {"type": "namespace", "namespaces": ["inference"]}


def test_karpenter_node_role_joins_through_ec2_linux_access_entry(dev):
    entry = dev.of_type("aws:eks/accessEntry:AccessEntry")
    assert len(entry) == 1
    assert entry[0].inputs["type"] == "EC2_LINUX"
    assert entry[0].inputs["clusterName"] == CLUSTER_NAME
    node_role = dev.state("gpu-burst-node-role")
    assert entry[0].inputs["principalArn"] == f"arn:aws:iam::{ACCOUNT}:role/{node_role['name']}"
    trust = json.loads(node_role["assumeRolePolicy"])
    assert trust["Statement"] == [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                   "Action": "sts:AssumeRole"}]
    attached = sorted(r.inputs["policyArn"].rsplit("/", 1)[1] for r in dev.of_type(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment") if r.name.startswith("gpu-burst-node-role-"))
    assert attached == sorted(["AmazonEKS_CNI_Policy", "AmazonEKSWorkerNodePolicy",
                               "AmazonEC2ContainerRegistryPullOnly", "AmazonSSMManagedInstanceCore"])


def test_system_node_group_is_on_demand_labelled_and_private(dev):
    ng = dev.named("gpu-burst-system").inputs
    assert ng["capacityType"] == "ON_DEMAND"
    assert ng["labels"] == {"gpu-burst.io/node-role": "system"}
    assert ng["scalingConfig"] == {"desiredSize": 2, "minSize": 2, "maxSize": 3}
    private = [r for r in dev.of_type("aws:ec2/subnet:Subnet") if "-private-" in r.name]
    assert len(ng["subnetIds"]) == len(private) == 3


def test_system_nodes_follow_the_kubernetes_version_and_take_a_pinned_ami_release(dev, mocks):
    # Without `version`, a kubernetesVersion bump would upgrade the control plane and leave the nodes behind.
    assert dev.named("gpu-burst-system").inputs["version"] == "1.35"
    assert "releaseVersion" not in dev.named("gpu-burst-system").inputs  # EKS picks one unless pinned
    m, _ = evaluated("dev", overrides={"systemNodes": {"releaseVersion": "1.35.3-20261118"}})
    assert m.named("gpu-burst-system").inputs["releaseVersion"] == "1.35.3-20261118"


def test_coredns_waits_for_system_nodes_and_pod_identity_agent_comes_first(dev):
    ng_urn = _urn(dev, "gpu-burst-system")
    assert ng_urn in _deps(dev, "gpu-burst-coredns")
    assert _urn(dev, "gpu-burst-pod-identity-agent") in _deps(dev, "gpu-burst-system")
    addons = {r.inputs["addonName"]: r.inputs for r in dev.of_type("aws:eks/addon:Addon")}
    assert set(addons) == {"coredns", "eks-pod-identity-agent"}
    assert all(a["clusterName"] == CLUSTER_NAME for a in addons.values())
    # vpc-cni and kube-proxy are pulumi-eks' own Addons, pinned through its options (tests/test_eks_addon_versions.py).


def test_prod_logs_restricted_endpoint_and_bigger_system_group(prod):
    c = prod.named("gpu-burst-eks").inputs
    assert c["enabledClusterLogTypes"] == ["api", "audit", "authenticator"]
    assert c["publicAccessCidrs"] == ["0.0.0.0/0"]
    ng = prod.named("gpu-burst-system").inputs
    assert ng["scalingConfig"]["minSize"] >= 2
    assert len(prod.of_type("aws:ec2/natGateway:NatGateway")) == 3


# -- network --------------------------------------------------------------------------------------------------------

def test_dev_network_has_three_azs_one_nat_and_lb_tags(dev):
    subnets = dev.of_type("aws:ec2/subnet:Subnet")
    private = sorted((r for r in subnets if "-private-" in r.name), key=lambda r: r.name)
    public = sorted((r for r in subnets if "-public-" in r.name), key=lambda r: r.name)
    assert [r.inputs["cidrBlock"] for r in private] == ["10.40.0.0/19", "10.40.32.0/19", "10.40.64.0/19"]
    assert [r.inputs["cidrBlock"] for r in public] == ["10.40.224.0/22", "10.40.228.0/22", "10.40.232.0/22"]
    assert len({r.inputs["availabilityZone"] for r in private}) == 3
    assert all(r.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1" for r in private)
    assert all(r.inputs["tags"]["kubernetes.io/role/elb"] == "1" for r in public)
    assert len(dev.of_type("aws:ec2/natGateway:NatGateway")) == 1
    nat_routes = [rt.inputs["routes"][0] for rt in dev.of_type("aws:ec2/routeTable:RouteTable") if rt.name.endswith("-rt") and "-private-" in rt.name]
    assert len(nat_routes) == 3 and all("natGatewayId" in r for r in nat_routes)


def test_discovery_tag_uses_the_real_cluster_name_on_private_subnets_and_cluster_sg(dev):
    tags = dev.of_type("aws:ec2/tag:Tag")
    assert {t.inputs["key"] for t in tags} == {"karpenter.sh/discovery"}
    assert {t.inputs["value"] for t in tags} == {CLUSTER_NAME}
    targets = {t.inputs["resourceId"] for t in tags}
    assert CLUSTER_SG in targets
    assert sum(1 for t in targets if t.startswith("subnet-")) == 3
    # The subnets must not strip that tag again on the next update.
    for r in dev.of_type("aws:ec2/subnet:Subnet"):
        if "-private-" in r.name:
            assert r.name in dev.monitor.requests
            assert 'tags["karpenter.sh/discovery"]' in dev.monitor.requests[r.name].ignoreChanges


def test_existing_vpc_is_adopted_without_creating_network_resources(mocks):
    evaluate_stack("dev", overrides={"network": {
        "mode": "existing", "vpcId": "vpc-0abc12345def67890",
        "privateSubnetIds": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"],
        "publicSubnetIds": ["subnet-0bbbbbbbbbbbbbbb1"]}})
    assert not mocks.of_type("aws:ec2/vpc:Vpc") and not mocks.of_type("aws:ec2/subnet:Subnet")
    c = mocks.named("gpu-burst-eks").inputs
    assert c["vpcId"] == "vpc-0abc12345def67890"
    assert c["privateSubnetIds"] == ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"]
    tagged = {t.inputs["resourceId"] for t in mocks.of_type("aws:ec2/tag:Tag")}
    assert {"subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2", CLUSTER_SG} == tagged


# -- karpenter: interruption ---------------------------------------------------------------------------------------

def test_interruption_queue_settings_and_policy(dev):
    queue = dev.named("gpu-burst-interruption")
    assert queue.typ == "aws:sqs/queue:Queue"
    assert queue.inputs["messageRetentionSeconds"] == 300
    assert queue.inputs["sqsManagedSseEnabled"] is True
    assert "name" not in queue.inputs, "queue name must be auto-generated so two stacks can share an account"
    qp = dev.of_type("aws:sqs/queuePolicy:QueuePolicy")[0].inputs
    doc = json.loads(qp["policy"])
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{dev.state(queue.name)['name']}"
    allow, deny = doc["Statement"]
    assert allow["Effect"] == "Allow" and allow["Action"] == "sqs:SendMessage" and allow["Resource"] == queue_arn
    assert sorted(allow["Principal"]["Service"]) == ["events.amazonaws.com", "sqs.amazonaws.com"]
    assert deny == {"Sid": "DenyHTTP", "Effect": "Deny", "Action": "sqs:*", "Resource": queue_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}}, "Principal": "*"}


def test_event_rules_route_every_interruption_event_to_the_queue(dev):
    rules = {r.name: json.loads(r.inputs["eventPattern"]) for r in dev.of_type("aws:cloudwatch/eventRule:EventRule")}
    assert all("name" not in r.inputs for r in dev.of_type("aws:cloudwatch/eventRule:EventRule")), \
        "rule names must be auto-generated so two stacks can share an account"
    detail_types = sorted(p["detail-type"][0] for p in rules.values())
    assert detail_types == sorted([
        "AWS Health Event", "EC2 Spot Instance Interruption Warning", "EC2 Instance Rebalance Recommendation",
        "EC2 Instance State-change Notification", "EC2 Capacity Reservation Instance Interruption Warning"])
    assert {p["source"][0] for p in rules.values()} == {"aws.health", "aws.ec2"}
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{dev.state('gpu-burst-interruption')['name']}"
    targets = dev.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert len(targets) == len(rules)
    rule_names = {dev.state(r.name)["name"] for r in dev.of_type("aws:cloudwatch/eventRule:EventRule")}
    for t in targets:
        assert t.inputs["arn"] == queue_arn
        assert t.inputs["targetId"] == "KarpenterInterruptionQueueTarget"
        assert t.inputs["rule"] in rule_names


# -- karpenter: IAM -------------------------------------------------------------------------------------------------

def test_controller_role_is_assumed_through_pod_identity(dev):
    role = dev.named("gpu-burst-controller-role")
    trust = json.loads(next(r for r in dev.of_type("aws:iam/role:Role") if r.name == "gpu-burst-controller-role")
                       .inputs["assumeRolePolicy"])
    # Only the chart's service account in this cluster may assume it: the session tags Pod Identity sets.
    assert trust["Statement"] == [{
        "Sid": "AllowEksAuthToAssumeRoleForPodIdentity", "Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {"StringEquals": {
            "aws:SourceAccount": ACCOUNT, "aws:RequestTag/eks-cluster-name": CLUSTER_NAME,
            "aws:RequestTag/kubernetes-namespace": "kube-system",
            "aws:RequestTag/kubernetes-service-account": "karpenter"}}}]
    assoc = dev.named("gpu-burst-controller-identity").inputs
    assert (assoc["namespace"], assoc["serviceAccount"]) == ("kube-system", "karpenter")
    assert assoc["clusterName"] == CLUSTER_NAME
    assert role is not None


def test_iam_conditions_use_the_real_cluster_name(dev):
    docs = _policies(dev)
    text = json.dumps(docs)
    assert f"aws:ResourceTag/kubernetes.io/cluster/{CLUSTER_NAME}" in text
    assert f'"aws:RequestTag/eks:eks-cluster-name": "{CLUSTER_NAME}"' in text
    assert docs["EKSIntegration"]["Statement"][0]["Resource"] == f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{CLUSTER_NAME}"
    node_role = dev.state("gpu-burst-node-role")["name"]
    passrole = docs["IAMIntegration"]["Statement"][0]
    assert passrole["Action"] == "iam:PassRole" and passrole["Resource"] == f"arn:aws:iam::{ACCOUNT}:role/{node_role}"


class _CfnLoader(yaml.SafeLoader):
    pass


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_scalar(node)
                                 if isinstance(node, yaml.ScalarNode) else None)


def _upstream_policies(cluster: str, node_role_arn: str, queue_arn: str) -> dict:
    cfn = yaml.load((UPSTREAM / "karpenter" / "cloudformation.yaml").read_text(), Loader=_CfnLoader)
    subs = {"${AWS::Partition}": "aws", "${AWS::Region}": REGION, "${AWS::AccountId}": ACCOUNT,
            "${ClusterName}": cluster, "${KarpenterNodeRole.Arn}": node_role_arn,
            "${KarpenterInterruptionQueue.Arn}": queue_arn}
    out = {}
    for res in cfn["Resources"].values():
        if res["Type"] != "AWS::IAM::ManagedPolicy":
            continue
        text = res["Properties"]["PolicyDocument"]
        for k, v in subs.items():
            text = text.replace(k, v)
        name = re.match(r"KarpenterController(\w+)Policy-", res["Properties"]["ManagedPolicyName"]).group(1)
        out[name] = json.loads(text)
    return out


def _as_sets(doc: dict) -> dict:
    def norm(v):
        return sorted(v) if isinstance(v, list) else [v]
    return {s["Sid"]: (s["Effect"], norm(s["Action"]), norm(s["Resource"]), json.dumps(s.get("Condition"), sort_keys=True))
            for s in doc["Statement"]}


@needs_upstream
def test_controller_policies_match_upstream_cloudformation_statement_for_statement(dev):
    mine = _policies(dev)
    node_role = dev.state("gpu-burst-node-role")["name"]
    queue = dev.state("gpu-burst-interruption")["name"]
    upstream = _upstream_policies(CLUSTER_NAME, f"arn:aws:iam::{ACCOUNT}:role/{node_role}",
                                  f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}")
    assert set(mine) == set(upstream) == {"NodeLifecycle", "IAMIntegration", "EKSIntegration", "Interruption",
                                          "ZonalShift", "ResourceDiscovery"}
    for name in upstream:
        assert _as_sets(mine[name]) == _as_sets(upstream[name]), name
    # And every policy is attached to the controller role.
    attached = [r for r in dev.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if r.inputs["policyArn"].startswith(f"arn:aws:iam::{ACCOUNT}:policy/")
                and r.name.startswith("gpu-burst-") and not r.name.startswith("gpu-burst-lbc-")]
    assert len(attached) == 6
    assert all(r.inputs["role"] == dev.state("gpu-burst-controller-role")["name"] for r in attached)


MUTATING = re.compile(r"^(ec2|iam):(Run|Create|Delete|Terminate|Add|Remove|Pass|Tag|Modify|Attach|Put)")


def test_no_mutating_ec2_or_iam_action_on_star_without_condition(dev):
    for name, doc in _policies(dev).items():
        for s in doc["Statement"]:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            if any(MUTATING.match(a) for a in actions):
                assert "*" not in resources, f"{name}/{s['Sid']} grants a mutating action on *"
                scoped = "Condition" in s or all(r.endswith(("image/*", "snapshot/*", "security-group/*", "subnet/*",
                                                             "capacity-reservation/*", "placement-group/*"))
                                                 or r.startswith("arn:aws:iam::") and ":role/" in r
                                                 for r in resources)
                assert scoped, f"{name}/{s['Sid']} grants {actions} without a tag/name condition"


def test_every_policy_fits_the_managed_policy_size_limit(dev):
    for name, doc in _policies(dev).items():
        assert len(json.dumps(doc, separators=(",", ":"))) < 6144, name


# -- karpenter: Helm ------------------------------------------------------------------------------------------------

def _release(mocks, release_name):
    return next(r for r in mocks.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == release_name)


def test_karpenter_helm_values_use_outputs_for_names(dev):
    rel = _release(dev, "karpenter")
    v = rel.inputs["values"]
    assert rel.inputs["chart"] == "oci://public.ecr.aws/karpenter/karpenter"
    assert rel.inputs["version"] == "1.14.1"
    assert rel.inputs["namespace"] == "kube-system"
    assert rel.inputs["skipCrds"] is True
    assert v["settings"]["clusterName"] == CLUSTER_NAME
    assert v["settings"]["interruptionQueue"] == dev.state("gpu-burst-interruption")["name"]
    assert v["serviceAccount"]["name"] == "karpenter"
    assert {"name": "AWS_REGION", "value": REGION} in v["controller"]["env"]
    assert v["nodeSelector"] == {"gpu-burst.io/node-role": "system"}
    assert v["replicas"] == 1  # dev sets one replica to leave room on its two small system nodes
    assert v["controller"]["resources"] == {"requests": {"cpu": "500m", "memory": "768Mi"},
                                            "limits": {"cpu": "500m", "memory": "768Mi"}}
    # Names flow as data dependencies, not as strings typed twice.
    pdeps = dev.monitor.requests["gpu-burst-release"].propertyDependencies
    assert _urn(dev, "gpu-burst-eks") in set(pdeps["values"].urns)


def test_prod_runs_two_karpenter_replicas(prod):
    v = _release(prod, "karpenter").inputs["values"]
    assert v["replicas"] == 2
    # Upstream's getting-started figures, the default of karpenter.controllerCpu/controllerMemory.
    assert v["controller"]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}


@needs_upstream
def test_karpenter_values_keys_exist_in_the_chart(dev):
    values = _release(dev, "karpenter").inputs["values"]
    assert unknown_value_keys("karpenter", values, open_paths=("nodeSelector",)) == []
    assert unknown_value_keys("karpenter", {"settings": {"clusterNme": "x"}}) == ["settings.clusterNme"]


def test_crd_chart_is_installed_before_the_controller_and_identity_before_both(dev):
    crd = _release(dev, "karpenter-crd")
    assert crd.inputs["chart"] == "oci://public.ecr.aws/karpenter/karpenter-crd"
    assert crd.inputs["version"] == "1.14.1"
    deps = _deps(dev, "gpu-burst-release")
    for needed in ("gpu-burst-crds", "gpu-burst-release", "gpu-burst-node-role", "gpu-burst-pod-identity-agent",
                   "gpu-burst-coredns"):
        matches = [u for u in dev.monitor.resources if u.endswith(f"::{needed}")]
        assert matches, needed
    assoc_urn = next(u for u in dev.monitor.resources if u.endswith("PodIdentityAssociation::gpu-burst-controller-identity"))
    entry_urn = next(u for u in dev.monitor.resources if "accessEntry:AccessEntry" in u)
    crd_urn = next(u for u in dev.monitor.resources if u.endswith("Release::gpu-burst-crds"))
    agent_urn = _urn(dev, "gpu-burst-pod-identity-agent")
    assert {assoc_urn, entry_urn, crd_urn, agent_urn} <= deps
    # Both releases use the cluster's provider, not an ambient kubeconfig.
    assert "gpu-burst-k8s" in dev.monitor.requests["gpu-burst-release"].provider
    assert "gpu-burst-k8s" in dev.monitor.requests["gpu-burst-crds"].provider


def test_spot_service_linked_role_is_opt_in(mocks):
    evaluate_stack("dev", overrides={"karpenter": {"chartVersion": "1.14.1", "replicas": 1, "controllerCpu": "500m",
                                                   "createSpotServiceLinkedRole": True}})
    slr = mocks.of_type("aws:iam/serviceLinkedRole:ServiceLinkedRole")
    assert [r.inputs["awsServiceName"] for r in slr] == ["spot.amazonaws.com"]
    # Account-wide: `destroy` must leave it for everything else in the account.
    assert mocks.monitor.requests[slr[0].name].retainOnDelete is True


def test_spot_service_linked_role_absent_by_default(dev):
    assert dev.of_type("aws:iam/serviceLinkedRole:ServiceLinkedRole") == []


# -- availability zones -------------------------------------------------------------------------------------------

def test_local_and_wavelength_zones_are_never_used(mocks):
    evaluate_stack("dev", overrides={"network": {"cidr": "10.40.0.0/16", "azCount": 4, "natGateways": "single"}})
    zones = sorted({r.inputs["availabilityZone"] for r in mocks.of_type("aws:ec2/subnet:Subnet")})
    assert zones == [f"{REGION}{z}" for z in "abcd"]
    (call,) = [c for c in mocks.calls if c.token == "aws:index/getAvailabilityZones:getAvailabilityZones"]
    assert {f["name"]: f["values"] for f in call.args["filters"]} == {
        "zone-type": ["availability-zone"], "opt-in-status": ["opt-in-not-required"]}


def test_az_count_beyond_the_region_is_a_config_error_before_any_resource(mocks):
    with pytest.raises(Exception) as e:
        evaluate_stack("dev", overrides={"network": {"cidr": "10.40.0.0/16", "azCount": 5, "natGateways": "single"}})
    assert (f"gpu-burst:network.azCount: 5 AZs requested but {REGION} has 4 ({REGION}a, {REGION}b, {REGION}c, "
            f"{REGION}d; Local and Wavelength Zones are not used); allowed: 2 to 4") in str(e.value)
    assert mocks.created == [], "nothing may be registered before the config error"
