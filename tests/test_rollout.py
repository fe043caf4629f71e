"""rollout.collect: groups, batching of generate calls, turn records, limits."""

import numpy as np
import pytest

from agentgym.policy.base import Completion, SamplingParams
from agentgym.policy.scripted import FixedPolicy, OraclePolicy, RandomPolicy
from agentgym.rollout import (
    collect,
    conversation_messages,
)

KEYDOOR = "agentgym/KeyDoor-Small-v0"


class Recording:
    """Wraps a policy; records every generate call (keys, message copies) and ended keys."""

    def __init__(self, inner):
        self.inner = inner
        self.calls: list[list[str]] = []
        self.messages: dict[str, list[dict]] = {}
        self.outputs: dict[str, str] = {}
        self.ended: list[str] = []

    def generate(self, conversations, sampling):
        self.calls.append([c.key for c in conversations])
        out = self.inner.generate(conversations, sampling)
        for conv, completion in zip(conversations, out, strict=True):
            self.messages[conv.key] = [dict(m) for m in conv.messages]
            self.outputs[conv.key] = completion.text
        return out

    def end_episodes(self, keys):
        self.ended.extend(keys)
        self.inner.end_episodes(keys)


def test_group_members_share_seed_and_task():
    batch = collect("agentgym/Maze-4x4-v0", RandomPolicy(0), tasks=3, group_size=4, seed=10)
    assert len(batch) == 12 and len(batch.group_ids) == 3
    for g, group_id in enumerate(batch.group_ids):
        members = [t for t in batch.trajectories if t.group_id == group_id]
        assert len(members) == 4
        assert {t.seed for t in members} == {10 + g}
        assert len({t.task_id for t in members}) == 1
        assert len({(t.turns[0].observation, t.turns[0].state_key) for t in members}) == 1
        assert group_id == f"agentgym/Maze-4x4-v0:{members[0].task_id}:{10 + g}"
        assert [t.traj_id for t in members] == [f"{group_id}#{m}" for m in range(4)]


def test_one_generate_call_per_turn_over_all_live_episodes():
    policy = Recording(RandomPolicy(1))
    batch = collect(KEYDOOR, policy, tasks=3, group_size=3)
    lengths = dict(zip((t.traj_id for t in batch.trajectories), batch.traj_len, strict=True))
    assert len(policy.calls) == batch.traj_len.max()
    for turn, keys in enumerate(policy.calls):
        assert keys == [k for k, n in lengths.items() if n > turn]
    assert sorted(policy.ended) == sorted(lengths)  # each episode released exactly once


def test_oracle_wins_every_episode():
    batch = collect("agentgym/KeyDoor-Large-v0", OraclePolicy(), tasks=5, group_size=2)
    assert batch.won.all()
    assert np.array_equal(batch.returns, np.ones(10))
    assert all(t.turns[-1].terminated and not t.turns[-1].truncated for t in batch.trajectories)
    assert not any(turn.invalid for t in batch.trajectories for turn in t.turns)


def actions_of(batch):
    return [tuple(t.action for t in traj.turns) for traj in batch.trajectories]


def test_random_rollouts_are_reproducible_under_a_seed():
    first = collect(KEYDOOR, RandomPolicy(3), tasks=3, group_size=3)
    second = collect(KEYDOOR, RandomPolicy(3), tasks=3, group_size=3)
    other = collect(KEYDOOR, RandomPolicy(4), tasks=3, group_size=3)
    assert first == second
    assert actions_of(first) != actions_of(other)
    assert len(set(actions_of(first))) > 1  # group members explore differently


def test_max_turns_truncates():
    batch = collect(KEYDOOR, FixedPolicy(["look"]), tasks=2, group_size=2, max_turns=4)
    assert list(batch.traj_len) == [4, 4, 4, 4]
    for traj in batch.trajectories:
        assert [t.truncated for t in traj.turns] == [False, False, False, True]
        assert not any(t.terminated for t in traj.turns) and not traj.won
        assert traj.metadata["max_turns"] == 4


def test_turns_are_bounded_by_the_registered_limit():
    batch = collect("agentgym/KeyDoor-Large-v0", RandomPolicy(0), tasks=4, group_size=2)
    assert batch.traj_len.max() <= 40
    for traj, n in zip(batch.trajectories, batch.traj_len, strict=True):
        assert traj.turns[-1].terminated or (traj.turns[-1].truncated and n == 40)


def test_batch_arrays_are_consistent():
    batch = collect(KEYDOOR, RandomPolicy(5), tasks=3, group_size=2)
    flat = [
        (i, j, turn) for i, t in enumerate(batch.trajectories) for j, turn in enumerate(t.turns)
    ]
    assert batch.num_turns == len(flat)
    assert list(batch.turn_traj) == [i for i, _, _ in flat]
    assert list(batch.turn_index) == [j for _, j, _ in flat]
    assert list(batch.rewards) == [turn.reward for _, _, turn in flat]
    assert list(batch.traj_group) == [0, 0, 1, 1, 2, 2]
    assert list(batch.returns) == [t.episode_return for t in batch.trajectories]
    assert list(batch.won) == [t.won for t in batch.trajectories]


