"""What each removed direction means: the tokens it promotes, read off W v_i = s_i u_i.

The sign of a singular v_i is arbitrary, so tokens are oriented by delta_i: the "toxic side" lists
the tokens whose logits rise when a state moves the way toxic states do along v_i, which are the
logits the edit lowers. A toxic-word basis direction is signed by the toxic words it raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ...data.behaviour import judged_side
from ...models import LanguageModel
from ...models.architecture import weight_of
from ...models.placement import materialized
from ...scoring.vocabulary import TokenShare

if TYPE_CHECKING:
    from ..base import Intervention


def directions(lm: LanguageModel, intervention: Intervention, top: int) -> list[dict[str, Any]]:
    """Per selected direction: its place in the spectrum, delta, score (with its bootstrap
    interval and selection share) and the `top` tokens on each side."""
    with materialized(lm.unembedding):
        weight = weight_of(lm.unembedding).detach()  # stays loaded while referenced
    v_k = intervention.tensors["v_k"].to(weight.device, weight.dtype)
    indices = intervention.tensors["indices"].tolist()
    deltas = intervention.tensors["deltas"]
    scores = intervention.tensors["scores"]
    s = intervention.tensors["singular_values"]
    with torch.no_grad():
        logits = (weight @ v_k).float().cpu()  # (vocab, k)
    boot = intervention.meta.stats.get("stability", {}).get("bootstrap", {})
    share = intervention.meta.stats.get("token_share")  # `scoring.vocabulary.TokenShare`
    unwanted = judged_side(intervention.meta.behaviour)  # the words the tables use
    rows = []
    for rank, idx in enumerate(indices):
        # the toxic-word basis is signed by the toxic words themselves (decomposition.py)
        singular = intervention.params.get("basis", "singular") == "singular"
        sign = 1.0 if float(deltas[idx]) >= 0 or not singular else -1.0
        column = sign * logits[:, rank]
        toxic_side = column.topk(top).indices.tolist()
        other_side = (-column).topk(top).indices.tolist()
        rows.append(
            {
                "rank": rank + 1,
                "direction": idx,
                "singular_value": float(s[idx]),
                "spectrum_position": f"{idx + 1} of {len(s)}",
                "delta": float(deltas[idx]),
                "score": float(scores[idx]),
                "score_interval": [boot["score_low"][rank], boot["score_high"][rank]]
                if boot.get("score_low") else None,
                "selected_share": boot["selected_share"][rank] if boot.get("selected_share")
                else None,
                "toxic_side_tokens": [lm.tokenizer.decode([t]) for t in toxic_side],
                "other_side_tokens": [lm.tokenizer.decode([t]) for t in other_side],
                # the toxic share of its top promoted words, and all directions' against chance
                "toxic_word_share": share["per_direction"][rank] if share else None,
                "token_share": TokenShare(**share).line(unwanted) if share else None,
                "unwanted": unwanted,
            }
        )
    return rows
