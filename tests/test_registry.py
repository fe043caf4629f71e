"""Registration, make, the turn limit and third-party plugins."""

import os
import subprocess
import sys
import textwrap
import uuid

import gymnasium
import pytest

import agentgym
from agentgym import registry
from agentgym.core import EpisodeOverError


@pytest.fixture
def scratch_id():
    """A fresh env id, removed from both registries afterwards."""
    env_id = f"test/Scratch{uuid.uuid4().hex[:8]}-v0"
    yield env_id
    registry._REGISTRY.pop(env_id, None)
    gymnasium.registry.pop(env_id, None)


def test_unknown_id_lists_close_matches():
    with pytest.raises(KeyError, match="Did you mean: agentgym/KeyDoor-Small-v0"):
        agentgym.make("agentgym/KeyDoor-Smal-v0")


def test_malformed_id_is_refused():
    with pytest.raises(ValueError, match="namespace/Name-vN"):
        agentgym.register("KeyDoor", "agentgym.envs.toy:KeyDoorEnv")


def test_conflicting_registration_is_refused(scratch_id):
    agentgym.register(scratch_id, "agentgym.envs.toy:KeyDoorEnv", n_rooms=3)
    agentgym.register(scratch_id, "agentgym.envs.toy:KeyDoorEnv", n_rooms=3)  # same: fine
    with pytest.raises(ValueError, match="new version"):
        agentgym.register(scratch_id, "agentgym.envs.toy:KeyDoorEnv", n_rooms=4)
    assert registry.spec(scratch_id).kwargs == {"n_rooms": 3}


def test_bad_entry_point_names_the_env(scratch_id):
    agentgym.register(scratch_id, "agentgym.envs.toy:NoSuchEnv")
    with pytest.raises(ImportError, match=scratch_id):
        agentgym.make(scratch_id)


def test_make_overrides_kwargs_and_records_them():
    env = agentgym.make("agentgym/KeyDoor-Small-v0", n_rooms=6)
    assert env.unwrapped.n_rooms == 6
    assert env.spec.kwargs == {"n_rooms": 6}


def test_max_turns_truncates_then_step_raises():
    env = agentgym.make("agentgym/KeyDoor-Large-v0", max_turns=3)
    env.reset(seed=0)
    flags = [env.step("look")[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    with pytest.raises(EpisodeOverError):
        env.step("look")
    env.reset(seed=0)  # a reset starts a new episode
    assert env.step("look")[3] is False


def test_step_after_termination_raises():
    env = agentgym.make("agentgym/KeyDoor-Small-v0")
    env.reset(seed=0)
    while True:
        _, reward, terminated, truncated, _ = env.step(env.unwrapped.oracle_action())
        if terminated or truncated:
            break
    assert (reward, terminated, truncated) == (1.0, True, False)
    with pytest.raises(EpisodeOverError):
        env.step("look")


PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "agentgym-thing"
version = "0.1.0"

[project.entry-points."agentgym.envs"]
thing = "agentgym_thing:register_envs"

[tool.setuptools]
py-modules = ["agentgym_thing"]
"""

PLUGIN_MODULE = """
from agentgym import TextEnv, register


class Thing(TextEnv):
    def _reset(self, seed, options):
        return "A thing.", {"task": "poke it", "task_id": "thing", "admissible_actions": ["poke"]}

    def _step(self, action):
        won = action.strip().lower() == "poke"
        obs = "It squeaks." if won else "Try poke."
        return obs, float(won), won, False, {"won": won, "invalid": not won}


def register_envs():
    register("plugin/Thing-v0", "agentgym_thing:Thing", max_turns=4, description="A thing.")
"""

PLUGIN_CHECK = """
import gymnasium, agentgym
env = agentgym.make("plugin/Thing-v0")
agentgym.check_env(env)
env.reset(seed=0)
assert env.step("poke")[1:3] == (1.0, True)
genv = gymnasium.make("plugin/Thing-v0")
genv.reset(seed=0)
assert genv.step("poke")[1] == 1.0
assert "plugin/Thing-v0" in [s.id for s in agentgym.list_envs()]
print("plugin ok")
"""


def test_plugin_package_registers_through_entry_point(tmp_path):
    pkg, site = tmp_path / "pkg", tmp_path / "site"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (pkg / "agentgym_thing.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--target", str(site), str(pkg)], check=True, env=env, timeout=120)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-c", PLUGIN_CHECK],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "plugin ok" in out.stdout
