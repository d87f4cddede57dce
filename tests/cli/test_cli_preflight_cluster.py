"""`preflight --cluster` against the fake Kubernetes API server: a cluster shaped like the one Pulumi.byo.yaml
describes (Karpenter and kube-prometheus-stack installed by their charts), and what goes wrong with it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest
import yaml
from botocore.stub import Stubber

from burstctl import preflight as pf
from burstctl.k8s import KubeClusterReader
from burstctl.preflight_cluster import cluster_checks, selects
from stacks.config.foundation import ClusterMode
from upstream import UPSTREAM, needs_upstream

ROOT = Path(__file__).resolve().parents[2]
BYO = ROOT / "Pulumi.byo.yaml"
KPS = "kube-prometheus-stack"
PROM = ("monitoring", f"{KPS}-prometheus:9090")
UP = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"__name__": "up", "job": "apiserver"}, "value": [1767225600.0, "1"]}]}}


def prometheus_answers(path: str, query: dict) -> tuple[int, dict, str]:
    """Prometheus behind the service proxy: the instant query API."""
    assert path == "/api/v1/query" and query == {"query": ["up"]}, (path, query)
    return 200, UP, "application/json"


def no_endpoints(path: str, query: dict) -> tuple[int, dict, str]:
    """What the API server answers for a Service whose pods are not ready."""
    return 503, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 503,
                 "reason": "ServiceUnavailable", "message": f'no endpoints available for service "{KPS}-prometheus"'}, \
        "application/json"


def crd(name: str, version: str, fields: tuple[str, ...] = (), helm_release: str = "") -> dict:
    """A CustomResourceDefinition as the API server returns it (spec.versions with served/storage and a schema);
    `helm_release` "<namespace>/<name>": the ownership metadata Helm writes on what a release's templates install
    (CRDs from a chart's crds/ folder get none)."""
    plural, _, group = name.partition(".")
    props = {f: {"type": "string"} for f in fields}
    metadata: dict = {"name": name}
    if helm_release:
        ns, _, release = helm_release.partition("/")
        metadata["labels"] = {"app.kubernetes.io/managed-by": "Helm"}
        metadata["annotations"] = {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": ns}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": metadata, "spec": {"group": group, "scope": "Cluster", "names": {"plural": plural},
                                                 "versions": [{"name": version, "served": True, "storage": True,
                                                               "schema": {"openAPIV3Schema": {
                                                                   "type": "object", "properties": {"spec": {
                                                                       "type": "object", "properties": props}}}}}]}}


def deployment(ns: str, name: str, app: str, image: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/name": app}},
            "spec": {"template": {"spec": {"containers": [{"name": "controller", "image": image}]}}}}


def daemonset(ns: str, name: str, image: str, tolerations: list) -> dict:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": ns},
            "spec": {"template": {"spec": {"containers": [{"name": name, "image": image}],
                                           "tolerations": tolerations}}}}


def service(ns: str, name: str, *ports: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"type": "ClusterIP", "ports": [{"name": f"p{p}", "port": p, "protocol": "TCP"} for p in ports]}}


def prometheus(selector: Any = "release", ns_selector: Any = None) -> dict:
    """kube-prometheus-stack's Prometheus with the chart defaults (…SelectorNilUsesHelmValues: true): monitors and
    rules labelled `release: <release>`, from every namespace."""
    sel = {"matchLabels": {"release": KPS}} if selector == "release" else selector
    ns_sel = {} if ns_selector is None else ns_selector
    spec = {f"{k}Selector": sel for k in ("serviceMonitor", "podMonitor", "rule", "probe")}
    spec.update({f"{k}NamespaceSelector": ns_sel for k in ("serviceMonitor", "podMonitor", "rule", "probe")})
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
            "metadata": {"name": f"{KPS}-prometheus", "namespace": "monitoring"}, "spec": spec}


