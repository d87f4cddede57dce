"""The staging program (components/staging/stage_model.py) against moto S3 and a local server that speaks the two
Hub endpoints it uses, with a small model-shaped repository made here; plus the object layout the Run:ai streamer
reads back through the model pods' read-only grant."""

import fnmatch
import hashlib
import http.server
import json
import os
import sys
import threading
import urllib.parse
import uuid

import boto3
import pytest
from moto import mock_aws

from components.model_store import manifest_key, model_prefix, reader_policy
from components.staging import stage_model

REPO = "acme/tiny-llm"
REV = "0123456789abcdef0123456789abcdef01234567"
BUCKET = "gpu-burst-models-test"
TOKEN = "hf_test_token"


def _files(big: bool = False) -> dict[str, bytes]:
    # > 2 parts of the 5 MiB chunk the tests use: a real multipart upload (only where a test looks at it).
    shard = os.urandom(11 * 1024 * 1024 if big else 700_000)
    return {
        "config.json": json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 64}).encode(),
        "generation_config.json": b'{"do_sample": true}',
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "BPE"}}).encode(),
        "tokenizer_config.json": b'{"chat_template": "{{ messages }}"}',
        "model-00001-of-00002.safetensors": shard,
        "model-00002-of-00002.safetensors": os.urandom(300_000),
        "model.safetensors.index.json": b'{"weight_map": {}}',
        "original/consolidated.00.pth": os.urandom(1000),
        ".gitattributes": b"*.safetensors filter=lfs\n",
    }


def _tree(files: dict[str, bytes]) -> list[dict]:
    out = []
    for path, data in files.items():
        blob = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
        entry = {"type": "file", "path": path, "size": len(data), "oid": blob}
        if path.endswith((".safetensors", ".pth")):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 130}
        out.append(entry)
    out.insert(0, {"type": "directory", "path": "original", "size": 0, "oid": "d" * 40})
    return out


