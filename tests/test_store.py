import json
import os
import stat
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from agentgym import schema, store
from agentgym.data import Batch, Trajectory, Turn
from agentgym.store import MissingIterationError, NotARunError, Run, atomic_write, to_pandas


def turn(i: int, **kw) -> Turn:
    fields = dict(
        observation=f"obs {i}",
        output=f"out {i}",
        action=f"act {i}",
        reward=0.0,
        terminated=False,
        truncated=False,
        state_key=f"s{i}",
    )
    return Turn(**{**fields, **kw})


def trajectories() -> list[Trajectory]:
    """Unicode text, empty and long token data, advantages, JSON fields, an empty trajectory."""
    long_ids = tuple(range(0, 150_000, 7))
    rich = (
        turn(
            0,
            observation="Ты в комнате 🗝️ — a key.\nLine two\ttab",
            output="<think>漢字</think> take key",
            action="take key",
            reward=0.5,
            state_key="room:0|🗝️",
            info={"won": False, "admissible_actions": ["take key", "go north"], "n": np.int64(3)},
            prompt_ids=(1, 2, 3),
            response_ids=(4, 5),
            response_logprobs=(-0.25, -1.5),
            advantages={"grpo": 0.75, "gigpo": -1.25},
        ),
        turn(
            1,
            reward=1.0,
            terminated=True,
            invalid=True,
            prompt_ids=long_ids,
            response_ids=long_ids[:1000],
            response_logprobs=tuple(-float(k) / 8 for k in range(1000)),
            advantages={"grpo": 0.75},
        ),
    )
    return [
        Trajectory(
            "agentgym/Toy-v0",
            "task-é",
            7,
            "g0",
            rich,
            won=True,
            task="Find the key → open the door",
            traj_id="t0",
            env_kwargs={"size": 3, "name": "ß"},
            metadata={"policy": "random", "tags": ["a", "b"]},
        ),
        Trajectory("agentgym/Toy-v0", "task-é", 7, "g0", (turn(0),), won=False, traj_id="t1"),
        Trajectory("agentgym/Toy-v0", "task-2", 8, "g1", (), won=False, traj_id="t2"),
    ]


def expected(traj: Trajectory) -> Trajectory:
    """What a round trip gives back: JSON fields in their JSON form."""
    turns = tuple(replace(t, info=json.loads(schema.dumps(t.info))) for t in traj.turns)
    return replace(traj, turns=turns)


@pytest.fixture
def run(tmp_path) -> Run:
    return Run.create(tmp_path / "runs" / "demo")


def test_round_trip_keeps_every_field(run):
    trajs = trajectories()
    path = run.write_trajectories(trajs, iteration=1)
    assert path == run.trajectories_dir / "iter-00001.parquet"
    back = run.read_trajectories(1)
    assert back == [expected(t) for t in trajs]
    assert back[0].turns[0].info["n"] == 3
    assert back[0].turns[0].info["admissible_actions"] == ["take key", "go north"]
    assert len(back[0].turns[1].prompt_ids) == len(trajs[0].turns[1].prompt_ids)
    assert back[2].turns == ()
    assert back[1].turns[0].response_ids == () and back[1].turns[0].advantages == {}


def test_file_has_schema_version_and_one_row_per_trajectory(run):
    path = run.write_trajectories(Batch(trajectories()), 3)
    assert pq.read_schema(path).metadata[schema.VERSION_KEY] == str(schema.SCHEMA_VERSION).encode()
    df = pd.read_parquet(path)
    assert len(df) == 3
    assert list(df["traj_id"]) == ["t0", "t1", "t2"]
    assert df["return"].tolist() == [1.5, 0.0, 0.0]
    first = df["turns"].iloc[0][0]
    assert first["observation"].startswith("Ты в комнате 🗝️")
    assert [dict(a) for a in first["advantages"]] == [
        {"name": "grpo", "value": 0.75},
        {"name": "gigpo", "value": -1.25},
    ]
    assert json.loads(df["env_kwargs"].iloc[0]) == {"size": 3, "name": "ß"}


def test_iterations_and_read_all_in_order(run):
    a, b, c = trajectories()
    run.write_trajectories([c], 10)
    run.write_trajectories([a, b], 2)
    assert run.iterations() == [2, 10]
    assert [t.traj_id for t in run.read_trajectories()] == ["t0", "t1", "t2"]
    assert run.read_batch(2).num_turns == 3


def test_update_adds_advantages(run):
    run.write_trajectories(trajectories(), 1)
    batch = run.read_batch(1)
    values = np.arange(batch.num_turns, dtype=np.float32) / 4
    run.update_trajectories(1, batch.with_advantages("rloo", values))
    np.testing.assert_array_equal(run.read_batch(1).advantages("rloo"), values)
    np.testing.assert_array_equal(run.read_batch(1).advantages("grpo"), [0.75, 0.75, np.nan])


def test_update_refuses_other_trajectories(run):
    run.write_trajectories(trajectories(), 1)
    with pytest.raises(ValueError, match="same trajectories in the same order"):
        run.update_trajectories(1, trajectories()[:2])


def test_missing_iteration_lists_available(run):
    run.write_trajectories(trajectories(), 1)
    run.write_trajectories(trajectories(), 4)
    with pytest.raises(MissingIterationError, match="iteration 2; available iterations: 1, 4"):
        run.read_trajectories(2)
    with pytest.raises(MissingIterationError, match="available iterations: 1, 4"):
        run.update_trajectories(3, trajectories())


