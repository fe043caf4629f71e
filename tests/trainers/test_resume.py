"""A run killed in any window resumes to the run it would have been (tiny model, CPU).

Kill windows: during a rollout, right after an update (weights changed, nothing saved), in the
middle of a checkpoint write, during an intermediate evaluation and during the final one. The
kill is an exception raised from inside the real step (the wrapped function runs, or runs part
way, then raises), as a SIGKILL would stop it; the resumed run must then hold exactly the
straight run's trajectories, train records and evaluations, each once.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
import torch
from tiny_runs import tiny_run_config

from agentgym.store import Run
from agentgym.trainers import checkpoint, loop
from agentgym.trainers.loop import train
from agentgym.trainers.resume import ConfigChangedError

pytest.importorskip("transformers")

EVAL_KEYS = ("episodes", "success_rate", "mean_turns", "mean_return")


def config(out, *extra):
    return tiny_run_config(
        out,
        "trainer.eval_every=2",  # evaluations after iterations 0, 2 and 3
        "trainer.eval_episodes=3",
        "trainer.eval_temperature=1.0",  # sampled: the eval stream matters
        "trainer.warmup_iters=2",
        "trainer.lr=1e-3",
        "reward.invalid_penalty=-0.1",
        *extra,
    )


class Kill(Exception):
    pass


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    return train(config(tmp_path_factory.mktemp("straight")))


def fingerprint(run: Run):
    """Everything a run produced that a resume must reproduce."""
    metrics = run.read_metrics()
    train_recs = [r for r in metrics if r["phase"] == "train"]
    evals = [(r["iteration"], *(r[k] for k in EVAL_KEYS)) for r in metrics if r["phase"] == "eval"]
    batches = {}
    for it in run.iterations():
        b = run.read_batch(it)
        batches[it] = (
            [t.traj_id for t in b.trajectories],
            b.actions,
            np.round(b.advantages("gigpo"), 5).tolist(),
            [
                round(x, 4)
                for t in b.trajectories
                for turn in t.turns
                for x in turn.response_logprobs
            ],
        )
    losses = [(r["iteration"], round(r["loss"], 5), r["lr"]) for r in train_recs]
    return evals, batches, losses


def nth_call_raises(fn, n, *, before: bool):
    """``fn`` that raises Kill on its n-th call (1-based), before or after doing its work."""
    counter = itertools.count(1)

    def wrapped(*args, **kwargs):
        if next(counter) != n:
            return fn(*args, **kwargs)
        if before:
            raise Kill
        fn(*args, **kwargs)
        raise Kill

    return wrapped


def kill_during_rollout(monkeypatch):
    # the second iteration's rollout dies on its third generate call, mid-episode
    real = loop.collect

    def collect(*args, **kwargs):
        if kwargs.get("group_prefix") != "it2:":
            return real(*args, **kwargs)
        policy = args[1]
        policy.generate = nth_call_raises(policy.generate, 3, before=True)
        try:
            return real(*args, **kwargs)
        finally:
            del policy.generate  # back to the class's method

    monkeypatch.setattr(loop, "collect", collect)


def kill_after_update(monkeypatch):
    monkeypatch.setattr(loop, "ppo_update", nth_call_raises(loop.ppo_update, 2, before=False))


def kill_during_checkpoint_write(monkeypatch):
    # iteration 2's checkpoint: 4 files per checkpoint, die on the 3rd of the second one
    monkeypatch.setattr(checkpoint.torch, "save", nth_call_raises(torch.save, 7, before=True))


def kill_during_eval(n):
    # the n-th evaluation (1: before training, 2: after iteration 2, 3: the final one) runs,
    # and the process dies before its record is written
    def inject(monkeypatch):
        monkeypatch.setattr(loop, "run_eval", nth_call_raises(loop.run_eval, n, before=False))

    return inject


WINDOWS = {
    "rollout": (kill_during_rollout, "iter-00001"),
    "after-update": (kill_after_update, "iter-00001"),
    "checkpoint-write": (kill_during_checkpoint_write, "iter-00001"),
    "eval": (kill_during_eval(2), "iter-00002"),
    "final-eval": (kill_during_eval(3), "iter-00003"),
}


@pytest.mark.parametrize("window", list(WINDOWS))
def test_a_kill_in_any_window_resumes_to_the_straight_run(tmp_path, monkeypatch, straight, window):
    inject, latest = WINDOWS[window]
    cfg = config(tmp_path)
    with monkeypatch.context() as m:
        inject(m)
        with pytest.raises(Kill):
            train(cfg)
    killed = Run(tmp_path / "tiny")
    assert checkpoint.latest(killed.checkpoints_dir).name == latest
    assert not (killed.path / "model").exists()  # nothing exported before the final eval
    resumed = train(cfg, resume=True)
    assert fingerprint(resumed) == fingerprint(straight)
    evals = [r["iteration"] for r in resumed.read_metrics() if r["phase"] == "eval"]
    assert evals == [0, 2, 3]
    assert (resumed.path / "model" / "config.json").is_file()
    assert not list(resumed.checkpoints_dir.glob(".iter-*"))  # no half-written folder left


def test_the_logged_lr_follows_the_warmup(straight):
    lrs = [r["lr"] for r in straight.read_metrics() if r["phase"] == "train"]
    assert lrs == pytest.approx([0.5e-3, 1e-3, 1e-3])  # (i + 1) / warmup_iters, capped at 1


def test_an_evaluation_does_not_depend_on_the_evaluations_before_it(tmp_path):
    # the resumed process has a fresh policy; its evaluation must draw what a straight run's
    # policy, which already evaluated before, draws
    from agentgym.policy.models import tiny_model

    cfg = config(tmp_path)
    model, tokenizer = tiny_model(seed=0)
    used = loop.build_policy(cfg, model, tokenizer, "cpu")
    loop.run_eval(cfg, used, model, iteration=0)
    again = loop.run_eval(cfg, used, model, iteration=2)
    fresh = loop.run_eval(cfg, loop.build_policy(cfg, model, tokenizer, "cpu"), model, iteration=2)
    assert again.batch.actions == fresh.batch.actions
    lp = [
        [x for t in r.batch.trajectories for u in t.turns for x in u.response_logprobs]
        for r in (again, fresh)
    ]
    np.testing.assert_allclose(lp[0], lp[1], atol=1e-5)


def test_resume_refuses_a_changed_config_and_names_the_keys(tmp_path):
    cfg = config(tmp_path, "trainer.iterations=1", "trainer.eval_every=0")
    train(cfg)
    changed = config(
        tmp_path,
        "trainer.iterations=1",
        "trainer.eval_every=0",
        "trainer.lr=5e-4",
        "env.group_size=3",
    )
    with pytest.raises(ConfigChangedError) as err:
        train(changed, resume=True)
    assert "trainer.lr" in str(err.value) and "env.group_size" in str(err.value)
    assert "--allow-config-change" in str(err.value)
    train(cfg, resume=True)  # the same config resumes (here: nothing left to do)
    run = train(changed, resume=True, allow_config_change=True)
    assert run.read_config()["trainer"]["lr"] == 5e-4  # the config in force is recorded


def test_checkpoint_files_are_fsynced_before_the_rename(tmp_path, monkeypatch):
    from agentgym.policy.models import tiny_model

    model, _ = tiny_model(seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, *a, **k):
        events.append(("replace", os.fspath(src)))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    final = checkpoint.save(tmp_path, 1, model, opt, None)
    moves = [i for i, (kind, _) in enumerate(events) if kind == "replace"]
    folder_move = next(i for i in moves if "/.iter-00001." in events[i][1])
    tmp_dir = events[folder_move][1]
    synced_before = {p for kind, p in events[:folder_move] if kind == "fsync"}
    for name in ("trainable.pt", "optimizer.pt", "scheduler.pt", "state.pt"):
        assert os.path.join(tmp_dir, name) in synced_before, name
    assert tmp_dir in synced_before  # the folder's entries
    synced_after = {p for kind, p in events[folder_move:] if kind == "fsync"}
    assert str(tmp_path) in synced_after  # the rename itself, then LATEST
    latest_move = max(moves)
    assert any(kind == "fsync" and p.endswith(".LATEST.tmp") for kind, p in events[:latest_move])
    assert checkpoint.latest(tmp_path) == final


def test_eval_at_start_can_be_turned_off():
    from agentgym.trainers.config import TrainerSection
    from agentgym.trainers.resume import eval_due

    assert eval_due(TrainerSection(iterations=3), 0)
    off = TrainerSection(iterations=3, eval_at_start=False)
    assert not eval_due(off, 0) and eval_due(off, 3) and not eval_due(off, 1)


def test_a_full_disk_names_the_problem_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    from collections import namedtuple

    from agentgym.policy.models import tiny_model

    model, _ = tiny_model(seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.tensor([[1, 2, 3]])).logits.sum().backward()
    opt.step()  # Adam state now holds two tensors per weight
    first = checkpoint.save(tmp_path, 1, model, opt, None)
    need = checkpoint.check_space(tmp_path, model, opt)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    assert need >= 3 * weights  # weights + exp_avg + exp_avg_sq
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda _: usage(10**12, 0, need - 1))
    with pytest.raises(OSError, match="not enough disk space.*keep_checkpoints"):
        checkpoint.save(tmp_path, 2, model, opt, None)
    assert checkpoint.latest(tmp_path) == first
    assert not list(tmp_path.glob(".iter-*"))  # no half-written folder left behind