def cluster_objects() -> list[dict]:
    """The existing cluster of Pulumi.byo.yaml: system nodes, the Pod Identity agent, Karpenter 1.14.1 and
    kube-prometheus-stack, and nothing of what the stack installs itself."""
    return [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ip-10-80-1-10.us-west-2.compute.internal",
                                                          "labels": {"eks.amazonaws.com/nodegroup": "system"}}},
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ip-10-80-2-20.us-west-2.compute.internal",
                                                          "labels": {"eks.amazonaws.com/nodegroup": "general"}}},
        daemonset("kube-system", "eks-pod-identity-agent",
                  "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/eks-pod-identity-agent:v0.1.29", []),
        crd("nodepools.karpenter.sh", "v1"),
        crd("ec2nodeclasses.karpenter.k8s.aws", "v1", ("role", "volumeInitializationRate")),
        deployment("kube-system", "karpenter", "karpenter",
                   "public.ecr.aws/karpenter/controller:1.14.1@sha256:" + "0" * 64),
        *(crd(f"{k}.monitoring.coreos.com", "v1") for k in ("servicemonitors", "podmonitors", "prometheusrules")),
        prometheus(),
        service("monitoring", f"{KPS}-prometheus", 9090, 8080),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring", "labels": {
            "kubernetes.io/metadata.name": "monitoring"}}},
    ]


@pytest.fixture
def byo_cfg():
    return pf.load_stack(BYO)


@pytest.fixture
def cluster(fake_kube, tmp_path: Path) -> Callable[..., KubeClusterReader]:
    """Factory: serve `objects` (default: the byo cluster) and return a reader on it."""
    def start(objects: list[dict] | None = None, **behaviour: Any) -> KubeClusterReader:
        path = tmp_path / f"cluster-{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                        "items": cluster_objects() if objects is None else objects}))
        behaviour.setdefault("proxies", {PROM: prometheus_answers})
        kubeconfig = fake_kube(path, auth="token", **behaviour)
        return KubeClusterReader(kubeconfig=str(kubeconfig))
    return start


def run(reader, cfg) -> dict:
    from stacks.config import KARPENTER_MIN_FOR_FIELDS, KARPENTER_MIN_FOR_KUBERNETES

    checks = cluster_checks(reader, cfg, KARPENTER_MIN_FOR_KUBERNETES, KARPENTER_MIN_FOR_FIELDS)
    out: dict = {}
    for c in checks:
        out.setdefault(c.name, c)
    out["_all"] = checks
    return out


def statuses(got: dict) -> list[tuple[str, str]]:
    return [(c.name, c.status) for c in got["_all"]]


def test_the_byo_cluster_passes(cluster, byo_cfg):
    got = run(cluster(), byo_cfg)
    assert statuses(got) == [
        ("system nodes", "pass"), ("pod identity agent", "pass"), ("karpenter API", "pass"),
        ("node role mapping", "skip"), ("karpenter version", "pass"), ("keda", "pass"), ("http add-on", "pass"), ("prometheus operator", "pass"),
        ("prometheus service", "pass"), ("prometheus", "pass"), ("serviceMonitor selection", "pass"),
        ("podMonitor selection", "pass"), ("rule selection", "pass"), ("device plugin", "pass"),
        ("load balancer controller", "pass")]
    assert got["system nodes"].detail == "1 node(s) match eks.amazonaws.com/nodegroup=system"
    assert got["karpenter version"].detail == "Karpenter 1.14.1 on Kubernetes 1.35"
    assert got["serviceMonitor selection"].detail == (
        f"monitoring/{KPS}-prometheus selects serviceMonitors with release={KPS} in inference, keda")


def test_karpenter_too_old_for_the_cluster_version(cluster, byo_cfg):
    objects = cluster_objects()
    objects[5] = deployment("karpenter", "karpenter", "karpenter", "public.ecr.aws/karpenter/controller:1.8.2")
    got = run(cluster(objects), byo_cfg)
    assert got["karpenter version"].status == "fail"
    assert got["karpenter version"].detail == "Karpenter 1.8.2 runs on Kubernetes 1.35"
    assert "from 1.9" in got["karpenter version"].cause
    got = run(cluster(objects, server_version={"major": "1", "minor": "36+", "gitVersion": "v1.36.1-eks-1"}),
              byo_cfg)
    assert "supports Kubernetes 1.36 from 1.13" in got["karpenter version"].cause


def test_karpenter_without_the_v1_api(cluster, byo_cfg):
    objects = [o for o in cluster_objects() if o["metadata"]["name"] != "ec2nodeclasses.karpenter.k8s.aws"]
    objects.append(crd("ec2nodeclasses.karpenter.k8s.aws", "v1beta1"))
    got = run(cluster(objects), byo_cfg)
    assert got["karpenter API"].status == "fail" and "Karpenter 1.0 or later" in got["karpenter API"].cause
    assert "karpenter version" not in got


