"""build_addons on a mocked foundation, for dev- and prod-like configs: device plugin presence and scheduling,
Helm values against the upstream values.yaml files, kube-prometheus-stack selectors, HTTP add-on timeouts, ordering
and the Addons contract."""

import asyncio

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
from upstream import chart_values, needs_upstream, unknown_value_keys, validate_cr

from components._common import SYSTEM_NODE_SELECTOR
from components.monitoring import SUBCHART_KEYS
from stacks.addons import build_addons
from stacks.config import ConfigError, validate
from stacks.contracts import Foundation

DEV = {"environment": "dev", "region": "us-west-2", "systemNodes": {"minSize": 1, "desiredSize": 1, "maxSize": 2}}
PROD = {
    "environment": "prod", "region": "us-west-2",
    "systemNodes": {"minSize": 2, "desiredSize": 3, "maxSize": 4},
    "gpu": {"pools": [
        {"name": "gpu-spot", "capacityTypes": ["spot"], "weight": 100, "gpuLimit": 16, "cpuLimit": 256},
        {"name": "gpu-on-demand", "capacityTypes": ["on-demand"], "weight": 10, "gpuLimit": 8, "cpuLimit": 128},
    ]},
    "addons": {"httpAddon": {"readinessTimeout": "20m", "responseHeaderTimeout": "15m", "interceptorReplicas": 3},
               "monitoring": {"retention": "15d", "scrapeInterval": "10s", "prometheusMemory": "2Gi"}},
}
BOTTLEROCKET = {**DEV, "gpu": {"amiFamily": "bottlerocket", "amiVersion": "v1.64.0"}}
RELEASES = ("keda-release", "http-addon-release", "monitoring-release")


@pytest.fixture(autouse=True)
def _fresh_event_loop():
    """Pulumi's mocks need a current event loop; a test elsewhere that ran asyncio.run() leaves none behind."""
    asyncio.set_event_loop(asyncio.new_event_loop())


def _foundation(raw: dict) -> Foundation:
    cfg = validate(raw)
    provider = k8s.Provider("k8s", kubeconfig="{}")
    cluster = aws.eks.Cluster("cluster", role_arn="arn:aws:iam::123456789012:role/eks",
                              vpc_config={"subnet_ids": ["subnet-1"]})
    coredns = aws.eks.Addon("coredns", cluster_name=cluster.name, addon_name="coredns")
    k = pulumi.ResourceOptions(provider=provider)
    crd = k8s.helm.v3.Release("karpenter-crd", chart="oci://public.ecr.aws/karpenter/karpenter-crd", version="1.14.1",
                              namespace="kube-system", opts=k)
    karpenter = k8s.helm.v3.Release("karpenter", chart="oci://public.ecr.aws/karpenter/karpenter", version="1.14.1",
                                    namespace="kube-system", opts=pulumi.ResourceOptions(provider=provider,
                                                                                         depends_on=[crd]))
    return Foundation(cfg=cfg, cluster_name=cluster.name, cluster_security_group_id=pulumi.Output.from_input("sg-0c1a"),
                      vpc_id=pulumi.Output.from_input("vpc-1"), vpc_cidr=pulumi.Output.from_input("10.0.0.0/16"),
                      private_subnet_ids=pulumi.Output.from_input(["subnet-1"]),
                      k8s_provider=provider, kubeconfig=pulumi.Output.from_input("{}"),
                      node_role_name=pulumi.Output.from_input("node-role-abc"),
                      karpenter_interruption_queue=pulumi.Output.from_input("queue-abc"),
                      karpenter_release=karpenter, karpenter_crd_release=crd,
                      control_plane_log_group=pulumi.Output.from_input(""), system_ready=[coredns])


def _all_registered(addons, f: Foundation):
    rels = [addons.keda_release, addons.http_addon_release, addons.monitoring_release]
    gpu = addons.gpu_pools
    return pulumi.Output.all(*[r.urn for r in rels], gpu.node_class.urn, *[p.urn for p in gpu.node_pools],
                             f.karpenter_release.urn, f.system_ready[0].urn,
                             *([addons.device_plugin_release.urn] if addons.device_plugin_release
                               else []))


def _values(mocks, name: str) -> dict:
    return mocks.named(name).inputs["values"]


def _run(raw, check):
    f = _foundation(raw)
    addons = build_addons(f)
    return _all_registered(addons, f).apply(lambda urns: check(addons, f, urns))


