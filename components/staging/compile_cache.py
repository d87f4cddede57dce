"""Carry vLLM's torch.compile cache and its startup plan from one cold start to the next through the model store.

Runs inside the vLLM container (its image has Python and boto3, which the Run:ai S3 streamer needs anyway):

- ``restore`` before ``vllm serve``: copy ``$COMPILE_CACHE_URI/<gpu>/`` into ``$VLLM_CACHE_ROOT``;
- ``save`` in the background: once ``/health`` answers (compilation and memory profiling are over by then), upload
  the files of ``$VLLM_CACHE_ROOT/torch_compile_cache`` and ``$VLLM_CACHE_ROOT/startup_plan`` the store does not have
  yet, then exit.

Safe to share: ``COMPILE_CACHE_URI`` is keyed by model, revision and image (vLLM version), this program adds the GPU
model (``nvidia-smi``), and vLLM itself names the cache directory after a hash of its env, config, traced code and
compiler/GPU factors (vllm 0.33.0 compilation/backends.py, compiler_interface.py get_inductor_factors), so an
artifact is only ever loaded by the engine configuration that wrote it; a stale or unreadable one makes vLLM compile
again. The startup plan (``VLLM_ENABLE_STARTUP_PLAN=1``) is a JSON file per fingerprint of vLLM version, config
hash, device name/total memory/capability, torch/CUDA build and rank, applied only when the fingerprint matches and
the GPU has at least the recorded free memory (vllm 0.33.0 v1/worker/startup_plan.py); any mismatch means full
profiling. The cache is an optimisation: every failure here is logged and ignored, serving never waits on it.
"""

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

SUBDIRS = ("torch_compile_cache", "startup_plan")
"""The only trees under $VLLM_CACHE_ROOT that are restored or saved (vLLM's compile cache and its startup plans)."""
PARTIAL_MARKERS = (".part", ".tmp.")
"""Names of files still being written: ours (`.part`) and vLLM's startup plan (`<plan>.tmp.<pid>`, then renamed)."""


def log(msg: str) -> None:
    print(f"[compile-cache] {msg}", file=sys.stderr, flush=True)


def gpu_model() -> Optional[str]:
    """The GPU's model name as a key segment (`NVIDIA A10G` -> `nvidia-a10g`), or None without a GPU."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    name = out.strip().splitlines()[0].strip() if out.strip() else ""
    return "-".join(name.lower().split()) or None


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"COMPILE_CACHE_URI '{uri}' is not an s3:// URI")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def _keys(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for o in page.get("Contents", []):
            out[o["Key"]] = o["Size"]
    return out


def _partial(path: Path) -> bool:
    return any(m in path.name for m in PARTIAL_MARKERS)


def restore(s3: Any, uri: str, root: Path, gpu: Optional[str]) -> int:
    """Download the cache of this GPU model into `root`; return the number of files written."""
    if gpu is None:
        log("no GPU model found (nvidia-smi); not restoring")
        return 0
    bucket, prefix = split_uri(uri)
    prefix = f"{prefix}/{gpu}"
    n = 0
    # Resolved, so a key like `torch_compile_cache/../x.sh` cannot land beside the trees vLLM reads.
    allowed = [(root / d).resolve() for d in SUBDIRS]
    for key in sorted(_keys(s3, bucket, prefix)):
        rel = key[len(prefix) + 1:]
        dest = (root / rel).resolve()
        if not any(a in dest.parents for a in allowed) or _partial(dest):
            log(f"skipping unexpected key {key}")
            continue
        if dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        s3.download_file(bucket, key, str(tmp))
        tmp.replace(dest)  # never leave a half-written artifact where vLLM would read it
        n += 1
    log(f"restored {n} files from s3://{bucket}/{prefix}/")
    return n


def save(s3: Any, uri: str, root: Path, gpu: Optional[str]) -> int:
    """Upload the files of `root/<SUBDIRS>` the store lacks; return how many were uploaded."""
    if gpu is None:
        log("no GPU model found (nvidia-smi); not saving")
        return 0
    bucket, prefix = split_uri(uri)
    prefix = f"{prefix}/{gpu}"
    have = _keys(s3, bucket, prefix)
    n = 0
    files = sorted(p for d in SUBDIRS for p in (root / d).rglob("*") if p.is_file() and not _partial(p))
    for path in files:
        key = f"{prefix}/{path.relative_to(root).as_posix()}"
        if have.get(key) == path.stat().st_size:
            continue
        s3.upload_file(str(path), bucket, key)
        n += 1
    log(f"saved {n} new files to s3://{bucket}/{prefix}/")
    return n


def wait_healthy(url: str, timeout_s: float, poll_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(poll_s)
    return False


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["restore", "save"])
    p.add_argument("--uri", default=os.environ.get("COMPILE_CACHE_URI", ""))
    p.add_argument("--root", default=os.environ.get("VLLM_CACHE_ROOT", ""))
    p.add_argument("--health", default="http://127.0.0.1:8000/health")
    p.add_argument("--wait", type=float, default=3600.0, help="save: seconds to wait for /health")
    a = p.parse_args(argv)
    if not a.uri or not a.root:
        log("COMPILE_CACHE_URI or VLLM_CACHE_ROOT unset; nothing to do")
        return 0
    try:
        import boto3

        s3 = boto3.client("s3")
        root = Path(a.root)
        if a.action == "restore":
            restore(s3, a.uri, root, gpu_model())
        elif wait_healthy(a.health, a.wait):
            save(s3, a.uri, root, gpu_model())
        else:
            log(f"{a.health} did not answer within {a.wait:.0f} s; not saving")
    except Exception as e:  # noqa: BLE001 - an optimisation must never stop the server
        log(f"{a.action} failed, continuing without: {type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
