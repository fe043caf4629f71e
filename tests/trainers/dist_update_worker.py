"""Run under torchrun by test_distributed.py: one PPO update of a tiny model on every rank.

    torchrun --nproc-per-node 2 dist_update_worker.py STRATEGY OUT.pt [CHECKPOINTS]

Every rank builds the same model and the same samples (:func:`update_inputs`), runs
``ppo_update`` through ``agentgym.trainers.distributed`` and rank 0 saves the full parameters
and the returned stats to OUT.pt. With CHECKPOINTS, the job then saves a checkpoint there, runs
a second update ("straight"), and runs that second update again on a fresh model and optimizer
restored from the checkpoint ("resumed"); both parameter sets go to OUT.pt too.
"""

from __future__ import annotations

import random
import sys

import numpy as np
import torch

from agentgym.policy.models import tiny_model
from agentgym.trainers import checkpoint, distributed
from agentgym.trainers.loss import LossConfig
from agentgym.trainers.tensorize import Sample
from agentgym.trainers.update import ppo_update

UPDATE = dict(epochs=1, mini_batches=2, micro_batch_tokens=48, max_grad_norm=1.0, temperature=1.0)
LR = 1e-3


def update_inputs(n: int = 10, seed: int = 0, sparse: bool = False):
    """The tiny model (seeded) and ``n`` samples of random tokens, lengths and advantages
    (``sparse``: only the first two samples have non-zero advantages, so some mini-batches hold
    fewer samples to run than there are ranks)."""
    model, tokenizer = tiny_model(seed=seed)
    vocab = len(tokenizer)
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        ids, mask, old, adv, tid = [], [], [], [], []
        for turn in range(int(rng.integers(1, 4))):
            p, r = int(rng.integers(3, 10)), int(rng.integers(1, 6))
            ids += rng.integers(3, vocab, size=p + r).tolist()
            mask += [False] * p + [True] * r
            old += [0.0] * p + (-rng.uniform(0.5, 6.0, size=r)).tolist()
            a = float(rng.normal()) if (i < 2 or not sparse) else 0.0
            adv += [0.0] * p + [a] * r
            tid += [-1] * p + [i * 10 + turn] * r
        samples.append(Sample(ids, mask, old, adv, tid))
    return model, samples


def wrapped(model, ranks, strategy):
    """The trained module and its AdamW optimizer (built after wrapping, as FSDP2 needs)."""
    trained = distributed.wrap(model, ranks, strategy)
    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=LR)
    return trained, optimizer


def update(trained, optimizer, samples, ranks, seed=0):
    return ppo_update(
        trained,
        optimizer,
        samples,
        LossConfig(0.2, 0.28),
        pad_id=0,
        rng=random.Random(seed),
        ranks=ranks,
        **UPDATE,
    )


def full_params(trained) -> dict[str, torch.Tensor]:
    state, _ = distributed.full_state(trained)
    return {k: v.detach().clone() for k, v in state.items()}


def run_update(model, samples, ranks=distributed.SINGLE, strategy="ddp"):
    """One ppo_update; returns (full parameters by name, stats)."""
    trained, optimizer = wrapped(model, ranks, strategy)
    stats = update(trained, optimizer, samples, ranks)
    return full_params(trained), stats


def straight_and_resumed(strategy, ranks, folder):
    """Update, checkpoint, update again; and the second update again from the checkpoint."""
    model, samples = update_inputs()
    trained, optimizer = wrapped(model, ranks, strategy)
    update(trained, optimizer, samples, ranks)
    distributed.save_checkpoint(ranks, folder, 1, trained, optimizer, None, keep=2)
    update(trained, optimizer, samples, ranks, seed=1)
    straight = full_params(trained)
    fresh, _ = update_inputs(seed=5)  # other initial weights: all must come from the checkpoint
    trained, optimizer = wrapped(fresh, ranks, strategy)
    distributed.load_checkpoint(checkpoint.latest(folder), trained, optimizer, None)
    update(trained, optimizer, samples, ranks, seed=1)
    return straight, full_params(trained)


def main(strategy: str, out: str, folder: str | None = None) -> None:
    """``strategy`` is ``ddp`` or ``fsdp``, with ``-sparse`` for :func:`update_inputs`' sparse
    advantages."""
    ranks = distributed.init()
    torch.manual_seed(0)
    strategy, _, variant = strategy.partition("-")
    model, samples = update_inputs(sparse=variant == "sparse")
    params, stats = run_update(model, samples, ranks, strategy)
    result = {"params": params, "stats": stats, "world": ranks.world_size}
    if folder is not None:
        result["straight"], result["resumed"] = straight_and_resumed(strategy, ranks, folder)
    if ranks.is_main:
        torch.save(result, out)
    distributed.teardown(ranks)


if __name__ == "__main__":
    main(*sys.argv[1:4])
