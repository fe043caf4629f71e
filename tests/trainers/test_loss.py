import pytest
import torch

from agentgym.trainers.loss import LossConfig, ppo_loss


def test_on_policy_loss_is_minus_mean_advantage():
    lp = torch.log(torch.tensor([0.5, 0.2, 0.9]))
    adv = torch.tensor([1.0, -1.0, 2.0])
    loss, stats = ppo_loss(
        lp, lp, adv, torch.tensor([0, 0, 1]), LossConfig(), total_tokens=3, total_turns=2
    )
    assert loss.item() == pytest.approx(-(1 - 1 + 2) / 3)
    assert stats["clipfrac"] == 0.0 and stats["ratio"] == pytest.approx(1.0)


def test_clipping_stops_the_gradient_past_the_trust_region():
    new = torch.tensor([0.0], requires_grad=True)
    old = torch.log(torch.tensor([0.5]))  # ratio 2 > 1.2
    loss, stats = ppo_loss(
        new,
        old,
        torch.tensor([1.0]),
        torch.tensor([0]),
        LossConfig(),
        total_tokens=1,
        total_turns=1,
    )
    loss.backward()
    assert new.grad.item() == 0.0 and stats["clipfrac"] == 1.0
    # with a negative advantage the unclipped (larger) penalty keeps its gradient
    new.grad = None
    loss, _ = ppo_loss(
        new,
        old,
        torch.tensor([-1.0]),
        torch.tensor([0]),
        LossConfig(),
        total_tokens=1,
        total_turns=1,
    )
    loss.backward()
    assert new.grad.item() == pytest.approx(2.0)


def test_seq_mean_weights_turns_equally():
    lp = torch.zeros(4)
    adv = torch.tensor([1.0, 1.0, 1.0, 4.0])
    turns = torch.tensor([0, 0, 0, 1])
    cfg = LossConfig(aggregation="seq-mean")
    loss, _ = ppo_loss(lp, lp, adv, turns, cfg, total_tokens=4, total_turns=2)
    assert loss.item() == pytest.approx(-(1.0 + 4.0) / 2)
    tok, _ = ppo_loss(lp, lp, adv, turns, LossConfig(), total_tokens=4, total_turns=2)
    assert tok.item() == pytest.approx(-7.0 / 4)


def test_k3_kl_is_zero_at_the_reference_and_positive_elsewhere():
    new = torch.log(torch.tensor([0.3, 0.6]))
    cfg = LossConfig(kl_coef=1.0)
    zero_adv = torch.zeros(2)
    loss, stats = ppo_loss(
        new, new, zero_adv, torch.tensor([0, 1]), cfg, total_tokens=2, total_turns=2, ref_lp=new
    )
    assert stats["kl_ref"] == pytest.approx(0.0) and loss.item() == pytest.approx(0.0)
    ref = torch.log(torch.tensor([0.5, 0.5]))
    _, stats = ppo_loss(
        new, new, zero_adv, torch.tensor([0, 1]), cfg, total_tokens=2, total_turns=2, ref_lp=ref
    )
    r = ref - new
    assert stats["kl_ref"] == pytest.approx(float((torch.exp(r) - r - 1).mean()))
    assert stats["kl_ref"] > 0


def test_entropy_bonus_lowers_the_loss():
    lp = torch.zeros(2)
    ent = torch.tensor([1.0, 3.0])
    base, _ = ppo_loss(
        lp,
        lp,
        torch.zeros(2),
        torch.tensor([0, 1]),
        LossConfig(),
        total_tokens=2,
        total_turns=2,
        entropy=ent,
    )
    bonus, _ = ppo_loss(
        lp,
        lp,
        torch.zeros(2),
        torch.tensor([0, 1]),
        LossConfig(entropy_coef=0.5),
        total_tokens=2,
        total_turns=2,
        entropy=ent,
    )
    assert bonus.item() == pytest.approx(base.item() - 0.5 * 2.0)


def test_clipfrac_counts_exactly_the_tokens_whose_gradient_the_clip_removes():
    g = torch.Generator().manual_seed(0)
    old = torch.log(torch.rand(400, generator=g) * 0.9 + 0.05)
    new = (old + torch.randn(400, generator=g) * 0.4).requires_grad_(True)
    adv = torch.randn(400, generator=g)
    loss, stats = ppo_loss(
        new,
        old,
        adv,
        torch.zeros(400, dtype=torch.long),
        LossConfig(),
        total_tokens=1,
        total_turns=1,
    )
    (grad,) = torch.autograd.grad(loss, new)
    no_gradient = float((grad == 0).float().mean())
    assert 0.05 < no_gradient < 0.95  # both kinds of tokens are present
    assert stats["clipfrac"] == pytest.approx(no_gradient)


def test_a_ratio_outside_the_band_on_the_unclipped_side_is_not_clipped():
    old = torch.log(torch.tensor([0.25, 0.5]))
    new = torch.log(torch.tensor([0.5, 0.25]))  # ratios 2 and 0.5
    adv = torch.tensor([-1.0, 1.0])  # the min keeps the unclipped term for both
    _, stats = ppo_loss(
        new, old, adv, torch.tensor([0, 1]), LossConfig(), total_tokens=2, total_turns=2
    )
    assert stats["clipfrac"] == 0.0
