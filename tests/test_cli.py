import subprocess
import sys

import pandas as pd
import pytest

from agentgym.cli import main, parse_value
from agentgym.store import Run, to_pandas

ENV = "agentgym/KeyDoor-Small-v0"


@pytest.fixture
def demo(tmp_path, capsys) -> Run:
    """A run made by `agentgym rollout` with the random policy (2 tasks x 3 episodes)."""
    out = tmp_path / "runs" / "demo"
    argv = ["rollout", ENV, "--policy", "random", "--tasks", "2", "--group-size", "3"]
    assert main([*argv, "--seed", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    return Run(out)


def error_of(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("agentgym: error: ")
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1
    return captured.err


def test_envs_lists_toy_envs(capsys):
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert ENV in out and "agentgym/Maze-5x5-v0" in out


def test_rollout_writes_a_run(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["rollout", ENV, "--policy", "oracle", "--tasks", "2", "--group-size", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for word in (
        ENV,
        "trajectories",
        "groups",
        "success rate",
        "100.0%",
        "mean return",
        "mean turns",
    ):
        assert word in printed
    run = Run(out)
    assert run.iterations() == [1]
    assert len(run.read_trajectories(1)) == 4
    cfg = run.read_config()
    assert cfg["command"] == "rollout" and cfg["env"] == ENV and cfg["group_size"] == 2
    (metrics,) = run.read_metrics()
    assert metrics["iteration"] == 1 and metrics["trajectories"] == 4 and metrics["groups"] == 2
    assert metrics["success_rate"] == 1.0


def test_rollout_credit_gigpo_then_pandas(demo, capsys):
    batch = demo.read_batch(1)
    second = batch.trajectories[1]
    argv = ["credit", str(demo.path), "--estimator", "gigpo", "--option", "gamma=0.9"]
    assert main([*argv, "--traj", second.traj_id]) == 0
    out = capsys.readouterr().out
    assert "gigpo" in out and second.traj_id in out
    assert "advantage" in out and "state_key" in out
    df = pd.read_parquet(demo.trajectory_path(1))
    assert len(df) == len(batch) == 6
    flat = to_pandas(demo)
    assert len(flat) == batch.num_turns
    assert flat["adv_gigpo"].notna().all()


def test_rollout_again_replaces_an_earlier_rollout(demo):
    argv = ["rollout", ENV, "--tasks", "1", "--group-size", "1", "--out", str(demo.path)]
    assert main(argv) == 0
    assert len(demo.read_trajectories(1)) == 1
    assert len(demo.read_metrics()) == 1


def test_rollout_refuses_to_clobber_other_data(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["rollout", ENV, "--out", str(tmp_path)]) == 2
    assert "already holds other data" in error_of(capsys)


def test_unknown_env(tmp_path, capsys):
    assert main(["rollout", "agentgym/KeyDoor-Smal-v0", "--out", str(tmp_path / "r")]) == 2
    err = error_of(capsys)
    assert "'agentgym/KeyDoor-Smal-v0'" in err and ENV in err
    assert not (tmp_path / "r").exists()


def test_unknown_estimator(demo, capsys):
    assert main(["credit", str(demo.path), "--estimator", "gigp"]) == 2
    err = error_of(capsys)
    assert "'gigp'" in err and "gigpo" in err


def test_unknown_option(demo, capsys):
    assert main(["credit", str(demo.path), "--estimator", "gigpo", "--option", "gama=0.9"]) == 2
    err = error_of(capsys)
    assert "'gama'" in err and "gamma" in err


def test_missing_run(tmp_path, capsys):
    assert main(["credit", str(tmp_path / "nope"), "--estimator", "grpo"]) == 2
    assert "does not exist" in error_of(capsys)


def test_missing_iteration_and_trajectory(demo, capsys):
    assert main(["credit", str(demo.path), "--estimator", "grpo", "--iter", "7"]) == 2
    assert "available iterations: 1" in error_of(capsys)
    assert main(["credit", str(demo.path), "--estimator", "grpo", "--traj", "zzz"]) == 2
    assert "No trajectory 'zzz'" in error_of(capsys)


def test_usage_errors_return_2(capsys):
    assert main([]) == 2
    assert main(["rollout", ENV]) == 2  # --out is required
    assert "--out" in capsys.readouterr().err
    assert main(["--help"]) == 0


@pytest.mark.parametrize(
    "raw, value",
    [("3", 3), ("-0.5", -0.5), ("1e-3", 1e-3), ("True", True), ("false", False)]
    + [("none", None), ("mean_norm", "mean_norm"), ("'3'", "3")],
)
def test_option_values(raw, value):
    assert parse_value(raw) == value and type(parse_value(raw)) is type(value)


def test_python_dash_m():
    done = subprocess.run(
        [sys.executable, "-m", "agentgym", "credit", "/nonexistent/run", "--estimator", "grpo"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "does not exist" in done.stderr
