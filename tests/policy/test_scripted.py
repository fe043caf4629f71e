"""Scripted policies: random, oracle, fixed."""

import pytest

import agentgym
from agentgym.core import TextEnv
from agentgym.policy.base import Completion, Conversation, Policy, SamplingParams
from agentgym.policy.scripted import FixedPolicy, OraclePolicy, RandomPolicy, make_scripted

SAMPLING = SamplingParams()


def conv(key="k", admissible=("look", "go east", "take key"), env=None):
    info = {"admissible_actions": list(admissible) if admissible is not None else None}
    return Conversation(key=key, messages=[], info=info, env=env)


def texts(policy, conversations, turns=1, sampling=SAMPLING):
    return [[c.text for c in policy.generate(conversations, sampling)] for _ in range(turns)]


@pytest.mark.parametrize("name", ["random", "oracle", "fixed"])
def test_scripted_policies_follow_the_protocol(name):
    policy = make_scripted(name, actions=["look"]) if name == "fixed" else make_scripted(name)
    assert isinstance(policy, Policy)


def test_make_scripted_suggests_the_nearest_name():
    with pytest.raises(ValueError, match="Did you mean 'oracle'"):
        make_scripted("oracel")


def test_random_is_uniform_over_admissible_actions():
    out = texts(RandomPolicy(0), [conv()], turns=300)
    counts = {a: sum(row == [a] for row in out) for a in ("look", "go east", "take key")}
    assert sum(counts.values()) == 300 and min(counts.values()) > 70


def test_random_is_reproducible_and_per_episode():
    convs = [conv("a"), conv("b")]
    first = texts(RandomPolicy(7), convs, turns=20)
    assert first == texts(RandomPolicy(7), convs, turns=20)
    assert first != texts(RandomPolicy(8), convs, turns=20)
    alone = texts(RandomPolicy(7), [conv("b")], turns=20)
    assert [row[1] for row in first] == [row[0] for row in alone]  # batch-independent


def test_random_uses_sampling_seed_when_unseeded_and_a_fallback():
    seeded = SamplingParams(seed=5)
    a = texts(RandomPolicy(None), [conv()], turns=10, sampling=seeded)
    assert a == texts(RandomPolicy(None), [conv()], turns=10, sampling=seeded)
    assert texts(RandomPolicy(0, fallback=["wait"]), [conv(admissible=None)]) == [["wait"]]
    assert texts(RandomPolicy(0), [conv(admissible=[])]) == [["look"]]


def test_random_end_episodes_restarts_a_key():
    policy = RandomPolicy(1)
    first = texts(policy, [conv()], turns=5)
    policy.end_episodes(["k"])
    assert texts(policy, [conv()], turns=5) == first


def test_fixed_plays_in_order_then_repeats_the_last():
    policy = FixedPolicy(["a", "b"])
    assert texts(policy, [conv("x")], turns=4) == [["a"], ["b"], ["b"], ["b"]]
    assert texts(policy, [conv("y"), conv("x")]) == [["a", "b"]]  # positions are per episode
    policy.end_episodes(["x"])
    assert texts(policy, [conv("x")]) == [["a"]]


def test_fixed_cycles_when_asked():
    policy = FixedPolicy(["a", "b"], cycle=True)
    assert texts(policy, [conv()], turns=5) == [["a"], ["b"], ["a"], ["b"], ["a"]]


def test_fixed_refuses_a_single_string():
    with pytest.raises(ValueError, match="not one string"):
        FixedPolicy("look")


def test_oracle_plays_the_env_oracle():
    env = agentgym.make("agentgym/KeyDoor-Small-v0")
    _, info = env.reset(options={"task_id": "keydoor-3-k0-s2"})
    out = OraclePolicy().generate([conv(env=env)], SAMPLING)
    assert out == [Completion(text="go west")]


class NoOracle(TextEnv):
    def _reset(self, seed, options):
        return "hi", {}

    def _step(self, action):
        return "hi", 0.0, False, False, {}


def test_oracle_errors_say_what_is_missing():
    with pytest.raises(ValueError, match="needs conversation.env"):
        OraclePolicy().generate([conv()], SAMPLING)
    env = NoOracle()
    env.reset(seed=0)
    with pytest.raises(TypeError, match="NoOracle has no oracle_action"):
        OraclePolicy().generate([conv(env=env)], SAMPLING)
