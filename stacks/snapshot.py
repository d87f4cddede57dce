"""Which data volume the GPU nodes start from: a pre-loaded snapshot (a `snap-` id, or the one `auto` finds by its
tags), or an empty volume onto which the image is pulled (with SOCI when fastImagePull is on). Decided once, before
any resource is declared."""

import pulumi
import pulumi_aws as aws

from components.image_cache import pulled_images

from .config import ConfigError, StackConfig, snapshot_filters
from .config.errors import NAMESPACE
from .contracts import DataVolume


def build_command() -> str:
    """The command that builds the snapshot `auto` looks for."""
    return f"burstctl snapshot build --stack-file Pulumi.{pulumi.get_stack()}.yaml"


def find_image_snapshot(cfg: StackConfig) -> tuple[dict[str, str], list[str]]:
    """(the tags the snapshot must carry, ids of this account's completed snapshots with them, newest first)."""
    account = aws.get_caller_identity().account_id
    tags = cfg.image_snapshot_tags(pulled_images(cfg.model_images, account, cfg.region, cfg.gpu.image_cache_prefix))
    # owners=self: only snapshots this account made (a public snapshot with the same tag is not trusted). The
    # provider's DescribeSnapshots data source returns an empty list when nothing matches and sorts by StartTime,
    # newest first (hashicorp/terraform-provider-aws internal/service/ec2/ebs_snapshot_ids_data_source.go).
    found = aws.ebs.get_snapshot_ids(
        owners=["self"],
        filters=[{"name": f["Name"], "values": f["Values"]} for f in snapshot_filters(tags)],
    )
    return tags, list(found.ids or [])


def resolve_data_volume(cfg: StackConfig) -> DataVolume:
    """The data volume of the GPU nodes. For `auto` without a snapshot the deploy goes on (the nodes pull the
    image) and one warning names the command that builds it."""
    g = cfg.gpu
    if not g.snapshot_auto:
        return DataVolume(snapshot_id=g.data_volume_snapshot_id, fast_image_pull=g.fast_image_pull)
    tags, ids = find_image_snapshot(cfg)
    if ids:
        check_restorable(cfg, ids[0])
        # Restored snapshots hold overlayfs-unpacked images: SOCI would not see them, so it stays off.
        return DataVolume(snapshot_id=ids[0], fast_image_pull=False, snapshot_tags=tags)
    how = "SOCI parallel pull" if g.fast_image_pull else "a plain containerd pull (fastImagePull: false)"
    pulumi.log.warn(
        f"gpu-burst:gpu.dataVolumeSnapshotId: auto found no completed snapshot of this account for "
        f"{tags['gpu-burst.io/images']} on Bottlerocket {tags['gpu-burst.io/bottlerocket-version']} "
        f"(aws-k8s-{tags['gpu-burst.io/kubernetes-version']}, {tags['gpu-burst.io/arch']}); GPU nodes pull the "
        f"image with {how}. Build it with `{build_command()}`, then run `pulumi up` again.")
    return DataVolume(snapshot_id=None, fast_image_pull=g.fast_image_pull, snapshot_tags=tags)


def check_restorable(cfg: StackConfig, snapshot_id: str) -> None:
    """The found snapshot can back the GPU nodes' data volume, checked before any resource: EC2 refuses a volume
    smaller than its snapshot (CreateVolume / EbsBlockDevice `VolumeSize`: "must be equal to or larger than the
    snapshot size"), so every GPU launch would fail; an unencrypted snapshot gives unencrypted volumes, because a
    restored volume takes the snapshot's encryption and the node class may not set `encrypted` next to it."""
    snap = aws.ebs.get_snapshot(snapshot_ids=[snapshot_id], owners=["self"])
    size = int(snap.volume_size)
    if size > cfg.gpu.volume_size_gib:
        raise ConfigError([
            f"{NAMESPACE}:gpu.volumeSizeGib: {cfg.gpu.volume_size_gib} GiB is smaller than the pre-loaded snapshot "
            f"{snapshot_id} ({size} GiB) that dataVolumeSnapshotId: auto found, and EC2 refuses a volume smaller "
            f"than its snapshot; allowed: at least {size}, or rebuild the snapshot with `{build_command()} "
            f"--volume-size-gib {cfg.gpu.volume_size_gib}`"])
    if not snap.encrypted:
        pulumi.log.warn(f"{NAMESPACE}:gpu.dataVolumeSnapshotId: the pre-loaded snapshot {snapshot_id} is not "
                        "encrypted, so the GPU nodes' data volumes will not be either; rebuild it with "
                        f"`{build_command()}` (it encrypts the builder's data volume)")
