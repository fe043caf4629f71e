"""Config sections of the optional stabilisers and reward shaping (no torch import here).

- ``trainer.llds`` (:class:`LLDSSection`): the LLDS likelihood-preserving term,
  implemented in :mod:`agentgym.trainers.llds`;
- ``trainer.filter_groups`` (:class:`FilterGroupsSection`): drop groups whose returns do not
  vary before the update, :mod:`agentgym.trainers.filtering`;
- ``reward.tool_efficiency`` (:class:`ToolEfficiencySection`): OTC's reward for reaching the
  answer with few tool calls, :mod:`agentgym.trainers.tool_efficiency`.

All are off by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentgym.config import param


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass(frozen=True)
class LLDSSection:
    coef: float = param(
        0.0,
        "Weight of the LLDS term (0: off; the authors use 0.2): coef * token-mean of "
        "max(0, old logprob - new logprob) over the tokens of units whose likelihood fell "
        "below the rollout's (Deng et al. 2025, lazy likelihood displacement).",
    )
    trigger: Literal["turn", "trajectory"] = param(
        "turn",
        "Unit whose likelihood must have fallen for its tokens to be held up: each turn's "
        "response (the paper's action-level gate, its best) or the whole trajectory (its "
        "response-level gate; needs trainer.layout full).",
    )
    nonnegative_only: bool = param(
        True,
        "Gate and regularise only tokens whose advantage is >= 0 (the paper's preserving set: "
        "responses the update should not push down); false: every token.",
    )

    def __post_init__(self) -> None:
        _check(self.coef >= 0, f"trainer.llds.coef={self.coef!r} must be >= 0")


@dataclass(frozen=True)
class FilterGroupsSection:
    mode: Literal["off", "zero_variance", "top_fraction"] = param(
        "off",
        "Before the update: 'zero_variance' drops groups whose returns are all equal (DAPO's "
        "dynamic-sampling filter, without re-sampling); 'top_fraction' keeps the groups with the "
        "largest return std (RAGEN StarPO-S), never one of zero variance.",
    )
    fraction: float = param(
        0.25, "In 'top_fraction' mode, the share of groups kept (rounded up), e.g. 0.25."
    )

    def __post_init__(self) -> None:
        _check(
            0 < self.fraction <= 1,
            f"trainer.filter_groups.fraction={self.fraction!r} must lie in (0, 1]",
        )


@dataclass(frozen=True)
class ToolEfficiencySection:
    mode: Literal["off", "group", "fixed"] = param(
        "off",
        "OTC reward for tool envs: the trajectory's rewards times alpha * r_tool(m calls). "
        "'group' (OTC-GRPO): r_tool peaks at n = fewest calls of a winning trajectory of the "
        "group; 'fixed' (OTC-PPO): r_tool = cos(m*pi / (2m + c)), fewer is better.",
    )
    alpha: float = param(1.0, "Scale of the shaped reward: r = alpha * r_tool * r.")
    c: float = param(
        1.0, "Smoothing constant of cos(m*pi / (2m + c)) (larger: gentler decay with m)."
    )

    def __post_init__(self) -> None:
        _check(self.alpha > 0, f"reward.tool_efficiency.alpha={self.alpha!r} must be > 0")
        _check(self.c > 0, f"reward.tool_efficiency.c={self.c!r} must be > 0")
