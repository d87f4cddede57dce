"""Copy one Hugging Face model revision into the model store (S3), streaming: no local copy of the weights.

Run inside the staging Job (``python stage_model.py --repo ORG/NAME --revision SHA --bucket B --prefix P
--manifest-key K``) with the HF token, when the repository is gated, in ``HF_TOKEN``. Only the Python standard
library and boto3 are needed. The same module is imported by the tests, which run it against moto S3 and a local
HTTP server that speaks the two Hub endpoints used here.

- Idempotent: a manifest object written *after* every file is verified means "done"; a second run reads it and
  exits 0 without touching the Hub. Files already uploaded with a matching size and digest are skipped, so a run
  that failed half-way resumes instead of starting over.
- Verified: every byte is hashed on the way through and compared with the Hub's own digest (sha256 of LFS files,
  the git blob id of small files); a mismatch deletes the object and fails the run.
- Bounded memory: each file is a multipart upload of CHUNK-sized parts, at most CONCURRENCY in flight.
"""

import argparse
import fnmatch
import hashlib
import json
import os
import sys
import time
import urllib.parse
import urllib.request
from typing import Any, Iterable, Optional

HUB = "https://huggingface.co"
CHUNK = 32 * 1024 * 1024
CONCURRENCY = 8
MANIFEST_FORMAT = 1
EXCLUDE = ("original/*", "*.pth", "*.pt", "*.bin", "*.gguf", "*.onnx", "*.msgpack", "*.h5", "*.ot", ".gitattributes")
"""Not needed to serve with the Run:ai streamer, which reads only `*.safetensors` weights (vLLM
runai_streamer_loader) plus config/tokenizer files; Llama repositories also ship a second, 16 GB copy of the
weights under original/ that would double the copy for nothing."""


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
"""What vLLM loads of a LoRA adapter from a directory (vllm 0.33.0 vllm/lora/lora_model.py from_local_checkpoint, which
also reads adapter_model.bin/.pt; those are never staged, see EXCLUDE)."""
LORA_MODULES_TO_SAVE = ("classifier", "score")


class StagingError(RuntimeError):
    """A staging run that must fail the Job (and with it `pulumi up`), with a message that says why."""


# -- the Hub -----------------------------------------------------------------------------------------------------
class _SameHostAuth(urllib.request.HTTPRedirectHandler):
    """Follow the Hub's redirects to its CDN, but never send the token to another host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_SameHostAuth())


def _request(url: str, token: Optional[str]) -> urllib.request.Request:
    headers = {"User-Agent": "gpu-burst-stage-model/1"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return urllib.request.Request(url, headers=headers)


def list_files(repo: str, revision: str, token: Optional[str], hub: str = HUB) -> list[dict]:
    """Every file of the repository at `revision`: path, size and the Hub's digest (Hub API
    `GET /api/models/{repo}/tree/{revision}?recursive=true`, paginated with a `Link: <...>; rel="next"` header)."""
    url: Optional[str] = f"{hub}/api/models/{repo}/tree/{revision}?recursive=true"
    out: list[dict] = []
    opener = _opener()
    while url:
        try:
            with opener.open(_request(url, token), timeout=60) as resp:
                page = json.load(resp)
                link = resp.headers.get("Link", "")
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                raise StagingError(f"{repo}@{revision}: the Hub refused access ({e.code}); the repository is gated: "
                                   "accept its licence and set gpu-burst:hfToken") from None
            if e.code == 404:
                raise StagingError(f"{repo}@{revision}: no such repository or revision on the Hub") from None
            raise
        out += [f for f in page if f.get("type") == "file"]
        url = None
        for part in link.split(","):
            if 'rel="next"' in part:
                url = part[part.index("<") + 1:part.index(">")]
    return out


def select(files: list[dict], exclude: Iterable[str] = EXCLUDE) -> list[dict]:
    """The files vLLM needs from the store; fails when there are no top-level safetensors to stream."""
    keep = [f for f in files if not any(fnmatch.fnmatch(f["path"], p) for p in exclude)]
    if not any(f["path"].endswith(".safetensors") and "/" not in f["path"] for f in keep):
        raise StagingError("no top-level *.safetensors in the repository: the Run:ai streamer loads only "
                           "safetensors weights")
    return keep


def adapter_problems(config: dict, max_rank: int) -> list[str]:
    """Why vLLM would refuse this adapter_config.json at startup when serving with `--max-lora-rank max_rank` (vllm
    0.33.0 vllm/lora/peft_helper.py: from_dict, validate_legal, _validate_features); [] when it would load it."""
    out = []
    if config.get("peft_type") != "LORA":
        out.append(f"peft_type is {config.get('peft_type')!r}; vLLM serves LoRA adapters only ('LORA')")
    missing = [k for k in ("r", "lora_alpha", "target_modules") if k not in config]
    if missing:
        out.append(f"adapter_config.json lacks {', '.join(missing)}")
    ranks = [config.get("r", 0), *(config.get("rank_pattern") or {}).values()]
    if all(isinstance(r, int) for r in ranks) and max(ranks) > max_rank:
        out.append(f"rank {max(ranks)} is above maxLoraRank {max_rank}; set the model's maxLoraRank to at least "
                   f"{max(ranks)}")
    if config.get("use_dora"):
        out.append("it is a DoRA adapter (use_dora), which vLLM does not serve")
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        out.append("it trains biases (bias/lora_bias), which vLLM does not serve")
    extra = [m for m in config.get("modules_to_save") or [] if m not in LORA_MODULES_TO_SAVE]
    if extra:
        out.append(f"modules_to_save {extra}: vLLM serves only {list(LORA_MODULES_TO_SAVE)}")
    return out


def check_adapter(s3: Any, bucket: str, prefix: str, max_rank: int) -> dict:
    """The staged adapter's config, or StagingError when vLLM would refuse it (read back from the store, so a
    revision staged earlier is checked against today's maxLoraRank too)."""
    config = read_manifest(s3, bucket, f"{prefix}/{ADAPTER_FILES[0]}")
    if config is None:
        raise StagingError(f"s3://{bucket}/{prefix}/ has no {ADAPTER_FILES[0]}: not a PEFT LoRA adapter")
    problems = adapter_problems(config, max_rank)
    if problems:
        raise StagingError(f"s3://{bucket}/{prefix}/ cannot be served as a LoRA adapter: " + "; ".join(problems))
    return config


