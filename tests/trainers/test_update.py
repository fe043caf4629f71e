import copy
import random

import numpy as np
import pytest
import torch

from agentgym.trainers import checkpoint
from agentgym.trainers.loss import LossConfig, ppo_loss, response_logprobs
from agentgym.trainers.tensorize import collate, make_samples
from agentgym.trainers.update import ppo_update, reference_from_model


def on_policy_samples(model, batch, adv):
    """Samples whose old logprobs are the model's own (as a rollout would record them)."""
    samples = make_samples(batch, adv, "full")
    out = []
    with torch.no_grad():
        for s in samples:
            tb = collate([s])
            lp = response_logprobs(model, tb).logprobs.tolist()
            old = list(s.old_logprobs)
            idx = [i for i, m in enumerate(s.loss_mask) if m and i > 0]
            for i, v in zip(idx, lp, strict=True):
                old[i] = v
            out.append(type(s)(s.input_ids, s.loss_mask, old, s.advantages, s.turn_ids))
    return out


def adv_for(batch):
    rng = np.random.default_rng(1)
    return rng.normal(size=batch.num_turns).astype(np.float32)


def test_one_update_changes_every_trainable_parameter_and_loss_is_finite(tiny_lm, token_batch):
    before = {n: p.detach().clone() for n, p in tiny_lm.named_parameters()}
    opt = torch.optim.AdamW(tiny_lm.parameters(), lr=1e-3)
    samples = on_policy_samples(tiny_lm, token_batch, adv_for(token_batch))
    stats = ppo_update(tiny_lm, opt, samples, LossConfig(), micro_batch_tokens=32)
    assert np.isfinite(stats["loss"]) and stats["grad_norm"] > 0
    # (the first-step ratio against logprobs a rollout stored: test_offpolicy.py and
    # test_rollout_logprobs.py; these samples' old logprobs come from response_logprobs itself)
    unchanged = [n for n, p in tiny_lm.named_parameters() if torch.equal(p, before[n])]
    assert unchanged == []


def test_micro_batching_gives_the_same_gradient(tiny_lm, token_batch):
    samples = on_policy_samples(tiny_lm, token_batch, adv_for(token_batch))
    grads = []
    for budget in (10_000, 16):
        model = copy.deepcopy(tiny_lm)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        captured = {}
        orig_step = opt.step

        def step(*a, _m=model, _c=captured, _step=orig_step, **k):
            _c.update({n: p.grad.clone() for n, p in _m.named_parameters()})
            return _step(*a, **k)

        opt.step = step
        ppo_update(model, opt, samples, LossConfig(), micro_batch_tokens=budget, max_grad_norm=1e9)
        grads.append(captured)
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-4)


def test_kl_to_a_reference_is_reported(tiny_lm, token_batch):
    ref = copy.deepcopy(tiny_lm)
    opt = torch.optim.AdamW(tiny_lm.parameters(), lr=1e-2)
    samples = on_policy_samples(tiny_lm, token_batch, adv_for(token_batch))
    cfg = LossConfig(kl_coef=0.1)
    ppo_update(tiny_lm, opt, samples, cfg, reference=reference_from_model(ref, 1.0))
    stats = ppo_update(tiny_lm, opt, samples, cfg, reference=reference_from_model(ref, 1.0))
    assert stats["kl_ref"] > 0


def test_checkpoint_round_trips_model_optimizer_and_rng(tmp_path, tiny_lm, token_batch):
    opt = torch.optim.AdamW(tiny_lm.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5)
    samples = on_policy_samples(tiny_lm, token_batch, adv_for(token_batch))
    ppo_update(tiny_lm, opt, samples, LossConfig())
    sched.step()
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    path = checkpoint.save(tmp_path, 7, tiny_lm, opt, sched, store_iteration=7)
    expected_draws = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    assert checkpoint.latest(tmp_path) == path

    other = copy.deepcopy(tiny_lm)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    opt2 = torch.optim.AdamW(other.parameters(), lr=1e-3)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda i: 0.5)
    state = checkpoint.load(path, other, opt2, sched2)
    assert state["iteration"] == 7 and state["store_iteration"] == 7
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected_draws
    for (n, p), q in zip(tiny_lm.named_parameters(), other.parameters(), strict=True):
        assert torch.equal(p, q), n
    assert sched2.state_dict()["last_epoch"] == sched.state_dict()["last_epoch"]
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)


def test_checkpoints_are_pruned_and_latest_is_complete(tmp_path, tiny_lm):
    opt = torch.optim.AdamW(tiny_lm.parameters(), lr=1e-3)
    for it in range(1, 5):
        checkpoint.save(tmp_path, it, tiny_lm, opt, None, keep=2)
    assert sorted(p.name for p in tmp_path.glob("iter-*")) == ["iter-00003", "iter-00004"]
    assert checkpoint.latest(tmp_path).name == "iter-00004"


def test_loading_into_another_model_shape_fails_clearly(tmp_path, tiny_lm):
    opt = torch.optim.AdamW(tiny_lm.parameters(), lr=1e-3)
    path = checkpoint.save(tmp_path, 1, tiny_lm, opt, None)
    for p in list(tiny_lm.parameters())[:3]:
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="does not fit"):
        checkpoint.load(path, tiny_lm)


def test_samples_with_zero_advantage_are_skipped_without_changing_the_gradient(
    tiny_lm, token_batch
):
    adv = adv_for(token_batch)
    first = token_batch.traj_len[0]
    adv[:first] = 0.0  # the first trajectory carries no signal
    samples = on_policy_samples(tiny_lm, token_batch, adv)
    assert not any(samples[0].advantages) and any(samples[1].advantages)
    # reference: the loss over every sample, computed by hand, with the same normalisers
    model = copy.deepcopy(tiny_lm)
    tb = collate(samples)
    select = tb.loss_mask[:, 1:]
    out = response_logprobs(model, tb)
    loss, _ = ppo_loss(
        out.logprobs,
        tb.old_logprobs[:, 1:][select],
        tb.advantages[:, 1:][select],
        tb.turn_ids[:, 1:][select],
        LossConfig(),
        total_tokens=int(select.sum()),
        total_turns=token_batch.num_turns,
    )
    loss.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters()}
    # ppo_update skips the zero-advantage sample; one SGD step of lr 1 exposes its gradient
    model = copy.deepcopy(tiny_lm)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    stats = ppo_update(
        model,
        torch.optim.SGD(model.parameters(), lr=1.0),
        samples,
        LossConfig(),
        max_grad_norm=1e9,
    )
    assert stats["zero_advantage_samples"] == 1
    for n, p in model.named_parameters():
        torch.testing.assert_close(before[n] - p.detach(), want[n], atol=1e-6, rtol=1e-4)


def test_a_batch_without_signal_makes_no_optimizer_step(tiny_lm, token_batch):
    samples = on_policy_samples(tiny_lm, token_batch, np.zeros(token_batch.num_turns, np.float32))
    model = copy.deepcopy(tiny_lm)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    stats = ppo_update(model, opt, samples, LossConfig())
    assert stats["zero_advantage_samples"] == len(samples)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_stats_average_over_the_tokens_that_ran(tiny_lm, token_batch):
    adv = adv_for(token_batch)
    adv[: token_batch.traj_len[0]] = 0.0  # one sample is skipped
    samples = on_policy_samples(tiny_lm, token_batch, adv)
    model = copy.deepcopy(tiny_lm)
    stats = ppo_update(model, torch.optim.SGD(model.parameters(), lr=0.0), samples, LossConfig())
    assert stats["ratio"] == pytest.approx(1.0, abs=1e-4)  # on-policy, nothing moved
