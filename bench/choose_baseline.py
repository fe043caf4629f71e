"""The removed ``choose`` decoding mode, kept only as the baseline of ``bench/iteration.py``.

Before constrained decoding, ``policy.decoding=choose`` scored every admissible action as a
branch of the conversation's KV cache (all its tokens plus the end token), sampled one with
probability ∝ exp(mean token logprob), and handed the trainer the raw token logprobs of the
chosen branch. That trained a different distribution than it sampled (see docs/constrained.md),
which is why it was removed; it is reproduced here so its cost can be measured side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from agentgym.policy import kvcache
from agentgym.policy.base import Completion, Conversation, SamplingParams
from agentgym.policy.hf import HFPolicy


class ChooseBaseline(HFPolicy):
    """HFPolicy that picks admissible actions the old way (candidate branching)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, action_mode="generate", **kwargs)
        self._actions: dict[str, list[str]] = {}

    def generate(
        self, conversations: Sequence[Conversation], sampling: SamplingParams
    ) -> list[Completion]:
        self._actions = {
            c.key: [a for a in (c.info or {}).get("admissible_actions") or [] if a]
            for c in conversations
        }
        return super().generate(conversations, sampling)

    def _decode(self, rows, sampling: SamplingParams, generator) -> None:
        if not all(self._actions.get(r.key) for r in rows):
            return super()._decode(rows, sampling, generator)
        layers, ids, mask, positions = self._prefill_inputs(rows)
        cache = kvcache.to_cache(layers)
        self.stats["prefill_tokens"] += sum(len(r.feed) for r in rows)
        logits = self._forward(ids, mask, positions, cache)  # [B, V]
        full = kvcache.from_cache(cache)
        end = self.tokenizer.eos_token_id
        for b, row in enumerate(rows):
            actions = self._actions[row.key]
            kv = kvcache.extract(full, b, mask[b])
            cands = [self._encode(a) + [end] for a in actions]
            lps = _candidate_logprobs(self, kv, logits[b], cands, sampling.temperature)
            self.stats["decode_tokens"] += sum(len(c) for c in cands)
            scores = torch.tensor([sum(lp) / len(lp) for lp in lps], dtype=torch.float64)
            if sampling.temperature <= 0:
                k = int(torch.argmax(scores))
            else:
                k = int(torch.multinomial(torch.softmax(scores, 0), 1, generator=generator))
            row.response, row.logprobs, row.text = list(cands[k]), lps[k], actions[k]
            row.ended_eos = True
            if self.reuse_cache:
                row.new_kv = kv
        return None


def _candidate_logprobs(policy: HFPolicy, kv, first_logits, candidates, temperature):
    """Per-token logprobs of each candidate continuation after the cached sequence ``kv``."""
    n, width = len(candidates), max(len(c) for c in candidates)
    ids = torch.full((n, width), policy.pad_id, dtype=torch.long)
    new_mask = torch.zeros(n, width, dtype=torch.long)
    for i, cand in enumerate(candidates):
        ids[i, : len(cand)] = torch.tensor(cand)
        new_mask[i, : len(cand)] = 1
    layers = [(k.expand(n, -1, -1, -1).contiguous(), v.expand(n, -1, -1, -1).contiguous()) for k, v in kv.layers]
    mask = torch.cat([torch.ones(n, kv.length, dtype=torch.long), new_mask], 1)
    positions = torch.arange(kv.length, kv.length + width)[None].expand(n, -1)
    out = policy.model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        **{policy._cache_kw: kvcache.to_cache(layers)},
        use_cache=True,
    )
    logits = torch.cat([first_logits[None, None].expand(n, 1, -1), out.logits[:, :-1]], 1).float()
    if temperature > 0:
        logits = logits / temperature
    token_lp = torch.log_softmax(logits, -1).gather(-1, ids[..., None]).squeeze(-1)
    return [token_lp[i, : len(c)].tolist() for i, c in enumerate(candidates)]
