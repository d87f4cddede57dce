"""The pre-loaded data-volume snapshot on the stack side: the tag identity shared with `burstctl snapshot build`,
`gpu.dataVolumeSnapshotId: auto` (config rules, the lookup before any resource, the EC2NodeClass it yields) and the
fallback to pulling when no snapshot was built yet."""

import logging
import tomllib

import pytest
import yaml
from pulumi_mocks import ACCOUNT, REGION
from stack_helpers import ROOT, evaluate_stack
from test_workload_support import as_object

from components.image_cache import pulled_images
from stacks.config import SNAPSHOT_TAG, ConfigError, image_snapshot_tags, validate

BASE = {"environment": "dev", "region": REGION}
BR = {"amiFamily": "bottlerocket", "amiVersion": "v1.64.0"}
VLLM = "vllm/vllm-openai:v0.33.0"
REG = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ecr-pullthroughcache/docker-hub-AbCdEf"


# -- the tag identity ---------------------------------------------------------------------------------------------
def test_tags_identify_images_release_kubernetes_and_arch():
    t = image_snapshot_tags([VLLM], "1.64.0", "1.35")
    assert t == image_snapshot_tags([VLLM, VLLM], "1.64.0", "1.35")  # a set of references, order-free
    assert t[SNAPSHOT_TAG] == image_snapshot_tags([VLLM], "1.64.0", "1.35", "x86_64")[SNAPSHOT_TAG]
    others = [image_snapshot_tags(["vllm/vllm-openai:v0.34.0"], "1.64.0", "1.35"),
              image_snapshot_tags([f"{REG}/docker-hub/{VLLM}"], "1.64.0", "1.35"),
              image_snapshot_tags([VLLM], "1.51.0", "1.35"),
              image_snapshot_tags([VLLM], "1.64.0", "1.36"),
              image_snapshot_tags([VLLM], "1.64.0", "1.35", "arm64")]
    assert len({t[SNAPSHOT_TAG], *(o[SNAPSHOT_TAG] for o in others)}) == 6
    assert t["gpu-burst.io/images"] == VLLM and t["gpu-burst.io/bottlerocket-version"] == "1.64.0"
    # EC2 tag values: at most 256 characters (EC2 user guide, tag restrictions), whatever the references
    long = image_snapshot_tags([f"{REG}/{'x' * 200}:v{i}" for i in range(3)], "1.64.0", "1.35")
    assert all(len(v) <= 256 for v in long.values()) and len(long[SNAPSHOT_TAG]) == 32


def test_stack_tags_use_the_pull_through_cache_reference():
    cfg = validate({**BASE, "gpu": {**BR, "dataVolumeSnapshotId": "auto",
                                    "imageCache": {"dockerHubCredentialArn": SECRET}},
                    "models": [_model()]})
    pulled = pulled_images(cfg.model_images, ACCOUNT, cfg.region, cfg.gpu.image_cache_prefix)
    assert pulled == [f"{REG}/docker-hub/{VLLM}"]
    assert cfg.image_snapshot_tags(pulled) == image_snapshot_tags([f"{REG}/docker-hub/{VLLM}"], "1.64.0", "1.35")


# -- config ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gpu", [
    {**BR, "dataVolumeSnapshotId": "auto"},                          # fastImagePull true: SOCI until a snapshot exists
    {**BR, "dataVolumeSnapshotId": "auto", "fastImagePull": False},
    {**BR, "dataVolumeSnapshotId": "auto", "volumeInitializationRateMibps": 300},
    {**BR, "dataVolumeSnapshotId": "snap-0123abcd", "fastImagePull": False},
])
def test_auto_and_snapshot_ids_are_accepted(gpu):
    assert validate({**BASE, "gpu": gpu}).gpu.data_volume_snapshot_id == gpu["dataVolumeSnapshotId"]


