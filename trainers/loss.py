"""Per-token log-probabilities and the PPO-clip policy loss.

Everything here works on the flat vector of response tokens of a micro-batch: N = number of
positions where ``TensorBatch.loss_mask`` is True (row-major order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from agentgym.trainers.tensorize import TensorBatch

Aggregation = Literal["token-mean", "seq-mean"]


@dataclass(frozen=True)
class TokenOutputs:
    logprobs: torch.Tensor  # [N] log p(token) under the model at the sampling temperature
    entropy: torch.Tensor | None  # [N] entropy of the same distribution (None if not asked)


def response_logprobs(
    model: torch.nn.Module, tb: TensorBatch, *, temperature: float = 1.0, entropy: bool = False
) -> TokenOutputs:
    """Log-probabilities of the response tokens of ``tb`` under ``model``.

    Only response positions go through the LM head (prompt tokens dominate multi-turn
    sequences), so memory is O(N·V), not O(B·L·V). ``temperature`` must be the rollout's, so
    the numbers match the rollout's logprobs (0 = greedy is treated as 1).
    """
    out = model(
        input_ids=tb.input_ids,
        attention_mask=tb.attention_mask,
        output_hidden_states=True,
        logits_to_keep=1,
    )
    hidden = out.hidden_states[-1][:, :-1]  # [B, L-1, D], position p predicts token p+1
    select = tb.loss_mask[:, 1:]  # [B, L-1]
    h = hidden[select]  # [N, D]
    logits = model.get_output_embeddings()(h).float()  # [N, V]
    if temperature > 0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, dim=-1)  # [N, V]
    targets = tb.input_ids[:, 1:][select]  # [N]
    token_lp = logp.gather(-1, targets[:, None]).squeeze(-1)
    ent = None
    if entropy:
        ent = -(logp.exp() * logp).sum(-1)
    return TokenOutputs(token_lp, ent)


@dataclass(frozen=True)
class LossConfig:
    clip_low: float = 0.2
    clip_high: float = 0.2
    kl_coef: float = 0.0
    entropy_coef: float = 0.0
    aggregation: Aggregation = "token-mean"


def ppo_loss(
    new_lp: torch.Tensor,
    old_lp: torch.Tensor,
    advantages: torch.Tensor,
    turn_ids: torch.Tensor,
    cfg: LossConfig,
    *,
    total_tokens: int,
    total_turns: int,
    ref_lp: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-clip surrogate (Schulman et al. 2017, eq. 7) with optional k3 KL and entropy bonus.

    All tensors are [N] over the response tokens of one micro-batch. ``total_tokens`` and
    ``total_turns`` count the whole mini-batch, so summing the micro-batch losses under gradient
    accumulation gives exactly the mini-batch mean:

    - ``token-mean``: Σ_tokens ℓ / total_tokens;
    - ``seq-mean``: Σ_turns (mean of ℓ over the turn's tokens) / total_turns.

    KL to the reference uses the k3 estimator exp(r) − r − 1 with r = ref_lp − new_lp
    (Schulman 2020, "Approximating KL divergence").
    """
    log_ratio = new_lp - old_lp
    ratio = torch.exp(log_ratio)
    clipped = torch.clamp(ratio, 1.0 - cfg.clip_low, 1.0 + cfg.clip_high)
    per_token = -torch.minimum(ratio * advantages, clipped * advantages)  # [N]
    stats: dict[str, float] = {}
    if ref_lp is not None and cfg.kl_coef > 0:
        r = ref_lp - new_lp
        kl = torch.exp(r) - r - 1.0
        per_token = per_token + cfg.kl_coef * kl
        stats["kl_ref"] = float(kl.detach().mean()) if kl.numel() else 0.0
    if entropy is not None and cfg.entropy_coef > 0:
        per_token = per_token - cfg.entropy_coef * entropy
    if cfg.aggregation == "token-mean":
        loss = per_token.sum() / max(total_tokens, 1)
    elif cfg.aggregation == "seq-mean":
        _, inverse, counts = torch.unique(turn_ids, return_inverse=True, return_counts=True)
        weights = 1.0 / counts[inverse].to(per_token.dtype)  # [N] 1 / tokens of own turn
        loss = (per_token * weights).sum() / max(total_turns, 1)
    else:
        raise ValueError(f"unknown aggregation {cfg.aggregation!r}; use token-mean or seq-mean")
    with torch.no_grad():
        if new_lp.numel():
            stats["clipfrac"] = float(((ratio - clipped).abs() > 1e-8).float().mean())
            stats["approx_kl"] = float(((ratio - 1) - log_ratio).mean())
            stats["ratio"] = float(ratio.mean())
            if entropy is not None:
                stats["entropy"] = float(entropy.mean())
    return loss, stats
