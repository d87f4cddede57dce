"""The prod stack's GPU capacity on Bottlerocket (bottlerocket@v1.64.0), SOCI on, and with a pre-loaded data-volume
snapshot: the EC2NodeClass and NodePools the whole stack renders, checked against the upstream Karpenter v1.14.1 CRDs
(schema strict, and every CEL rule of the EC2NodeClass that touches a rendered field), the userData against the
Bottlerocket settings model and Karpenter's Bottlerocket merge, and the device-plugin story (no DaemonSet)."""

import functools
import math
import re
import tomllib
from decimal import Decimal

import pytest
import yaml
from stack_cache import evaluated
from stack_helpers import ROOT
from upstream import crd_schema, needs_upstream, validate_cr

from components._common import GPU_PRESENT_LABEL
from components.gpu_node_pool import GPU_TAINT
from stacks.config.base import GIB, quantity_value

VERSION = "v1.64.0"
SNAP = "snap-0123456789abcdef0"
EC2NODECLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
NODEPOOL = "kubernetes:karpenter.sh/v1:NodePool"


def _prod_gpu(**over) -> dict:
    """Pulumi.prod.yaml's gpu section (pools, volume size), on Bottlerocket, with the data volume this test chooses
    (an empty one, or the given snapshot) rather than whatever the stack file sets."""
    gpu = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]["gpu-burst:gpu"]
    gpu = {k: v for k, v in gpu.items() if k not in ("dataVolumeSnapshotId", "volumeInitializationRateMibps")}
    return {**gpu, "amiFamily": "bottlerocket", "amiVersion": VERSION, **over}


VARIANTS = {
    "soci": _prod_gpu(fastImagePull=True),
    "snapshot": _prod_gpu(fastImagePull=False, dataVolumeSnapshotId=SNAP, volumeInitializationRateMibps=300),
}


@functools.cache
def _prod(variant: str):
    """The prod stack evaluated once per variant (about a second each); tests only read what it registered."""
    return evaluated("prod", overrides={"gpu": VARIANTS[variant]}, secrets={"hfToken": "hf_test_token"})[0]


@pytest.fixture(params=sorted(VARIANTS))
def prod_bottlerocket(request):
    return request.param, _prod(request.param)


def _cr(r) -> dict:
    i = r.inputs
    return {"apiVersion": i["apiVersion"], "kind": i["kind"], "metadata": i["metadata"], "spec": i["spec"]}


def _node_class(mocks) -> dict:
    (nc,) = mocks.of_type(EC2NODECLASS)
    return _cr(nc)


# -- CEL ---------------------------------------------------------------------------------------------------------
# validate_cr checks the structural schema only. The EC2NodeClass CRD also carries CEL rules
# (x-kubernetes-validations) that the API server enforces; each rule text the rendered object reaches is evaluated
# below, keyed by its exact text: a rule this table does not know (a Karpenter upgrade, a new field we set) fails the
# test instead of passing unchecked.

def _has(o, k) -> bool:
    return isinstance(o, dict) and o.get(k) is not None


def _selector_all(keys):
    return lambda s: all(any(_has(x, k) for k in keys) for x in s)


_FAMILIES = [("al2", "AL2"), ("al2023", "AL2023"), ("bottlerocket", "Bottlerocket"), ("windows2019", "Windows2019"),
             ("windows2022", "Windows2022"), ("windows2025", "Windows2025")]


def _alias_family(a: str) -> str:
    return re.match(r"^[^@]+", a).group(0)


def _family_rule(alias_family: str, family: str):
    return lambda s: (not _has(s, "amiFamily") or not any(
        _has(x, "alias") and _alias_family(x["alias"]) == alias_family for x in s["amiSelectorTerms"])
        or s["amiFamily"] in ("Custom", family))


