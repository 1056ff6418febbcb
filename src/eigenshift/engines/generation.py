"""Batched sampling that is deterministic per (seed, prompt, sample), whatever the batch size.

Each row draws its random numbers from its own generator, so its random stream never depends on
which other rows shared its batch; that is what lets evaluations resume and lets batched runs be
checked against one-by-one runs. The lm_head input that emitted each token is captured in the
same pass, for EigenShift's fit.

What batching can change is the model's arithmetic: padding and batch shape change the order of
float sums, so float32 logits differ by about 1e-5 between batch sizes (float64: about 1e-14).
Sampling is therefore an exponential race (argmax of p_i / E_i over the nucleus, with E_i ~ Exp(1)
per token from the row's stream), which is exact nucleus sampling whose outcome moves only when
the two best ratios lie within that rounding of each other; inverse-CDF sampling moves whenever
rounding, summed over thousands of tail tokens, crosses its one uniform draw. The guarantee:
identical continuations for every batch size in float64, and in lower precision up to such
near-ties (docs/results.md measures how rare they are).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from ..capture.hooks import capture
from ..core.errors import InputError
from ..models import LanguageModel
from ..models.language_model import CHARS_PER_TOKEN_BOUND, accepts_logits_to_keep, cache_argument
from .config import CANDIDATES, SamplingConfig

log = logging.getLogger(__name__)
@dataclass
class Generation:
    prompt_index: int
    sample_index: int
    prompt: str
    text: str
    token_ids: list[int]
    hidden: torch.Tensor | None = None  # (len(token_ids), d): the state that emitted each token


def row_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    return int(np.random.SeedSequence([seed, prompt_index, sample_index]).generate_state(1)[0])


def _nucleus(
    vals: torch.Tensor, idx: torch.Tensor, noise: torch.Tensor, top_p: float
) -> torch.Tensor:
    """The race among sorted probabilities, restricted to the smallest prefix with mass >= p:
    argmax p_i / E_i picks token i with probability p_i / (mass of the prefix)."""
    cum = vals.cumsum(-1)
    keep = (cum - vals) < top_p  # the token that crosses p is kept; the first always is
    race = noise.gather(1, idx).clamp_min(torch.finfo(noise.dtype).tiny)
    ratio = torch.where(keep, vals / race, torch.full_like(vals, -1.0))
    return idx.gather(1, ratio.argmax(-1, keepdim=True)).squeeze(-1)


def sorted_top_p(
    probs: torch.Tensor, noise: torch.Tensor, top_p: float, candidates: int = CANDIDATES
) -> torch.Tensor:
    """Nucleus sampling by the sorted prefix: the top `candidates` tokens when they already hold
    top_p of the mass (the nucleus then lies inside them), a full sort for other rows."""
    k = min(candidates, probs.shape[-1])
    vals, idx = probs.topk(k, dim=-1)
    out = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
    enough = vals.sum(-1) >= top_p
    if enough.any():
        rows = enough.nonzero().squeeze(-1)
        out[rows] = _nucleus(vals[rows], idx[rows], noise[rows], top_p)
    if (~enough).any():
        rows = (~enough).nonzero().squeeze(-1)
        full_vals, full_idx = probs[rows].sort(dim=-1, descending=True)
        out[rows] = _nucleus(full_vals, full_idx, noise[rows], top_p)
    return out


RACE_ROUNDS = 6  # rounds of the race before a row goes to the sorted path


def sample_top_p(
    probs: torch.Tensor, noise: torch.Tensor, top_p: float, candidates: int = CANDIDATES
) -> torch.Tensor:
    """Exact nucleus sampling, `noise` holding one Exp(1) draw per row and token: the winner is
    the nucleus token with the largest p / E.

    The race is run first, without sorting: the token with the largest ratio wins when it lies
    in the nucleus (the tokens more likely than it hold less than top_p). When it does not, no
    token as unlikely does either, and they all leave the race. A round costs a few passes over
    the vocabulary where a sort costs dozens, and a few rounds settle nearly every row; the rest
    take the sorted path, which picks the same token.
    """
    tiny = torch.finfo(noise.dtype).tiny
    ratio = probs / noise.clamp_min(tiny)
    if top_p >= 1.0:
        return ratio.argmax(-1)
    out = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
    rows = torch.arange(probs.shape[0], device=probs.device)
    p = probs
    for _ in range(RACE_ROUNDS):
        best = ratio.argmax(-1, keepdim=True)
        p_best = p.gather(1, best)
        above = torch.where(p > p_best, p, 0.0).sum(-1)  # mass of the more likely tokens
        inside = above < top_p
        out[rows[inside]] = best[inside, 0]
        if bool(inside.all()):
            return out
        rows, p, ratio, p_best = rows[~inside], p[~inside], ratio[~inside], p_best[~inside]
        ratio = ratio.masked_fill(p <= p_best, -1.0)  # out of the nucleus with the loser
    out[rows] = sorted_top_p(probs[rows], noise[rows], top_p, candidates)
    return out


def race_noise(generators: Sequence[torch.Generator], vocab: int) -> torch.Tensor:
    """One Exp(1) draw per token for each row, each row from its own stream (-log(1 - U):
    uniforms are five times cheaper to draw than torch's exponential_)."""
    uniform = torch.stack([torch.rand(vocab, generator=g) for g in generators])
    return torch.log1p(-uniform).neg_()


def prompt_limit(lm: LanguageModel, config: SamplingConfig) -> int:
    """Prompt tokens a row may hold: the setting, within the model's context (less what a chat
    template wraps around the prompt)."""
    context = lm.context_length
    if context is None:
        return config.max_prompt_tokens
    wrapper = len(prompt_token_ids(lm, [""], config)[0])
    room = context - config.max_new_tokens - 8 - wrapper  # a margin: re-tokenizing may add a few
    if room < 1:
        raise InputError(f"max_new_tokens {config.max_new_tokens} leaves no room for a prompt in "
                         f"this model's context of {context} tokens; generate fewer")  # fmt: skip
    return min(config.max_prompt_tokens, room)


def check_chat_template(lm: LanguageModel, config: SamplingConfig) -> None:
    """Refuse, before any file is written, a chat template the tokenizer cannot give."""
    if config.chat_template != "none":
        _chat_prefix(lm, config.chat_template)


def _chat_prefix(lm: LanguageModel, where: str) -> tuple[str, str]:
    """The text before and after a prompt placed by the tokenizer's chat template."""
    tokenizer = lm.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(f"the tokenizer of '{lm.name}' has no chat template: use "
                         "--chat-template none (raw text prompts)")  # fmt: skip
    marker = "\x00PROMPT\x00"

    def render(messages: list[dict[str, str]]) -> str:
        return str(tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                 tokenize=False))  # fmt: skip

    if where == "user":
        text = render([{"role": "user", "content": marker}])
        before, _, after = text.partition(marker)
        return before, after
    # The assistant's reply begins with the prompt, after an empty user turn (chat templates
    # expect a conversation to open with one).
    return render([{"role": "user", "content": ""}]), ""


