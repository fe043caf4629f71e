import dataclasses

import numpy as np
import pytest

from agentgym.data import (
    TERMINAL_FAILURE,
    TERMINAL_SUCCESS,
    TERMINAL_TRUNCATED,
    Batch,
    Trajectory,
    Turn,
)


def traj(group: str, rewards: list[float], *, won=False, terminated=False, name="") -> Trajectory:
    n = len(rewards)
    turns = tuple(
        Turn(
            observation=f"o{i}",
            output=f"a{i}",
            action=f"a{i}",
            reward=r,
            terminated=terminated and i == n - 1,
            truncated=(not terminated) and i == n - 1,
            state_key=f"s{i}",
        )
        for i, r in enumerate(rewards)
    )
    return Trajectory("toy/T-v0", "task", 0, group, turns, won=won, traj_id=name)


def test_flat_indices_follow_trajectories():
    b = Batch([traj("g1", [0, 1]), traj("g2", [0, 0, 0]), traj("g1", [1])])
    assert b.num_turns == 6
    np.testing.assert_array_equal(b.turn_traj, [0, 0, 1, 1, 1, 2])
    np.testing.assert_array_equal(b.turn_index, [0, 1, 0, 1, 2, 0])
    np.testing.assert_array_equal(b.traj_offset, [0, 2, 5])
    np.testing.assert_array_equal(b.traj_group, [0, 1, 0])
    np.testing.assert_array_equal(b.turn_group, [0, 0, 1, 1, 1, 0])
    np.testing.assert_allclose(b.rewards, [0, 1, 0, 0, 0, 1])
    np.testing.assert_allclose(b.returns, [1, 0, 1])
    assert b.group_ids == ("g1", "g2")


def test_next_state_keys_end_in_the_right_sentinel():
    assert traj("g", [0, 1], won=True, terminated=True).next_state_keys == ("s1", TERMINAL_SUCCESS)
    assert traj("g", [0], terminated=True).next_state_keys == (TERMINAL_FAILURE,)
    assert traj("g", [0, 0]).next_state_keys == ("s1", TERMINAL_TRUNCATED)


def test_records_are_frozen():
    t = traj("g", [1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.won = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.turns[0].reward = 2.0  # type: ignore[misc]


def test_with_advantages_round_trips_and_keeps_others():
    b = Batch([traj("g", [0, 1]), traj("g", [0])])
    b2 = b.with_advantages("grpo", np.array([0.5, 0.5, -0.5]))
    b3 = b2.with_advantages("rloo", np.array([1.0, 1.0, -1.0]))
    np.testing.assert_allclose(b3.advantages("grpo"), [0.5, 0.5, -0.5])
    np.testing.assert_allclose(b3.advantages("rloo"), [1, 1, -1])
    assert np.isnan(b.advantages("grpo")).all()
    with pytest.raises(ValueError, match="expected"):
        b.with_advantages("grpo", np.zeros(2))


def test_empty_batch():
    b = Batch([])
    assert b.num_turns == 0 and b.turn_traj.shape == (0,) and b.traj_offset.shape == (0,)