_TAG_RULE = "self.all(k, k != '' && self[k] != '')"
CEL = {
    "spec": {
        "(has(self.role) && !has(self.instanceProfile)) || (!has(self.role) && has(self.instanceProfile))":
            lambda s: _has(s, "role") != _has(s, "instanceProfile"),
        **{(f"!has(self.amiFamily) || (self.amiSelectorTerms.exists(x, has(x.alias) && x.alias.find('^[^@]+') == "
            f"'{a}') ? (self.amiFamily == 'Custom' || self.amiFamily == '{f}') : true)"): _family_rule(a, f)
           for a, f in _FAMILIES},
        "self.amiSelectorTerms.exists(x, has(x.alias)) ? true : has(self.amiFamily)":
            lambda s: any(_has(x, "alias") for x in s["amiSelectorTerms"]) or _has(s, "amiFamily"),
    },
    "spec.amiSelectorTerms": {
        "self.all(x, has(x.tags) || has(x.id) || has(x.name) || has(x.alias) || has(x.ssmParameter))":
            _selector_all(["tags", "id", "name", "alias", "ssmParameter"]),
        "!self.exists(x, has(x.id) && (has(x.alias) || has(x.tags) || has(x.name) || has(x.owner)))":
            lambda s: not any(_has(x, "id") and any(_has(x, k) for k in ("alias", "tags", "name", "owner")) for x in s),
        "!self.exists(x, has(x.alias) && (has(x.id) || has(x.tags) || has(x.name) || has(x.owner)))":
            lambda s: not any(_has(x, "alias") and any(_has(x, k) for k in ("id", "tags", "name", "owner")) for x in s),
        "!(self.exists(x, has(x.alias)) && self.size() != 1)":
            lambda s: not (any(_has(x, "alias") for x in s) and len(s) != 1),
    },
    "spec.amiSelectorTerms[].alias": {
        "self.matches('^[a-zA-Z0-9]+@.+$')": lambda s: re.search(r"^[a-zA-Z0-9]+@.+$", s) is not None,
        "self.split('@')[0] in ['al2','al2023','bottlerocket','windows2019','windows2022','windows2025']":
            lambda s: s.split("@")[0] in [a for a, _ in _FAMILIES],
        "self.split('@')[0] in ['windows2019','windows2022','windows2025'] ? self.split('@')[1] == 'latest' : true":
            lambda s: s.split("@")[0] not in ("windows2019", "windows2022", "windows2025") or s.split("@")[1] == "latest",
    },
    "spec.role": {"self != ''": lambda s: s != ""},
    "spec.blockDeviceMappings": {
        "self.filter(x, has(x.rootVolume)?x.rootVolume==true:false).size() <= 1":
            lambda s: sum(1 for x in s if x.get("rootVolume") is True) <= 1,
    },
    "spec.blockDeviceMappings[].ebs": {
        "has(self.snapshotID) || has(self.volumeSize)": lambda s: _has(s, "snapshotID") or _has(s, "volumeSize"),
        "!has(self.volumeInitializationRate) || (has(self.snapshotID) && self.snapshotID != '')":
            lambda s: not _has(s, "volumeInitializationRate") or (_has(s, "snapshotID") and s["snapshotID"] != ""),
    },
    "spec.subnetSelectorTerms": {
        "self.size() != 0": lambda s: len(s) != 0,
        "self.all(x, has(x.tags) || has(x.id))": _selector_all(["tags", "id"]),
        "!self.all(x, has(x.id) && has(x.tags))": lambda s: not all(_has(x, "id") and _has(x, "tags") for x in s),
    },
    "spec.securityGroupSelectorTerms": {
        "self.size() != 0": lambda s: len(s) != 0,
        "self.all(x, has(x.tags) || has(x.id) || has(x.name))": _selector_all(["tags", "id", "name"]),
        "!self.all(x, has(x.id) && (has(x.tags) || has(x.name)))":
            lambda s: not all(_has(x, "id") and (_has(x, "tags") or _has(x, "name")) for x in s),
        "!self.all(x, has(x.name) && (has(x.tags) || has(x.id)))":
            lambda s: not all(_has(x, "name") and (_has(x, "tags") or _has(x, "id")) for x in s),
    },
    **{p: {_TAG_RULE: lambda s: all(k != "" and v != "" for k, v in s.items())}
       for p in ("spec.amiSelectorTerms[].tags", "spec.subnetSelectorTerms[].tags",
                 "spec.securityGroupSelectorTerms[].tags")},
    "spec.tags": {
        "self.all(k, k != '')": lambda s: all(k != "" for k in s),
        "self.all(k, k !='eks:eks-cluster-name')": lambda s: "eks:eks-cluster-name" not in s,
        "self.all(k, !k.startsWith('kubernetes.io/cluster') )":
            lambda s: not any(k.startswith("kubernetes.io/cluster") for k in s),
        "self.all(k, k != 'karpenter.sh/nodepool')": lambda s: "karpenter.sh/nodepool" not in s,
        "self.all(k, k !='karpenter.sh/nodeclaim')": lambda s: "karpenter.sh/nodeclaim" not in s,
        "self.all(k, k !='karpenter.k8s.aws/ec2nodeclass')": lambda s: "karpenter.k8s.aws/ec2nodeclass" not in s,
    },
}


