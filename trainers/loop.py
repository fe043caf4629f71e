"""The training loop: collect → credit → tensorize → update → log → checkpoint.

``train(config)`` reads top to bottom as the algorithm. Each step is an importable function
with its own test; nothing here branches on which credit estimator or environment it got.
"""

from __future__ import annotations

import contextlib
import copy
import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from agentgym import credit
from agentgym.constraint import ConstraintCompiler
from agentgym.credit.diagnostics import credit_diagnostics
from agentgym.data import Batch
from agentgym.evaluate import batch_metrics
from agentgym.policy.base import Policy
from agentgym.pool import EnvPool
from agentgym.rollout import collect
from agentgym.store import Run
from agentgym.trainers import checkpoint, distributed
from agentgym.trainers.async_rollout import Rollouts, check_correction
from agentgym.trainers.build import (  # noqa: F401 - re-exported: tests and evaluate use them
    RunExistsError,
    build_model,
    build_policy,
    capture_prefix,
    collect_kwargs,
    env_pool,
    iteration_seed,
    open_run,
    resolve_device,
    run_eval,
    sampling_params,
    seed_everything,
)
from agentgym.trainers.config import TrainConfig
from agentgym.trainers.evals import check_eval_seeds, log_eval
from agentgym.trainers.faults import split_faults
from agentgym.trainers.filtering import keep_groups, select_trajectories
from agentgym.trainers.llds import check_layout
from agentgym.trainers.loss import LossConfig
from agentgym.trainers.resume import check_resume_config, eval_due
from agentgym.trainers.shaping import progress_stats, shape_rewards
from agentgym.trainers.tensorize import check_prefix, constrain, make_samples
from agentgym.trainers.update import (
    eval_mode,
    ppo_update,
    reference_from_adapter,
    reference_from_model,
)

Reporter = Callable[[dict[str, Any]], None]


def collect_iteration(
    cfg: TrainConfig,
    policy: Policy,
    it: int,
    ranks: distributed.Ranks = distributed.SINGLE,
    pool: EnvPool | None = None,
) -> Batch:
    """This rank's share of iteration ``it``: its tasks × group_size episodes with ``policy``."""
    first, count = distributed.task_shard(cfg.env.tasks_per_iter, ranks)
    model = getattr(policy, "model", None)  # an hf policy's model may be in training mode
    with eval_mode(model) if model is not None else contextlib.nullcontext(), torch.no_grad():
        return collect(
            cfg.env.id,
            policy,
            tasks=count,
            group_size=cfg.env.group_size,
            seed=cfg.env.seed + (it - 1) * cfg.env.tasks_per_iter + first,
            max_turns=cfg.env.max_turns,
            sampling=sampling_params(cfg, seed=ranks.seed(iteration_seed(cfg.seed, it))),
            env_kwargs=cfg.env.kwargs,
            group_prefix=f"it{it}:",
            pool=pool,
            **collect_kwargs(cfg),
        )


def build_rollouts(
    cfg: TrainConfig,
    policy: Policy,
    model: torch.nn.Module,
    tokenizer: Any,
    device: str,
    ranks: distributed.Ranks,
    version: int,
    pool: EnvPool | None = None,
) -> Rollouts:
    """Rollouts in step with the updates, or ahead of them (``trainer.max_staleness``) by a
    worker whose weights the update does not touch: the vLLM engine, or a copy of the model."""
    tc = cfg.trainer
    check_correction(tc.max_staleness, recompute_old=tc.recompute_old_logprobs, tis_cap=tc.tis_cap)
    worker = None
    if cfg.trainer.max_staleness > 0:
        own_weights = hasattr(policy, "sync_weights")
        worker = (
            policy if own_weights else build_policy(cfg, copy.deepcopy(model), tokenizer, device)
        )
    return Rollouts(
        lambda pol, it: collect_iteration(cfg, pol, it, ranks, pool),
        policy,
        model=model,
        max_staleness=cfg.trainer.max_staleness,
        version=version,
        last_iteration=cfg.trainer.iterations,
        ranks=ranks,
        worker=worker,
    )


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    report: Reporter | None = None,
    allow_config_change: bool = False,
) -> Run:
    """Train ``cfg.policy.model`` on ``cfg.env.id``; return the run (``report`` gets each record).

    ``resume`` continues the run from its latest checkpoint; its config must be the run's own
    unless ``allow_config_change`` (see :mod:`agentgym.trainers.resume`).
    """
    check_resume_config(cfg, resume=resume, allow_change=allow_config_change)
    check_eval_seeds(cfg)  # held-out evaluation: its seeds must not be training seeds
    ranks = distributed.init()  # rank and world size under torchrun; one process otherwise
    run = _train(cfg, ranks, resume=resume, report=report)
    # after _train's frame is gone, so no wrapped model holds the process group any more
    distributed.teardown(ranks)
    return run


