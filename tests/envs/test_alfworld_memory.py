"""ALFWorld memory: a game's engine objects are freed once the process moves on to other games.

textworld interns every fact (``Proposition``) in a module-level table; before
:func:`agentgym.envs.alfworld_fast.weak_interning` that table kept every fact of every game ever
loaded (about 1-3 MB per new game, ``bench/results/memory.md``). These tests follow the facts of
one game with weak references while the same env plays other games.
"""

from __future__ import annotations

import gc
import random
import weakref

import pytest

pytest.importorskip("alfworld")
pytest.importorskip("fast_downward")

import mementos.core  # noqa: E402

from agentgym.envs import alfworld_fast  # noqa: E402
from agentgym.envs.alfworld import ALFWorldEnv  # noqa: E402


def _play(env: ALFWorldEnv, seed: int, rng: random.Random, turns: int = 4) -> None:
    """Two episodes of random admissible commands on the game of ``seed``."""
    for _ in range(2):
        _, info = env.reset(seed=seed)
        for _ in range(turns):
            _, _, terminated, _, info = env.step(rng.choice(info["admissible_actions"]))
            if terminated:
                break


def _live_facts_of_first_game(fresh: bool) -> tuple[int, int]:
    """Play a game, then two others; return (facts of the first game, those still alive)."""
    env = ALFWorldEnv(task_types="pick_and_place")
    rng = random.Random(0)
    _play(env, 0, rng)
    first = {f for f in env._engine.unwrapped._pddl_state.facts if "_bar_" in str(f)}
    refs = [weakref.ref(f) for f in first]  # facts naming the floor plan's own objects
    del first
    for seed in (1, 2):
        _play(env, seed, rng)
    if fresh:
        alfworld_fast.clear_caches()  # the memos of recent games are bounded; empty them
    gc.collect()
    return len(refs), sum(ref() is not None for ref in refs)


def test_facts_of_a_game_are_freed_after_other_games():
    total, alive = _live_facts_of_first_game(fresh=True)
    assert total > 100  # an ALFRED scene has hundreds of facts about its objects
    assert alive == 0, f"{alive} of {total} facts of the first game are still alive"


def test_the_old_strong_table_would_keep_them(monkeypatch):
    """The same measurement with textworld's table as shipped (a plain dict) finds the facts
    alive: the test above can fail."""
    monkeypatch.setattr(mementos.core, "_memento_cache", dict(mementos.core._memento_cache))
    total, alive = _live_facts_of_first_game(fresh=True)
    assert alive == total


def test_interning_still_gives_one_object_per_fact():
    from textworld.logic import Proposition, Variable

    a = Proposition("inreceptacle", [Variable("apple_1", "object"), Variable("sink_1", "rec")])
    b = Proposition("inreceptacle", [Variable("apple_1", "object"), Variable("sink_1", "rec")])
    assert a is b and isinstance(mementos.core._memento_cache, weakref.WeakValueDictionary)
