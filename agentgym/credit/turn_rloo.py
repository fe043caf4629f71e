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
    mean over the other trajectories of i's group that have a turn t. A trajectory alone at
    turn t keeps A = G. No std division (DESIGN.md §5).
    """
    g = returns_to_go(batch, config.gamma)
    slot = combine(batch.turn_group, batch.turn_index)  # [T] id of (group, turn index)
    n_slots = int(slot.max()) + 1 if slot.size else 0
    return leave_one_out(g, slot, n_slots).astype(np.float32)
