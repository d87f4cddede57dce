"""Installing onto an existing EKS cluster (Pulumi.byo.yaml, `cluster.mode: existing`): the cluster is read before
anything is declared, nothing cluster-level is created, every value that points at an existing part comes from
config, each `install: false` path, and a cluster the stack cannot use stops `up` with the key named."""

import copy
import json

import pulumi
import pytest
import yaml

from pulumi_mocks import (EXISTING_CA, EXISTING_CLUSTER, EXISTING_CLUSTER_SG, EXISTING_ENDPOINT, EXISTING_NODE_ROLE,
                          EXISTING_PRIVATE, EXISTING_PUBLIC, EXISTING_VPC, REGION, Mocks)
from stack_cache import evaluated
from stack_helpers import ROOT, evaluate_stack, resolve

BYO = yaml.safe_load((ROOT / "Pulumi.byo.yaml").read_text())["config"]
KPS = "kube-prometheus-stack"
PROMETHEUS = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
SELECTOR = {"eks.amazonaws.com/nodegroup": "system"}
CLUSTER_LEVEL = (
    "aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/natGateway:NatGateway",
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/routeTable:RouteTable", "aws:ec2/vpcEndpoint:VpcEndpoint", "aws:ec2/tag:Tag", "eks:index:Cluster",
    "aws:eks/cluster:Cluster", "eks:index:ManagedNodeGroup", "aws:eks/nodeGroup:NodeGroup", "aws:eks/addon:Addon",
    "aws:eks/accessEntry:AccessEntry", "aws:cloudwatch/logGroup:LogGroup", "aws:sqs/queue:Queue",
    "gpu-burst:index:EksCluster", "gpu-burst:index:Network", "gpu-burst:index:Karpenter",
    "gpu-burst:index:Monitoring")
"""What an existing cluster already has: nothing of these may be created by the byo stack."""


def merged(**sections) -> dict:
    """Pulumi.byo.yaml's sections with `sections` (camelCase section → mapping) merged in; a None value removes
    that key from the section."""
    def deep(a, b):
        for k, v in b.items():
            if v is None:
                a.pop(k, None)
            elif isinstance(v, dict) and v and isinstance(a.get(k), dict):  # {} replaces: it is a value
                deep(a[k], v)
            else:
                a[k] = v
        return a
    return {f"gpu-burst:{section}": deep(copy.deepcopy(BYO.get(f"gpu-burst:{section}") or {}), patch)
            for section, patch in sections.items()}


def byo(mocks: Mocks, **sections) -> dict:
    """Evaluate the byo stack with `sections` changed (see `merged`)."""
    return evaluate_stack("byo", merged(**sections))


def config_error(mocks: Mocks, **sections) -> str:
    with pytest.raises(Exception) as e:
        byo(mocks, **sections)
    assert mocks.created == [], "nothing may be registered before the config error"
    return str(e.value)


@pytest.fixture(scope="module")
def stack():
    return evaluated("byo")


def _of(mocks, kind):
    return mocks.of_type(kind)


def _deps(mocks, name) -> set:
    return set(mocks.monitor.requests[name].dependencies)


def _urn(mocks, name):
    return next(u for u in mocks.monitor.resources if u.endswith(f"::{name}"))


def _releases(mocks) -> dict:
    return {r.inputs["name"]: r for r in mocks.of_type("kubernetes:helm.sh/v3:Release")}


# -- nothing cluster-level, the cluster read first ------------------------------------------------------------------

def test_the_existing_cluster_gets_no_cluster_level_resource(stack):
    mocks, _ = stack
    found = sorted({r.typ for r in mocks.created if r.typ in CLUSTER_LEVEL})
    assert found == []
    releases = _releases(mocks)
    assert not {"karpenter", "karpenter-crd", "kube-prometheus-stack"} & set(releases), sorted(releases)
    # Karpenter's IAM is the cluster's own: no node or controller role, no access entry, no queue.
    assert not [r for r in mocks.of_type("aws:iam/role:Role") if "karpenter" in json.dumps(r.inputs).lower()]


