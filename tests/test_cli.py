from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import make_hf_model, tiny_tokenizer

from eigenshift.cli import cli


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


def test_evaluate_and_report_on_a_tiny_model(tiny_folder, tmp_path):
    import torch

    from eigenshift import load_model
    from eigenshift.interventions import ScaleUnembeddingInput

    lm = load_model(tiny_folder)
    scale = torch.full((lm.arch.hidden_size,), 0.5)
    ScaleUnembeddingInput.from_scale(lm, scale).save(tmp_path / "half")
    args = ["--model", tiny_folder, "--max-prompts", "3", "--samples", "2", "--max-new-tokens",
            "5", "--clean-texts", "5", "--bootstrap", "50", "--judge", "none"]  # fmt: skip
    out = tmp_path / "run"
    result = run("evaluate", *args, "--intervention", str(tmp_path / "half"), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "original" in result.stdout and "half" in result.stdout and "report:" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["method"] for r in metrics["methods"]] == ["original", "half"]
    assert (out / "report.html").exists()
    (out / "report.html").unlink()
    assert run("report", str(out)).exit_code == 0 and (out / "report.html").exists()

    # An artifact fitted on another model is refused with one line.
    other = tmp_path / "other-model"
    make_hf_model("llama", seed=5).save_pretrained(other)
    tiny_tokenizer().save_pretrained(other)
    line = _one_error_line(
        run(
            "evaluate",
            *args[2:],
            "--model",
            str(other),
            "--intervention",
            str(tmp_path / "half"),
            "--out",
            str(tmp_path / "run2"),
        )
    )
    assert "fitted on" in line
    assert "no metrics.json" in _one_error_line(run("report", str(tmp_path)))


@pytest.fixture(scope="module")
def coin_scorer(tmp_path_factory):
    """A tiny random classifier with sharpened logits: a random half of all texts score 'toxic'."""
    import torch
    import transformers as tf
    from conftest import tiny_bert_config

    folder = tmp_path_factory.mktemp("scorers") / "coin"
    torch.manual_seed(1)
    model = tf.BertForSequenceClassification(tiny_bert_config())
    with torch.no_grad():  # spread the scores over (0, 1) so both classes are well populated
        model.classifier.weight.mul_(300.0)
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


def _from_disk(folder) -> dict[str, dict]:
    """Per method, in the run's order, what the run folder's own files say, recomputed by the
    definitions: toxic fraction (share of continuations scoring >= the threshold) and expected
    maximum toxicity (mean over prompts of the highest score) from continuations.jsonl; mean
    clean-text perplexity (finite per-text values) from perplexity.json, None where the run
    never measured it. Only the degenerate flag (a bootstrap test) is read from metrics.json."""
    import math

    metrics = json.loads((folder / "metrics.json").read_text())
    rows: dict[tuple, dict] = {}
    for line in (folder / "continuations.jsonl").read_text().splitlines():
        row = json.loads(line)
        rows[(row["method"], row["prompt_index"], row["sample_index"])] = row  # last one wins
    ppl = json.loads((folder / "perplexity.json").read_text())
    out = {}
    for entry in metrics["methods"]:
        name = entry["method"]
        by_prompt: dict[int, list[float]] = {}
        for (method, prompt, _), row in rows.items():
            if method == name:
                by_prompt.setdefault(prompt, []).append(row["score"])
        scores = [x for p in sorted(by_prompt) for x in by_prompt[p]]
        finite = [v for v in ppl.get(name, []) if math.isfinite(v)]
        out[name] = {
            "toxic_fraction": sum(x >= metrics["threshold"] for x in scores) / len(scores),
            "expected_max_toxicity": sum(max(by_prompt[p]) for p in sorted(by_prompt))
            / len(by_prompt),
            "perplexity": sum(finite) / len(finite) if name in ppl else None,
            "flag_degenerate": bool(entry.get("flag_degenerate")),
        }
    return out


