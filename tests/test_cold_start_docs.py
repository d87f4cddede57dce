"""The GuideLLM scenario files reproduce `burstctl burst --from-zero` against the shipped stacks (served name, tokenizer, a timeout that covers a cold start), in the v0.7 scenario shape GuideLLM loads."""

from pathlib import Path

import pytest
import yaml

from burstctl import estimate as est

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_guidellm_scenario_matches_the_stack(stack):
    doc = yaml.safe_load((ROOT / "benchmarks" / "scenarios" / f"guidellm-burst-from-zero-{stack}.yaml").read_text())
    assert set(doc) == {"metadata", "spec"}  # BenchmarkScenario fields (guidellm v0.7.3 schemas/entrypoints.py)
    spec = doc["spec"]
    cfg = est.load_stack(ROOT / f"Pulumi.{stack}.yaml")
    model = cfg.models[0]
    backend = spec["backend"]
    assert backend["kind"] == "openai_http" and backend["stream"] is True and backend["validate_backend"] is False
    assert backend["model"] == model.served_name
    assert "extras" not in backend  # the edge routes on the body's `model`: no routing header to send
    assert "api_key" not in backend and "target" not in backend  # given on the command line, never in the file
    # The read timeout must outlast the slowest cold start the estimate gives for this stack.
    slowest = max(p.total_s for p in est.estimate(cfg, model).paths)
    assert backend["timeout"] > slowest
    assert spec["tokenizer"] == {"kind": "huggingface_auto", "model": model.hf_model_id}
    assert spec["profile"] == {"kind": "concurrent", "streams": 40}
    assert spec["constraints"] == [{"kind": "max_requests", "count": 40}]
    assert spec["data"][0]["kind"] == "synthetic_text" and spec["data"][0]["output_tokens"] == 64


def test_the_docs_name_what_the_code_does():
    text = (ROOT / "docs" / "cold-start.md").read_text()
    for needle in ("--load-format=runai_streamer", "pulumi.com/replaceUnready", "_manifests/", "HF_HUB_OFFLINE",
                   "guidellm-burst-from-zero-prod.yaml", "dataVolumeSnapshotId", "burstctl estimate"):
        assert needle in text, needle
    # The compile-cache key the docs spell out is the one the code builds.
    from components.model_store import compile_cache_prefix

    image_segment = compile_cache_prefix("o/m", "r", "vllm/vllm-openai:v0.33.0").rsplit("/", 1)[1]
    digest_segment = compile_cache_prefix("o/m", "r", "vllm/vllm-openai@sha256:ab").rsplit("/", 1)[1]
    assert f"`{image_segment}`" in text and digest_segment.replace("ab", "<hex>") in text
    assert "cold-start.md" in (ROOT / "docs" / "cli.md").read_text()
