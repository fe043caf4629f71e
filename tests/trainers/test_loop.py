"""The training loop end to end on a toy env with a tiny random model (CPU, seconds)."""

import numpy as np
import pytest
from tiny_runs import tiny_run_config

from agentgym.store import Run
from agentgym.trainers import checkpoint
from agentgym.trainers.loop import RunExistsError, train

pytest.importorskip("transformers")


def tiny_config(tmp_path, *extra):
    return tiny_run_config(
        tmp_path,
        "trainer.eval_episodes=2",
        "trainer.lr=1e-3",
        "reward.invalid_penalty=-0.1",
        *extra,
    )


class Kill(Exception):
    pass


def kill_after_logging(iteration):
    def report(record):
        if record.get("phase") == "train" and record["iteration"] == iteration:
            raise Kill  # after the metrics line and trajectories, before the checkpoint

    return report


def test_train_writes_a_complete_run(tmp_path):
    run = train(tiny_config(tmp_path))
    assert run.iterations() == [1, 2, 3]
    metrics = run.read_metrics()
    train_records = [r for r in metrics if r["phase"] == "train"]
    assert [r["iteration"] for r in train_records] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in train_records)
    evals = [r for r in metrics if r["phase"] == "eval"]
    assert [r["iteration"] for r in evals] == [0, 3]
    batch = run.read_batch(2)
    adv = batch.advantages("gigpo")
    assert not np.isnan(adv).any()
    assert all(t.response_ids for traj in batch.trajectories for t in traj.turns)
    assert checkpoint.latest(run.checkpoints_dir).name == "iter-00003"
    assert (run.path / "model" / "config.json").is_file()
    with pytest.raises(RunExistsError, match="--resume"):
        train(tiny_config(tmp_path))


def test_a_killed_run_resumes_to_the_same_result(tmp_path):
    straight = train(tiny_config(tmp_path / "a"))
    cfg = tiny_config(tmp_path / "b")
    with pytest.raises(Kill):
        train(cfg, report=kill_after_logging(2))
    killed = Run(tmp_path / "b" / "tiny")
    assert checkpoint.latest(killed.checkpoints_dir).name == "iter-00001"
    resumed = train(cfg, resume=True)
    # nothing lost, nothing duplicated
    iters = [r["iteration"] for r in resumed.read_metrics() if r["phase"] == "train"]
    assert iters == [1, 2, 3]
    for it in (2, 3):
        a, b = straight.read_batch(it), resumed.read_batch(it)
        assert [t.traj_id for t in a.trajectories] == [t.traj_id for t in b.trajectories]
        assert a.actions == b.actions
        np.testing.assert_allclose(a.advantages("gigpo"), b.advantages("gigpo"), atol=1e-6)
        lp_a = [x for t in a.trajectories for turn in t.turns for x in turn.response_logprobs]
        lp_b = [x for t in b.trajectories for turn in t.turns for x in turn.response_logprobs]
        np.testing.assert_allclose(lp_a, lp_b, atol=1e-4)


@pytest.mark.parametrize(
    "extra",
    [
        ("credit.estimator=salt", "trainer.aggregation=seq-mean"),
        (
            "credit.estimator=turn_rloo",
            "trainer.layout=window",
            "trainer.kl_coef=0.1",
            "trainer.tis_cap=2.0",
        ),
        (
            "lora.enabled=true",
            "lora.target_modules=[q_proj,v_proj]",
            "trainer.kl_coef=0.1",
            "trainer.kl_in=reward",
            "trainer.kl_estimator=k1",
        ),
    ],
    ids=["salt-seqmean", "window-kl", "lora-kl"],
)
def test_variants_train(tmp_path, extra):
    run = train(tiny_config(tmp_path, "trainer.iterations=1", *extra))
    record = [r for r in run.read_metrics() if r["phase"] == "train"][0]
    assert np.isfinite(record["loss"])
