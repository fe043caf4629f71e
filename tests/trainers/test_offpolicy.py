"""Update statistics and off-policy corrections on samples from a real rollout (tiny model).

The samples' old logprobs are what the rollout stored, never recomputed by the function under
test; expected values come from a plain forward (``model(input_ids).logits``).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from agentgym.trainers.loss import LossConfig
from agentgym.trainers.tensorize import Sample, make_samples
from agentgym.trainers.update import ppo_update

pytest.importorskip("transformers")

from agentgym.policy.base import SamplingParams  # noqa: E402
from agentgym.policy.hf import HFPolicy  # noqa: E402
from agentgym.policy.models import tiny_model  # noqa: E402
from agentgym.rollout import collect  # noqa: E402


@pytest.fixture(scope="module")
def rollout():
    """(model, samples with advantages) from a tiny-model KeyDoor rollout."""
    model, tokenizer = tiny_model(seed=0)
    batch = collect(
        "agentgym/KeyDoor-Small-v0",
        HFPolicy(model, tokenizer),
        tasks=2,
        group_size=2,
        max_turns=3,
        sampling=SamplingParams(temperature=1.0, max_new_tokens=4, seed=0),
    )
    adv = np.random.default_rng(0).normal(size=batch.num_turns).astype(np.float32)
    return model, make_samples(batch, adv, "full")


def positions(s: Sample) -> list[int]:
    return [p for p, m in enumerate(s.loss_mask) if m and p > 0]


def plain_forward(model, s: Sample) -> torch.Tensor:
    """[V]-wide log-softmax rows predicting the sample's response tokens."""
    logits = model(input_ids=torch.tensor([s.input_ids])).logits[0, :-1].float()
    return torch.log_softmax(logits, -1)[[p - 1 for p in positions(s)]]


def shifted(samples: list[Sample], deltas: list[np.ndarray]) -> list[Sample]:
    """Samples whose stored logprobs are off by ``deltas`` (another backend's numerics)."""
    out = []
    for s, d in zip(samples, deltas, strict=True):
        old = list(s.old_logprobs)
        for p, x in zip(positions(s), d, strict=True):
            old[p] += float(x)
        out.append(dataclasses.replace(s, old_logprobs=old))
    return out


def run_update(model, samples, **kw) -> tuple[dict, dict]:
    """One optimizer step (SGD, lr 0); returns the stats and the gradient it applied."""
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    grads: dict[str, torch.Tensor] = {}
    step = opt.step

    def capture(*a, **k):
        grads.update({n: p.grad.clone() for n, p in model.named_parameters()})
        return step(*a, **k)

    opt.step = capture
    stats = ppo_update(model, opt, samples, LossConfig(), max_grad_norm=1e9, **kw)
    return stats, grads


def test_rollout_logprobs_agree_with_the_trainer_and_the_first_ratio_is_one(rollout):
    model, samples = rollout
    stats, _ = run_update(model, samples)
    assert stats["logprob_mismatch"] <= 1e-5  # fp32, hf backend
    assert stats["ratio"] == pytest.approx(1.0, abs=1e-5)


def test_logprob_mismatch_measures_a_backend_offset(rollout):
    model, samples = rollout
    rng = np.random.default_rng(1)
    deltas = [rng.uniform(-0.3, 0.3, len(positions(s))) for s in samples]
    stats, _ = run_update(model, shifted(samples, deltas))
    expected = np.mean(np.abs(np.concatenate(deltas)))
    assert stats["logprob_mismatch"] == pytest.approx(expected, rel=1e-3)


def test_recomputed_old_logprobs_remove_the_offset_from_the_ratio(rollout):
    model, samples = rollout
    deltas = [np.full(len(positions(s)), 0.2) for s in samples]
    off, _ = run_update(model, shifted(samples, deltas))
    assert off["ratio"] == pytest.approx(np.exp(-0.2), rel=1e-4)
    fixed, _ = run_update(model, shifted(samples, deltas), recompute_old=True)
    assert fixed["ratio"] == pytest.approx(1.0, abs=1e-5)


def test_truncated_importance_weights_scale_each_tokens_gradient(rollout):
    model, samples = rollout
    rng = np.random.default_rng(2)
    deltas = [rng.uniform(-0.5, 0.5, len(positions(s))) for s in samples]
    cap = 1.2
    _, grads = run_update(model, shifted(samples, deltas), tis_cap=cap)
    # expected: -(1/N) Σ_t min(π_old/π_rollout, cap) A_t ∇log π(a_t) with π_old = the model's
    # own (recomputed) and π_rollout = stored − delta offset, i.e. weight min(exp(-delta), cap)
    ref = copy.deepcopy(model)
    total = sum(len(positions(s)) for s in samples)
    loss = 0.0
    for s, d in zip(samples, deltas, strict=True):
        pos = positions(s)
        lp = plain_forward(ref, s)[range(len(pos)), [s.input_ids[p] for p in pos]]
        w = torch.clamp(torch.exp(-torch.tensor(d, dtype=torch.float32)), max=cap)
        adv = torch.tensor([s.advantages[p] for p in pos])
        loss = loss - (w * adv * lp).sum() / total
    loss.backward()
    for name, p in ref.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, atol=1e-6, rtol=1e-4)


def test_entropy_is_logged_without_a_bonus(rollout):
    model, samples = rollout
    stats, _ = run_update(model, samples)
    with torch.no_grad():
        rows = torch.cat([plain_forward(model, s) for s in samples])
    expected = float(-(rows.exp() * rows).sum(-1).mean())
    assert stats["entropy"] == pytest.approx(expected, rel=1e-5)


def test_the_logged_lr_is_the_one_the_step_used(rollout):
    model, samples = rollout
    model = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: (i + 1) / 4)
    for used in (0.25e-3, 0.5e-3):
        stats = ppo_update(model, opt, samples, LossConfig())
        assert stats["lr"] == pytest.approx(used)
        sched.step()


def test_a_non_finite_loss_skips_the_step_and_says_so(rollout):
    model, samples = rollout
    model = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    bad = [dataclasses.replace(samples[0], advantages=[float("nan")] * len(samples[0].advantages))]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    stats = ppo_update(model, opt, bad + list(samples[1:]), LossConfig())
    assert stats["skipped_steps"] == 1
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n
    stats = ppo_update(model, opt, samples, LossConfig())  # a healthy batch still trains
    assert stats["skipped_steps"] == 0 and np.isfinite(stats["loss"])
