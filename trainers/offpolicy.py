"""When the trainer's logprobs differ from the rollout's: measure it, and correct for it.

The rollout stores log π_rollout(a) of each sampled token. The trainer's forward can disagree
with it even at identical weights: bf16 or another kernel order, a vLLM engine, LoRA dropout
active in training mode, or ``top_p < 1`` (vLLM renormalises over the nucleus). Three tools:

- ``logprob_mismatch`` (logged every update): mean |log π_rollout − log π_trainer| over the
  response tokens of the first mini-batch, from the first training forward (before any step,
  so the weights are the rollout's). About 1e-7 in fp32 with the hf backend.
- ``trainer.recompute_old_logprobs``: before the update, one no-grad forward in eval mode gives
  log π_old under the trainer's own numerics; the PPO ratio π_θ/π_old then starts at 1 (up to
  dropout) instead of at the rollout/trainer discrepancy.
- ``trainer.tis_cap`` (truncated importance sampling, implies the recompute): the samples came
  from π_rollout, not π_old, so each token's loss is weighted by min(π_old/π_rollout, cap),
  detached. Capping bounds the variance; the weight is ≈1 where the two agree.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from agentgym.trainers.loss import response_logprobs
from agentgym.trainers.tensorize import Sample, collate, micro_batches

OldLogprobs = dict[int, torch.Tensor]
"""``id(sample)`` -> [n] log π_old of that sample's response tokens, in position order."""


@contextlib.contextmanager
def _eval(model: torch.nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def recompute_old_logprobs(
    model: torch.nn.Module,
    samples: Sequence[Sample],
    *,
    temperature: float,
    micro_batch_tokens: int,
    pad_id: int,
    device: str | torch.device,
) -> OldLogprobs:
    """log π_old of every response token of ``samples``: no grad, eval mode (no dropout)."""
    table: OldLogprobs = {}
    with _eval(model), torch.no_grad():
        for micro in micro_batches(samples, micro_batch_tokens):
            tb = collate(micro, pad_id).to(device)
            lp = response_logprobs(model, tb, temperature=temperature).logprobs.float()
            counts = tb.loss_mask[:, 1:].sum(dim=1).tolist()
            for s, part in zip(micro, lp.split(counts), strict=True):
                table[id(s)] = part
    return table


def old_logprobs_of(micro: Sequence[Sample], table: OldLogprobs) -> torch.Tensor:
    """[N] the recomputed log π_old of a micro-batch's response tokens (row-major, as loss)."""
    return torch.cat([table[id(s)] for s in micro])


def tis_weights(old_lp: torch.Tensor, rollout_lp: torch.Tensor, cap: float) -> torch.Tensor:
    """[N] truncated importance weights min(π_old / π_rollout, cap), detached."""
    return torch.exp(old_lp - rollout_lp).clamp(max=cap).detach()


def mismatch(rollout_lp: torch.Tensor, trainer_lp: torch.Tensor) -> float:
    """Mean |rollout − trainer| logprob over the given tokens (0 for none)."""
    if rollout_lp.numel() == 0:
        return 0.0
    return float((rollout_lp - trainer_lp.detach()).abs().mean())


def finite(value: torch.Tensor | float) -> bool:
    """Whether a loss or gradient norm (tensor, sharded tensor or float) is finite."""
    if isinstance(value, torch.Tensor):
        if hasattr(value, "full_tensor"):  # a DTensor under FSDP
            value = value.full_tensor()
        return bool(torch.isfinite(value).all())
    return bool(torch.isfinite(torch.tensor(float(value))))