def prompt_token_ids(
    lm: LanguageModel, prompts: Sequence[str], config: SamplingConfig
) -> list[list[int]]:
    """The tokens the model reads for each prompt: its own, or inside the chat template (whose
    text carries any special tokens it wants, so the tokenizer adds none)."""
    if config.chat_template == "none":
        return [list(lm.tokenizer(p)["input_ids"]) for p in prompts]
    before, after = _chat_prefix(lm, config.chat_template)
    return [list(lm.tokenizer(before + p + after, add_special_tokens=False)["input_ids"])
            for p in prompts]  # fmt: skip


def shorten(lm: LanguageModel, prompts: Sequence[str], limit: int) -> list[str]:
    """Each prompt, or the text of its last `limit` tokens when it is longer (a continuation
    depends on the end of its prompt); the shortened text is what every later step uses."""
    out, cut = [], 0
    for prompt in prompts:
        if len(prompt.encode("utf-8")) < limit:  # a token spans at least a byte: nothing to cut
            out.append(prompt)
            continue
        text = prompt[-limit * CHARS_PER_TOKEN_BOUND :]
        ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > limit or len(text) < len(prompt):
            text = str(lm.tokenizer.decode(ids[-limit:], skip_special_tokens=True))
            cut += 1
        out.append(text)
    if cut:
        log.warning("%d prompt(s) longer than %d tokens keep only their last %d tokens", cut,
                    limit, limit)  # fmt: skip
    return out


def eos_ids(lm: LanguageModel) -> set[int]:
    ids = {lm.tokenizer.eos_token_id}
    gen_eos = getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)
    ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
    return {i for i in ids if i is not None}


