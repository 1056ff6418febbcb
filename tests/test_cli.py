from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import make_hf_model, tiny_tokenizer

from eigenshift.cli import cli


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny-llama"
    make_hf_model("llama").save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_info_on_a_local_folder(tiny_folder):
    result = run("info", "--model", tiny_folder, "--json")
    assert result.exit_code == 0, result.output
    desc = json.loads(result.stdout)
    assert desc["family"] == "llama" and desc["tied"] is True and desc["mlp_width"] == 64
    table = run("info", "--model", tiny_folder)
    assert "model.layers.0.mlp.down_proj" in table.output


def _one_error_line(result):
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("eigenshift: error:")]
    assert len(errors) == 1 and not result.stdout.strip(), result.output
    assert "Traceback" not in result.output
    return errors[0]


def test_bad_inputs_give_one_line_and_exit_2(tmp_path):
    assert "does not exist" in _one_error_line(run("info", "--model", str(tmp_path / "nope")))
    (tmp_path / "bad.gguf").write_bytes(b"garbage")
    assert "not a GGUF file" in _one_error_line(run("info", "--model", str(tmp_path / "bad.gguf")))
    from transformers import ViTConfig

    ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2).save_pretrained(
        tmp_path / "vit"
    )
    assert "not a causal" in _one_error_line(run("info", "--model", str(tmp_path / "vit")))
    (tmp_path / "empty.csv").write_text("text,label\n")
    assert "no rows" in _one_error_line(run("data", "labelled", str(tmp_path / "empty.csv")))
    (tmp_path / "one.csv").write_text("text,label\na,0\nb,0\nc,0\n")
    assert "0 toxic" in _one_error_line(run("data", "labelled", str(tmp_path / "one.csv")))
    assert "no column 'body'" in _one_error_line(
        run("data", "labelled", str(tmp_path / "one.csv"), "--text-column", "body")
    )
    assert "file not found" in _one_error_line(run("data", "prompts", str(tmp_path / "x.jsonl")))


def test_overrides_reach_the_loader(tiny_folder):
    line = _one_error_line(run("info", "--model", tiny_folder, "--mlp-site", "mlp.nothing"))
    assert "MLP site" in line


def test_score_command(tmp_path):
    result = run("score", "you are a stupid idiot", "what a lovely garden")
    assert result.exit_code == 0, result.output
    scores = [float(line.split("\t")[0]) for line in result.stdout.splitlines()]
    assert scores[0] > 0.5 > scores[1]
    assert run("score").exit_code == 2


def test_demo_runs_the_spine_on_a_tiny_model(tiny_folder, tmp_path):
    out = tmp_path / "demo"
    result = run(
        "demo", "--model", tiny_folder, "--max-prompts", "3", "--samples", "2", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_continuations"] == 6 and 0 <= summary["toxic_fraction"] <= 1
    rows = [json.loads(line) for line in (out / "continuations.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {"prompt", "continuation", "score", "judge_score"} <= set(rows[0])
