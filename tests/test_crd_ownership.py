"""CRDs follow their charts: every CRD the stacks need is installed by a resource that Pulumi updates when its pinned
version changes, never by a chart's crds/ folder (Helm installs that once and never upgrades it), and every custom
resource (ours, and those the charts create from our values) depends on that resource: on create its CRD exists, on
destroy it goes first.

What each chart does with its CRDs, read at the pinned tags (docs/gpu-and-addons.md "CRDs"):
- templates/ (Helm upgrades them with the release): karpenter-crd 1.14.1, keda 2.20.2 and keda-add-ons-http 0.15.0
  (`crds.install`), ai-gateway-crds-helm v1.1.0, prometheus-operator-crds 31.0.1 (its `crds` subchart),
  gateway-crds-helm v1.9.0 (`crds.gatewayAPI.enabled`, `crds.envoyGateway.enabled`).
- crds/ (must be skipped): karpenter, gateway-helm v1.9.0 (its `crds` subchart, `crds.enabled`),
  aws-load-balancer-controller 3.5.0 (crds.yaml, gateway-crds.yaml), kube-prometheus-stack 88.5.3 (its `crds`
  subchart, `crds.enabled`), nvidia-device-plugin 0.20.0 (the node-feature-discovery 0.19.0 subchart).
"""

import re

import pulumi_kubernetes
import pytest

from stack_cache import evaluated
from upstream import load_upstream, needs_upstream, unknown_value_keys

from components import load_balancer_controller as lbc
from components import nvidia_device_plugin as device_plugin
from stacks.config.addons import NFD_CHARTS, OPERATOR_CRDS_CHARTS

GATEWAY_API = {"gateway.networking.k8s.io", "gateway.networking.x-k8s.io"}
EG_GROUPS = GATEWAY_API | {"gateway.envoyproxy.io"}
LBC_GROUPS = {"elbv2.k8s.aws", "aga.k8s.aws", "gateway.k8s.aws"}

TEMPLATE_CRD_CHARTS = {
    "karpenter-crd": ({"karpenter.sh", "karpenter.k8s.aws"}, {}),
    "keda": ({"keda.sh", "eventing.keda.sh"}, {"crds.install": True}),
    "keda-add-ons-http": ({"http.keda.sh"}, {"crds.install": True}),
    "ai-gateway-crds-helm": ({"aigateway.envoyproxy.io"}, {}),
    "prometheus-operator-crds": ({"monitoring.coreos.com"}, {}),
    "gateway-crds-helm": (EG_GROUPS, {"crds.gatewayAPI.enabled": True, "crds.gatewayAPI.channel": "experimental",
                                      "crds.envoyGateway.enabled": True}),
}
"""Chart → (CRD groups its templates install, values that must hold for them to be rendered)."""
CRDS_DIR_CHARTS = {
    "karpenter": ({"karpenter.sh", "karpenter.k8s.aws"}, {}),
    "gateway-helm": (EG_GROUPS, {"crds.enabled": False}),
    "aws-load-balancer-controller": (LBC_GROUPS, {}),
    "kube-prometheus-stack": ({"monitoring.coreos.com"}, {"crds.enabled": False}),
    "nvidia-device-plugin": ({"nfd.k8s-sigs.io"}, {}),
}
"""Chart → (CRD groups of its crds/ folders, values that keep them out besides skipCrds)."""
NO_CRD_CHARTS = {"ai-gateway-helm"}
MANIFEST_CRDS = {
    r"/kubernetes-sigs/aws-load-balancer-controller/v[0-9.]+/helm/aws-load-balancer-controller/crds/crds\.yaml$":
        {"elbv2.k8s.aws", "aga.k8s.aws"},
    r"/kubernetes-sigs/aws-load-balancer-controller/v[0-9.]+/helm/aws-load-balancer-controller/crds/"
    r"gateway-crds\.yaml$": {"gateway.k8s.aws"},
    r"/kubernetes-sigs/node-feature-discovery/v[0-9.]+/deployment/helm/node-feature-discovery/crds/"
    r"nfd-api-crds\.yaml$": {"nfd.k8s-sigs.io"},
}
"""CRD manifests applied by Pulumi (URL pattern → groups); `test_pins_agree_with_the_upstream_charts` checks the
LBC files' groups."""
CHART_CREATES = {
    "keda": {"monitoring.coreos.com"},  # values prometheus.operator.serviceMonitor.enabled
    "keda-add-ons-http": {"keda.sh"},  # the interceptor's ScaledObject
    "kube-prometheus-stack": {"monitoring.coreos.com"},  # Prometheus, Alertmanager, ServiceMonitors, PrometheusRules
}
"""Custom resources the charts render from our values: chart → CRD groups."""

