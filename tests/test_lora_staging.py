"""LoRA adapters through the model store: the staging program refuses what vLLM 0.33 would refuse at startup (checked
against the staged adapter_config.json, on every run), and the pod's copy program (sync_adapters.py) brings each
adapter to local disk within the model pods' read-only grant, against moto S3 and the local Hub of
test_stage_model."""

import fnmatch
import json
import os

import pytest
import test_stage_model as hubtest
from test_stage_model import REPO, REV, FakeHub, s3  # noqa: F401 - s3 is a fixture

from components.model_store import manifest_key, model_prefix, reader_policy
from components.staging import stage_model, sync_adapters

ADAPTER_CONFIG = {"peft_type": "LORA", "r": 16, "lora_alpha": 32, "target_modules": ["q_proj", "v_proj"],
                  "bias": "none", "base_model_name_or_path": "Qwen/Qwen2.5-1.5B-Instruct", "task_type": "CAUSAL_LM"}


def _adapter_files(**config) -> dict[str, bytes]:
    return {"adapter_config.json": json.dumps({**ADAPTER_CONFIG, **config}).encode(),
            "adapter_model.safetensors": os.urandom(200_000), "README.md": b"# sql adapter\n",
            "tokenizer_config.json": b"{}"}


@pytest.fixture
def adapter_hub(request):
    h = FakeHub(_adapter_files(**getattr(request, "param", {})))
    yield h
    h.close()


def _stage(s3, hub, rank):  # noqa: F811
    return stage_model.stage(s3, REPO, REV, hubtest.BUCKET, model_prefix(REPO, REV), manifest_key(REPO, REV),
                             hub=hub.url, log=lambda *_: None, adapter_max_rank=rank)


def _keys(s3) -> set[str]:  # noqa: F811
    return {o["Key"] for o in s3.list_objects_v2(Bucket=hubtest.BUCKET).get("Contents", [])}


# -- staging ------------------------------------------------------------------------------------------------------

def test_an_adapter_is_staged_like_weights_and_checked(s3, adapter_hub):  # noqa: F811
    manifest = _stage(s3, adapter_hub, 16)
    prefix = model_prefix(REPO, REV)
    assert {f["path"] for f in manifest["files"]} == set(_adapter_files())
    assert {f"{prefix}/adapter_config.json", f"{prefix}/adapter_model.safetensors",
            manifest_key(REPO, REV)} <= _keys(s3)


@pytest.mark.parametrize("adapter_hub", [{"r": 64}], indirect=True)
def test_a_rank_above_max_lora_rank_fails_the_job_and_is_checked_again_on_the_next_run(s3, adapter_hub):  # noqa: F811
    with pytest.raises(stage_model.StagingError, match="rank 64 is above maxLoraRank 16; set the model's "
                                                       "maxLoraRank to at least 64"):
        _stage(s3, adapter_hub, 16)
    assert manifest_key(REPO, REV) not in _keys(s3)  # not marked done: the next run checks again
    _stage(s3, adapter_hub, 64)
    assert manifest_key(REPO, REV) in _keys(s3)
    # A later, lower maxLoraRank is refused although the revision is staged already (from the store, no Hub).
    asked = len(adapter_hub.requests)
    with pytest.raises(stage_model.StagingError, match="rank 64 is above maxLoraRank 32"):
        _stage(s3, adapter_hub, 32)
    assert len(adapter_hub.requests) == asked


def test_a_model_repository_is_not_an_adapter(s3):  # noqa: F811
    h = FakeHub(hubtest._files())
    try:
        with pytest.raises(stage_model.StagingError, match="is not a PEFT LoRA adapter vLLM can load: no top-level "
                                                           "adapter_config.json, adapter_model.safetensors"):
            _stage(s3, h, 16)
        assert _keys(s3) == set()
    finally:
        h.close()


@pytest.mark.parametrize("change, expected", [
    ({"peft_type": "IA3"}, "peft_type is 'IA3'; vLLM serves LoRA adapters only ('LORA')"),
    ({"rank_pattern": {"q_proj": 128}},
     "rank 128 is above maxLoraRank 16; set the model's maxLoraRank to at least 128"),
    ({"use_dora": True}, "it is a DoRA adapter (use_dora), which vLLM does not serve"),
    ({"bias": "all"}, "it trains biases (bias/lora_bias), which vLLM does not serve"),
    ({"modules_to_save": ["lm_head"]}, "modules_to_save ['lm_head']: vLLM serves only ['classifier', 'score']"),
    ({"r": None}, "adapter_config.json lacks r"),
])
def test_adapter_configs_vllm_refuses(change, expected):
    """vllm 0.33.0 vllm/lora/peft_helper.py: from_dict (required fields), validate_legal, _validate_features."""
    config = {k: v for k, v in {**ADAPTER_CONFIG, **change}.items() if v is not None}
    assert stage_model.adapter_problems(config, 16) == [expected]
    assert stage_model.adapter_problems(ADAPTER_CONFIG, 16) == []