# NodePool (karpenter.sh_nodepools.yaml). Rules that read `oldSelf` are transition rules: the API server runs them
# only on updates, never on create, so they hold for a first apply.
_TRANSITION = lambda _: True  # noqa: E731
_DOMAIN_RULE = re.compile(r'^(?:self\.all\(x, )?(?:x|self) in \[(?P<known>[^\]]*)\] \|\| '
                          r'!(?:x|self)\.find\("\^\(\[\^/\]\+\)"\)\.endsWith\("(?P<domain>[^"]+)"\)\)?$')
"""`<key> in [known...] || !<key>.find("^([^/]+)").endsWith("<domain>")`: a key of a reserved domain must be one of the
well-known labels Karpenter lists (the label/requirement-key rules of the NodePool CRD)."""


def _domain_rule(rule: str):
    m = _DOMAIN_RULE.match(rule)
    if not m:
        return None
    known = set(re.findall(r'"([^"]+)"', m["known"]))
    ok = lambda k: k in known or not re.match(r"^[^/]+", k).group(0).endswith(m["domain"])  # noqa: E731
    return (lambda s: all(ok(k) for k in s)) if rule.startswith("self.all(") else ok


def _quantity_ops(s) -> bool:
    # CEL int() of a non-integer string is an evaluation error, which the API server reports as a failed rule.
    return all(len(x.get("values") or []) == 1 and re.fullmatch(r"-?[0-9]+", x["values"][0])
               and int(x["values"][0]) >= 0 for x in s if x["operator"] in ("Gt", "Lt", "Gte", "Lte"))


