"""Turn-level RLOO: each turn's return-to-go against the other trajectories at the same turn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agentgym.credit._segments import (
    combine,
    leave_one_out,
    remaining_turns,
    require_range,
    reverse_discounted_cumsum,
)
from agentgym.credit.registry import register_estimator
from agentgym.data import Batch


@dataclass(frozen=True)
class TurnRLOOConfig:
    """Options of the ``turn_rloo`` estimator."""

    gamma: float = 1.0
    """Discount of the return-to-go G_t = sum_{k>=t} gamma^(k-t) r_k, in [0, 1]."""

    def __post_init__(self) -> None:
        require_range("gamma", self.gamma, 0.0, 1.0, open_low=False)


def returns_to_go(batch: Batch, gamma: float) -> np.ndarray:
    """[T] discounted return from each turn to the end of its trajectory."""
    remaining = remaining_turns(batch.turn_index, batch.traj_len, batch.turn_traj)
    return reverse_discounted_cumsum(batch.rewards, remaining, gamma)


@register_estimator("turn_rloo", TurnRLOOConfig)
def turn_rloo_advantages(batch: Batch, config: TurnRLOOConfig) -> np.ndarray:
    """Turn-level RLOO (TRLOO) advantages [T].

    Liu et al. 2026, "Dr. Kernel: Reinforcement Learning Done Right for Triton Kernel
    Generations" (arXiv 2602.05885), Turn-level REINFORCE Leave-One-Out (TRLOO):
    G_{i,t} = sum_{k>=t} gamma^(k-t) r_{i,k} and A_{i,t} = G_{i,t} - mean_{j != i} G_{j,t}, the
    mean over the other trajectories of i's group that have a turn t. No std division.

    Baselines where that mean does not exist (our choice; the paper does not define them):

    - A trajectory alone at turn index t (its peers all ended earlier) falls back to the
      leave-one-out mean of the peers' whole returns: A_{i,t} = G_{i,t} - mean_{j != i} G_{j,0}.
      Past the last turn its peers reached, the turn is credited as RLOO credits a trajectory,
      instead of getting its raw return-to-go (no baseline at all). The baseline depends only on
      other trajectories, so the gradient estimate stays unbiased.
    - A group of one trajectory has no baseline anywhere and gets A = 0, as in every other
      estimator.
    """
    g = returns_to_go(batch, config.gamma)
    slot = combine(batch.turn_group, batch.turn_index)  # [T] id of (group, turn index)
    n_slots = int(slot.max()) + 1 if slot.size else 0
    per_turn = leave_one_out(g, slot, n_slots)
    has_peer = np.bincount(slot, minlength=n_slots)[slot] > 1  # [T]
    # fallback: G_{i,t} minus the mean whole return G_{j,0} of the group's other trajectories
    n_groups = len(batch.group_ids)
    whole = np.zeros(len(batch))  # [N] G_{j,0}
    nonempty = batch.traj_len > 0
    whole[nonempty] = g[batch.traj_offset[nonempty]]
    size = np.bincount(batch.traj_group, minlength=n_groups)[batch.turn_group]  # [T]
    total = np.bincount(batch.traj_group, weights=whole, minlength=n_groups)[batch.turn_group]
    with np.errstate(divide="ignore", invalid="ignore"):
        fallback = g - (total - whole[batch.turn_traj]) / (size - 1)
    adv = np.where(has_peer, per_turn, np.where(size > 1, fallback, 0.0))
    return adv.astype(np.float32)
