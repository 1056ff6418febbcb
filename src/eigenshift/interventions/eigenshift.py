"""EigenShift (method.md section 3): dampen the right singular directions of the unembedding that
toxic text uses more than clean text.

Fitting gathers lm_head-input states (`evidence.py`: the model's own continuations of prompts,
labelled text, or both, all teacher-forced), decomposes the unembedding through its Gram matrix,
scores every direction, measures how stable the selection is (`stability.py`), and keeps the
per-direction statistics so a sweep or a tune over k and alpha needs one fit. Three choices are
explicit (method.md section 7 says why), with two presets:

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
from typing import TYPE_CHECKING, Any, Literal, Self

import torch

from ..data import load_labelled, load_prompts
from ..data.labelled import Layout
from ..decomposition import right_singular
from ..errors import InputError
from ..evidence import (
    EvidenceRule,
    FitStates,
    clean_weights,
    generated_states,
    keys_of,
    labelled_states,  # fmt: skip
)
from ..generation import SamplingConfig
from ..hooks import Site
from ..models import LanguageModel
from ..models.architecture import weight_of
from ..models.placement import materialized
from ..scoring import Scorer, load_scorer
from ..settings import check_settings, setting
from ..stability import Projections, bootstrap, direction_stats, halves, selection_score
from .base import ArtifactMeta, FitInputs, Intervention, Shapes, register
from .edits import Affine, Edit

if TYPE_CHECKING:
    from ..engines import Engine

log = logging.getLogger(__name__)

DEFAULT_K = 2
RECIPES: dict[str, dict[str, str]] = {
    "paper": {"contrast": "first", "score": "delta", "dampen": "zero"},
    "matched": {"contrast": "matched", "score": "standardized", "dampen": "centered"},
}
STABILITY_KS = (1, 2, 5, 10, 20)


Recipe = Literal["paper", "matched"]
Evidence = Literal["generated", "labelled", "both"]


@dataclass(frozen=True)
class EigenShiftConfig:
    evidence: Evidence = setting("labelled", "Where the states come from: the model's own "
                                 "continuations of prompts, labelled text, or both.")  # fmt: skip
    data: str = setting("default", "Labelled texts (CSV/JSONL/HF id); default: the insults data.")
    text_column: str | None = setting(None, "Column of the labelled texts holding the text.")
    label_column: str | None = setting(None, "Column of the labelled texts holding the label.")
    layout: Layout | None = setting(None, "A known layout of the labelled texts.")
    max_texts: int | None = setting(None, "A stratified, seeded subsample of the labelled texts.",
                                    minimum=2)  # fmt: skip
    prompts: str = setting("default", "Prompts to generate on (RTP jsonl, CSV, HF id).")
    fit_prompts: int = setting(300, "Prompts generated on to collect states.", minimum=1)
    prompt_seed: int = setting(0, "Seed of the prompt shuffle.")
    k: int | None = setting(None, f"Directions to dampen (default {DEFAULT_K}, measured on the "
                                  "default model).", minimum=0)  # fmt: skip
    k_fraction: float | None = setting(None, "Directions to dampen, as a share of d.",
                                       minimum=0, maximum=1)  # fmt: skip
    # Defaults chosen on validation prompts on the default model with labelled evidence
    # (docs/results.md, issue 12): k = 2, alpha = 0 is the one point of the k x alpha grid that
    # lowers toxicity within +10% perplexity; the paper's k = 25% of d breaks a 135M model.
    alpha: float = setting(0.0, "Kept share of each selected direction (1 = unchanged, "
                                 "0 = removed).", maximum=1)  # fmt: skip
    recipe: Recipe = setting("matched", "Presets of contrast, score and dampening.")
    contrast: Literal["first", "matched"] | None = setting(
        None, "Clean states from the first token (paper) or matched positions.")
    score: Literal["delta", "standardized"] | None = setting(
        None, "Rank directions by |delta| or |delta| / spread.")
    dampen: Literal["zero", "centered"] | None = setting(
        None, "Shrink towards zero or towards the clean mean (a constant logit shift).")
    sampling: SamplingConfig = setting(SamplingConfig(greedy=True))
    rule: EvidenceRule = setting(EvidenceRule())
    scorer: str = setting("default", "Scorer of the fit texts (attribution, and continuations).")
    threshold: float = setting(0.5, "A continuation is toxic when its score is at least this.",
                               minimum=0, maximum=1)  # fmt: skip
    min_toxic: int = setting(10, "Fewest toxic states a fit accepts.", minimum=1)
    resamples: int = setting(200, "Bootstrap resamples of each selected direction's score "
                                  "(0: none).", minimum=0)  # fmt: skip

    def __post_init__(self) -> None:
        check_settings(self)
        if self.k is not None and self.k_fraction is not None:
            raise InputError("give k or k_fraction, not both")

    def choice(self, name: str) -> str:
        return getattr(self, name) or RECIPES[self.recipe][name]

    def uses(self, source: str) -> bool:
        return self.evidence in (source, "both")

    def n_directions(self, d: int) -> int:
        if self.k is not None:
            if self.k > d:
                raise InputError(f"k must be <= {d}, the width of this model's unembedding "
                                 f"input, got {self.k}")  # fmt: skip
            return self.k
        if self.k_fraction is not None:
            return round(self.k_fraction * d)
        return min(DEFAULT_K, d)


def fit_prompt_indices(config: EigenShiftConfig) -> tuple[list[int], list[str], str]:
    prompts = load_prompts(config.prompts)
    chosen, texts = prompts.select(config.fit_prompts, config.prompt_seed)
    return chosen, texts, prompts.hash()


def collect_evidence(
    lm: LanguageModel, config: EigenShiftConfig, scorer: Scorer, progress: bool = True,
    engine: Engine | None = None,
) -> tuple[FitStates, dict[str, Any]]:  # fmt: skip
    """The states of every source the config names, and what identifies the inputs (data hashes,
    fit prompt indices)."""
    states = FitStates.empty(lm.arch.hidden_size)
    inputs: dict[str, Any] = {"data_hashes": {}, "fit_prompt_indices": []}
    if config.uses("generated"):
        ids, texts, prompts_hash = fit_prompt_indices(config)
        states = states.combine(generated_states(lm, texts, ids, config.sampling, scorer,
                                                 config.rule, config.threshold, progress,
                                                 engine))  # fmt: skip
        inputs["data_hashes"]["prompts"] = prompts_hash
        inputs["fit_prompt_indices"] = ids
    if config.uses("labelled"):
        data = load_labelled(config.data, text_column=config.text_column,
                             label_column=config.label_column, layout=config.layout,
                             max_examples=config.max_texts, seed=config.prompt_seed)  # fmt: skip
        states = states.combine(labelled_states(lm, data, scorer, config.rule, progress))
        inputs["data_hashes"]["labelled"] = data.hash()
    return states, inputs


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
    _bootstraps: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    def evidence(self) -> tuple[FitStates, dict[str, Any]] | None:
        """The states and input identities, to fit another recipe on the same evidence."""
        if self.states is None:
            return None
        stats = self.meta.stats
        return self.states, {"data_hashes": self.meta.data_hashes,
                             "fit_prompt_indices": stats["fit_prompt_indices"]}  # fmt: skip

    def selection_score(self) -> torch.Tensor:
        return selection_score(self.delta, self.spread, self.config.choice("score"))

    def bootstrap(self, k: int, indices: torch.Tensor) -> dict[str, Any]:
        """Score intervals and top-k shares of the selected directions (cached per k)."""
        if self.projections is None or not self.config.resamples:
            return {}
        if k not in self._bootstraps:
            self._bootstraps[k] = bootstrap(self.projections, self.config.choice("score"),
                                            indices, k, self.config.resamples,
                                            self.config.rule.split_seed)  # fmt: skip
        return self._bootstraps[k]

    def intervention(self, k: int | None = None, alpha: float | None = None) -> EigenShift:
        config = replace(self.config, k=k if k is not None else self.config.k,
                         alpha=self.config.alpha if alpha is None else alpha)  # fmt: skip
        if k is not None:
            config = replace(config, k_fraction=None)
        n = config.n_directions(self.v.shape[0])
        score = self.selection_score()
        indices = torch.argsort(score, descending=True)[:n]
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
        meta = replace(self.meta, params=params, stats={**self.meta.stats, "stability": stability})
        return EigenShift(tensors, meta)


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
    knobs = ("alpha",)
    index_tensors = ("indices",)
    generates = True  # with --evidence generated or both

    @classmethod
    def fit_inputs(
        cls, lm: LanguageModel, config: EigenShiftConfig, inputs: FitInputs, progress: bool
    ) -> Self:
        return cls.fit_statistics(lm, config, engine=inputs.engine,
                                  progress=progress).intervention()  # type: ignore[return-value]

    @classmethod
    def fit_statistics(
        cls,
        lm: LanguageModel,
        config: EigenShiftConfig | None = None,
        *,
        scorer: Scorer | None = None,
        states: tuple[FitStates, dict[str, Any]] | None = None,
        engine: Engine | None = None,
        progress: bool = True,
    ) -> EigenShiftFit:
        """Gather evidence, decompose, score and measure stability; `states` from an earlier fit
        with the same evidence settings skips the gathering (e.g. to compare recipes); generated
        evidence comes from `engine` (default: our own loop)."""
        config = config or EigenShiftConfig()
        t0 = time.perf_counter()
        if states is None:
            states = collect_evidence(lm, config, scorer or load_scorer(config.scorer), progress,
                                      engine)  # fmt: skip
        evidence, inputs = states
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
        with materialized(lm.unembedding):  # offloaded or not
            s, v = right_singular(weight_of(lm.unembedding))
        s, v = s.cpu(), v.cpu()
        t2 = time.perf_counter()
        contrast = config.choice("contrast")
        proj = projections_of(evidence, v, contrast)
        everything = torch.ones(n_toxic, dtype=torch.bool), torch.ones(n_clean, dtype=torch.bool)
        delta, spread = direction_stats(proj.toxic, torch.full((n_toxic,), 1.0 / n_toxic,
                                        dtype=torch.float64), proj.clean,
                                        proj.weigh(*everything))  # fmt: skip
        d = v.shape[0]
        ks = sorted({k for k in (*STABILITY_KS, config.n_directions(d)) if 0 < k <= d})
        stability = {"halves": halves(proj, v, config.choice("score"), ks,
                                      config.rule.split_seed)}  # fmt: skip
        t3 = time.perf_counter()
        params = {
            "recipe": config.recipe,
            "contrast": contrast,
            "score": config.choice("score"),
            "dampen": config.choice("dampen"),
            "fit_config": asdict(config),
        }
        meta = cls.new_meta(
            lm, params, [lm.arch.unembedding],
            data_hashes=inputs["data_hashes"],
            seed=config.sampling.seed,
            stats={
                **counts,
                "fit_prompt_indices": inputs["fit_prompt_indices"],
                "toxic_tokens": evidence.toxic_tokens[:200],
                "stability": stability,
                "seconds": {"evidence": round(t1 - t0, 2), "decompose": round(t2 - t1, 2),
                            "stability_halves": round(t3 - t2, 2)},
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
        from ..explain import explain  # explain reads this class: imported when needed

        stats = self.meta.stats
        sources = ", ".join(f"{name} {stats[name]['toxic_states']}" for name in
                            ("generated", "labelled") if name in stats)  # fmt: skip
        split = next((row for row in stats.get("stability", {}).get("halves", {}).get("per_k", [])
                      if row["k"] == self.k), None)  # fmt: skip
        lines = [
            f"states: {stats.get('toxic_states')} toxic ({sources}), "
            f"{stats.get('clean_states')} clean",
            *([f"two disjoint halves select the same subspace to {split['subspace_similarity']:.2f}"
               f" (chance {split['chance']:.2f})"] if split else []),
            f"k = {self.k}, alpha = {self.alpha:g}, recipe {self.params['recipe']}",
        ]
        lines += [f"  direction {row['spectrum_position']}: toxic side "
                  + " ".join(t.strip() or repr(t) for t in row["toxic_side_tokens"])
                  for row in explain(lm, self, top=6)[:5]]  # fmt: skip
        return "\n".join(lines)