def test_turns_record_the_state_the_action_was_taken_in():
    batch = collect(KEYDOOR, RandomPolicy(2), tasks=2, group_size=2)
    for traj in batch.trajectories:
        before = [traj.metadata["reset_info"]["state_key"]]
        before += [turn.info["state_key"] for turn in traj.turns[:-1]]
        assert [turn.state_key for turn in traj.turns] == before
        assert traj.task_id == traj.metadata["reset_info"]["task_id"] and traj.task


def test_messages_are_what_the_policy_saw():
    policy = Recording(RandomPolicy(0))
    batch = collect(KEYDOOR, policy, tasks=2, group_size=2, system_prompt=lambda i: i["task_id"])
    for traj in batch.trajectories:
        seen = policy.messages[traj.traj_id]
        expected = seen + [{"role": "assistant", "content": policy.outputs[traj.traj_id]}]
        assert conversation_messages(traj) == expected
        assert seen[0] == {"role": "system", "content": traj.task_id}
        turns = len(traj.turns)
        assert [m["role"] for m in seen] == ["system"] + ["user", "assistant"] * (turns - 1) + [
            "user"
        ]


def test_action_parsing():
    from agentgym.prompting import parse_plain

    assert parse_plain("\n  take key  \nbecause") == "take key"
    assert parse_plain(" \n\t") is None
    batch = collect(KEYDOOR, FixedPolicy(["\n  LOOK \nI looked."]), tasks=1, group_size=1)
    turn = batch.trajectories[0].turns[0]
    assert (turn.output, turn.action, turn.invalid) == ("\n  LOOK \nI looked.", "LOOK", False)


def test_unparseable_output_goes_to_the_env_raw_and_is_invalid():
    batch = collect(KEYDOOR, OraclePolicy(), tasks=1, group_size=2, parse_action=lambda s: None)
    for traj in batch.trajectories:
        assert traj.won  # the raw oracle text was a valid command
        assert all(t.invalid and t.action == t.output for t in traj.turns)


def test_invalid_env_actions_are_marked():
    batch = collect(KEYDOOR, FixedPolicy(["dance"]), tasks=1, group_size=1, max_turns=2)
    assert [t.invalid for t in batch.trajectories[0].turns] == [True, True]


class TokenPolicy:
    def generate(self, conversations, sampling):
        assert sampling == SamplingParams(temperature=0.0)
        return [Completion("look", (5, 6), (-0.5, -0.25), (1, 2, 3)) for _ in conversations]

    def end_episodes(self, keys):
        pass


def test_token_data_and_kwargs_are_kept():
    batch = collect(
        KEYDOOR,
        TokenPolicy(),
        tasks=2,
        group_size=1,
        max_turns=2,
        sampling=SamplingParams(temperature=0.0),
        env_kwargs={"n_rooms": 4},
        group_prefix="it7/",
    )
    traj = batch.trajectories[0]
    assert traj.group_id.startswith("it7/agentgym/KeyDoor-Small-v0:keydoor-4-")
    assert traj.env_kwargs == {"n_rooms": 4}
    turn = traj.turns[0]
    assert (turn.prompt_ids, turn.response_ids, turn.response_logprobs) == (
        (1, 2, 3),
        (5, 6),
        (-0.5, -0.25),
    )


class Broken:
    def __init__(self):
        self.ended = []

    def generate(self, conversations, sampling):
        return []

    def end_episodes(self, keys):
        self.ended.extend(keys)


def test_wrong_number_of_completions_is_an_error_and_releases_episodes():
    policy = Broken()
    with pytest.raises(ValueError, match="one per conversation"):
        collect(KEYDOOR, policy, tasks=1, group_size=2)
    assert len(policy.ended) == 2


def test_no_tasks_gives_an_empty_batch():
    batch = collect(KEYDOOR, RandomPolicy(0), tasks=0, group_size=2)
    assert len(batch) == 0 and batch.num_turns == 0


def test_observation_lists_valid_actions_then_the_hint():
    from agentgym.prompting import action_format

    text = action_format("plain").observation("Dark.", {"admissible_actions": ["look", "go east"]})
    assert text == (
        "Dark.\n\nChoose one of these actions:\n- look\n- go east\n\nAnswer with the action only."
    )
    assert action_format("plain").observation("Dark.", {"admissible_actions": None}) == "Dark."


class RecordingPolicy:
    """Plays the first admissible action and records the messages it was shown."""

    def __init__(self):
        self.seen = []

    def generate(self, conversations, sampling):
        from agentgym.policy.base import Completion

        self.seen.append([list(c.messages) for c in conversations])
        return [Completion(text=c.info["admissible_actions"][-1]) for c in conversations]

    def end_episodes(self, keys):
        pass


def test_history_window_keeps_system_and_last_k_turns():
    policy = RecordingPolicy()
    batch = collect(
        "agentgym/Maze-4x4-v0", policy, tasks=1, group_size=1, max_turns=6, history_window=2
    )
    assert batch.trajectories[0].metadata["history"] == "window"
    for turn, calls in enumerate(policy.seen):
        msgs = calls[0]
        assert msgs[0]["role"] == "system" and msgs[-1]["role"] == "user"
        assert len(msgs) == 2 + 2 * min(turn, 2)
    full = collect("agentgym/Maze-4x4-v0", RecordingPolicy(), tasks=1, group_size=1, max_turns=6)
    assert full.trajectories[0].metadata["history"] == "full"