def test_karpenter_without_a_field_the_stack_sets(cluster, byo_cfg):
    cfg = byo_cfg.model_copy(update={"gpu": byo_cfg.gpu.model_copy(update={
        "data_volume_snapshot_id": "snap-0123456789abcdef0", "volume_initialization_rate_mibps": 200})})
    objects = [o for o in cluster_objects() if o["metadata"]["name"] != "ec2nodeclasses.karpenter.k8s.aws"]
    got = run(cluster([*objects, crd("ec2nodeclasses.karpenter.k8s.aws", "v1", ("role",))]), cfg)
    assert got["karpenter API fields"].status == "fail"
    assert "needs Karpenter 1.5 or later" in got["karpenter API fields"].cause
    assert "karpenter API fields" not in run(cluster(), cfg)


def test_a_karpenter_the_stack_would_install_a_second_time(cluster, byo_cfg):
    k = byo_cfg.karpenter.model_copy(update={"install": True})
    got = run(cluster(), byo_cfg.model_copy(update={"karpenter": k}))
    assert got["karpenter"].status == "fail" and "install: false" in got["karpenter"].cause


def test_no_node_for_the_controllers(cluster, byo_cfg):
    objects = [o for o in cluster_objects() if o["kind"] != "Node"]
    got = run(cluster(objects), byo_cfg)
    assert got["system nodes"].status == "fail"
    assert got["system nodes"].detail == "no node matches cluster.systemNodeSelector eks.amazonaws.com/nodegroup=system"


def test_no_pod_identity_agent(cluster, byo_cfg):
    objects = [o for o in cluster_objects() if o["metadata"]["name"] != "eks-pod-identity-agent"]
    got = run(cluster(objects), byo_cfg)
    assert got["pod identity agent"].status == "fail"
    assert "cluster.installPodIdentityAgent: true" in got["pod identity agent"].cause


def test_monitors_the_existing_prometheus_does_not_select(cluster, byo_cfg):
    objects = cluster_objects()
    objects[9] = prometheus({"matchLabels": {"release": "prometheus"}})
    got = run(cluster(objects), byo_cfg)
    for kind in ("serviceMonitor", "podMonitor", "rule"):
        assert got[f"{kind} selection"].status == "fail", kind
    assert got["serviceMonitor selection"].detail.startswith(
        f"no Prometheus selects serviceMonitors with release={KPS} in inference, keda")
    assert "addons.monitoring.serviceMonitorLabels" in got["serviceMonitor selection"].cause


def test_a_prometheus_that_only_watches_its_own_namespace(cluster, byo_cfg):
    objects = cluster_objects()
    p = prometheus()
    for k in ("serviceMonitor", "podMonitor", "rule"):
        del p["spec"][f"{k}NamespaceSelector"]  # nil: only the Prometheus's own namespace
    objects[9] = p
    got = run(cluster(objects), byo_cfg)
    assert got["serviceMonitor selection"].status == "fail"


def test_prometheus_unreachable(cluster, byo_cfg):
    for proxies in ({}, {PROM: no_endpoints}):
        got = run(cluster(proxies=proxies), byo_cfg)
        assert got["prometheus"].status == "warn"
        assert "through the API server's service proxy" in got["prometheus"].detail
    objects = [o for o in cluster_objects() if o["kind"] != "Service"]
    got = run(cluster(objects), byo_cfg)
    assert got["prometheus service"].status == "fail"
    assert got["prometheus service"].detail == (f"no Service monitoring/{KPS}-prometheus "
                                                "(gpu-burst:addons.monitoring.prometheusUrl)")
    assert "prometheus" not in got


