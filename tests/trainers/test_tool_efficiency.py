"""reward.tool_efficiency (OTC): r_tool by tool calls, the group estimate of the optimal count,
and the count the tool env reports in info."""

from __future__ import annotations

import math

import numpy as np
import pytest

import agentgym
from agentgym.data import Batch, Trajectory, Turn
from agentgym.tools import (
    NUM_TOOL_CALLS,
    Task,
    ToolCall,
    ToolEnv,
    format_answer,
    format_tool_call,
    tool,
)
from agentgym.trainers.options import ToolEfficiencySection
from agentgym.trainers.tool_efficiency import (
    group_tool_reward,
    shape_tool_efficiency,
    tool_calls,
    tool_rewards,
)


def traj(group: str, calls: int, won: bool, name: str) -> Trajectory:
    turns = [
        Turn("o", "call", "call", 0.0, False, False, "s", info={NUM_TOOL_CALLS: k + 1})
        for k in range(calls)
    ]
    turns.append(
        Turn("o", "answer", "answer", float(won), True, False, "s", info={NUM_TOOL_CALLS: calls})
    )
    return Trajectory("t/Tool-v0", group, 0, group, tuple(turns), won=won, traj_id=name)


def test_group_form_peaks_at_the_fewest_winning_calls() -> None:
    # n = 2: m = 2 scores 1; more or fewer calls score sin(2nm/(m+n) * pi / 2n) < 1
    assert group_tool_reward(2, 2, 1.0) == pytest.approx(1.0)
    assert group_tool_reward(4, 2, 1.0) == pytest.approx(math.sin(16 / 6 * math.pi / 4))
    assert group_tool_reward(1, 2, 1.0) == pytest.approx(math.sin(4 / 3 * math.pi / 4))
    assert group_tool_reward(6, 2, 1.0) < group_tool_reward(4, 2, 1.0) < 1.0
    assert group_tool_reward(0, 2, 1.0) == 0.0
    # n = 0 (a winner used no tool): 1 for m = 0, cos(m pi / (2m + c)) otherwise
    assert group_tool_reward(0, 0, 1.0) == 1.0
    assert group_tool_reward(3, 0, 2.0) == pytest.approx(math.cos(3 * math.pi / 8))
    assert group_tool_reward(3, None, 2.0) == group_tool_reward(3, 0, 2.0)


def test_batch_rewards_per_group() -> None:
    b = Batch(
        (
            traj("g0", 3, True, "a"),
            traj("g0", 1, True, "b"),  # fewest winning calls in g0: n = 1
            traj("g0", 0, False, "c"),
            traj("g1", 2, False, "d"),  # no winner in g1: the cos form
        )
    )
    c = 1.0
    expected = [
        math.sin(2 * 1 * 3 / 4 * math.pi / 2),
        1.0,
        0.0,
        math.cos(2 * math.pi / (4 + c)),
    ]
    np.testing.assert_allclose(tool_rewards(b, ToolEfficiencySection(mode="group")), expected)
    fixed = tool_rewards(b, ToolEfficiencySection(mode="fixed", c=c))
    np.testing.assert_allclose(fixed, [math.cos(m * math.pi / (2 * m + c)) for m in (3, 1, 0, 2)])
    np.testing.assert_array_equal(tool_rewards(b, ToolEfficiencySection()), 1.0)

    shaped = shape_tool_efficiency(b, ToolEfficiencySection(mode="group", alpha=2.0))
    np.testing.assert_allclose(shaped.returns, 2.0 * np.array(expected) * b.returns)
    assert shaped.trajectories[0].turns[0].reward == 0.0  # only rewarded turns change
    assert shape_tool_efficiency(b, ToolEfficiencySection()) is b


def test_missing_count_is_a_clear_error() -> None:
    plain = Trajectory(
        "agentgym/KeyDoor-v0",
        "g",
        0,
        "g",
        (Turn("o", "a", "a", 1.0, True, False, "s"),),
        won=True,
        traj_id="x",
    )
    with pytest.raises(ValueError, match="needs info\\['num_tool_calls'\\].*mode=off"):
        tool_calls(plain)


class CountEnv(ToolEnv):
    """Add numbers."""

    tool_timeout = 0.5

    def load_tasks(self) -> list[Task]:
        return [Task("t0", "What is 1 + 2?", ("3",), (ToolCall("add", {"a": 1, "b": 2}),))]

    @tool
    def add(self, a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @tool
    def boom(self) -> str:
        """Always fails."""
        raise RuntimeError("no")


def test_tool_env_counts_the_calls_it_ran() -> None:
    env = CountEnv()
    _, info = env.reset(seed=0)
    assert info[NUM_TOOL_CALLS] == 0
    steps = [
        (format_tool_call(ToolCall("add", {"a": 1, "b": 2})), 1),
        ("no call at all", 1),  # not parsed: no tool ran
        (format_tool_call(ToolCall("add", {"a": "x"})), 1),  # bad arguments: not run
        (format_tool_call(ToolCall("boom", {})), 2),  # ran and raised: counts
        (format_answer("3"), 2),  # the answer is not a tool call
    ]
    for action, count in steps:
        *_, info = env.step(action)
        assert info[NUM_TOOL_CALLS] == count, action
    _, info = env.reset(seed=1)
    assert info[NUM_TOOL_CALLS] == 0


def test_count_reaches_the_trajectory_through_a_rollout() -> None:
    from agentgym.policy.scripted import OraclePolicy
    from agentgym.rollout import collect

    agentgym.register("test/CountEnv-v0", entry_point=CountEnv)  # the same spec twice is fine
    batch = collect(
        "test/CountEnv-v0", OraclePolicy(), tasks=1, group_size=2, seed=0, action_format="tool"
    )
    assert [tool_calls(t) for t in batch.trajectories] == [1, 1]
