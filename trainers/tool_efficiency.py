"""OTC: reward reaching the answer with the fewest tool calls (``reward.tool_efficiency``).

Wang et al. 2025, "Acting Less is Reasoning More! Teaching Model to Act Efficiently" (OTC-PO,
arXiv 2504.14870). With m the tool calls of a trajectory and r its reward, the shaped reward is

    r' = alpha * r_tool(m) * r

so a wrong answer stays worth nothing and a right one is worth more the closer m is to the
fewest calls that suffice. Two forms of r_tool:

- ``fixed`` (OTC-PPO): r_tool = cos(m * pi / (2m + c)), 1 at m = 0 and falling toward 0.
- ``group`` (OTC-GRPO): n estimates the optimal number of calls as the fewest calls among the
  group's winning trajectories, and with f(m, n) = 0 if m = n = 0, m if n = 0, else
  2nm / (m + n):  r_tool = 1 if f = n = 0; cos(m * pi / (2m + c)) if n = 0; otherwise
  sin(f * pi / (2n)), which is 1 at m = n and smaller for both fewer and more calls. A group
  without a win has no estimate of n and uses the ``fixed`` form.

m is read from the last turn's ``info["num_tool_calls"]`` (:data:`agentgym.tools.NUM_TOOL_CALLS`,
tools that ran, failed runs included). Every turn's reward of the trajectory is multiplied (in a
tool env only the answer turn has one), before the additive shaping of the reward section.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from agentgym.data import Batch, Trajectory
from agentgym.tools import NUM_TOOL_CALLS
from agentgym.trainers.options import ToolEfficiencySection


def tool_calls(traj: Trajectory) -> int:
    """Tool calls of ``traj`` (from its last turn's info); a clear error if the env never said."""
    for turn in reversed(traj.turns):
        if NUM_TOOL_CALLS in turn.info:
            return int(turn.info[NUM_TOOL_CALLS])
    if not traj.turns:
        return 0
    raise ValueError(
        f"reward.tool_efficiency needs info[{NUM_TOOL_CALLS!r}] on the steps of "
        f"{traj.env_id!r} (trajectory {traj.traj_id!r}); tool environments (agentgym.tools."
        "ToolEnv) provide it. Set reward.tool_efficiency.mode=off for other environments."
    )


def fixed_tool_reward(m: int, c: float) -> float:
    """OTC-PPO: cos(m * pi / (2m + c))."""
    return math.cos(m * math.pi / (2 * m + c))


def group_tool_reward(m: int, n: int | None, c: float) -> float:
    """OTC-GRPO's r_tool(m, n); ``n=None`` (no winner to estimate it) falls back to the cos form."""
    if n is None or n == 0:
        return 1.0 if m == 0 else fixed_tool_reward(m, c)
    f = 2.0 * n * m / (m + n)
    return math.sin(f * math.pi / (2 * n))


def tool_rewards(batch: Batch, section: ToolEfficiencySection) -> np.ndarray:
    """[N] r_tool of each trajectory under ``section.mode`` (1 everywhere when off)."""
    if section.mode == "off":
        return np.ones(len(batch))
    calls = [tool_calls(t) for t in batch.trajectories]
    if section.mode == "fixed":
        return np.array([fixed_tool_reward(m, section.c) for m in calls])
    if section.mode != "group":
        raise ValueError(
            f"reward.tool_efficiency.mode={section.mode!r} is not one of 'off', 'group', 'fixed'"
        )
    best: dict[str, int] = {}  # group id -> fewest calls of a winning trajectory
    for traj, m in zip(batch.trajectories, calls, strict=True):
        if traj.won:
            best[traj.group_id] = min(m, best.get(traj.group_id, m))
    return np.array(
        [
            group_tool_reward(m, best.get(t.group_id), section.c)
            for t, m in zip(batch.trajectories, calls, strict=True)
        ]
    )


def shape_tool_efficiency(batch: Batch, section: ToolEfficiencySection) -> Batch:
    """A copy of ``batch`` with every turn's reward times alpha * r_tool of its trajectory."""
    if section.mode == "off":
        return batch
    factor = section.alpha * tool_rewards(batch, section)
    trajs = []
    for traj, k in zip(batch.trajectories, factor, strict=True):
        turns = tuple(dataclasses.replace(t, reward=t.reward * float(k)) for t in traj.turns)
        trajs.append(dataclasses.replace(traj, turns=turns))
    return Batch(tuple(trajs))