def test_main_passes_the_rank_and_exits_1_with_the_reason(s3, adapter_hub, capsys):  # noqa: F811
    args = ["--repo", REPO, "--revision", REV, "--bucket", hubtest.BUCKET, "--prefix", model_prefix(REPO, REV),
            "--manifest-key", manifest_key(REPO, REV), "--hub", adapter_hub.url]
    assert stage_model.main([*args, "--adapter-max-rank", "8"]) == 1
    assert "rank 16 is above maxLoraRank 8" in capsys.readouterr().err
    assert stage_model.main([*args, "--adapter-max-rank", "16"]) == 0


# -- the copy in the pod --------------------------------------------------------------------------------------------

class _Granted:
    """The moto client, except that each request the copy makes must be allowed by the model pods' reader policy
    (ListBucket's s3:prefix condition, GetObject on the listed resources), as IAM would judge it."""

    def __init__(self, client, policy: dict):
        self._c, (self._list, self._get) = client, policy["Statement"][:2]
        self.seen = []

    def get_paginator(self, op):
        assert op == "list_objects_v2"
        pager = self._c.get_paginator(op)
        outer = self

        class Checked:
            def paginate(self, Bucket, Prefix, **kw):
                outer.seen.append(("list", Prefix))
                assert any(fnmatch.fnmatchcase(Prefix, p) for p in outer._list["Condition"]["StringLike"]["s3:prefix"])
                return pager.paginate(Bucket=Bucket, Prefix=Prefix, **kw)
        return Checked()

    def download_file(self, bucket, key, path):
        self.seen.append(("get", key))
        resources = self._get["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        assert any(fnmatch.fnmatchcase(f"arn:aws:s3:::{bucket}/{key}", r) for r in resources), key
        return self._c.download_file(bucket, key, path)


def _put(s3, prefix, files):  # noqa: F811
    for rel, data in files.items():
        s3.put_object(Bucket=hubtest.BUCKET, Key=f"{prefix}/{rel}", Body=data)


def test_the_pod_copies_each_adapter_within_its_read_only_grant(s3, tmp_path):  # noqa: F811
    a, b = model_prefix("acme/sql-lora", "1" * 40), model_prefix("acme/chat-lora", "2" * 40)
    weights = model_prefix("acme/base", "3" * 40)
    files = _adapter_files()
    _put(s3, a, files)
    _put(s3, b, {**files, "sub/extra.json": b"{}"})
    client = _Granted(s3, reader_policy("aws", hubtest.BUCKET, weights, None, (a, b)))
    items = [("sql", f"s3://{hubtest.BUCKET}/{a}/"), ("chat", f"s3://{hubtest.BUCKET}/{b}/")]
    assert sync_adapters.sync(client, items, tmp_path) == {"sql": 4, "chat": 5}
    assert (tmp_path / "sql" / "adapter_config.json").read_bytes() == files["adapter_config.json"]
    assert (tmp_path / "chat" / "sub" / "extra.json").read_bytes() == b"{}"
    assert not list(tmp_path.rglob("*.part"))
    # Restarted (the emptyDir survives a container restart): nothing is fetched again.
    assert sync_adapters.sync(client, items, tmp_path) == {"sql": 0, "chat": 0}
    # Another model's adapter is outside the grant.
    with pytest.raises(AssertionError):
        sync_adapters.sync(client, [("x", f"s3://{hubtest.BUCKET}/{model_prefix('acme/other', '4' * 40)}/")],
                           tmp_path)


def test_a_missing_adapter_stops_the_pod_before_vllm(s3, tmp_path, capsys):  # noqa: F811
    rc = sync_adapters.main(["--dest", str(tmp_path), f"sql=s3://{hubtest.BUCKET}/acme/sql-lora/{'1' * 40}/"])
    assert rc == 1
    assert f"sql: s3://{hubtest.BUCKET}/acme/sql-lora/{'1' * 40}/ has no adapter_config.json" in capsys.readouterr().err


def test_a_key_outside_the_adapters_directory_is_refused(s3, tmp_path):  # noqa: F811
    prefix = model_prefix("acme/sql-lora", "1" * 40)
    _put(s3, prefix, {**_adapter_files(), "../../../escape.sh": b"#!/bin/sh\n"})
    with pytest.raises(sync_adapters.SyncError, match="would land outside"):
        sync_adapters.sync(s3, [("sql", f"s3://{hubtest.BUCKET}/{prefix}/")], tmp_path / "adapters")
    assert not (tmp_path / "escape.sh").exists()


@pytest.mark.parametrize("item", ["sql", "=s3://b/p/", "../x=s3://b/p/", "sql=http://b/p/"])
def test_malformed_items_are_refused(item, tmp_path, capsys):
    assert sync_adapters.main(["--dest", str(tmp_path), item]) == 1
    assert "error:" in capsys.readouterr().err
