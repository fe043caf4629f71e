"""LLDS: keep the likelihood of sampled responses from sliding down during GRPO-style updates.

Deng et al. 2025, "On GRPO Collapse in Search-R1: The Lazy Likelihood-Displacement Death Spiral"
(arXiv 2512.04220; the authors' code: github.com/vengdeng/LLDS-On-Group-Relative-Policy-
Optimization-Collapse-in-Search-R1). Lazy likelihood displacement: under group-relative updates
the log-likelihood of sampled responses, good ones included, stagnates and then falls; low
confidence inflates gradients and training collapses. The regulariser acts only where that
happens and only on the tokens that caused it:

    L_LLDS = (1 / N) * sum over units u in the preserving set whose likelihood fell,
                       i.e. sum_{t in u} (log pi_old(y_t) - log pi(y_t)) > 0,
                       of sum_{t in u} max(0, log pi_old(y_t) - log pi(y_t))

- pi_old is the policy that sampled (the PPO ratio's old logprobs), pi the one being trained;
- a unit is one turn's response (``trigger: turn``, the authors' action-level "A-gate", their
  best setting and default) or a whole trajectory (``trigger: trajectory``, the response-level
  "R-gate"; needs one sequence per trajectory);
- the preserving set is the tokens whose advantage is >= 0 (``nonnegative_only``, as in the
  authors' code): responses the update should not push down; off, every token counts;
- N is the number of response tokens of the mini-batch, the ``token-mean`` of the PPO loss.

The gate is computed without gradient; a token whose likelihood rose adds nothing even inside a
triggered unit. The trainer adds ``coef * L_LLDS`` to the PPO loss (``trainer.llds``; the
authors' script uses coef 0.2).
"""

from __future__ import annotations

import torch

from agentgym.trainers.options import LLDSSection


def llds_units(select: torch.Tensor, turn_ids: torch.Tensor, trigger: str) -> torch.Tensor:
    """[N] unit id of each selected response token of a micro-batch.

    ``select`` is the [B, L-1] mask of predicted response tokens and ``turn_ids`` the [N] flat
    turn index of each. ``trajectory``: the row (one trajectory per row in the full layout);
    ``turn``: the turn.
    """
    if trigger == "trajectory":
        return torch.nonzero(select, as_tuple=True)[0]
    if trigger == "turn":
        return turn_ids
    raise ValueError(f"trainer.llds.trigger={trigger!r} is not one of 'trajectory', 'turn'")


def llds_penalty(
    new_lp: torch.Tensor,
    old_lp: torch.Tensor,
    units: torch.Tensor,
    *,
    total_tokens: int,
    preserve: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """(L_LLDS of these [N] tokens divided by ``total_tokens``, stats).

    ``preserve`` [N] bool limits the gate and the penalty to those tokens (None: all).
    Stats: ``llds_units_fell`` (share of units whose preserved likelihood fell),
    ``llds_tokens`` (share of tokens penalised) and ``llds_penalty`` (mean penalty per token of
    this micro-batch).
    """
    if new_lp.numel() == 0:
        return new_lp.sum(), {}
    keep = torch.ones_like(new_lp) if preserve is None else preserve.to(new_lp.dtype)
    _, unit = torch.unique(units, return_inverse=True)
    n_units = int(unit.max()) + 1
    with torch.no_grad():
        drop = torch.zeros(n_units, dtype=new_lp.dtype, device=new_lp.device)
        drop.index_add_(0, unit, (old_lp - new_lp).detach() * keep)
        fell = drop > 0  # [U]
    gate = fell[unit].to(new_lp.dtype) * keep  # [N]
    hinge = torch.clamp(old_lp - new_lp, min=0.0) * gate
    loss = hinge.sum() / max(total_tokens, 1)
    stats = {
        "llds_units_fell": float(fell.float().mean()),
        "llds_tokens": float((hinge.detach() > 0).float().mean()),
        "llds_penalty": float(hinge.detach().mean()),
    }
    return loss, stats


def llds_term(
    section: LLDSSection,
    new_lp: torch.Tensor,
    old_lp: torch.Tensor,
    advantages: torch.Tensor,
    select: torch.Tensor,
    turn_ids: torch.Tensor,
    *,
    total_tokens: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``coef * L_LLDS`` of a micro-batch's [N] response tokens (see the module docstring)."""
    units = llds_units(select, turn_ids, section.trigger)
    preserve = advantages >= 0 if section.nonnegative_only else None
    loss, stats = llds_penalty(new_lp, old_lp, units, total_tokens=total_tokens, preserve=preserve)
    return section.coef * loss, stats


def check_layout(section: LLDSSection, layout: str) -> None:
    """Raise when the trajectory trigger meets a layout that splits trajectories into samples."""
    if section.coef > 0 and section.trigger == "trajectory" and layout != "full":
        raise ValueError(
            f"trainer.llds.trigger='trajectory' needs one sequence per trajectory, but the layout "
            f"is {layout!r}; set trainer.llds.trigger=turn (or trainer.layout=full)."
        )
