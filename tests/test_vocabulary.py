"""Whether a direction means toxicity: the vocabulary judged word by word, each direction's share
of toxic words among the tokens it promotes, chance from random band directions, and the figure
in an EigenShift fit's record, all against hand computation."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch
from conftest import fit_es, make_lm
from test_eigenshift import SMALL, LetterScorer

from eigenshift.core.errors import InputError
from eigenshift.scoring.vocabulary import (
    DRAWS,
    TokenJudgement,
    TokenShare,
    _wilson,
    judge_vocabulary,
    promoted_shares,
    share_summary,
    spectrum_band,
    vocabulary_words,
)


class WordScorer:
    name = "words"

    def __init__(self, toxic):
        self.toxic, self.calls = set(toxic), []

    def score(self, texts):
        self.calls.append(list(texts))
        return np.array([0.9 if t in self.toxic else 0.1 for t in texts])


def test_words_are_judged_alone_once_each_and_only_whole_words_count():
    # a leading space marks a word start: "ass" inside "class" is not a word to judge
    words = [" Idiot", " idiot", " ab", " nice", " 123", "", "\n", " stu", "pid", " idiots!",
             "ass"]  # fmt: skip
    scorer = WordScorer({"idiot", "stu", "ass"})
    judged = judge_vocabulary(words, scorer)
    assert judged.eligible.tolist() == [True, True, False, True, False, False, False, True, False,
                                        False, False]  # fmt: skip
    assert judged.toxic.tolist() == [True, True, False, False, False, False, False, True, False,
                                     False, False]  # fmt: skip
    assert sorted(t for call in scorer.calls for t in call) == ["idiot", "nice", "stu"]
    assert judged.base_rate == pytest.approx(3 / 4) and judged.judge == "words"


def test_identity_terms_are_never_counted_toxic_whatever_the_judge_says():
    judged = judge_vocabulary([" gay", " Muslims", " idiot"], WordScorer({"gay", "muslims",
                                                                          "idiot"}))  # fmt: skip
    assert judged.eligible.tolist() == [True, True, True]
    assert judged.toxic.tolist() == [False, False, True]


def test_vocabulary_words_mark_word_starts_and_pad_rows_past_the_tokenizer():
    lm = make_lm("llama")  # a byte-level BPE: "Ġ" starts a word
    n = len(lm.tokenizer)
    words = vocabulary_words(lm.tokenizer, n + 3)
    assert len(words) == n + 3 and words[-3:] == ["", "", ""]
    pieces = lm.tokenizer.convert_ids_to_tokens(list(range(n)))
    for i, (word, piece) in enumerate(zip(words, pieces, strict=False)):
        assert word.strip() == lm.tokenizer.decode([i]).strip()
        assert word.startswith(" ") == piece.startswith("Ġ"), (word, piece)
    assert any(p.startswith("Ġ") for p in pieces) and not all(p.startswith("Ġ") for p in pieces)


def test_wordpiece_and_unmarked_vocabularies_read_their_own_word_starts():
    class Pieces:
        def __init__(self, tokens):
            self.tokens = tokens

        def __len__(self):
            return len(self.tokens)

        def convert_ids_to_tokens(self, ids):
            return [self.tokens[i] for i in ids]

        def batch_decode(self, batch):
            return [self.tokens[i].removeprefix("##") for (i,) in batch]

    assert vocabulary_words(Pieces(["idiot", "##ic", "nice"]), 3) == [" idiot", "ic", " nice"]


def _judgement(toxic, eligible=None):
    toxic = torch.tensor(toxic, dtype=torch.bool)
    eligible = torch.ones_like(toxic) if eligible is None else torch.tensor(eligible)
    return TokenJudgement(eligible, toxic & eligible, "hand")


def test_a_direction_is_judged_by_the_eligible_tokens_it_promotes_most():
    # 6 tokens, d = 2: direction e1 reads column 0, e2 column 1.
    weight = torch.tensor([[5.0, 0.0], [4.0, 1.0], [3.0, 2.0], [-1.0, 3.0], [0.0, 4.0],
                           [9.0, -9.0]])  # fmt: skip
    judged = _judgement([True, False, True, True, False, True],
                        eligible=[True, True, True, True, True, False])  # fmt: skip
    shares = promoted_shares(weight, torch.eye(2), judged, top=2)
    # e1: token 5 (9.0) is not a word; the top two words are 0 (toxic) and 1 (clean): 1/2.
    # e2: tokens 4 (clean) and 3 (toxic): 1/2. -e1: tokens 3 (toxic) and 4 (clean).
    assert shares.tolist() == [0.5, 0.5]
    assert promoted_shares(weight, -torch.eye(2)[:, :1], judged, top=3).tolist() == [
        pytest.approx(2 / 3)]  # tokens 3, 4, 2 (5 ineligible)


def test_wilson_interval_matches_the_textbook_value():
    low, high = _wilson(5, 100)
    assert low == pytest.approx(0.0215, abs=1e-4) and high == pytest.approx(0.1118, abs=1e-4)
    assert _wilson(0, 100)[0] == 0.0


def test_chance_is_drawn_from_the_band_and_above_chance_needs_clear_intervals():
    judged = _judgement([True] * 10 + [False] * 990)
    pool = torch.tensor([0.0] * 90 + [0.02] * 10)
    high = share_summary(torch.tensor([0.6, 0.5]), pool, judged, "band", top=50)
    assert high.top == 50 and high.selected == pytest.approx(0.55)
    assert high.chance == pytest.approx(0.002)
    rng = np.random.default_rng(0)  # the same draws, by hand
    draws = [pool.numpy()[rng.choice(100, 2, replace=False)].mean() for _ in range(DRAWS)]
    assert high.chance_interval == [pytest.approx(np.percentile(draws, 2.5)),
                                    pytest.approx(np.percentile(draws, 97.5))]  # fmt: skip
    assert high.selected_interval == pytest.approx(_wilson(55, 100))
    assert high.above_chance and high.band_best == pytest.approx(0.02)
    low = share_summary(torch.tensor([0.02, 0.0]), pool, judged, "band", top=50)
    assert not low.above_chance
    assert TokenShare(**asdict(high)) == high  # what intervention.json keeps reads back
    assert "55.0%" in high.line() and "band" in high.line()


def test_the_band_holds_the_selected_directions_and_widens_to_a_tenth_of_the_spectrum():
    assert spectrum_band([3, 10], 576, 2) == (0, 57)  # widened both ways, then up only
    assert spectrum_band([570, 574], 576, 2) == (519, 576)
    assert spectrum_band([200, 300], 576, 2) == (200, 301)  # already wide enough
    assert spectrum_band([100], 576, 30) == (25, 176)  # at least 5 k


def test_an_eigenshift_fit_records_its_directions_toxic_word_share():
    lm = make_lm("llama")
    fit = fit_es(lm, LetterScorer(), **SMALL)
    edit = fit.intervention()
    share = TokenShare(**edit.meta.stats["token_share"])
    assert share.judge == "letter-o" and len(share.per_direction) == edit.k
    # by hand: the selected directions, oriented by delta, and the words with an "o"
    v = fit.v[:, edit.tensors["indices"]] * torch.sign(fit.delta[edit.tensors["indices"]])
    words = vocabulary_words(lm.tokenizer, lm.unembedding.weight.shape[0])
    eligible = torch.tensor([w.strip().isalpha() and len(w.strip()) >= 3 for w in words])
    toxic = torch.tensor(["o" in w.strip().lower() for w in words]) & eligible
    logits = (lm.unembedding.weight.detach().double() @ v).masked_fill(~eligible[:, None],
                                                                       -torch.inf)  # fmt: skip
    top = min(50, int(eligible.sum()))
    want = toxic[logits.topk(top, dim=0).indices].double().mean(0)
    np.testing.assert_allclose(share.per_direction, want.numpy(), atol=1e-9)
    assert share.line() in edit.describe(lm)


def test_the_toxic_word_basis_solves_the_generalized_eigenproblem():
    import scipy.linalg

    from eigenshift.interventions.eigenshift.decomposition import toxic_word_basis

    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(300, 12, generator=generator, dtype=torch.float64)
    toxic = torch.zeros(300, dtype=torch.bool)
    toxic[::30] = True
    weight[toxic] += 2.0 * torch.linspace(1, 0, 12, dtype=torch.float64)  # a toxic direction
    gains, v = toxic_word_basis(weight, toxic, ridge=1e-3)
    centred = weight - weight.mean(0)
    a = (centred[toxic].T @ centred[toxic] / int(toxic.sum())).numpy()
    b = (centred.T @ centred / 300).numpy()
    b += 1e-3 * np.trace(b) / 12 * np.eye(12)
    want_gains, want_v = scipy.linalg.eigh(a, b)
    want_gains, want_v = want_gains[::-1], want_v[:, ::-1]
    np.testing.assert_allclose(gains.numpy(), np.clip(want_gains, 0, None), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose((v.T @ v).numpy(), np.eye(12), atol=1e-10)  # orthonormal
    assert bool(((centred[toxic].mean(0) @ v) >= 0).all())  # each raises the toxic words
    for k in (1, 3, 6):  # the first k columns span the first k generalized eigenvectors
        q, _ = np.linalg.qr(want_v[:, :k])
        cosines = np.linalg.svd(v[:, :k].numpy().T @ q, compute_uv=False)
        np.testing.assert_allclose(cosines, np.ones(k), atol=1e-8)


def test_eigenshift_on_the_toxic_word_basis_takes_its_first_directions():
    lm = make_lm("llama")
    fit = fit_es(lm, LetterScorer(), **{**SMALL, "recipe": "matched"})  # its basis: toxic-words
    edit = fit.intervention(k=3)
    assert edit.tensors["indices"].tolist() == [0, 1, 2] and edit.params["basis"] == "toxic-words"
    share = TokenShare(**edit.meta.stats["token_share"])
    assert share.band == "200 random directions of h"
    assert share.selected > share.chance  # built to raise the words the judge calls toxic
    assert "halves" not in edit.meta.stats["stability"]
    # a singular fit records what it always did (no basis key), so its digest is unchanged
    singular = fit_es(lm, LetterScorer(), **SMALL).intervention()
    assert "basis" not in singular.params and "basis" not in singular.params["fit_config"]
    from dataclasses import replace

    from eigenshift.interventions import EigenShift, EigenShiftConfig

    judged = fit.states.vocabulary
    none_toxic = replace(judged, toxic=torch.zeros_like(judged.toxic))
    with pytest.raises(InputError, match=r"none of the vocabulary's words toxic.*--basis singular"):
        EigenShift.fit_statistics(lm, EigenShiftConfig(), replace(fit.states,
                                                                  vocabulary=none_toxic))
    with pytest.raises(InputError, match="judgement of the vocabulary"):
        EigenShift.fit_statistics(lm, EigenShiftConfig(basis="toxic-words"),
                                  replace(fit.states, vocabulary=None))  # fmt: skip