def test_fit_explain_export_on_a_tiny_model(tiny_folder, coin_scorer, tmp_path):
    import torch
    import transformers as tf

    from eigenshift import load_model

    fit_args = ["--model", tiny_folder, "--evidence", "generated", "--attribution-drop", "0",
                "--fit-prompts", "30", "--max-new-tokens", "5", "--scorer", coin_scorer,
                "--min-toxic", "3", "--k", "4", "--alpha", "0"]  # fmt: skip
    bakeable = [*fit_args, "--recipe", "paper"]
    result = run("fit", "eigenshift", *bakeable, "--out", str(tmp_path / "es"))
    assert result.exit_code == 0, result.output
    assert "toxic side" in result.stdout and (tmp_path / "es" / "intervention.json").exists()

    result = run("explain", str(tmp_path / "es"), "--model", tiny_folder, "--top", "4")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "es" / "explain.md").exists() and (
        tmp_path / "es" / "delta_spectrum.png"
    ).exists()

    result = run("export", "--model", tiny_folder, "--intervention", str(tmp_path / "es"),
                 "--out", str(tmp_path / "exported"))  # fmt: skip
    assert result.exit_code == 0, result.output
    lm = load_model(tiny_folder)
    from eigenshift.interventions import load_intervention

    iv = load_intervention(tmp_path / "es", lm)
    batch = lm.encode(["the quick brown fox"])
    with iv.applied(lm), torch.no_grad():
        hooked = lm.model(**batch.model_inputs()).logits
    plain = tf.AutoModelForCausalLM.from_pretrained(tmp_path / "exported")
    with torch.no_grad():
        exported = plain(**batch.model_inputs()).logits
    torch.testing.assert_close(exported, hooked, atol=1e-4, rtol=0)

    # A stack of it and a scale at the same site: explained by its EigenShift member, exported
    # in the order its hooks run.
    assert run("fit", "identity", "--model", tiny_folder, "--scale", "0.8",
               "--out", str(tmp_path / "scale")).exit_code == 0  # fmt: skip
    result = run("fit", "stack", "--model", tiny_folder, "--member", str(tmp_path / "scale"),
                 "--member", str(tmp_path / "es"), "--out", str(tmp_path / "both"))  # fmt: skip
    assert result.exit_code == 0, result.output
    result = run("explain", str(tmp_path / "both"), "--model", tiny_folder, "--top", "4")
    assert result.exit_code == 0 and (tmp_path / "both" / "explain.md").exists(), result.output
    assert run("export", "--model", tiny_folder, "--intervention", str(tmp_path / "both"),
               "--out", str(tmp_path / "exported-both")).exit_code == 0  # fmt: skip
    with load_intervention(tmp_path / "both", lm).applied(lm), torch.no_grad():
        hooked = lm.model(**batch.model_inputs()).logits
    plain = tf.AutoModelForCausalLM.from_pretrained(tmp_path / "exported-both")
    with torch.no_grad():
        torch.testing.assert_close(plain(**batch.model_inputs()).logits, hooked, atol=1e-4,
                                   rtol=0)  # fmt: skip

    # Centered dampening leaves with its constant logit shift as a logit bias.
    fitted = run("fit", "eigenshift", *fit_args, "--recipe", "matched", "--basis", "singular",
                 "--out", str(tmp_path / "m"))  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    done = run("export", "--model", tiny_folder, "--intervention", str(tmp_path / "m"),
               "--out", str(tmp_path / "x"))  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "logit bias" in done.output and (tmp_path / "x" / "logit_bias.json").is_file()


def test_fit_with_too_few_toxic_states_exits_2(tiny_folder, tmp_path):
    line = _one_error_line(run("fit", "eigenshift", "--model", tiny_folder, "--evidence",
                               "generated", "--fit-prompts", "4", "--max-new-tokens", "3",
                               "--out", str(tmp_path / "es")))  # fmt: skip
    assert "toxic states" in line and "--fit-prompts" in line