def test_existing_http_addon_keda_and_device_plugin(cluster, byo_cfg):
    a = byo_cfg.addons
    addons = a.model_copy(update={
        "keda": a.keda.model_copy(update={"install": False}),
        "http_addon": a.http_addon.model_copy(update={
            "install": False, "interceptor_service": "keda-add-ons-http-interceptor-proxy",
            "interceptor_namespace": "keda", "interceptor_port": 8080,
            "external_scaler_address": "keda-add-ons-http-external-scaler.keda:9090"}),
        "nvidia_device_plugin": a.nvidia_device_plugin.model_copy(update={"install": False})})
    cfg = byo_cfg.model_copy(update={"addons": addons})
    got = run(cluster(), cfg)
    assert [got[n].status for n in ("keda", "http add-on", "device plugin")] == ["fail", "fail", "fail"]
    objects = [*cluster_objects(), crd("scaledobjects.keda.sh", "v1alpha1"),
               crd("interceptorroutes.http.keda.sh", "v1beta1"),
               service("keda", "keda-add-ons-http-interceptor-proxy", 8080),
               service("keda", "keda-add-ons-http-external-scaler", 9090),
               daemonset("nvidia-device-plugin", "nvidia-device-plugin",
                         "nvcr.io/nvidia/k8s-device-plugin:v0.20.0",
                         [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])]
    got = run(cluster(objects), cfg)
    assert [(n, got[n].status) for n in ("keda", "http add-on", "interceptor", "external scaler", "device plugin")] \
        == [(n, "pass") for n in ("keda", "http add-on", "interceptor", "external scaler", "device plugin")]
    objects[-3] = service("keda", "keda-add-ons-http-interceptor-proxy", 8081)
    got = run(cluster(objects), cfg)
    assert got["interceptor"].status == "fail"
    assert got["interceptor"].detail == "Service keda/keda-add-ons-http-interceptor-proxy has ports [8081], not 8080"


def test_add_ons_the_stack_installs_must_not_be_there(cluster, byo_cfg):
    objects = [*cluster_objects(), crd("scaledobjects.keda.sh", "v1alpha1"),
               deployment("kube-system", "aws-load-balancer-controller", "aws-load-balancer-controller",
                          "public.ecr.aws/eks/aws-load-balancer-controller:v2.13.4"),
               crd("envoyproxies.gateway.envoyproxy.io", "v1alpha1")]
    got = run(cluster(objects), byo_cfg)
    assert got["keda"].status == "fail" and "addons.keda.install: false" in got["keda"].cause
    assert got["load balancer controller"].status == "fail" and got["envoy gateway"].status == "fail"


def _with(cfg, **sections):
    """`cfg` with fields of `section.sub` changed (attribute names): _with(cfg, addons={"monitoring": {"install": True}})."""
    update = {}
    for section, subs in sections.items():
        top = getattr(cfg, section)
        update[section] = top.model_copy(update={k: getattr(top, k).model_copy(update=v) for k, v in subs.items()})
    return cfg.model_copy(update=update)


def test_monitoring_the_stack_would_install_over_monitoring_crds_of_another_release(cluster, byo_cfg):
    """On an existing cluster the stack's prometheus-operator-crds release never takes CRDs over (a destroy would
    delete them with every monitor, rule and Prometheus in the cluster): preflight refuses, naming the switch."""
    cfg = _with(byo_cfg, addons={"monitoring": {"install": True}})
    objects = [o for o in cluster_objects() if not o["metadata"]["name"].endswith(".monitoring.coreos.com")]
    owned = [*objects, *(crd(f"{k}.monitoring.coreos.com", "v1", helm_release="monitoring/prometheus-operator-crds")
                         for k in ("alertmanagers", "podmonitors", "prometheuses", "prometheusrules",
                                   "servicemonitors"))]
    for objs, owner in ((cluster_objects(), "no Helm release owns them"),
                        (owned, "Helm release monitoring/prometheus-operator-crds")):
        check = run(cluster(objs), cfg)["prometheus operator"]
        assert check.status == "fail", owner
        assert owner in check.detail and "monitoring.coreos.com" in check.detail
        assert "addons.monitoring.install: false" in check.cause and "prometheusUrl" in check.cause
        assert "a preview does not show it" in check.cause
    # Nothing of the operator's yet: the stack installs it.
    assert run(cluster(objects), cfg)["prometheus operator"].status == "pass"


