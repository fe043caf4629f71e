"""Errors before work starts, and nothing lost: each failure is one line with the fix, and
leaves no folder behind; plus the small things a user notices (ids, --version, envs ID)."""

import ast
import importlib.metadata
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from pool_envs import FAULTY

import agentgym
from agentgym import credit
from agentgym.cli import main
from agentgym.config import load
from agentgym.registry import list_envs, spec
from agentgym.store import Run

ENV = "agentgym/KeyDoor-Small-v0"
MAZE = "agentgym/Maze-4x4-v0"  # the random policy wins about half its episodes
CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml")


def load_config(path: str, overrides: list[str]):
    from agentgym.trainers.config import TrainConfig

    return load(TrainConfig, path, overrides)


def error_of(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err.startswith("agentgym: error: ")
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1
    return captured.err


# -- train: checked before the run folder or the model ---------------------------------------


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("env.kwargs.n_rooms=two", ["env.kwargs", "n_rooms='two'"]),
        ("env.kwargs.rooms=2", ["takes no argument 'rooms'", "n_rooms"]),
        ("credit.estimator=gipgo", ["gipgo", "Did you mean 'gigpo'"]),
        ("credit.options.gama=0.9", ["gama", "gamma"]),
        ("trainer.eval_seed=0", ["overlap", "trainer.eval_seed=24"]),
    ],
)
def test_train_refuses_before_creating_the_run(tmp_path, capsys, override, words):
    argv = ["train", CONFIG, f"out_dir={tmp_path}", "name=r", "policy.model=tiny", override]
    assert main(argv) == 2
    err = error_of(capsys)
    for word in words:
        assert word in err
    assert not (tmp_path / "r").exists()
    assert capsys.readouterr().out == ""  # no evaluation printed before the error


def test_train_a_missing_config_names_the_recipes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(CONFIG).parents[1])
    assert main(["train", "configs/quickstrat.yaml"]) == 2
    err = error_of(capsys)
    assert "Did you mean configs/quickstart.yaml?" in err
    assert err.count("configs/quickstrat.yaml") == 1  # not suggested again


def test_train_that_fails_after_creating_the_run_leaves_no_folder(tmp_path, capsys):
    missing = tmp_path / "no-model"
    missing.mkdir()
    argv = ["train", CONFIG, f"out_dir={tmp_path}", "name=r", f"policy.model={missing}"]
    assert main(argv) == 2
    error_of(capsys)
    assert not (tmp_path / "r").exists()


# -- eval -------------------------------------------------------------------------------------


