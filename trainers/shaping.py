"""Reward shaping applied by the trainer before credit (the stored rewards stay the env's own).

Order: the tool-efficiency factor (OTC, :mod:`agentgym.trainers.tool_efficiency`) scales a
trajectory's rewards first; then the additive terms of :class:`RewardSection` are added per turn:

- ``step_penalty`` on every turn, ``invalid_penalty`` on a turn whose action was invalid,
  ``win_bonus`` on the winning turn;
- ``novelty_bonus`` on a turn whose action led to a state (``info["state_key"]`` after the
  step) not visited earlier in the same episode, the initial state included. A count-based
  exploration bonus: it rewards leaving a room for a new one and gives nothing for going back
  and forth, which is how a small model fails sparse-reward navigation games;
- ``progress`` (:class:`ProgressSection`): potential-based shaping from the sub-goals an env
  reports (``info["progress"]`` and ``info["progress_count"]``, as ALFWorld does):
  ``F_t = coef * (gamma * Phi(s_{t+1}) - Phi(s_t))`` with ``Phi = progress_count / number of
  sub-goals``. Over an episode ``sum_t gamma^t F_t = coef * (gamma^T Phi(s_T) - Phi(s_0))``, so
  it moves credit between turns without changing which policy is best (Ng et al. 1999;
  docs/shaping.md). :func:`progress_stats` reports it apart from the env's reward.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentgym.config import param
from agentgym.core import STATE_KEY
from agentgym.data import Batch, Trajectory
from agentgym.trainers.tool_efficiency import shape_tool_efficiency

if TYPE_CHECKING:
    from agentgym.trainers.config import RewardSection

PROGRESS, PROGRESS_COUNT = "progress", "progress_count"
"""Info keys of an env that reports sub-goals: name -> bool, and how many hold."""


@dataclass(frozen=True)
class ProgressSection:
    coef: float = param(
        0.0,
        "Weight of the potential-based progress shaping (0: off): each turn gets "
        "coef * (gamma * Phi(next state) - Phi(state)), Phi = share of the task's sub-goals "
        "that hold (info progress_count; ALFWorld). 1.0 makes the whole task worth one win.",
    )
    gamma: float = param(
        1.0,
        "Discount of the shaping term: the credit estimator's own (credit.options.gamma) for "
        "step-level estimators, 1.0 for episode-return ones (GRPO, RLOO), so it telescopes.",
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"reward.progress.gamma={self.gamma!r} must be in (0, 1]")


def potential(info: Mapping[str, Any]) -> float | None:
    """Phi of a state from its info: the share of sub-goals that hold (None: not reported)."""
    goals, count = info.get(PROGRESS), info.get(PROGRESS_COUNT)
    if not isinstance(goals, Mapping) or not goals or count is None:
        return None
    return float(count) / len(goals)


def potentials(traj: Trajectory) -> list[float] | None:
    """Phi(s_0), ..., Phi(s_T) of an episode (reset info, then each turn's info), or None when
    some state does not report progress."""
    reset = traj.metadata.get("reset_info", {})
    phis = [potential(reset if isinstance(reset, Mapping) else {})]
    phis += [potential(turn.info) for turn in traj.turns]
    return None if any(p is None for p in phis) else phis  # type: ignore[return-value]


def progress_shaping(traj: Trajectory, section: ProgressSection) -> list[float]:
    """Per turn, ``coef * (gamma * Phi(s_{t+1}) - Phi(s_t))`` (zeros without progress info)."""
    phis = potentials(traj) if section.coef else None
    if phis is None:
        return [0.0] * len(traj.turns)
    g, c = section.gamma, section.coef
    return [c * (g * phis[t + 1] - phis[t]) for t in range(len(traj.turns))]


def progress_stats(batch: Batch, section: ProgressSection | None = None) -> dict[str, float]:
    """Progress of a batch, apart from the env's reward: the mean share of sub-goals reached at
    the end of an episode and (with ``section``) the mean sum of the shaping term per episode.
    Empty when no episode reports progress."""
    ends, sums = [], []
    for traj in batch.trajectories:
        phis = potentials(traj)
        if phis is None:
            continue
        ends.append(phis[-1])
        if section is not None:
            sums.append(sum(progress_shaping(traj, section)))
    if not ends:
        return {}
    out = {"progress/final": sum(ends) / len(ends)}
    if sums:
        out["progress/shaping"] = sum(sums) / len(sums)
    return out


def novel_steps(traj: Trajectory) -> list[bool]:
    """Per turn: whether the state it led to was not visited before in the episode."""
    seen = {traj.turns[0].state_key} if traj.turns else set()
    novel = []
    for turn in traj.turns:
        after = str(turn.info.get(STATE_KEY, ""))
        novel.append(bool(after) and after not in seen)
        seen.add(after)
    return novel


def shape_rewards(batch: Batch, shaping: RewardSection) -> Batch:
    """A copy of ``batch`` with the trainer's reward shaping applied (see the module docstring)."""
    batch = shape_tool_efficiency(batch, shaping.tool_efficiency)
    terms = (shaping.invalid_penalty, shaping.step_penalty, shaping.win_bonus)
    progress = getattr(shaping, "progress", None) or ProgressSection()
    if not any(terms) and not shaping.novelty_bonus and not progress.coef:
        return batch

    def shaped(traj: Trajectory) -> Trajectory:
        novel = novel_steps(traj) if shaping.novelty_bonus else [False] * len(traj.turns)
        potential_terms = progress_shaping(traj, progress)
        turns = []
        for i, turn in enumerate(traj.turns):
            r = turn.reward + shaping.step_penalty
            r += shaping.invalid_penalty if turn.invalid else 0.0
            r += shaping.win_bonus if (traj.won and i == len(traj.turns) - 1) else 0.0
            r += shaping.novelty_bonus if novel[i] else 0.0
            r += potential_terms[i]
            turns.append(dataclasses.replace(turn, reward=r))
        return dataclasses.replace(traj, turns=tuple(turns))

    return Batch(tuple(shaped(t) for t in batch.trajectories))
