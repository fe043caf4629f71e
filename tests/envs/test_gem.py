"""GEM games and Reasoning Gym tasks behind the agentgym contract (agentgym.envs.gem)."""

import random

import pytest

pytest.importorskip("gem")

import agentgym  # noqa: E402
from agentgym.envs.gem import GAMES, NETWORK_ENVS, REASONING_GYM  # noqa: E402

HANOI = "gem/TowerofHanoi-v0-easy"


def boxed(move):
    return "\\boxed{" + move + "}"


def hanoi_moves(n, src="A", dst="C", via="B"):
    """The optimal Tower of Hanoi solution, by the textbook recursion."""
    if n == 0:
        return []
    return hanoi_moves(n - 1, src, via, dst) + [f"{src} {dst}"] + hanoi_moves(n - 1, via, dst, src)


def test_registered_ids_exist_in_gem_and_none_needs_the_network():
    from gem.envs.registration import ENV_REGISTRY

    for game in GAMES:
        assert f"game:{game}" in ENV_REGISTRY and f"game:{game}" not in NETWORK_ENVS
    for task in REASONING_GYM:
        assert f"rg:{task}" in ENV_REGISTRY
    ids = {s.id for s in agentgym.list_envs()}
    assert ids >= {f"gem/{g}" for g in GAMES} | {f"gem/rg-{t}-v0" for t in REASONING_GYM}


def test_optimal_solution_wins():
    env = agentgym.make(HANOI)
    obs, info = env.reset(seed=0)
    assert "Tower of Hanoi" in info["task"] and "A: [3, 2, 1]" in obs
    for move in hanoi_moves(3):
        assert boxed(move) in info["admissible_actions"]
        obs, reward, terminated, truncated, info = env.step(f"I move {boxed(move)}")
        assert not info["invalid"], obs
    assert (reward, terminated, truncated, info["won"]) == (1.0, True, False, True)


def test_replies_gem_cannot_parse_are_answered_without_ending_the_episode():
    env = agentgym.make(HANOI)
    _, info = env.reset(seed=0)
    start = info["state_key"]
    # no \boxed{}; a \boxed{} GEM rejects as a format error (GEM would end the episode at -0.1)
    for reply in ("move A to C", "\\boxed{A to the moon}", "\\boxed{}"):
        obs, reward, terminated, truncated, info = env.step(reply)
        assert info["invalid"] and not (terminated or truncated) and reward == 0.0, reply
        assert info["state_key"] == start and "\\boxed{A B}" in obs
    obs, reward, terminated, _, info = env.step(boxed("A C"))
    assert not info["invalid"] and not terminated and "moved disk 1" in obs


def test_an_illegal_boxed_move_goes_to_the_game_and_is_flagged():
    env = agentgym.make(HANOI)
    env.reset(seed=0)
    obs, _, terminated, _, info = env.step(boxed("C A"))  # tower C is empty
    assert info["invalid"] and not terminated and "empty" in obs


@pytest.mark.parametrize(
    "game", ["Minesweeper-v0-easy", "FifteenPuzzle-v0-easy", "GuessTheNumber-v0-easy"]
)
def test_random_admissible_play_is_never_invalid(game):
    env = agentgym.make(f"gem/{game}")
    rng = random.Random(0)
    for seed in range(3):
        _, info = env.reset(seed=seed)
        for _ in range(30):
            obs, _, terminated, truncated, info = env.step(rng.choice(info["admissible_actions"]))
            assert not info["invalid"], obs
            if terminated or truncated:
                break


def test_state_key_separates_hidden_numbers_behind_the_same_text():
    env = agentgym.make("gem/GuessTheNumber-v0-easy")
    by_text, by_number = {}, {}
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        by_text.setdefault(obs, set()).add(info["state_key"])
        by_number.setdefault(env.unwrapped._env.game_number, set()).add(info["state_key"])
    assert len(by_text) == 1 and len(by_number) > 1
    assert all(len(keys) == 1 for keys in by_number.values())
    assert len(next(iter(by_text.values()))) == len(by_number)


def test_reasoning_gym_task_is_one_turn_scored_by_reasoning_gym():
    env = agentgym.make("gem/rg-basic_arithmetic-v0")
    obs, info = env.reset(seed=3)
    assert obs == env.unwrapped._env.data["question"]
    answer = env.unwrapped._env.data["answer"]  # the dataset's own answer
    _, _, terminated, _, info = env.step("no box here")
    assert info["invalid"] and not terminated
    _, reward, terminated, truncated, info = env.step(f"The result is {boxed(str(answer))}.")
    assert reward == 1.0 and info["won"] and (terminated or truncated)
    env.reset(seed=3)
    _, reward, _, _, info = env.step(boxed(str(answer) + "1"))
    assert reward < 1.0 and not info["won"]
