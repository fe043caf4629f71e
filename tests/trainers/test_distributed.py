"""Training on several processes: gloo on this CPU, world size 2, launched with torchrun.

The reference is always a single process doing the same work: one ``ppo_update`` on the same
samples (DDP and FSDP2), and a whole ``agentgym train --nproc 2`` run whose stored batch is
re-trained in one process. Processes find a free port themselves (``torchrun --standalone``);
every launch has a timeout.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from agentgym import credit  # noqa: E402
from agentgym.cli import main  # noqa: E402
from agentgym.config import load  # noqa: E402
from agentgym.data import Batch  # noqa: E402
from agentgym.store import Run  # noqa: E402
from agentgym.trainers import checkpoint, distributed  # noqa: E402
from agentgym.trainers.config import TrainConfig  # noqa: E402
from agentgym.trainers.loop import build_model, iteration_seed, shape_rewards  # noqa: E402
from agentgym.trainers.loss import LossConfig  # noqa: E402
from agentgym.trainers.tensorize import make_samples, micro_batches  # noqa: E402
from agentgym.trainers.update import ppo_update  # noqa: E402

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import dist_update_worker as worker  # noqa: E402

TIMEOUT_S = 300
TOL = 1e-5


def torchrun(*args: str, nproc: int = 2) -> None:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]


# ------------------------------------------------------------------------------ pure helpers


@pytest.mark.parametrize("tasks", [0, 1, 2, 5, 8])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_task_shards_partition_the_tasks(tasks, world):
    shards = [distributed.task_shard(tasks, distributed.Ranks(r, world)) for r in range(world)]
    covered = [first + k for first, count in shards for k in range(count)]
    assert covered == list(range(tasks))  # contiguous, in rank order, each task once
    assert max(c for _, c in shards) - min(c for _, c in shards) <= 1


def test_one_process_is_untouched(token_batch: Batch, tiny_lm):
    single = distributed.SINGLE
    assert not single.distributed and single.is_main and single.loss_scale == 1.0
    assert distributed.gather(token_batch, single) is token_batch
    assert distributed.wrap(tiny_lm, single) is tiny_lm
    assert single.seed(123) == 123
    _, samples = worker.update_inputs()
    plan = single.micro_plan(samples, lambda part: micro_batches(part, 48))
    assert [m for m, _ in plan] == micro_batches(samples, 48)
    assert all(share == 1.0 for _, share in plan)


def test_fsdp_refuses_what_it_cannot_shard():
    two = distributed.Ranks(0, 2)
    distributed.check_strategy(two, "ddp", "hf", frozen_reference=True)
    distributed.check_strategy(distributed.SINGLE, "fsdp", "hf", frozen_reference=True)
    distributed.check_strategy(two, "fsdp", "vllm", frozen_reference=False)
    with pytest.raises(ValueError, match="policy.backend=vllm"):
        distributed.check_strategy(two, "fsdp", "hf", frozen_reference=False)
    with pytest.raises(ValueError, match="lora.enabled"):
        distributed.check_strategy(two, "fsdp", "vllm", frozen_reference=True)


# ------------------------------------------------------------------------------ one update


@pytest.fixture(scope="module")
def single_update():
    torch.manual_seed(0)
    model, samples = worker.update_inputs()
    return worker.run_update(model, samples)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_mini_batches_smaller_than_the_world(strategy, tmp_path):
    """Only 2 of 10 samples carry advantages, so the update runs mini-batches of 0-2 samples on
    2 ranks: a rank without a sample joins with a weight-0 pass, and the step still equals the
    single-process one."""
    torch.manual_seed(0)
    model, samples = worker.update_inputs(sparse=True)
    params, stats = worker.run_update(model, samples)
    out = tmp_path / "update.pt"
    torchrun(str(HERE / "dist_update_worker.py"), f"{strategy}-sparse", str(out))
    got = torch.load(out, weights_only=False)
    for name, value in params.items():
        torch.testing.assert_close(got["params"][name], value, atol=TOL, rtol=0, msg=name)
    assert got["stats"]["grad_norm"] == pytest.approx(stats["grad_norm"], rel=1e-5)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_one_update_on_two_ranks_equals_one_process(strategy, single_update, tmp_path):
    """Same samples, 2 mini-batches, micro-batches of unequal count per rank: the parameters
    after the AdamW step and the logged statistics (the gradient norm among them, which a
    wrong loss scale would change) equal the single-process run. Then a checkpoint (model and
    optimizer state) round-trips: resuming on 2 ranks repeats the uninterrupted second step."""
    out = tmp_path / "update.pt"
    folder = tmp_path / "checkpoints"
    torchrun(str(HERE / "dist_update_worker.py"), strategy, str(out), str(folder))
    got = torch.load(out, weights_only=False)
    assert got["world"] == 2
    params, stats = single_update
    assert set(got["params"]) == set(params)
    for name, value in params.items():
        torch.testing.assert_close(got["params"][name], value, atol=TOL, rtol=0, msg=name)
    for key in ("loss", "grad_norm", "clipfrac", "ratio", "entropy", "logprob_mismatch"):
        assert got["stats"][key] == pytest.approx(stats[key], rel=1e-5, abs=1e-6), key
    # the checkpoint rank 0 wrote holds full states: a plain model loads the first update...
    model, _ = worker.update_inputs(seed=5)
    checkpoint.load(checkpoint.latest(folder), model)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, params[name], atol=TOL, rtol=0, msg=name)
    # ...and 2 ranks resumed from it take the same second step as without the interruption
    for name, value in got["straight"].items():
        torch.testing.assert_close(got["resumed"][name], value, atol=1e-6, rtol=0, msg=name)


# ------------------------------------------------------------------------------ agentgym train


CONFIG = """\
name: dist
policy: {model: tiny, device: cpu, max_new_tokens: 4}
env: {id: agentgym/KeyDoor-Small-v0, max_turns: 3, tasks_per_iter: 3, group_size: 2}
trainer: {iterations: 3, eval_episodes: 2, lr: 0.001, keep_checkpoints: 5}
reward: {invalid_penalty: -0.1}
"""


def train_args(tmp_path: Path, *extra: str) -> list[str]:
    config = tmp_path / "dist.yaml"
    config.write_text(CONFIG)
    return ["train", str(config), f"out_dir={tmp_path / 'runs'}", *extra, "--nproc", "2"]


def test_nproc_must_be_positive(tmp_path, capsys):
    assert main(train_args(tmp_path)[:-2] + ["--nproc", "0"]) == 2
    assert "--nproc must be at least 1" in capsys.readouterr().err


def checkpoint_params(run: Run, iteration: int) -> dict[str, torch.Tensor]:
    path = run.checkpoints_dir / f"iter-{iteration:05d}" / "trainable.pt"
    return torch.load(path, weights_only=True)


@pytest.mark.slow
def test_train_on_two_ranks(tmp_path):
    """``agentgym train --nproc 2``: rank 0 alone writes; groups are whole before credit; the
    first update equals one process's update on the stored batch; a run killed after its second
    checkpoint resumes on 2 ranks to the same third iteration."""
    assert main(train_args(tmp_path)) == 0
    run = Run(tmp_path / "runs" / "dist")
    cfg = load(TrainConfig, run.config_path, [])
    records = run.read_metrics()
    assert [r["iteration"] for r in records if r["phase"] == "train"] == [1, 2, 3]
    assert [r["iteration"] for r in records if r["phase"] == "eval"] == [0, 3]
    assert len(list((run.path / "tensorboard").glob("events.*"))) == 1  # rank 0's alone

    # the gathered batch: every task's group whole, credit as one process computes it
    batch = run.read_batch(1)
    assert len(batch) == cfg.env.tasks_per_iter * cfg.env.group_size
    assert len({t.group_id for t in batch.trajectories}) == cfg.env.tasks_per_iter
    estimator = credit.get(cfg.credit.estimator)
    advantages = estimator(
        shape_rewards(batch, cfg.reward), credit.make_config(cfg.credit.estimator, {})
    )
    np.testing.assert_allclose(batch.advantages(estimator.name), advantages, atol=1e-6)

    # one process, same initial model, same batch: the same parameters after the update
    model, _ = build_model(cfg, "cpu")
    tc = cfg.trainer
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    ppo_update(
        model,
        optimizer,
        make_samples(batch, advantages, "full"),
        LossConfig(tc.clip_low, tc.clip_high, tc.kl_coef, tc.entropy_coef, tc.aggregation),
        epochs=tc.ppo_epochs,
        mini_batches=tc.mini_batches,
        micro_batch_tokens=tc.micro_batch_tokens,
        max_grad_norm=tc.max_grad_norm,
        temperature=cfg.policy.temperature,
        rng=random.Random(iteration_seed(cfg.seed, 1)),
    )
    after_one = checkpoint_params(run, 1)
    for name, value in model.named_parameters():
        torch.testing.assert_close(after_one[name], value.detach(), atol=TOL, rtol=0, msg=name)

    # kill after the second checkpoint: the third iteration is redone identically on 2 ranks
    third = run.read_batch(3)
    final = checkpoint_params(run, 3)
    shutil.rmtree(run.checkpoints_dir / "iter-00003")
    (run.checkpoints_dir / checkpoint.LATEST).write_text("iter-00002\n")
    assert main(train_args(tmp_path, "--resume")) == 0
    records = run.read_metrics()
    assert [r["iteration"] for r in records if r["phase"] == "train"] == [1, 2, 3]
    again = run.read_batch(3)
    assert [t.traj_id for t in again.trajectories] == [t.traj_id for t in third.trajectories]
    assert again.actions == third.actions
    resumed = checkpoint_params(run, 3)
    for name, value in final.items():
        torch.testing.assert_close(resumed[name], value, atol=1e-6, rtol=0, msg=name)