GATEWAY_API = crd("gatewayclasses.gateway.networking.k8s.io", "v1", helm_release="istio-system/istio-base")
GROUP_CONFLICTS = {
    # CRDs of a group the stack installs, as other installers leave them; the check; the switch its cause names.
    "gateway API from another gateway": ([GATEWAY_API, crd("httproutes.gateway.networking.k8s.io", "v1")],
                                         "gateway API CRDs", "gateway.envoyGateway.install: false"),
    "envoy gateway": ([crd("envoyproxies.gateway.envoyproxy.io", "v1alpha1")], "envoy gateway",
                      "gateway.envoyGateway.install: false"),
    "load balancer controller CRDs without its controller": (
        [crd("targetgroupbindings.elbv2.k8s.aws", "v1beta1"), crd("ingressclassparams.elbv2.k8s.aws", "v1beta1")],
        "load balancer controller", "gateway.loadBalancerController.install: false"),
    "NFD of the GPU Operator": ([crd("nodefeatures.nfd.k8s-sigs.io", "v1alpha1", helm_release="gpu-operator/gpu-operator"),
                                 crd("nodefeaturerules.nfd.k8s-sigs.io", "v1alpha1",
                                     helm_release="gpu-operator/gpu-operator")],
                                "feature discovery CRDs", "addons.nvidiaDevicePlugin.gfdEnabled: false"),
}


@pytest.mark.parametrize("case", sorted(GROUP_CONFLICTS))
def test_crds_the_stack_would_install_must_not_exist(cluster, byo_cfg, case):
    """pulumi-kubernetes (4.29+) refuses to create an object that exists, which only `up` shows: each CRD group the
    stack would install that the cluster already has fails, naming the key that turns that install off."""
    extra, name, key = GROUP_CONFLICTS[case]
    before = run(cluster(), byo_cfg)
    assert name not in before or before[name].status == "pass", before.get(name)
    got = run(cluster([*cluster_objects(), *extra]), byo_cfg)
    check = got[name]
    assert check.status == "fail", (case, check)
    assert f"gpu-burst:{key}" in check.cause and "already exist" in check.detail, check
    assert check.data["crds"] == sorted(o["metadata"]["name"] for o in extra)
    annotations = extra[0]["metadata"].get("annotations")
    if annotations:  # who installed them, so the user knows whose they are
        owner = f"Helm release {annotations['meta.helm.sh/release-namespace']}/{annotations['meta.helm.sh/release-name']}"
        assert owner in check.detail and owner in check.data["owners"]


@needs_upstream
def test_the_groups_checked_are_those_of_the_crds_the_stack_installs():
    """The CRD files of the pinned releases (the ones the stack applies or renders) name exactly these groups."""
    import re

    from burstctl import preflight_cluster as pc

    def groups(*files: str) -> tuple:
        return tuple(sorted({g for f in files for g in re.findall(r"^  group: (\S+)$", (UPSTREAM / f).read_text(),
                                                                       re.M)}))
    assert groups("envoy-gateway/gatewayapi-crds.yaml") == tuple(sorted(pc.GATEWAY_API_GROUPS))
    assert groups(*(f"envoy-gateway/{p.name}" for p in (UPSTREAM / "envoy-gateway").glob("gateway.envoyproxy.io_*"))) \
        == pc.EG_GROUPS
    assert groups("aws-load-balancer-controller/crds.yaml", "aws-load-balancer-controller/gateway-crds.yaml") \
        == tuple(sorted(pc.LBC_GROUPS))
    assert groups(*(f"prometheus-operator/{p.name}" for p in (UPSTREAM / "prometheus-operator").glob("*.yaml"))) \
        == (pc.MONITORING_GROUP,)


def test_the_switch_each_conflict_names_turns_that_install_off(cluster, byo_cfg):
    objects = [*cluster_objects(), *(o for extra, _, _ in GROUP_CONFLICTS.values() for o in extra)]
    cfg = _with(byo_cfg, addons={"nvidia_device_plugin": {"gfd_enabled": False}},
                gateway={"load_balancer_controller": {"install": False}})
    got = run(cluster(objects), cfg)
    assert "feature discovery CRDs" not in got
    assert got["load balancer controller"].detail.startswith("no AWS Load Balancer Controller Deployment")
    cfg = _with(cfg, gateway={"envoy_gateway": {"install": False, "namespace": "envoy-gateway-system"},
                              "ai_gateway": {"install": False}})
    got = run(cluster(objects), cfg)
    assert "gateway API CRDs" not in got
    assert got["envoy gateway"].detail == "no ConfigMap envoy-gateway-system/envoy-gateway-config"


