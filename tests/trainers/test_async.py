"""Asynchronous rollouts (``trainer.max_staleness``): k = 0 is the synchronous loop, written out
here by hand; k >= 1 never trains on anything older than k versions and still learns the toy."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from tiny_runs import tiny_run_config

from agentgym import credit  # noqa: E402
from agentgym.data import Batch, Trajectory  # noqa: E402
from agentgym.rollout import collect  # noqa: E402
from agentgym.trainers.async_rollout import VERSION_KEY, Rollouts, check_correction  # noqa: E402
from agentgym.trainers.config import TrainConfig  # noqa: E402
from agentgym.trainers.loop import (  # noqa: E402
    build_model,
    build_policy,
    collect_kwargs,
    iteration_seed,
    resolve_device,
    sampling_params,
    seed_everything,
    shape_rewards,
    train,
)
from agentgym.trainers.loss import LossConfig  # noqa: E402
from agentgym.trainers.tensorize import make_samples  # noqa: E402
from agentgym.trainers.update import eval_mode, ppo_update  # noqa: E402

UPDATE_STATS = ("loss", "grad_norm", "clipfrac", "ratio", "approx_kl", "entropy")


def config(tmp_path, *extra: str) -> TrainConfig:
    return tiny_run_config(
        tmp_path,
        "policy.device=cpu",
        "trainer.eval_episodes=2",
        "trainer.lr=1e-3",
        "reward.invalid_penalty=-0.1",
        *extra,
        name="async",
    )


def synchronous_loop(cfg: TrainConfig) -> list[tuple[Batch, dict[str, float]]]:
    """The loop as it was before rollouts could run ahead: collect with the live model, credit,
    tensorize, update; nothing else. Returns each iteration's batch and update statistics."""
    seed_everything(cfg.seed)
    device = resolve_device(cfg.policy.device)
    model, tokenizer = build_model(cfg, device)
    policy = build_policy(cfg, model, tokenizer, device)
    tc = cfg.trainer
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    estimator = credit.get(cfg.credit.estimator)
    credit_cfg = credit.make_config(cfg.credit.estimator, cfg.credit.options)
    out = []
    for it in range(1, tc.iterations + 1):
        with eval_mode(model), torch.no_grad():
            batch = collect(
                cfg.env.id,
                policy,
                tasks=cfg.env.tasks_per_iter,
                group_size=cfg.env.group_size,
                seed=cfg.env.seed + (it - 1) * cfg.env.tasks_per_iter,
                max_turns=cfg.env.max_turns,
                sampling=sampling_params(cfg, seed=iteration_seed(cfg.seed, it)),
                env_kwargs=cfg.env.kwargs,
                group_prefix=f"it{it}:",
                **collect_kwargs(cfg),
            )
        advantages = estimator(shape_rewards(batch, cfg.reward), credit_cfg)
        stats = ppo_update(
            model,
            optimizer,
            make_samples(batch, advantages, "full"),
            LossConfig(tc.clip_low, tc.clip_high),
            epochs=tc.ppo_epochs,
            mini_batches=tc.mini_batches,
            micro_batch_tokens=tc.micro_batch_tokens,
            max_grad_norm=tc.max_grad_norm,
            temperature=cfg.policy.temperature,
            device=device,
            rng=random.Random(iteration_seed(cfg.seed, it)),
        )
        out.append((batch, stats))
    return out


def test_staleness_zero_is_the_synchronous_loop(tmp_path):
    check_synchronous(config(tmp_path, "trainer.max_staleness=0"))


def check_synchronous(cfg: TrainConfig) -> None:
    run = train(cfg)
    expected = synchronous_loop(cfg)
    records = [r for r in run.read_metrics() if r["phase"] == "train"]
    assert len(records) == len(expected) == cfg.trainer.iterations
    for it, (record, (batch, stats)) in enumerate(zip(records, expected, strict=True), 1):
        stored = run.read_batch(it)
        assert [t.traj_id for t in stored.trajectories] == [t.traj_id for t in batch.trajectories]
        for got, want in zip(stored.trajectories, batch.trajectories, strict=True):
            assert got.metadata[VERSION_KEY] == it - 1  # sampled by the weights before update it
            assert [t.output for t in got.turns] == [t.output for t in want.turns]
            assert [t.response_ids for t in got.turns] == [t.response_ids for t in want.turns]
            assert [t.prompt_ids for t in got.turns] == [t.prompt_ids for t in want.turns]
            np.testing.assert_allclose(
                [x for t in got.turns for x in t.response_logprobs],
                [x for t in want.turns for x in t.response_logprobs],
                rtol=0,
                atol=1e-6,
            )
        for key in UPDATE_STATS:
            assert record[key] == pytest.approx(stats[key], rel=1e-6, abs=1e-9), (it, key)
        assert "staleness" not in record  # nothing new in the synchronous log line