PINNED_URL = re.compile(r"^https://raw\.githubusercontent\.com/[^/]+/[^/]+/v[0-9]+\.[0-9]+\.[0-9]+/")
BUILTIN_GROUPS = set(re.findall(r'"kubernetes:([a-z0-9.]+)/v[0-9a-z]+:', open(pulumi_kubernetes.__file__).read()))
"""API groups the Kubernetes SDK knows as built-in types (core, apps, rbac.authorization.k8s.io, ...)."""


@pytest.fixture(params=["dev", "prod"], scope="module")
def stack(request):
    mocks, _ = evaluated(request.param, secrets={"hfToken": "hf_crd_test", "apiKey": "sk-crd-test-key-value"})
    return request.param, mocks


def _value(values: dict, dotted: str):
    for k in dotted.split("."):
        if not isinstance(values, dict) or k not in values:
            return None
        values = values[k]
    return values


def _chart(r) -> str:
    return r.inputs["chart"].rsplit("/", 1)[-1]


class Graph:
    """The recorded dependency graph: who depends on whom, transitively (through custom resources and the remote
    components Pulumi records as such, e.g. a helm.v4.Chart)."""

    def __init__(self, mocks):
        self.mocks = mocks
        self.urn = {u.rsplit("::", 1)[1]: u for u in mocks.monitor.resources}

    def deps(self, name: str) -> set:
        req = self.mocks.monitor.requests.get(name)  # None: a resource the mocks registered themselves
        return set(req.dependencies) if req is not None else set()

    def reaches(self, name: str, target_urn: str) -> bool:
        seen, todo = set(), [self.urn[name]]
        while todo:
            urn = todo.pop()
            if urn == target_urn:
                return urn != self.urn[name]
            if urn in seen:
                continue
            seen.add(urn)
            todo.extend(self.deps(urn.rsplit("::", 1)[1]))
        return False


def installers(mocks) -> dict[str, list]:
    """CRD group → the recorded resources that install it."""
    out: dict[str, list] = {}
    for typ in ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart"):
        for r in mocks.of_type(typ):
            groups, needs = TEMPLATE_CRD_CHARTS.get(_chart(r), (set(), {}))
            if all(_value(r.inputs.get("values") or {}, k) == v for k, v in needs.items()):
                for g in groups:
                    out.setdefault(g, []).append(r)
    for typ, key in (("kubernetes:yaml/v2:ConfigGroup", "files"), ("kubernetes:yaml/v2:ConfigFile", "file")):
        for r in mocks.of_type(typ):
            files = r.inputs[key] if isinstance(r.inputs[key], list) else [r.inputs[key]]
            for f in files:
                groups = [g for pattern, gs in MANIFEST_CRDS.items() if re.search(pattern, f) for g in gs]
                assert groups, f"{r.name}: no known CRDs in {f}"
                for g in groups:
                    out.setdefault(g, []).append(r)
    return out


def _owner(mocks, group: str):
    found = installers(mocks).get(group, [])
    assert len(found) == 1, f"CRD group {group}: installed by {[r.name for r in found]} (want exactly one)"
    return found[0]


def test_every_release_leaves_its_crds_to_a_resource_that_upgrades_them(stack):
    name, mocks = stack
    g = Graph(mocks)
    releases = mocks.of_type("kubernetes:helm.sh/v3:Release")
    assert len(releases) >= 10
    for r in releases:
        chart, values = _chart(r), r.inputs.get("values") or {}
        assert chart in TEMPLATE_CRD_CHARTS or chart in CRDS_DIR_CHARTS or chart in NO_CRD_CHARTS, (
            f"{name}: release {r.inputs['name']} ({chart}): where does this chart keep its CRDs? Read it at its tag")
        if chart in TEMPLATE_CRD_CHARTS:
            for key, want in TEMPLATE_CRD_CHARTS[chart][1].items():
                assert _value(values, key) == want, f"{name}: {chart} {key}"
        if chart not in CRDS_DIR_CHARTS:
            continue
        assert r.inputs.get("skipCrds") is True, f"{name}: {chart} would install its crds/ once and never upgrade"
        groups, off = CRDS_DIR_CHARTS[chart]
        for key, want in off.items():
            assert _value(values, key) == want, f"{name}: {chart} {key}"
        if chart == "nvidia-device-plugin" and not _value(values, "gfd.enabled"):
            groups = set()  # no node-feature-discovery subchart
        for group in groups:
            owner = _owner(mocks, group)
            assert owner.name != r.name
            # CRDs first, then the controller that serves them (and the reverse on destroy).
            assert g.reaches(r.name, g.urn[owner.name]), f"{name}: {chart} does not wait for {owner.name} ({group})"


