"""One policy update: PPO epochs over mini-batches, gradient accumulation over micro-batches."""

from __future__ import annotations

import contextlib
import random
from collections import defaultdict
from collections.abc import Callable, Sequence

import torch

from agentgym.trainers.distributed import SINGLE, Ranks, full_tensor
from agentgym.trainers.llds import llds_term
from agentgym.trainers.loss import LossConfig, ppo_loss, response_logprobs
from agentgym.trainers.offpolicy import (
    finite,
    mismatch,
    old_logprobs_of,
    recompute_old_logprobs,
    tis_weights,
)
from agentgym.trainers.options import LLDSSection
from agentgym.trainers.tensorize import Sample, TensorBatch, collate, micro_batches

RefLogprobs = Callable[[TensorBatch], torch.Tensor]


def reference_from_adapter(model: torch.nn.Module, temperature: float) -> RefLogprobs:
    """Reference logprobs of a peft model with its adapters switched off (no second copy)."""

    def ref(tb: TensorBatch) -> torch.Tensor:
        with torch.no_grad(), model.disable_adapter():
            return response_logprobs(model, tb, temperature=temperature).logprobs

    return ref


def reference_from_model(ref_model: torch.nn.Module, temperature: float) -> RefLogprobs:
    """Reference logprobs from a frozen copy of the initial model."""

    def ref(tb: TensorBatch) -> torch.Tensor:
        with torch.no_grad():
            return response_logprobs(ref_model, tb, temperature=temperature).logprobs

    return ref


def _split(samples: Sequence[Sample], parts: int) -> list[list[Sample]]:
    parts = max(1, min(parts, len(samples)))
    return [list(samples[i::parts]) for i in range(parts)]


