"""ALFWorld progress info: sub-goals from the engine's facts, checked against the expert's
episodes and the engine's own goal test (``won``)."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("alfworld")
pytest.importorskip("fast_downward")

from agentgym.envs.alfworld import ALFWorldEnv  # noqa: E402
from agentgym.envs.alfworld_gen import TASK_TYPES  # noqa: E402
from agentgym.envs.alfworld_progress import subgoals  # noqa: E402


@pytest.fixture(scope="module")
def env():
    return ALFWorldEnv()


def _oracle_episode(env: ALFWorldEnv, seed: int) -> list[dict]:
    _, info = env.reset(seed=seed)
    infos = [info]
    while (action := env.oracle_action()) is not None and len(infos) < 60:
        infos.append(env.step(action)[4])
    return infos


@pytest.mark.parametrize("seed", range(1000, 1000 + len(TASK_TYPES)))
def test_the_experts_episode_reaches_every_subgoal_in_order(env, seed):
    infos = _oracle_episode(env, seed)
    task_type = infos[0]["task_type"]
    names = subgoals(task_type)
    assert infos[-1]["won"] and list(infos[-1]["progress"]) == list(names)
    counts = [i["progress_count"] for i in infos]
    assert counts == sorted(counts) and counts[-1] == len(names)
    assert counts[0] < len(names)
    # Once reached, a sub-goal stays reached on the expert's way to the goal.
    first = {n: next(t for t, i in enumerate(infos) if i["progress"][n]) for n in names}
    for n in names:
        assert all(i["progress"][n] for i in infos[first[n] :]), n
    if task_type == "look_at_obj_in_light":  # taking the object and turning the lamp on
        assert first["at_lamp"] <= first["lamp_on"]  # come in either order
    else:
        assert [first[n] for n in names] == sorted(first[n] for n in names)


@pytest.mark.parametrize("seed", range(1000, 1000 + len(TASK_TYPES)))
def test_all_subgoals_hold_exactly_when_the_engine_says_won(env, seed):
    """The sub-goals are read from the facts; ``won`` is the engine's own goal check."""
    rng = random.Random(seed)
    infos = _oracle_episode(env, seed)
    _, info = env.reset(seed=seed)
    for _ in range(25):  # random admissible commands, then the expert from there
        info = env.step(rng.choice(info["admissible_actions"]))[4]
        infos.append(info)
        assert 0 <= info["progress_count"] <= len(info["progress"])
        assert info["progress_count"] == sum(info["progress"].values())
        if info["won"]:
            break
    while (action := env.oracle_action()) is not None and len(infos) < 150:
        infos.append(env.step(action)[4])
    assert infos[-1]["won"]
    for info in infos:
        assert all(info["progress"].values()) == info["won"]


def test_subgoal_lists():
    assert subgoals("pick_and_place_simple") == ("seen", "held", "at_receptacle", "placed")
    assert subgoals("pick_heat_then_place_in_recep")[2] == "heated"
    assert len(subgoals("pick_two_obj_and_place")) == 7


def test_progress_reaches_the_trainer_through_stored_trajectories():
    """Expert episodes collected as the trainer collects them: the shaping term reads the reset
    info and each turn's info, and its sum is Phi(end) - Phi(start) = 1 - Phi(start)."""
    from agentgym.policy.scripted import OraclePolicy
    from agentgym.rollout import collect
    from agentgym.trainers.shaping import (
        ProgressSection,
        potentials,
        progress_shaping,
        progress_stats,
    )

    batch = collect("agentgym/ALFWorld-v0", OraclePolicy(), tasks=2, group_size=1, seed=1000)
    assert all(t.won for t in batch.trajectories)
    assert progress_stats(batch)["progress/final"] == 1.0
    for traj in batch.trajectories:
        start = potentials(traj)[0]
        assert sum(progress_shaping(traj, ProgressSection(coef=1.0))) == pytest.approx(1 - start)