@pytest.mark.parametrize("gpu,key,words", [
    ({"dataVolumeSnapshotId": "auto"}, "gpu.dataVolumeSnapshotId", "amiFamily bottlerocket"),
    ({**BR, "amiVersion": "latest", "allowLatestAmi": True, "dataVolumeSnapshotId": "auto"},
     "gpu.dataVolumeSnapshotId", "pinned amiVersion"),
    ({**BR, "dataVolumeSnapshotId": "Auto", "fastImagePull": False}, "gpu.dataVolumeSnapshotId", "allowed: auto, or snap-"),
    ({**BR, "dataVolumeSnapshotId": "snap-0123456789", "fastImagePull": False}, "gpu.dataVolumeSnapshotId",
     "8 or 17 hex digits"),
    ({**BR, "dataVolumeSnapshotId": "snap-0123456789abcdef0"}, "gpu.fastImagePull", "dataVolumeSnapshotId: auto"),
])
def test_bad_snapshot_settings_are_one_line_naming_the_key(gpu, key, words):
    with pytest.raises(ConfigError) as e:
        validate({**BASE, "gpu": gpu})
    lines = [line for line in e.value.lines if line.startswith(f"gpu-burst:{key}:")]
    assert len(lines) == 1 and words in lines[0], e.value.lines


# -- the lookup at deploy, under Pulumi mocks ---------------------------------------------------------------------
def _model() -> dict:
    return yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["gpu-burst:models"][0]


def _dev_gpu(**extra) -> dict:
    gpu = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["gpu-burst:gpu"]
    return {**gpu, **BR, "dataVolumeSnapshotId": "auto", **extra}