def test_crd_installers_follow_their_charts_version(stack):
    name, mocks = stack
    rel = {_chart(r): r.inputs for r in mocks.of_type("kubernetes:helm.sh/v3:Release")}
    eg_crds, = mocks.of_type("kubernetes:helm.sh/v4:Chart")
    assert eg_crds.inputs["chart"] == "oci://docker.io/envoyproxy/gateway-crds-helm"
    assert eg_crds.inputs["version"] == rel["gateway-helm"]["version"] == "v1.9.0"
    assert rel["karpenter-crd"]["version"] == rel["karpenter"]["version"]
    assert rel["ai-gateway-crds-helm"]["version"] == rel["ai-gateway-helm"]["version"]
    kps = rel["kube-prometheus-stack"]["version"]
    assert rel["prometheus-operator-crds"]["version"] == OPERATOR_CRDS_CHARTS[kps] == "31.0.1"
    lbc_version = rel["aws-load-balancer-controller"]["version"]
    files, = [r.inputs["files"] for r in mocks.of_type("kubernetes:yaml/v2:ConfigGroup")]
    assert files == lbc.crd_urls(lbc_version) and all(f"/v{lbc_version}/" in f for f in files)
    nfd = [r.inputs["file"] for r in mocks.of_type("kubernetes:yaml/v2:ConfigFile")]
    if "nvidia-device-plugin" in rel:
        assert nfd == [device_plugin.nfd_crd_url(NFD_CHARTS[rel["nvidia-device-plugin"]["version"]])]
    else:
        assert nfd == []
    for url in files + nfd:
        assert PINNED_URL.match(url), f"{name}: {url} is not pinned to a release tag"
    # The CRDs the adopting release takes over were installed by kube-prometheus-stack's crds/ (no Helm ownership).
    assert rel["prometheus-operator-crds"]["takeOwnership"] is True


def test_every_custom_resource_waits_for_what_installs_its_crd(stack):
    name, mocks = stack
    g = Graph(mocks)
    kinds = set()
    for r in mocks.created:
        if not (r.custom and r.typ.startswith("kubernetes:")):
            continue
        group = r.typ.split(":")[1].rsplit("/", 1)[0]
        if group in BUILTIN_GROUPS:
            continue
        owner = _owner(mocks, group)
        assert g.reaches(r.name, g.urn[owner.name]), f"{name}: {r.typ} {r.name} does not wait for {owner.name}"
        kinds.add(r.typ.split(":")[2])
    assert {"NodePool", "EC2NodeClass", "ScaledObject", "InterceptorRoute", "ServiceMonitor", "PodMonitor",
            "PrometheusRule", "Gateway", "EnvoyProxy", "AIGatewayRoute"} <= kinds, kinds
    for r in mocks.of_type("kubernetes:helm.sh/v3:Release"):
        for group in CHART_CREATES.get(_chart(r), ()):
            owner = _owner(mocks, group)
            assert g.reaches(r.name, g.urn[owner.name]), f"{name}: {_chart(r)} renders {group} objects too early"
    keda, = [r for r in mocks.of_type("kubernetes:helm.sh/v3:Release") if _chart(r) == "keda"]
    assert _value(keda.inputs["values"], "prometheus.operator.serviceMonitor.enabled") is True


def test_the_graph_check_is_not_vacuous(stack):
    _, mocks = stack
    g = Graph(mocks)
    lbc_release = g.urn["gpu-burst-lbc-release"]
    # A NodePool does not depend on the load balancer controller; the LBC release waits for its own CRDs.
    assert not g.reaches("gpu-gpu-on-demand", lbc_release)
    assert g.reaches("gpu-burst-lbc-release", g.urn["gpu-burst-lbc-crds"])
    assert not g.reaches("gpu-burst-lbc-crds", lbc_release)


@needs_upstream
def test_pins_agree_with_the_upstream_charts():
    kps = load_upstream("kube-prometheus-stack/Chart.yaml")
    crds = load_upstream("prometheus-operator-crds/Chart.yaml")
    assert OPERATOR_CRDS_CHARTS[kps["version"]] == crds["version"]
    assert kps["appVersion"] == crds["appVersion"], "the CRDs must be the operator's own"
    plugin = load_upstream("nvidia-device-plugin/Chart.yaml")
    nfd, = [d for d in plugin["dependencies"] if d["name"] == "node-feature-discovery"]
    assert NFD_CHARTS[plugin["version"]] == nfd["version"]
    chart = load_upstream("aws-load-balancer-controller/Chart.yaml")
    assert f"v{chart['version']}" == chart["appVersion"], "crd_urls derives the release tag from the chart version"
    from upstream import _load_all

    for url in lbc.crd_urls(chart["version"]):
        docs = _load_all(f"aws-load-balancer-controller/{url.rsplit('/', 1)[1]}")
        groups = {d["spec"]["group"] for d in docs if d.get("kind") == "CustomResourceDefinition"}
        want, = [gs for pattern, gs in MANIFEST_CRDS.items() if re.search(pattern, url)]
        assert groups == want, url
    assert LBC_GROUPS == {g for p, gs in MANIFEST_CRDS.items() if "load-balancer" in p for g in gs}
    eg = {d["spec"]["group"] for d in _load_all("envoy-gateway/gatewayapi-crds.yaml")
          if d.get("kind") == "CustomResourceDefinition"}
    assert eg == GATEWAY_API