def test_the_cluster_is_read_before_any_resource_is_declared(stack):
    mocks, _ = stack
    reads = ("aws:eks/getCluster:getCluster", "aws:eks/getAddon:getAddon", "aws:ec2/getSubnets:getSubnets",
             "aws:ec2/getSecurityGroups:getSecurityGroups", "aws:ec2/getRouteTables:getRouteTables",
             "aws:iam/getRole:getRole", "aws:ec2/getVpc:getVpc")
    seen = {c.token: n for c, n in zip(mocks.calls, mocks.resources_at_call) if c.token in reads}
    assert set(seen) == set(reads)
    assert all(n == 0 for n in seen.values()), seen
    (cluster,) = [c for c in mocks.calls if c.token == "aws:eks/getCluster:getCluster"]
    assert cluster.args["name"] == EXISTING_CLUSTER


def test_kubeconfig_reaches_the_existing_cluster_with_aws_eks_get_token(stack):
    mocks, outputs = stack
    (provider,) = mocks.of_type("pulumi:providers:kubernetes")
    kc = json.loads(provider.inputs["kubeconfig"])
    assert kc["clusters"][0]["cluster"] == {"server": EXISTING_ENDPOINT, "certificate-authority-data": EXISTING_CA}
    user = kc["users"][0]["user"]["exec"]
    assert user["command"] == "aws" and user["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert user["args"] == ["--region", REGION, "eks", "get-token", "--cluster-name", EXISTING_CLUSTER,
                            "--output", "json"]
    from pulumi.runtime.sync_await import _sync_await
    assert _sync_await(outputs["kubeconfig"].is_secret()) is True
    assert json.loads(resolve(outputs["kubeconfig"])) == kc
    for r in mocks.created:
        if r.typ.startswith("kubernetes:") and r.name in mocks.monitor.requests:  # not the Service it reads
            assert "gpu-burst-k8s" in mocks.monitor.requests[r.name].provider, r.name


def test_the_kubeconfig_uses_the_stack_profile(mocks):
    evaluate_stack("byo", {"aws:profile": "team-sso"})
    (provider,) = mocks.of_type("pulumi:providers:kubernetes")
    args = json.loads(provider.inputs["kubeconfig"])["users"][0]["user"]["exec"]["args"]
    assert args[-2:] == ["--profile", "team-sso"]


# -- every wiring value comes from config ---------------------------------------------------------------------------

def test_model_scaling_reads_the_configured_prometheus(stack):
    mocks, outputs = stack
    (so,) = _of(mocks, "kubernetes:keda.sh/v1alpha1:ScaledObject")
    triggers = {t["type"]: t["metadata"] for t in so.inputs["spec"]["triggers"]}
    assert triggers["prometheus"]["serverAddress"] == PROMETHEUS
    assert resolve(outputs["prometheusUrl"]) == PROMETHEUS


