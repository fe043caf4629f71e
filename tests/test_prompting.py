import pytest

from agentgym.prompting import action_format, parse_plain, parse_tag


@pytest.mark.parametrize(
    "text,expected",
    [
        ("go east", "go east"),
        ("\n  `take key`.\nmore", "take key"),
        ('"open door"', "open door"),
        ("", None),
        ("  \n \n", None),
    ],
)
def test_plain(text, expected):
    assert parse_plain(text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("I should move. <action>go east</action>", "go east"),
        ("<ACTION> take key </ACTION> trailing", "take key"),
        ("reasoning <action>open door", "open door"),  # cut by the stop string
        ("no tags at all", None),
        ("<action></action>", None),
    ],
)
def test_tag(text, expected):
    assert parse_tag(text) == expected


def test_system_prompt_names_the_task_and_unknown_format_is_refused():
    fmt = action_format("plain")
    assert "find the key" in fmt.system_prompt({"task": "find the key"})
    with pytest.raises(KeyError, match="plain"):
        action_format("json")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("- look", "look"),
        ("2. go east", "go east"),
        ("* take key.", "take key"),
        ("Action: open door", "open door"),
    ],
)
def test_plain_strips_list_markers(text, expected):
    assert parse_plain(text) == expected


def test_action_list_can_be_left_out_and_the_stored_chat_says_so():
    from agentgym.policy.scripted import RandomPolicy
    from agentgym.prompting import action_format
    from agentgym.rollout import collect, conversation_messages

    info = {"admissible_actions": ["go west", "look"]}
    assert "- go west" in action_format("plain").observation("A room.", info)
    assert action_format("plain", list_actions=False).observation("A room.", info) == "A room."
    fmt = action_format("plain", list_actions=False)
    policy = RandomPolicy(seed=0)
    batch = collect("agentgym/KeyDoor-Small-v0", policy, tasks=1, group_size=1, action_format=fmt)
    traj = batch.trajectories[0]
    messages = conversation_messages(traj)
    assert messages[1]["content"] == traj.turns[0].observation  # no list appended


def test_inline_action_list_is_one_line_and_the_stored_chat_rebuilds_it():
    from agentgym.panel import sampling_settings
    from agentgym.policy.scripted import RandomPolicy
    from agentgym.prompting import action_format
    from agentgym.rollout import collect, conversation_messages

    info = {"admissible_actions": ["go west", "look"]}
    fmt = action_format("plain", list_style="inline")
    assert fmt.observation("A room.", info) == "A room.\n\nActions: go west | look"
    with pytest.raises(ValueError, match="list style 'table'.*bullets"):
        action_format("plain", list_style="table")
    batch = collect(
        "agentgym/KeyDoor-Small-v0", RandomPolicy(seed=0), tasks=1, group_size=1, action_format=fmt
    )
    traj = batch.trajectories[0]
    messages = conversation_messages(traj)
    assert messages[1]["content"].splitlines()[-1].startswith("Actions: ")
    assert messages[1]["content"] == fmt.observation(
        traj.turns[0].observation, traj.metadata["reset_info"]
    )

    class Sampling:
        temperature, top_p, max_new_tokens = 1.0, 1.0, 8

    styled = sampling_settings(None, Sampling, {"action_format": fmt})
    default = sampling_settings(None, Sampling, {"action_format": action_format("plain")})
    assert styled["list_style"] == "inline" and "list_style" not in default  # old hashes stand