def test_a_cluster_the_stack_created_holds_only_its_own_crds(cluster, byo_cfg):
    """`cluster.mode: create`: every CRD there is the stack's own (installed, or adopted from an earlier release)."""
    cfg = _with(byo_cfg, addons={"monitoring": {"install": True}})
    cfg = cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"mode": ClusterMode.CREATE})})
    assert not cfg.existing_cluster
    objects = [*cluster_objects(), *(o for extra, _, _ in GROUP_CONFLICTS.values() for o in extra)]
    got = run(cluster(objects), cfg)
    assert not {"gateway API CRDs", "feature discovery CRDs"} & set(got)
    assert got["prometheus operator"].status == "warn"


def test_existing_front_door(cluster, byo_cfg):
    gw = byo_cfg.gateway
    cfg = byo_cfg.model_copy(update={"gateway": gw.model_copy(update={
        "envoy_gateway": gw.envoy_gateway.model_copy(update={"install": False, "namespace": "envoy-gateway-system"}),
        "ai_gateway": gw.ai_gateway.model_copy(update={"install": False}),
        "load_balancer_controller": gw.load_balancer_controller.model_copy(update={"install": False})})})
    eg_config = {"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "EnvoyGateway",
                 "provider": {"type": "Kubernetes"}, "extensionApis": {"enableBackend": True},
                 "extensionManager": {"service": {"fqdn": {
                     "hostname": "ai-gateway-controller.envoy-ai-gateway-system.svc.cluster.local", "port": 1063}}}}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "envoy-gateway-config",
                                                                "namespace": "envoy-gateway-system"},
          "data": {"envoy-gateway.yaml": yaml.safe_dump(eg_config)}}
    objects = [*cluster_objects(), crd("envoyproxies.gateway.envoyproxy.io", "v1alpha1"), cm,
               crd("aigatewayroutes.aigateway.envoyproxy.io", "v1beta1"),
               crd("gatewayconfigs.aigateway.envoyproxy.io", "v1beta1"),
               deployment("kube-system", "aws-load-balancer-controller", "aws-load-balancer-controller",
                          "public.ecr.aws/eks/aws-load-balancer-controller:v2.13.4")]
    got = run(cluster(objects), cfg)
    assert [(n, got[n].status) for n in ("envoy gateway", "ai gateway", "load balancer controller")] == [
        ("envoy gateway", "pass"), ("ai gateway", "pass"), ("load balancer controller", "pass")]
    bad = copy.deepcopy(eg_config)
    bad["extensionApis"] = {}
    cm["data"]["envoy-gateway.yaml"] = yaml.safe_dump(bad)
    objects[-1] = deployment("kube-system", "aws-load-balancer-controller", "aws-load-balancer-controller",
                             "public.ecr.aws/eks/aws-load-balancer-controller:v2.8.3")
    got = run(cluster(objects), cfg)
    assert got["envoy gateway"].status == "fail" and "enableBackend is not true" in got["envoy gateway"].detail
    assert got["load balancer controller"].status == "fail" and "needs 2.9.0 or later" in \
        got["load balancer controller"].cause


@pytest.mark.parametrize("selector, labels, expected", [
    (None, {"release": "x"}, False), ({}, {"release": "x"}, True),
    ({"matchLabels": {"release": "x"}}, {"release": "x", "a": "b"}, True),
    ({"matchExpressions": [{"key": "release", "operator": "In", "values": ["x", "y"]}]}, {"release": "y"}, True),
    ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, {"release": "x"}, False),
    ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, {"release": "x"}, True),
    ({"matchExpressions": [{"key": "release", "operator": "NotIn", "values": ["x"]}]}, {"release": "x"}, False),
])
def test_label_selectors(selector, labels, expected):
    assert selects(selector, labels) is expected


# -- the command: AWS (stubbed EKS) and the cluster together ------------------------------------------------------
def eks_describe(version: str = "1.35", mode: str = "API_AND_CONFIG_MAP") -> object:
    client = boto3.client("eks", region_name="us-west-2")
    stub = Stubber(client)
    stub.add_response("describe_cluster", {"cluster": {
        "name": "ml-platform", "version": version, "status": "ACTIVE", "accessConfig": {"authenticationMode": mode},
        "resourcesVpcConfig": {"vpcId": "vpc-0b7e4c1d2a3f45678", "subnetIds": ["subnet-0a1a2a3a4a5a6a701"]}}},
        expected_params={"name": "ml-platform"})
    stub.activate()
    return client