NODEPOOL_CEL = {
    "spec": {
        "has(self.replicas) == has(oldSelf.replicas)": _TRANSITION,
        "!has(self.replicas) || (!has(self.limits) || size(self.limits) == 0 || (size(self.limits) == 1 && 'nodes' in "
        "self.limits))": lambda s: not _has(s, "replicas") or not s.get("limits") or list(s["limits"]) == ["nodes"],
        "!has(self.replicas) || !has(self.weight)": lambda s: not (_has(s, "replicas") and _has(s, "weight")),
    },
    "spec.disruption.budgets": {
        "self.all(x, has(x.schedule) == has(x.duration))": lambda s: all(_has(x, "schedule") == _has(x, "duration")
                                                                         for x in s),
    },
    "spec.template.metadata.labels": {
        'self.all(x, x != "karpenter.sh/nodepool")': lambda s: "karpenter.sh/nodepool" not in s,
        'self.all(x, x != "kubernetes.io/hostname")': lambda s: "kubernetes.io/hostname" not in s,
    },
    "spec.template.spec.nodeClassRef": {"self.group == oldSelf.group": _TRANSITION,
                                        "self.kind == oldSelf.kind": _TRANSITION},
    **{f"spec.template.spec.nodeClassRef.{k}": {"self != ''": lambda s: s != ""} for k in ("group", "kind", "name")},
    "spec.template.spec.requirements": {
        "self.all(x, x.operator == 'In' ? x.values.size() != 0 : true)":
            lambda s: all(x.get("values") for x in s if x["operator"] == "In"),
        "self.all(x, (x.operator == 'Gt' || x.operator == 'Lt' || x.operator == 'Gte' || x.operator == 'Lte') ? "
        "(x.values.size() == 1 && int(x.values[0]) >= 0) : true)": _quantity_ops,
        "self.all(x, (x.operator == 'In' && has(x.minValues)) ? x.values.size() >= x.minValues : true)":
            lambda s: all(len(x["values"]) >= x["minValues"] for x in s if x["operator"] == "In" and "minValues" in x),
    },
    "spec.template.spec.requirements[].key": {
        'self != "karpenter.sh/nodepool"': lambda s: s != "karpenter.sh/nodepool",
        'self != "kubernetes.io/hostname"': lambda s: s != "kubernetes.io/hostname",
    },
}
CEL_BY_KIND = {"EC2NodeClass": CEL, "NodePool": NODEPOOL_CEL}


def cel_errors(obj: dict) -> list[str]:
    """Every x-kubernetes-validations rule of the object's CRD on a node the object sets, evaluated (or reported as
    not evaluated)."""
    errors: list[str] = []
    table = CEL_BY_KIND[obj["kind"]]

    def walk(schema: dict, value, path: str) -> None:
        if value is None:
            return
        for rule in schema.get("x-kubernetes-validations", []):
            fn = table.get(path, {}).get(rule["rule"]) or _domain_rule(rule["rule"])
            if fn is None:
                errors.append(f"{path}: CEL rule not evaluated by this test: {rule['rule']}")
            elif not fn(value):
                errors.append(f"{path}: {rule.get('message', rule['rule'])}")
        if isinstance(value, dict):
            for k, sub in (schema.get("properties") or {}).items():
                walk(sub, value.get(k), f"{path}.{k}" if path else k)
        elif isinstance(value, list) and "items" in schema:
            for item in value:
                walk(schema["items"], item, f"{path}[]")

    walk(crd_schema(obj["apiVersion"], obj["kind"]), obj, "")
    return errors


@needs_upstream
def test_cel_check_is_not_vacuous():
    bad = {"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass", "metadata": {"name": "x"}, "spec": {
        "role": "r", "amiFamily": "AL2023", "amiSelectorTerms": [{"alias": "bottlerocket@v1.64.0"}],
        "subnetSelectorTerms": [{"id": "subnet-1"}], "securityGroupSelectorTerms": [{"id": "sg-1"}],
        "blockDeviceMappings": [
            {"deviceName": "/dev/xvda", "rootVolume": True, "ebs": {"volumeSize": "4Gi"}},
            {"deviceName": "/dev/xvdb", "rootVolume": True, "ebs": {"volumeSize": "9Gi", "volumeInitializationRate": 300}}],
        "tags": {"karpenter.sh/nodepool": "x"}}}
    errors = cel_errors(bad)
    assert validate_cr(bad) == []  # the structural schema alone accepts all of it
    assert any("amiFamily must be 'Bottlerocket'" in e for e in errors)
    assert any("only one blockDeviceMappings with rootVolume" in e for e in errors)
    assert any("snapshotID must be set when volumeInitializationRate is set" in e for e in errors)
    assert any(e.startswith("spec.tags:") for e in errors)
    # An unknown rule (what a Karpenter upgrade adds) is reported, never skipped.
    assert cel_errors({**bad, "spec": {**bad["spec"], "connectionTracking": {"udpTimeout": 30}}}) != errors
    pool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "x"}, "spec": {"template": {
        "metadata": {"labels": {"karpenter.k8s.aws/instance-local-nvme-gb": "1"}},
        "spec": {"nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "x"}, "requirements": [
            {"key": "karpenter.k8s.aws/instance-local-nvme", "operator": "Gt", "values": ["250G"]},
            {"key": "karpenter.k8s.aws/local-nvme", "operator": "Exists"}]}}}}
    pool_errors = cel_errors(pool)
    assert validate_cr(pool) == []
    assert any("single positive integer value" in e for e in pool_errors)  # not a quantity, an integer of GB
    assert sum(e.startswith("spec.template.spec.requirements[].key:") for e in pool_errors) == 1
    assert any(e.startswith("spec.template.metadata.labels:") for e in pool_errors)


