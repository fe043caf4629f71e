"""`agentgym compare` on two real tiny training runs and on `agentgym eval` results."""

from __future__ import annotations

import json
import re

import pytest

from agentgym.cli import main
from agentgym.compare import mcnemar_exact

pytest.importorskip("transformers")

ENV = "agentgym/KeyDoor-Small-v0"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from agentgym.config import load
    from agentgym.trainers.config import TrainConfig
    from agentgym.trainers.loop import train

    out = tmp_path_factory.mktemp("runs")
    runs = []
    for name, estimator in (("grpo", "grpo"), ("gigpo", "gigpo")):
        cfg = load(
            TrainConfig,
            None,
            [
                f"out_dir={out}",
                f"name={name}",
                "policy.model=tiny",
                "policy.max_new_tokens=4",
                f"env.id={ENV}",
                "env.max_turns=3",
                "env.tasks_per_iter=2",
                "env.group_size=2",
                "trainer.iterations=2",
                "trainer.eval_episodes=4",
                "trainer.lr=1e-3",
                f"credit.estimator={estimator}",
            ],
        )
        runs.append(train(cfg).path)
    return runs


def test_compare_two_runs_uses_their_last_evaluations(two_runs, capsys):
    a, b = two_runs
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert f"{a} iteration 2" in out and f"{b} iteration 2" in out
    assert "McNemar exact p" in out and "paired bootstrap" in out
    stored = [json.loads((r / "evals" / "iter-00002.json").read_text()) for r in two_runs]
    won = [[e["won"] for e in s["outcomes"]] for s in stored]
    b_count = sum(x and not y for x, y in zip(*won, strict=True))
    c_count = sum(y and not x for x, y in zip(*won, strict=True))
    assert f"A only (b) = {b_count}, B only (c) = {c_count}" in out
    for seed in range(10_000, 10_004):
        assert str(seed) in out


def test_compare_picks_iterations_and_checkpoints(two_runs, capsys):
    a, b = two_runs
    # before training both runs hold the same tiny model (same seed): every pair agrees
    assert main(["compare", str(a), str(b), "--iter", "0"]) == 0
    out = capsys.readouterr().out
    assert "A only (b) = 0, B only (c) = 0" in out
    assert re.search(r"McNemar exact p\W+1\s", out)
    assert main(["compare", str(a / "checkpoints" / "iter-00002"), str(b), "--iter-b", "0"]) == 0
    assert f"{b} iteration 0" in capsys.readouterr().out
    assert main(["compare", str(a), str(b), "--iter", "1"]) == 2
    assert "evaluated iterations: 0, 2" in capsys.readouterr().err
    assert main(["compare", str(a / "checkpoints" / "iter-00001"), str(b)]) == 2
    assert "agentgym eval --policy" in capsys.readouterr().err


def test_compare_eval_results_with_hand_counted_pairs(tmp_path, capsys):
    common = ["--env", ENV, "--episodes", "10", "--seed", "10000", "--max-turns", "6"]
    for policy in ("random", "oracle"):
        assert main(["eval", *common, "--policy", policy, "--out", str(tmp_path / policy)]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "random"), str(tmp_path / "oracle" / "eval.json")]) == 0
    out = capsys.readouterr().out
    docs = [json.loads((tmp_path / p / "eval.json").read_text()) for p in ("random", "oracle")]
    won = [[e["won"] for e in d["results"][0]["outcomes"]] for d in docs]
    b = sum(x and not y for x, y in zip(*won, strict=True))
    c = sum(y and not x for x, y in zip(*won, strict=True))
    assert c > 0  # the oracle wins where random does not
    assert f"A only (b) = {b}, B only (c) = {c}" in out
    assert re.search(rf"McNemar exact p\W+{re.escape(f'{mcnemar_exact(b, c):.4g}')}\s", out)
    assert "sampling policy: 'RandomPolicy' vs 'OraclePolicy'" in " ".join(out.split())


def test_compare_refuses_another_panel_and_names_what_differs(two_runs, tmp_path, capsys):
    a, _ = two_runs
    argv = ["eval", "--env", ENV, "--policy", "random", "--episodes", "6", "--seed", "10002"]
    assert main([*argv, "--max-turns", "3", "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    assert main(["compare", str(a), str(tmp_path / "r")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "not evaluated on the same panel" in err
    assert "only in A: 10000-10001; only in B: 10004-10007" in err


def test_compare_explains_records_without_a_panel(tmp_path, capsys):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"env_id": ENV, "success_rate": 0.5}))
    assert main(["compare", str(old), str(old)]) == 2
    assert "no panel manifest" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "missing"), str(old)]) == 2
    assert "not an evaluation file" in capsys.readouterr().err
