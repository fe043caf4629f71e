"""LLDS (trainer.llds): the term on hand-made logprobs, and its gradient on a real model."""

from __future__ import annotations

import pytest
import torch

from agentgym.trainers.llds import check_layout, llds_penalty, llds_term, llds_units
from agentgym.trainers.loss import response_logprobs
from agentgym.trainers.options import LLDSSection
from agentgym.trainers.tensorize import collate, make_samples

# two trajectories, 3 tokens each (rows 0 and 1 of a micro-batch), turns 0-1 and 2-3
OLD = torch.tensor([-1.0, -2.0, -0.5, -1.0, -1.0, -3.0])
NEW = torch.tensor([-1.5, -1.9, -0.6, -0.2, -1.4, -2.5])
ROWS = torch.tensor([0, 0, 0, 1, 1, 1])
TURNS = torch.tensor([0, 0, 1, 2, 3, 3])


def test_only_units_whose_likelihood_fell_and_only_their_falling_tokens() -> None:
    # trajectory 0: total change -0.5 + 0.1 - 0.1 = -0.5 < 0 -> its falling tokens (0.5, 0.1)
    # trajectory 1: +0.8 - 0.4 + 0.5 = +0.9 > 0 -> nothing, though its second token fell 0.4
    new = NEW.clone().requires_grad_(True)
    loss, stats = llds_penalty(new, OLD, ROWS, total_tokens=10)
    assert float(loss.detach()) == pytest.approx((0.5 + 0.1) / 10)
    loss.backward()
    expected = torch.tensor([-1, 0, -1, 0, 0, 0]) / 10  # d/d new of max(0, old - new)
    torch.testing.assert_close(new.grad, expected.float())
    assert stats["llds_units_fell"] == pytest.approx(0.5)
    assert stats["llds_tokens"] == pytest.approx(2 / 6)


def test_turn_trigger_gates_each_response_on_its_own() -> None:
    # turns: 0 = tokens 0-1 (-0.4: fell), 1 = token 2 (-0.1: fell), 2 = token 3 (+0.8),
    # 3 = tokens 4-5 (+0.1: rose, its falling token 4 is left alone)
    loss, stats = llds_penalty(NEW, OLD, TURNS, total_tokens=6)
    assert float(loss) == pytest.approx((0.5 + 0.1) / 6)
    assert stats["llds_units_fell"] == pytest.approx(0.5)


def test_only_the_preserving_set_is_gated_and_held_up() -> None:
    # negative-advantage tokens (2 and 4) are left out of both the gate and the penalty:
    # trajectory 0 over tokens 0-1: -0.5 + 0.1 = -0.4 (fell) -> token 0's 0.5 only;
    # trajectory 1 over tokens 3 and 5: +0.8 + 0.5 (rose) -> nothing
    preserve = torch.tensor([True, True, False, True, False, True])
    new = NEW.clone().requires_grad_(True)
    loss, _ = llds_penalty(new, OLD, ROWS, total_tokens=6, preserve=preserve)
    assert float(loss.detach()) == pytest.approx(0.5 / 6)
    loss.backward()
    torch.testing.assert_close(new.grad, torch.tensor([-1.0, 0, 0, 0, 0, 0]) / 6)
    # a unit that fell only through a negative-advantage token is not triggered
    only_neg = torch.tensor([True, True, True, True, True, False])  # token 5 rose most
    _, stats = llds_penalty(NEW, OLD, ROWS, total_tokens=6, preserve=only_neg)
    assert stats["llds_units_fell"] == pytest.approx(0.5)


def test_term_reads_the_advantages_and_the_trigger() -> None:
    select = torch.ones(2, 3, dtype=torch.bool)
    adv = torch.tensor([1.0, 1.0, -1.0, 0.0, -2.0, 0.5])
    on = llds_term(
        LLDSSection(coef=2.0, trigger="trajectory"), NEW, OLD, adv, select, TURNS, total_tokens=6
    )
    off = llds_term(
        LLDSSection(coef=2.0, trigger="trajectory", nonnegative_only=False),
        NEW,
        OLD,
        adv,
        select,
        TURNS,
        total_tokens=6,
    )
    assert float(on[0]) == pytest.approx(2.0 * 0.5 / 6)
    assert float(off[0]) == pytest.approx(2.0 * (0.5 + 0.1) / 6)
    turn = llds_term(LLDSSection(coef=1.0), NEW, OLD, adv, select, TURNS, total_tokens=6)
    # turns: 0 = tokens 0-1 (fell), 1 = token 2 (negative advantage), 2 = token 3 (rose),
    # 3 = token 5 only (token 4 negative; rose)
    assert float(turn[0]) == pytest.approx(0.5 / 6)


def test_nothing_fell_nothing_added() -> None:
    loss, stats = llds_penalty(OLD + 0.1, OLD, ROWS, total_tokens=6)
    assert float(loss) == 0.0 and stats["llds_tokens"] == 0.0


def test_units_from_the_selection_mask() -> None:
    select = torch.tensor([[False, True, True], [True, False, True]])
    torch.testing.assert_close(
        llds_units(select, TURNS[:4], "trajectory"), torch.tensor([0, 0, 1, 1])
    )
    torch.testing.assert_close(llds_units(select, TURNS[:4], "turn"), TURNS[:4])
    with pytest.raises(ValueError, match="trigger='token'"):
        llds_units(select, TURNS[:4], "token")


