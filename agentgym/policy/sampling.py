"""Token sampling for the ``hf`` policy: temperature, nucleus (top-p), logprobs, stop strings.

Logprob convention (shared with the trainer): a sampled token's logprob is taken under
``log_softmax(logits / temperature)`` over the full vocabulary, i.e. the distribution the
trainer recomputes from the same logits and temperature. Top-p changes which tokens can be
drawn, not the reported logprob. Greedy decoding (temperature 0) reports ``log_softmax(logits)``.

Constrained decoding (``allowed``, see :mod:`agentgym.constraint`): the distribution is the same
softmax renormalised over the allowed tokens (disallowed logits set to -inf before the
log-softmax); sampling, greedy choice and the reported logprob all use that distribution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def scaled_log_probs(
    logits: torch.Tensor, temperature: float, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """``log_softmax(logits / temperature)`` in float32 (temperature 0 counts as 1). [..., V]

    With ``allowed`` (bool [..., V]) the softmax runs over the allowed tokens only (the others
    get -inf): the renormalised distribution of constrained decoding.
    """
    logits = logits.float()
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    return torch.log_softmax(logits, dim=-1)


def restricted_entropy(logp: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of ``logp`` [..., V] whose disallowed entries are -inf. [...]"""
    p = logp.exp()
    # -inf entries (p = 0) are zeroed before the product, so no 0 * -inf reaches the gradient
    return -(p * torch.where(p > 0, logp, torch.zeros_like(logp))).sum(-1)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logprob of each of ``tokens`` [...] under ``logits`` [..., V] at ``temperature``."""
    logp = scaled_log_probs(logits, temperature)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def top_p_filter(logp: torch.Tensor, top_p: float) -> torch.Tensor:
    """Set logprobs outside the smallest set holding ``top_p`` of the mass to -inf. [B, V]"""
    if top_p >= 1.0:
        return logp
    sorted_logp, order = torch.sort(logp, dim=-1, descending=True)
    mass_before = torch.cumsum(sorted_logp.exp(), dim=-1) - sorted_logp.exp()
    drop_sorted = mass_before >= top_p  # the top token always stays (its mass_before is 0)
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logp.masked_fill(drop, float("-inf"))


def sample_next(
    logits: torch.Tensor,
    temperature: float,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row from ``logits`` [B, V]; return ``(tokens [B], logprobs [B])``.

    Temperature 0 is greedy (argmax). ``allowed`` (bool [B, V]) restricts each row to its
    allowed tokens. Logprobs follow the module's convention.
    """
    logp = scaled_log_probs(logits, temperature, allowed)
    if temperature <= 0:
        tokens = logp.argmax(dim=-1)
    else:
        probs = top_p_filter(logp, top_p).exp()
        tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    return tokens, logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """End index of the earliest stop string in ``text`` (the cut keeps the stop), else None."""
    ends = [i + len(s) for s in stops if s and (i := text.find(s)) >= 0]
    return min(ends) if ends else None