def test_preflight_command_with_cluster(cluster, byo_cfg, invoke, monkeypatch, tmp_path: Path):
    cluster()  # serves the byo cluster and writes its kubeconfig
    kc = sorted(tmp_path.glob("kubeconfig-*"))[-1]
    clients = pf.AwsClients(None, None, None, "us-west-2", None, None, eks_describe("1.33"))
    monkeypatch.setattr(pf, "make_clients", lambda *a, **k: clients)
    result = invoke("preflight", "--stack-file", BYO, "--cluster", "--kubeconfig", kc, "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 1
    names = [(c["name"], c["status"]) for c in doc["checks"]]
    assert names[0] == ("existing cluster", "fail")
    assert "it runs Kubernetes 1.33; the stack supports 1.35, 1.36" in doc["checks"][0]["detail"]
    # The cluster checks still run, so one pass shows everything to fix.
    assert ("karpenter API", "pass") in names and ("prometheus", "pass") in names


def test_existing_cluster_version_is_the_one_the_ami_check_uses(byo_cfg):
    clients = pf.AwsClients(None, None, None, "us-west-2", None, None, eks_describe("1.36"))
    checks, cfg = pf.check_existing_cluster(clients, byo_cfg)
    assert [(c.name, c.status) for c in checks] == [("existing cluster", "pass")]
    assert checks[0].detail == "ml-platform is ACTIVE, Kubernetes 1.36, authenticationMode API_AND_CONFIG_MAP"
    assert cfg.cluster.kubernetes_version == "1.36"
    ssm = boto3.client("ssm", region_name="us-west-2")
    stub = Stubber(ssm)
    path = pf.ami_parameter("al2023", "v20260714", "1.36", "x86_64")
    stub.add_response("get_parameter", {"Parameter": {"Name": path, "Type": "String", "Value": "ami-0123456789abcdef0",
                                                      "Version": 1}}, expected_params={"Name": path})
    stub.activate()
    ami = pf.check_ami(pf.AwsClients(None, None, None, "us-west-2", ssm), cfg)
    assert [c.status for c in ami] == ["pass"] and ami[0].data["kubernetes"] == "1.36"
    # What an existing cluster's owner manages is not checked as if the stack created it.
    assert [c.status for c in pf.check_addon_versions(clients, cfg)] == ["skip"]
    assert [c.status for c in pf.check_cluster_creator(clients, cfg)] == ["skip"]


def test_existing_cluster_that_cannot_take_the_karpenter_the_stack_installs(byo_cfg):
    cfg = byo_cfg.model_copy(update={"karpenter": byo_cfg.karpenter.model_copy(update={"install": True})})
    checks, _ = pf.check_existing_cluster(pf.AwsClients(None, None, None, "us-west-2", None, None,
                                                        eks_describe("1.35", "CONFIG_MAP")), cfg)
    assert checks[0].status == "fail" and "authenticationMode CONFIG_MAP has no access entries" in checks[0].detail


def test_snapshot_commands_use_the_existing_cluster_s_version(aws_session, byo_cfg):
    eks = boto3.client("eks", region_name="us-west-2")
    eks.create_cluster(name="byo-snapshot", version="1.36", roleArn="arn:aws:iam::123456789012:role/eks",
                       resourcesVpcConfig={"subnetIds": []})
    cfg = byo_cfg.model_copy(update={"cluster": byo_cfg.cluster.model_copy(update={"name": "byo-snapshot"})})
    assert pf.with_cluster_version(cfg, "us-west-2").cluster.kubernetes_version == "1.36"
    with pytest.raises(pf.CheckError, match="cannot read EKS cluster nope for its Kubernetes version"):
        pf.with_cluster_version(cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"name": "nope"})}),
                                "us-west-2")


def test_too_few_system_nodes_for_the_karpenter_the_stack_installs(cluster, byo_cfg):
    k = byo_cfg.karpenter.model_copy(update={"install": True})
    objects = [o for o in cluster_objects() if o["kind"] not in ("CustomResourceDefinition", "Deployment")
               or "karpenter" not in o["metadata"]["name"]]
    got = run(cluster(objects), byo_cfg.model_copy(update={"karpenter": k}))
    assert got["system nodes"].status == "fail" and "fewer than the 2 Karpenter replicas" in got["system nodes"].detail
    assert got["karpenter"].status == "pass"


