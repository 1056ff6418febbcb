"""EigenShift (method.md section 3): dampen the right singular directions of the unembedding that
toxic text uses more than clean text.

The fit receives lm_head-input states gathered by the evidence room (`evidence.gather`: labelled
text, the model's own continuations of prompts, or both, all teacher-forced) and is pure maths on
them: it decomposes the unembedding through its Gram matrix, scores every direction, measures how
stable the selection is (`stability.py`), and keeps the per-direction statistics so a sweep or a
tune over k and alpha needs one fit. Three choices are explicit (method.md section 7 says why),
with two presets:

- contrast: clean states from the *first* position (paper) or from the *same positions* as the
  toxic states (matched), so the contrast is not confounded with position;
- score: |delta| (paper, made sign-free) or |delta| / pooled spread (standardized);
- dampen: towards zero, h - (1 - alpha) V_k V_k^T h (paper), or towards the clean mean,
  h - (1 - alpha) V_k V_k^T (h - mu) (centered: adds a constant logit shift, which bakes into a
  head bias and leaves in an export as a logit bias).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Self

import torch

from ...capture.hooks import Site
from ...capture.states import FitStates
from ...core.errors import ArtifactError, InputError
from ...data.behaviour import judged_side
from ...models import LanguageModel
from ...models.architecture import weight_of
from ...models.placement import materialized
from ...scoring.vocabulary import TokenShare, promoted_shares, share_summary, spectrum_band
from ..base import ArtifactMeta, FitInputs, Intervention, Shapes, register
from ..edits import Affine, Edit
from .config import EigenShiftConfig
from .decomposition import right_singular, toxic_word_basis
from .stability import Projections, bootstrap, direction_stats, halves, selection_score
from .tokens import directions

log = logging.getLogger(__name__)
STABILITY_KS = (1, 2, 5, 10, 20)
CHANCE_DIRECTIONS = 200  # random directions behind chance for a basis other than the spectrum


def clean_weights(
    toxic_keys: torch.Tensor, clean_keys: torch.Tensor, clean_positions: torch.Tensor, contrast: str
) -> torch.Tensor:
    """Weights over the clean states summing to 1: first positions only (the paper), or the toxic
    states' mix of (source, position) keys (matched)."""
    if contrast == "first":
        first = min(clean_positions.tolist(), default=0)
        w = (clean_positions == first).double()
    else:
        keys, inverse = torch.unique(torch.cat([toxic_keys, clean_keys]), return_inverse=True)
        t_inv, c_inv = inverse[: len(toxic_keys)], inverse[len(toxic_keys) :]
        toxic_share = torch.bincount(t_inv, minlength=len(keys)).double()
        clean_count = torch.bincount(c_inv, minlength=len(keys)).double()
        per_key = torch.where(clean_count > 0, toxic_share / clean_count.clamp(min=1), 0.0)
        w = per_key[c_inv]
    if w.sum() <= 0:
        raise InputError("no clean states at the positions of the toxic ones; use more prompts "
                         "or more labelled texts")  # fmt: skip
    return w / w.sum()


