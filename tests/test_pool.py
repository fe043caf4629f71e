"""EnvPool behind collect: same trajectories on every executor, reuse, parallel steps."""

import pytest
from pool_envs import FAULTY, life

from agentgym.policy.scripted import OraclePolicy, RandomPolicy
from agentgym.pool import EnvPool, RemoteEnv
from agentgym.rollout import collect

KEYDOOR = "agentgym/KeyDoor-Small-v0"
MAZE = "agentgym/Maze-4x4-v0"


@pytest.mark.parametrize("executor,workers", [("thread", 1), ("thread", 3), ("process", 2)])
def test_executors_give_the_in_process_trajectories(executor, workers):
    for env_id, policy_seed in ((KEYDOOR, 3), (MAZE, 5)):
        expected = collect(env_id, RandomPolicy(policy_seed), tasks=3, group_size=3, seed=7)
        got = collect(
            env_id,
            RandomPolicy(policy_seed),
            tasks=3,
            group_size=3,
            seed=7,
            workers=workers,
            executor=executor,
        )
        assert got == expected
        assert len({len(t.turns) for t in got.trajectories}) > 1  # episodes of unequal length


def test_a_kept_pool_reuses_its_instances_across_calls(tmp_path):
    log = tmp_path / "life.log"
    kwargs = {"log": str(log)}
    fresh = [
        collect(FAULTY, RandomPolicy(1), tasks=2, group_size=2, seed=s, env_kwargs=kwargs)
        for s in (0, 10, 20)
    ]
    built, closed = life(log)
    assert len(built) == 12 and sorted(closed) == sorted(built)  # today: built per episode
    log.unlink()
    with EnvPool(FAULTY, env_kwargs=kwargs, workers=2, executor="process") as pool:
        reused = [
            collect(FAULTY, RandomPolicy(1), tasks=2, group_size=2, seed=s, pool=pool)
            for s in (0, 10, 20)
        ]
        built, closed = life(log)
        assert len(built) == 4 and closed == []  # one instance per slot, kept
        assert len({key.split(":")[0] for key in built}) == 2  # in two worker processes
    assert reused == fresh
    built, closed = life(log)
    assert len(built) == 4 and sorted(closed) == sorted(built)  # shutdown closed them all


def test_workers_are_recycled_after_recycle_after_resets(tmp_path):
    log = tmp_path / "life.log"
    kwargs = {"log": str(log)}
    with EnvPool(FAULTY, env_kwargs=kwargs, workers=2, executor="process", recycle_after=4) as pool:
        # each call resets 2 slots per worker: workers restart before every second call
        got = [
            collect(FAULTY, RandomPolicy(1), tasks=2, group_size=2, seed=s, pool=pool)
            for s in (0, 10, 20, 30, 40)
        ]
        assert pool.recycled == 4
    want = [
        collect(FAULTY, RandomPolicy(1), tasks=2, group_size=2, seed=s, env_kwargs=kwargs)
        for s in (0, 10, 20, 30, 40)
    ]
    assert got == want
    built, closed = life(log)
    assert len({key.split(":")[0] for key in built[:12]}) == 6  # 3 generations of 2 workers
    assert sorted(closed) == sorted(built)


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_the_envs_of_a_turn_step_in_parallel_across_workers(executor):
    # every step waits until 2 steps wait together: only parallel stepping completes a turn
    workers = 1 if executor == "inline" else 2
    batch = collect(
        FAULTY,
        RandomPolicy(0),
        tasks=2,  # two groups: one per worker (a group's members share a worker)
        group_size=1,
        max_turns=3,
        env_kwargs={"barrier": 2},
        workers=workers,
        executor=executor,
    )
    if executor == "inline":
        assert all(t.fault == "BrokenBarrierError: " for t in batch.trajectories)
    else:
        assert [t.fault for t in batch.trajectories] == [None, None]
        assert list(batch.traj_len) == [3, 3]


def test_the_oracle_reaches_envs_in_worker_processes():
    with EnvPool("agentgym/KeyDoor-Large-v0", workers=2, executor="process") as pool:
        batch = collect(
            "agentgym/KeyDoor-Large-v0", OraclePolicy(), tasks=3, group_size=2, pool=pool
        )
        assert isinstance(pool.env(0), RemoteEnv)
    local = collect("agentgym/KeyDoor-Large-v0", OraclePolicy(), tasks=3, group_size=2)
    assert batch.won.all() and batch == local


def test_a_pool_must_match_the_collect_call():
    with EnvPool(KEYDOOR, workers=2, executor="thread") as pool:
        with pytest.raises(ValueError, match="make a pool for this environment"):
            collect(MAZE, RandomPolicy(0), tasks=1, group_size=1, pool=pool)
        with pytest.raises(ValueError, match="max_turns"):
            collect(KEYDOOR, RandomPolicy(0), tasks=1, group_size=1, max_turns=3, pool=pool)
        with pytest.raises(ValueError, match="different workers"):
            collect(KEYDOOR, RandomPolicy(0), tasks=1, group_size=1, workers=3, pool=pool)
    with pytest.raises(RuntimeError, match="closed"):
        pool.reset([0], [0])


def test_pool_arguments_are_checked():
    with pytest.raises(ValueError, match="executor must be one of"):
        EnvPool(KEYDOOR, executor="fork")
    with pytest.raises(ValueError, match="step_timeout needs a worker"):
        EnvPool(KEYDOOR, step_timeout=1.0)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        EnvPool(KEYDOOR, workers=0, executor="thread")
    with pytest.raises(ValueError, match="recycle_after needs worker processes"):
        EnvPool(KEYDOOR, workers=2, executor="thread", recycle_after=10)
    with pytest.raises(KeyError, match="No environment registered"):
        EnvPool("agentgym/Nope-v0")