def test_no_trajectory_older_than_k_is_trained_on(tmp_path):
    k = 2
    cfg = config(tmp_path, f"trainer.max_staleness={k}", "trainer.iterations=6")
    run = train(cfg)
    lags = []
    for it in run.iterations():
        versions = {t.metadata[VERSION_KEY] for t in run.read_batch(it).trajectories}
        assert len(versions) == 1  # one batch, one version of the weights
        lag = (it - 1) - versions.pop()  # the trainer is at version it - 1 when it trains
        assert 0 <= lag <= k, (it, lag)
        lags.append(lag)
    assert lags[0] == 0 and max(lags) >= 1  # the first batch waits; later ones ran ahead
    records = [r for r in run.read_metrics() if r["phase"] == "train"]
    assert [r["staleness_max"] for r in records] == lags


@pytest.mark.slow
def test_one_step_stale_rollouts_learn_the_toy(tmp_path):
    """KeyDoor with one room (take key, open door, go north), constrained to the admissible
    actions: the random tiny model's greedy policy never escapes in 6 turns; trained with
    rollouts one version behind, it escapes in 3."""
    cfg = config(
        tmp_path,
        "trainer.max_staleness=1",
        "policy.decoding=constrained",
        "policy.temperature=2.0",
        "env.kwargs={n_rooms: 1}",
        "env.max_turns=6",
        "env.group_size=4",
        "trainer.iterations=8",
        "trainer.lr=3e-3",
        "trainer.eval_episodes=8",
    )
    run = train(cfg)
    evals = [r for r in run.read_metrics() if r["phase"] == "eval"]
    before, after = evals[0], evals[-1]
    assert before["success_rate"] == 0.0
    assert after["success_rate"] >= 0.75
    assert after["mean_turns"] < before["mean_turns"]
    records = [r for r in run.read_metrics() if r["phase"] == "train"]
    assert max(r["staleness_max"] for r in records) == 1


# ------------------------------------------------------------------------------ Rollouts alone


class Versioned(torch.nn.Module):
    """Weights that say which version they are (a buffer, so it travels in the state dict)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("version", torch.zeros((), dtype=torch.long))


class Holder:
    """A rollout policy holding its own weights (as an ``HFPolicy`` holds ``model``)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model


def collect_reading_weights(policy: Holder, it: int) -> Batch:
    """A collection that records which weights it ran with, read slowly from the model."""
    first = int(policy.model.version)
    time.sleep(0.02)  # the trainer may publish meanwhile: the worker must not swap mid-batch
    second = int(policy.model.version)
    meta = {"read": (first, second)}
    return Batch((Trajectory("toy", "t", it, f"g{it}", (), won=False, metadata=meta),))


@pytest.mark.parametrize("k", [0, 1, 3])
def test_versions_stamped_are_the_weights_used(k):
    trainer = Versioned()
    worker = Holder(Versioned()) if k else None
    rollouts = Rollouts(
        collect_reading_weights,
        Holder(trainer),
        max_staleness=k,
        version=0,
        last_iteration=12,
        worker=worker,
    )
    lags = []
    for it in range(1, 13):
        traj = rollouts.get(it).trajectories[0]
        first, second = traj.metadata["read"]
        assert first == second == traj.metadata[VERSION_KEY]
        lags.append(rollouts.version - traj.metadata[VERSION_KEY])
        rollouts.before_update()
        with torch.no_grad():
            trainer.version += 1  # the update
        time.sleep(0.01)
        rollouts.after_update(trainer)
    rollouts.close()
    assert rollouts.version == 12
    assert all(0 <= lag <= k for lag in lags)
    assert lags[0] == 0 and (k == 0 or max(lags) >= 1)


def test_async_correction_must_weight_the_behaviour_policy():
    check_correction(0, recompute_old=True, tis_cap=0.0)  # synchronous: fine
    check_correction(1, recompute_old=False, tis_cap=0.0)  # PPO ratio against the behaviour
    check_correction(1, recompute_old=True, tis_cap=2.0)  # decoupled: recompute + capped IS
    with pytest.raises(ValueError, match="tis_cap"):
        check_correction(1, recompute_old=True, tis_cap=0.0)