# -- Kubernetes scheduling semantics, to compare the plugin's constraints with the GPU nodes ------------------------

def _tolerates(tol: dict, taint: dict) -> bool:
    if tol.get("effect") and tol["effect"] != taint["effect"]:
        return False
    if not tol.get("key"):
        return tol.get("operator") == "Exists"
    if tol["key"] != taint["key"]:
        return False
    return tol.get("operator") == "Exists" or tol.get("value", "") == taint.get("value", "")


def _affinity_matches(affinity: dict, node_labels: dict) -> bool:
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]

    def expr_ok(e):
        if e["operator"] == "In":
            return node_labels.get(e["key"]) in e["values"]
        if e["operator"] == "Exists":
            return e["key"] in node_labels
        raise AssertionError(f"unexpected operator {e['operator']}")

    return any(all(expr_ok(e) for e in t.get("matchExpressions", [])) for t in terms)


def _gpu_nodes(mocks) -> list[tuple[dict, list[dict]]]:
    """(labels, taints) of a node each NodePool would launch."""
    out = []
    for np in mocks.of_type("kubernetes:karpenter.sh/v1:NodePool"):
        t = np.inputs["spec"]["template"]
        out.append(({**t["metadata"]["labels"], "karpenter.sh/nodepool": np.inputs["metadata"]["name"]},
                    t["spec"]["taints"]))
    return out


@pytest.mark.parametrize("raw", [DEV, PROD], ids=["dev", "prod"])
@pulumi.runtime.test
def test_device_plugin_schedules_exactly_on_gpu_nodes(mocks, raw):
    def check(addons, f, _):
        assert addons.device_plugin_release is not None
        rel = mocks.named("nvidia-device-plugin-release").inputs
        assert (rel["chart"], rel["version"]) == ("nvidia-device-plugin", "0.20.0")
        assert rel["repositoryOpts"]["repo"] == "https://nvidia.github.io/k8s-device-plugin"
        v = rel["values"]
        nodes = _gpu_nodes(mocks)
        assert len(nodes) == len(f.cfg.gpu.pools)
        for labels, taints in nodes:
            assert _affinity_matches(v["affinity"], labels)
            assert all(any(_tolerates(t, taint) for t in v["tolerations"]) for taint in taints)
        # ... and nowhere else: not on a system node, not on a node that merely has the NFD PCI label.
        assert not _affinity_matches(v["affinity"], dict(SYSTEM_NODE_SELECTOR))
        assert not _affinity_matches(v["affinity"], {"feature.node.kubernetes.io/pci-10de.present": "true"})
        assert v["gfd"]["enabled"] is True

    return _run(raw, check)


@needs_upstream
def test_nfd_worker_default_tolerations_accept_the_gpu_taint():
    """GFD only labels a node if the NFD worker runs there; we rely on the chart's default worker tolerations."""
    from components.gpu_node_pool import GPU_TAINT

    nfd_tolerations = chart_values("nvidia-device-plugin")["nfd"]["worker"]["tolerations"]
    assert any(_tolerates(t, GPU_TAINT) for t in nfd_tolerations)
    # The same tolerations would not accept the common `nvidia.com/gpu=true` taint: the value choice matters.
    assert not any(_tolerates(t, {**GPU_TAINT, "value": "true"}) for t in nfd_tolerations)
    # The chart's default affinity needs NFD labels or nvidia.com/gpu.present; ours replaces it, on purpose.
    default_aff = chart_values("nvidia-device-plugin")["affinity"]
    assert not _affinity_matches(default_aff, {"karpenter.sh/nodepool": "gpu-on-demand"})


@pulumi.runtime.test
def test_workload_toleration_matches_gpu_taint(mocks):
    def check(addons, f, _):
        for _labels, taints in _gpu_nodes(mocks):
            assert all(_tolerates(addons.gpu_toleration, taint) for taint in taints)

    return _run(DEV, check)


@pulumi.runtime.test
def test_no_device_plugin_on_bottlerocket(mocks):
    def check(addons, f, urns):
        assert addons.device_plugin_release is None
        charts = [r.inputs["chart"] for r in mocks.of_type("kubernetes:helm.sh/v3:Release")]
        assert "nvidia-device-plugin" not in charts and "keda" in charts
        assert not mocks.of_type("gpu-burst:index:NvidiaDevicePlugin")
        # Karpenter's release still orders the NodePools.
        karpenter_urn = urns[-2]
        assert karpenter_urn in mocks.monitor.requests["gpu-gpu-on-demand"].dependencies
        bdm = mocks.named("gpu-nodeclass").inputs["spec"]["blockDeviceMappings"]
        assert [d["deviceName"] for d in bdm] == ["/dev/xvda", "/dev/xvdb"]

    return _run(BOTTLEROCKET, check)


