"""EKS add-on builds: pinned per Kubernetes version in config, handed to pulumi-eks and to the stack's own Addons, and
never looked up at deploy time. Where each default comes from: docs/gpu-and-addons.md, "EKS add-on versions"."""

import re

import pytest

from stack_cache import evaluated, shipped
from stack_helpers import ROOT, evaluate_stack
from stacks.config import foundation as fcfg
from stacks.config.eks_addons import DEFAULT_ADDON_VERSIONS, EKS_ADDONS, kube_proxy_minor

CLUSTER = "gpu-burst-eks"
BUILD = re.compile(r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")


def addon_versions(m) -> dict[str, str]:
    """The build every add-on of the cluster gets, by EKS name: the stack's own Addons and the ones pulumi-eks
    registers inside its component (emulated by the mocks from its options)."""
    own = {r.inputs["addonName"]: r.inputs["addonVersion"] for r in m.of_type("aws:eks/addon:Addon")}
    inside = {inputs["addonName"]: inputs["addonVersion"] for _, _, inputs in m.provider_children}
    assert not set(own) & set(inside), "an add-on created twice"
    return {**own, **inside}


def every_input(m) -> dict[str, tuple[str, dict]]:
    """Every registered resource's type and inputs by name, with what pulumi-eks registers inside its component."""
    out = {r.name: (r.typ, r.inputs) for r in m.created}
    out.update({f"{name} (in pulumi-eks)": (typ, inputs) for typ, name, inputs in m.provider_children})
    return out


@pytest.fixture(scope="module")
def dev():
    return shipped("dev")[0]


@pytest.fixture(scope="module")
def prod():
    return shipped("prod")[0]


# -- the defaults ------------------------------------------------------------------------------------------------

def test_every_supported_kubernetes_version_has_a_build_of_every_addon():
    assert set(DEFAULT_ADDON_VERSIONS) == set(fcfg.SUPPORTED_KUBERNETES_VERSIONS)
    for k8s, builds in DEFAULT_ADDON_VERSIONS.items():
        assert tuple(builds) == EKS_ADDONS, k8s
        assert all(BUILD.match(v) for v in builds.values()), builds
        assert kube_proxy_minor(builds["kube-proxy"]) == k8s


def test_the_docs_cite_exactly_the_defaults():
    text = (ROOT / "docs" / "gpu-and-addons.md").read_text()
    section = text.split("### EKS add-on versions", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| (1\.\d+) \| ([a-z-]+) \| (v\S+) \| \[(\d)\] \|$", section, flags=re.M)
    table: dict[str, dict[str, str]] = {}
    for k8s, addon, build, source in rows:
        table.setdefault(k8s, {})[addon] = build
        assert re.search(rf"^{source}\. ", section, flags=re.M), f"source [{source}] of {addon} is not given"
    assert table == DEFAULT_ADDON_VERSIONS


# -- the pins reach every add-on -----------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_pins_reach_pulumi_eks_and_every_addon(stack, dev, prod):
    m = {"dev": dev, "prod": prod}[stack]
    want = DEFAULT_ADDON_VERSIONS["1.35"]
    c = m.named(CLUSTER).inputs
    assert c["vpcCniOptions"]["addonVersion"] == want["vpc-cni"]
    assert c["kubeProxyAddonOptions"]["version"] == want["kube-proxy"]
    for opts in ("vpcCniOptions", "kubeProxyAddonOptions"):
        assert c[opts]["resolveConflictsOnUpdate"] == "OVERWRITE", opts
    assert addon_versions(m) == want
    own = m.of_type("aws:eks/addon:Addon")
    assert own and all(r.inputs["resolveConflictsOnUpdate"] == "OVERWRITE" for r in own)
    # pulumi-eks had a version for each of its add-ons, so it looked none up
    assert m.provider_invokes == []
    assert [c for c in m.calls if c.token == "aws:eks/getAddonVersion:getAddonVersion"] == []


def test_kubernetes_136_moves_every_addon_to_its_136_build(mocks):
    evaluate_stack("dev", overrides={"cluster": {"kubernetesVersion": "1.36", "publicAccessCidrs": ["0.0.0.0/0"]}})
    assert mocks.named(CLUSTER).inputs["version"] == "1.36"
    assert addon_versions(mocks) == DEFAULT_ADDON_VERSIONS["1.36"]
    assert mocks.provider_invokes == []


def test_a_pin_overrides_the_default_of_its_addon_only(mocks):
    evaluate_stack("dev", overrides={"cluster": {"kubernetesVersion": "1.36", "publicAccessCidrs": ["0.0.0.0/0"],
                                                 "addonVersions": {"coredns": "v1.14.3-eksbuild.16",
                                                                   "vpc-cni": "v1.23.0-eksbuild.1"}}})
    assert addon_versions(mocks) == {**DEFAULT_ADDON_VERSIONS["1.36"], "coredns": "v1.14.3-eksbuild.16",
                                     "vpc-cni": "v1.23.0-eksbuild.1"}


# -- previews are faithful -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_input_depends_on_the_newest_published_build(stack, dev, prod):
    """Two evaluations on days EKS publishes different newest builds declare exactly the same inputs everywhere,
    inside pulumi-eks included: a CI preview shows only what the change does."""
    secrets = {"hfToken": "hf_test_token"} if stack == "prod" else None
    first = {"dev": dev, "prod": prod}[stack]
    later = {"vpc-cni": "v1.24.0-eksbuild.1", "kube-proxy": "v{k8s}.11-eksbuild.2", "coredns": "v1.15.0-eksbuild.1",
             "eks-pod-identity-agent": "v1.4.0-eksbuild.1"}
    today = first.newest_addon_versions
    assert all(today[name] != later[name] for name in EKS_ADDONS)
    second, _ = evaluated(stack, secrets=secrets, newest_addon_versions=later)
    a, b = every_input(first), every_input(second)
    assert a.keys() == b.keys()
    assert [n for n in a if a[n] != b[n]] == []
    addons = [inputs for typ, inputs in a.values() if typ == "aws:eks/addon:Addon"]
    assert len(addons) == len(EKS_ADDONS)
    # an Addon created without a version runs whatever EKS's default is on the day it is created
    assert all(BUILD.match(inputs.get("addonVersion", "")) for inputs in addons), addons
    newest = {v.format(k8s="1.35") for v in (*today.values(), *later.values())}
    assert [v for v in newest if v in repr(a)] == []


# -- bad configuration -------------------------------------------------------------------------------------------

def test_a_kubernetes_version_without_defaults_needs_every_addon_pinned(mocks, monkeypatch):
    """A supported version with no default build (a new minor added to SUPPORTED_KUBERNETES_VERSIONS before its
    add-on builds) is a config error per add-on, before any resource; pinning all four makes it valid."""
    monkeypatch.delitem(DEFAULT_ADDON_VERSIONS, "1.36")
    cluster = {"kubernetesVersion": "1.36", "publicAccessCidrs": ["0.0.0.0/0"],
               "addonVersions": {"coredns": "v1.14.3-eksbuild.3"}}
    with pytest.raises(Exception) as e:
        evaluate_stack("dev", overrides={"cluster": cluster})
    lines = [line for line in str(e.value).splitlines() if "addonVersions" in line]
    assert lines == [
        f"gpu-burst:cluster.addonVersions.{name}: has no default for kubernetesVersion 1.36; allowed: a build "
        f"published for it, from `aws eks describe-addon-versions --addon-name {name} --kubernetes-version 1.36`"
        for name in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")]
    assert mocks.created == [], "nothing may be registered before the config error"
    pinned = {"vpc-cni": "v1.22.4-eksbuild.3", "kube-proxy": "v1.36.0-eksbuild.14", "coredns": "v1.14.3-eksbuild.3",
              "eks-pod-identity-agent": "v1.3.10-eksbuild.3"}
    evaluate_stack("dev", overrides={"cluster": {**cluster, "addonVersions": pinned}})
    assert addon_versions(mocks) == pinned
