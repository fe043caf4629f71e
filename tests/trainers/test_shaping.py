"""Reward shaping: the novelty bonus rewards reaching states not yet visited in the episode."""

from __future__ import annotations

from agentgym.data import Batch, Trajectory, Turn
from agentgym.trainers.config import RewardSection
from agentgym.trainers.shaping import novel_steps, shape_rewards


def traj(path: list[str], won: bool = False) -> Trajectory:
    """A trajectory walking through state keys ``path`` (path[0] is the initial state)."""
    turns = tuple(
        Turn(
            observation=f"in {a}",
            output="go",
            action="go",
            reward=1.0 if (won and i == len(path) - 2) else 0.0,
            terminated=won and i == len(path) - 2,
            truncated=False,
            state_key=a,
            info={"state_key": b},
        )
        for i, (a, b) in enumerate(zip(path[:-1], path[1:], strict=True))
    )
    return Trajectory("env", "t", 0, "g", turns, won=won, traj_id="g#0")


def test_back_and_forth_earns_nothing_new_rooms_earn_the_bonus():
    assert novel_steps(traj(["a", "b", "a", "b", "c", "c"])) == [True, False, False, True, False]


def test_novelty_bonus_is_added_to_the_env_reward():
    batch = Batch((traj(["a", "b", "a", "c"], won=True),))
    shaped = shape_rewards(batch, RewardSection(novelty_bonus=0.1))
    assert [t.reward for t in shaped.trajectories[0].turns] == [0.1, 0.0, 1.1]
    assert [t.reward for t in batch.trajectories[0].turns] == [0.0, 0.0, 1.0]  # stored as is
    assert shape_rewards(batch, RewardSection()) is batch