class FakeHub:
    """Hub API tree listing (2 entries per page, `Link: rel="next"`) and `resolve` redirects to a second host (the
    CDN), like huggingface.co. Records every request and the Authorization header each host saw."""

    def __init__(self, files: dict[str, bytes], gated: bool = False):
        self.files, self.gated, self.requests, self.cdn_auth = files, gated, [], []
        self.serve = dict(files)  # what the CDN sends (tests corrupt it)
        hub = self

        class Cdn(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                hub.cdn_auth.append(self.headers.get("Authorization"))
                data = hub.serve[urllib.parse.unquote(self.path.lstrip("/"))]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Api(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                hub.requests.append((self.path, self.headers.get("Authorization")))
                if hub.gated and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.send_response(401)
                    self.end_headers()
                    return
                url = urllib.parse.urlsplit(self.path)
                tree = f"/api/models/{REPO}/tree/{REV}"
                if url.path == tree:
                    page = int(urllib.parse.parse_qs(url.query).get("cursor", ["0"])[0])
                    entries = _tree(hub.files)
                    body = json.dumps(entries[page:page + 2]).encode()
                    self.send_response(200)
                    if page + 2 < len(entries):
                        self.send_header("Link", f'<{hub.url}{tree}?recursive=true&cursor={page + 2}>; rel="next"')
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif url.path.startswith(f"/{REPO}/resolve/{REV}/"):
                    self.send_response(302)
                    self.send_header("Location", f"{hub.cdn_url}/{url.path.split(f'/{REV}/', 1)[1]}")
                    self.end_headers()
                else:
                    self.send_response(404)
                    self.end_headers()

        self.api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
        self.cdn = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Cdn)
        self.url = f"http://127.0.0.1:{self.api.server_port}"
        self.cdn_url = f"http://localhost:{self.cdn.server_port}"  # another host name: the token must not follow
        for srv in (self.api, self.cdn):
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        for srv in (self.api, self.cdn):
            srv.shutdown()
            srv.server_close()


@pytest.fixture
def s3(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-west-2"
                 }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(stage_model, "CHUNK", 5 * 1024 * 1024)  # S3's smallest multipart part
    # A bucket of its own: other test modules may keep one moto account alive for the whole session.
    monkeypatch.setattr(sys.modules[__name__], "BUCKET", f"gpu-burst-models-{uuid.uuid4().hex[:12]}")
    with mock_aws():
        client = boto3.client("s3", region_name="us-west-2")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        yield client


@pytest.fixture
def hub(request):
    h = FakeHub(_files(big=getattr(request, "param", False)), gated=True)
    yield h
    h.close()


def _stage(s3, hub, token=TOKEN, log=lambda *_: None):
    return stage_model.stage(s3, REPO, REV, BUCKET, model_prefix(REPO, REV), manifest_key(REPO, REV),
                             token=token, hub=hub.url, log=log)


def _keys(s3) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


@pytest.mark.parametrize("hub", [True], indirect=True)
def test_stage_copies_verified_files_and_writes_the_manifest(s3, hub):
    manifest = _stage(s3, hub)
    prefix = model_prefix(REPO, REV)
    wanted = {p for p in hub.files if not p.startswith("original/") and p != ".gitattributes"}
    assert _keys(s3) == {f"{prefix}/{p}" for p in wanted} | {manifest_key(REPO, REV)}
    for p in wanted:
        assert s3.get_object(Bucket=BUCKET, Key=f"{prefix}/{p}")["Body"].read() == hub.files[p]
    big = s3.head_object(Bucket=BUCKET, Key=f"{prefix}/model-00001-of-00002.safetensors")
    assert big["ETag"].strip('"').endswith("-3")  # 11 MiB in 5 MiB parts: streamed as a multipart upload
    assert big["Metadata"]["digest"] == hashlib.sha256(hub.files["model-00001-of-00002.safetensors"]).hexdigest()
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key=manifest_key(REPO, REV))["Body"].read())
    assert stored == manifest and stored["revision"] == REV and stored["prefix"] == prefix
    assert sorted(f["path"] for f in stored["files"]) == sorted(wanted)
    assert stored["bytes"] == sum(len(hub.files[p]) for p in wanted)
    # The Hub got the token; the CDN host it redirects to never did.
    assert {auth for _, auth in hub.requests} == {f"Bearer {TOKEN}"}
    assert hub.cdn_auth and set(hub.cdn_auth) == {None}


def test_a_second_run_finds_the_manifest_and_does_nothing(s3, hub):
    _stage(s3, hub)
    before = len(hub.requests)
    lines = []
    _stage(s3, hub, log=lines.append)
    assert len(hub.requests) == before
    assert lines and lines[0].startswith("already staged")


def test_an_interrupted_run_resumes_without_copying_verified_files_again(s3, hub):
    _stage(s3, hub)
    prefix = model_prefix(REPO, REV)
    s3.delete_object(Bucket=BUCKET, Key=manifest_key(REPO, REV))
    s3.delete_object(Bucket=BUCKET, Key=f"{prefix}/tokenizer.json")
    hub.cdn_auth.clear()
    fetched = []
    hub.serve = {k: v for k, v in hub.files.items()}
    orig = stage_model.copy_file
    stage_model.copy_file = lambda s3_, b, k, url, f, t: (fetched.append(f["path"]), orig(s3_, b, k, url, f, t))
    try:
        _stage(s3, hub)
    finally:
        stage_model.copy_file = orig
    assert fetched == ["tokenizer.json"]
    assert manifest_key(REPO, REV) in _keys(s3)


def test_a_corrupt_download_fails_and_leaves_no_object_and_no_manifest(s3, hub):
    hub.serve["model-00002-of-00002.safetensors"] = os.urandom(300_000)
    with pytest.raises(stage_model.StagingError, match="model-00002-of-00002.safetensors: got 300000 bytes"):
        _stage(s3, hub)
    keys = _keys(s3)
    assert f"{model_prefix(REPO, REV)}/model-00002-of-00002.safetensors" not in keys
    assert manifest_key(REPO, REV) not in keys


