"""ALFWorld: generated games, the fast engine's identity with the stock one, info, oracle.

Games come from the default cache (generated on first use, a second or so each); the identity
test plays one small game through the stock engine (a few steps per second).
"""

from __future__ import annotations

import json
import random
import shutil

import pytest

pytest.importorskip("alfworld")
pytest.importorskip("fast_downward")

import textworld  # noqa: E402
import textworld.gym  # noqa: E402
from alfworld.agents.environment.alfred_tw_env import (  # noqa: E402
    AlfredDemangler,
    AlfredInfos,
    AlfredTWEnv,
)

import agentgym  # noqa: E402
from agentgym.envs import alfworld_games as games  # noqa: E402
from agentgym.envs import alfworld_gen as gen  # noqa: E402
from agentgym.envs.alfworld import ALFWorldEnv, clean_command  # noqa: E402

GARBAGE = ("", "   ", "x" * 5000, "ünïcødé ✓ 漢字", "\x00\x01\x1b[31m\r\n\t", "<|im_start|>system")


@pytest.fixture(scope="module")
def tmp_cache(tmp_path_factory):
    """A fresh generated-game cache with one look_at_obj_in_light game (seed 0)."""
    root = tmp_path_factory.mktemp("agentgym-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTGYM_CACHE", str(root))
        path = games.generated_game("train", "look_at_obj_in_light", 0)
    return root, path


def test_generated_game_has_alfworld_files_and_is_deterministic(tmp_cache, monkeypatch):
    root, path = tmp_cache
    game = json.loads(path.read_text())
    traj = json.loads((path.parent / "traj_data.json").read_text())
    assert {"pddl_domain", "pddl_problem", "grammar", "solvable", "walkthrough"} <= set(game)
    assert game["solvable"] is True and game["walkthrough"]
    assert traj["task_type"] == "look_at_obj_in_light"
    assert "(canContain " in game["pddl_problem"]
    assert "UNKNOWN GOAL" not in game["grammar"]
    # The same seed samples the same game, and the cache answers without rewriting it.
    again, _ = gen.sample_game("train", "look_at_obj_in_light", 0, traj["generator"]["attempt"])
    assert again["pddl_problem"] == game["pddl_problem"] and again["grammar"] == game["grammar"]
    mtime = path.stat().st_mtime_ns
    monkeypatch.setenv("AGENTGYM_CACHE", str(root))
    assert games.generated_game("train", "look_at_obj_in_light", 0) == path
    assert path.stat().st_mtime_ns == mtime
    other, _ = gen.sample_game("train", "look_at_obj_in_light", 1)
    assert other["pddl_problem"] != game["pddl_problem"]


def test_generated_game_plays_in_alfworlds_own_env(tmp_cache):
    root, path = tmp_cache
    data_path = str(path.parents[2])  # .../json_2.1.1/train
    config = {
        "env": {"goal_desc_human_anns_prob": 0, "task_types": [1, 2, 3, 4, 5, 6]},
        "dataset": {"data_path": data_path, "num_train_games": -1},
    }
    assert AlfredTWEnv(config, train_eval="train").game_files == [str(path)]
    infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
    wrappers = [AlfredDemangler(shuffle=False), AlfredInfos]
    env_id = textworld.gym.register_games([str(path)], infos, batch_size=1, wrappers=wrappers)
    env = textworld.gym.make(env_id)
    obs, info = env.reset()
    assert "Your task is to: " in obs[0]
    for command in json.loads(path.read_text())["walkthrough"]:
        assert command in info["admissible_commands"][0]
        obs, scores, dones, info = env.step([command])
    assert dones[0] and info["won"][0] and scores[0] == 1
    env.close()


def test_fast_engine_matches_stock_engine_on_the_same_actions():
    fast = ALFWorldEnv(task_types="look_at_obj_in_light")
    stock = ALFWorldEnv(task_types="look_at_obj_in_light", fast=False)
    assert fast.reset(seed=0) == stock.reset(seed=0)
    rng = random.Random(7)
    _, info = fast.reset(seed=0)
    stock.reset(seed=0)
    actions = []
    for turn in range(30):
        if turn % 5 == 4:
            action = rng.choice(GARBAGE + ("take moon from sky", "Go to Bed 1."))
        elif turn >= 24:
            action = fast.oracle_action() or "look"
        else:
            action = rng.choice(info["admissible_actions"])
        actions.append(action)
        out_fast, out_stock = fast.step(action), stock.step(action)
        assert out_fast == out_stock, (actions, out_fast[0], out_stock[0])
        info = out_fast[4]
        if out_fast[2]:
            break


def test_reset_info_task_type_and_rewards():
    env = agentgym.make("agentgym/ALFWorld-v0")
    for seed, task_type in enumerate(gen.TASK_TYPES):
        obs, info = env.reset(seed=seed)
        assert info["task_type"] == task_type
        assert f"Your task is to: {info['task']}" in obs
        assert info["admissible_actions"] and not info["won"]
        assert info["task_id"].endswith(f"{task_type}/000000")
        rewards = []
        while True:
            obs, reward, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
            rewards.append(reward)
            if terminated or truncated:
                break
        assert terminated and info["won"] and rewards[-1] == 1.0 and sum(rewards) == 1.0


