"""Whether a direction means toxicity: the share of the tokens it promotes that are toxic words,
against the same share for random directions of the same part of the spectrum (chance).

A vocabulary token is *eligible* when it starts a word (a leading space, as byte-level BPE's `Ġ`
and SentencePiece's `▁` mark it) and is a word of at least `MIN_LETTERS` letters: the inside of a
word ("ass" in "class"), numbers, punctuation and markup cannot be judged alone. An eligible
token is *toxic* when the scorer, given the word alone, says at least `attribution.ALONE_TOXIC`.
A direction v promotes the tokens whose logits W v raises most; its share is the toxic fraction
of its `top` promoted eligible tokens. Directions have no sign of their own: the caller orients
each one the way toxic states move along it. For the toxic-word basis the share is in-sample
(the basis is fitted to the same judged words): a check that the basis is what it claims, not
evidence on its own; what it removes from generations is measured by evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .attribution import ALONE_TOXIC
from .base import Scorer

MIN_LETTERS = 3
# Words naming who someone is, which toxicity classifiers are known to over-flag (Dixon et al.,
# AIES 2018, "Measuring and Mitigating Unintended Bias in Text Classification"; the identity
# columns of Jigsaw's Civil Comments). Both packaged judges score "gay" above 0.75 on its own.
# They are never counted toxic, so no direction is chosen for erasing mentions of identities.
IDENTITY_TERMS = frozenset((
    "gay", "gays", "lesbian", "lesbians", "bisexual", "bisexuals", "transgender", "transgenders",
    "trans", "queer", "queers", "homosexual", "homosexuals", "heterosexual", "heterosexuals",
    "straight", "lgbt", "lgbtq", "intersex", "nonbinary", "male", "males", "female", "females",
    "man", "men", "woman", "women", "boy", "boys", "girl", "girls", "jew", "jews", "jewish",
    "muslim", "muslims", "islam", "islamic", "christian", "christians", "christianity",
    "catholic", "catholics", "hindu", "hindus", "buddhist", "buddhists", "atheist", "atheists",
    "sikh", "sikhs", "mormon", "mormons", "black", "blacks", "white", "whites", "asian", "asians",
    "african", "africans", "latino", "latinos", "latina", "latinas", "hispanic", "hispanics",
    "arab", "arabs", "indian", "indians", "mexican", "mexicans", "chinese", "japanese",
    "immigrant", "immigrants", "refugee", "refugees", "disabled", "disability", "deaf", "blind",
    "autistic", "elderly", "old", "young"
))  # fmt: skip
TOP_TOKENS = 50  # promoted eligible tokens judged per direction
DRAWS = 2000  # random draws of k band directions behind the chance interval
_CHUNK = 64  # directions whose logits are held at once


@dataclass(frozen=True)
class TokenJudgement:
    """The judge's reading of a vocabulary, token by token (row i of the unembedding)."""

    eligible: torch.Tensor  # (vocab,) bool: a word of MIN_LETTERS+ letters
    toxic: torch.Tensor  # (vocab,) bool: eligible and toxic on its own
    judge: str

    @property
    def base_rate(self) -> float:
        return float(self.toxic.sum()) / max(int(self.eligible.sum()), 1)


def judge_vocabulary(words: Sequence[str], scorer: Scorer, batch: int = 4096) -> TokenJudgement:
    """Judge each token's text alone (`words[i]`: token i's text, a leading space where it starts
    a word, as `vocabulary_words` gives it); each distinct lower-cased word is scored once, and
    identity terms are never toxic (`IDENTITY_TERMS`)."""
    stripped = [w.strip() for w in words]
    eligible = [w[:1].isspace() and x.isalpha() and len(x) >= MIN_LETTERS
                for w, x in zip(words, stripped, strict=True)]  # fmt: skip
    distinct = sorted({w.lower() for w, ok in zip(stripped, eligible, strict=True) if ok})
    scores: dict[str, float] = {}
    for start in range(0, len(distinct), batch):
        chunk = distinct[start : start + batch]
        scores.update(zip(chunk, map(float, scorer.score(chunk)), strict=True))
    toxic = [ok and scores[w.lower()] >= ALONE_TOXIC and w.lower() not in IDENTITY_TERMS
             for w, ok in zip(stripped, eligible, strict=True)]  # fmt: skip
    return TokenJudgement(torch.tensor(eligible, dtype=torch.bool),
                          torch.tensor(toxic, dtype=torch.bool), scorer.name)  # fmt: skip


