"""Copy a model's LoRA adapters from the model store to local disk, before vLLM starts (the pod's `adapters` init
container, with the model's read-only grant).

``python3 sync_adapters.py --dest /models/adapters NAME=s3://bucket/<hfModelId>/<revision>/ ...`` writes each adapter
to ``<dest>/<NAME>/``, where vLLM's ``--lora-modules NAME=<dest>/<NAME>`` reads it. Only the standard library and boto3
(which the vLLM image ships for the Run:ai streamer) are needed; the tests run it against moto S3.

- Complete or failed: a file is written under a temporary name and renamed, and the run fails (exit 1, the pod does
  not start vLLM) when an adapter is missing from the store or lacks adapter_config.json.
- Restartable: a file already present with the store's size is not downloaded again.
- Contained: a key that would land outside its adapter's directory is refused.
"""

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

REQUIRED = "adapter_config.json"
PARALLEL = 4
"""Adapters fetched at once (each file is itself a multipart download)."""


class SyncError(RuntimeError):
    """An adapter that cannot be served; the message says which and why."""


def log(msg: str) -> None:
    print(f"sync_adapters: {msg}", file=sys.stderr, flush=True)


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise SyncError(f"'{uri}' is not an s3:// URI")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return bucket, prefix.strip("/")


def parse_item(item: str) -> tuple[str, str]:
    name, sep, uri = item.partition("=")
    if not sep or not name or "/" in name or name in (".", ".."):
        raise SyncError(f"'{item}' is not NAME=s3://bucket/prefix/")
    return name, uri


def sync_one(s3: Any, name: str, uri: str, dest: Path) -> int:
    """Download `uri` into `dest/name`; return the number of files written."""
    bucket, prefix = split_uri(uri)
    root = (dest / name).resolve()
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for o in page.get("Contents", []):
            objects[o["Key"][len(prefix) + 1:]] = o["Size"]
    if REQUIRED not in objects:
        raise SyncError(f"{name}: s3://{bucket}/{prefix}/ has no {REQUIRED} (not staged, or not a LoRA adapter)")
    written = 0
    for rel, size in sorted(objects.items()):
        target = (root / rel).resolve()
        if root not in target.parents:
            raise SyncError(f"{name}: key {prefix}/{rel} would land outside {root}")
        if target.is_file() and target.stat().st_size == size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        s3.download_file(bucket, f"{prefix}/{rel}", str(tmp))
        tmp.replace(target)
        written += 1
    return written


def sync(s3: Any, items: list[tuple[str, str]], dest: Path) -> dict[str, int]:
    """Every adapter of `items`, `PARALLEL` at once; raises the first failure after all have run."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = {name: pool.submit(sync_one, s3, name, uri, dest) for name, uri in items}
    errors = [f.exception() for f in futures.values() if f.exception() is not None]
    if errors:
        raise errors[0]
    done = {name: f.result() for name, f in futures.items()}
    log(f"{len(done)} adapters in {dest} ({sum(done.values())} files fetched) in {time.monotonic() - started:.1f} s")
    return done


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dest", required=True, help="directory of the adapters (one subdirectory per name)")
    p.add_argument("adapters", nargs="+", metavar="NAME=s3://bucket/prefix/")
    a = p.parse_args(argv)
    try:
        items = [parse_item(i) for i in a.adapters]
        import boto3

        sync(boto3.client("s3"), items, Path(a.dest))
    except SyncError as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
