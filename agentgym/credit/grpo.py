"""GRPO: group-relative advantage of the episode return, one value per trajectory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from agentgym.credit._segments import NORMS, normalize_in_groups, require_choice, require_range
from agentgym.credit.registry import register_estimator
from agentgym.data import Batch


@dataclass(frozen=True)
class GRPOConfig:
    """Options of the ``grpo`` estimator."""

    norm: Literal["std", "mean_norm"] = "std"
    """"std": (R - mean) / (std + eps); "mean_norm": R - mean (Dr. GRPO style, no std)."""
    eps: float = 1e-6
    """Added to the group's std before dividing (only with norm="std")."""

    def __post_init__(self) -> None:
        require_choice("norm", self.norm, NORMS)
        require_range("eps", self.eps, 0.0, float("inf"), open_low=True)


def grpo_trajectory_advantages(batch: Batch, norm: str, eps: float) -> np.ndarray:
    """[N] group-normalized returns, one per trajectory; a group of one trajectory gets 0."""
    return normalize_in_groups(batch.returns, batch.traj_group, len(batch.group_ids), norm, eps)


@register_estimator("grpo", GRPOConfig)
def grpo_advantages(batch: Batch, config: GRPOConfig) -> np.ndarray:
    """GRPO advantages [T]: every turn of trajectory i gets A_i.

    Shao et al. 2024, "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open
    Language Models", §4.1.2 (outcome supervision): A_i = (R_i - mean(R)) / std(R) over the G
    outputs of one prompt; here the group is ``Batch.traj_group`` (same task and seed), std is
    the unbiased (N-1) one plus ``eps``. With ``norm="mean_norm"`` the std division is dropped.
    A group holding a single trajectory has an undefined std and gets A = 0.
    """
    adv = grpo_trajectory_advantages(batch, config.norm, config.eps)
    return adv[batch.turn_traj].astype(np.float32)