@needs_upstream
@pytest.mark.parametrize("raw", [DEV, PROD, BOTTLEROCKET], ids=["dev", "prod", "bottlerocket"])
@pulumi.runtime.test
def test_stack_crs_validate_and_helm_values_exist_upstream(mocks, raw):
    def check(addons, f, _):
        for typ in ("kubernetes:karpenter.sh/v1:NodePool", "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"):
            for r in mocks.of_type(typ):
                i = r.inputs
                obj = {"apiVersion": i["apiVersion"], "kind": i["kind"], "metadata": i["metadata"], "spec": i["spec"]}
                assert validate_cr(obj) == [], (r.name, validate_cr(obj))
        charts = {r.inputs["chart"]: r.inputs["values"] for r in mocks.of_type("kubernetes:helm.sh/v3:Release")
                  if not r.inputs["chart"].startswith("oci://")}
        expected = {"keda", "keda-add-ons-http", "kube-prometheus-stack", "prometheus-operator-crds"}
        if f.cfg.gpu.needs_device_plugin:
            expected.add("nvidia-device-plugin")
        assert set(charts) == expected
        for chart, values in charts.items():
            unknown = unknown_value_keys(chart, values)
            if chart == "kube-prometheus-stack":
                unknown = [k for k in unknown if k not in SUBCHART_KEYS]
            assert unknown == [], (chart, unknown)

    return _run(raw, check)


@needs_upstream
def test_unknown_value_keys_is_not_vacuous():
    assert unknown_value_keys("keda-add-ons-http", {"interceptor": {"maxPendingRequests": 5}}) == [
        "interceptor.maxPendingRequests"]


@pulumi.runtime.test
def test_releases_pinned_named_and_on_system_nodes(mocks):
    def check(addons, f, _):
        rels = {r.inputs["chart"]: r.inputs for r in mocks.of_type("kubernetes:helm.sh/v3:Release")}
        assert {c: (r["version"], r["name"], r["namespace"], r["repositoryOpts"]["repo"]) for c, r in rels.items()
                if not c.startswith("oci://")} == {
            "keda": ("2.20.2", "keda", "keda", "https://kedacore.github.io/charts"),
            "keda-add-ons-http": ("0.15.0", "keda-add-ons-http", "keda", "https://kedacore.github.io/charts"),
            "kube-prometheus-stack": ("88.5.3", "kube-prometheus-stack", "monitoring",
                                      "https://prometheus-community.github.io/helm-charts"),
            "prometheus-operator-crds": ("31.0.1", "prometheus-operator-crds", "monitoring",
                                         "https://prometheus-community.github.io/helm-charts"),
            "nvidia-device-plugin": ("0.20.0", "nvidia-device-plugin", "nvidia-device-plugin",
                                     "https://nvidia.github.io/k8s-device-plugin"),
        }
        keda = rels["keda"]["values"]
        assert keda["nodeSelector"] == SYSTEM_NODE_SELECTOR
        http = rels["keda-add-ons-http"]["values"]
        for comp in ("operator", "scaler", "interceptor"):
            assert http[comp]["nodeSelector"] == SYSTEM_NODE_SELECTOR, comp
        kps = rels["kube-prometheus-stack"]["values"]
        assert kps["prometheus"]["prometheusSpec"]["nodeSelector"] == SYSTEM_NODE_SELECTOR
        assert kps["prometheusOperator"]["nodeSelector"] == SYSTEM_NODE_SELECTOR
        assert kps["prometheusOperator"]["admissionWebhooks"]["patch"]["nodeSelector"] == SYSTEM_NODE_SELECTOR
        assert kps["alertmanager"]["alertmanagerSpec"]["nodeSelector"] == SYSTEM_NODE_SELECTOR
        assert kps["grafana"]["nodeSelector"] == SYSTEM_NODE_SELECTOR
        assert kps["kube-state-metrics"]["nodeSelector"] == SYSTEM_NODE_SELECTOR
        for name in ("keda-release", "http-addon-release", "monitoring-release", "nvidia-device-plugin-release"):
            assert mocks.monitor.requests[name].provider.split("::")[-2] == "k8s", name

    return _run(DEV, check)


