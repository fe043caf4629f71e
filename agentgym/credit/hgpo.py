"""HGPO: step advantages over a hierarchy of groups that share the state and its recent history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from agentgym.credit._segments import (
    NORMS,
    combine,
    factorize,
    require_choice,
    require_range,
    tied_groups,
)
from agentgym.credit.grpo import grpo_trajectory_advantages
from agentgym.credit.registry import register_estimator
from agentgym.credit.turn_rloo import returns_to_go
from agentgym.data import Batch

MAX_HISTORY = 64
"""Largest accepted ``history_length`` (deeper windows almost never hold two turns)."""


@dataclass(frozen=True)
class HGPOConfig:
    """Options of the ``hgpo`` estimator."""

    gamma: float = 0.95
    """Discount of the step returns R_t = sum_{k>=t} gamma^(k-t) r_k, in [0, 1]."""
    history_length: int = 2
    """K: deepest level shares the state and the K states before it (levels j = 1..K+1 states)."""
    alpha: float = 1.0
    """Level weight exponent: a level whose window holds j states weighs (j + 1)^alpha
    (0: every level weighs the same; larger: deeper, more consistent contexts count more)."""
    norm: Literal["std", "mean_norm"] = "std"
    """Within a level group: "std" gives (R - mean) / (population std + eps), "mean_norm" R - mean."""
    base_group: bool = False
    """Also average in the episode-level GRPO advantage of the trajectory as level 0 (weight 1)."""
    eps: float = 1e-6
    """Added to a std before dividing."""

    def __post_init__(self) -> None:
        require_range("gamma", self.gamma, 0.0, 1.0, open_low=False)
        if isinstance(self.history_length, bool) or not isinstance(self.history_length, int):
            raise ValueError(f"history_length={self.history_length!r} must be an integer")
        if not 0 <= self.history_length <= MAX_HISTORY:
            raise ValueError(
                f"history_length={self.history_length!r} must lie in [0, {MAX_HISTORY}]"
            )
        require_range("alpha", self.alpha, 0.0, 100.0, open_low=False)
        require_choice("norm", self.norm, NORMS)
        if not isinstance(self.base_group, bool):
            raise ValueError(f"base_group={self.base_group!r} must be true or false")
        require_range("eps", self.eps, 0.0, float("inf"), open_low=True)


def level_weight(window: int, alpha: float) -> float:
    """Weight of a level whose shared window holds ``window`` states (0 for the base group)."""
    return float(window + 1) ** alpha


def normalize_level(
    values: np.ndarray, ids: np.ndarray, n: int, norm: str, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """([M] advantages, [M] informative) of ``values`` normalized within their ``ids``.

    A group is informative when it holds at least two values that are not all equal up to
    rounding (:func:`tied_groups`); only informative groups take part in the average. The std is
    the population one (divide by the group size), as in the HGPO reference implementation.
    """
    count = np.bincount(ids, minlength=n)
    mean = np.bincount(ids, weights=values, minlength=n) / np.maximum(count, 1)
    dev = values - mean[ids]
    out = dev
    if norm == "std":
        var = np.bincount(ids, weights=dev * dev, minlength=n) / np.maximum(count, 1)
        out = dev / (np.sqrt(var)[ids] + eps)
    informative = ((count > 1) & ~tied_groups(values, ids, n))[ids]
    return np.where(informative, out, 0.0), informative


def window_ids(batch: Batch, history_length: int) -> list[np.ndarray]:
    """Per level j = 1..K+1: [T] id of (group, the last j state keys up to the turn), -1 where
    the turn has fewer than j - 1 turns before it (no window of that depth)."""
    state = factorize(batch.state_keys)[0]
    levels = [combine(batch.turn_group, state)]
    for depth in range(1, history_length + 1):  # window of depth + 1 states
        prev = levels[-1]
        ids = np.full(batch.num_turns, -1, dtype=np.int64)
        rows = np.flatnonzero(batch.turn_index >= depth)  # turns with `depth` turns before them
        if rows.size:
            ids[rows] = combine(prev[rows], state[rows - depth])
        levels.append(ids)
    return levels


@register_estimator("hgpo", HGPOConfig)
def hgpo_advantages(batch: Batch, config: HGPOConfig) -> np.ndarray:
    """HGPO advantages [T]: a weighted mean of relative advantages over nested groups.

    He et al. 2026, "Hierarchy-of-Groups Policy Optimization for Long-Horizon Agentic Tasks"
    (ICLR 2026, arXiv 2602.22817; reference implementation verl-agent ``recipe/hgpo``). Level j
    (j = 1..K+1) groups the turns of a task group whose last j state keys (the turn's state and
    the j - 1 before it in its trajectory) are equal; j = 1 is GiGPO's anchor-state group. In each
    level group the discounted step returns are normalized (``norm``); the turn's advantage is
    sum_j w_j A_j / sum_j w_j with w_j = (j + 1)^alpha over the informative levels it belongs to
    (two or more members whose returns are not all tied). With ``base_group`` the episode-level
    GRPO advantage joins as level 0 with weight 1. A turn with no informative level gets 0.
    """
    returns = returns_to_go(batch, config.gamma)  # [T]
    total = np.zeros(batch.num_turns)
    weight = np.zeros(batch.num_turns)
    for window, ids in enumerate(window_ids(batch, config.history_length), start=1):
        rows = np.flatnonzero(ids >= 0)
        if not rows.size:
            continue
        dense = ids[rows]  # dense over `rows`: combine() factorizes
        adv, informative = normalize_level(
            returns[rows], dense, int(dense.max()) + 1, config.norm, config.eps
        )
        w = level_weight(window, config.alpha)
        total[rows] += np.where(informative, w * adv, 0.0)
        weight[rows] += np.where(informative, w, 0.0)
    if config.base_group and batch.num_turns:
        n = len(batch.group_ids)
        sizes = np.bincount(batch.traj_group, minlength=n)
        informative = (sizes > 1) & ~tied_groups(batch.returns, batch.traj_group, n)
        base = grpo_trajectory_advantages(batch, config.norm, config.eps)  # [N]
        use = informative[batch.turn_group]
        w = level_weight(0, config.alpha)
        total += np.where(use, w * base[batch.turn_traj], 0.0)
        weight += np.where(use, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        adv = np.where(weight > 0, total / weight, 0.0)
    return adv.astype(np.float32)
