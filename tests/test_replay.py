"""Replay: stored runs reproduce exactly, and edited files are caught at the edited turn."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agentgym.cli import main
from agentgym.policy.scripted import OraclePolicy, RandomPolicy
from agentgym.registry import list_envs
from agentgym.replay import replay_run, replay_trajectory
from agentgym.rollout import collect
from agentgym.store import Run

ENV = "agentgym/KeyDoor-Small-v0"


@pytest.fixture
def rollout_run(tmp_path, capsys) -> Run:
    """A run written by `agentgym rollout` (random policy, 2 tasks x 3 episodes)."""
    out = tmp_path / "run"
    argv = ["rollout", ENV, "--policy", "random", "--tasks", "2", "--group-size", "3"]
    assert main([*argv, "--seed", "4", "--out", str(out)]) == 0
    capsys.readouterr()
    return Run(out)


def edit_turn(run: Run, traj_index: int, turn: int, **changes) -> str:
    """Rewrite iteration 1's Parquet file with one turn's fields changed; return the traj id."""
    path = run.trajectory_path(1)
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[traj_index]["turns"][turn].update(changes)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    return rows[traj_index]["traj_id"]


def test_a_rollout_replays_identically(rollout_run, capsys):
    assert main(["replay", str(rollout_run.path)]) == 0
    out = capsys.readouterr().out
    assert "6/6 trajectories replayed identically" in out
    assert out.count("identical") >= 6


def test_an_edited_observation_is_caught_at_its_turn(rollout_run, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping inside the verdict table
    traj = rollout_run.read_trajectories(1)[1]
    assert len(traj.turns) > 3
    original = traj.turns[2].observation
    traj_id = edit_turn(rollout_run, 1, 2, observation="You are on the moon.")
    (result,) = replay_run(rollout_run, traj_id=traj_id)
    d = result.divergence
    assert (d.turn, d.field) == (2, "observation")
    assert (d.stored, d.replayed) == ("You are on the moon.", original)

    assert main(["replay", str(rollout_run.path), "--all"]) == 1
    out = capsys.readouterr().out
    assert "diverged at turn 2: observation" in out
    assert "You are on the moon." in out and original.split(".")[0] in out
    assert "5/6 trajectories replayed identically" in out


def test_an_edited_reward_is_caught_at_its_turn(rollout_run):
    traj_id = edit_turn(rollout_run, 0, 3, reward=0.5)
    (result,) = replay_run(rollout_run, traj_id=traj_id)
    assert (result.divergence.turn, result.divergence.field) == (3, "reward")
    assert (result.divergence.stored, result.divergence.replayed) == (0.5, 0.0)


def test_an_edited_action_is_caught_where_it_acts(rollout_run):
    traj = rollout_run.read_trajectories(1)[2]
    traj_id = edit_turn(rollout_run, 2, 1, action="dance wildly")
    (result,) = replay_run(rollout_run, traj_id=traj_id)
    d = result.divergence
    # the env answers "dance wildly" as an invalid action, the stored step was not invalid
    assert d.turn == 1 and d.action == "dance wildly"
    assert d.field.startswith("info.") or d.field == "observation"
    assert not traj.turns[1].info["invalid"]


def test_a_flipped_termination_is_caught(rollout_run):
    traj_id = edit_turn(rollout_run, 0, 0, terminated=True)
    (result,) = replay_run(rollout_run, traj_id=traj_id)
    assert (result.divergence.turn, result.divergence.field) == (0, "terminated")


def test_an_edited_outcome_is_caught(rollout_run):
    path = rollout_run.trajectory_path(1)
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[3]["won"] = not rows[3]["won"]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    results = replay_run(rollout_run)
    assert [r.ok for r in results] == [True, True, True, False, True, True]
    d = results[3].divergence
    assert (d.turn, d.field) == (rows[3]["num_turns"] - 1, "won")


def test_an_unknown_env_is_an_error_verdict(rollout_run, capsys):
    path = rollout_run.trajectory_path(1)
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[0]["env_id"] = "agentgym/Nowhere-v0"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    results = replay_run(rollout_run)
    assert not results[0].ok and "Nowhere-v0" in results[0].error
    assert all(r.ok for r in results[1:])
    assert main(["replay", str(rollout_run.path), "--traj", rows[0]["traj_id"]]) == 1
    assert "error" in capsys.readouterr().out


def test_replay_options_select_and_fail_clearly(rollout_run, capsys):
    one = rollout_run.read_trajectories(1)[4].traj_id
    assert main(["replay", str(rollout_run.path), "--iter", "1", "--traj", one]) == 0
    assert "1/1 trajectories replayed identically" in capsys.readouterr().out
    assert main(["replay", str(rollout_run.path), "--traj", "nope"]) == 2
    assert "No trajectory 'nope'" in capsys.readouterr().err
    assert main(["replay", str(rollout_run.path), "--iter", "7"]) == 2
    assert "available iterations: 1" in capsys.readouterr().err


def _policies(env_id: str):
    yield "random", RandomPolicy(seed=0)
    yield "oracle", OraclePolicy()


def one_env_per_family() -> list[str]:
    """The first registered id of each entry point (toy, maze, search, code, ALFWorld, ...)."""
    families: dict[str, str] = {}
    for spec in list_envs():
        families.setdefault(str(spec.entry_point), spec.id)
    return list(families.values())


@pytest.mark.parametrize("env_id", one_env_per_family())
def test_every_env_family_replays(env_id, tmp_path):
    """Each env family, with the random and (where the env has one) the oracle policy."""
    played = 0
    for name, policy in _policies(env_id):
        try:
            batch = collect(env_id, policy, tasks=1, group_size=2, seed=11, max_turns=6)
        except TypeError as exc:
            if "oracle" in str(exc):
                continue  # this env has no oracle; the random policy covered it
            raise
        except (ImportError, FileNotFoundError) as exc:
            pytest.skip(f"{env_id} cannot be built here: {exc}")
        run = Run.create(tmp_path / name)
        run.write_trajectories(batch, iteration=1)
        results = replay_run(run)
        assert [r.verdict for r in results] == ["identical"] * 2, (env_id, name)
        played += 1
    assert played >= 1


def test_replay_compares_with_the_stored_turn_limit():
    batch = collect(ENV, RandomPolicy(seed=2), tasks=1, group_size=1, seed=0, max_turns=3)
    (traj,) = batch.trajectories
    assert len(traj.turns) == 3 and traj.turns[-1].truncated
    assert replay_trajectory(traj).ok


@pytest.mark.slow
def test_a_training_run_replays_identically(tmp_path, capsys):
    pytest.importorskip("transformers")
    argv = [
        "train",
        str(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"),
        f"out_dir={tmp_path}",
        "name=tiny",
        "policy.model=tiny",
        "policy.max_new_tokens=4",
        "env.max_turns=3",
        "env.tasks_per_iter=2",
        "env.group_size=2",
        "trainer.iterations=2",
        "trainer.eval_episodes=1",
    ]
    assert main(argv) == 0
    capsys.readouterr()
    run = Run(tmp_path / "tiny")
    assert run.iterations() == [1, 2]
    assert main(["replay", str(run.path)]) == 0
    assert "8/8 trajectories replayed identically" in capsys.readouterr().out