@pulumi.runtime.test
def test_http_addon_timeouts_from_config(mocks):
    def check(addons, f, _):
        i = _values(mocks, "http-addon-release")["interceptor"]
        assert i["readinessTimeout"] == "20m" and i["responseHeaderTimeout"] == "15m"
        assert i["replicas"] == {"min": 3, "max": 10}
        assert _values(mocks, "http-addon-release")["scaler"]["replicas"] == 2

    return _run(PROD, check)


@pulumi.runtime.test
def test_stopping_interceptor_drains_for_the_longest_hold(mocks):
    """A rollout or a KEDA scale-in of the interceptor must not cut a request held through a cold start: the drain
    covers readinessTimeout + responseHeaderTimeout (20m + 15m here), and SIGKILL comes only after shutdownDelay +
    drain (the chart's rule for terminationGracePeriodSeconds), not after the chart's 30 s / 45 s."""
    from stacks.config import duration_seconds

    def check(addons, f, _):
        i = _values(mocks, "http-addon-release")["interceptor"]
        assert i["drainTimeout"] == "2100s"
        assert duration_seconds(i["drainTimeout"]) >= (duration_seconds(i["readinessTimeout"])
                                                       + duration_seconds(i["responseHeaderTimeout"]))
        assert i["terminationGracePeriodSeconds"] >= duration_seconds(i["shutdownDelay"]) + 2100
        assert i["terminationGracePeriodSeconds"] == 5 + 2100 + 15

    return _run(PROD, check)


@pulumi.runtime.test
def test_http_addon_default_timeouts_cover_cold_start(mocks):
    from stacks.config import duration_seconds

    def check(addons, f, _):
        i = _values(mocks, "http-addon-release")["interceptor"]
        assert duration_seconds(i["readinessTimeout"]) >= 600
        assert duration_seconds(i["responseHeaderTimeout"]) > 300  # above the interceptor's built-in 300s default
        # The deprecated fallback takes precedence over readinessTimeout in the interceptor when set: keep it unset.
        assert "waitTimeout" not in i.get("replicas", {})

    return _run(DEV, check)


@pulumi.runtime.test
def test_kube_prometheus_stack_selects_everything(mocks):
    def check(addons, f, _):
        v = _values(mocks, "monitoring-release")
        ps = v["prometheus"]["prometheusSpec"]
        for kind in ("serviceMonitor", "podMonitor", "rule", "probe", "scrapeConfig"):
            assert ps[f"{kind}SelectorNilUsesHelmValues"] is False, kind
            assert ps[f"{kind}Selector"] == {}, kind
            assert ps[f"{kind}NamespaceSelector"] == {}, kind
        assert ps["retention"] == "15d" and ps["scrapeInterval"] == "10s"
        assert ps["resources"]["limits"]["memory"] == "2Gi"
        dash = v["grafana"]["sidecar"]["dashboards"]
        assert dash["enabled"] is True and dash["searchNamespace"] == "ALL"
        assert addons.dashboard_label == {dash["label"]: dash["labelValue"]}
        assert v["fullnameOverride"] == "kps"

    return _run(PROD, check)


@needs_upstream
def test_kube_prometheus_stack_defaults_would_not_select_our_monitors():
    """Guards the reason for the overrides: upstream defaults restrict selection to the Helm release label."""
    ps = chart_values("kube-prometheus-stack")["prometheus"]["prometheusSpec"]
    assert all(ps[f"{k}SelectorNilUsesHelmValues"] is True for k in ("serviceMonitor", "podMonitor", "rule", "probe"))


@pulumi.runtime.test
def test_addons_contract_outputs(mocks):
    def check(addons, f, _):
        return pulumi.Output.all(
            addons.prometheus_url, addons.external_scaler_address, addons.interceptor_namespace,
            addons.interceptor_proxy_service, addons.dashboards_namespace, addons.monitoring_namespace,
        ).apply(lambda v: _check_outputs(addons, v))

    return _run(PROD, check)


def _check_outputs(addons, v):
    prom, scaler, ns, proxy, dash_ns, mon_ns = v
    assert prom == "http://kps-prometheus.monitoring.svc:9090"
    assert scaler == "keda-add-ons-http-external-scaler.keda:9090"
    assert (ns, proxy, addons.interceptor_proxy_port) == ("keda", "keda-add-ons-http-interceptor-proxy", 8080)
    assert dash_ns == mon_ns == "monitoring"
    assert addons.gpu_pool_names == ["gpu-spot", "gpu-on-demand"]


