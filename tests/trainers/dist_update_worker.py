"""Run under torchrun by test_distributed.py: one PPO update of a tiny model on every rank.

    torchrun --nproc-per-node 2 dist_update_worker.py STRATEGY OUT.pt

Every rank builds the same model and the same samples (:func:`update_inputs`), runs
``ppo_update`` through ``agentgym.trainers.distributed`` and rank 0 saves the full parameters
and the returned stats to OUT.pt.
"""

from __future__ import annotations

import random
import sys

import numpy as np
import torch

from agentgym.policy.models import tiny_model
from agentgym.trainers import distributed
from agentgym.trainers.loss import LossConfig
from agentgym.trainers.tensorize import Sample
from agentgym.trainers.update import ppo_update

UPDATE = dict(epochs=1, mini_batches=2, micro_batch_tokens=48, max_grad_norm=1.0, temperature=1.0)
LR = 1e-3


def update_inputs(n: int = 10, seed: int = 0):
    """The tiny model (seeded) and ``n`` samples of random tokens, lengths and advantages."""
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
            a = float(rng.normal())
            adv += [0.0] * p + [a] * r
            tid += [-1] * p + [i * 10 + turn] * r
        samples.append(Sample(ids, mask, old, adv, tid))
    return model, samples


def run_update(model, samples, ranks=distributed.SINGLE, strategy="ddp"):
    """One ppo_update; returns (full parameters by name, stats)."""
    trained = distributed.wrap(model, ranks, strategy)
    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=LR)
    stats = ppo_update(
        trained,
        optimizer,
        samples,
        LossConfig(0.2, 0.28),
        pad_id=0,
        rng=random.Random(0),
        ranks=ranks,
        **UPDATE,
    )
    state, _ = distributed.full_state(trained)
    return {k: v.detach().clone() for k, v in state.items()}, stats


def main(strategy: str, out: str) -> None:
    ranks = distributed.init()
    torch.manual_seed(0)
    model, samples = update_inputs()
    params, stats = run_update(model, samples, ranks, strategy)
    if ranks.is_main:
        torch.save({"params": params, "stats": stats, "world": ranks.world_size}, out)
    distributed.teardown(ranks)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
