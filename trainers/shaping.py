"""Reward shaping applied by the trainer before credit (the stored rewards stay the env's own).

Order: the tool-efficiency factor (OTC, :mod:`agentgym.trainers.tool_efficiency`) scales a
trajectory's rewards first; then the additive terms of :class:`RewardSection` are added per turn:

- ``step_penalty`` on every turn, ``invalid_penalty`` on a turn whose action was invalid,
  ``win_bonus`` on the winning turn;
- ``novelty_bonus`` on a turn whose action led to a state (``info["state_key"]`` after the
  step) not visited earlier in the same episode, the initial state included. A count-based
  exploration bonus: it rewards leaving a room for a new one and gives nothing for going back
  and forth, which is how a small model fails sparse-reward navigation games.
"""

from __future__ import annotations

import dataclasses

from agentgym.core import STATE_KEY
from agentgym.data import Batch, Trajectory
from agentgym.trainers.config import RewardSection
from agentgym.trainers.tool_efficiency import shape_tool_efficiency


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
    if not any(terms) and not shaping.novelty_bonus:
        return batch

    def shaped(traj: Trajectory) -> Trajectory:
        novel = novel_steps(traj) if shaping.novelty_bonus else [False] * len(traj.turns)
        turns = []
        for i, turn in enumerate(traj.turns):
            r = turn.reward + shaping.step_penalty
            r += shaping.invalid_penalty if turn.invalid else 0.0
            r += shaping.win_bonus if (traj.won and i == len(traj.turns) - 1) else 0.0
            r += shaping.novelty_bonus if novel[i] else 0.0
            turns.append(dataclasses.replace(turn, reward=r))
        return dataclasses.replace(traj, turns=tuple(turns))

    return Batch(tuple(shaped(t) for t in batch.trajectories))