def test_monitors_and_rules_carry_the_labels_the_existing_prometheus_selects(stack):
    mocks, _ = stack
    monitors = [*_of(mocks, "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"),
                *_of(mocks, "kubernetes:monitoring.coreos.com/v1:PodMonitor")]
    assert len(monitors) == 3  # the model, the interceptor, the edge
    for r in monitors:
        assert r.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack", r.name
    rules = _of(mocks, "kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert len(rules) == 2  # the alerts and the usage recording rules
    for rule in rules:
        assert rule.inputs["metadata"]["labels"]["release"] == KPS, rule.name
    keda = _releases(mocks)["keda"].inputs["values"]["prometheus"]["operator"]["serviceMonitor"]
    assert keda == {"enabled": True, "additionalLabels": {"release": "kube-prometheus-stack"}}
    (dashboard,) = [r for r in _of(mocks, "kubernetes:core/v1:ConfigMap") if r.name.startswith("gpu-burst-dashboards")]
    assert dashboard.inputs["metadata"]["namespace"] == "monitoring"
    assert dashboard.inputs["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_gpu_nodes_use_the_existing_karpenter_node_role_and_discovery_tag(stack):
    mocks, outputs = stack
    (nc,) = _of(mocks, "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    spec = nc.inputs["spec"]
    assert spec["role"] == EXISTING_NODE_ROLE and "instanceProfile" not in spec
    tag = [{"tags": {"karpenter.sh/discovery": EXISTING_CLUSTER}}]
    assert spec["subnetSelectorTerms"] == tag and spec["securityGroupSelectorTerms"] == tag
    assert resolve(outputs["karpenterNodeRole"]) == EXISTING_NODE_ROLE
    # The subnets that tag selects (all private), for `burstctl snapshot build --subnet-id`.
    assert resolve(outputs["privateSubnetIds"]) == EXISTING_PRIVATE
    assert resolve(outputs["vpcId"]) == EXISTING_VPC


def test_pod_identity_associations_name_the_existing_cluster_and_their_service_accounts(stack):
    mocks, _ = stack
    pias = {r.inputs["serviceAccount"]: r.inputs for r in
            _of(mocks, "aws:eks/podIdentityAssociation:PodIdentityAssociation")}
    assert set(pias) == {"aws-load-balancer-controller", "qwen2-5-1-5b-instruct-weights",
                         "qwen2-5-1-5b-instruct-staging"}
    assert {p["clusterName"] for p in pias.values()} == {EXISTING_CLUSTER}
    assert pias["aws-load-balancer-controller"]["namespace"] == "kube-system"
    lbc = _releases(mocks)["aws-load-balancer-controller"].inputs["values"]
    assert lbc["serviceAccount"]["name"] == "aws-load-balancer-controller"
    # Pod Identity hands credentials to a pod by (namespace, service account): each association names a ServiceAccount
    # the stack creates and the pods that need the credentials run as.
    accounts = {(r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"])
                for r in _of(mocks, "kubernetes:core/v1:ServiceAccount")}
    runs_as = {(r.inputs["metadata"]["namespace"], r.inputs["spec"]["template"]["spec"]["serviceAccountName"])
               for kind in ("kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job") for r in _of(mocks, kind)}
    model_pias = {(p["namespace"], sa) for sa, p in pias.items() if sa != "aws-load-balancer-controller"}
    assert model_pias == accounts == runs_as
    assert lbc["clusterName"] == EXISTING_CLUSTER and lbc["vpcId"] == EXISTING_VPC


def test_controllers_run_where_the_config_says(stack):
    mocks, _ = stack
    text = json.dumps([r.inputs for r in mocks.created], default=str)
    assert "gpu-burst.io/node-role" not in text, "the stack's own system label does not exist on this cluster"
    values = {n: r.inputs["values"] for n, r in _releases(mocks).items()}
    assert values["keda"]["nodeSelector"] == SELECTOR
    assert values["keda-add-ons-http"]["interceptor"]["nodeSelector"] == SELECTOR
    assert values["aws-load-balancer-controller"]["nodeSelector"] == SELECTOR
    assert values["eg"]["deployment"]["pod"]["nodeSelector"] == SELECTOR
    assert values["aieg"]["controller"]["nodeSelector"] == SELECTOR
    (proxy,) = _of(mocks, "kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy")
    assert proxy.inputs["spec"]["provider"]["kubernetes"]["envoyDeployment"]["pod"]["nodeSelector"] == SELECTOR
    (job,) = _of(mocks, "kubernetes:batch/v1:Job")
    assert job.inputs["spec"]["template"]["spec"]["nodeSelector"] == SELECTOR


def test_an_empty_selector_lets_controllers_run_on_any_node(mocks):
    byo(mocks, cluster={"systemNodeSelector": {}})
    values = {n: r.inputs["values"] for n, r in _releases(mocks).items()}
    assert values["keda"]["nodeSelector"] == {} and values["aws-load-balancer-controller"]["nodeSelector"] == {}
    assert values["eg"]["deployment"]["pod"]["nodeSelector"] == {}
    (proxy,) = mocks.of_type("kubernetes:gateway.envoyproxy.io/v1alpha1:EnvoyProxy")
    assert proxy.inputs["spec"]["provider"]["kubernetes"]["envoyDeployment"]["pod"]["nodeSelector"] == {}


def test_the_gateway_allows_the_existing_vpc(stack):
    mocks, _ = stack
    nlb = mocks.named("gpu-burst-edge-nlb").inputs
    assert nlb["spec"]["loadBalancerSourceRanges"] == ["10.80.0.0/16"]


# -- each install: false path, and installing onto the existing cluster ---------------------------------------------

def test_karpenter_installed_onto_the_existing_cluster(mocks):
    byo(mocks, karpenter={"install": True, "nodeRoleName": None, "discoveryTag": None})
    releases = _releases(mocks)
    assert {"karpenter", "karpenter-crd"} <= set(releases)
    assert releases["karpenter"].inputs["values"]["nodeSelector"] == SELECTOR
    (entry,) = mocks.of_type("aws:eks/accessEntry:AccessEntry")
    assert entry.inputs["clusterName"] == EXISTING_CLUSTER and entry.inputs["type"] == "EC2_LINUX"
    pias = {r.inputs["serviceAccount"]: r.inputs for r in
            mocks.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")}
    assert pias["karpenter"]["clusterName"] == EXISTING_CLUSTER and pias["karpenter"]["namespace"] == "kube-system"
    # No discovery tag: the cluster's private subnets by id (the public ones, including the one on the main route
    # table's internet gateway without mapPublicIpOnLaunch, are left out) and the cluster security group.
    (nc,) = mocks.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    spec = nc.inputs["spec"]
    assert spec["subnetSelectorTerms"] == [{"id": s} for s in EXISTING_PRIVATE]
    assert spec["securityGroupSelectorTerms"] == [{"id": EXISTING_CLUSTER_SG}]
    role = mocks.state(next(r.name for r in mocks.of_type("aws:iam/role:Role") if r.name.endswith("-node-role")))
    assert spec["role"] == role["name"]
    karpenter = _urn(mocks, "gpu-burst-release")
    for pool in mocks.of_type("kubernetes:karpenter.sh/v1:NodePool"):
        assert karpenter in _deps(mocks, pool.name)
    assert mocks.of_type("aws:ec2/tag:Tag") == [], "subnets of an existing VPC are selected by id, never tagged"


def test_existing_karpenter_with_an_instance_profile_and_an_interruption_queue(mocks):
    outputs = byo(mocks, karpenter={"nodeRoleName": None, "nodeInstanceProfile": f"{EXISTING_NODE_ROLE}-profile",
                                    "interruptionQueue": True})
    (nc,) = mocks.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    assert nc.inputs["spec"]["instanceProfile"] == f"{EXISTING_NODE_ROLE}-profile" and "role" not in nc.inputs["spec"]
    (queue,) = mocks.of_type("aws:sqs/queue:Queue")
    assert len(mocks.of_type("aws:cloudwatch/eventRule:EventRule")) == 5
    assert resolve(outputs["karpenterInterruptionQueue"]) == mocks.state(queue.name)["name"]
    assert not mocks.of_type("aws:iam/role:Role") or all(
        "karpenter" not in json.dumps(r.inputs).lower() for r in mocks.of_type("aws:iam/role:Role"))


def test_existing_http_addon_is_wired_from_config(mocks):
    byo(mocks, addons={"httpAddon": {"install": False, "interceptorService": "http-proxy", "interceptorNamespace":
                                     "autoscaling", "interceptorPort": 8081,
                                     "externalScalerAddress": "http-scaler.autoscaling:9091"}})
    assert "keda-add-ons-http" not in _releases(mocks)
    (so,) = mocks.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject")
    triggers = {t["type"]: t["metadata"] for t in so.inputs["spec"]["triggers"]}
    assert triggers["external-push"]["scalerAddress"] == "http-scaler.autoscaling:9091"
    (backend,) = mocks.of_type("kubernetes:gateway.envoyproxy.io/v1alpha1:Backend")
    assert backend.inputs["spec"]["endpoints"] == [
        {"fqdn": {"hostname": "http-proxy.autoscaling.svc.cluster.local", "port": 8081}}]
    metrics = mocks.named("gpu-burst-edge-interceptor-metrics").inputs
    assert metrics["metadata"]["namespace"] == "autoscaling"


def test_existing_keda(mocks):
    byo(mocks, addons={"keda": {"install": False}})
    releases = _releases(mocks)
    assert "keda" not in releases
    http = releases["keda-add-ons-http"]
    assert not [u for u in _deps(mocks, http.name) if u.endswith("::keda-release")]


def test_monitoring_installed_onto_the_existing_cluster(mocks):
    byo(mocks, addons={"monitoring": {"install": True, "prometheusUrl": None, "serviceMonitorLabels": None,
                                      "ruleLabels": None, "dashboardNamespace": None, "dashboardLabels": None}})
    kps = _releases(mocks)["kube-prometheus-stack"]
    assert kps.inputs["values"]["prometheus"]["prometheusSpec"]["nodeSelector"] == SELECTOR
    # The cluster's monitoring CRDs may belong to another release: never adopted (a destroy would delete them with
    # every monitor in the cluster); `burstctl preflight --cluster` refuses the install when they exist.
    assert not _releases(mocks)["prometheus-operator-crds"].inputs.get("takeOwnership")
    (so,) = mocks.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject")
    assert next(t for t in so.inputs["spec"]["triggers"] if t["type"] == "prometheus")["metadata"][
        "serverAddress"] == "http://kps-prometheus.monitoring.svc:9090"
    for r in mocks.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor"):
        assert r.inputs["metadata"]["labels"].get("release") is None  # the stack's Prometheus selects every monitor


def test_existing_monitoring_without_dashboards_or_alerts(mocks):
    byo(mocks, addons={"monitoring": {"dashboards": False, "alerts": False,
                                      "dashboardNamespace": None, "dashboardLabels": None}})
    # Only the usage recording rules are left, labelled for the cluster's Prometheus.
    (rule,) = mocks.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert rule.name == "gpu-burst-usage-rules" and rule.inputs["metadata"]["labels"]["release"] == KPS
    assert not [r for r in mocks.of_type("kubernetes:core/v1:ConfigMap") if r.name.startswith("gpu-burst-dashboards")]


def test_existing_device_plugin(mocks):
    byo(mocks, addons={"nvidiaDevicePlugin": {"install": False}})
    assert "nvidia-device-plugin" not in _releases(mocks)
    for pool in mocks.of_type("kubernetes:karpenter.sh/v1:NodePool"):
        assert not [u for u in _deps(mocks, pool.name) if "nvidia-device-plugin" in u]


def test_device_plugin_installed_for_al2023_nodes(stack):
    mocks, _ = stack
    plugin = _urn(mocks, "nvidia-device-plugin-release")
    for pool in _of(mocks, "kubernetes:karpenter.sh/v1:NodePool"):
        assert plugin in _deps(mocks, pool.name)


def test_existing_front_door_controllers(mocks):
    byo(mocks, gateway={"envoyGateway": {"install": False, "namespace": "gateway-system"},
                        "aiGateway": {"install": False}, "loadBalancerController": {"install": False}})
    releases = _releases(mocks)
    assert not {"eg", "aieg", "aieg-crd", "aws-load-balancer-controller"} & set(releases)
    assert not mocks.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation") or all(
        r.inputs["serviceAccount"] != "aws-load-balancer-controller"
        for r in mocks.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation"))
    assert mocks.named("gpu-burst-edge-envoy-namespace").inputs["metadata"]["name"] == "gateway-system"
    (pm,) = mocks.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")
    assert pm.inputs["metadata"]["namespace"] == "gateway-system"
    assert pm.inputs["spec"]["namespaceSelector"] == {"matchNames": ["gateway-system"]}
    # The NLB's Service sits with the Envoy pods it targets, where the existing Envoy Gateway runs them.
    assert mocks.named("gpu-burst-edge-nlb").inputs["metadata"]["namespace"] == "gateway-system"
    # The Gateway's custom resources still exist, waiting for nothing of the stack's controllers.
    (gw,) = mocks.of_type("kubernetes:gateway.networking.k8s.io/v1:Gateway")
    assert not [u for u in _deps(mocks, gw.name) if "::gpu-burst-edge-" in u and u.endswith("-release")]


def test_pod_identity_agent_installed_when_absent_and_allowed(mocks):
    mocks.eks_addons.pop((EXISTING_CLUSTER, "eks-pod-identity-agent"))
    byo(mocks, cluster={"installPodIdentityAgent": True})
    (addon,) = mocks.of_type("aws:eks/addon:Addon")
    assert addon.inputs["clusterName"] == EXISTING_CLUSTER and addon.inputs["addonName"] == "eks-pod-identity-agent"
    assert addon.inputs["addonVersion"] == "v1.3.10-eksbuild.3"  # the pinned build for the cluster's 1.35
    assert addon.inputs["resolveConflictsOnCreate"] == "NONE"
    agent = _urn(mocks, addon.name)
    for r in mocks.of_type("kubernetes:helm.sh/v3:Release"):
        assert agent in _deps(mocks, r.name), r.inputs["name"]


def test_a_pod_identity_agent_present_is_never_installed_again(mocks):
    byo(mocks, cluster={"installPodIdentityAgent": True})
    assert mocks.of_type("aws:eks/addon:Addon") == []


def test_the_cluster_version_drives_the_version_dependent_choices(mocks):
    mocks.eks_clusters[EXISTING_CLUSTER] = Mocks.existing_cluster(version="1.36")
    mocks.eks_addons.pop((EXISTING_CLUSTER, "eks-pod-identity-agent"))
    byo(mocks, cluster={"installPodIdentityAgent": True})
    (addon,) = mocks.of_type("aws:eks/addon:Addon")
    from stacks.config.eks_addons import DEFAULT_ADDON_VERSIONS
    assert addon.inputs["addonVersion"] == DEFAULT_ADDON_VERSIONS["1.36"]["eks-pod-identity-agent"]


# -- a cluster the stack cannot use: one line per problem, the key named, nothing declared --------------------------

def test_unknown_cluster(mocks):
    text = config_error(mocks, cluster={"name": "nope"})
    assert (f"gpu-burst:cluster.name: cannot read EKS cluster 'nope' in {REGION} (reading EKS Cluster (nope): "
            "couldn't find resource); allowed: the name of a cluster in us-west-2 that these credentials may "
            "describe (`aws eks list-clusters --region us-west-2`)") in text


def test_unsupported_kubernetes_version(mocks):
    mocks.eks_clusters[EXISTING_CLUSTER] = Mocks.existing_cluster(version="1.33")
    text = config_error(mocks)
    assert ("gpu-burst:cluster.name: cluster 'ml-platform' runs Kubernetes 1.33, which the stack does not support "
            "(GPU AMIs, Karpenter and add-on builds are pinned for 1.35, 1.36); allowed: a cluster on one of those "
            "(upgrade it first)") in text


def test_cluster_not_active(mocks):
    mocks.eks_clusters[EXISTING_CLUSTER] = Mocks.existing_cluster(status="CREATING")
    text = config_error(mocks)
    assert "gpu-burst:cluster.name: cluster 'ml-platform' is CREATING; allowed: an ACTIVE cluster" in text


def test_config_map_only_authentication_cannot_take_the_karpenter_node_access_entry(mocks):
    mocks.eks_clusters[EXISTING_CLUSTER] = Mocks.existing_cluster(mode="CONFIG_MAP")
    text = config_error(mocks, karpenter={"install": True, "nodeRoleName": None, "discoveryTag": None})
    assert ("gpu-burst:karpenter.install: the stack gives the node role of the Karpenter it installs an EC2_LINUX "
            "access entry, but cluster 'ml-platform' has authenticationMode CONFIG_MAP") in text


def test_config_map_only_authentication_is_fine_when_nothing_needs_an_access_entry(mocks):
    mocks.eks_clusters[EXISTING_CLUSTER] = Mocks.existing_cluster(mode="CONFIG_MAP")
    byo(mocks)
    assert mocks.of_type("aws:eks/accessEntry:AccessEntry") == []


def test_missing_pod_identity_agent(mocks):
    mocks.eks_addons.pop((EXISTING_CLUSTER, "eks-pod-identity-agent"))
    text = config_error(mocks)
    assert ("gpu-burst:cluster.installPodIdentityAgent: cluster 'ml-platform' has no eks-pod-identity-agent add-on, "
            "which the stack's Pod Identity associations need; allowed: true (the stack installs build "
            "v1.3.10-eksbuild.3), or install it yourself") in text


def test_discovery_tag_that_selects_nothing(mocks):
    text = config_error(mocks, karpenter={"discoveryTag": "other-cluster"})
    assert (f"gpu-burst:karpenter.discoveryTag: no subnet of {EXISTING_VPC} (the VPC of cluster 'ml-platform') is "
            "tagged karpenter.sh/discovery=other-cluster") in text
    assert f"gpu-burst:karpenter.discoveryTag: no security group of {EXISTING_VPC} is tagged" in text


def test_discovery_tag_on_a_public_subnet(mocks):
    mocks.subnets[EXISTING_PUBLIC[2]]["tags"]["karpenter.sh/discovery"] = EXISTING_CLUSTER
    text = config_error(mocks)
    assert (f"gpu-burst:karpenter.discoveryTag: subnet {EXISTING_PUBLIC[2]} is tagged "
            "karpenter.sh/discovery=ml-platform but routes 0.0.0.0/0 to an internet gateway") in text


def test_configured_subnets_must_be_private_subnets_of_the_cluster_vpc(mocks):
    mocks.subnets["subnet-0c1c2c3c4c5c6c701"] = {"vpcId": "vpc-0999999999999999a", "availabilityZone": "us-west-2a",
                                                 "mapPublicIpOnLaunch": False, "tags": {}}
    text = config_error(
        mocks, karpenter={"install": True, "nodeRoleName": None, "discoveryTag": None},
        network={"mode": "existing", "vpcId": "vpc-0999999999999999a",
                 "privateSubnetIds": [EXISTING_PRIVATE[0], EXISTING_PUBLIC[0], "subnet-0c1c2c3c4c5c6c701"]})
    lines = [line for line in text.splitlines() if line.startswith("gpu-burst:network")]
    assert lines == [
        f"gpu-burst:network.vpcId: 'vpc-0999999999999999a' is not the VPC of cluster 'ml-platform' ({EXISTING_VPC}); "
        f"allowed: {EXISTING_VPC}, or remove gpu-burst:network",
        f"gpu-burst:network.privateSubnetIds[1]: {EXISTING_PUBLIC[0]} gives instances public IPs "
        "(mapPublicIpOnLaunch): GPU nodes get no public IP there; allowed: a private subnet (NAT or VPC endpoints)",
        "gpu-burst:network.privateSubnetIds[2]: subnet-0c1c2c3c4c5c6c701 is in vpc-0999999999999999a, not in "
        f"{EXISTING_VPC} (the VPC of cluster 'ml-platform'); allowed: a private subnet of {EXISTING_VPC}",
    ]


def test_configured_private_subnets_are_used_by_id(mocks):
    byo(mocks, karpenter={"install": True, "nodeRoleName": None, "discoveryTag": None},
        network={"mode": "existing", "vpcId": EXISTING_VPC, "privateSubnetIds": EXISTING_PRIVATE[:2]})
    (nc,) = mocks.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    assert nc.inputs["spec"]["subnetSelectorTerms"] == [{"id": s} for s in EXISTING_PRIVATE[:2]]


def test_no_private_subnet_in_the_cluster(mocks):
    mocks.eks_clusters[EXISTING_CLUSTER]["vpcConfig"]["subnetIds"] = list(EXISTING_PUBLIC)
    text = config_error(mocks, karpenter={"install": True, "nodeRoleName": None, "discoveryTag": None})
    assert "gpu-burst:network.privateSubnetIds: none of the subnets of cluster 'ml-platform' (" in text


def test_missing_node_role(mocks):
    text = config_error(mocks, karpenter={"nodeRoleName": "KarpenterNodeRole-gone"})
    assert ("gpu-burst:karpenter.nodeRoleName: no IAM role 'KarpenterNodeRole-gone' can be read (reading IAM Role "
            "(KarpenterNodeRole-gone): couldn't find resource)") in text


def test_bottlerocket_release_without_the_clusters_variant(mocks):
    mocks.eks_clusters[EXISTING_CLUSTER] = Mocks.existing_cluster(version="1.36")
    text = config_error(mocks, gpu={"amiFamily": "bottlerocket", "amiVersion": "v1.53.0"})
    assert ("gpu-burst:gpu.amiVersion: 'v1.53.0' has no aws-k8s-1.36-nvidia variant (added in v1.61.0); allowed: "
            "v1.61.0 or later for Kubernetes 1.36 (the version of cluster 'ml-platform')") in text


def test_every_problem_of_the_cluster_at_once(mocks):
    mocks.eks_clusters[EXISTING_CLUSTER] = Mocks.existing_cluster(version="1.34", mode="CONFIG_MAP")
    mocks.eks_addons.pop((EXISTING_CLUSTER, "eks-pod-identity-agent"))
    text = config_error(mocks, karpenter={"install": True, "nodeRoleName": None, "discoveryTag": None})
    keys = [line.split(": ", 1)[0] for line in text.splitlines() if line.startswith("gpu-burst:")]
    assert keys == ["gpu-burst:cluster.name", "gpu-burst:karpenter.install",
                    "gpu-burst:cluster.installPodIdentityAgent"]


def test_a_configured_subnet_that_does_not_exist(mocks):
    text = config_error(
        mocks, karpenter={"install": True, "nodeRoleName": None, "discoveryTag": None},
        network={"mode": "existing", "vpcId": EXISTING_VPC,
                 "privateSubnetIds": [EXISTING_PRIVATE[0], "subnet-0deadbeefdeadbeef"]})
    assert ("gpu-burst:network.privateSubnetIds[1]: subnet-0deadbeefdeadbeef cannot be read (no matching EC2 Subnet "
            f"found); allowed: the id of a private subnet of {EXISTING_VPC} (the VPC of cluster 'ml-platform')") in text


def test_the_in_cluster_redis_runs_where_the_config_says(mocks):
    """A token budget on an existing cluster without the stack's own system label: Valkey follows the selector."""
    byo(mocks, gateway={"keys": {"default": {"tokensPerDay": 100000}}, "rateLimit": {"redis": {"mode": "inCluster"}}})
    (valkey,) = [r for r in mocks.of_type("kubernetes:apps/v1:Deployment")
                 if r.inputs["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "rate-limit-redis"]
    assert valkey.inputs["spec"]["template"]["spec"]["nodeSelector"] == SELECTOR