# -- the rendered prod objects -------------------------------------------------------------------------------------

@needs_upstream
def test_prod_bottlerocket_objects_validate_strictly_against_the_crds(prod_bottlerocket):
    variant, mocks = prod_bottlerocket
    objs = [_cr(r) for r in mocks.of_type(EC2NODECLASS) + mocks.of_type(NODEPOOL)]
    assert [o["kind"] for o in objs] == ["EC2NodeClass", "NodePool", "NodePool"]
    for o in objs:
        assert validate_cr(o) == [], (variant, o["metadata"]["name"], validate_cr(o))
        assert cel_errors(o) == [], (variant, o["metadata"]["name"], cel_errors(o))
    reqs = [r for o in objs[1:] for r in o["spec"]["template"]["spec"]["requirements"]
            if r["key"] == "karpenter.k8s.aws/instance-local-nvme"]
    # A well-known label (the CRD's requirement-key rule lists it), compared as an integer number of GB.
    assert reqs == ([{"key": "karpenter.k8s.aws/instance-local-nvme", "operator": "Gt", "values": ["0"]}] * 2
                    if variant == "soci" else [])


def test_prod_bottlerocket_node_class(prod_bottlerocket):
    variant, mocks = prod_bottlerocket
    spec = _node_class(mocks)["spec"]
    # The alias Karpenter resolves through /aws/service/bottlerocket/aws-k8s-<k8s>-nvidia/x86_64/1.64.0/image_id
    # (aws/karpenter-provider-aws@v1.14.1 pkg/providers/amifamily/bottlerocket.go DescribeImageQuery, 'v' trimmed).
    assert spec["amiSelectorTerms"] == [{"alias": f"bottlerocket@{VERSION}"}]
    assert "amiFamily" not in spec  # inferred from the alias (CRD: optional with an alias)
    assert spec["metadataOptions"] == {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled",
                                       "httpPutResponseHopLimit": 1, "httpTokens": "required"}
    # Karpenter adds no defaults once blockDeviceMappings is set (pkg/providers/amifamily/bottlerocket.go
    # DefaultBlockDeviceMappings applies only without it): both Bottlerocket devices must be listed.
    os_disk, data = spec["blockDeviceMappings"]
    assert os_disk == {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "4Gi", "volumeType": "gp3",
                                                         "encrypted": True, "deleteOnTermination": True}}
    assert data["deviceName"] == "/dev/xvdb" and data["rootVolume"] is True
    # pkg/providers/instancetype/types.go ephemeralStorage: the rootVolume device's size is the node's
    # ephemeral-storage in scheduling; prod's 300 GiB, not the 4 GiB OS disk.
    assert data["ebs"]["volumeSize"] == "300Gi" and data["ebs"]["throughput"] == 600
    if variant == "snapshot":
        assert data["ebs"]["snapshotID"] == SNAP and data["ebs"]["volumeInitializationRate"] == 300
        assert "encrypted" not in data["ebs"]
        assert spec.get("userData") is None  # no SOCI: it would not see the snapshot's images
        # No RAID0: Karpenter's bind would mount the NVMe array over the restored /var/lib/containerd.
        assert "instanceStorePolicy" not in spec
    else:
        assert data["ebs"]["encrypted"] is True and "snapshotID" not in data["ebs"]
        assert spec["userData"]
        # Karpenter adds `apiclient ephemeral-storage init` + `bind` (no --dirs from v1.46.0: every allow-listed
        # dir, SOCI's /var/lib/soci-snapshotter included) as bootstrap command 000-mount-instance-storage
        # (pkg/providers/amifamily/bootstrap/bottlerocket.go); our userData must leave bootstrap-commands to it.
        assert spec["instanceStorePolicy"] == "RAID0"
        assert "bootstrap-commands" not in tomllib.loads(spec["userData"])["settings"]