def test_not_a_run_says_how_to_create_one(tmp_path):
    with pytest.raises(NotARunError, match="does not exist.*agentgym rollout"):
        Run(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotARunError, match="is not a run directory.*Run.create"):
        Run(tmp_path / "plain")


def test_reopen_and_layout(run):
    assert run.checkpoints_dir.is_dir() and run.trajectories_dir.is_dir()
    assert Run(run.path).path == run.path


def test_config_round_trip(run):
    cfg = {"env": "agentgym/Toy-v0", "lr": 1e-5, "nested": {"gamma": 0.95}, "tag": "ünï"}
    run.write_config(cfg)
    assert run.read_config() == cfg
    assert "ünï" in run.config_path.read_text(encoding="utf-8")


def test_metrics_append_with_iteration(run):
    run.log_metrics({"loss": np.float32(0.5)}, iteration=1)
    run.write_trajectories(trajectories(), 2)
    run.log_metrics({"loss": 0.25})  # defaults to the last stored iteration
    recs = run.read_metrics()
    assert [(r["iteration"], r["loss"]) for r in recs] == [(1, 0.5), (2, 0.25)]
    assert all("time" in r for r in recs)


def test_metrics_skip_half_written_last_line(run):
    run.log_metrics({"a": 1}, iteration=1)
    with open(run.metrics_path, "a") as f:
        f.write('{"a": 2, "itera')
    assert [r["a"] for r in run.read_metrics()] == [1]


def test_failed_write_leaves_no_partial_file(run, monkeypatch):
    def broken_write_table(table, where, **kw):
        where.write(b"PAR1 half a file")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store.pq, "write_table", broken_write_table)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run.write_trajectories(trajectories(), 1)
    assert os.listdir(run.trajectories_dir) == []
    assert run.iterations() == []


def test_failed_update_keeps_the_old_file(run, monkeypatch):
    run.write_trajectories(trajectories(), 1)
    before = run.trajectory_path(1).read_bytes()
    batch = run.read_batch(1)

    def broken_write_table(table, where, **kw):
        where.write(b"garbage")
        raise KeyboardInterrupt

    monkeypatch.setattr(store.pq, "write_table", broken_write_table)
    with pytest.raises(KeyboardInterrupt):
        run.update_trajectories(1, batch.with_advantages("x", np.zeros(batch.num_turns)))
    assert run.trajectory_path(1).read_bytes() == before
    assert os.listdir(run.trajectories_dir) == ["iter-00001.parquet"]


def test_failed_config_write_keeps_the_old_config(run, monkeypatch):
    run.write_config({"a": 1})

    def boom(*a, **kw):
        raise OSError("no space left")

    monkeypatch.setattr(store.os, "fsync", boom)
    with pytest.raises(OSError, match="no space"):
        run.write_config({"a": 2})
    assert run.read_config() == {"a": 1}
    assert sorted(os.listdir(run.path)) == ["checkpoints", "config.yaml", "trajectories"]


def test_file_without_schema_version_is_refused(run):
    path = run.write_trajectories(trajectories(), 1)
    table = pq.read_table(path).replace_schema_metadata({})
    pq.write_table(table, path)
    with pytest.raises(ValueError, match="not written by agentgym.store"):
        run.read_trajectories(1)


def test_to_pandas_flat_view_one_row_per_turn(run):
    trajs = trajectories()
    run.write_trajectories(trajs, 1)
    run.write_trajectories(trajs[1:2], 2)
    df = to_pandas(run)
    assert len(df) == 3 + 1
    assert list(df.columns[:8]) == [
        "run",
        "iteration",
        "traj_id",
        "group_id",
        "env_id",
        "task_id",
        "seed",
        "turn",
    ]
    assert {"action", "reward", "return", "won", "state_key"} <= set(df.columns)
    assert df["run"].unique().tolist() == ["demo"]
    assert df["iteration"].tolist() == [1, 1, 1, 2]
    assert df["turn"].tolist() == [0, 1, 0, 0]
    assert df["return"].tolist() == [1.5, 1.5, 0.0, 0.0]
    assert df["adv_grpo"].iloc[:2].tolist() == [0.75, 0.75]
    assert df["adv_gigpo"].iloc[1:].isna().all()
    assert len(to_pandas(run.path, iteration=2)) == 1


def test_to_pandas_of_trajectories_and_empty():
    df = to_pandas(Batch(trajectories()))
    assert len(df) == 3 and df["iteration"].isna().all()
    assert df.loc[0, "state_key"] == "room:0|🗝️"
    empty = to_pandas([])
    assert len(empty) == 0 and "adv_grpo" not in empty.columns


def test_truncate_after_drops_later_iterations_and_metrics(tmp_path):
    run = Run.create(tmp_path / "r")
    for it in (1, 2, 3):
        run.write_trajectories([_traj_for_truncate(it)], it)
        run.log_metrics({"x": it}, iteration=it)
    run.truncate_after(1)
    assert run.iterations() == [1]
    assert [r["iteration"] for r in run.read_metrics()] == [1]
    run.truncate_after(0)
    assert run.iterations() == [] and run.read_metrics() == []


def _traj_for_truncate(it):
    from agentgym.data import Trajectory, Turn

    turn = Turn("o", "a", "a", 1.0, True, False, "s")
    return Trajectory("t/T-v0", "x", it, "g", (turn,), True, traj_id=f"t{it}")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = atomic_write(tmp_path / "f.txt", lambda f: f.write(b"x"))
        with open(tmp_path / "plain.txt", "w") as f:  # what open() makes under this umask
            f.write("x")
    finally:
        os.umask(old)
    expected = stat.S_IMODE(os.stat(tmp_path / "plain.txt").st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == expected == 0o666 & ~umask
