"""Reward shaping: the novelty bonus rewards reaching states not yet visited in the episode;
progress shaping is potential-based (its discounted sum telescopes)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from agentgym.data import Batch, Trajectory, Turn
from agentgym.trainers.config import RewardSection
from agentgym.trainers.shaping import (
    ProgressSection,
    novel_steps,
    progress_shaping,
    progress_stats,
    shape_rewards,
)


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


# -- potential-based progress shaping ---------------------------------------------------------
def progress_traj(counts: list[int], goals: int = 4, won: bool = False) -> Trajectory:
    """A trajectory whose states report ``counts[t]`` of ``goals`` sub-goals (t = 0: reset)."""

    def info(c: int) -> dict:
        return {"progress": {f"g{i}": i < c for i in range(goals)}, "progress_count": c}

    turns = tuple(
        Turn("o", "a", "a", 1.0 if (won and t == len(counts) - 2) else 0.0, False, False,
             f"s{t}", info=info(c))
        for t, c in enumerate(counts[1:])
    )  # fmt: skip
    return Trajectory("env", "t", 0, "g", turns, won=won, metadata={"reset_info": info(counts[0])})


@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.5])
def test_progress_shaping_telescopes_to_discounted_end_minus_start(gamma):
    rng = np.random.default_rng(0)
    for _ in range(20):
        counts = list(rng.integers(0, 6, size=int(rng.integers(2, 12))))
        traj = progress_traj(counts, goals=5)
        f = progress_shaping(traj, ProgressSection(coef=0.7, gamma=gamma))
        discounted = sum(gamma**t * x for t, x in enumerate(f))
        T = len(counts) - 1
        expected = 0.7 * (gamma**T * counts[-1] / 5 - counts[0] / 5)
        assert discounted == pytest.approx(expected, abs=1e-12)


def test_progress_shaping_keeps_the_order_of_returns_with_equal_ends():
    """gamma = 1: two episodes from the same start to the same end get the same shaping sum,
    whatever the path (a detour that loses progress and regains it earns nothing)."""
    section = ProgressSection(coef=1.0)
    straight = progress_traj([0, 1, 2, 3])
    detour = progress_traj([0, 2, 0, 1, 3, 2, 3])
    assert sum(progress_shaping(straight, section)) == pytest.approx(0.75)
    assert sum(progress_shaping(detour, section)) == pytest.approx(0.75)


def test_shape_rewards_adds_progress_shaping_and_stats_report_it_apart():
    section = ProgressSection(coef=0.5)
    if "progress" in {f.name for f in dataclasses.fields(RewardSection)}:
        reward = RewardSection(progress=section)
    else:  # the trainer config's field, as trainers/config.py declares it

        @dataclasses.dataclass(frozen=True)
        class WithProgress(RewardSection):
            progress: ProgressSection = section

        reward = WithProgress()
    batch = Batch((progress_traj([0, 1, 1, 4], won=True), traj(["a", "b"])))
    shaped = shape_rewards(batch, reward)
    assert [t.reward for t in shaped.trajectories[0].turns] == pytest.approx([0.125, 0, 1.375])
    assert [t.reward for t in shaped.trajectories[1].turns] == [0.0]  # no progress info: none
    assert [t.reward for t in batch.trajectories[0].turns] == [0.0, 0.0, 1.0]  # stored as is
    stats = progress_stats(batch, section)
    assert stats == pytest.approx({"progress/final": 1.0, "progress/shaping": 0.5})
    assert progress_stats(Batch((traj(["a", "b"]),))) == {}
    with pytest.raises(ValueError, match="gamma"):
        ProgressSection(gamma=0.0)