def expected_digest(f: dict) -> tuple[str, str]:
    """(algorithm, hex digest) the Hub publishes for a file: sha256 for LFS files, the git blob sha1 otherwise."""
    lfs = f.get("lfs")
    if lfs and lfs.get("oid"):
        return "sha256", lfs["oid"]
    return "git-sha1", f["oid"]


class _HashingReader:
    """File-like wrapper that hashes and counts what boto3 reads from the HTTP response."""

    def __init__(self, raw: Any, size: int, algorithm: str):
        self.raw = raw
        self.read_bytes = 0
        if algorithm == "sha256":
            self.hash = hashlib.sha256()
        else:
            self.hash = hashlib.sha1()
            self.hash.update(f"blob {size}\0".encode())

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        self.read_bytes += len(data)
        return data


# -- the store ---------------------------------------------------------------------------------------------------
ABSENT_CODES = ("404", "NoSuchKey", "NotFound", "403", "AccessDenied", "Forbidden")
"""Error codes of a Get/HeadObject that mean "not staged (yet)". S3 answers a missing key with 403, not 404, unless
the caller's s3:ListBucket covers it (docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html, "Permissions"),
and the Job's ListBucket is limited by an s3:prefix condition that a Get/Head request does not carry. Misreading a
real lack of read access costs a second copy at worst; a lack of write access still fails the run on PutObject."""


def _absent(e: Exception) -> bool:
    return getattr(e, "response", {}).get("Error", {}).get("Code") in ABSENT_CODES


def read_manifest(s3: Any, bucket: str, key: str) -> Optional[dict]:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.ClientError as e:
        if _absent(e):
            return None
        raise
    return json.loads(body)


def _already_there(s3: Any, bucket: str, key: str, size: int, digest: str) -> bool:
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as e:
        if _absent(e):
            return False
        raise
    return head["ContentLength"] == size and head.get("Metadata", {}).get("digest") == digest


