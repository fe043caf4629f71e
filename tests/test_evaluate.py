"""Evaluation: statistics, per-type scores, policies from specs, outputs, and checkpoints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from agentgym.cli import main
from agentgym.data import Batch, Trajectory, Turn
from agentgym.evaluate import load_policy, pass_at_k, summarize, task_type, wilson_interval
from agentgym.policy.scripted import OraclePolicy, RandomPolicy
from agentgym.report.eval_results import to_markdown, write_results
from agentgym.store import Run

TOY = ["agentgym/KeyDoor-Small-v0", "agentgym/Maze-4x4-v0"]


def test_wilson_interval_by_hand():
    # 0 of 10: upper bound z^2 / (n + z^2) = 3.8415 / 13.8415
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and math.isclose(hi, 0.27753, abs_tol=1e-5)
    lo, hi = wilson_interval(5, 10)
    assert math.isclose(lo, 0.23659, abs_tol=1e-5) and math.isclose(hi, 0.76341, abs_tol=1e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 1, 1) == 0.25
    assert math.isclose(pass_at_k(4, 1, 2), 1 - (3 / 4) * (2 / 3))  # = 0.5
    assert pass_at_k(4, 3, 2) == 1.0 and pass_at_k(4, 0, 4) == 0.0


def typed(name: str, group: str, won: bool, kind: str | None, where: str) -> Trajectory:
    info = {"task_type": kind} if kind and where == "info" else {}
    turn = Turn("o", "a", "a", float(won), True, False, "s", info=info)
    meta = {"reset_info": {"task_type": kind}} if kind and where == "reset" else {}
    return Trajectory("t/E-v0", group, 0, group, (turn,), won, traj_id=name, metadata=meta)


def test_summarize_scores_per_task_type_and_pass_at_k():
    batch = Batch(
        [
            typed("a0", "g1", True, "pick_and_place", "reset"),
            typed("a1", "g1", False, "pick_and_place", "reset"),
            typed("b0", "g2", False, "look_at_obj", "info"),
            typed("b1", "g2", False, "look_at_obj", "info"),
        ]
    )
    result = summarize("t/E-v0", batch)
    assert result.overall.successes == 1 and result.overall.episodes == 4
    assert list(result.by_type) == ["look_at_obj", "pick_and_place"]
    assert result.by_type["pick_and_place"].success_rate == 0.5
    assert result.by_type["look_at_obj"].success_rate == 0.0
    assert result.pass_at == {1: 0.25, 2: 0.5}  # g1: 1 of 2, g2: 0 of 2
    assert task_type(batch.trajectories[0]) == "pick_and_place"
    md = to_markdown([result], policy="p", settings={"episodes": 2})
    assert "| t/E-v0 | all | 4 | 25.0% |" in md
    assert "|  | pick_and_place |" not in md and "| t/E-v0 | pick_and_place | 2 | 50.0% |" in md


def test_load_policy_specs(tmp_path):
    assert isinstance(load_policy("random", seed=3).policy, RandomPolicy)
    assert load_policy("random", seed=3).policy.seed == 3
    assert isinstance(load_policy("oracle").policy, OraclePolicy)
    with pytest.raises(ValueError, match="is not 'random', 'oracle'"):
        load_policy(str(tmp_path / "nothing-here"))
    Run.create(tmp_path / "empty-run", config={"name": "x"})
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_policy(str(tmp_path / "empty-run"))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_eval_random_and_oracle_on_toy_envs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    rates = {}
    for policy in ("random", "oracle"):
        out = tmp_path / policy
        argv = ["eval", *(f"--env={e}" for e in TOY), "--policy", policy, "--episodes", "12"]
        assert main([*argv, "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert all(env in printed for env in TOY) and "95% CI" in printed
        doc = read_json(out / "eval.json")
        assert doc["policy"] == policy and [r["env_id"] for r in doc["results"]] == TOY
        rates[policy] = [r["success_rate"] for r in doc["results"]]
        for r in doc["results"]:
            assert r["episodes"] == 12 and r["ci_low"] <= r["success_rate"] <= r["ci_high"]
        md = (out / "eval.md").read_text(encoding="utf-8")
        assert md.startswith(f"# Evaluation of {policy}") and TOY[1] in md
        # the played episodes are a run: they replay identically
        assert main(["replay", str(out)]) == 0
        capsys.readouterr()
    assert rates["oracle"] == [1.0, 1.0]
    assert all(r <= 0.5 for r in rates["random"])


def test_eval_is_reproducible_from_its_seed(tmp_path, capsys):
    def run(name: str, seed: int) -> tuple[list, list]:
        out = tmp_path / name
        argv = ["eval", "--env", TOY[0], "--policy", "random", "--episodes", "6"]
        assert main([*argv, "--samples", "3", "--seed", str(seed), "--out", str(out)]) == 0
        capsys.readouterr()
        trajs = Run(out).read_trajectories(1)
        return read_json(out / "eval.json")["results"], [[t.action for t in x.turns] for x in trajs]

    a, b, c = run("a", 5), run("b", 5), run("c", 6)
    assert a == b and a[0][0]["pass_at_k"].keys() == {"1", "2", "3"}
    assert a[1] != c[1]


def test_eval_refuses_foreign_output_and_bad_arguments(tmp_path, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    argv = ["eval", "--env", TOY[0], "--policy", "random", "--episodes", "1"]
    assert main([*argv, "--out", str(tmp_path / "busy")]) == 2
    assert "already holds other data" in capsys.readouterr().err
    assert main(["eval", "--env", "agentgym/Nope-v0", "--policy", "random"]) == 2
    assert "No environment registered" in capsys.readouterr().err
    assert main([*argv[:-2], "--episodes", "0"]) == 2
    assert main([*argv[:-4], "--policy", "gpt-9", "--out", str(tmp_path / "x")]) == 2
    assert "is not 'random', 'oracle'" in capsys.readouterr().err


def test_write_results_replaces_an_earlier_eval(tmp_path):
    batch = Batch([typed("a0", "g1", True, None, "")])
    result = summarize("t/E-v0", batch)
    write_results(tmp_path / "e", [result], policy="p", settings={"n": 1})
    write_results(tmp_path / "e", [result], policy="q", settings={"n": 2})
    assert read_json(tmp_path / "e" / "eval.json")["policy"] == "q"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Run:
    """A tiny model trained for one iteration (one checkpoint, one eval after it)."""
    pytest.importorskip("transformers")
    from agentgym.config import load
    from agentgym.trainers.config import TrainConfig
    from agentgym.trainers.loop import train

    cfg = load(
        TrainConfig,
        None,
        [
            f"out_dir={tmp_path_factory.mktemp('train')}",
            "name=tiny",
            "policy.model=tiny",
            "policy.max_new_tokens=4",
            "env.max_turns=3",
            "env.tasks_per_iter=2",
            "env.group_size=2",
            "trainer.iterations=1",
            "trainer.eval_episodes=3",
            "trainer.lr=1e-2",
            "reward.invalid_penalty=-0.5",
        ],
    )
    return train(cfg)


def _play(spec: str, episodes: int = 3):
    from agentgym.evaluate import evaluate_policy

    loaded = load_policy(spec, device="cpu")
    result = evaluate_policy(loaded, "agentgym/KeyDoor-Small-v0", episodes=episodes, seed=10_000)
    return result, [t for traj in result.batch.trajectories for t in traj.turns]


@pytest.mark.slow
def test_a_checkpoint_scores_what_the_trainer_logged(trained_run, capsys):
    ckpt = trained_run.checkpoints_dir / "iter-00001"
    result, turns = _play(str(ckpt))
    (logged,) = [r for r in trained_run.read_metrics() if r["phase"] == "eval" and r["iteration"]]
    assert {k: logged[k] for k in result.overall.as_dict()} == result.overall.as_dict()
    assert all(len(t.response_ids) <= 4 for t in turns)  # the run's max_new_tokens
    assert result.overall.mean_turns <= 3  # the run's env.max_turns, not the registered 15
    # the run directory (latest checkpoint) and the exported model are the same policy
    for spec in (trained_run.path, trained_run.path / "model"):
        _, same = _play(str(spec))
        assert [t.response_ids for t in same] == [t.response_ids for t in turns]
        np.testing.assert_allclose(
            [x for t in same for x in t.response_logprobs],
            [x for t in turns for x in t.response_logprobs],
            atol=1e-5,
        )
    # and not the untrained model: the checkpoint's weights were loaded
    import torch

    from agentgym.policy.models import tiny_model

    trained = load_policy(str(ckpt), device="cpu").model.parameters()
    untrained = tiny_model(seed=0)[0].parameters()
    assert any(not torch.equal(a, b) for a, b in zip(trained, untrained, strict=True))
    assert main(["eval", "--env", "agentgym/KeyDoor-Small-v0", "--policy", str(ckpt)]) == 0
    assert "checkpoint" in capsys.readouterr().out
    assert (trained_run.path / "eval" / "iter-00001" / "eval.json").is_file()
