"""Constrained action choice: score each admissible action under the model and pick one.

A small model prompted cold often answers a text game by describing the room instead of acting.
In ``choose`` mode the policy does not free-generate: for each conversation it scores every
admissible action ``a`` as the reply ``tokens(a) + <end>`` continuing the prompt, and samples
an action with probability ∝ exp(Σ log p_T(token)) (greedy at temperature 0). The completion
carries those tokens and their per-token logprobs under ``log_softmax(logits / T)``, the same
convention as free generation, so the trainer needs nothing special: raising an action's
likelihood raises its chance of being chosen. The behaviour policy is the renormalised
distribution over candidates; the logprobs are the model's token logprobs (the PPO ratio is 1
on-policy either way).

Cost: the prompt is prefilled once (with KV reuse across turns); each candidate adds only its
few tokens, attending to a copy of the conversation's cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from agentgym.policy import kvcache
from agentgym.policy.kvcache import SeqKV


def candidate_logprobs(
    model: Any,
    kv: SeqKV,
    first_logits: torch.Tensor,
    candidates: Sequence[Sequence[int]],
    temperature: float,
    pad_id: int,
) -> list[list[float]]:
    """Per-token logprobs of each candidate continuation after the cached sequence ``kv``.

    ``first_logits`` [V] are the logits at the last cached position (they predict each
    candidate's first token). Returns one list of logprobs per candidate.
    """
    n = len(candidates)
    width = max(len(c) for c in candidates)
    device = first_logits.device
    ids = torch.full((n, width), pad_id, dtype=torch.long, device=device)
    new_mask = torch.zeros(n, width, dtype=torch.long, device=device)
    for i, cand in enumerate(candidates):
        ids[i, : len(cand)] = torch.tensor(list(cand), device=device)
        new_mask[i, : len(cand)] = 1
    layers = [
        (k.expand(n, -1, -1, -1).contiguous(), v.expand(n, -1, -1, -1).contiguous())
        for k, v in kv.layers
    ]  # [n, H, L, D] each
    mask = torch.cat([torch.ones(n, kv.length, dtype=torch.long, device=device), new_mask], 1)
    positions = torch.arange(kv.length, kv.length + width, device=device)[None].expand(n, -1)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        past_key_values=kvcache.to_cache(layers),
        use_cache=True,
    )
    # logits predicting candidate token j: the prompt's last position for j = 0, else j - 1
    logits = torch.cat([first_logits[None, None].expand(n, 1, -1), out.logits[:, :-1]], 1)
    logits = logits.float()
    if temperature > 0:
        logits = logits / temperature
    token_lp = torch.log_softmax(logits, -1).gather(-1, ids[..., None]).squeeze(-1)  # [n, W]
    return [token_lp[i, : len(c)].tolist() for i, c in enumerate(candidates)]


def pick(scores: Sequence[float], temperature: float, generator: torch.Generator | None) -> int:
    """Index of the chosen candidate: argmax at temperature 0, else a draw ∝ exp(score)."""
    s = torch.tensor(list(scores), dtype=torch.float64)
    if temperature <= 0:
        return int(torch.argmax(s))
    probs = torch.softmax(s, 0)
    return int(torch.multinomial(probs, 1, generator=generator))
