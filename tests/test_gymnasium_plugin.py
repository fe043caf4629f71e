"""gymnasium.make("agentgym/...") works after `import gymnasium` alone (a fresh interpreter)."""

import json
import subprocess
import sys

import pytest

import agentgym

SCRIPT = """
import json, sys
{imports}
env = gymnasium.make("agentgym/Maze-5x5-v0")
obs, info = env.reset(seed=3)
step = env.step(info["admissible_actions"][0])
print(json.dumps([type(env.unwrapped).__module__, obs, step[0], "agentgym.envs" in sys.modules]))
"""


@pytest.mark.parametrize("imports", ["import gymnasium", "import agentgym, gymnasium"])
def test_gymnasium_make_works_after_import_gymnasium_alone(imports):
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(imports=imports)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, (
        f"{out.stderr[-2000:]}\n(agentgym-gymnasium.pth missing? reinstall: make setup)"
    )
    module, obs, after, registered = json.loads(out.stdout)
    env = agentgym.make("agentgym/Maze-5x5-v0")
    ours, info = env.reset(seed=3)
    assert module == "agentgym.envs.toy_maze" and registered
    assert (obs, after) == (ours, env.step(info["admissible_actions"][0])[0])
