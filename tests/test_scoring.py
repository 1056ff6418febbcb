from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as tf

from eigenshift.core.errors import ScorerError
from eigenshift.scoring import BiLSTMScorer, load_scorer, occlusion, token_pieces
from eigenshift.scoring.bilstm import LABELS, KerasWordTokenizer, RestrictedUnpickler
from eigenshift.scoring.hf import toxic_label_index

REFERENCE = Path(__file__).parent / "data" / "bilstm_reference.json"


@pytest.fixture(scope="module")
def bilstm() -> BiLSTMScorer:
    return BiLSTMScorer()


def test_bilstm_reproduces_the_keras_model(bilstm):
    """Reference: the package's own Keras code under TensorFlow (scripts/bilstm_reference.py)."""
    ref = json.loads(REFERENCE.read_text())
    texts = [row["text"] for row in ref["rows"]]
    expected = np.array([[row["scores"][label] for label in LABELS] for row in ref["rows"]])
    np.testing.assert_allclose(bilstm.scores_all(texts), expected, atol=1e-3)


def test_bilstm_separates_toxic_from_clean(bilstm):
    toxic = ["You are a stupid idiot.", "Shut up, you worthless moron.", "fuck off, loser"]
    clean = [
        "The museum opens at nine.",
        "Thanks for your help with the report.",
        "Rain is expected tomorrow afternoon.",
    ]
    assert (bilstm.score(toxic) > 0.5).all()
    assert (bilstm.score(clean) < 0.2).all()
    assert bilstm.score([]).shape == (0,)


def test_keras_tokenizer_rules(bilstm):
    tok = bilstm.tokenizer
    assert tok.words("Hello, WORLD!!  tabs\there") == ["hello", "world", "tabs", "here"]
    ids = tok.encode(["word " * 150])
    assert ids.shape == (1, 100) and (ids > 0).all()  # kept the last 100
    short = tok.encode(["idiot"])
    assert (short[0, :-1] == 0).all() and short[0, -1] > 0  # padded at the front


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_restricted_unpickler_refuses_other_classes(tmp_path):
    path = tmp_path / "tok.pickle"
    path.write_bytes(pickle.dumps({"word_index": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        RestrictedUnpickler(path.open("rb")).load()
    with pytest.raises(ScorerError, match="cannot read"):
        KerasWordTokenizer(path)


def test_profanity_judge_is_independent_and_sane():
    judge = load_scorer("profanity")
    scores = judge.score(["you fucking idiot", "the committee meets on tuesday"])
    assert scores[0] > 0.5 > scores[1]


def _logits_alone(folder, tok, texts) -> torch.Tensor:
    """The saved classifier's logits for each text run alone (no padding, no batching)."""
    model = tf.BertForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return torch.cat([model(input_ids=torch.tensor([tok(t)["input_ids"]])).logits
                          for t in texts])  # fmt: skip


def test_hf_classifier_scorer_from_a_local_folder(tmp_path):
    from conftest import tiny_bert_config, tiny_tokenizer

    config = tiny_bert_config(
        id2label={0: "neutral", 1: "toxic"}, label2id={"neutral": 0, "toxic": 1}
    )
    torch.manual_seed(0)
    tf.BertForSequenceClassification(config).save_pretrained(tmp_path / "clf")
    tiny_tokenizer().save_pretrained(tmp_path / "clf")
    scorer = load_scorer(str(tmp_path / "clf"))
    texts = ["the quick brown fox", "you are a stupid idiot", "paris"]
    scores = scorer.score(texts)
    assert scores.shape == (3,) and ((scores > 0) & (scores < 1)).all()
    # The reference: the saved classifier's own softmax, each text alone (no padding at all).
    tok = tiny_tokenizer()
    probs = torch.softmax(_logits_alone(tmp_path / "clf", tok, texts), -1)
    np.testing.assert_allclose(scores, probs[:, 1].numpy(), rtol=1e-5, atol=1e-7)
    neutral = load_scorer(str(tmp_path / "clf"), label="neutral").score(texts)
    np.testing.assert_allclose(neutral, probs[:, 0].numpy(), rtol=1e-5, atol=1e-7)
    one_by_one = np.concatenate([scorer.score([t]) for t in texts])
    np.testing.assert_allclose(scores, one_by_one, rtol=1e-5)  # padding never changes a score
    scorer.tokenizer.padding_side = "left"  # as a tokenizer saved after left-padded use has it
    np.testing.assert_allclose(
        scorer.score(["the quick brown fox", "paris"]), one_by_one[[0, 2]], rtol=1e-5
    )
    with pytest.raises(ScorerError, match="no label"):
        load_scorer(str(tmp_path / "clf"), label="spam")
    with pytest.raises(ScorerError, match="does not exist"):
        load_scorer(str(tmp_path / "nothing-here"))

    # One logit: the score is its sigmoid, again against the saved model's own logit.
    torch.manual_seed(1)
    single = tiny_bert_config(id2label={0: "toxic"}, label2id={"toxic": 0})
    tf.BertForSequenceClassification(single).save_pretrained(tmp_path / "one")
    tok.save_pretrained(tmp_path / "one")
    logits = _logits_alone(tmp_path / "one", tok, texts)
    assert logits.shape == (3, 1)
    np.testing.assert_allclose(load_scorer(str(tmp_path / "one")).score(texts),
                               torch.sigmoid(logits[:, 0]).numpy(), rtol=1e-5,
                               atol=1e-7)  # fmt: skip


def test_toxic_label_detection():
    assert toxic_label_index({0: "non-toxic", 1: "toxic"}) == 1
    assert toxic_label_index({0: "TOXIC", 1: "neutral"}) == 0
    assert toxic_label_index({0: "LABEL_0", 1: "LABEL_1"}) == 1
    with pytest.raises(ScorerError):
        toxic_label_index({0: "a", 1: "b", 2: "c"})


class KeywordScorer:
    name = "keyword"

    def score(self, texts):
        return np.array([0.9 if "idiot" in t else 0.1 for t in texts])


def test_occlusion_finds_the_toxic_token():
    result = occlusion(KeywordScorer(), [[" you", " are", " an", " idiot", "."], [" hello"], []])
    assert result[0].top == 3 and result[0].score == 0.9
    assert result[0].drops[3] == pytest.approx(0.8)
    assert result[1].top == 0 and result[2].top == -1


def test_token_pieces_join_to_the_text():
    from conftest import tiny_tokenizer

    tok = tiny_tokenizer()
    ids = tok("you are a stupid idiot")["input_ids"]
    pieces = token_pieces(tok, ids)
    assert len(pieces) == len(ids)
    assert "".join(pieces) == tok.decode(ids)


def test_vader_scores_sentiment_offline_with_its_own_cut_at_one_half():
    from eigenshift.scoring import load_scorer

    negative = load_scorer("vader")
    texts = ["This movie was terrible and boring.", "A wonderful, moving film.",
             "The film is two hours long."]  # fmt: skip
    scores = negative.score(texts)
    assert scores[0] > 0.9 and scores[1] < 0.05  # VADER's compound -0.66 and +0.57
    assert 0 < scores[2] < 0.5  # neutral (compound 0) is not negative at the usual threshold
    positive = load_scorer("vader:positive").score(texts)
    assert positive[1] > 0.9 and positive[0] < 0.05 and positive[2] < 0.5
    assert negative.name == "vader:negative" and negative.score([]).shape == (0,)
    with pytest.raises(ScorerError, match="negative or positive"):
        load_scorer("vader:sideways")