def test_sweep_on_a_tiny_model(tiny_folder, coin_scorer, tmp_path):
    from eigenshift.interventions import read_meta

    args = ["--model", tiny_folder, "--scorer", coin_scorer, "--judge", "none",
            "--evidence", "generated", "--attribution-drop", "0", "--fit-prompts", "30",
            "--min-toxic", "3", "--max-prompts", "6", "--samples", "2",
            "--max-new-tokens", "5", "--clean-texts", "5", "--bootstrap", "50",
            "--k", "2", "--k", "4", "--alpha", "0", "--alpha", "-0.5",
            "--recipe", "paper", "--recipe", "matched", "--basis", "singular",
            "--out", str(tmp_path / "sw")]  # fmt: skip
    result = run("sweep", *args, "--ppl-limit", "10")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert len(summary["grid"]) == 1 + 2 * 2 * 2
    assert (tmp_path / "sw" / "sweep_pareto.png").exists()
    # The front, checked point by point: nothing on it is beaten on both axes by another point,
    # and everything off it is.
    points = {g["method"]: (g["perplexity"], g["toxic_fraction"]) for g in summary["grid"]}

    def beaten(name):
        x, y = points[name]
        return any(a <= x and b <= y and (a, b) != (x, y) for a, b in points.values())

    assert summary["pareto_front"]
    assert all(not beaten(n) for n in summary["pareto_front"])
    assert all(beaten(n) or points[n] in [points[m] for m in summary["pareto_front"]]
               for n in points if n not in summary["pareto_front"])  # fmt: skip
    # The best point, recomputed from the run's own files by the documented rule: the highest
    # TPH (100 * 2TQ / (T + Q), T the relative drop in toxic fraction, Q = 1 / (1 + |relative
    # perplexity change|)) among non-original points with perplexity within the limit and no
    # significant rise in degenerate text.
    disk = _from_disk(tmp_path / "sw")
    assert list(disk) == [g["method"] for g in summary["grid"]]
    base = disk["original"]

    def rise(point):
        return point["perplexity"] / base["perplexity"] - 1.0

    def tph(point):
        drop = base["toxic_fraction"] - point["toxic_fraction"]
        t = drop / base["toxic_fraction"] if base["toxic_fraction"] else 0.0
        q = 1.0 / (1.0 + abs(rise(point)))
        return 100.0 * 2 * t * q / (t + q) if t + q else 0.0

    for g in summary["grid"]:  # what sweep.json reports is what the files say
        point = disk[g["method"]]
        assert g["toxic_fraction"] == pytest.approx(point["toxic_fraction"], abs=1e-12)
        assert g["perplexity"] == pytest.approx(point["perplexity"], rel=1e-9)
        assert g["tph"] == pytest.approx(tph(point), rel=1e-6, abs=1e-9)
    rises = {n: rise(p) for n, p in disk.items() if n != "original" and not p["flag_degenerate"]}

    def check_best(chosen, limit):
        eligible = {n: tph(disk[n]) for n, r in rises.items() if r <= limit}
        if not eligible:
            assert chosen["best"] is None
            assert not (tmp_path / "sw" / "best").exists()  # no earlier limit's choice left
            return
        top = max(eligible.values())  # ties (equal TPH) may go either way
        assert chosen["best"] in [n for n, v in eligible.items() if v >= top - 1e-9]
        recipe, k, alpha = chosen["best"].split("-k")[0], *chosen["best"].split("-k")[1].split("-a")
        params = read_meta(tmp_path / "sw" / "best").params
        assert (params["recipe"], params["k"], params["alpha"]) == (recipe, int(k), float(alpha))

    check_best(summary, 10)
    # The same grid again under a limit that excludes points: between the winner's perplexity
    # rise and the next lower one (the winner must lose), or, when the winner raises perplexity
    # by nothing, below every point that raises it. The run resumes: nothing is generated.
    winner = summary["best"]
    if winner is not None and rises[winner] > 0:
        lower = max([0.0, *(r for r in rises.values() if r < rises[winner])])
        limit = (lower + rises[winner]) / 2
    else:
        raised = [r for r in rises.values() if r > 0]
        assert raised, "no grid point raises perplexity: no limit excludes one"
        limit = min(raised) / 2
    assert any(r > limit for r in rises.values())
    continuations = (tmp_path / "sw" / "continuations.jsonl").read_text()
    again = run("sweep", *args, "--ppl-limit", repr(limit))
    assert again.exit_code == 0, again.output
    assert (tmp_path / "sw" / "continuations.jsonl").read_text() == continuations
    limited = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert limited["ppl_limit"] == limit
    check_best(limited, limit)
    if winner is not None and rises[winner] > 0:
        assert limited["best"] != winner
    # The evaluation prompts exclude the fit prompts.
    metrics = json.loads((tmp_path / "sw" / "metrics.json").read_text())
    assert metrics["excluded_prompts"] == 30