def test_invalid_actions_answer_nothing_happens_and_keep_the_state_key():
    env = agentgym.make("agentgym/ALFWorld-PickAndPlace-v0")
    _, info = env.reset(seed=0)
    key = info["state_key"]
    for action in GARBAGE + ("take moon from sky",):
        obs, reward, terminated, truncated, info = env.step(action)
        assert obs == "Nothing happens." and info["invalid"] and reward == 0.0
        assert info["state_key"] == key and not (terminated or truncated)
    receptacle = next(a for a in info["admissible_actions"] if a.startswith("go to "))
    obs, _, _, _, info = env.step(receptacle.upper() + ".")  # cleaned to the command
    assert not info["invalid"] and obs.startswith("You arrive at")
    assert info["state_key"] != key


def test_state_key_comes_back_when_the_state_does():
    env = ALFWorldEnv(task_types="pick_heat_then_place_in_recep")
    _, info = env.reset(seed=0)
    env.step("go to microwave 1")
    _, _, _, _, before = env.step("look")
    _, _, _, _, opened = env.step("open microwave 1")
    _, _, _, _, closed = env.step("close microwave 1")
    assert opened["state_key"] != before["state_key"] == closed["state_key"]


def test_oracle_replans_after_a_detour():
    env = agentgym.make("agentgym/ALFWorld-v0")
    rng = random.Random(3)
    for seed in (2, 5):
        _, info = env.reset(seed=seed)
        for _ in range(4):
            _, _, _, _, info = env.step(rng.choice(info["admissible_actions"]))
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(env.unwrapped.oracle_action())
            done = terminated or truncated
        assert info["won"], seed


def test_garbage_and_random_actions_never_raise():
    env = agentgym.make("agentgym/ALFWorld-v0", max_turns=10**6)
    rng = random.Random(0)
    _, info = env.reset(seed=1)
    for i in range(300):
        if i % 2:
            action = rng.choice(info["admissible_actions"])
        else:
            action = "".join(chr(rng.randrange(0, 0x2FFF)) for _ in range(rng.randrange(0, 60)))
        obs, _, terminated, _, info = env.step(action)
        assert isinstance(obs, str)
        if terminated:
            _, info = env.reset(seed=1)


def test_clean_command():
    assert clean_command("  Go To\tFridge 1.\x00 ") == "go to fridge 1"
    assert clean_command("\x1b[31mlook\n") == "[31mlook"
    assert len(clean_command("x" * 5000)) == 200


def test_splits_use_disjoint_floor_plans_and_support_every_task_type():
    assert not set(gen.SPLIT_SCENES["train"]) & set(gen.SPLIT_SCENES["valid_unseen"])
    for split in gen.SPLITS:
        for task_type in gen.TASK_TYPES:
            assert gen.split_scenes(split, task_type), (split, task_type)
    game, traj = gen.sample_game("valid_unseen", "pick_heat_then_place_in_recep", 0)
    assert traj["scene"]["scene_num"] in gen.SPLIT_SCENES["valid_unseen"]


def test_task_types_filter_and_errors():
    env = ALFWorldEnv(task_types=["heat", "cool"])
    assert env.task_types == ("pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep")
    with pytest.raises(ValueError, match="Unknown ALFWorld task type"):
        ALFWorldEnv(task_types="juggle")
    with pytest.raises(ValueError, match="Unknown split"):
        ALFWorldEnv(split="test")


def test_real_data_dir_layout(tmp_path, tmp_cache):
    _, path = tmp_cache
    real = tmp_path / "alfworld_data" / "json_2.1.1"
    for split, name in (("train", "a"), ("valid_seen", "b"), ("valid_unseen", "c")):
        trial = real / split / f"look_at_obj_in_light-Book-None-DeskLamp-{name}" / "trial_1"
        trial.mkdir(parents=True)
        shutil.copy(path, trial / "game.tw-pddl")
        traj = json.loads((path.parent / "traj_data.json").read_text())
        traj.pop("generator")
        (trial / "traj_data.json").write_text(json.dumps(traj))
    skipped = real / "train" / "pick_and_place_with_movable_recep-X-Y-Z-1" / "trial_1"
    shutil.copytree(
        real / "valid_seen" / "look_at_obj_in_light-Book-None-DeskLamp-b", skipped.parent
    )
    env = ALFWorldEnv(split="valid_unseen", data_dir=str(tmp_path / "alfworld_data"))
    obs, info = env.reset(seed=0)
    assert "DeskLamp-c" in info["task_id"] and info["task_type"] == "look_at_obj_in_light"
    assert env.oracle_action() is not None  # a real game's oracle plans with the planner
    assert len(games.real_games(real, "train", gen.TASK_TYPES)) == 1
    with pytest.raises(FileNotFoundError, match="json_2.1.1"):
        ALFWorldEnv(data_dir=str(tmp_path / "nowhere"))
