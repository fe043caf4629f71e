"""The Ray executor on a local Ray runtime that the test starts (and stops)."""

import dataclasses
import os
from pathlib import Path

import pytest
from pool_envs import FAULTY, life

from agentgym.policy.scripted import OraclePolicy, RandomPolicy
from agentgym.pool import EnvPool
from agentgym.rollout import collect

pytestmark = pytest.mark.slow  # a local Ray runtime: ~20 s to start actors on 2 cores
ray = pytest.importorskip(
    "ray", reason="the ray extra is not installed (pip install 'agentgym[ray]')"
)

TESTS = str(Path(__file__).parent)


@pytest.fixture(scope="module")
def local_ray():
    path = os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")]))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},  # actors import tests/pool_envs.py
    )
    yield
    ray.shutdown()


def test_ray_actors_give_the_in_process_trajectories(local_ray):
    for env_id in ("agentgym/KeyDoor-Small-v0", "agentgym/Maze-4x4-v0"):
        expected = collect(env_id, RandomPolicy(2), tasks=3, group_size=2, seed=3)
        with EnvPool(env_id, workers=2, executor="ray") as pool:
            got = [
                collect(env_id, RandomPolicy(2), tasks=3, group_size=2, seed=3, pool=pool)
                for _ in range(2)  # the second call reuses the actors' instances
            ]
        assert got == [expected, expected]
    oracle = collect(
        "agentgym/KeyDoor-Large-v0",
        OraclePolicy(),
        tasks=2,
        group_size=1,
        workers=2,
        executor="ray",
    )
    assert oracle.won.all()


def test_ray_faults_and_hangs_end_one_episode_each(local_ray, tmp_path):
    log = tmp_path / "life.log"
    clean = collect(FAULTY, RandomPolicy(4), tasks=3, group_size=2)
    kwargs = {"faults": "0:1:raise,2:1:hang", "log": str(log)}
    with EnvPool(FAULTY, env_kwargs=kwargs, workers=2, executor="ray", step_timeout=2.0) as pool:
        batch = collect(FAULTY, RandomPolicy(4), tasks=3, group_size=2, pool=pool)
        assert pool.replaced >= 1
    for got, want in zip(batch.trajectories, clean.trajectories, strict=True):
        if got.seed == 0 and len(want.turns) > 1:
            assert got.fault == "ValueError: injected fault at seed 0 turn 1"
            assert got.turns == want.turns[:1]
        elif got.seed == 2 and len(want.turns) > 1:
            assert got.fault == "TimeoutError: step took longer than step_timeout=2.0s"
            assert got.turns == want.turns[:1]
        else:  # the episodes of the replaced actor were rebuilt by replay
            assert dataclasses.replace(got, env_kwargs={}) == dataclasses.replace(
                want, env_kwargs={}
            )
    built, closed = life(log)
    assert len(built) >= 6 and sorted(closed) == sorted(built)