def _train(
    cfg: TrainConfig, ranks: distributed.Ranks, *, resume: bool, report: Reporter | None
) -> Run:
    """The loop of :func:`train` on this rank."""
    report = report if report and ranks.is_main else (lambda record: None)
    with distributed.main_first(ranks):
        run = open_run(cfg, resume, ranks)
    seed_everything(cfg.seed)
    device = ranks.device(resolve_device(cfg.policy.device))
    model, tokenizer = build_model(cfg, device)
    policy = build_policy(cfg, model, tokenizer, device, ranks)
    prefix_layer = capture_prefix(cfg, policy, model, ranks)  # 0: the update runs every layer
    tc = cfg.trainer
    trained = distributed.wrap(model, ranks, tc.strategy)  # DDP/FSDP2, or the model itself
    params = [p for p in trained.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    warmup = max(tc.warmup_iters, 0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min(1.0, (i + 1) / warmup) if warmup else 1.0
    )
    reference = None
    if tc.kl_coef > 0:
        if cfg.lora.enabled:
            reference = reference_from_adapter(model, cfg.policy.temperature)
        else:
            frozen = copy.deepcopy(model).eval().requires_grad_(False)
            reference = reference_from_model(frozen, cfg.policy.temperature)
    loss_cfg = LossConfig(
        tc.clip_low,
        tc.clip_high,
        tc.kl_coef,
        tc.entropy_coef,
        tc.aggregation,
        kl_estimator=tc.kl_estimator,
        kl_in=tc.kl_in,
    )
    layout = cfg.policy.history if tc.layout == "auto" else tc.layout
    check_layout(tc.llds, layout)
    estimator = credit.get(cfg.credit.estimator)
    credit_cfg = credit.make_config(cfg.credit.estimator, cfg.credit.options)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    constraints = ConstraintCompiler(tokenizer, getattr(model.config, "vocab_size", None))

    start = 1
    ckpt = checkpoint.latest(run.checkpoints_dir) if resume else None
    if ckpt is not None:
        state = distributed.load_checkpoint(ckpt, trained, optimizer, scheduler)
        start = state["iteration"] + 1
        run.truncate_after(state["store_iteration"])  # drop work done after the checkpoint
    elif resume:
        run.truncate_after(0)
    pool = env_pool(cfg)  # env instances reused across iterations; closed at the end or on GC
    rollouts = build_rollouts(
        cfg, policy, model, tokenizer, device, ranks, version=start - 1, pool=pool
    )
    # the evaluation due after the last finished iteration (before training: iteration 0) runs
    # now when its record is missing, e.g. the process died during it
    done = start - 1
    evaluated = {r.get("iteration") for r in run.read_metrics() if r.get("phase") == "eval"}
    if ranks.is_main and eval_due(tc, done) and done not in evaluated:
        result = rollouts.call(lambda pol: run_eval(cfg, pol, model, iteration=done))
        report(log_eval(run, result, done))  # RUN/evals/iter-NNNNN.json + the metrics line

    for it in range(start, tc.iterations + 1):
        t0 = time.perf_counter()
        # 1. collect: tasks × group_size episodes (each rank its share, gathered), in step
        #    with the update or ahead of it in a thread (trainer.max_staleness)
        if prefix_layer:
            policy.pop_prefix_states()  # an evaluation's
        batch = rollouts.get(it)
        states = (prefix_layer, policy.pop_prefix_states()) if prefix_layer else None
        t_rollout = time.perf_counter() - t0
        # episodes whose env raised or hung stay out of credit and loss (env.faults), or stop
        # the run when too many did (env.max_fault_rate)
        batch, faulted = split_faults(batch, cfg.env, it)
        # 2. credit: one advantage per turn, from the shaped rewards
        shaped = shape_rewards(batch, cfg.reward)
        advantages = estimator(shaped, credit_cfg)  # [T]
        batch = batch.with_advantages(estimator.name, advantages)
        run.write_trajectories(Batch(batch.trajectories + faulted), it)
        # 3. tensorize and 4. update
        t1 = time.perf_counter()
        keep, filtered = keep_groups(shaped, tc.filter_groups)  # [N] trajectories in the update
        kept, kept_advantages = select_trajectories(batch, advantages, keep)
        samples = make_samples(kept, kept_advantages, layout, states)
        samples = check_prefix(constrain(samples, kept, constraints))
        del states
        rollouts.before_update()
        stats = ppo_update(
            trained,
            optimizer,
            samples,
            loss_cfg,
            epochs=tc.ppo_epochs,
            mini_batches=tc.mini_batches,
            micro_batch_tokens=tc.micro_batch_tokens,
            max_grad_norm=tc.max_grad_norm,
            temperature=cfg.policy.temperature,
            pad_id=pad_id,
            reference=reference,
            device=device,
            rng=random.Random(iteration_seed(cfg.seed, it)),
            recompute_old=tc.recompute_old_logprobs,
            tis_cap=tc.tis_cap,
            llds=tc.llds,
            ranks=ranks,
        )
        with warnings.catch_warnings():  # an iteration without signal made no optimizer step
            warnings.filterwarnings(
                "ignore", message="Detected call of `lr_scheduler.step", category=UserWarning
            )
            scheduler.step()
        rollouts.after_update(trained)  # the new version: into the engine, or published
        t_update = time.perf_counter() - t1
        # 5. log
        outcome = batch_metrics(Batch(batch.trajectories + faulted))
        ran = (
            [s for s in samples if any(s.advantages)]
            if stats.get("zero_advantage_samples")
            else samples
        )
        tokens = sum(len(s.input_ids) for s in ran)  # the samples the update ran
        record = {
            "phase": "train",
            **outcome,
            **stats,
            **filtered,
            **credit_diagnostics(shaped, credit_cfg),  # what credit had to work with
            **progress_stats(batch, cfg.reward.progress),  # sub-goals reached, shaping apart
            **rollouts.stats,
            "reused_states_share": sum(s.prefix is not None for s in samples)
            / max(len(samples), 1),
            "rollout_s": t_rollout,
            "update_s": t_update,
            "rollout_tokens_per_s": outcome["response_tokens"] / max(t_rollout, 1e-9),
            "train_tokens_per_s": tokens * tc.ppo_epochs / max(t_update, 1e-9),
        }
        report(run.log_metrics(record, iteration=it))
        # 6. checkpoint, and evaluate now and then
        if it % max(tc.checkpoint_every, 1) == 0 or it == tc.iterations:
            distributed.save_checkpoint(
                ranks,
                run.checkpoints_dir,
                it,
                trained,
                optimizer,
                scheduler,
                keep=tc.keep_checkpoints,
                store_iteration=it,
            )
        if ranks.is_main and eval_due(tc, it):
            result = rollouts.call(lambda pol, it=it: run_eval(cfg, pol, model, iteration=it))
            report(log_eval(run, result, it))
    rollouts.close()
    pool.close()
    if ranks.is_main:
        export_model(run, model, tokenizer)
    return run


def export_model(run: Run, model: torch.nn.Module, tokenizer: Any) -> Path:
    """Save the trained policy as a Hugging Face folder ``run/model`` (LoRA merged in)."""
    out = run.path / "model"
    to_save = model
    if hasattr(model, "merge_and_unload"):
        to_save = copy.deepcopy(model).merge_and_unload()
    to_save.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