@pulumi.runtime.test
def test_ordering_for_one_pass_up_and_clean_destroy(mocks):
    def check(addons, f, urns):
        keda_urn, http_urn = urns[0], urns[1]
        karpenter_urn, coredns_urn, plugin_urn = urns[-3], urns[-2], urns[-1]
        req = mocks.monitor.requests
        # CRs wait for the release that installs their CRDs (and are deleted before it).
        for np in ["gpu-nodeclass", "gpu-gpu-on-demand"]:
            assert karpenter_urn in req[np].dependencies, np
        # No GPU node before the device plugin exists; on destroy the NodePools go first.
        assert plugin_urn in req["gpu-gpu-on-demand"].dependencies
        # The HTTP add-on's chart creates a ScaledObject: KEDA's CRDs and webhook must be up.
        assert keda_urn in req["http-addon-release"].dependencies
        for name in ("keda-release", "http-addon-release", "monitoring-release", "nvidia-device-plugin-release"):
            assert coredns_urn in req[name].dependencies, name
        # KEDA waits on the monitoring CRDs (its operator ServiceMonitor), never on the add-on (no cycle).
        mon_crds_urn = next(u for u in mocks.monitor.resources if u.endswith("::monitoring-crds-release"))
        assert http_urn not in req["keda-release"].dependencies
        assert mon_crds_urn in req["keda-release"].dependencies
        assert mon_crds_urn in req["monitoring-release"].dependencies
        assert keda_urn not in req["monitoring-release"].dependencies

    return _run(DEV, check)


def test_config_errors_addons():
    with pytest.raises(ConfigError) as e:
        validate({**DEV, "addons": {"httpAddon": {"readinessTimeout": "5m", "maxPendingRequests": 10},
                                    "monitoring": {"retention": "1.5d"}}})
    assert e.value.lines == [
        "gpu-burst:addons.httpAddon.maxPendingRequests: unknown key; valid keys here: install, chartVersion, "
        "interceptorService, interceptorNamespace, interceptorPort, externalScalerAddress, readinessTimeout, "
        "responseHeaderTimeout, interceptorReplicas, interceptorMaxReplicas",
        "gpu-burst:addons.monitoring.retention: '1.5d' is not a Prometheus duration; allowed: whole units such as "
        "15s, 168h, 14d",
        # the cross-field check still runs although the section has an unknown key
        "gpu-burst:addons.httpAddon.readinessTimeout: '5m' is shorter than a GPU cold start; allowed: at least 10m",
    ]
    with pytest.raises(ConfigError) as e:
        validate({**DEV, "addons": {"httpAddon": {"readinessTimeout": "5m"}}})
    assert e.value.lines == [
        "gpu-burst:addons.httpAddon.readinessTimeout: '5m' is shorter than a GPU cold start; allowed: at least 10m"]


@pytest.mark.parametrize("raw", [DEV])
def test_keda_operator_metrics_and_scaled_object_state_are_scraped(mocks, raw):
    """The KEDA-health alerts need data: the operator's metrics behind a ServiceMonitor, and kube-state-metrics
    reading ScaledObject conditions (with RBAC to list/watch them)."""
    from components.monitoring import SCALED_OBJECT_METRIC_PREFIX

    @pulumi.runtime.test
    def run():
        def check(addons, f, _):
            keda = _values(mocks, "keda-release")
            assert keda["prometheus"]["operator"] == {"enabled": True, "serviceMonitor": {"enabled": True}}
            ksm = _values(mocks, "monitoring-release")["kube-state-metrics"]
            assert {"apiGroups": ["keda.sh"], "resources": ["scaledobjects"], "verbs": ["list", "watch"]} in \
                ksm["rbac"]["extraRules"]
            (res,) = ksm["customResourceState"]["config"]["spec"]["resources"]
            assert ksm["customResourceState"]["enabled"] is True
            assert res["groupVersionKind"] == {"group": "keda.sh", "version": "v1alpha1", "kind": "ScaledObject"}
            assert res["metricNamePrefix"] == SCALED_OBJECT_METRIC_PREFIX
            assert res["metrics"][0]["each"]["gauge"]["path"] == ["status", "conditions"]
        return _run(raw, check)

    run()
