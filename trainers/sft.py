"""Supervised warm start: train the policy on expert replies, then hand its weights to RL.

``agentgym sft CONFIG`` reads the same recipe as ``agentgym train``: the model (and LoRA), the
prompt layout, the decoding mode and the evaluation, plus its ``sft`` section (where the
expert trajectories come from, epochs, learning rate). The loop::

    expert trajectories (runs in sft.data, or the env's oracle played now)
      → tokens as the recipe's policy would have fed and sampled them (expert_data)
      → epochs of  −(1/N) Σ_tokens log π(token)  steps, π the distribution the policy samples
        from (under constrained decoding: the softmax renormalised over the allowed tokens)
      → greedy evaluation after each epoch (the trainer's own) → RUN/model

``RUN/model`` (LoRA merged in) is a Hugging Face folder: ``agentgym train CONFIG
policy.model=RUN/model`` starts RL from it, and ``agentgym eval`` evaluates it.

Per token, with logits z, temperature T and allowed set A (all tokens when unconstrained),
log π(y) = z_y/T − log Σ_{v∈A} exp(z_v/T), whose gradient in z is (e_y − π)/T on A: exactly the
trainer's ``response_logprobs``, so the warm start and the PPO update train one distribution.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from agentgym.constraint import ConstraintCompiler
from agentgym.data import Batch
from agentgym.policy.scripted import OraclePolicy
from agentgym.rollout import collect
from agentgym.store import Run
from agentgym.trainers.build import (
    build_model,
    build_policy,
    collect_kwargs,
    open_run,
    resolve_device,
    run_eval,
    seed_everything,
)
from agentgym.trainers.config import TrainConfig
from agentgym.trainers.evals import log_eval
from agentgym.trainers.expert_data import expert_batch, read_trajectories
from agentgym.trainers.loop import export_model
from agentgym.trainers.loss import response_distribution
from agentgym.trainers.tensorize import (
    Sample,
    TensorBatch,
    collate,
    constrain,
    make_samples,
    micro_batches,
)

Reporter = Callable[[dict[str, Any]], None]
EXPERT_DIR = "expert"
"""Subfolder of an sft run holding the oracle episodes it played (a rollout folder)."""


def expert_samples(batch: Batch, layout: str, compiler: ConstraintCompiler) -> list[Sample]:
    """Training samples of the expert batch: every reply token in the loss (advantage 1)."""
    ones = np.ones(batch.num_turns, dtype=np.float32)
    return constrain(make_samples(batch, ones, layout), batch, compiler)  # type: ignore[arg-type]


def token_logprobs(
    model: torch.nn.Module, tb: TensorBatch, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """log π of the N reply tokens of ``tb`` ([N], with grad) and whether each is the mode of
    its (restricted) distribution ([N] bool: what greedy decoding would pick)."""
    logp, targets = response_distribution(model, tb, temperature)  # the policy's own
    token_lp = logp.gather(-1, targets[:, None]).squeeze(-1)
    return token_lp, logp.argmax(-1) == targets


def sft_loss(token_lp: torch.Tensor, total_tokens: int) -> torch.Tensor:
    """−Σ log π / total_tokens: summed over micro-batches, the token mean of the step."""
    return -token_lp.sum() / max(total_tokens, 1)


def sft_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    samples: Sequence[Sample],
    *,
    temperature: float,
    micro_batch_tokens: int,
    max_grad_norm: float,
    pad_id: int,
    device: str | torch.device,
) -> dict[str, float]:
    """One optimizer step on ``samples``; returns the step's mean NLL per token, the share of
    tokens and of turns the greedy policy gets right, and the gradient norm."""
    total = sum(sum(s.loss_mask[1:]) for s in samples)
    optimizer.zero_grad(set_to_none=True)
    nll, right = 0.0, 0
    turns_ok: dict[int, bool] = {}
    for micro in micro_batches(samples, micro_batch_tokens):
        tb = collate(micro, pad_id).to(device)
        token_lp, mode = token_logprobs(model, tb, temperature)
        loss = sft_loss(token_lp, total)
        loss.backward()
        nll += float(loss.detach()) * total
        right += int(mode.sum())
        turn_of = tb.turn_ids[:, 1:][tb.loss_mask[:, 1:]].tolist()  # [N]
        for turn, ok in zip(turn_of, mode.tolist(), strict=True):
            turns_ok[turn] = turns_ok.get(turn, True) and bool(ok)
    params = [p for p in model.parameters() if p.requires_grad]
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    optimizer.step()
    return {
        "sft_nll": nll / max(total, 1),
        "token_accuracy": right / max(total, 1),
        "turn_accuracy": sum(turns_ok.values()) / max(len(turns_ok), 1),
        "grad_norm": grad_norm,
        "tokens": float(total),
        "turns": float(len(turns_ok)),
    }


def oracle_episodes(cfg: TrainConfig, run: Run) -> Run:
    """Play the training env's expert for ``sft.oracle_episodes`` episodes into
    ``RUN/expert`` (a rollout folder: replay, inspect and view read it)."""
    sc = cfg.sft
    batch = collect(
        cfg.env.id,
        OraclePolicy(),
        tasks=sc.oracle_episodes,
        group_size=1,
        seed=sc.oracle_seed,
        max_turns=cfg.env.max_turns,
        env_kwargs=cfg.env.kwargs,
        group_prefix="expert:",
        **collect_kwargs(cfg),
    )
    expert = Run.create(run.path / EXPERT_DIR, config={"policy": "oracle", "env": cfg.env.id})
    expert.write_trajectories(batch, 1)
    return expert


def warm_start(cfg: TrainConfig, *, report: Reporter | None = None) -> Run:
    """Train ``cfg.policy.model`` on expert replies (see the module docstring); return the run,
    whose ``model`` folder holds the trained weights."""
    report = report or (lambda record: None)
    sc = cfg.sft
    if not sc.data and sc.oracle_episodes <= 0:
        raise ValueError(
            "sft needs expert trajectories: set sft.data=[RUN, ...] (folders written by "
            "`agentgym rollout ENV --policy oracle --out RUN` or by training) or "
            "sft.oracle_episodes=N to play the environment's own expert."
        )
    run = open_run(cfg, resume=False)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.policy.device)
    model, tokenizer = build_model(cfg, device)
    sources = list(sc.data) or [str(oracle_episodes(cfg, run).path)]
    trajectories = read_trajectories(sources, won_only=sc.won_only, limit=sc.max_trajectories)
    compiler = ConstraintCompiler(tokenizer, getattr(model.config, "vocab_size", None))
    window = cfg.policy.window if cfg.policy.history == "window" else None
    fmt = collect_kwargs(cfg)["action_format"]
    batch, counts = expert_batch(
        trajectories,
        tokenizer,
        fmt,
        constrained=cfg.policy.decoding == "constrained",
        compiler=compiler,
        window=window,
    )
    run.write_trajectories(batch, 1)  # the targets, as trained: inspect and view read them
    layout = cfg.policy.history if cfg.trainer.layout == "auto" else cfg.trainer.layout
    samples = expert_samples(batch, layout, compiler)
    report(
        run.log_metrics(
            {
                "phase": "data",
                "trajectories": len(batch),
                "turns": batch.num_turns,
                "reply_tokens": sum(sum(s.loss_mask) for s in samples),
                **{f"trajectories_{k}": v for k, v in counts.items()},
            }
        )
    )
    policy = build_policy(cfg, model, tokenizer, device)
    if cfg.trainer.eval_at_start:
        report(log_eval(run, run_eval(cfg, policy, model, iteration=0), 0))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=sc.lr, weight_decay=cfg.trainer.weight_decay)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    per_step = max(1, sc.batch_trajectories)
    rng = random.Random(cfg.seed)
    for epoch in range(1, sc.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = list(samples)
        rng.shuffle(order)
        steps = [order[i : i + per_step] for i in range(0, len(order), per_step)]
        stats = [
            sft_step(
                model,
                optimizer,
                step,
                temperature=cfg.policy.temperature,
                micro_batch_tokens=cfg.trainer.micro_batch_tokens,
                max_grad_norm=cfg.trainer.max_grad_norm,
                pad_id=pad_id,
                device=device,
            )
            for step in steps
        ]
        tokens = sum(s["tokens"] for s in stats)
        turns = sum(s["turns"] for s in stats)
        record = {
            "phase": "sft",
            "steps": len(stats),
            **{
                k: sum(s[k] * s["tokens"] for s in stats) / max(tokens, 1)
                for k in ("sft_nll", "token_accuracy")
            },
            "turn_accuracy": sum(s["turn_accuracy"] * s["turns"] for s in stats) / max(turns, 1),
            "grad_norm": float(np.mean([s["grad_norm"] for s in stats])),
            "epoch_s": time.perf_counter() - t0,
        }
        report(run.log_metrics(record, iteration=epoch))
        if epoch == sc.epochs or (sc.eval_every and epoch % sc.eval_every == 0):
            report(log_eval(run, run_eval(cfg, policy, model, iteration=epoch), epoch))
    export_model(run, model, tokenizer)
    return run


__all__ = [
    "EXPERT_DIR",
    "expert_samples",
    "sft_loss",
    "sft_step",
    "token_logprobs",
    "warm_start",
]