def vocabulary_words(tokenizer: object, size: int) -> list[str]:
    """The text of each of `size` token ids, with one leading space exactly where the token
    starts a word (rows past the tokenizer's vocabulary: empty). Word starts are read from the
    tokens' own marks: `Ġ`/`▁`/a space (byte-level BPE, SentencePiece), else WordPiece's `##`
    on the inside of a word, else every token starts one."""
    known = min(size, len(tokenizer))  # type: ignore[arg-type]
    ids = list(range(known))
    pieces = [str(t) for t in tokenizer.convert_ids_to_tokens(ids)]  # type: ignore[attr-defined]
    texts = [str(t).strip() for t in tokenizer.batch_decode([[i] for i in ids])]  # type: ignore[attr-defined]
    marked = [p[:1] in ("Ġ", "▁", " ") for p in pieces]
    starts = marked if any(marked) else [not p.startswith("##") for p in pieces]
    words = [(" " if start else "") + text for start, text in zip(starts, texts, strict=True)]
    return words + [""] * max(size - known, 0)


def promoted_shares(
    weight: torch.Tensor, directions: torch.Tensor, judgement: TokenJudgement, top: int = TOP_TOKENS
) -> torch.Tensor:
    """Per column of `directions` (d, m): the toxic share of its `top` promoted eligible tokens."""
    eligible = judgement.eligible.to(weight.device)
    toxic = judgement.toxic.to(weight.device).double()
    top = min(top, int(eligible.sum()))
    shares = []
    for start in range(0, directions.shape[1], _CHUNK):
        block = directions[:, start : start + _CHUNK].to(weight.device, weight.dtype)
        with torch.no_grad():
            logits = (weight @ block).float()
        logits[~eligible] = -math.inf
        chosen = logits.topk(top, dim=0).indices  # (top, columns)
        shares.append(toxic[chosen].mean(0).cpu())
    return torch.cat(shares) if shares else torch.zeros(0, dtype=torch.float64)


def _wilson(hits: float, n: int, z: float = 1.96) -> list[float]:
    if n == 0:
        return [0.0, 0.0]
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


@dataclass(frozen=True)
class TokenShare:
    """The chosen directions' toxic-token share against chance, as stored in intervention.json
    (`asdict`) and read back (`TokenShare(**record)`)."""

    judge: str
    base_rate: float  # toxic share of all eligible vocabulary words
    top: int  # promoted eligible tokens judged per direction
    per_direction: list[float]
    selected: float  # mean over the chosen directions
    selected_interval: list[float]  # Wilson 95% over their k * top judged tokens
    chance: float  # mean over the band's directions
    chance_interval: list[float] | None  # 2.5-97.5 percentiles of the mean of k band draws
    band: str  # where chance is drawn from
    band_directions: int
    band_best: float  # the band's most toxic direction

    @property
    def above_chance(self) -> bool:
        """The chosen directions' interval lies wholly above chance's."""
        chance = self.chance_interval
        return chance is not None and self.selected_interval[0] > chance[1]

    def line(self, unwanted: str = "toxic") -> str:
        """One line for summaries: the share, its interval, chance and the judge, in the words
        of the behaviour's unwanted side."""
        low, high = self.selected_interval
        against = (f"chance {_pct(self.chance)} [{_pct(self.chance_interval[0])}, "
                   f"{_pct(self.chance_interval[1])}]" if self.chance_interval else "no chance")
        return (f"{unwanted} words among each direction's top {self.top} promoted: "
                f"{_pct(self.selected)} [{_pct(low)}, {_pct(high)}] vs {against} ({self.band}; "
                f"judge {self.judge}: {_pct(self.base_rate)} of words {unwanted})")  # fmt: skip


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def share_summary(
    mine: torch.Tensor, pool: torch.Tensor, judgement: TokenJudgement, band: str,
    top: int = TOP_TOKENS, seed: int = 0,
) -> TokenShare:  # fmt: skip
    """The chosen directions' shares (`mine`) against chance: the mean share of k directions
    drawn from the band's (`pool`), DRAWS times."""
    k, pool_ = len(mine), pool.double().numpy()
    if not k or not len(pool_):
        raise ValueError("a token share needs chosen and band directions")
    judged = min(top, int(judgement.eligible.sum()))  # tokens judged per direction
    chance = None  # too few band directions to draw k from
    if len(pool_) >= k:
        rng = np.random.default_rng(seed)
        draws = [pool_[rng.choice(len(pool_), k, replace=False)].mean() for _ in range(DRAWS)]
        chance = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]
    return TokenShare(
        judge=judgement.judge, base_rate=judgement.base_rate, top=judged,
        per_direction=[float(x) for x in mine], selected=float(mine.double().mean()),
        selected_interval=_wilson(round(float(mine.double().sum()) * judged), k * judged),
        chance=float(pool_.mean()), chance_interval=chance, band=band,
        band_directions=len(pool_), band_best=float(pool_.max()),
    )  # fmt: skip


def spectrum_band(indices: Sequence[int], d: int, k: int) -> tuple[int, int]:
    """[lo, hi) of the spectrum around the selected indices, widened on both sides until it
    holds at least max(d // 10, 5 k) directions: where chance is drawn for a singular basis."""
    lo, hi = (min(indices), max(indices) + 1) if len(indices) else (0, 0)
    want = min(d, max(d // 10, 5 * k))
    while hi - lo < want:
        lo, hi = max(lo - 1, 0), min(hi + 1, d)
    return lo, hi