def ppo_update(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    samples: Sequence[Sample],
    loss_cfg: LossConfig,
    *,
    epochs: int = 1,
    mini_batches: int = 1,
    micro_batch_tokens: int = 2048,
    max_grad_norm: float = 1.0,
    temperature: float = 1.0,
    pad_id: int = 0,
    reference: RefLogprobs | None = None,
    device: str | torch.device = "cpu",
    rng: random.Random | None = None,
    recompute_old: bool = False,  # log π_old from a no-grad forward (agentgym.trainers.offpolicy)
    tis_cap: float = 0.0,  # > 0: tokens weighted by min(π_old / π_rollout, cap); implies recompute
    llds: LLDSSection | None = None,  # the LLDS likelihood term (agentgym.trainers.llds)
    ranks: Ranks = SINGLE,
) -> dict[str, float]:
    """Run ``epochs`` × ``mini_batches`` optimizer steps on ``samples``; return mean stats.

    Under ``torchrun`` every rank passes the same ``samples`` and runs its part of each
    mini-batch (``ranks.micro_plan``); the step equals the single-process one.
    """
    rng = rng or random.Random(0)
    if not samples:  # nothing to train on (every group filtered out): no step
        return {"lr": float(optimizer.param_groups[0]["lr"]), "empty_update": 1.0}
    old_table = None
    if recompute_old or tis_cap > 0:
        old_table = recompute_old_logprobs(
            model,
            samples,
            temperature=temperature,
            micro_batch_tokens=micro_batch_tokens,
            pad_id=pad_id,
            device=device,
        )
    once: dict[str, float] = {"lr": float(optimizer.param_groups[0]["lr"]), "skipped_steps": 0}
    # With no KL, entropy or LLDS term, a sample whose advantages are all 0 adds nothing to the
    # gradient: it is not run (it still counts in the token/turn normalisers, so the gradient
    # is unchanged), and a mini-batch of only such samples makes no optimizer step.
    every_sample = loss_cfg.kl_coef > 0 or loss_cfg.entropy_coef > 0 or bool(llds and llds.coef)
    once["zero_advantage_samples"] = 0
    measured = False  # logprob_mismatch comes from the first mini-batch
    totals: dict[str, float] = defaultdict(float)
    steps = 0
    model.train()
    for _ in range(epochs):
        order = list(samples)
        rng.shuffle(order)
        for mini in _split(order, mini_batches):
            total_tokens = sum(sum(s.loss_mask[1:]) for s in mini)
            total_turns = len({t for s in mini for t in s.turn_ids if t >= 0})
            optimizer.zero_grad(set_to_none=True)
            step_stats: dict[str, float] = defaultdict(float)
            active = mini if every_sample else [s for s in mini if any(s.advantages)]
            once["zero_advantage_samples"] += len(mini) - len(active)
            if not active:
                continue
            active_tokens = sum(sum(s.loss_mask[1:]) for s in active)
            plan = ranks.micro_plan(active, lambda part: micro_batches(part, micro_batch_tokens))
            for j, (micro, share) in enumerate(plan):
                ranks.set_gradient_sync(model, j == len(plan) - 1)  # all-reduce on the last
                tb = collate(micro, pad_id).to(device)
                select = tb.loss_mask[:, 1:]  # [B, L-1] aligned with predictions
                out = response_logprobs(model, tb, temperature=temperature, entropy=True)
                new_lp, entropy = out.logprobs, out.entropy
                del out
                if entropy is not None and loss_cfg.entropy_coef == 0:
                    entropy = entropy.detach()  # logged only: its graph is freed here
                ref_lp = reference(tb) if reference is not None and loss_cfg.kl_coef > 0 else None
                rollout_lp = tb.old_logprobs[:, 1:][select]
                old_lp = rollout_lp
                if old_table is not None:
                    old_lp = old_logprobs_of(micro, old_table).to(rollout_lp.device)
                loss, stats = ppo_loss(
                    new_lp,
                    old_lp,
                    tb.advantages[:, 1:][select],
                    tb.turn_ids[:, 1:][select],
                    loss_cfg,
                    total_tokens=total_tokens,
                    total_turns=total_turns,
                    ref_lp=ref_lp,
                    entropy=entropy,
                    token_weights=tis_weights(old_lp, rollout_lp, tis_cap) if tis_cap > 0 else None,
                )
                if not measured:
                    stats["logprob_mismatch"] = mismatch(rollout_lp, new_lp)
                if llds is not None and llds.coef > 0:
                    reg, reg_stats = llds_term(
                        llds,
                        new_lp,
                        old_lp,
                        tb.advantages[:, 1:][select],
                        select,
                        tb.turn_ids[:, 1:][select],
                        total_tokens=total_tokens,
                    )
                    loss = loss + reg
                    stats.update(reg_stats)
                (loss * (share * ranks.loss_scale)).backward()
                weight = (
                    share * int(select.sum()) / max(active_tokens, 1)
                )  # stats: mean over run tokens
                step_stats["loss"] += share * float(loss.detach())
                for k, v in stats.items():
                    step_stats[k] += v * weight
            step_stats = ranks.sum_stats(step_stats)
            params = [p for p in model.parameters() if p.requires_grad]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            ok = finite(grad_norm) and finite(step_stats["loss"])
            if ok:
                optimizer.step()
            else:  # a NaN/inf loss or gradient: keep the weights, log the skip
                once["skipped_steps"] += 1
            step_stats["grad_norm"] = float(full_tensor(grad_norm))
            if not measured:
                once["logprob_mismatch"] = step_stats.pop("logprob_mismatch", 0.0)
                measured = True
            if ok:
                for k, v in step_stats.items():
                    totals[k] += v
                steps += 1
    optimizer.zero_grad(set_to_none=True)
    if not steps:  # no signal anywhere (every advantage 0): the loss is 0 and nothing moved
        totals.update(loss=0.0, grad_norm=0.0)
    return {**{k: v / max(steps, 1) for k, v in totals.items()}, **once}


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """Switch ``model`` to eval mode for generation, back to its previous mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
