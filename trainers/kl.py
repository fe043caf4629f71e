"""KL-to-reference penalties: per-token estimators and where they enter the objective.

Let r = log π(a) − log π_ref(a) for a token a sampled from π (the log-ratio, clamped to
±``LOG_RATIO_CLAMP`` so exp never overflows; the clamp's gradient is 0 outside the band). Three
per-token estimators (Schulman 2020, "Approximating KL divergence"):

- k1 = r; unbiased for KL(π‖ref), high variance, can be negative;
- k2 = r²/2; biased as a value (it estimates ½E[r²]);
- k3 = exp(−r) − 1 + r = ref/π − 1 − log(ref/π); unbiased for KL(π‖ref), never negative.

Their expected gradients differ from their values. Sampling is not differentiated, so a term f(a)
gives E_π[∇f(a)] in the loss, and as a penalty on the reward (the advantage A − β·f(a), f
detached) the REINFORCE gradient β·E_π[f(a) ∇log π(a)]. On a categorical, with ∇KL(π‖ref) =
E_π[r ∇log π] and ∇KL(ref‖π) = −E_ref[∇log π]:

=========  ==========================  ==========================================
estimator  ``kl_in="loss"``            ``kl_in="reward"``
=========  ==========================  ==========================================
k1         0 (refused: no signal)      ∇KL(π‖ref)
k2         ∇KL(π‖ref)  (default)       refused (not the gradient of a divergence)
k3         ∇KL(ref‖π)  (GRPO's form)   ∇KL(π‖ref) − ∇KL(ref‖π) (≈ 0 near the ref)
=========  ==========================  ==========================================

So the low-variance choice with the gradient of KL(π‖ref) is k2 in the loss; k1 in the reward
is the classic RLHF penalty; k3 in the loss (DeepSeekMath's GRPO) pulls along the reverse KL.
These hold on-policy (the first optimizer step of an update); later PPO steps are off by the
ratio π/π_old, as the surrogate is. ``tests/trainers/test_kl.py`` checks every cell.
"""

from __future__ import annotations

from typing import Literal

import torch

KLEstimator = Literal["k1", "k2", "k3"]
KLPlacement = Literal["loss", "reward"]
ESTIMATORS = ("k1", "k2", "k3")
PLACEMENTS = ("loss", "reward")
LOG_RATIO_CLAMP = 20.0
"""|log π − log π_ref| is clamped to this (exp(20) ≈ 5e8 stays finite in float32)."""

_REFUSED = {
    ("k1", "loss"): "k1 in the loss has expected gradient 0 (E_π[∇log π] = 0)",
    ("k2", "reward"): "k2 as a reward penalty is not the gradient of a divergence",
}


def check_kl_choice(estimator: str, placement: str) -> None:
    """Raise a ValueError for an unknown or refused (estimator, placement) pair."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"kl_estimator={estimator!r}; use one of {ESTIMATORS}")
    if placement not in PLACEMENTS:
        raise ValueError(f"kl_in={placement!r}; use one of {PLACEMENTS}")
    why = _REFUSED.get((estimator, placement))
    if why:
        raise ValueError(
            f"kl_estimator={estimator!r} with kl_in={placement!r}: {why}. Use k2 or k3 in the "
            "loss, or k1 or k3 in the reward (see agentgym.trainers.kl)."
        )


def kl_terms(new_lp: torch.Tensor, ref_lp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimator values [N] of KL(π‖ref) from log π [N] and log π_ref [N]."""
    r = torch.clamp(new_lp - ref_lp, -LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    if estimator == "k1":
        return r
    if estimator == "k2":
        return 0.5 * r * r
    if estimator == "k3":
        return torch.exp(-r) - 1.0 + r
    raise ValueError(f"kl_estimator={estimator!r}; use one of {ESTIMATORS}")
