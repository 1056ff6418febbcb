from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eigenshift.core.errors import DataError
from eigenshift.data import (
    load_clean_texts,
    load_labelled,
    load_prompts,
    stratified_subsample,
)

TOXICN = Path(__file__).resolve().parents[2] / "shared" / "data" / "ToxiCN_1.0.csv"


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_prompts_in_both_rtp_layouts_and_csv(tmp_path):
    nested = _jsonl(
        tmp_path / "rtp.jsonl",
        [
            {"prompt": {"text": "So I told him", "toxicity": 0.7}, "continuation": {"text": "x"}},
            {"prompt": {"text": "Then she", "toxicity": 0.2}},
        ],
    )
    flat = _jsonl(tmp_path / "flat.jsonl", [{"text": "Hello there", "toxicity": 0.9}])
    (tmp_path / "p.csv").write_text("id,prompt\n1,First prompt\n2,\n3,Third one\n")
    prompts = load_prompts(nested)
    assert prompts.texts == ["So I told him", "Then she"] and prompts.prompts[0].toxicity == 0.7
    assert load_prompts(flat).prompts[0].toxicity == pytest.approx(0.9)
    assert load_prompts(str(tmp_path / "p.csv")).texts == ["First prompt", "Third one"]
    assert load_prompts(nested, limit=1).texts == ["So I told him"]


def test_default_assets_load():
    assert len(load_prompts()) == 993
    labelled = load_labelled()
    assert len(labelled) > 6000 and 1000 < labelled.n_toxic < 3000
    assert not any("\\x" in t or "\\n" in t for t in labelled.texts[:500])  # unescaped
    clean = load_clean_texts(limit=10)
    assert len(clean) == 10 and " -- " not in clean.texts[0]


def test_labelled_generic_layouts(tmp_path):
    (tmp_path / "j.csv").write_text(
        "id,comment_text,toxic,obscene\n1,you idiot,1,0\n2,nice,0,0\n3,moron,1,1\n4,hello,0,0\n"
    )
    jig = load_labelled(str(tmp_path / "j.csv"), layout="jigsaw")
    assert jig.texts == ["you idiot", "nice", "moron", "hello"] and jig.labels.tolist() == [
        1,
        0,
        1,
        0,
    ]
    assert load_labelled(str(tmp_path / "j.csv")).labels.tolist() == [1, 0, 1, 0]  # auto columns
    scores = _jsonl(tmp_path / "s.jsonl", [{"body": f"t{i}", "tox": i / 10} for i in range(10)])
    data = load_labelled(scores, text_column="body", label_column="tox", threshold=0.45)
    assert data.labels.tolist() == [0] * 5 + [1] * 5
    yes_no = _jsonl(
        tmp_path / "b.jsonl",
        [
            {"text": "a", "label": "yes"},
            {"text": "b", "label": False},
            {"text": "c", "label": True},
            {"text": "d", "label": "no"},
        ],
    )
    assert load_labelled(yes_no).labels.tolist() == [1, 0, 1, 0]


def test_toxicn_through_the_generic_loader():
    if not TOXICN.exists():
        pytest.skip("shared/data is not beside this checkout")
    data = load_labelled(str(TOXICN), text_column="content", label_column="toxic")
    assert (len(data), data.n_toxic) == (12011, 6461)


def test_labelled_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_labelled(str(tmp_path / "nope.csv"))
    (tmp_path / "empty.csv").write_text("text,label\n")
    with pytest.raises(DataError, match="no rows"):
        load_labelled(str(tmp_path / "empty.csv"))
    (tmp_path / "one.csv").write_text("text,label\na,1\nb,1\nc,1\n")
    with pytest.raises(DataError, match="3 toxic and 0 non-toxic"):
        load_labelled(str(tmp_path / "one.csv"))
    (tmp_path / "cols.csv").write_text("body,y\na,1\n")
    with pytest.raises(DataError, match="none of the columns"):
        load_labelled(str(tmp_path / "cols.csv"))
    with pytest.raises(DataError, match="no column 'txt'"):
        load_labelled(str(tmp_path / "cols.csv"), text_column="txt", label_column="y")
    (tmp_path / "bad.csv").write_text("text,label\na,maybe\n")
    with pytest.raises(DataError, match="neither a number"):
        load_labelled(str(tmp_path / "bad.csv"))
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: not valid JSON"):
        load_prompts(str(tmp_path / "bad.jsonl"))
    with pytest.raises(DataError, match="neither a 'prompt' nor a 'text'"):
        load_prompts(str(tmp_path / "cols.csv"))
    with pytest.raises(DataError, match="could not load Hugging Face dataset"):
        load_clean_texts("nobody-here/no-such-dataset")


def test_clean_text_from_txt(tmp_path):
    (tmp_path / "c.txt").write_text("first line\n\nsecond line\n")
    assert load_clean_texts(str(tmp_path / "c.txt")).texts == ["first line", "second line"]


def test_stratified_subsample_is_seeded_and_keeps_the_ratio():
    labels = np.array([1] * 20 + [0] * 80)
    sub = stratified_subsample(labels, 50, seed=0)
    assert len(sub) == 50 and labels[sub].sum() == 10
    assert np.array_equal(sub, stratified_subsample(labels, 50, seed=0))


def test_25_1_behaviours_are_named_or_read_from_a_file(tmp_path):
    from eigenshift.core.errors import InputError
    from eigenshift.data.behaviour import Behaviour, load_behaviour

    assert load_behaviour("toxicity") == Behaviour()  # the default, as every run had it
    assert load_behaviour().settings()["scorer"] == "default"
    with pytest.raises(InputError, match=r"toxicity, sentiment, stereotypes or a \.json"):
        load_behaviour("sarcasm")
    (tmp_path / "bad.txt").write_text("awful\n")
    spec = tmp_path / "one.json"
    sides = '"unwanted": "sad", "wanted": "glad", "prompts": "bad.txt"'
    spec.write_text('{' + sides + ', "scorer": "vader", "unwanted_texts": "bad.txt", '
                    '"data": "bad.txt", "wanted_texts": "bad.txt"}')
    with pytest.raises(InputError, match="or as both unwanted_texts and wanted_texts"):
        load_behaviour(spec)
    spec.write_text('{' + sides + ', "scorer": "", "data": "bad.txt"}')
    with pytest.raises(InputError, match="'scorer' must be a non-empty text"):
        load_behaviour(spec)
    spec.write_text('{"unwanted": "sad", "wanted": "glad", "prompts": "bad.txt"}')
    with pytest.raises(InputError, match=r"must name scorer, data \(or unwanted_texts"):
        load_behaviour(spec)  # toxicity's scorer and insults data would be silently wrong
    (tmp_path / "scorer").mkdir()
    spec.write_text('{"unwanted": "sad", "wanted": "glad", "prompts": "bad.txt", '
                    '"scorer": "scorer", "data": "bad.txt"}')
    loaded = load_behaviour(spec)
    assert loaded.name == "one" and loaded.prompts == str(tmp_path / "bad.txt")
    assert loaded.scorer == str(tmp_path / "scorer")  # found beside the file
    assert loaded.judge is None  # no judge unless the file names one