def generate(
    lm: LanguageModel,
    prompts: Sequence[str],
    config: SamplingConfig | None = None,
    *,
    prompt_ids: Sequence[int] | None = None,
    capture_hidden: bool = False,
    progress: bool = True,
    advance: Callable[[int], None] | None = None,
) -> list[Generation]:
    """`config.samples` continuations of every prompt, in (prompt, sample) order.

    `prompt_ids` are the indices that seed each prompt's rows (default 0..n-1): pass the original
    indices when generating a subset, so that its continuations equal those of the full run.
    """
    config = config or SamplingConfig()
    prompt_ids = list(range(len(prompts))) if prompt_ids is None else list(prompt_ids)
    if len(prompt_ids) != len(prompts):
        raise InputError("prompt_ids must have one entry per prompt")
    prompts = shorten(lm, prompts, prompt_limit(lm, config))
    encoded = prompt_token_ids(lm, prompts, config)
    rows = [(p, s) for p in range(len(prompts)) for s in range(config.samples)]
    results: list[Generation] = []
    bar = tqdm(total=len(rows), desc="generate", unit="seq", disable=not progress)
    for start in range(0, len(rows), config.batch_size):
        chunk = rows[start : start + config.batch_size]
        results.extend(_generate_batch(lm, prompts, encoded, prompt_ids, chunk, config,
                                       capture_hidden))  # fmt: skip
        bar.update(len(chunk))
        if advance is not None:  # a caller's own progress bar, moved after every batch
            advance(len(chunk))
    bar.close()
    return results


@torch.inference_mode()
def _generate_batch(
    lm: LanguageModel,
    prompts: Sequence[str],
    encoded: Sequence[Sequence[int]],
    prompt_ids: list[int],
    rows: list[tuple[int, int]],
    config: SamplingConfig,
    capture_hidden: bool,
) -> list[Generation]:
    device = lm.device
    # The samples of one prompt share its prompt pass: it runs once per distinct prompt, and the
    # KV cache is then copied to each of its rows.
    distinct = list(dict.fromkeys(p for p, _ in rows))
    slot = {p: i for i, p in enumerate(distinct)}
    spread = torch.tensor([slot[p] for p, _ in rows], device=device)
    shared = len(distinct) < len(rows)
    batch = lm.pad([encoded[p] for p in distinct])
    b = len(rows)
    gens = [torch.Generator().manual_seed(row_seed(config.seed, prompt_ids[p], s)) for p, s in rows]
    eos = torch.tensor(sorted(eos_ids(lm)), device=device)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    extra: dict[str, Any] = {"logits_to_keep": 1} if accepts_logits_to_keep(lm) else {}
    # One cache object, filled in place step by step (what transformers' own generate does).
    extra[cache_argument(lm)] = DynamicCache(config=lm.model.config)

    tokens = torch.full((b, config.max_new_tokens), pad, dtype=torch.long, device=device)
    lengths = torch.full((b,), config.max_new_tokens, dtype=torch.long, device=device)
    finished = torch.zeros(b, dtype=torch.bool, device=device)
    hidden = torch.zeros(b, config.max_new_tokens, lm.arch.hidden_size) if capture_hidden else None

    input_ids, mask, positions = batch.input_ids, batch.attention_mask, batch.position_ids
    with capture(lm.unembedding, "input") as seen:
        for step in range(config.max_new_tokens):
            seen.clear()
            out = lm.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                **extra,
            )
            logits = out.logits[:, -1, :].float()
            last = seen[-1][:, -1, :] if hidden is not None else None
            if step == 0 and shared:  # from the distinct prompts to the rows
                logits = logits[spread]
                last = last[spread] if last is not None else None
                extra[cache_argument(lm)].reorder_cache(spread)
                mask, positions = mask[spread], positions[spread]
            if config.greedy:
                nxt = logits.argmax(-1)
            else:
                probs = torch.softmax(logits / config.temperature, dim=-1)
                noise = race_noise(gens, probs.shape[-1]).to(device)
                nxt = sample_top_p(probs, noise, config.top_p, config.candidates)
            nxt = torch.where(finished, torch.full_like(nxt, pad), nxt)
            tokens[:, step] = nxt
            if hidden is not None and last is not None:
                hidden[:, step] = last.float().cpu()
            hit_eos = torch.isin(nxt, eos) & ~finished
            lengths = torch.where(hit_eos, torch.full_like(lengths, step), lengths)
            finished |= hit_eos
            if bool(finished.all()):
                break
            input_ids = nxt.unsqueeze(-1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            positions = positions[:, -1:] + 1

    results = []
    for r, (p, s) in enumerate(rows):
        n = int(lengths[r])
        ids = tokens[r, :n].tolist()
        results.append(
            Generation(
                prompt_index=prompt_ids[p],
                sample_index=s,
                prompt=prompts[p],
                text=str(lm.tokenizer.decode(ids, skip_special_tokens=True)),
                token_ids=ids,
                hidden=hidden[r, :n].clone() if hidden is not None else None,
            )
        )
    return results
