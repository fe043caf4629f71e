"""KL-to-reference variants: expected gradients against closed forms on a tiny categorical.

For a categorical π_θ = softmax(θ) over 5 tokens and a fixed reference, the expected gradient of
each variant is Σ_a π(a) ∇_θ loss(a) with the sampling weight π(a) held fixed (the sampled
token is data, as in training). It must equal the analytic gradient the docs state.
"""

from __future__ import annotations

import pytest
import torch

from agentgym.trainers.kl import kl_terms
from agentgym.trainers.loss import LossConfig, ppo_loss

V = 5
BETA = 0.7


def setup(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(V, generator=g, dtype=torch.float64)
    ref_logp = torch.log_softmax(torch.randn(V, generator=g, dtype=torch.float64), -1)
    return theta, ref_logp


def expected_gradient(estimator: str, placement: str, seed: int = 0) -> torch.Tensor:
    """Σ_a π(a) ∇θ ppo_loss(token a), advantage 0, on-policy (old = new, detached)."""
    theta, ref_logp = setup(seed)
    theta = theta.clone().requires_grad_(True)
    logp = torch.log_softmax(theta, -1)
    cfg = LossConfig(kl_coef=BETA, kl_estimator=estimator, kl_in=placement)
    loss, _ = ppo_loss(
        logp,  # all V tokens, one per position
        logp.detach(),
        torch.zeros(V, dtype=torch.float64),
        torch.arange(V),
        cfg,
        total_tokens=1,  # per-token loss summed: weighted below by π(a)
        total_turns=V,
        ref_lp=ref_logp,
        token_weights=logp.exp().detach(),
    )
    (grad,) = torch.autograd.grad(loss, theta)
    return grad


def kl(p_logp: torch.Tensor, q_logp: torch.Tensor) -> torch.Tensor:
    return (p_logp.exp() * (p_logp - q_logp)).sum()


def analytic(which: str, seed: int = 0) -> torch.Tensor:
    theta, ref_logp = setup(seed)
    theta = theta.clone().requires_grad_(True)
    logp = torch.log_softmax(theta, -1)
    forward, reverse = kl(logp, ref_logp), kl(ref_logp, logp)  # KL(π‖ref), KL(ref‖π)
    value = {"forward": forward, "reverse": reverse, "difference": forward - reverse}[which]
    (grad,) = torch.autograd.grad(BETA * value, theta)
    return grad


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("estimator", "placement", "target"),
    [
        ("k2", "loss", "forward"),  # ½ r² in the loss: ∇KL(π‖ref)
        ("k3", "loss", "reverse"),  # k3 in the loss: ∇KL(ref‖π), the review's point
        ("k1", "reward", "forward"),  # r as a reward penalty: ∇KL(π‖ref) by REINFORCE
        ("k3", "reward", "difference"),  # k3 as a penalty: ∇KL(π‖ref) − ∇KL(ref‖π)
    ],
)
def test_expected_kl_gradient_matches_the_closed_form(estimator, placement, target, seed):
    torch.testing.assert_close(
        expected_gradient(estimator, placement, seed), analytic(target, seed), atol=1e-10, rtol=1e-8
    )


def test_k3_in_the_loss_is_not_the_forward_kl_gradient():
    assert (expected_gradient("k3", "loss") - analytic("forward")).abs().max() > 1e-3


@pytest.mark.parametrize(("estimator", "placement"), [("k1", "loss"), ("k2", "reward")])
def test_variants_without_a_kl_gradient_are_refused(estimator, placement):
    with pytest.raises(ValueError, match="kl"):
        LossConfig(kl_coef=0.1, kl_estimator=estimator, kl_in=placement)


def test_estimators_are_unbiased_values_of_the_forward_kl():
    theta, ref_logp = setup()
    logp = torch.log_softmax(theta, -1)
    p = logp.exp()
    for est in ("k1", "k3"):
        value = (p * kl_terms(logp, ref_logp, est)).sum()
        torch.testing.assert_close(value, kl(logp, ref_logp))


def test_the_log_ratio_is_clamped():
    # a token the reference finds impossible: exp of the raw ratio would overflow float32
    new = torch.tensor([0.0], requires_grad=True)
    ref = torch.tensor([-1e4])
    for est in ("k1", "k2", "k3"):
        value = kl_terms(new, ref, est)
        assert torch.isfinite(value).all()
        value.sum().backward()
        assert torch.isfinite(new.grad).all()
        new.grad = None