# Bottlerocket settings model, bottlerocket-os/bottlerocket-settings-sdk bottlerocket-settings-models (0.12.0 added
# both; 0.14.0/0.15.0 the chunk size): settings-extensions/container-runtime/src/lib.rs ContainerRuntimeSettingsV1 and
# settings-extensions/container-runtime-plugins/src/lib.rs ContainerRuntimePluginsSettingsV1. `#[model]` structs reject
# unknown keys, and a rejected userData stops the node's settings from applying at boot.
CONTAINER_RUNTIME = {"max-container-log-line-size", "max-concurrent-downloads", "max-concurrent-unpacks",
                     "concurrent-download-chunk-size", "enable-unprivileged-ports", "enable-unprivileged-icmp",
                     "cgroup-writable", "snapshotter"}
SNAPSHOTTERS = {"overlayfs", "soci"}
SOCI = {"pull-mode", "parallel-pull-unpack"}
PULL_MODES = {"parallel-pull-unpack"}
PARALLEL_PULL_UNPACK = {"max-concurrent-downloads": int, "max-concurrent-downloads-per-image": int,
                        "concurrent-download-chunk-size": str, "max-concurrent-unpacks": int,
                        "max-concurrent-unpacks-per-image": int, "discard-unpacked-layers": bool}
CHUNK_SIZE = re.compile(r"^(unlimited|([0-9]+(\.[0-9]*)?|\.[0-9]+)([kKmMgG]?[bB])?)$")
"""Sizes the SDK's deserialize_chunk_size accepts ("16mb", "1.5gb", "100", "unlimited"; not "10 mb")."""


def test_prod_bottlerocket_soci_user_data_survives_karpenter_and_fits_the_settings_model():
    settings = tomllib.loads(_node_class(_prod("soci"))["spec"]["userData"])["settings"]
    # Karpenter (pkg/providers/amifamily/bootstrap/bottlerocket.go Script, bottlerocketsettings.go MarshalTOML) keeps
    # every [settings.*] table it does not model as is, and rewrites settings.kubernetes (cluster, labels, taints,
    # DNS) and settings.bootstrap-commands: nothing of ours may live there.
    assert set(settings) == {"container-runtime", "container-runtime-plugins"}
    rt = settings["container-runtime"]
    assert set(rt) <= CONTAINER_RUNTIME and rt["snapshotter"] in SNAPSHOTTERS and rt["snapshotter"] == "soci"
    soci = settings["container-runtime-plugins"]
    assert set(soci) == {"soci-snapshotter"} and set(soci["soci-snapshotter"]) <= SOCI
    assert soci["soci-snapshotter"]["pull-mode"] in PULL_MODES
    ppu = soci["soci-snapshotter"]["parallel-pull-unpack"]
    assert set(ppu) <= set(PARALLEL_PULL_UNPACK)
    assert all(type(v) is PARALLEL_PULL_UNPACK[k] for k, v in ppu.items()), ppu
    assert CHUNK_SIZE.match(ppu["concurrent-download-chunk-size"])
    # Above the Bottlerocket defaults the core-kit template falls back to (packages/soci-snapshotter/soci-config-toml:
    # 3 downloads and 1 unpack per image, unlimited chunk, layers kept).
    assert ppu["max-concurrent-downloads-per-image"] > 3 and ppu["max-concurrent-unpacks-per-image"] > 1
    # The NVIDIA device plugin keeps Bottlerocket's defaults (sources/shared-defaults/nvidia-k8s-device-plugin.toml:
    # volume-mounts device list, no sharing): unprivileged non-root pods get exactly the GPUs they requested.
    assert "kubelet-device-plugins" not in settings and "nvidia-container-runtime" not in settings