def copy_file(s3: Any, bucket: str, key: str, url: str, f: dict, token: Optional[str]) -> None:
    """Stream one file from the Hub into S3 and verify it on the way."""
    from boto3.s3.transfer import TransferConfig

    algorithm, digest = expected_digest(f)
    with _opener().open(_request(url, token), timeout=120) as resp:
        reader = _HashingReader(resp, f["size"], algorithm)
        s3.upload_fileobj(reader, bucket, key, ExtraArgs={"Metadata": {"digest": digest, "algorithm": algorithm}},
                          Config=TransferConfig(multipart_chunksize=CHUNK, multipart_threshold=CHUNK,
                                                max_concurrency=CONCURRENCY))
    if reader.read_bytes != f["size"] or reader.hash.hexdigest() != digest:
        s3.delete_object(Bucket=bucket, Key=key)
        raise StagingError(f"{f['path']}: got {reader.read_bytes} bytes with {algorithm} {reader.hash.hexdigest()}, "
                           f"the Hub lists {f['size']} bytes with {digest}; the object was removed")


def stage(s3: Any, repo: str, revision: str, bucket: str, prefix: str, manifest_key: str,
          token: Optional[str] = None, hub: str = HUB, log=print, adapter_max_rank: Optional[int] = None) -> dict:
    """Copy `repo@revision` to `s3://bucket/prefix/` unless its manifest says it is there; return the manifest. With
    `adapter_max_rank`, the repository is a LoRA adapter that vLLM must be able to serve at that rank."""
    prefix = prefix.strip("/")
    done = read_manifest(s3, bucket, manifest_key)
    if done and done.get("repo") == repo and done.get("revision") == revision and done.get("prefix") == prefix:
        log(f"already staged: {repo}@{revision} -> s3://{bucket}/{prefix}/ ({len(done['files'])} files); nothing to do")
        if adapter_max_rank is not None:
            check_adapter(s3, bucket, prefix, adapter_max_rank)
        return done
    listed = list_files(repo, revision, token, hub)
    if adapter_max_rank is not None:
        missing = [n for n in ADAPTER_FILES if n not in {f["path"] for f in listed}]
        if missing:
            raise StagingError(f"{repo}@{revision} is not a PEFT LoRA adapter vLLM can load: no top-level "
                               f"{', '.join(missing)}")
    files = select(listed)
    total = sum(f["size"] for f in files)
    log(f"staging {repo}@{revision}: {len(files)} files, {total / 1e9:.2f} GB -> s3://{bucket}/{prefix}/")
    started = time.monotonic()
    entries = []
    for i, f in enumerate(files, 1):
        key = f"{prefix}/{f['path']}"
        algorithm, digest = expected_digest(f)
        if _already_there(s3, bucket, key, f["size"], digest):
            log(f"[{i}/{len(files)}] {f['path']}: present, verified earlier")
        else:
            t0 = time.monotonic()
            url = f"{hub}/{repo}/resolve/{revision}/{urllib.parse.quote(f['path'])}"
            copy_file(s3, bucket, key, url, f, token)
            took = max(time.monotonic() - t0, 1e-6)
            log(f"[{i}/{len(files)}] {f['path']}: {f['size'] / 1e6:.1f} MB in {took:.1f} s "
                f"({f['size'] / 1e6 / took:.0f} MB/s)")
        entries.append({"path": f["path"], "size": f["size"], "algorithm": algorithm, "digest": digest})
    manifest = {"format": MANIFEST_FORMAT, "repo": repo, "revision": revision, "bucket": bucket, "prefix": prefix,
                "files": entries, "bytes": total, "seconds": round(time.monotonic() - started, 1)}
    if adapter_max_rank is not None:
        # Before the manifest: a refused adapter is checked again (against the then maxLoraRank) by the next run.
        check_adapter(s3, bucket, prefix, adapter_max_rank)
    # Written last: its presence is the "complete" marker the next run (and an operator) can trust.
    s3.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(manifest, indent=1).encode(),
                  ContentType="application/json")
    log(f"staged {repo}@{revision}: {total / 1e9:.2f} GB in {manifest['seconds']} s; manifest s3://{bucket}/{manifest_key}")
    return manifest


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", required=True)
    p.add_argument("--revision", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--manifest-key", required=True)
    p.add_argument("--hub", default=os.environ.get("HF_ENDPOINT", HUB))
    p.add_argument("--adapter-max-rank", type=int, default=None,
                   help="the repository is a LoRA adapter served with this --max-lora-rank")
    a = p.parse_args(argv)
    import boto3

    try:
        stage(boto3.client("s3"), a.repo, a.revision, a.bucket, a.prefix, a.manifest_key,
              token=os.environ.get("HF_TOKEN") or None, hub=a.hub.rstrip("/"), adapter_max_rank=a.adapter_max_rank)
    except StagingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