def test_cli_defaults_are_the_library_defaults():
    import click

    from eigenshift.evidence import EvidenceConfig
    from eigenshift.interventions import EigenShiftConfig

    ctx = click.Context(cli)
    params = {p.name: p for p in cli.get_command(ctx, "fit").commands["eigenshift"].params}
    assert params["recipe"].default == EigenShiftConfig().recipe
    assert params["alpha"].default == EigenShiftConfig().alpha
    assert params["fit_prompts"].default == EvidenceConfig().fit_prompts
    sweep = {p.name: p for p in cli.get_command(ctx, "sweep").params}
    assert tuple(sweep["recipes"].default) == (EigenShiftConfig().recipe,)


def test_locate_neurons_command(tiny_folder, tmp_path):
    rows = ["text,label"] + [f"you stupid idiot {i},1" for i in range(6)]
    rows += [f"the quick brown fox {i},0" for i in range(6)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    args = ["locate", "neurons", "--model", tiny_folder, "--data", str(tmp_path / "d.csv"),
            "--bootstrap", "3"]  # fmt: skip
    result = run(*args, "--out", str(tmp_path / "n"))
    assert result.exit_code == 0, result.output
    assert "Neuron experts" in result.stdout and (tmp_path / "n" / "neurons.safetensors").exists()
    assert "matches no module" in _one_error_line(run(*args, "--sites", "x.*", "--out", "o"))


def test_locate_layers_command(tiny_folder, tmp_path):
    rows = ["text,label"] + [f"you stupid idiot {i},1" for i in range(6)]
    rows += [f"the quick brown fox {i},0" for i in range(6)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    args = ["locate", "layers", "--model", tiny_folder, "--data", str(tmp_path / "d.csv")]
    result = run(*args, "--folds", "3", "--out", str(tmp_path / "l"))
    assert result.exit_code == 0, result.output
    assert "Layer expertise" in result.stdout and (tmp_path / "l" / "layers.png").exists()
    message = _one_error_line(run(*args, "--folds", "7", "--out", str(tmp_path / "o")))
    assert "7-fold cross-validation needs at least 7 texts of each class" in message


def test_fit_baselines_commands(tiny_folder, tmp_path):
    from eigenshift.interventions import read_meta

    rows = ["text,label"] + [f"you stupid idiot {i},1" for i in range(6)]
    rows += [f"the quick brown fox {i},0" for i in range(6)]
    data = tmp_path / "d.csv"
    data.write_text("\n".join(rows) + "\n")
    base = ["--model", tiny_folder]
    result = run("fit", "aura", *base, "--neurons", str(data), "--out", str(tmp_path / "aura"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "aura-neurons" / "neurons.json").exists()  # scored first, kept
    result = run("fit", "damp", *base, "--neurons", str(tmp_path / "aura-neurons"), "--k", "5",
                 "--alpha", "0.25", "--out", str(tmp_path / "damp"))  # fmt: skip
    assert result.exit_code == 0 and "5 of 128 units edited" in result.stdout, result.output
    assert read_meta(tmp_path / "damp").params["alpha"] == 0.25
    message = _one_error_line(run("fit", "det0", *base, "--neurons", str(tmp_path / "aura-neurons"),
                                  "--alpha", "0.5", "--out", str(tmp_path / "x")))  # fmt: skip
    assert "takes no alpha" in message
    result = run("fit", "steer", *base, "--data", str(data), "--layer", "-1",
                 "--out", str(tmp_path / "steer"))  # fmt: skip
    assert result.exit_code == 0 and "layer 1" in result.stdout, result.output
    result = run("fit", "linear-act", *base, "--data", str(data), "--mode", "mean",
                 "--out", str(tmp_path / "act"))  # fmt: skip
    assert result.exit_code == 0 and "128 units at 2 sites" in result.stdout, result.output
    result = run("export", *base, "--intervention", str(tmp_path / "aura"),
                 "--out", str(tmp_path / "exported"))  # fmt: skip
    assert result.exit_code == 0, result.output
    result = run("fit", "stack", *base, "--member", str(tmp_path / "aura"), "--member",
                 str(tmp_path / "steer"), "--strength", "0.5", "--out", str(tmp_path / "both"))
    assert result.exit_code == 0 and "then steer: layer 1" in result.stdout, result.output
    assert read_meta(tmp_path / "both").params["members"][1]["params"]["strength"] == 0.5
    message = _one_error_line(run("fit", "stack", *base, "--member", str(tmp_path / "aura"),
                                  "--out", str(tmp_path / "one")))  # fmt: skip
    assert "two or more interventions, got 1" in message


def _fit_steer(tiny_folder: str, tmp_path) -> tuple:
    """A labelled CSV and a steering fit on it in tmp_path/steer: (the CSV, the model args)."""
    rows = ["text,label"] + [f"you stupid idiot {i},1" for i in range(6)]
    rows += [f"the quick brown fox {i},0" for i in range(6)]
    data = tmp_path / "d.csv"
    data.write_text("\n".join(rows) + "\n")
    base = ["--model", tiny_folder]
    assert run("fit", "steer", *base, "--data", str(data), "--out", str(tmp_path / "steer")
               ).exit_code == 0  # fmt: skip
    return data, base


def test_sweep_over_baselines_and_strengths(tiny_folder, coin_scorer, tmp_path):
    data, base = _fit_steer(tiny_folder, tmp_path)
    assert run("fit", "aura", *base, "--neurons", str(data), "--out", str(tmp_path / "aura")
               ).exit_code == 0  # fmt: skip
    args = [*base, "--scorer", coin_scorer, "--judge", "none", "--max-prompts", "4",
            "--samples", "1", "--max-new-tokens", "4", "--clean-texts", "4", "--bootstrap", "20",
            "--with", str(tmp_path / "steer"), "--with", str(tmp_path / "aura"),
            "--strength", "0", "--strength", "2", "--ppl-limit", "10"]  # fmt: skip
    result = run("sweep", *args, "--out", str(tmp_path / "sw"))
    assert result.exit_code == 0, result.output
    names = [g["method"] for g in json.loads((tmp_path / "sw" / "sweep.json").read_text())["grid"]]
    assert names == ["original", "steer-s0", "steer-s2", "aura"]
    metrics = json.loads((tmp_path / "sw" / "metrics.json").read_text())["methods"]
    assert metrics[1]["toxic_fraction"] == metrics[0]["toxic_fraction"]  # strength 0 = original
    assert metrics[1]["perplexity"] == metrics[0]["perplexity"]
    assert "--k and --alpha together" in run("sweep", *base, "--k", "2", "--out", "x").output


def test_out_folders_not_written_by_eigenshift_are_never_replaced(tiny_folder, tmp_path):
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "keep.txt").write_text("x")
    line = _one_error_line(run("fit", "identity", "--model", tiny_folder, "--out", str(mine)))
    assert "not a folder eigenshift wrote" in line
    assert (mine / "keep.txt").read_text() == "x" and (mine / "sub").is_dir()
    result = run("fit", "identity", "--model", tiny_folder, "--scale", "0.5",
                 "--out", str(tmp_path / "edit"))  # fmt: skip
    assert result.exit_code == 0, result.output
    again = run("fit", "identity", "--model", tiny_folder, "--out", str(tmp_path / "edit"))
    assert again.exit_code == 0, again.output  # our own artifact is replaced
    line = _one_error_line(run("export", "--model", tiny_folder, "--intervention",
                               str(tmp_path / "edit"), "--out", str(mine)))  # fmt: skip
    assert "not a folder eigenshift wrote" in line and (mine / "keep.txt").exists()


def test_tune_chooses_on_validation_and_reports_on_test(tiny_folder, coin_scorer, tmp_path):
    from eigenshift.interventions import read_meta

    _, base = _fit_steer(tiny_folder, tmp_path)
    args = [*base, "--scorer", coin_scorer, "--judge", "none", "--samples", "1",
            "--max-new-tokens", "4", "--clean-texts", "4", "--bootstrap", "20",
            "--validation-prompts", "5", "--test-prompts", "4", "--validation-samples", "1",
            "--no-eigenshift", "--with", str(tmp_path / "steer"), "--strength", "0",
            "--strength", "1", "--strength", "2", "--strength", "4",
            "--ppl-limit", "10", "--capability", "3", "--task", "piqa"]  # fmt: skip
    result = run("tune", *args, "--out", str(tmp_path / "tuned"))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "tuned" / "tune.json").read_text())
    # The declared rule, recomputed from what the validation run wrote: among the points whose
    # expected maximum toxicity is below the original's and whose degenerate share does not
    # rise significantly, the lowest expected maximum toxicity with perplexity at most +1000%.
    # A point the rule passes over on the way must have had its perplexity measured.
    disk = _from_disk(tmp_path / "tuned" / "validation")
    points = ["steer-s0", "steer-s1", "steer-s2", "steer-s4"]
    assert list(disk) == ["original", *points]
    original = disk["original"]  # strength 0 edits nothing: never a drop, never chosen
    assert disk["steer-s0"]["expected_max_toxicity"] == original["expected_max_toxicity"]
    expected = None
    for name in sorted((n for n in points if not disk[n]["flag_degenerate"] and
                        disk[n]["expected_max_toxicity"] < original["expected_max_toxicity"]),
                       key=lambda n: disk[n]["expected_max_toxicity"]):  # fmt: skip
        assert disk[name]["perplexity"] is not None, f"{name}'s perplexity was never measured"
        if disk[name]["perplexity"] / original["perplexity"] - 1.0 <= 10:
            expected = name
            break
    assert summary["chosen"]["steer"] == expected
    assert expected is not None  # this run chooses a point (the checks below rely on it)
    chosen = read_meta(tmp_path / "tuned" / "chosen" / "steer")
    assert chosen.params["strength"] == float(expected.removeprefix("steer-s"))
    assert [r["method"] for r in summary["test"]] == ["original", "steer"]
    assert (tmp_path / "tuned" / "chosen" / "steer" / "intervention.json").exists()
    assert summary["frontier"] == "frontier.png"
    # Capability (issue 25): measured on the chosen points on test prompts, not on the grid.
    assert len(summary["capability"]["steer"]["piqa_change_ci"]) == 2
    assert summary["capability"]["original"]["piqa_change"] == 0
    assert "piqa_accuracy" not in json.loads(
        (tmp_path / "tuned" / "validation" / "metrics.json").read_text())["methods"][0]
    assert "dPIQA" in result.output
    assert (tmp_path / "tuned" / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from eigenshift.report import write_report

    paths = write_report(tmp_path / "tuned" / "test")  # the tune's frontier in its test report
    assert paths["frontier"] == tmp_path / "tuned" / "frontier.png"
    assert "![frontier](../frontier.png)" in paths["markdown"].read_text()
    assert "nothing to tune" in _one_error_line(run("tune", *base, "--no-eigenshift",
                                                    "--out", str(tmp_path / "x")))  # fmt: skip


def test_24_2_method_names_are_unique_safe_and_never_a_path(tiny_folder, coin_scorer, tmp_path):
    import hashlib
    import shutil

    from eigenshift.interventions import load_interventions, read_meta
    from eigenshift.studies.points import disjoint_grids

    _, base = _fit_steer(tiny_folder, tmp_path)
    for parent in ("a", "b"):
        shutil.copytree(tmp_path / "steer", tmp_path / parent / "steer")
    shutil.copytree(tmp_path / "steer", tmp_path / "original")
    shutil.copytree(tmp_path / "steer", tmp_path / "my steer!")
    names = load_interventions([tmp_path / "a" / "steer", tmp_path / "b" / "steer",
                                tmp_path / "original", tmp_path / "my steer!"])  # fmt: skip
    assert list(names) == ["steer", "steer-2", "original-2", "my-steer"]
    # A method named like another's point, or like another method, is numbered, not merged.
    grids = disjoint_grids({"eigenshift": 0, "eigenshift-k1-a0": 1, "eigenshift-2": 2},
                           lambda n, m: {f"{n}-k1-a0": m} if m == 0 else {n: m})  # fmt: skip
    assert {p: m for g in grids.values() for p, m in g.items()} == {
        "eigenshift-k1-a0": 0, "eigenshift-k1-a0-2": 1, "eigenshift-2": 2}

    def digest(folder):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}

    inputs = {p: digest(p) for p in (tmp_path / "a" / "steer", tmp_path / "b" / "steer")}
    args = [*base, "--scorer", coin_scorer, "--judge", "none", "--samples", "1",
            "--max-new-tokens", "4", "--clean-texts", "4", "--bootstrap", "20",
            "--validation-prompts", "5", "--test-prompts", "4", "--validation-samples", "1",
            "--no-eigenshift", "--with", str(tmp_path / "a" / "steer"),
            "--with", str((tmp_path / "b" / "steer").resolve()), "--strength", "1",
            "--strength", "2", "--ppl-limit", "1000"]  # fmt: skip
    result = run("tune", *args, "--out", str(tmp_path / "tuned"))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "tuned" / "tune.json").read_text())
    assert sorted(summary["chosen"]) == ["steer", "steer-2"]
    assert {p.name for p in (tmp_path / "tuned" / "chosen").iterdir()} <= {"steer", "steer-2"}
    assert {p: digest(p) for p in inputs} == inputs  # no input folder written
    assert read_meta(tmp_path / "a" / "steer").params["strength"] == 1.0
    # An input folder inside --out (a tune's own chosen point), or --out inside an input folder.
    for out in (tmp_path / "a", tmp_path / "a" / "steer" / "run"):
        line = _one_error_line(run("tune", *args, "--out", str(out)))
        assert "nested" in line
    assert {p: digest(p) for p in inputs} == inputs