def _snapshot(sid: str, tags: dict, start: str, state: str = "completed", owner: str = ACCOUNT) -> dict:
    return {"SnapshotId": sid, "OwnerId": owner, "State": state, "StartTime": start,
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


def _deploy(mocks, snapshots: list, **gpu) -> tuple[dict, dict]:
    mocks.snapshots = snapshots
    outputs = evaluate_stack("dev", {"gpu": _dev_gpu(**gpu)})
    return as_object(mocks.named("gpu-nodeclass"))["spec"], outputs


def _data_volume(spec: dict) -> dict:
    return next(d for d in spec["blockDeviceMappings"] if d["deviceName"] == "/dev/xvdb")["ebs"]


def test_auto_restores_the_newest_completed_snapshot_of_the_account(mocks, caplog):
    tags = image_snapshot_tags([VLLM], "1.64.0", "1.35")
    other = image_snapshot_tags(["vllm/vllm-openai:v0.32.0"], "1.64.0", "1.35")
    snaps = [_snapshot("snap-0aaaaaaaaaaaaaaa1", tags, "2026-11-01T10:00:00Z"),
             _snapshot("snap-0aaaaaaaaaaaaaaa2", tags, "2026-11-20T10:00:00Z"),             # the newest complete one
             _snapshot("snap-0aaaaaaaaaaaaaaa3", tags, "2026-11-30T10:00:00Z", "pending"),  # still being written
             _snapshot("snap-0aaaaaaaaaaaaaaa4", tags, "2026-11-30T11:00:00Z", owner="999999999999"),  # not ours
             _snapshot("snap-0aaaaaaaaaaaaaaa5", other, "2026-11-30T12:00:00Z")]             # another image pin
    with caplog.at_level(logging.WARNING):
        spec, outputs = _deploy(mocks, snaps, volumeInitializationRateMibps=300)
    ebs = _data_volume(spec)
    assert ebs["snapshotID"] == "snap-0aaaaaaaaaaaaaaa2" and ebs["volumeInitializationRate"] == 300
    assert "encrypted" not in ebs  # the volume takes the snapshot's encryption
    assert "userData" not in spec  # no SOCI: the snapshot's images are overlayfs-unpacked
    assert outputs["gpuDataVolumeSnapshotId"] == "snap-0aaaaaaaaaaaaaaa2"
    assert not [r for r in caplog.records if "dataVolumeSnapshotId" in r.getMessage()]
    (call,) = [c for c in mocks.calls if c.token == "aws:ebs/getSnapshotIds:getSnapshotIds"]
    assert call.args["owners"] == ["self"]
    assert {"name": f"tag:{SNAPSHOT_TAG}", "values": [tags[SNAPSHOT_TAG]]} in call.args["filters"]


def test_auto_without_a_snapshot_pulls_with_soci_and_names_the_build_command(mocks, caplog):
    stale = image_snapshot_tags([VLLM], "1.49.0", "1.35")  # built for another Bottlerocket release
    with caplog.at_level(logging.WARNING):
        spec, outputs = _deploy(mocks, [_snapshot("snap-0bbbbbbbbbbbbbbb1", stale, "2026-11-01T10:00:00Z")],
                                volumeInitializationRateMibps=300)
    ebs = _data_volume(spec)
    assert "snapshotID" not in ebs and "volumeInitializationRate" not in ebs and ebs["encrypted"] is True
    soci = tomllib.loads(spec["userData"])["settings"]
    assert soci["container-runtime"]["snapshotter"] == "soci"
    assert outputs["gpuDataVolumeSnapshotId"] == ""
    (warning,) = [r.getMessage() for r in caplog.records if "dataVolumeSnapshotId" in r.getMessage()]
    assert "burstctl snapshot build --stack-file Pulumi.dev.yaml" in warning and VLLM in warning
    assert "SOCI" in warning and "Bottlerocket 1.64.0" in warning


def test_auto_without_a_snapshot_and_without_fast_pull_pulls_plainly(mocks, caplog):
    spec, _ = _deploy(mocks, [], fastImagePull=False)
    assert "userData" not in spec and "snapshotID" not in _data_volume(spec)


def test_auto_matches_the_reference_the_model_pods_pull(mocks):
    tags = image_snapshot_tags([f"{REG}/docker-hub/{VLLM}"], "1.64.0", "1.35")
    spec, _ = _deploy(mocks, [_snapshot("snap-0ccccccccccccccc1", tags, "2026-11-01T10:00:00Z")],
                      imageCache={"dockerHubCredentialArn": SECRET})
    assert _data_volume(spec)["snapshotID"] == "snap-0ccccccccccccccc1"
    (dep,) = [as_object(r) for r in mocks.created if r.typ == "kubernetes:apps/v1:Deployment"
              and r.inputs["metadata"].get("name") == _model()["servedName"]]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == f"{REG}/docker-hub/{VLLM}"


def test_the_lookup_happens_before_any_resource(mocks):
    _deploy(mocks, [])
    lookup = next(i for i, c in enumerate(mocks.calls) if c.token == "aws:ebs/getSnapshotIds:getSnapshotIds")
    assert mocks.resources_at_call[lookup] == 0 and len(mocks.created) > 100


def test_auto_refuses_a_snapshot_larger_than_the_data_volume_before_any_resource(mocks):
    # EC2 refuses a volume smaller than its snapshot: every GPU launch would fail, so the deploy stops first.
    tags = image_snapshot_tags([VLLM], "1.64.0", "1.35")
    big = {**_snapshot("snap-0ccccccccccccccc1", tags, "2026-11-20T10:00:00Z"), "VolumeSize": 250}
    with pytest.raises(Exception) as e:
        _deploy(mocks, [big], volumeSizeGib=200)
    assert ("gpu-burst:gpu.volumeSizeGib: 200 GiB is smaller than the pre-loaded snapshot snap-0ccccccccccccccc1 "
            "(250 GiB) that dataVolumeSnapshotId: auto found") in str(e.value)
    assert "allowed: at least 250" in str(e.value) and "--volume-size-gib 200" in str(e.value)
    assert mocks.created == [], "nothing may be registered before the config error"


def test_auto_restores_a_snapshot_up_to_the_volume_size_and_warns_when_unencrypted(mocks, caplog):
    tags = image_snapshot_tags([VLLM], "1.64.0", "1.35")
    snap = {**_snapshot("snap-0ccccccccccccccc2", tags, "2026-11-20T10:00:00Z"), "VolumeSize": 200,
            "Encrypted": False}
    with caplog.at_level(logging.WARNING):
        spec, _ = _deploy(mocks, [snap], volumeSizeGib=200)
    assert _data_volume(spec)["snapshotID"] == "snap-0ccccccccccccccc2"
    assert [r for r in caplog.records if "snap-0ccccccccccccccc2 is not encrypted" in r.getMessage()]