def test_prod_bottlerocket_has_no_device_plugin_daemonset_and_pools_still_taint_and_label(prod_bottlerocket):
    _, mocks = prod_bottlerocket
    charts = [r.inputs["chart"] for r in mocks.of_type("kubernetes:helm.sh/v3:Release")]
    assert "nvidia-device-plugin" not in charts  # the aws-k8s-*-nvidia variant runs the plugin as a host service
    assert not mocks.of_type("gpu-burst:index:NvidiaDevicePlugin")
    for pool in mocks.of_type(NODEPOOL):
        tmpl = pool.inputs["spec"]["template"]
        # What the model pods select and tolerate is set by the NodePool, not by GFD/NFD (absent on Bottlerocket).
        assert tmpl["metadata"]["labels"][GPU_PRESENT_LABEL] == "true"
        assert tmpl["spec"]["taints"] == [GPU_TAINT]
        reqs = {r["key"]: r["values"] for r in tmpl["spec"]["requirements"]}
        # Karpenter maps the nvidia SSM AMI to instances with a GPU count (pkg/providers/amifamily/types.go
        # VariantNvidia): every pool asks for NVIDIA GPUs on amd64.
        assert reqs["karpenter.k8s.aws/instance-gpu-manufacturer"] == ["nvidia"]
        assert reqs["kubernetes.io/arch"] == ["amd64"]


def karpenter_allocatable_ephemeral(volume_size: str) -> Decimal:
    """The ephemeral-storage Karpenter v1.14.1 expects a node of this EC2NodeClass to have for pods
    (pkg/providers/instancetype/types.go): the rootVolume device's size, less 1Gi kube-reserved and the 10% nodefs
    eviction threshold. A pod asking for more is never scheduled: no instance type fits."""
    size = quantity_value(volume_size)
    return size - GIB - Decimal(math.ceil(size / 100 * 10))


def test_prod_model_pods_fit_the_ephemeral_storage_karpenter_computes_for_bottlerocket(prod_bottlerocket):
    variant, mocks = prod_bottlerocket
    spec = _node_class(mocks)["spec"]
    data = next(d for d in spec["blockDeviceMappings"] if d.get("rootVolume"))
    if spec.get("instanceStorePolicy") == "RAID0":
        # types.go ephemeralStorage: with RAID0 the instance store (`<TotalSizeInGB>G`) replaces the rootVolume. The
        # prod pools' smallest is g5.xlarge/g6.xlarge/g6e.xlarge, 250 GB (Karpenter v1.14.1 instance-types.md).
        assert variant == "soci"
        room = karpenter_allocatable_ephemeral("250G")
        assert room == 250 * 10**9 - GIB - 25 * 10**9  # 208.5 GiB
    else:
        room = karpenter_allocatable_ephemeral(data["ebs"]["volumeSize"])
    gpu_pods = [d for d in mocks.of_type("kubernetes:apps/v1:Deployment")
                if any("nvidia.com/gpu" in c["resources"]["requests"]
                       for c in d.inputs["spec"]["template"]["spec"]["containers"])]
    assert gpu_pods
    for d in gpu_pods:
        want = sum(quantity_value(c["resources"]["requests"].get("ephemeral-storage", "0"))
                   for c in d.inputs["spec"]["template"]["spec"]["containers"])
        assert 0 < want <= room, (d.name, want, room)
