"""The toy environments: determinism, oracle, shortest paths, state keys, invalid actions."""

import copy
from collections import deque

import pytest

import agentgym
from agentgym.envs.toy import KeyDoorEnv, normalize_action
from agentgym.envs.toy_maze import MazeEnv, generate_maze

TOY_IDS = [
    "agentgym/KeyDoor-Small-v0",
    "agentgym/KeyDoor-Medium-v0",
    "agentgym/KeyDoor-Large-v0",
    "agentgym/Maze-4x4-v0",
    "agentgym/Maze-5x5-v0",
    "agentgym/Maze-6x6-v0",
]


def play(env, seed, policy, limit=200):
    """Reset with ``seed`` and play ``policy(env, info)`` to the end; return the transcript."""
    obs, info = env.reset(seed=seed)
    record = [(obs, info)]
    for _ in range(limit):
        out = env.step(policy(env, info))
        record.append(out)
        if out[2] or out[3]:
            break
    return record


def oracle(env, info):
    return env.unwrapped.oracle_action()


@pytest.mark.parametrize("env_id", TOY_IDS)
def test_same_seed_same_episode(env_id):
    env = agentgym.make(env_id)
    first = play(env, 7, lambda e, i: i["admissible_actions"][-1], limit=10)
    second = play(env, 7, lambda e, i: i["admissible_actions"][-1], limit=10)
    assert first == second
    tasks = {env.reset(seed=s)[1]["task_id"] for s in range(20)}
    assert len(tasks) > 1  # the seed picks the layout


@pytest.mark.parametrize("env_id", TOY_IDS)
def test_oracle_solves_every_seed_within_max_turns(env_id):
    env = agentgym.make(env_id)
    for seed in range(50):
        *_, (obs, reward, terminated, truncated, info) = play(env, seed, oracle)
        assert (reward, terminated, truncated, info["won"]) == (1.0, True, False, True), seed


def shortest_solution_length(env, info) -> int:
    """Plain BFS over copies of the env, stepping every admissible action (no oracle)."""
    queue = deque([(copy.deepcopy(env.unwrapped), info["admissible_actions"], 0)])
    seen = {info["state_key"]}
    while queue:
        node, admissible, depth = queue.popleft()
        for action in admissible:
            child = copy.deepcopy(node)
            *_, info = child.step(action)
            if info["won"]:
                return depth + 1
            if info["state_key"] not in seen:
                seen.add(info["state_key"])
                queue.append((child, info["admissible_actions"], depth + 1))
    raise AssertionError("no solution")


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("agentgym/KeyDoor-Small-v0", {}),
        ("agentgym/KeyDoor-Small-v0", {"n_rooms": 1}),
        ("agentgym/Maze-4x4-v0", {"height": 2, "width": 3}),
        ("agentgym/Maze-4x4-v0", {}),
    ],
)
def test_oracle_path_is_shortest(env_id, kwargs):
    env = agentgym.make(env_id, **kwargs)
    for seed in range(10):
        _, info = env.reset(seed=seed)
        expected = shortest_solution_length(env, info)
        assert len(play(env, seed, oracle)) - 1 == expected, seed


def test_key_door_worked_example():
    env = KeyDoorEnv(n_rooms=3)
    obs, info = env.reset(options={"task_id": "keydoor-3-k0-s2"})
    assert info["task_id"] == "keydoor-3-k0-s2"
    assert obs == "You are in the gatehouse. A locked iron door leads north. Exits: west."
    assert info["state_key"] == "room=2;key=0;door=locked"
    steps = ["go west", "go west", "take key", "go east", "go east", "open door", "go north"]
    rewards = []
    for action in steps:
        assert env.oracle_action() == action
        obs, reward, terminated, _, info = env.step(action)
        rewards.append(reward)
    assert rewards == [0.0] * 6 + [1.0]
    assert terminated and info["won"] and info["admissible_actions"] == []


def test_repeated_observations_have_different_state_keys():
    """Aliased texts (identical hallways, "You are carrying nothing.") name different states."""
    env = KeyDoorEnv(n_rooms=5)
    env.reset(options={"task_id": "keydoor-5-k4-s0"})
    keys: dict[str, set[str]] = {}
    for action in ["look", "inventory", "go east", "look", "inventory", "go east", "look"]:
        obs, _, _, _, info = env.step(action)
        keys.setdefault(obs, set()).add(info["state_key"])
    assert keys["You are carrying nothing."] == {
        "room=0;key=4;door=locked",
        "room=1;key=4;door=locked",
    }
    assert keys["You are in a dusty hallway. Exits: west, east."] == {
        "room=1;key=4;door=locked",
        "room=2;key=4;door=locked",
    }


@pytest.mark.parametrize("env_id", TOY_IDS)
@pytest.mark.parametrize("action", ["", "dance", "go up", "TAKE KEY PLEASE", "x" * 500])
def test_invalid_actions_are_observations(env_id, action):
    env = agentgym.make(env_id)
    obs0, info0 = env.reset(seed=1)
    obs, reward, terminated, truncated, info = env.step(action)
    assert (reward, terminated, truncated, info["invalid"]) == (0.0, False, False, True)
    assert "Valid commands: " + ", ".join(info0["admissible_actions"]) in obs
    assert len(obs) < 300
    assert info["state_key"] == info0["state_key"]
    assert env.step(info0["admissible_actions"][0])[4]["invalid"] is False  # the episode goes on


def test_impossible_action_says_what_is_wrong():
    env = MazeEnv(height=4, width=4)
    _, info = env.reset(seed=0)
    wall = next(
        f"go {d}"
        for d in ("north", "south", "east", "west")
        if f"go {d}" not in info["admissible_actions"]
    )
    obs, *_, info = env.step(wall)
    assert obs.startswith(f'"{wall}" is not possible here.') and info["invalid"]


@pytest.mark.parametrize("text", ["go east", "  Go   EAST. ", "east", "E", "go east!"])
def test_actions_are_parsed_case_and_whitespace_insensitively(text):
    assert normalize_action(text) == "go east"


def test_task_id_option_reproduces_the_task():
    env = MazeEnv(height=5, width=5)
    obs, info = env.reset(seed=12)
    again = MazeEnv(height=5, width=5).reset(options={"task_id": info["task_id"]})
    assert again == (obs, info)
    with pytest.raises(ValueError, match="maze-5x5-g"):
        env.reset(options={"task_id": "maze-4x4-g1"})


def test_generated_maze_is_perfect():
    """Passages are symmetric and connect all cells without cycles (cells - 1 passages)."""
    exits = generate_maze(5, 6, seed=3)
    step = {"north": (-1, 0), "south": (1, 0), "east": (0, 1), "west": (0, -1)}
    back = {"north": "south", "south": "north", "east": "west", "west": "east"}
    edges = 0
    for (r, c), dirs in exits.items():
        for d in dirs:
            nxt = (r + step[d][0], c + step[d][1])
            assert back[d] in exits[nxt]
            edges += 1
    assert edges // 2 == len(exits) - 1
    reached, stack = {(0, 0)}, [(0, 0)]
    while stack:
        r, c = stack.pop()
        for d in exits[(r, c)]:
            nxt = (r + step[d][0], c + step[d][1])
            if nxt not in reached:
                reached.add(nxt)
                stack.append(nxt)
    assert len(reached) == 30