def test_24_4_a_tune_rerun_with_another_rule_is_refused_and_never_keeps_a_stale_choice(
    tiny_folder, coin_scorer, tmp_path, monkeypatch
):
    from eigenshift.core.io import atomic_folder

    _, base = _fit_steer(tiny_folder, tmp_path)
    args = [*base, "--scorer", coin_scorer, "--judge", "none", "--samples", "1",
            "--max-new-tokens", "4", "--clean-texts", "4", "--bootstrap", "20",
            "--validation-prompts", "5", "--test-prompts", "4", "--validation-samples", "1",
            "--no-eigenshift", "--with", str(tmp_path / "steer"), "--strength", "1",
            "--strength", "2", "--out", str(tmp_path / "tuned")]  # fmt: skip
    result = run("tune", *args, "--ppl-limit", "1000")
    assert result.exit_code == 0, result.output
    before = json.loads((tmp_path / "tuned" / "tune.json").read_text())
    line = _one_error_line(run("tune", *args, "--ppl-limit", "0"))
    assert "(tune.ppl_limit)" in line
    assert json.loads((tmp_path / "tuned" / "tune.json").read_text()) == before
    # The same settings resume; a chosen/ folder holds only this run's choices.
    with atomic_folder(tmp_path / "tuned" / "chosen") as folder:  # a choice of another run
        (folder / "stale").mkdir()
    result = run("tune", *args, "--ppl-limit", "1000")
    assert result.exit_code == 0, result.output
    chosen = {n for n, p in before["chosen"].items() if p}
    assert {p.name for p in (tmp_path / "tuned" / "chosen").iterdir()} == chosen
    # A sweep rerun whose rule now picks nothing leaves no earlier best/ behind.
    sweep = [*args[:-2], "--ppl-limit", "1000", "--out", str(tmp_path / "sw")]
    sweep.remove("--no-eigenshift")
    for option in ("--validation-prompts", "--test-prompts", "--validation-samples"):
        del sweep[sweep.index(option):sweep.index(option) + 2]
    result = run("sweep", *sweep)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "sw" / "sweep.json").read_text())["best"] is not None
    assert (tmp_path / "sw" / "best" / "intervention.json").is_file()
    from eigenshift.studies.sweep import BestTPHWithinPerplexity

    monkeypatch.setattr(BestTPHWithinPerplexity, "best", lambda self, points, grid: None)
    assert run("sweep", *sweep).exit_code == 0
    assert json.loads((tmp_path / "sw" / "sweep.json").read_text())["best"] is None
    assert not (tmp_path / "sw" / "best").exists()


