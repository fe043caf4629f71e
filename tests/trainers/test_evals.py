"""The trainer refuses overlapping evaluation seeds and records each evaluation's panel."""

from __future__ import annotations

import json

import pytest
from tiny_runs import tiny_run_config

from agentgym.credit.diagnostics import credit_diagnostics
from agentgym.credit.gigpo import GiGPOConfig
from agentgym.trainers.evals import EvalSeedOverlapError, check_eval_seeds, eval_path
from agentgym.trainers.loop import train
from agentgym.trainers.progress import TensorBoardReporter

pytest.importorskip("transformers")


def config(tmp_path, *extra):
    return tiny_run_config(tmp_path, "trainer.eval_episodes=3", *extra)


def test_overlapping_eval_seeds_are_refused_before_anything_is_written(tmp_path):
    # training seeds: 0 + [0, 3 * 2) = 0-5; evaluation: 4 + [0, 3) = 4-6; shared: 4-5
    cfg = config(tmp_path, "trainer.eval_seed=4")
    with pytest.raises(EvalSeedOverlapError) as err:
        train(cfg)
    msg = str(err.value)
    assert "evaluates seeds 4-6" in msg and "training uses seeds 0-5" in msg
    assert "shared seeds: 4-5" in msg and "trainer.eval_seed=6 or higher" in msg
    assert not (tmp_path / "tiny").exists()
    check_eval_seeds(config(tmp_path, "trainer.eval_seed=6"))  # adjacent ranges are disjoint
    check_eval_seeds(config(tmp_path, "env.seed=3", "trainer.eval_seed=0"))  # 0-2 vs 3-8
    with pytest.raises(EvalSeedOverlapError, match="shared seeds: 3"):
        check_eval_seeds(config(tmp_path, "env.seed=3", "trainer.eval_seed=1"))


def test_each_evaluation_writes_its_panel_and_metrics_stay_as_they_were(tmp_path):
    records = []
    run = train(
        config(tmp_path, "trainer.eval_seed=100", "trainer.eval_every=2"), report=records.append
    )
    check_credit_diagnostics(run, records, tmp_path / "tb")
    evals = [r for r in run.read_metrics() if r["phase"] == "eval"]
    assert [r["iteration"] for r in evals] == [0, 2, 3]
    keys = {"iteration", "phase", "time", "episodes", "success_rate", "ci_low", "ci_high"}
    keys |= {"mean_turns", "mean_return", "faults"}
    assert all(set(r) == keys for r in evals)
    hashes = set()
    for r in evals:
        doc = json.loads(eval_path(run.path, r["iteration"]).read_text())
        assert doc["iteration"] == r["iteration"]
        assert {k: doc["summary"][k] for k in doc["summary"]} == {k: r[k] for k in doc["summary"]}
        assert [e["seed"] for e in doc["outcomes"]] == [100, 101, 102]
        assert [t["seed"] for t in doc["panel"]["tasks"]] == [100, 101, 102]
        assert doc["panel"]["max_turns"] == 3 and doc["sampling"]["temperature"] == 0.0
        assert sum(e["won"] for e in doc["outcomes"]) / 3 == r["success_rate"]
        # task ids of the panel that the training trajectories so far also had
        trained = {
            t.task_id
            for it in run.iterations()
            if it <= r["iteration"]
            for t in run.read_trajectories(it)
        }
        seen = sum(t["task_id"] in trained for t in doc["panel"]["tasks"])
        assert doc["train_task_overlap"] == {"tasks": 3, "seen_in_training": seen}
        hashes.add(doc["panel_hash"])
    assert len(hashes) == 1  # one panel throughout the run


def check_credit_diagnostics(run, records, logdir):
    """Each train record holds the diagnostics of its iteration's batch (no shaping and no
    faults here, so the stored batch is the one credit saw), and TensorBoard gets them."""
    train_records = [r for r in run.read_metrics() if r["phase"] == "train"]
    assert len(train_records) == 3
    for r in train_records:
        expected = credit_diagnostics(run.read_batch(r["iteration"]), GiGPOConfig())
        assert {k: r[k] for k in expected} == pytest.approx(expected)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    reporter = TensorBoardReporter(logdir)
    for r in records:
        reporter(r)
    events = EventAccumulator(str(logdir))
    events.Reload()
    shown = [e.value for e in events.Scalars("train/credit_salt_edges")]
    assert shown == pytest.approx([r["credit_salt_edges"] for r in train_records])
