"""TextArena games behind the agentgym contract (agentgym.envs.textarena; extra: ecosystems)."""

import random

import gymnasium
import numpy as np
import pytest

pytest.importorskip("textarena")

import agentgym  # noqa: E402
from agentgym.envs.textarena import CANDIDATES, GAMES, NETWORK_GAMES, VARIANTS  # noqa: E402

HANOI = "textarena/TowerOfHanoi-v0"


def hanoi_moves(n, src="A", dst="C", via="B"):
    """The optimal Tower of Hanoi solution, by the textbook recursion."""
    if n == 0:
        return []
    return (
        hanoi_moves(n - 1, src, via, dst) + [f"[{src} {dst}]"] + hanoi_moves(n - 1, via, dst, src)
    )


def legal_hanoi(towers):
    """Legal moves computed from the board, not by trying them in the game."""
    return sorted(
        f"[{s} {d}]"
        for s in "ABC"
        for d in "ABC"
        if s != d and towers[s] and (not towers[d] or towers[d][-1] > towers[s][-1])
    )


def test_registered_games_are_known_offline_and_none_needs_the_network():
    from textarena.envs.registration import ENV_REGISTRY

    for game in [*GAMES, *VARIANTS, *NETWORK_GAMES]:
        assert game in ENV_REGISTRY, game
    assert not set(GAMES) & set(NETWORK_GAMES)
    assert {s.id for s in agentgym.list_envs()} >= {f"textarena/{g}" for g in GAMES}


def test_optimal_solution_wins_and_reports_won():
    env = agentgym.make(HANOI)
    obs, info = env.reset(seed=0)
    assert "Tower of Hanoi" in info["task"] and "A: [3, 2, 1]" in obs
    for move in hanoi_moves(3):
        assert sorted(info["admissible_actions"]) == legal_hanoi(
            env.unwrapped._env.state.game_state["towers"]
        )
        obs, reward, terminated, truncated, info = env.step(move)
        assert not info["invalid"], obs
    assert (reward, terminated, truncated, info["won"]) == (1.0, True, False, True)
    assert info["admissible_actions"] == []


def test_unparseable_and_illegal_moves_are_observations_and_the_game_goes_on():
    env = agentgym.make(HANOI)
    _, info = env.reset(seed=0)
    start = info["state_key"]
    for reply in ("I think I will move the disk", "[C A]", "[A Z]", "[C A]"):
        obs, reward, terminated, truncated, info = env.step(reply)
        assert info["invalid"] and not (terminated or truncated), reply
        assert info["state_key"] == start and reward == 0.0
        assert "invalid move" in obs.lower()
    # TextArena itself would have ended the game at the second invalid move in a row
    obs, _, terminated, _, info = env.step("[A C]")
    assert not info["invalid"] and not terminated and "C: [1]" in obs


def test_bare_moves_are_bracketed_like_textarena_does():
    env = agentgym.make("textarena/FrozenLake-v0")
    _, info = env.reset(seed=0)
    move = info["admissible_actions"][0]
    bare = move.strip("[]")
    a = env.step(move)
    env.reset(seed=0)
    b = env.step(bare)
    assert a == b and not a[4]["invalid"]


def test_state_key_names_the_state_not_the_text():
    env = agentgym.make(HANOI)
    _, info = env.reset(seed=0)
    start = info["state_key"]
    env.step("[A B]")
    _, _, _, _, info = env.step("[B A]")  # back to the start by another path
    assert info["state_key"] == start
    # Guess the number: the same opening text, different hidden numbers, different keys
    env = agentgym.make("textarena/GuessTheNumber-v0")
    firsts = {}
    for seed in range(8):
        obs, info = env.reset(seed=seed)
        firsts.setdefault(obs, set()).add(info["state_key"])
        number = env.unwrapped._env.state.game_state["game_number"]
        firsts.setdefault(("number", number), set()).add(info["state_key"])
    texts = [keys for k, keys in firsts.items() if isinstance(k, str)]
    numbers = [keys for k, keys in firsts.items() if isinstance(k, tuple)]
    assert len(texts) == 1 and len(texts[0]) == len(numbers) > 1
    assert all(len(keys) == 1 for keys in numbers)  # one key per hidden number


@pytest.mark.parametrize("game", sorted(g for g in GAMES if g.split("-v")[0] in {
    "2048", "Bandit", "Blackjack", "FrozenLake", "GuessTheNumber", "LightsOut", "Minesweeper",
    "Secretary", "ThreeCardMonte", "TowerOfHanoi"}))  # fmt: skip
def test_every_admissible_action_is_accepted(game):
    env = agentgym.make(f"textarena/{game}")
    assert type(env.unwrapped._env).__name__ in CANDIDATES
    rng = random.Random(0)
    for seed in range(2):
        _, info = env.reset(seed=seed)
        for _ in range(15):
            assert info["admissible_actions"], "a running game offers at least one move"
            _, _, terminated, truncated, info = env.step(rng.choice(info["admissible_actions"]))
            assert not info["invalid"]
            if terminated or truncated:
                break


def test_episodes_in_turn_match_episodes_one_after_another_and_leave_global_rng_alone():
    def play(env, seed, n):
        out = [env.reset(seed=seed)]
        for _ in range(n):
            out.append(env.step(out[-1][-1]["admissible_actions"][0]))
        return out

    random.seed(123)
    np.random.seed(123)
    before = random.random(), np.random.random()
    a, b = (
        agentgym.make("textarena/2048-v0-ultra-easy"),
        agentgym.make("textarena/2048-v0-ultra-easy"),
    )
    alone = [play(a, 1, 6), play(b, 2, 6)]
    a.reset(seed=1)
    b.reset(seed=2)
    mixed = [[a.reset(seed=1)], [b.reset(seed=2)]]
    for _ in range(6):  # interleaved: each game's tile spawns come from its own generator
        for env, out in zip((a, b), mixed, strict=True):
            out.append(env.step(out[-1][-1]["admissible_actions"][0]))
    assert mixed == alone
    random.seed(123)
    np.random.seed(123)
    assert (random.random(), np.random.random()) == before


def test_gymnasium_make_builds_it_too():
    env = gymnasium.make(HANOI)
    assert env.reset(seed=4) == agentgym.make(HANOI).reset(seed=4)


def test_minesweeper_moves_do_not_reveal_the_mines_and_a_mine_ends_the_game():
    env = agentgym.make("textarena/Minesweeper-v0-small")
    rng = random.Random(1)
    outcomes = []
    for seed in range(6):
        _, info = env.reset(seed=seed)
        # every covered cell is offered, mine or not (the list is the board's, not a trial's)
        assert sorted(info["admissible_actions"]) == sorted(
            f"[{r} {c}]" for r in range(5) for c in range(5)
        )
        while True:
            obs, reward, terminated, truncated, info = env.step(
                rng.choice(info["admissible_actions"])
            )
            if terminated or truncated:
                break
        outcomes.append((info["won"], "hit a mine" in obs, info["invalid"]))
    assert (False, True, False) in outcomes  # a mine: a loss, and not an invalid move
