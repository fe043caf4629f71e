"""The environment contract: every registered env passes check_env; broken envs are caught."""

import itertools

import gymnasium
import pytest

import agentgym
from agentgym.core import ContractError, EpisodeOverError, FreeText, TextEnv, check_env
from agentgym.sandbox import IsolationUnavailable

ALL_ENV_IDS = [s.id for s in agentgym.list_envs()]
TOY_ENV_IDS = [i for i in ALL_ENV_IDS if i.startswith("agentgym/")]


def make_or_skip(make, env_id):
    """``make(env_id)``; skips an env whose sandbox isolation is unavailable (code envs)."""
    try:
        return make(env_id)
    except IsolationUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("env_id", ALL_ENV_IDS)
def test_registered_env_keeps_the_contract(env_id):
    check_env(make_or_skip(agentgym.make, env_id))


@pytest.mark.parametrize("env_id", TOY_ENV_IDS)
def test_gymnasium_make_builds_the_same_env(env_id):
    env = make_or_skip(gymnasium.make, env_id)
    ours = agentgym.make(env_id)
    assert env.reset(seed=3) == ours.reset(seed=3)
    action = ours.unwrapped.oracle_action()
    assert env.step(action) == ours.step(action)


def test_toy_envs_are_registered():
    assert {"agentgym/KeyDoor-Small-v0", "agentgym/Maze-5x5-v0"} <= set(TOY_ENV_IDS)


class _Tiny(TextEnv):
    """Counts to three; 'go' advances, anything else is invalid."""

    def _reset(self, seed, options):
        self.n = 0
        return "0", {"task": "count", "task_id": "tiny", "admissible_actions": ["go"]}

    def _step(self, action):
        if action != "go":
            return "say go", 0.0, False, False, {"invalid": True, "admissible_actions": ["go"]}
        self.n += 1
        done = self.n >= 3
        return str(self.n), float(done), done, False, {"won": done, "admissible_actions": ["go"]}


class _RaisesOnGarbage(_Tiny):
    def _step(self, action):
        if action != "go":
            raise ValueError(f"bad action {action!r}")
        return super()._step(action)


_counter = itertools.count()


class _NotSeeded(_Tiny):
    def _reset(self, seed, options):
        obs, info = super()._reset(seed, options)
        return f"{obs} (episode {next(_counter)})", info


class _StepsAfterEnd(_Tiny):
    def step(self, action):
        out = self._step(action) if isinstance(action, str) else ("?", 0.0, False, False, {})
        return out[:4] + (self._complete_info(out[0], out[4]),)


def test_check_env_accepts_a_correct_env():
    check_env(_Tiny())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (_RaisesOnGarbage(), "raised"),
        (_NotSeeded(), "different episodes"),
        (_StepsAfterEnd(), "EpisodeOverError"),
    ],
)
def test_check_env_catches_broken_envs(env, message):
    with pytest.raises(ContractError, match=message):
        check_env(env)


def test_step_after_end_raises():
    env = _Tiny()
    env.reset(seed=0)
    for _ in range(3):
        env.step("go")
    with pytest.raises(EpisodeOverError):
        env.step("go")


def test_free_text_contains_any_unicode_up_to_its_length():
    space = FreeText(max_length=20)
    assert space.contains("ünïcødé ✓ 漢字 🙂")
    assert space.contains("")
    assert not space.contains("x" * 21)
    assert not space.contains(b"bytes")
    assert not space.contains(None)