def test_time_sliced_pools_need_the_node_overlay_gate(cluster, byo_cfg):
    pools = [byo_cfg.gpu.pools[0].model_copy(update={"time_slicing": 4}), *byo_cfg.gpu.pools[1:]]
    cfg = byo_cfg.model_copy(update={"gpu": byo_cfg.gpu.model_copy(update={"pools": pools})})
    assert cfg.gpu.slice_counts
    got = run(cluster(), cfg)
    assert got["karpenter node overlays"].status == "fail"
    objects = cluster_objects()
    objects[5]["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "FEATURE_GATES", "value": "ReservedCapacity=true,SpotToSpotConsolidation=false,NodeRepair=false,"
                                           "NodeOverlay=false,StaticCapacity=false,CapacityBuffer=false"}]
    objects.append(crd("nodeoverlays.karpenter.sh", "v1alpha1"))
    got = run(cluster(objects), cfg)
    overlay = got["karpenter node overlays"]
    assert overlay.status == "fail" and "NodeOverlay=false" in overlay.detail
    objects[5]["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "NodeOverlay=true"
    assert run(cluster(objects), cfg)["karpenter node overlays"].status == "pass"
    assert "karpenter node overlays" not in run(cluster(objects), byo_cfg)


def node_role_clients(answer: object, mode_note: str = "") -> pf.AwsClients:
    """IAM answering get_role for the byo node role, EKS answering describe_access_entry with an entry of type
    `answer`, or the error code `answer`."""
    iam = boto3.client("iam", region_name="us-west-2")
    stub = Stubber(iam)
    arn = "arn:aws:iam::123456789012:role/KarpenterNodeRole-ml-platform"
    stub.add_response("get_role", {"Role": {"Path": "/", "RoleName": "KarpenterNodeRole-ml-platform",
                                            "RoleId": "AROAEXAMPLEEXAMPLE01", "Arn": arn,
                                            "CreateDate": "2026-01-01T00:00:00Z"}},
                      expected_params={"RoleName": "KarpenterNodeRole-ml-platform"})
    stub.activate()
    eks = boto3.client("eks", region_name="us-west-2")
    estub = Stubber(eks)
    params = {"clusterName": "ml-platform", "principalArn": arn}
    if answer in ("EC2_LINUX", "STANDARD"):
        estub.add_response("describe_access_entry", {"accessEntry": {
            "clusterName": "ml-platform", "principalArn": arn, "type": answer,
            "accessEntryArn": "arn:aws:eks:us-west-2:123456789012:access-entry/ml-platform/role/x"}},
            expected_params=params)
    else:
        estub.add_client_error("describe_access_entry", service_error_code=str(answer), http_status_code=404,
                               expected_params=params)
    estub.activate()
    return pf.AwsClients(None, iam, None, "us-west-2", None, None, eks)


@pytest.mark.parametrize("answer, mode, status", [
    ("EC2_LINUX", "API", "pass"), ("STANDARD", "API", "fail"),
    ("ResourceNotFoundException", "API", "fail"), ("ResourceNotFoundException", "API_AND_CONFIG_MAP", "warn"),
])
def test_the_existing_node_role_may_join(byo_cfg, answer, mode, status):
    (check,) = pf.check_node_role_access(node_role_clients(answer), byo_cfg, mode)
    assert check.name == "node role access" and check.status == status
    if status == "fail" and answer.startswith("Resource"):
        assert "GPU nodes would never join" in check.cause and "--type EC2_LINUX" in check.cause


def test_aws_auth_mapping_of_the_node_role(cluster, byo_cfg):
    aws_auth = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "aws-auth", "namespace": "kube-system"},
                "data": {"mapRoles": yaml.safe_dump([{
                    "rolearn": "arn:aws:iam::123456789012:role/KarpenterNodeRole-ml-platform",
                    "username": "system:node:{{EC2PrivateDNSName}}",
                    "groups": ["system:bootstrappers", "system:nodes"]}])}}
    got = run(cluster([*cluster_objects(), aws_auth]), byo_cfg)
    assert got["node role mapping"].status == "pass"