def test_a_gated_repository_without_token_is_a_clear_error(s3, hub):
    with pytest.raises(stage_model.StagingError, match="gated.*gpu-burst:hfToken"):
        _stage(s3, hub, token=None)
    assert _keys(s3) == set()


def test_a_repository_without_safetensors_is_refused(s3):
    h = FakeHub({"config.json": b"{}", "pytorch_model.bin": b"x" * 10})
    try:
        with pytest.raises(stage_model.StagingError, match="safetensors"):
            _stage(s3, h)
    finally:
        h.close()


def test_main_exits_1_with_the_reason(s3, hub, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    rc = stage_model.main(["--repo", REPO, "--revision", REV, "--bucket", BUCKET, "--prefix", model_prefix(REPO, REV),
                           "--manifest-key", manifest_key(REPO, REV), "--hub", hub.url])
    assert rc == 1 and "gpu-burst:hfToken" in capsys.readouterr().err


def test_the_streamer_reads_back_what_was_staged_within_the_read_only_grant(s3, hub):
    """What vLLM's runai_streamer path does with `s3://bucket/<prefix>/` (runai-model-streamer-s3 0.17.1
    files.py): list `<prefix>/` with Delimiter '/' for the safetensors, list it recursively for config and tokenizer
    files; every request must be allowed by the reader policy (ListBucket's s3:prefix condition, GetObject on
    `<prefix>/*`), and nothing outside it is needed."""
    _stage(s3, hub)
    prefix = model_prefix(REPO, REV)
    uri_prefix = f"{prefix}/"  # the streamer always lists with the trailing slash
    policy = reader_policy("aws", BUCKET, prefix)
    list_stmt, get_stmt = policy["Statement"]
    assert any(fnmatch.fnmatchcase(uri_prefix, pat) for pat in list_stmt["Condition"]["StringLike"]["s3:prefix"])
    top = s3.list_objects_v2(Bucket=BUCKET, Prefix=uri_prefix, Delimiter="/")
    weights = sorted(o["Key"] for o in top["Contents"] if fnmatch.fnmatch(o["Key"], "*.safetensors"))
    assert weights == [f"{prefix}/model-00001-of-00002.safetensors", f"{prefix}/model-00002-of-00002.safetensors"]
    rest = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=uri_prefix)["Contents"]
            if not fnmatch.fnmatch(o["Key"], "*.safetensors")]
    assert {k.rsplit("/", 1)[1] for k in rest} >= {"config.json", "tokenizer.json", "tokenizer_config.json"}
    resource = get_stmt["Resource"].split(":::", 1)[1]
    for key in weights + rest:
        assert fnmatch.fnmatchcase(f"{BUCKET}/{key}", resource)
        s3.get_object(Bucket=BUCKET, Key=key)
    # The manifest is outside the grant: a model pod can neither read nor fake the completion marker.
    assert not fnmatch.fnmatchcase(f"{BUCKET}/{manifest_key(REPO, REV)}", resource)


class _NoListS3:
    """The moto client, except that a Get/HeadObject of a missing key is refused with 403 the way S3 answers a caller
    whose s3:ListBucket does not cover the key (API_HeadObject.html, "Permissions")."""

    def __init__(self, client):
        self._c = client

    def __getattr__(self, name):
        attr = getattr(self._c, name)
        if name not in ("get_object", "head_object"):
            return attr

        def call(**kw):
            try:
                return attr(**kw)
            except self._c.exceptions.ClientError as e:
                if e.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                    from botocore.exceptions import ClientError
                    raise ClientError({"Error": {"Code": "403" if name == "head_object" else "AccessDenied",
                                                 "Message": "Forbidden"}}, name) from None
                raise
        return call


def test_a_first_run_stages_when_s3_answers_missing_keys_with_403(s3, hub):
    manifest = _stage(_NoListS3(s3), hub)
    assert manifest_key(REPO, REV) in _keys(s3) and manifest["files"]
