"""Versions of the EKS add-ons the cluster installs, pinned per Kubernetes version (`gpu-burst:cluster.addonVersions`).

Left unset, pulumi-eks looks up the newest vpc-cni and kube-proxy builds on every run and EKS picks a build for an
add-on created without a version: a preview would then depend on the day it runs. The defaults below are published
builds; docs/gpu-and-addons.md ("EKS add-on versions") says where each comes from and how to move them.
"""

import re
from typing import Annotated, Optional

from pydantic import AfterValidator, BeforeValidator, Field

from .base import Strict

EKS_ADDONS = ("vpc-cni", "kube-proxy", "coredns", "eks-pod-identity-agent")
"""The EKS add-ons of the cluster, by their EKS names (`aws eks describe-addon-versions --addon-name`)."""

DEFAULT_ADDON_VERSIONS: dict[str, dict[str, str]] = {
    "1.35": {"vpc-cni": "v1.22.4-eksbuild.3", "kube-proxy": "v1.35.3-eksbuild.13",
             "coredns": "v1.14.3-eksbuild.3", "eks-pod-identity-agent": "v1.3.10-eksbuild.3"},
    "1.36": {"vpc-cni": "v1.22.4-eksbuild.3", "kube-proxy": "v1.36.0-eksbuild.14",
             "coredns": "v1.14.3-eksbuild.3", "eks-pod-identity-agent": "v1.3.10-eksbuild.3"},
}
"""Default build of each add-on per Kubernetes version (sources: docs/gpu-and-addons.md, "EKS add-on versions")."""

_VERSION = re.compile(r"v[0-9]+\.[0-9]+\.[0-9]+-eksbuild\.[0-9]+", re.ASCII)
_KUBE_PROXY = re.compile(r"v([0-9]+\.[0-9]+)\.[0-9]+-eksbuild\.[0-9]+", re.ASCII)


def _addon_version(example: str):
    def check(v: str) -> str:
        if _VERSION.fullmatch(v):
            return v
        if "-minimal-eksbuild." in v:
            # The self-managed kube-proxy image tag, which EKS refuses as an add-on version.
            raise ValueError(f"'{v}' is the tag of a self-managed image, not an EKS add-on version; allowed: the "
                             f"same build without -minimal, e.g. {v.replace('-minimal-eksbuild.', '-eksbuild.')}")
        raise ValueError(f"'{v}' is not an EKS add-on version; allowed: v<major>.<minor>.<patch>-eksbuild.<build> "
                         f"as `aws eks describe-addon-versions` lists it, e.g. {example}")

    def text(v):
        # YAML reads `coredns: 1.14` as a number: say what an add-on version looks like rather than "quote it".
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    return Annotated[str, BeforeValidator(text), AfterValidator(check)]


def kube_proxy_minor(version: str) -> Optional[str]:
    """The Kubernetes minor a kube-proxy add-on build is for (`v1.35.3-eksbuild.13` -> `1.35`)."""
    m = _KUBE_PROXY.fullmatch(version)
    return m.group(1) if m else None


_LATEST = DEFAULT_ADDON_VERSIONS[max(DEFAULT_ADDON_VERSIONS, key=lambda k: tuple(map(int, k.split("."))))]


class AddonVersionsConfig(Strict):
    """`gpu-burst:cluster.addonVersions` — a build per EKS add-on, overriding the default for
    `cluster.kubernetesVersion`. Keys are the EKS add-on names."""

    vpc_cni: Optional[_addon_version(_LATEST["vpc-cni"])] = Field(None, alias="vpc-cni")
    """Amazon VPC CNI build."""
    kube_proxy: Optional[_addon_version(_LATEST["kube-proxy"])] = Field(None, alias="kube-proxy")
    """kube-proxy build; its minor is the cluster's Kubernetes minor (v1.36.x-eksbuild.N for 1.36)."""
    coredns: Optional[_addon_version(_LATEST["coredns"])] = Field(None, alias="coredns")
    """CoreDNS build."""
    eks_pod_identity_agent: Optional[_addon_version(_LATEST["eks-pod-identity-agent"])] = Field(
        None, alias="eks-pod-identity-agent")
    """EKS Pod Identity Agent build."""

    def explicit(self) -> dict[str, str]:
        """The builds set in the stack file, by EKS add-on name."""
        return {name: v for name in EKS_ADDONS if (v := getattr(self, name.replace("-", "_"))) is not None}


def addon_version_problems(kubernetes_version: str, pins: AddonVersionsConfig) -> list[tuple[str, str]]:
    """(path below `cluster`, message) for add-on versions that do not go with `kubernetes_version`: an add-on with
    neither a pin nor a default for that version, and a kube-proxy pinned for another Kubernetes minor."""
    out: list[tuple[str, str]] = []
    explicit, defaults = pins.explicit(), DEFAULT_ADDON_VERSIONS.get(kubernetes_version, {})
    for name in EKS_ADDONS:
        if name not in explicit and name not in defaults:
            out.append((f"addonVersions.{name}", f"has no default for kubernetesVersion {kubernetes_version}; "
                        f"allowed: a build published for it, from `aws eks describe-addon-versions --addon-name "
                        f"{name} --kubernetes-version {kubernetes_version}`"))
    kp = explicit.get("kube-proxy")
    if kp and kube_proxy_minor(kp) not in (None, kubernetes_version):
        default = defaults.get("kube-proxy")
        allowed = (f"e.g. {default} (the default for {kubernetes_version}), or remove the key" if default else
                   f"one from `aws eks describe-addon-versions --addon-name kube-proxy --kubernetes-version "
                   f"{kubernetes_version}`")
        out.append(("addonVersions.kube-proxy", f"'{kp}' is kube-proxy for Kubernetes {kube_proxy_minor(kp)}, not "
                    f"for kubernetesVersion {kubernetes_version}; allowed: a v{kubernetes_version}.x build, {allowed}"))
    return out


def resolved_addon_versions(kubernetes_version: str, pins: AddonVersionsConfig) -> dict[str, str]:
    """The build of every add-on: the pin, else the default for `kubernetes_version` (validated to exist)."""
    return {**DEFAULT_ADDON_VERSIONS.get(kubernetes_version, {}), **pins.explicit()}