def test_25_1_a_users_own_behaviour_file_runs_locate_fit_tune_and_evaluate(
    tiny_folder, coin_scorer, tmp_path
):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "bad.txt").write_text("".join(f"this is awful and sad {i}\n" for i in range(8)))
    (folder / "good.txt").write_text("".join(f"what a lovely bright day {i}\n" for i in range(8)))
    (folder / "openings.txt").write_text("".join(f"the film {w}\n" for w in
                                                 ("was", "began", "ends", "felt", "had", "is")))
    (folder / "clean.txt").write_text("A quiet river runs through the valley.\n"
                                      "The library opens at nine every morning.\n")  # fmt: skip
    spec = folder / "gloom.yaml"
    spec.write_text(f"unwanted: gloomy\nwanted: cheerful\nunwanted_texts: bad.txt\n"
                    f"wanted_texts: good.txt\nprompts: openings.txt\nclean_text: clean.txt\n"
                    f"scorer: {coin_scorer}\njudge: none\n")  # fmt: skip
    base = ["--model", tiny_folder, "--behaviour", str(spec)]
    small = ["--samples", "1", "--max-new-tokens", "4", "--clean-texts", "2", "--bootstrap", "20"]
    result = run("locate", "neurons", *base, "--out", str(tmp_path / "n"))
    assert result.exit_code == 0, result.output
    assert "8 gloomy" in result.output and "toxic" not in result.output  # its words
    result = run("fit", "steer", *base, "--out", str(tmp_path / "steer"))
    assert result.exit_code == 0, result.output
    from eigenshift.interventions import read_meta

    assert read_meta(tmp_path / "steer").stats["n_texts"] == 16  # both files, one side each
    result = run("tune", *base, *small, "--validation-prompts", "3", "--test-prompts", "3",
                 "--validation-samples", "1", "--no-eigenshift", "--with", str(tmp_path / "steer"),
                 "--strength", "1", "--ppl-limit", "1000",
                 "--out", str(tmp_path / "t"))  # fmt: skip
    assert result.exit_code == 0, result.output
    result = run("evaluate", *base, *small, "--intervention", str(tmp_path / "steer"),
                 "--out", str(tmp_path / "e"))  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["config"]["behaviour"] == "gloom"
    assert metrics["config"]["sides"] == ["gloomy", "cheerful"]
    assert metrics["prompts_source"].endswith("openings.txt") and metrics["n_prompts"] == 6
    assert metrics["scorer"] == coin_scorer and metrics["judge"] is None
    report = (tmp_path / "e" / "report.md").read_text()
    assert "Behaviour: gloom (continuations judged gloomy or cheerful)" in report
    assert "gloomy %" in result.output  # the table speaks of its sides
    assert read_meta(tmp_path / "steer").behaviour == {"name": "gloom", "unwanted": "gloomy",
                                                       "wanted": "cheerful"}  # fmt: skip
    # A setting given by hand wins over the behaviour's.
    result = run("evaluate", *base, *small, "--scorer", "profanity", "--out", str(tmp_path / "p"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "p" / "metrics.json").read_text())["scorer"] == "profanity"
    bad = folder / "bad.yaml"
    bad.write_text("unwanted: x\nflavour: sour\n")
    assert "flavour" in _one_error_line(run("evaluate", "--behaviour", str(bad), *base[:2],
                                            "--out", str(tmp_path / "x")))  # fmt: skip


def test_25_1_every_command_that_reads_a_behaviours_inputs_takes_behaviour(tmp_path):
    result = run("data", "labelled", "--behaviour", "sentiment")
    assert result.exit_code == 0, result.output
    assert " negative, " in result.output and "positive" in result.output
    result = run("data", "prompts", "--behaviour", "sentiment")
    assert result.exit_code == 0 and "prompts.jsonl" in result.output, result.output
    result = run("score", "--behaviour", "sentiment", "what a dreadful, boring mess",
                 "a delightful film")  # fmt: skip
    assert result.exit_code == 0, result.output
    bad, good = (float(line.split("\t")[0]) for line in result.output.splitlines())
    assert bad > 0.5 > good  # VADER's negative side
    # a study whose rule reads continuations refuses a preference behaviour, before any work
    for command in ("tune", "sweep"):
        line = _one_error_line(run(command, "--behaviour", "stereotypes", "--out",
                                   str(tmp_path / command)))  # fmt: skip
        assert "measured as a preference on sentence pairs" in line
        assert not (tmp_path / command).exists()
