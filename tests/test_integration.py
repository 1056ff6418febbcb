"""The packaged default model (SmolLM2-135M, de-quantized from GGUF) for real."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from eigenshift import SamplingConfig, generate, load_model, load_prompts
from eigenshift.capture.activations import collect_activations
from eigenshift.cli import cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def default_lm():
    return load_model("default")


def test_default_model_sites(default_lm):
    arch = default_lm.arch
    assert (arch.family, arch.hidden_size, arch.vocab_size, arch.num_layers) == (
        "llama",
        576,
        49152,
        30,
    )
    assert arch.tied and arch.mlp_width == 1536


def test_gguf_is_converted_once_and_cached(default_lm, caplog):
    caplog.set_level(logging.INFO, logger="eigenshift")
    again = load_model("default")
    assert not any("converting" in r.message for r in caplog.records)  # came from the cache
    assert torch.equal(again.unembedding.weight, default_lm.unembedding.weight)
    folders = list((Path(os.environ["EIGENSHIFT_CACHE"]) / "gguf").iterdir())
    assert len([f for f in folders if f.name.startswith("SmolLM2")]) == 1


def test_batched_equals_one_by_one_on_the_default_model(default_lm):
    prompts = load_prompts(limit=4).texts
    cfg = dict(max_new_tokens=8, samples=2, seed=11)
    batched = generate(default_lm, prompts, SamplingConfig(**cfg, batch_size=8), progress=False)
    singles = []
    for i, p in enumerate(prompts):
        singles += generate(
            default_lm, [p], SamplingConfig(**cfg, batch_size=1), prompt_ids=[i], progress=False
        )
    same = sum(a.token_ids == b.token_ids for a, b in zip(batched, singles, strict=True))
    # float32 on a real model: a near-tie can flip a token, but almost every row must match.
    assert same >= len(batched) - 1
    site = default_lm.arch.mlp_site_names()[20] + ":input"
    a = collect_activations(default_lm, prompts, [site], batch_size=4, progress=False)[site]
    b = collect_activations(default_lm, prompts, [site], batch_size=1, progress=False)[site]
    torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_quick_demo_on_the_default_model(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    test = tmp_path / "tune" / "test"
    metrics = json.loads((test / "metrics.json").read_text())
    rows = metrics["methods"]
    original = rows[0]
    tune = json.loads((tmp_path / "tune" / "tune.json").read_text())
    tuned = [name for name in ("eigenshift", "steer", "linear-act", "profs")
             if tune["chosen"][name]]  # fmt: skip
    assert [r["method"] for r in rows] == ["original", *tuned, "eigenshift-singular", "prompt",
                                           "aura", "det0", "damp"]  # fmt: skip
    # JSON lines split at newlines only (str.splitlines also splits at U+2028 inside a string)
    stored = [json.loads(line) for line in (test / "continuations.jsonl").read_text()
              .split("\n") if line]  # fmt: skip
    by_key = {(r["method"], r["prompt_index"], r["sample_index"]): r for r in stored}
    prompted = [r for r in stored if r["method"] == "prompt"]  # the user's prompt, same seeds,
    moved = [r["continuation"] != by_key["original", r["prompt_index"], r["sample_index"]][
        "continuation"] for r in prompted]  # but continued after the instruction  # fmt: skip
    assert prompted and sum(moved) > len(moved) / 2
    assert {r["n_continuations"] for r in rows} == {80}  # the same prompts and seeds for all
    assert 5 < original["perplexity"] < 100 and original["degenerate_share"] < 0.2
    prompts = tune["prompts"]  # tuned on validation prompts, reported on others
    assert len(prompts["validation"]) == 20 and not set(prompts["validation"]) & set(
        prompts["test"])
    assert "EigenShift directions" in (test / "report.html").read_text()
    assert "Do the directions promote toxic words?" in (test / "explain.md").read_text()
    assert (tmp_path / "tune" / "frontier.png").is_file()
    # A second run reuses the fits and every continuation: nothing is generated again.
    stamps = {name: (tmp_path / name / "intervention.json").stat().st_mtime_ns
              for name in ("aura", "steer", "linear-act", "profs")}  # fmt: skip
    again = CliRunner().invoke(cli, ["demo", "--quick", "--out", str(tmp_path)])
    assert again.exit_code == 0, again.output
    assert json.loads((test / "metrics.json").read_text())["methods"] == rows
    for name in ("aura", "steer", "linear-act", "profs"):  # fits reused, not redone
        assert (tmp_path / name / "intervention.json").stat().st_mtime_ns == stamps[name]


def test_gemma_3_270m_loads_and_names_its_sites():
    lm = load_model("gemma-3-270m")
    arch = lm.arch
    assert arch.family == "gemma3_text" and arch.tied
    assert (arch.hidden_size, arch.vocab_size) == (640, 262144)
    gens = generate(
        lm, ["The weather today is"], SamplingConfig(max_new_tokens=5, greedy=True), progress=False
    )
    assert len(gens[0].token_ids) > 0
