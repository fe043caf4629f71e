"""Slow TextWorld sweeps: the oracle on 100 games per family, 10,000 garbage actions, and
byte-identical regeneration of a game in a fresh cache.

    pytest -m slow tests/envs/test_textworld_sweep.py -s    (prints the exact figures)

Generating the 500 games takes ~15 min on 2 cores the first time; they are cached afterwards.
"""

import filecmp
import random
import string

import pytest

pytest.importorskip("textworld")

import agentgym  # noqa: E402
from agentgym.core import GARBAGE_ACTIONS  # noqa: E402
from agentgym.envs.textworld_games import GameSpec, ensure_games  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.sweep]

IDS = [
    "agentgym/TextWorld-Custom-v0",
    "agentgym/TextWorld-Simple-v0",
    "agentgym/TextWorld-CoinCollector-v0",
    "agentgym/TextWorld-TreasureHunter-v0",
    "agentgym/TextWorld-Cooking-v0",
]
GAMES = 100
HOSTILE = (
    *GARBAGE_ACTIONS,
    "restart",
    "quit",
    "save",
    "restore",
    "again",
    "undo",
    "tw-trace-actions",
    "look\nrestart",
    "go north. then quit",
    "\x00" * 3,
    "\\help",
    "\\s \\p \\lt",
    "\ud800 lone surrogate",
    "\u202e\u200b format chars",
)


def registered_spec(env_id: str) -> GameSpec:
    kwargs = dict(agentgym.registry.spec(env_id).kwargs)
    return GameSpec.create(kwargs.pop("family"), **kwargs)


@pytest.mark.parametrize("env_id", IDS)
def test_oracle_wins_at_least_95_of_100_games(env_id):
    ensure_games(registered_spec(env_id), list(range(GAMES)), workers=2)
    env = agentgym.make(env_id)
    wins = 0
    for seed in range(GAMES):
        env.reset(seed=seed)
        done, info = False, {}
        while not done:
            action = env.unwrapped.oracle_action()
            _, _, terminated, truncated, info = env.step(action or "look")
            done = terminated or truncated
        wins += info["won"]
    print(f"\n{env_id}: oracle won {wins}/{GAMES}")
    assert wins >= 95


def random_hostile(rng: random.Random) -> str:
    """A listed hostile action, random unicode, or random printable ASCII (backslashes too)."""
    kind = rng.randrange(3)
    if kind == 0:
        return rng.choice(HOSTILE)
    if kind == 1:
        return "".join(chr(rng.randrange(0, 0x2FFF)) for _ in range(rng.randrange(0, 300)))
    return "".join(rng.choice(string.printable) for _ in range(rng.randrange(0, 300)))


def test_ten_thousand_random_and_garbage_actions_never_raise():
    rng = random.Random(0)
    envs = [agentgym.make(env_id) for env_id in IDS]
    infos = [env.reset(seed=rng.randrange(4))[1] for env in envs]
    invalid = episodes = 0
    for i in range(10_000):
        k = i % len(envs)
        admissible = infos[k]["admissible_actions"]
        garbage = rng.random() < 0.5 or not admissible
        action = random_hostile(rng) if garbage else rng.choice(admissible)
        obs, reward, terminated, truncated, infos[k] = envs[k].step(action)
        assert isinstance(obs, str) and isinstance(reward, float)
        invalid += infos[k]["invalid"]
        if terminated or truncated:
            episodes += 1
            infos[k] = envs[k].reset(seed=rng.randrange(4))[1]
    print(f"\n10,000 actions: {invalid} invalid, {episodes} episodes ended, no exception")


def test_regeneration_is_byte_identical(tmp_path):
    spec = GameSpec.create("cooking", recipe=2, take=2, go=6)
    first = ensure_games(spec, [5], tmp_path / "a")[0]
    second = ensure_games(spec, [5], tmp_path / "b")[0]
    assert filecmp.cmp(first, second, shallow=False)
    assert filecmp.cmp(first.with_suffix(".json"), second.with_suffix(".json"), shallow=False)
