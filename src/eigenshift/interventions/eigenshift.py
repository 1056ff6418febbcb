"""EigenShift (method.md section 3): dampen the right singular directions of the unembedding that
toxic generations use more than clean ones.

Fitting collects lm_head-input states from the model's own generations (captured in the same
pass), decomposes the unembedding through its Gram matrix, scores every direction, and keeps the
per-direction statistics so a sweep over k and alpha needs one fit. Three choices are explicit
(method.md section 7 says why), with two presets:

- contrast: clean states from the *first* generated token (paper) or from the *same positions*
  as the toxic states (matched), so the contrast is not confounded with position;
- score: |delta| (paper, made sign-free) or |delta| / pooled spread (standardized);
- dampen: towards zero, h - (1 - alpha) V_k V_k^T h (paper; bakeable), or towards the clean mean,
  h - (1 - alpha) V_k V_k^T (h - mu) (centered; needs a bias the unembedding lacks: hook only).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Literal, Self

import torch

from ..data import load_prompts
from ..decomposition import right_singular
from ..errors import InputError
from ..generation import Generation, SamplingConfig, generate
from ..hooks import Site
from ..models import LanguageModel
from ..models.architecture import weight_of
from ..scoring import Scorer, attribute_tokens, load_scorer
from ..settings import check_settings, setting
from .base import ArtifactMeta, FitInputs, Intervention, Shapes, register
from .edits import Affine, Edit

log = logging.getLogger(__name__)

DEFAULT_K = 2
RECIPES: dict[str, dict[str, str]] = {
    "paper": {"contrast": "first", "score": "delta", "dampen": "zero"},
    "matched": {"contrast": "matched", "score": "standardized", "dampen": "centered"},
}


Recipe = Literal["paper", "matched"]


@dataclass(frozen=True)
class EigenShiftConfig:
    prompts: str = setting("default", "Prompts to generate on (RTP jsonl, CSV, HF id).")
    fit_prompts: int = setting(300, "Prompts generated on to collect states.", minimum=1)
    prompt_seed: int = setting(0, "Seed of the prompt shuffle.")
    k: int | None = setting(None, f"Directions to dampen (default {DEFAULT_K}, measured on the "
                                  "default model).", minimum=0)  # fmt: skip
    k_fraction: float | None = setting(None, "Directions to dampen, as a share of d.",
                                       minimum=0, maximum=1)  # fmt: skip
    # Defaults measured on the default model (docs/results.md, "EigenShift"): the paper's own
    # recipe (k = 25% of d, alpha = 0) was tuned on a 7B model and breaks a 135M one.
    alpha: float = setting(-0.5, "Kept share of each selected direction (1 = unchanged, "
                                 "0 = removed).", maximum=1)  # fmt: skip
    recipe: Recipe = setting("matched", "Presets of contrast, score and dampening.")
    contrast: Literal["first", "matched"] | None = setting(
        None, "Clean states from the first token (paper) or matched positions.")
    score: Literal["delta", "standardized"] | None = setting(
        None, "Rank directions by |delta| or |delta| / spread.")
    dampen: Literal["zero", "centered"] | None = setting(
        None, "Shrink towards zero (bakeable) or towards the clean mean (hook).")
    sampling: SamplingConfig = setting(SamplingConfig(greedy=True))
    scorer: str = setting("default", "Scorer of the fit generations.")
    threshold: float = setting(0.5, "A continuation is toxic when its score is at least this.",
                               minimum=0, maximum=1)  # fmt: skip
    min_toxic: int = setting(10, "Fewest toxic states a fit accepts.", minimum=1)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.k is not None and self.k_fraction is not None:
            raise InputError("give k or k_fraction, not both")

    def choice(self, name: str) -> str:
        return getattr(self, name) or RECIPES[self.recipe][name]

    def n_directions(self, d: int) -> int:
        if self.k is not None:
            if self.k > d:
                raise InputError(f"k must be <= {d}, the width of this model's unembedding "
                                 f"input, got {self.k}")  # fmt: skip
            return self.k
        if self.k_fraction is not None:
            return round(self.k_fraction * d)
        return min(DEFAULT_K, d)


@dataclass
class FitStates:
    """Hidden states (lm_head inputs) from the fit generations, with where they came from."""

    toxic: torch.Tensor  # (n_toxic, d): the state that emitted each attributed toxic token
    toxic_positions: torch.Tensor  # generated-token index of each
    clean: torch.Tensor  # (n, d): every state of every clean continuation
    clean_positions: torch.Tensor
    counts: dict[str, int] = field(default_factory=dict)
    toxic_tokens: list[str] = field(default_factory=list)


def fit_prompt_indices(config: EigenShiftConfig) -> tuple[list[int], list[str], str]:
    prompts = load_prompts(config.prompts)
    chosen, texts = prompts.select(config.fit_prompts, config.prompt_seed)
    return chosen, texts, prompts.hash()


def hidden_of(gen: Generation) -> torch.Tensor:
    assert gen.hidden is not None  # generated with capture_hidden
    return gen.hidden


def collect_states(
    lm: LanguageModel,
    prompts: list[str],
    prompt_ids: list[int],
    config: EigenShiftConfig,
    scorer: Scorer,
    progress: bool = True,
) -> FitStates:
    """Generate once with capture; attribute toxic tokens by occlusion; keep only the states whose
    argmax is the attributed token (the state really emitted it)."""
    gens = generate(lm, prompts, config.sampling, prompt_ids=prompt_ids, capture_hidden=True,
                    progress=progress)  # fmt: skip
    scores = scorer.score([g.text for g in gens])
    toxic_idx = [i for i, g in enumerate(gens) if scores[i] >= config.threshold and g.token_ids]
    clean_idx = [i for i, g in enumerate(gens) if scores[i] < config.threshold and g.token_ids]
    attributions = attribute_tokens(scorer, lm.tokenizer, [gens[i].token_ids for i in toxic_idx])
    candidates = [(i, a.top) for i, a in zip(toxic_idx, attributions, strict=True) if a.top >= 0]
    d = lm.arch.hidden_size
    toxic = (
        torch.stack([hidden_of(gens[i])[j] for i, j in candidates]) if candidates
        else torch.zeros(0, d)
    )
    emitted = torch.tensor([gens[i].token_ids[j] for i, j in candidates], dtype=torch.long)
    if len(candidates):
        with torch.inference_mode():
            head = lm.unembedding
            argmax = head(toxic.to(lm.device, lm.dtype)).argmax(-1).cpu()
        keep = argmax == emitted
    else:
        keep = torch.zeros(0, dtype=torch.bool)
    kept = [c for c, k in zip(candidates, keep.tolist(), strict=True) if k]
    clean_states = [hidden_of(gens[i]) for i in clean_idx]
    clean_pos = [torch.arange(len(gens[i].token_ids)) for i in clean_idx]
    return FitStates(
        toxic=toxic[keep].double(),
        toxic_positions=torch.tensor([j for _, j in kept], dtype=torch.long),
        clean=torch.cat(clean_states).double() if clean_states else torch.zeros(0, d),
        clean_positions=torch.cat(clean_pos) if clean_pos else torch.zeros(0, dtype=torch.long),
        counts={
            "generations": len(gens),
            "toxic_continuations": len(toxic_idx),
            "clean_continuations": len(clean_idx),
            "toxic_states": int(keep.sum()),
            "toxic_rejected_argmax": int((~keep).sum()),
            "clean_states_first": len(clean_idx),
            "clean_states_all": int(sum(len(p) for p in clean_pos)),
        },
        toxic_tokens=[str(lm.tokenizer.decode([gens[i].token_ids[j]])) for i, j in kept],
    )


def clean_weights(states: FitStates, contrast: str) -> torch.Tensor:
    """Weights over the clean states: first tokens only (paper), or the toxic position mix."""
    pos = states.clean_positions
    if contrast == "first":
        w = (pos == 0).double()
    else:
        toxic_share = torch.bincount(states.toxic_positions, minlength=int(pos.max()) + 1).double()
        clean_count = torch.bincount(pos, minlength=len(toxic_share)).double()
        per_pos = torch.where(clean_count > 0, toxic_share / clean_count.clamp(min=1), 0.0)
        w = per_pos[pos]
    if w.sum() <= 0:
        raise InputError("no clean states at the positions of the toxic ones; use more prompts")
    return w / w.sum()


@dataclass
class EigenShiftFit:
    """Everything a fit measured; `intervention(k, alpha)` makes edits without refitting."""

    singular_values: torch.Tensor  # (d,) float64, descending
    v: torch.Tensor  # (d, d) float64, columns = right singular vectors
    delta: torch.Tensor  # (d,) v_i^T (mean toxic - mean clean)
    spread: torch.Tensor  # (d,) pooled standard deviation of the projections
    clean_mean: torch.Tensor  # (d,) weighted mean clean state
    config: EigenShiftConfig
    meta: ArtifactMeta
    states: FitStates | None = field(default=None, repr=False)

    def selection_score(self) -> torch.Tensor:
        """Sign-free: flipping v_i flips delta_i, not its magnitude (method.md section 7)."""
        if self.config.choice("score") == "standardized":
            return (self.delta / self.spread.clamp(min=1e-12)).abs()
        return self.delta.abs()

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
        meta = replace(self.meta, params=params)
        return EigenShift(tensors, meta)


@register
class EigenShift(Intervention):
    """eigenshift: dampen the unembedding directions toxic generations use."""

    method = "eigenshift"
    config_class = EigenShiftConfig
    knobs = ("alpha",)
    index_tensors = ("indices",)

    @classmethod
    def fit_inputs(
        cls, lm: LanguageModel, config: EigenShiftConfig, inputs: FitInputs, progress: bool
    ) -> Self:
        return cls.fit_statistics(lm, config, progress=progress).intervention()  # type: ignore[return-value]

    @classmethod
    def fit_statistics(
        cls,
        lm: LanguageModel,
        config: EigenShiftConfig | None = None,
        *,
        scorer: Scorer | None = None,
        states: FitStates | None = None,
        progress: bool = True,
    ) -> EigenShiftFit:
        """Generate, attribute and decompose; `states` from an earlier fit with the same prompts,
        sampling and scorer skips the generation (e.g. to compare recipes on the same states)."""
        config = config or EigenShiftConfig()
        t0 = time.perf_counter()
        ids, texts, prompts_hash = fit_prompt_indices(config)
        if states is None:
            scorer = scorer or load_scorer(config.scorer)
            states = collect_states(lm, texts, ids, config, scorer, progress)
        counts = dict(states.counts)
        log.info("fit states: %s", counts)
        if counts["toxic_states"] < config.min_toxic:
            raise InputError(
                f"only {counts['toxic_states']} toxic states from {counts['generations']} fit "
                f"generations ({counts['toxic_continuations']} toxic continuations, "
                f"{counts['toxic_rejected_argmax']} rejected because the model's argmax was not "
                f"the attributed token); need {config.min_toxic}. Use more --fit-prompts, more "
                "toxic prompts, another --scorer, or a lower --threshold"
            )
        t1 = time.perf_counter()
        s, v = right_singular(weight_of(lm.unembedding))
        s, v = s.cpu(), v.cpu()
        t2 = time.perf_counter()
        w = clean_weights(states, config.choice("contrast"))
        proj_t = states.toxic @ v
        proj_c = states.clean @ v
        mean_t, mean_c = proj_t.mean(0), w @ proj_c
        var_t = proj_t.var(0) if len(proj_t) > 1 else torch.zeros_like(mean_t)
        var_c = w @ (proj_c - mean_c) ** 2
        params = {
            "recipe": config.recipe,
            "contrast": config.choice("contrast"),
            "score": config.choice("score"),
            "dampen": config.choice("dampen"),
            "fit_config": asdict(config),
        }
        meta = cls.new_meta(
            lm, params, [lm.arch.unembedding],
            data_hashes={"prompts": prompts_hash},
            seed=config.sampling.seed,
            stats={
                **counts,
                "fit_prompt_indices": ids,
                "toxic_tokens": states.toxic_tokens[:200],
                "seconds": {"generate_score_attribute": round(t1 - t0, 2),
                            "decompose": round(t2 - t1, 2)},
            },
        )  # fmt: skip
        return EigenShiftFit(
            singular_values=s,
            v=v,
            delta=mean_t - mean_c,
            spread=((var_t + var_c) / 2).sqrt(),
            clean_mean=states.clean.mean(0),  # what clean tokens typically have: dampen toward it
            config=config,
            meta=meta,
            states=states,
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
        """Dampening towards the clean mean (hook only) rather than towards zero."""
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
        v = v_k.to(lm.device, lm.dtype)
        mu = self.tensors["clean_mean"].to(lm.device, lm.dtype)
        centered = self.centered
        scale = 1.0 - self.alpha

        def project(h: torch.Tensor) -> torch.Tensor:
            x = h - mu if centered else h
            return h - scale * ((x @ v) @ v.T)

        # h - c (h - mu) V V^T: a low-rank map, plus the constant c (mu V) V^T when centered
        shift = scale * (self.tensors["clean_mean"] @ v_k) @ v_k.T if centered else None
        affine = Affine(left=scale * v_k, right=v_k, shift=shift)
        hint = ("apply it with a hook (`with intervention.applied(model):`), or fit with "
                "--dampen zero to get a bakeable edit")  # fmt: skip
        return [Edit(Site(lm.arch.unembedding, "input"), project, affine, hint=hint)]

    def describe(self, lm: LanguageModel) -> str:
        from ..explain import explain  # explain reads this class: imported when needed

        stats = self.meta.stats
        lines = [
            f"states: {stats['toxic_states']} toxic ({stats['toxic_continuations']} toxic "
            f"continuations, {stats['toxic_rejected_argmax']} rejected by the argmax check), "
            f"{stats['clean_states_first']} clean continuations",
            f"k = {self.k}, alpha = {self.alpha:g}, recipe {self.params['recipe']}",
        ]
        lines += [f"  direction {row['spectrum_position']}: toxic side "
                  + " ".join(t.strip() or repr(t) for t in row["toxic_side_tokens"])
                  for row in explain(lm, self, top=6)[:5]]  # fmt: skip
        return "\n".join(lines)
