"""ALFWorld's hand-coded searching expert as the env's oracle (``expert="handcoded"``)."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("alfworld")

import agentgym  # noqa: E402
from agentgym.policy.scripted import OraclePolicy  # noqa: E402
from agentgym.rollout import collect  # noqa: E402

ENV = "agentgym/ALFWorld-PickAndPlace-v0"


def play(kwargs, tasks=8, seed=200):
    return collect(ENV, OraclePolicy(), tasks=tasks, group_size=1, seed=seed, max_turns=40,
                   env_kwargs=kwargs).trajectories  # fmt: skip


def test_the_searching_expert_wins_and_searches_where_the_planner_walks_straight_there():
    searched = play({"expert": "handcoded"})
    planned = play({})
    assert sum(t.won for t in searched) >= 6
    assert all(t.won for t in planned)
    for s, p in zip(searched, planned, strict=True):
        assert s.task_id == p.task_id
        if s.won:
            assert len(s.turns) >= len(p.turns)  # the planner's plan is a shortest one
    # it starts by looking and visits places before it finds the object; the planner never
    # visits a place it does not need
    assert all(t.turns[0].action == "look" for t in searched)
    assert sum(len(s.turns) > len(p.turns) for s, p in zip(searched, planned, strict=True)) >= 3


def test_the_searching_expert_takes_over_after_other_commands():
    """DAgger-style: after random commands the expert still finds a way to the goal."""
    env = agentgym.make(ENV, expert="handcoded", max_turns=60)
    rng = random.Random(0)
    wins = 0
    for seed in range(300, 308):
        obs, info = env.reset(seed=seed)
        done = False
        for turn in range(60):
            if turn < 4:
                action = rng.choice(info["admissible_actions"])
            else:
                action = env.unwrapped.oracle_action() or "look"
            obs, reward, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                done = True
                break
        wins += bool(info["won"])
        assert done
    env.close()
    assert wins >= 6


def test_the_expert_is_checked_by_name():
    with pytest.raises(ValueError, match="planner, handcoded"):
        agentgym.make(ENV, expert="psychic")