@needs_upstream
def test_crd_chart_values_exist_upstream(stack):
    _, mocks = stack
    eg_crds, = mocks.of_type("kubernetes:helm.sh/v4:Chart")
    assert unknown_value_keys("gateway-crds-helm", eg_crds.inputs["values"]) == []
    assert unknown_value_keys("gateway-crds-helm", {"crds": {"gatewayApi": {"enabled": True}}}) == [
        "crds.gatewayApi"]
    for r in mocks.of_type("kubernetes:helm.sh/v3:Release"):
        if _chart(r) == "prometheus-operator-crds":
            assert unknown_value_keys("prometheus-operator-crds", r.inputs.get("values") or {}) == []


# -- the pins that follow a chart version: config keys and the device plugin component ------------------------------

def _config_errors(addons: dict) -> list[str]:
    from stacks.config import ConfigError, validate

    with pytest.raises(ConfigError) as e:
        validate({"environment": "dev", "region": "us-west-2", "addons": addons})
    return e.value.lines


def test_a_chart_bump_without_its_crd_pin_is_a_config_error():
    assert _config_errors({"monitoring": {"chartVersion": "88.6.0"}}) == [
        "gpu-burst:addons.monitoring.crdsChartVersion: not set, and no prometheus-operator-crds version is known for "
        "chartVersion 88.6.0; allowed: the prometheus-operator-crds chart whose appVersion equals that "
        "kube-prometheus-stack's (known pairs: 88.5.3 → 31.0.1)"]
    assert _config_errors({"nvidiaDevicePlugin": {"chartVersion": "0.21.0"}}) == [
        "gpu-burst:addons.nvidiaDevicePlugin.nfdChartVersion: not set, and the node-feature-discovery dependency of "
        "chartVersion 0.21.0 is not known; allowed: the version in that chart's Chart.yaml dependencies (known "
        "pairs: 0.20.0 → 0.19.0)"]
    assert _config_errors({"monitoring": {"crdsChartVersion": "v31.0.1"}}) == [
        "gpu-burst:addons.monitoring.crdsChartVersion: 'v31.0.1' is not a chart version; allowed: e.g. 2.20.2 "
        "(X.Y.Z, no leading v)"]


def test_explicit_crd_pins_are_used_and_gfd_off_needs_none():
    from stacks.config import validate

    base = {"environment": "dev", "region": "us-west-2"}
    cfg = validate({**base, "addons": {"monitoring": {"chartVersion": "88.6.0", "crdsChartVersion": "31.1.0"},
                                       "nvidiaDevicePlugin": {"chartVersion": "0.21.0", "gfdEnabled": False}}})
    assert cfg.addons.monitoring.effective_crds_chart_version == "31.1.0"
    cfg = validate(base)
    assert cfg.addons.monitoring.effective_crds_chart_version == "31.0.1"
    assert cfg.addons.nvidia_device_plugin.effective_nfd_chart_version == "0.19.0"


@pytest.mark.parametrize("gfd", [True, False])
def test_device_plugin_applies_the_nfd_crds_only_with_its_nfd_subchart(mocks, gfd):
    from stack_helpers import evaluate

    args = {"chart_version": "0.20.0", "gfd_enabled": gfd, **({"nfd_chart_version": "0.19.0"} if gfd else {})}
    evaluate(lambda: device_plugin.NvidiaDevicePlugin("dp", args))
    release = mocks.named("dp-release")
    assert release.inputs["skipCrds"] is True
    files = [r.inputs["file"] for r in mocks.of_type("kubernetes:yaml/v2:ConfigFile")]
    assert files == ([device_plugin.nfd_crd_url("0.19.0")] if gfd else [])
    deps = {u.rsplit("::", 1)[1] for u in mocks.monitor.requests["dp-release"].dependencies}
    assert ("dp-nfd-crds" in deps) is gfd


def test_device_plugin_with_gfd_needs_the_nfd_version(mocks):
    from stack_helpers import evaluate

    with pytest.raises(Exception, match="gfd_enabled needs nfd_chart_version"):
        evaluate(lambda: device_plugin.NvidiaDevicePlugin("dp", {"chart_version": "0.20.0"}))
