"""RLOO: the episode return minus the mean return of the other trajectories of its group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agentgym.credit._segments import leave_one_out
from agentgym.credit.registry import register_estimator
from agentgym.data import Batch


@dataclass(frozen=True)
class RLOOConfig:
    """Options of the ``rloo`` estimator (it has none)."""


def rloo_trajectory_advantages(batch: Batch) -> np.ndarray:
    """[N] leave-one-out advantages, one per trajectory; a group of one trajectory gets 0."""
    n = len(batch.group_ids)
    adv = leave_one_out(batch.returns, batch.traj_group, n)
    alone = np.bincount(batch.traj_group, minlength=n)[batch.traj_group] < 2
    return np.where(alone, 0.0, adv)


@register_estimator("rloo", RLOOConfig)
def rloo_advantages(batch: Batch, config: RLOOConfig) -> np.ndarray:
    """RLOO advantages [T]: every turn of trajectory i gets A_i = R_i - mean_{j != i} R_j.

    Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization for Learning
    from Human Feedback in LLMs", the RLOO estimator:
    (1/k) sum_i [R(y_i) - 1/(k-1) sum_{j != i} R(y_j)] grad log pi(y_i | x) over the k samples of
    one prompt (here: the trajectories of a ``Batch.traj_group``). A group holding a
    single trajectory has no baseline and gets A = 0.
    """
    return rloo_trajectory_advantages(batch)[batch.turn_traj].astype(np.float32)