def test_config_and_layout_checks() -> None:
    with pytest.raises(ValueError, match=r"trainer.llds.coef=-0.1 must be >= 0"):
        LLDSSection(coef=-0.1)
    check_layout(LLDSSection(coef=0.1, trigger="trajectory"), "full")
    check_layout(LLDSSection(coef=0.1), "window")  # the default trigger is the turn
    check_layout(LLDSSection(coef=0.0, trigger="trajectory"), "window")  # off: any layout
    with pytest.raises(ValueError, match="set trainer.llds.trigger=turn"):
        check_layout(LLDSSection(coef=0.1, trigger="trajectory"), "window")


def test_gradient_on_a_model_pulls_up_only_the_trajectory_whose_likelihood_fell(
    tiny_lm, token_batch
) -> None:
    # a constructed batch: the rollout logprobs of trajectory 0 sit 0.3 above the model's now
    # (its likelihood fell since sampling), those of the others 0.3 below (it rose)
    samples = make_samples(token_batch, torch.zeros(token_batch.num_turns).numpy(), "full")
    tb = collate(samples)
    select = tb.loss_mask[:, 1:]
    with torch.no_grad():
        now = response_logprobs(tiny_lm, tb).logprobs
    rows = llds_units(select, tb.turn_ids[:, 1:][select], "trajectory")
    old = torch.where(rows == 0, now + 0.3, now - 0.3)
    n = int(select.sum())

    tiny_lm.zero_grad()
    new = response_logprobs(tiny_lm, tb).logprobs
    loss, stats = llds_penalty(new, old, rows, total_tokens=n)
    loss.backward()
    got = {k: p.grad.clone() for k, p in tiny_lm.named_parameters()}
    assert stats["llds_units_fell"] == pytest.approx(1 / len(samples))
    assert float(loss.detach()) == pytest.approx(0.3 * int((rows == 0).sum()) / n, rel=1e-4)

    # the same gradient another way: -(1/n) * grad of trajectory 0's summed log-likelihood
    tiny_lm.zero_grad()
    lp = response_logprobs(tiny_lm, tb).logprobs
    (-lp[rows == 0].sum() / n).backward()
    for k, p in tiny_lm.named_parameters():
        torch.testing.assert_close(got[k], p.grad, rtol=1e-4, atol=1e-6)

    # and one SGD step along it raises trajectory 0's likelihood
    with torch.no_grad():
        for k, p in tiny_lm.named_parameters():
            p -= 0.5 * got[k]
        after = response_logprobs(tiny_lm, tb).logprobs
    assert float(after[rows == 0].sum()) > float(now[rows == 0].sum())


def shifted_samples(model, batch, shift_first: float, shift_rest: float):
    """Full-layout samples with zero advantages whose rollout logprobs are the model's own
    plus ``shift_first`` (trajectory 0) or ``shift_rest`` (the others)."""
    out = []
    for i, s in enumerate(make_samples(batch, torch.zeros(batch.num_turns).numpy(), "full")):
        with torch.no_grad():
            lp = response_logprobs(model, collate([s])).logprobs.tolist()
        old = list(s.old_logprobs)
        idx = [j for j, m in enumerate(s.loss_mask) if m and j > 0]
        for j, v in zip(idx, lp, strict=True):
            old[j] = v + (shift_first if i == 0 else shift_rest)
        out.append(type(s)(s.input_ids, s.loss_mask, old, s.advantages, s.turn_ids))
    return out


def captured_update_grads(model, samples, llds):
    from agentgym.trainers.loss import LossConfig
    from agentgym.trainers.update import ppo_update

    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    captured = {}

    def step(*a, **k):
        captured.update({n: p.grad.clone() for n, p in model.named_parameters()})

    opt.step = step
    stats = ppo_update(
        model, opt, samples, LossConfig(), micro_batch_tokens=64, max_grad_norm=1e9, llds=llds
    )
    return captured, stats


def test_ppo_update_adds_the_term_only_when_asked(tiny_lm, token_batch) -> None:
    samples = shifted_samples(tiny_lm, token_batch, 0.3, -0.3)
    grads, stats = captured_update_grads(tiny_lm, samples, None)
    assert all(float(g.abs().max()) == 0.0 for g in grads.values())  # zero advantages
    assert "llds_penalty" not in stats

    grads, stats = captured_update_grads(
        tiny_lm, samples, LLDSSection(coef=0.5, trigger="trajectory")
    )
    assert stats["llds_units_fell"] > 0
    # expected: 0.5 * d/dθ of -(1/n) * sum of trajectory 0's response logprobs
    tiny_lm.zero_grad()
    first = collate([samples[0]])
    n = sum(sum(s.loss_mask[1:]) for s in samples)
    (-0.5 * response_logprobs(tiny_lm, first).logprobs.sum() / n).backward()
    for k, p in tiny_lm.named_parameters():
        torch.testing.assert_close(grads[k], p.grad, rtol=1e-4, atol=1e-7)