def test_eval_refuses_a_taken_out_before_loading_anything(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    # a policy that does not exist: the --out error comes first, so nothing was loaded
    argv = ["eval", "--env", ENV, "--policy", str(tmp_path / "nope"), "--out", str(out)]
    assert main(argv) == 2
    assert "--out" in error_of(capsys) and (out / "notes.txt").read_text() == "mine"
    argv = ["eval", "--env", ENV, "--policy", "oracle", "--episodes", "2", "--out", str(out)]
    assert main(argv) == 2
    error_of(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_eval_out_holding_an_eval_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "e"
    argv = ["eval", "--env", ENV, "--policy", "oracle", "--episodes", "2", "--out", str(out)]
    assert main(argv) == 0
    assert main(argv) == 2
    assert "--overwrite" in error_of(capsys)
    assert main([*argv, "--overwrite"]) == 0


def test_default_eval_out_is_never_overwritten(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for episodes in ("2", "3"):
        argv = ["eval", "--env", ENV, "--policy", "oracle", "--episodes", episodes]
        assert main(argv) == 0
    first = json.loads((tmp_path / "runs" / "eval-oracle" / "eval.json").read_text())
    second = json.loads((tmp_path / "runs" / "eval-oracle-2" / "eval.json").read_text())
    assert first["results"][0]["episodes"] == 2 and second["results"][0]["episodes"] == 3
    assert "runs/eval-oracle-2" in capsys.readouterr().out


def test_eval_where_every_episode_faulted_is_an_error(tmp_path, capsys):
    env = f"{FAULTY}:faults=5:0:raise,6:0:raise"  # the first step of seeds 5 and 6 raises
    argv = ["eval", "--env", env, "--policy", "oracle", "--episodes", "2", "--seed", "5"]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 2
    err = error_of(capsys)
    assert "Every one of the 2 episodes" in err and "injected fault" in err
    assert "0.0%" not in err
    # one faulted episode of two is data, not an error
    one = f"{FAULTY}:faults=5:0:raise"
    argv = ["eval", "--env", one, "--policy", "oracle", "--episodes", "2", "--seed", "5"]
    assert main([*argv, "--out", str(tmp_path / "f")]) == 0
    result = json.loads((tmp_path / "f" / "eval.json").read_text())["results"][0]
    assert result["faults"] == 1 and result["success_rate"] == 0.5


# -- small things -----------------------------------------------------------------------------


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"agentgym {importlib.metadata.version('agentgym')}"


def test_envs_id_shows_kwargs_and_defaults(capsys):
    s = spec("agentgym/TextWorld-CoinCollector-v0")
    assert main(["envs", s.id]) == 0
    out = capsys.readouterr().out
    params = inspect.signature(s.load()).parameters
    for name, p in params.items():
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            default = s.kwargs.get(name, p.default)
            assert name in out and (p.default is p.empty or repr(default) in out), name
    assert s.description in " ".join(out.split())
    assert main(["envs", "agentgym/Nope-v0"]) == 2
    assert "No environment registered" in error_of(capsys)


def test_envs_table_is_not_cut_at_80_columns(capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["envs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for s in list_envs():  # every description whole, on one line
        assert any(s.description in line for line in lines), s.id


def test_credit_shows_a_trajectory_whose_estimators_disagree(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["rollout", MAZE, "--policy", "random", "--tasks", "3", "--group-size", "4"]
    assert main([*argv, "--seed", "2", "--out", str(out)]) == 0
    assert main(["credit", str(out), "--estimator", "grpo"]) == 0
    capsys.readouterr()
    assert main(["credit", str(out), "--estimator", "gigpo"]) == 0
    printed = capsys.readouterr().out
    batch = Run(out).read_batch(1)
    # the plain loop: per trajectory, the summed per-turn gap between the two estimators
    gaps = [
        sum(abs(u.advantages["gigpo"] - u.advantages["grpo"]) for u in t.turns)
        for t in batch.trajectories
    ]
    best = batch.trajectories[int(np.argmax(gaps))]
    assert max(gaps) > 0 and f"trajectory {best.traj_id} " in printed
    assert "grpo" in printed  # the other stored estimator is shown beside it


def test_credit_by_default_never_shows_all_zero_advantages(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["rollout", MAZE, "--policy", "random", "--tasks", "3", "--group-size", "4"]
    assert main([*argv, "--seed", "2", "--out", str(out)]) == 0
    assert main(["credit", str(out), "--estimator", "rloo"]) == 0
    printed = capsys.readouterr().out
    batch = Run(out).read_batch(1)
    values = credit.compute("rloo", batch, {})
    assert np.any(values != 0)
    shown = next(t for t in batch.trajectories if f"trajectory {t.traj_id} " in printed)
    assert any(u.advantages["rloo"] != 0 for u in shown.turns)


def test_long_state_keys_are_cut(capsys):
    from agentgym.report.terminal import short_text

    long_a = "facts: " + ", ".join(f"at(coin, room{i})" for i in range(50))
    long_b = long_a[:-1] + "X"
    assert len(short_text(long_a)) <= 60 and short_text(long_a) != short_text(long_b)
    assert short_text("kitchen") == "kitchen"


def test_check_env_says_it_passed(capsys):
    env = agentgym.make(ENV)
    report = agentgym.check_env(env)
    assert "passed" in report and ENV in report
    assert capsys.readouterr().out.strip() == str(report)


def test_cli_tools_does_not_import_cli():
    source = Path(inspect.getfile(__import__("agentgym.cli_tools").cli_tools)).read_text()
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "agentgym.cli" not in imported


def test_eval_config_points_a_run_at_a_variant():
    from agentgym.evaluate import eval_config
    from agentgym.trainers.config import TrainConfig

    cfg = load_config(CONFIG, ["trainer.eval_env_kwargs={n_rooms: 3}"])
    same = eval_config(cfg, ENV, {"n_rooms": 4}, seed=None)
    assert same.env.kwargs == {**cfg.env.kwargs, "n_rooms": 4}
    assert same.env.max_turns == cfg.env.max_turns
    # the run's own evaluation env does not override the one asked for
    assert same.trainer.eval_env_kwargs == {} and same.trainer.eval_env_id == ""
    other = eval_config(TrainConfig(), MAZE, None, seed=7)
    assert other.env.id == MAZE and other.env.kwargs == {} and other.trainer.eval_seed == 7


@pytest.mark.slow
def test_training_log_lines_do_not_wrap_in_a_file(tmp_path, capsys):
    tiny = ["policy.model=tiny", "env.max_turns=2", "env.tasks_per_iter=1", "env.group_size=2"]
    tiny += ["trainer.iterations=1", "trainer.eval_episodes=2", "trainer.eval_every=0"]
    assert main(["train", CONFIG, f"out_dir={tmp_path}", "name=r", *tiny]) == 0
    lines = capsys.readouterr().out.splitlines()
    record = next(r for r in Run(tmp_path / "r").read_metrics() if r.get("phase") == "train")
    (line,) = [x for x in lines if x.startswith("iter 1/1")]
    assert len(line) > 80 and "tok/s" in line  # the whole record on one line
    assert f"loss {record['loss']:+.4f}" in line


@pytest.mark.slow
def test_training_stopped_by_faults_is_one_line(tmp_path, capsys):
    tiny = ["policy.model=tiny", "env.max_turns=2", "env.tasks_per_iter=1", "env.group_size=2"]
    tiny += ["trainer.iterations=1", "trainer.eval_episodes=1", "trainer.eval_at_start=false"]
    faulty = [f"env.id={FAULTY}", "env.kwargs={faults: '0:0:raise'}"]  # seed 0's first step
    assert main(["train", CONFIG, f"out_dir={tmp_path}", "name=r", *tiny, *faulty]) == 2
    err = error_of(capsys)
    assert "2 of 2 episodes of iteration 1 faulted" in err and "injected fault" in err
    assert not (tmp_path / "r").exists()  # nothing was stored: no folder blocks a retry