def keys_of(positions: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    return sources * 1_000_000 + positions


@dataclass
class EigenShiftFit:
    """Everything a fit measured; `intervention(k, alpha)` makes edits without refitting."""

    singular_values: torch.Tensor  # (d,) float64, descending
    v: torch.Tensor  # (d, d) float64, columns = right singular vectors
    delta: torch.Tensor  # (d,) v_i^T (mean toxic - mean clean)
    spread: torch.Tensor  # (d,) pooled standard deviation of the projections
    clean_mean: torch.Tensor  # (d,) mean clean state
    config: EigenShiftConfig
    meta: ArtifactMeta
    states: FitStates | None = field(default=None, repr=False)
    projections: Projections | None = field(default=None, repr=False)
    split_seed: int = 0  # of the evidence's clean draw; the halves and the bootstrap reuse it
    # Per direction (a singular one oriented by delta, a toxic-word one by its toxic words): the
    # toxic share of its top promoted words, when the evidence judged the vocabulary.
    token_shares: torch.Tensor | None = field(default=None, repr=False)
    chance_shares: torch.Tensor | None = field(default=None, repr=False)  # random directions'
    _bootstraps: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def singular(self) -> bool:
        """On the unembedding's singular basis (the paper's), not the toxic-word one."""
        return self.config.choice("basis") == "singular"

    def selection_score(self) -> torch.Tensor:
        if not self.singular:  # the basis is ordered: its first k are taken
            return self.singular_values
        return selection_score(self.delta, self.spread, self.config.choice("score"))

    def bootstrap(self, k: int, indices: torch.Tensor) -> dict[str, Any]:
        """Score intervals and top-k shares of the selected directions (cached per k)."""
        if self.projections is None or not self.config.resamples or not self.singular:
            return {}
        if k not in self._bootstraps:
            self._bootstraps[k] = bootstrap(self.projections, self.config.choice("score"),
                                            indices, k, self.config.resamples,
                                            self.split_seed)  # fmt: skip
        return self._bootstraps[k]

    def intervention(self, k: int | None = None, alpha: float | None = None) -> EigenShift:
        config = replace(self.config, k=k if k is not None else self.config.k,
                         alpha=self.config.alpha if alpha is None else alpha)  # fmt: skip
        if k is not None:
            config = replace(config, k_fraction=None)
        n = config.n_directions(self.v.shape[0])
        score = self.selection_score()
        indices = torch.argsort(score, descending=True, stable=True)[:n]  # gains tie at 0
        centered = config.choice("dampen") == "centered"
        tensors = {
            "v_k": self.v[:, indices].float().contiguous(),
            "indices": indices.long(),
            "singular_values": self.singular_values.float(),
            "deltas": self.delta.float(),
            "scores": score.float(),
            "clean_mean": self.clean_mean.float() if centered else torch.zeros(len(self.delta)),
        }
        params = {**self.meta.params, "k": n, "alpha": config.alpha}
        stability = {**self.meta.stats.get("stability", {}),
                     "bootstrap": self.bootstrap(n, indices)}  # fmt: skip
        stats = {**self.meta.stats, "stability": stability}
        if n and self.token_shares is not None and self.states and self.states.vocabulary:
            stats["token_share"] = asdict(self.token_share(indices))
        return EigenShift(tensors, replace(self.meta, params=params, stats=stats))

    def token_share(self, indices: torch.Tensor) -> TokenShare:
        """The selected directions' toxic-word share against chance: directions of the same part
        of the spectrum (`scoring.vocabulary.spectrum_band`), or random directions of h for the
        toxic-word basis."""
        assert self.token_shares is not None and self.states and self.states.vocabulary
        d = len(self.delta)
        if self.chance_shares is not None:
            band, name = self.chance_shares, f"{len(self.chance_shares)} random directions of h"
        else:
            lo, hi = spectrum_band(indices.tolist(), d, len(indices))
            band, name = self.token_shares[lo:hi], f"singular directions {lo + 1}-{hi} of {d}"
        return share_summary(self.token_shares[indices], band, self.states.vocabulary, name,
                             seed=self.split_seed)  # fmt: skip


def projections_of(states: FitStates, v: torch.Tensor, contrast: str) -> Projections:
    toxic_keys = keys_of(states.toxic_positions, states.toxic_sources)
    clean_keys = keys_of(states.clean_positions, states.clean_sources)

    def weigh(t_mask: torch.Tensor, c_mask: torch.Tensor) -> torch.Tensor:
        return clean_weights(toxic_keys[t_mask], clean_keys[c_mask],
                             states.clean_positions[c_mask], contrast)  # fmt: skip

    return Projections(states.toxic.double() @ v, states.toxic_groups,
                       states.clean.double() @ v, states.clean_groups, weigh)  # fmt: skip


@register
class EigenShift(Intervention):
    """eigenshift: dampen the unembedding directions toxic generations use."""

    method = "eigenshift"
    config_class = EigenShiftConfig
    needs = ("states",)
    knobs = ("alpha",)
    choices = ("recipe", "contrast", "score", "dampen", "basis")
    index_tensors = ("indices",)
    unbounded = ("scores",)  # |delta| / spread, and a spread may be next to nothing

    @classmethod
    def fit_inputs(
        cls, lm: LanguageModel, config: EigenShiftConfig, inputs: FitInputs, progress: bool
    ) -> Self:
        assert inputs.states is not None  # `needs` has made sure
        return cls.fit_statistics(lm, config, inputs.states).intervention()  # type: ignore[return-value]

    @classmethod
    def fit_statistics(
        cls, lm: LanguageModel, config: EigenShiftConfig | None, states: FitStates
    ) -> EigenShiftFit:
        """Decompose, score and measure stability on gathered `states` (`evidence.gathering`);
        one set of states serves any number of fits (recipes, say), and the fit keeps its
        per-direction statistics so a sweep or a tune over k and alpha needs one fit."""
        config = config or EigenShiftConfig()
        evidence = states
        n_toxic, n_clean = len(evidence.toxic), len(evidence.clean)
        counts = {**evidence.counts, "toxic_states": n_toxic, "clean_states": n_clean}
        log.info("fit states: %s", counts)
        if n_toxic < config.min_toxic or n_clean == 0:
            per_source = "; ".join(f"{name}: {c}" for name, c in evidence.counts.items())
            raise InputError(
                f"only {n_toxic} toxic states and {n_clean} clean ones ({per_source}); need "
                f"{config.min_toxic} toxic. Use --evidence both, more --fit-prompts or labelled "
                "texts, a looser --max-rank/--min-prob, or another --scorer"
            )
        t1 = time.perf_counter()
        basis = config.choice("basis")
        if basis == "toxic-words":
            if evidence.vocabulary is None:
                raise InputError("basis toxic-words needs the evidence's judgement of the "
                                 "vocabulary: gather the states with eigenshift.evidence.gather")
            if not bool(evidence.vocabulary.toxic.any()):
                raise InputError(f"the scorer {evidence.vocabulary.judge} calls none of the "
                                 "vocabulary's words toxic on their own, so there is no toxic-word "
                                 "basis: use --basis singular or another --scorer")  # fmt: skip
        with materialized(lm.unembedding):  # offloaded or not; loaded once for the whole fit
            weight = weight_of(lm.unembedding).detach()
            if basis == "singular":
                s, v = right_singular(weight)
            else:
                assert evidence.vocabulary is not None
                s, v = toxic_word_basis(weight, evidence.vocabulary.toxic)
            s, v = s.cpu(), v.cpu()
            t2 = time.perf_counter()
            contrast = config.choice("contrast")
            proj = projections_of(evidence, v, contrast)
            everything = (torch.ones(n_toxic, dtype=torch.bool),
                          torch.ones(n_clean, dtype=torch.bool))  # fmt: skip
            delta, spread = direction_stats(proj.toxic, torch.full((n_toxic,), 1.0 / n_toxic,
                                            dtype=torch.float64), proj.clean,
                                            proj.weigh(*everything))  # fmt: skip
            d = v.shape[0]
            ks = sorted({k for k in (*STABILITY_KS, config.n_directions(d)) if 0 < k <= d})
            stability: dict[str, Any] = {"basis": basis}
            if basis == "singular":  # a toxic-words choice is the vocabulary's: not resampled
                stability["halves"] = halves(proj, v, config.choice("score"), ks,
                                             evidence.split_seed)  # fmt: skip
            shares = chance = None
            if evidence.vocabulary is not None:
                # the singular basis's signs are arbitrary: toxic states' way (delta) orients
                # them; the toxic-word basis points where toxic words rise already
                signs = torch.where(delta >= 0, 1.0, -1.0) if basis == "singular" else 1.0
                shares = promoted_shares(weight, v * signs, evidence.vocabulary)
                if basis != "singular":  # chance: directions of h drawn at random
                    generator = torch.Generator().manual_seed(evidence.split_seed)
                    chance = promoted_shares(weight, torch.randn(d, CHANCE_DIRECTIONS,
                        dtype=torch.float64, generator=generator), evidence.vocabulary)  # fmt: skip
        t3 = time.perf_counter()
        record = {**evidence.settings, **asdict(config)}
        if config.basis is None:  # a singular fit's record (and digest) is what it always was
            del record["basis"]
        params: dict[str, Any] = {
            "recipe": config.recipe,
            "contrast": contrast,
            "score": config.choice("score"),
            "dampen": config.choice("dampen"),
            # the gathering's settings beside the fit's: one record of what made the edit
            "fit_config": record,
        }
        if basis != "singular":
            params["basis"] = basis
        meta = cls.new_meta(
            lm, params, [lm.arch.unembedding],
            data_hashes=dict(evidence.data_hashes),
            seed=evidence.seed,
            stats={
                **counts,
                "fit_prompt_indices": list(evidence.fit_prompt_indices),
                "toxic_tokens": evidence.toxic_tokens[:200],
                "stability": stability,
                "seconds": {"evidence": evidence.seconds, "decompose": round(t2 - t1, 2),
                            "stability_halves_and_token_shares": round(t3 - t2, 2)},
            },
        )  # fmt: skip
        return EigenShiftFit(
            singular_values=s,
            v=v,
            delta=delta,
            spread=spread,
            clean_mean=evidence.clean.double().mean(0),  # what clean tokens have: dampen to it
            config=config,
            meta=meta,
            states=evidence,
            projections=proj,
            split_seed=evidence.split_seed,
            token_shares=shares,
            chance_shares=chance,
        )

    # -- applying ---------------------------------------------------------------------------
    @property
    def alpha(self) -> float:
        return float(self.params["alpha"])

    @property
    def k(self) -> int:
        return int(self.tensors["v_k"].shape[1])

    @property
    def centered(self) -> bool:
        """Dampening towards the clean mean (a constant logit shift too) rather than zero."""
        return self.params["dampen"] == "centered"

    def check(self, lm: LanguageModel | None = None) -> None:
        """Also: the directions are orthonormal, as the projection h - c (h V) V^T assumes."""
        super().check(lm)
        v = self.tensors["v_k"].double()
        gram = v.T @ v - torch.eye(v.shape[1], dtype=v.dtype)
        if v.numel() and float(gram.abs().max()) > 1e-3:
            raise ArtifactError("'eigenshift' tensor 'v_k' does not hold orthonormal directions, "
                                "which the projection assumes: fit it again")  # fmt: skip

    def shapes(self, lm: LanguageModel | None) -> Shapes:
        self.param("dampen", str)
        d = lm.arch.hidden_size if lm else None
        vectors = {name: (d,) for name in ("singular_values", "deltas", "scores", "clean_mean")}
        return {"v_k": (d, None), "indices": (None,), **vectors}

    def is_identity(self) -> bool:
        return self.k == 0 or self.alpha == 1.0

    def edits(self, lm: LanguageModel) -> list[Edit]:
        if self.is_identity():
            return []
        v_k = self.tensors["v_k"]
        v = v_k.to(*lm.placement(lm.arch.unembedding))
        mu = self.tensors["clean_mean"].to(v)
        centered = self.centered
        scale = 1.0 - self.alpha

        def project(h: torch.Tensor) -> torch.Tensor:
            x = h - mu if centered else h
            return h - scale * ((x @ v) @ v.T)

        # h - c (h - mu) V V^T: a low-rank map, plus the constant c (mu V) V^T when centered
        shift = scale * (self.tensors["clean_mean"] @ v_k) @ v_k.T if centered else None
        affine = Affine(left=scale * v_k, right=v_k, shift=shift)
        return [Edit(Site(lm.arch.unembedding, "input"), project, affine)]

    def describe(self, lm: LanguageModel) -> str:
        stats = self.meta.stats
        unwanted = judged_side(self.meta.behaviour)
        sources = ", ".join(f"{name} {stats[name]['toxic_states']}" for name in
                            ("generated", "labelled") if name in stats)  # fmt: skip
        split = next((row for row in stats.get("stability", {}).get("halves", {}).get("per_k", [])
                      if row["k"] == self.k), None)  # fmt: skip
        lines = [
            f"states: {stats.get('toxic_states')} {unwanted} ({sources}), "
            f"{stats.get('clean_states')} clean",
            *([f"two disjoint halves select the same subspace to {split['subspace_similarity']:.2f}"
               f" (chance {split['chance']:.2f})"] if split else []),
            f"k = {self.k}, alpha = {self.alpha:g}, recipe {self.params['recipe']}, basis "
            f"{self.params.get('basis', 'singular')}",
            *([TokenShare(**stats["token_share"]).line(unwanted)] if "token_share" in stats
              else []),
        ]
        lines += [f"  direction {row['spectrum_position']}: {unwanted} side "
                  + " ".join(t.strip() or repr(t) for t in row["toxic_side_tokens"])
                  for row in directions(lm, self, top=6)[:5]]  # fmt: skip
        return "\n".join(lines)
