"""Regression suite of hostile inputs (issue 11): each test names the numbered item it guards.
Every refusal is one line on stderr, exit code 2, no traceback; nothing the tool did not write is
lost; a killed or concurrent run never leaves a mixed or half-written folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from click.testing import CliRunner
from conftest import PROMPTS, make_lm

from eigenshift.cli import cli
from eigenshift.core.errors import ArtifactError, DataError, InputError, ScorerError
from eigenshift.core.io import (
    FILE_MODE,
    atomic_folder,
    clean_leftovers,
    prepare_out,
    temporary_file,
)
from eigenshift.engines.generation import SamplingConfig, generate
from eigenshift.evaluation.run import RunFolder
from eigenshift.evaluation.store import ContinuationStore
from eigenshift.interventions import (
    METHODS,
    EigenShift,
    Intervention,
    ScaleUnembeddingInput,
    load_intervention,
    method_class,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def refused(result) -> str:
    """The one error line of a refusal (exit 2, nothing on stdout, no traceback)."""
    assert result.exit_code == 2, (result.output, result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Loading weights", "Writing"))]
    assert len(lines) == 1 and lines[0].startswith("eigenshift: error:"), result.stderr
    assert "Traceback" not in result.output and not result.stdout.strip()
    return lines[0]


EVAL = ("--max-prompts", 2, "--samples", 1, "--max-new-tokens", 3, "--clean-texts", 3,
        "--bootstrap", 10, "--judge", "none")  # fmt: skip


def _subprocess(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip


# -- 1. data loss ---------------------------------------------------------------------------------
def test_1_out_folders_the_tool_did_not_write_are_never_replaced(tiny_folder, tmp_path):
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "keep.txt").write_text("x")
    for args in (("fit", "identity", "--model", tiny_folder, "--out", mine),
                 ("evaluate", "--model", tiny_folder, *EVAL, "--out", mine)):  # fmt: skip
        assert "not" in refused(run(*args))
        assert (mine / "keep.txt").read_text() == "x" and (mine / "sub").is_dir()
    assert sorted(p.name for p in mine.iterdir()) == ["keep.txt", "sub"]


# -- 2. concurrent and mixed runs -----------------------------------------------------------------
def test_2_a_run_folder_in_use_by_another_process_is_refused(tiny_folder, tmp_path):
    out = tmp_path / "run"
    holder = _subprocess(f"""
        import time
        from eigenshift.evaluation.run import RunFolder
        with RunFolder({str(out)!r}).lock():
            print("held", flush=True)
            time.sleep(60)
    """)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = refused(run("evaluate", "--model", tiny_folder, *EVAL, "--out", out))
        assert "in use by another eigenshift run" in line and f"pid {holder.pid}" in line
    finally:
        holder.kill()
        holder.wait()
    # The kernel let go of the dead holder's lock: the folder is usable again.
    assert run("evaluate", "--model", tiny_folder, *EVAL, "--out", out).exit_code == 0
    rows = (out / "continuations.jsonl").read_text().splitlines()
    assert len(rows) == 2  # the original only: 2 prompts x 1 sample, no duplicates
    other_seed = refused(run("evaluate", "--model", tiny_folder, *EVAL, "--seed", 9, "--out", out))
    assert "other settings or inputs (seed)" in other_seed
    assert len((out / "continuations.jsonl").read_text().splitlines()) == len(rows)
    record = json.loads((out / "run.json").read_text())
    del record["settings"]["sampler"]  # a folder written by the inverse-CDF sampler
    (out / "run.json").write_text(json.dumps(record))
    assert "(sampler)" in refused(run("evaluate", "--model", tiny_folder, *EVAL, "--out", out))


# -- 3. batch size --------------------------------------------------------------------------------
def test_3_batch_size_does_not_change_sampled_continuations_in_float32():
    lm = make_lm("llama")  # float32: rounding differs between batch shapes, draws do not
    runs = {}
    for batch_size in (1, 2, 3, 32):
        cfg = SamplingConfig(max_new_tokens=8, samples=3, seed=7, batch_size=batch_size)
        runs[batch_size] = [g.token_ids for g in generate(lm, PROMPTS, cfg, progress=False)]
    assert runs[1] == runs[2] == runs[3] == runs[32]


# -- 4. NaN and inf -------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ("damp", "--alpha", "nan", "--neurons", "x"), ("steer", "--strength", "nan"),
    ("linear-act", "--strength", "inf"), ("identity", "--scale", "nan"),
    ("eigenshift", "--alpha", "-inf"),
], ids=lambda a: " ".join(a))  # fmt: skip
def test_4_non_finite_settings_are_refused_before_any_work(args, tmp_path):
    # A model that does not exist: the refusal must come first, before any loading.
    line = refused(run("fit", *args, "--model", tmp_path / "absent", "--out", tmp_path / "o"))
    assert "finite" in line and not (tmp_path / "o").exists()


def test_4_every_config_refuses_non_finite_numbers():
    from eigenshift.core.settings import field_types, unwrap_optional
    from eigenshift.data import LabelledSource
    from eigenshift.evaluation import EvalConfig
    from eigenshift.locate.configs import LayerConfig, NeuronConfig
    from eigenshift.studies.sweep import SweepConfig

    configs = {SamplingConfig, EvalConfig, SweepConfig, NeuronConfig, LayerConfig, LabelledSource,
               *(spec.config for spec in METHODS.values())}  # fmt: skip
    checked = 0
    for cls in configs:
        for name, annotation in field_types(cls).items():
            inner, _ = unwrap_optional(annotation)
            tuple_of_float = getattr(inner, "__args__", (None,))[0] is float
            if inner is not float and not tuple_of_float:
                continue
            for bad in (float("nan"), float("inf"), float("-inf")):
                value = (bad,) if tuple_of_float else bad
                extra = {"ks": (1,)} if name == "alphas" else {}
                with pytest.raises(InputError, match="finite"):
                    cls(**{name: value, **extra})
                checked += 1
    assert checked >= 30


def test_4_knob_changes_and_artifacts_with_nan_are_refused(tmp_path):
    lm = make_lm("llama")
    steer = method_class("steer")
    fitted = steer(
        {"vector": torch.ones(lm.arch.hidden_size)},
        steer.new_meta(lm, {"layer": 1, "site": "model.layers.1", "strength": 1.0},
                       ["model.layers.1"]),
    )  # fmt: skip
    with pytest.raises(InputError, match="finite"):
        fitted.with_params(strength=float("nan"))
    fitted.tensors["vector"][0] = float("nan")
    fitted.save(tmp_path / "nan")
    with pytest.raises(ArtifactError, match="NaN or infinite"):
        load_intervention(tmp_path / "nan")


@pytest.mark.parametrize("label", ["nan", "inf", "-inf"])
def test_4_non_finite_labels_are_refused_with_the_line(label, tmp_path):
    from eigenshift.data import load_labelled

    path = tmp_path / "data.csv"
    path.write_text(f"text,label\na,0\nb,1\nc,0\nd,1\ne,{label}\n")
    with pytest.raises(DataError, match=rf"data.csv:6: label '{label}' is not a finite number"):
        load_labelled(str(path))
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text('{"text": "a", "label": 0}\n\n{"text": "b", "label": NaN}\n')
    with pytest.raises(DataError, match=r"data.jsonl:3: label 'nan'"):
        load_labelled(str(jsonl))


# -- 5. unbounded input ---------------------------------------------------------------------------
def test_5_a_huge_prompt_keeps_only_its_end(tiny_folder, tmp_path):
    lm = make_lm("llama")
    huge = "the quick brown fox " * 100_000 + "you are a"  # 2 MB, far beyond the 128 positions
    cfg = SamplingConfig(max_new_tokens=4, max_prompt_tokens=1000)
    gen = generate(lm, [huge, "thank"], cfg, progress=False)
    used = lm.tokenizer(gen[0].prompt)["input_ids"]
    assert len(used) <= 128 - 4 and gen[0].prompt.endswith("you are a")
    assert gen[1].prompt == "thank"
    with pytest.raises(InputError, match="no room for a prompt"):
        generate(lm, ["thank"], SamplingConfig(max_new_tokens=200), progress=False)
    from eigenshift.capture.activations import collect_activations
    from eigenshift.evaluation.perplexity import perplexities

    site = lm.arch.mlp_site_names()[0] + ":input"
    acts = collect_activations(lm, [huge, "thank"], [site], max_length=16, progress=False)
    assert acts[site].shape == (2, 64)
    assert perplexities(lm, [huge], max_length=16).shape == (1,)  # never tokenized whole
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(huge + "\nthank you\n")
    result = run("evaluate", "--model", tiny_folder, *EVAL, "--prompts", prompts,
                 "--out", tmp_path / "run")  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "run" / "continuations.jsonl").read_text().splitlines()
    assert max(len(json.loads(r)["prompt"]) for r in rows) < 128 * 32


# -- 6. the wrong-model check ---------------------------------------------------------------------
def _eigenshift_artifact(lm, folder: Path) -> Path:
    d, k = lm.arch.hidden_size, 2
    tensors = {"v_k": torch.linalg.qr(torch.randn(d, k))[0], "indices": torch.arange(k),
               **{n: torch.rand(d) for n in ("singular_values", "deltas", "scores")},
               "clean_mean": torch.zeros(d)}  # fmt: skip
    params = {"recipe": "paper", "contrast": "first", "score": "delta", "dampen": "zero",
              "k": k, "alpha": 0.0}  # fmt: skip
    EigenShift(tensors, EigenShift.new_meta(lm, params, [lm.arch.unembedding])).save(folder)
    return folder


def _tamper(folder: Path, change) -> None:
    meta = json.loads((folder / "intervention.json").read_text())
    change(meta)
    (folder / "intervention.json").write_text(json.dumps(meta))


def test_6_artifacts_without_hashes_or_with_wrong_tensors_are_refused(tmp_path):
    lm = make_lm("llama")
    good = _eigenshift_artifact(lm, tmp_path / "good")
    with load_intervention(good, lm).applied(lm):
        pass
    cases = {
        "no hashes": (lambda m: m.update(weight_hashes={}), "weight_hashes"),
        "other module": (lambda m: m.update(weight_hashes={
            "model.norm": lm.weight_hash("model.norm")}), "records no hash"),
    }
    for name, (change, message) in cases.items():
        folder = _eigenshift_artifact(lm, tmp_path / name)
        _tamper(folder, change)
        with pytest.raises(ArtifactError, match=message), load_intervention(folder, lm).applied(lm):
            pass
    folder = _eigenshift_artifact(lm, tmp_path / "int-vk")
    tensors = safetensors.torch.load_file(folder / "intervention.safetensors")
    tensors["v_k"] = tensors["v_k"].long()
    safetensors.torch.save_file(tensors, folder / "intervention.safetensors")
    with pytest.raises(ArtifactError, match="'v_k' must be floating point"):
        load_intervention(folder)
    other = make_lm("llama", seed=3)
    with pytest.raises(ArtifactError, match="fitted on"):
        load_intervention(good, other)


# -- 7. one line, never a traceback --------------------------------------------------------------
@pytest.mark.parametrize("kind", ["prompts", "labelled", "clean"])
@pytest.mark.parametrize("line", ["[1, 2]", '"text"', "{bad json"])
def test_7_jsonl_lines_that_are_not_objects_name_their_line(kind, line, tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "fine", "label": 1}\n' + line + "\n")
    assert "data.jsonl:2:" in refused(run("data", kind, path))


def test_7_score_files_that_are_not_text(tmp_path):
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"fine\n\xff\xfe\x00\x81 bytes")
    assert "bin.txt:2: not UTF-8" in refused(run("score", "--file", binary))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert "holds no text" in refused(run("score", "--file", empty))


@pytest.mark.parametrize("command", [("fit", "identity"), ("locate", "neurons"), ("export",)])
def test_7_unwritable_out_is_refused_before_any_work(command, tmp_path):
    # The model does not exist: only the --out check, done first, can be what refuses.
    extra = ("--intervention", tmp_path) if command == ("export",) else ()
    line = refused(run(*command, "--model", tmp_path / "absent", *extra, "--out", "/proc/x/out"))
    assert "cannot write to /proc/x" in line


def test_7_device_and_out_errors(tiny_folder, tmp_path):
    assert "unknown device 'banana'" in refused(run("info", "--model", tiny_folder,
                                                    "--device", "banana"))  # fmt: skip
    (tmp_path / "file").write_text("x")
    assert "is a file" in refused(run("fit", "identity", "--out", tmp_path / "file"))


def _artifact_cases(lm, tmp_path):
    def string_alpha(m):
        m["params"]["alpha"] = "lots"

    def other_method(m):
        m["method"] = "steer"

    yield "string alpha", string_alpha, "alpha"
    yield "other method", other_method, "'steer' artifact"
    yield "list params", lambda m: m.update(params=[1]), "'params' is list"


def test_7_tampered_artifacts_are_one_line_everywhere(tiny_folder, tmp_path):
    from eigenshift import load_model

    lm = load_model(tiny_folder)
    folders = {}
    for name, change, message in _artifact_cases(lm, tmp_path):
        folder = _eigenshift_artifact(lm, tmp_path / name.replace(" ", "-"))
        _tamper(folder, change)
        folders[folder] = message
    bad_utf8 = _eigenshift_artifact(lm, tmp_path / "bad-utf8")
    (bad_utf8 / "intervention.json").write_bytes(b'{"method": "\xff"}')
    folders[bad_utf8] = "not UTF-8"
    no_tensors = _eigenshift_artifact(lm, tmp_path / "no-tensors")
    (no_tensors / "intervention.safetensors").unlink()
    folders[no_tensors] = "cannot read"
    shaped = _eigenshift_artifact(lm, tmp_path / "shape")
    tensors = safetensors.torch.load_file(shaped / "intervention.safetensors")
    tensors["clean_mean"] = torch.zeros(5)
    safetensors.torch.save_file(tensors, shaped / "intervention.safetensors")
    folders[shaped] = "'clean_mean' must be"
    for folder, message in folders.items():
        with pytest.raises(ArtifactError, match=message):
            Intervention.load(folder, lm)
        line = refused(run("evaluate", "--model", tiny_folder, *EVAL, "--intervention", folder,
                           "--out", tmp_path / "runs" / folder.name))  # fmt: skip
        assert message.strip("'") in line
        line = refused(run("sweep", "--model", tiny_folder, *EVAL, "--with", folder,
                           "--out", tmp_path / "sweeps" / folder.name))  # fmt: skip
        assert message.strip("'") in line


def test_7_damaged_run_folders_are_one_line(tiny_folder, tmp_path):
    out = tmp_path / "run"
    assert run("evaluate", "--model", tiny_folder, *EVAL, "--out", out).exit_code == 0
    store = out / "continuations.jsonl"
    good = store.read_text()
    first = json.loads(good.splitlines()[0])
    for bad, message in (("[1]", "must be a JSON object"),
                         (json.dumps({k: v for k, v in first.items() if k != "score"}),
                          "no 'score'")):  # fmt: skip
        store.write_text(good + bad + "\n")
        line = refused(run("evaluate", "--model", tiny_folder, *EVAL, "--out", out))
        assert f"continuations.jsonl:{len(good.splitlines()) + 1}" in line and message in line
        assert message in refused(run("report", out))
    store.write_text(good)
    (out / "metrics.json").write_text('{"methods": [')
    assert "metrics.json:1: not valid JSON" in refused(run("report", out))
    (out / "metrics.json").write_text('{"methods": []}')
    assert "not an evaluation's metrics" in refused(run("report", out))


def test_7_malformed_tokenizer_pickle_state_is_a_scorer_error(tmp_path, monkeypatch):
    import pickle
    import types

    from eigenshift.scoring.bilstm import KerasWordTokenizer

    keras = types.ModuleType("keras_preprocessing.text")

    class Tokenizer:  # pickled under keras' name, as the real tokenizer file is
        pass

    Tokenizer.__module__, Tokenizer.__qualname__ = keras.__name__, "Tokenizer"
    keras.Tokenizer = Tokenizer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keras_preprocessing", types.ModuleType("keras_preprocessing"))
    monkeypatch.setitem(sys.modules, keras.__name__, keras)

    class Payload:
        def __init__(self, state):
            self.state = state

        def __reduce__(self):
            return (Tokenizer, (), self.state)

    fields = {"word_index": {"a": 1}, "num_words": None, "lower": True, "split": " ",
              "filters": "!"}  # fmt: skip
    cases = {"not a dict": 1, "no filters": {k: v for k, v in fields.items() if k != "filters"},
             "string index": {**fields, "word_index": {"a": "one"}},
             "empty split": {**fields, "split": ""}}  # fmt: skip
    for name, state in cases.items():
        path = tmp_path / f"{name}.pickle"
        path.write_bytes(pickle.dumps(Payload(state)))
        with pytest.raises(ScorerError):
            KerasWordTokenizer(path)
    path.write_bytes(pickle.dumps(Payload(fields)))
    assert KerasWordTokenizer(path).ids("a b a") == [1, 1]  # a well-formed state still loads


# -- 8. leftovers after kill -9 -------------------------------------------------------------------
def test_8_a_folder_write_killed_with_sigkill_leaves_nothing_behind(tmp_path):
    target = tmp_path / "export"
    target.mkdir()
    (target / "eigenshift-export.json").write_text("{}")  # an earlier export: ours
    writer = _subprocess(f"""
        import time
        from pathlib import Path
        from eigenshift.core.io import atomic_folder
        with atomic_folder(Path({str(target)!r}), marker="eigenshift-export.json") as tmp:
            (tmp / "weights.bin").write_bytes(b"0" * 1_000_000)
            print("writing", flush=True)
            time.sleep(60)
    """)
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".export.tmp-")]
    assert leftovers  # the killed writer's temporary folder
    prepare_out(target, "eigenshift-export.json")  # what the next export or fit runs first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    assert (target / "eigenshift-export.json").exists()


def test_8_an_old_folder_moved_aside_by_a_killed_writer_is_put_back(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    aside = tmp_path / f".art.old-{dead.pid}-x1" / "art"
    aside.mkdir(parents=True)
    (aside / "intervention.json").write_text("{}")
    clean_leftovers(tmp_path, "art")
    assert (tmp_path / "art" / "intervention.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["art"]


# -- 9. smaller ones ------------------------------------------------------------------------------
def test_9_a_torn_line_is_dropped_only_at_the_end(tmp_path):
    path = tmp_path / "continuations.jsonl"
    row = {"method": "original", "prompt_index": 0, "sample_index": 0, "prompt": "p",
           "continuation": "c", "token_ids": [1], "score": 0.1, "judge_score": None,
           "continuation_nll": 1.0, "degenerate": None}  # fmt: skip
    lines = [json.dumps({**row, "prompt_index": i}) for i in range(3)]
    path.write_text("\n".join(lines) + '\n{"method": "orig')  # a crash mid-append
    assert len(ContinuationStore(path).rows) == 3
    assert path.read_text().count("\n") == 3  # rewritten without the torn tail
    path.write_text(lines[0] + '\n{"method": "orig\n' + lines[1] + "\n")
    with pytest.raises(InputError, match=r"continuations.jsonl:2: not valid JSON"):
        ContinuationStore(path)


def test_9_settings_are_checked_at_once_and_never_capped_silently(tiny_folder, tmp_path):
    from eigenshift.interventions import EigenShiftConfig

    with pytest.raises(InputError, match="k must be <= 32"):
        EigenShiftConfig(k=100_000).n_directions(32)
    absent = tmp_path / "absent"
    assert "finite" in refused(run("sweep", "--model", absent, "--k", 1, "--alpha", "nan",
                                   "--out", tmp_path / "s"))  # fmt: skip
    assert "--min-toxic" in refused(run("fit", "eigenshift", "--model", absent, "--min-toxic", 0,
                                        "--out", tmp_path / "e"))  # fmt: skip
    lm = make_lm("llama")
    ScaleUnembeddingInput.from_scale(lm, torch.ones(lm.arch.hidden_size)).save(tmp_path / "id")
    line = refused(run("sweep", "--model", tiny_folder, *EVAL, "--with", tmp_path / "id",
                       "--strength", 0.5, "--out", tmp_path / "sw"))  # fmt: skip
    assert "--strength applies to methods with a strength" in line


# -- 10. feel -------------------------------------------------------------------------------------
def test_10_version_and_help_start_without_torch():
    code = ("import sys; sys.argv = ['eigenshift', '--version']\nfrom eigenshift.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": SRC}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip().splitlines() == ["eigenshift, version " + _version(), "[]"]


def _version() -> str:
    from eigenshift import __version__

    return __version__


def test_10_generation_prints_no_deprecation_and_reports_progress_per_batch():
    lm = make_lm("llama")
    moved: list[int] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a FutureWarning (past_key_values) would raise here
        generate(lm, PROMPTS[:3], SamplingConfig(max_new_tokens=3, samples=2, batch_size=2),
                 progress=False, advance=moved.append)  # fmt: skip
    assert moved == [2, 2, 2]


def test_10_help_texts_reports_and_permissions(tiny_folder, tmp_path):
    helps = run("evaluate", "--help").output
    for option in ("--top-p", "--temperature", "--seed", "--threshold", "--max-prompt-tokens"):
        text = helps.split(option, 1)[1].split("\n  --", 1)[0]
        assert len(text.split()) >= 4, (option, text)
    assert "five minutes" in run("demo", "--help").output
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("<script>alert(1)</script> you are a\n<b>bold</b> thank\n")
    out = tmp_path / "run"
    result = run("evaluate", "--model", tiny_folder, *EVAL, "--prompts", prompts, "--out", out)
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "<script>" not in report and "<b>" not in report and "&lt;script&gt;" in report
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir() if p.is_file()
             and p.name not in (RunFolder.LOCK,)}  # fmt: skip
    assert modes["metrics.json"] == modes["report.md"] == FILE_MODE, modes


def test_10_atomic_writes_get_the_usual_permissions(tmp_path):
    with atomic_folder(tmp_path / "folder") as tmp:
        (tmp / "x").write_text("x")
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o777 & ~_umask()
    with temporary_file(tmp_path, "tensors") as tmp:  # how neuron scores are written
        tmp.write_bytes(b"x")
        os.replace(tmp, tmp_path / "tensors")
    assert (tmp_path / "tensors").stat().st_mode & 0o777 == FILE_MODE == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- issue 24, item 1: nothing written through a symlink -------------------------------------------
ROW = {"method": "original", "prompt_index": 0, "sample_index": 0, "prompt": "p",
       "continuation": "c", "token_ids": [1], "score": 0.1, "judge_score": None,
       "continuation_nll": None, "degenerate": ""}  # fmt: skip


def test_24_1_run_files_are_never_written_through_a_symlink_or_into_a_fifo(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("the user's own file\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / RunFolder.MARKER).write_text("eigenshift run folder\n")
    (run / RunFolder.LOCK).symlink_to(victim)
    with pytest.raises(InputError, match=r"\.lock is a symlink"), RunFolder(run).lock():
        pass
    assert victim.read_text() == "the user's own file\n"  # not truncated, no pid written
    (run / RunFolder.LOCK).unlink()
    os.mkfifo(run / RunFolder.LOCK)  # would block an open for writing
    with pytest.raises(InputError, match="not a regular file"), RunFolder(run).lock():
        pass
    (run / RunFolder.LOCK).unlink()

    store_path = run / "continuations.jsonl"
    store_path.symlink_to(victim)
    with pytest.raises(InputError, match="is a symlink"):
        ContinuationStore(store_path).append([ROW])
    assert victim.read_text() == "the user's own file\n"
    store_path.unlink()
    ContinuationStore(store_path).append([ROW])  # a regular file is written as before
    assert json.loads(store_path.read_text())["continuation"] == "c"
    with RunFolder(run).lock():
        assert (run / RunFolder.LOCK).read_text().startswith("pid ")


# -- issue 24, item 5 (seeds): a refused setting is refused before any file is written ----------
@pytest.mark.parametrize("command, option", [("evaluate", "--seed"), ("evaluate", "--prompt-seed"),
                                             ("tune", "--seed")])  # fmt: skip
def test_24_5_a_negative_seed_is_refused_before_the_run_folder_exists(tiny_folder, tmp_path,
                                                                      command, option):
    line = refused(run(command, "--model", tiny_folder, *EVAL, option, -1,
                       "--out", tmp_path / "run"))  # fmt: skip
    assert (option in line or option.lstrip("-").replace("-", "_") in line) and "-1" in line
    assert not (tmp_path / "run").exists()  # a rerun with --seed 0 is not "other settings"


def test_24_8_a_perplexity_length_that_scores_nothing_is_refused(tiny_folder, tmp_path):
    line = refused(run("evaluate", "--model", tiny_folder, *EVAL, "--ppl-max-length", 1,
                       "--out", tmp_path / "run"))  # fmt: skip
    assert "--ppl-max-length" in line and not (tmp_path / "run").exists()


def test_24_1_every_name_a_run_folder_writes_or_a_figure_is_saved_to_is_never_followed(tmp_path):
    import matplotlib.pyplot as plt

    from eigenshift.core.io import open_owned, save_figure

    victim = tmp_path / "precious.txt"
    victim.write_text("the user's own file\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / RunFolder.MARKER).write_text("eigenshift run folder\n")
    for name in (RunFolder.REPORT_HTML, RunFolder.TRADEOFF, RunFolder.METRICS):
        (run / name).symlink_to(victim)
        with pytest.raises(InputError, match=f"{name} is a symlink"), RunFolder(run).lock():
            pass
        (run / name).unlink()
    # A figure (matplotlib opens the path itself) replaces a symlink instead of writing through.
    (run / "figure.png").symlink_to(victim)
    save_figure(plt.figure(), run / "figure.png")
    assert victim.read_text() == "the user's own file\n"
    assert not (run / "figure.png").is_symlink() and (run / "figure.png").read_bytes()[:4] == \
        b"\x89PNG"  # fmt: skip
    # The vLLM worker's log is opened afresh, never through a symlink.
    (run / "worker.log").symlink_to(victim)
    with pytest.raises(InputError, match="is a symlink"):
        open_owned(run / "worker.log", "w")
    (run / "worker.log").unlink()
    (run / "worker.log").write_text("an old log\n")
    with open_owned(run / "worker.log", "w") as handle:
        handle.write("new\n")
    assert (run / "worker.log").read_text() == "new\n" and victim.read_text().startswith("the")


def test_24_3_explain_never_writes_into_a_folder_it_did_not_write(tmp_path):
    from eigenshift.report.explain import write_explanation

    lm = make_lm("llama")
    artifact = _eigenshift_artifact(lm, tmp_path / "artifact")
    iv = load_intervention(artifact, lm)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "explain.md").write_text("my notes\n")
    with pytest.raises(InputError, match="not a run folder eigenshift wrote"):
        write_explanation(lm, iv, foreign)
    assert (foreign / "explain.md").read_text() == "my notes\n"
    assert sorted(p.name for p in foreign.iterdir()) == ["explain.md"]
    # Its own folders are written (twice: a rerun replaces its own files), and a new one.
    for out in (artifact, artifact, tmp_path / "new", tmp_path / "new"):
        paths = write_explanation(lm, iv, out)
        assert paths["markdown"].read_text().startswith("# EigenShift directions")
    # An intervention folder explained stays one: no lock or run marker left, so evaluate
    # still refuses to write its run files there.
    assert not (artifact / RunFolder.MARKER).exists() and not (artifact / RunFolder.LOCK).exists()
    with pytest.raises(InputError, match="not a run folder"), RunFolder(artifact).lock():
        pass


def test_24_4_a_prompt_or_clean_text_file_edited_in_place_is_never_reported_as_before(
    tiny_folder, tmp_path
):
    prompts, clean = tmp_path / "prompts.txt", tmp_path / "clean.txt"
    prompts.write_text("the weather today is\nmy neighbour said\n")
    clean.write_text("A quiet river runs through the valley.\nThe library opens at nine.\n"
                     "Bread rises in a warm kitchen.\n")  # fmt: skip
    args = ("evaluate", "--model", tiny_folder, *EVAL, "--prompts", prompts, "--clean-text",
            clean, "--out", tmp_path / "run")  # fmt: skip
    assert run(*args).exit_code == 0
    rows = (tmp_path / "run" / "continuations.jsonl").read_text()
    assert run(*args).exit_code == 0  # unchanged: resumed, nothing generated again
    assert (tmp_path / "run" / "continuations.jsonl").read_text() == rows
    prompts.write_text("you are such a\nshut up and\n")  # same path, other prompts
    assert "(prompts_sha256)" in refused(run(*args))
    prompts.write_text("the weather today is\nmy neighbour said\n")
    clean.write_text("Completely different text.\nAbout other things.\nEntirely.\n")
    assert "(clean_text_sha256)" in refused(run(*args))
    assert (tmp_path / "run" / "continuations.jsonl").read_text() == rows
    # A run begun before the hashes were recorded cannot be checked: said so, not resumed.
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    del record["settings"]["prompts_sha256"]
    (tmp_path / "run" / "run.json").write_text(json.dumps(record))
    assert "prompts_sha256: not recorded" in refused(run(*args))


def test_24_5_a_chat_template_lm_eval_or_vllm_python_that_is_not_there_is_refused_first(
    tiny_folder, tmp_path, monkeypatch
):
    out = tmp_path / "run"
    # The tiny tokenizer has no chat template: refused before run.json, so --chat-template
    # none then resumes nothing and is no "other settings".
    line = refused(run("evaluate", "--model", tiny_folder, *EVAL, "--chat-template", "user",
                       "--out", out))  # fmt: skip
    assert "no chat template" in line and not out.exists()
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    text = tmp_path / "notes.txt"
    text.write_text("not a program\n")
    for python, why in ((script, "not a python interpreter"), (text, "not a python interpreter"),
                        (Path(sys.executable), "has no vllm package")):  # fmt: skip
        line = refused(run("evaluate", "--model", tiny_folder, *EVAL, "--engine", "vllm",
                           "--vllm-python", python, "--out", out))  # fmt: skip
        assert why in line and not out.exists()
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # as if lm-evaluation-harness were absent
    line = refused(run("evaluate", "--model", tiny_folder, *EVAL, "--capability", 4,
                       "--out", out))  # fmt: skip
    assert "lm-evaluation-harness" in line and not out.exists()
    assert run("evaluate", "--model", tiny_folder, *EVAL, "--out", out).exit_code == 0


def test_24_7_a_fifo_where_a_file_is_read_is_refused_instead_of_hanging(tiny_folder, tmp_path):
    import shutil

    lm = make_lm("llama")
    artifact = _eigenshift_artifact(lm, tmp_path / "artifact")
    (artifact / "intervention.safetensors").unlink()
    os.mkfifo(artifact / "intervention.safetensors")  # opened for reading, it waits for a writer
    line = refused(run("evaluate", "--model", tiny_folder, *EVAL, "--intervention", artifact,
                       "--out", tmp_path / "run"))  # fmt: skip
    assert "intervention.safetensors is not a regular file" in line
    with pytest.raises(ArtifactError, match="not a regular file"):
        load_intervention(artifact)
    fifo = tmp_path / "prompts.jsonl"
    os.mkfifo(fifo)  # item 9: it was taken for a Hugging Face dataset id
    line = refused(run("evaluate", "--model", tiny_folder, *EVAL, "--prompts", fifo,
                       "--out", tmp_path / "run"))  # fmt: skip
    assert "prompts.jsonl is not a regular file" in line and "dataset" not in line
    model = tmp_path / "model"
    shutil.copytree(tiny_folder, model)
    (model / "config.json").unlink()
    os.mkfifo(model / "config.json")
    line = refused(run("info", "--model", model))
    assert "config.json is not a regular file" in line
    run_folder = tmp_path / "old-run"
    run_folder.mkdir()
    (run_folder / RunFolder.MARKER).write_text("eigenshift run folder\n")
    os.mkfifo(run_folder / RunFolder.METRICS)
    assert "not a regular file" in refused(run("report", run_folder))


def test_24_8_clean_texts_with_no_token_to_score_are_refused_or_left_out(tiny_folder, tmp_path):
    clean = tmp_path / "clean.txt"
    clean.write_text("a\nb\nc\n")  # one token each: nothing after the first token to score
    args = ("evaluate", "--model", tiny_folder, *EVAL, "--clean-text", clean)
    line = refused(run(*args, "--out", tmp_path / "run"))
    assert "has two tokens" in line and not (tmp_path / "run").exists()
    clean.write_text("a\nThe library opens at nine every morning.\nc\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning of an empty mean
        result = run(*args, "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert all(np.isfinite(r["perplexity"]) for r in metrics["methods"])


def _centered_export(tmp_path: Path) -> Path:
    from eigenshift.export.hf import export_model

    lm = make_lm("llama")
    d, k = lm.arch.hidden_size, 2
    tensors = {"v_k": torch.linalg.qr(torch.randn(d, k))[0], "indices": torch.arange(k),
               **{n: torch.rand(d) for n in ("singular_values", "deltas", "scores")},
               "clean_mean": torch.linspace(-1.0, 1.0, d)}  # fmt: skip
    params = {"recipe": "matched", "contrast": "matched", "score": "standardized",
              "dampen": "centered", "k": k, "alpha": 0.0}  # fmt: skip
    iv = EigenShift(tensors, EigenShift.new_meta(lm, params, [lm.arch.unembedding]))
    return export_model(lm, iv, tmp_path / "exported")


@pytest.mark.parametrize("bias, why", [
    ([[[10**9], 0.5]], "token id"), ([[["7"], 0.5]], "token id"), ([[[3], "high"]], "bias of"),
    ([[[3], float("nan")]], "bias of"), ([[[3], 1e300]], "bias of"), ([[3, 0.5]], "not a logit"),
    ([[[3], 0.5], [[3], 0.1]], "twice"),
])  # fmt: skip
def test_24_6_an_exports_logit_bias_is_checked_before_it_is_used(tmp_path, bias, why):
    from eigenshift import load_model
    from eigenshift.engines.vllm_engine import _read_logit_bias

    folder = _centered_export(tmp_path)
    assert load_model(str(folder)).logit_bias_added  # as written: read back
    config = json.loads((folder / "generation_config.json").read_text())
    config["sequence_bias"] = bias
    (folder / "generation_config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match=why):
        load_model(str(folder))
    # The side file vLLM requests carry: a map of token id to bias, checked the same way.
    vocab = make_lm("llama").arch.vocab_size
    assert len(_read_logit_bias(folder, vocab) or {}) == vocab
    for bad in ({str(vocab): 0.5}, {"-1": 0.5}, {"x": 0.5}, {"3": None}, {"3": float("inf")},
                [1]):  # fmt: skip
        (folder / "logit_bias.json").write_text(json.dumps(bad))
        with pytest.raises(InputError, match=r"logit_bias\.json"):
            _read_logit_bias(folder, vocab)


def test_24_6_artifacts_are_checked_against_what_a_fit_writes(tmp_path):
    lm = make_lm("llama")
    huge = _eigenshift_artifact(lm, tmp_path / "huge-scores")
    tensors = safetensors.torch.load_file(huge / "intervention.safetensors")
    tensors["scores"][0] = 1e9  # |delta| / spread of a direction that barely varies: a fit's
    safetensors.torch.save_file(tensors, huge / "intervention.safetensors")
    load_intervention(huge, lm)
    artifact = _eigenshift_artifact(lm, tmp_path / "artifact")
    _tamper(artifact, lambda m: m["params"].update(dampen="../../etc"))
    with pytest.raises(ArtifactError, match="dampen must be one of"):
        load_intervention(artifact, lm)
    for scale, why in ((1e20, "beyond"), (3.0, "orthonormal")):
        artifact = _eigenshift_artifact(lm, tmp_path / f"scaled-{scale:g}")
        path = artifact / "intervention.safetensors"
        tensors = safetensors.torch.load_file(path)
        tensors["v_k"] = tensors["v_k"] * scale  # finite, but no fit writes it
        safetensors.torch.save_file(tensors, path)
        with pytest.raises(ArtifactError, match=why):
            load_intervention(artifact, lm)


def test_24_6_deep_json_scores_out_of_range_and_damaged_metrics_are_one_line(
    tiny_folder, tmp_path
):
    from eigenshift.core.io import read_json

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(InputError, match="nested too deeply"):
        read_json(deep)
    artifact = _eigenshift_artifact(make_lm("llama"), tmp_path / "artifact")
    (artifact / "intervention.json").write_text("[" * 200_000 + "]" * 200_000)
    assert "nested too deeply" in refused(run("evaluate", "--model", tiny_folder, *EVAL,
                                              "--intervention", artifact, "--out",
                                              tmp_path / "r0"))  # fmt: skip
    out = tmp_path / "run"
    assert run("evaluate", "--model", tiny_folder, *EVAL, "--out", out).exit_code == 0
    rows = (out / "continuations.jsonl").read_text()
    metrics = (out / "metrics.json").read_text()
    for score in ("NaN", "7.5", "-0.1"):
        first = json.loads(rows.split("\n")[0])
        first["score"] = {"NaN": float("nan"), "7.5": 7.5, "-0.1": -0.1}[score]
        (out / "continuations.jsonl").write_text(json.dumps(first) + "\n" +
                                                 rows.split("\n", 1)[1])  # fmt: skip
        line = refused(run("report", out))
        assert "continuations.jsonl:1" in line and "probability" in line
    (out / "continuations.jsonl").write_text(rows)
    for change in (lambda m: m["methods"][0].pop("intervals"),
                   lambda m: m["methods"][0].update(toxic_fraction="lots"),
                   lambda m: m.update(threshold=None),
                   lambda m: m["methods"][0].update(piqa_accuracy=0.5)):  # no change, no interval
        damaged = json.loads(metrics)
        change(damaged)
        (out / "metrics.json").write_text(json.dumps(damaged))
        assert "is not an evaluation's metrics" in refused(run("report", out))
    (out / "metrics.json").write_text(metrics)
    assert run("report", out).exit_code == 0


def test_24_6_a_torch_pickle_as_model_or_scorer_is_one_line_without_unsafe_advice(
    tiny_folder, tmp_path
):
    import shutil

    class Payload:
        def __reduce__(self):
            return (print, ("this code ran",))

    for kind in ("model", "scorer"):
        folder = tmp_path / kind
        shutil.copytree(tiny_folder, folder)
        (folder / "model.safetensors").unlink()
        torch.save({"model.embed_tokens.weight": Payload()}, folder / "pytorch_model.bin")
    line = refused(run("info", "--model", tmp_path / "model"))
    assert "refuses to load safely" in line and "weights_only" not in line
    line = refused(run("evaluate", "--model", tiny_folder, *EVAL, "--scorer",
                       tmp_path / "scorer", "--out", tmp_path / "run"))  # fmt: skip
    assert "refuses to load safely" in line and "weights_only" not in line


def test_24_9_written_files_follow_the_umask_and_rows_are_never_dropped_or_stringified(
    tiny_folder, tmp_path
):
    from eigenshift.data import load_clean_texts, load_labelled, load_prompts
    from eigenshift.export.hf import export_model

    lm = make_lm("llama")
    artifact = _eigenshift_artifact(lm, tmp_path / "artifact")
    exported = export_model(lm, load_intervention(artifact, lm), tmp_path / "exported")
    for folder in (artifact, exported):
        modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
        assert set(modes.values()) == {FILE_MODE}, modes  # safetensors wrote 0600
    nested = tmp_path / "rtp.jsonl"  # RealToxicityPrompts rows; an empty text is skipped
    nested.write_text('{"prompt": {"text": "one", "toxicity": 0.1}}\n{"prompt": {"text": null}}\n')
    assert load_prompts(str(nested)).texts == ["one"]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"prompt": "one"}\n{"text": "two"}\n')
    with pytest.raises(DataError, match=r"mixed\.jsonl:2: no 'prompt'"):
        load_prompts(str(mixed))
    listed = tmp_path / "listed.jsonl"
    listed.write_text('{"text": "one", "label": 1}\n{"text": ["two", "three"], "label": 0}\n')
    with pytest.raises(DataError, match=r"listed\.jsonl:2: 'text' is a list"):
        load_clean_texts(str(listed))
    with pytest.raises(DataError, match=r"listed\.jsonl:2: 'text' is a list"):
        load_labelled(str(listed))
    # A command refused after its --out was checked leaves no folder behind.
    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "".join(f"bad {i},1\ngood {i},0\n" for i in range(4)))
    line = refused(run("locate", "neurons", "--model", tiny_folder, "--data", data,
                       "--sites", "x.*", "--out", tmp_path / "new" / "n"))  # fmt: skip
    assert "matches no module" in line and not (tmp_path / "new").exists()


def test_24_3_locate_never_writes_into_a_folder_it_did_not_write(tiny_folder, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "".join(f"you idiot {i},1\nthe fox {i},0\n" for i in range(6)))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "layers.png").write_text("my figure")
    for kind in ("neurons", "layers"):
        line = refused(run("locate", kind, "--model", tiny_folder, "--data", data,
                           "--out", mine))  # fmt: skip
        assert "not a run folder eigenshift wrote" in line
    assert sorted(p.name for p in mine.iterdir()) == ["layers.png"]
    assert (mine / "layers.png").read_text() == "my figure"
    for _ in range(2):  # its own folder is written again
        result = run("locate", "neurons", "--model", tiny_folder, "--data", data,
                     "--bootstrap", 3, "--out", tmp_path / "n")  # fmt: skip
        assert result.exit_code == 0, result.output
