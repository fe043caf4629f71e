"""The three optional sections in the training config: defaults off, help lines, overrides."""

from __future__ import annotations

import dataclasses

import pytest

from agentgym.config import ConfigError, help_of, load
from agentgym.trainers.config import RewardSection, TrainConfig, TrainerSection
from agentgym.trainers.options import FilterGroupsSection, LLDSSection, ToolEfficiencySection

QUICKSTART = "configs/quickstart.yaml"


@pytest.mark.parametrize(
    ("owner", "name", "section"),
    [
        (TrainerSection, "llds", LLDSSection),
        (TrainerSection, "filter_groups", FilterGroupsSection),
        (RewardSection, "tool_efficiency", ToolEfficiencySection),
    ],
)
def test_sections_are_documented_and_off_by_default(owner, name, section) -> None:
    assert help_of(owner, name)
    for field in dataclasses.fields(section):
        assert help_of(section, field.name), f"{section.__name__}.{field.name} has no help line"
    default = getattr(owner(), name)
    assert default == section()
    field, off = ("coef", 0.0) if name == "llds" else ("mode", "off")
    assert getattr(default, field) == off


def test_dotted_overrides_reach_the_sections() -> None:
    cfg = load(
        TrainConfig,
        QUICKSTART,
        [
            "trainer.llds.coef=0.1",
            "trainer.llds.trigger=turn",
            "trainer.filter_groups.mode=top_fraction",
            "trainer.filter_groups.fraction=0.5",
            "reward.tool_efficiency.mode=group",
            "reward.tool_efficiency.c=2",
            "credit.estimator=hgpo",
        ],
    )
    assert cfg.trainer.llds == LLDSSection(coef=0.1, trigger="turn")
    assert cfg.trainer.filter_groups == FilterGroupsSection(mode="top_fraction", fraction=0.5)
    assert cfg.reward.tool_efficiency == ToolEfficiencySection(mode="group", c=2.0)


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        ("trainer.llds.coeff=0.1", ConfigError, r"Did you mean 'coef'"),
        ("trainer.llds.trigger=token", ConfigError, r"'token' is not one of"),
        ("trainer.filter_groups.mode=drop", ConfigError, r"'drop' is not one of"),
        ("trainer.filter_groups.fraction=1.5", ValueError, r"fraction=1.5 must lie in \(0, 1\]"),
        ("reward.tool_efficiency.alpha=0", ValueError, r"alpha=0.0 must be > 0"),
    ],
)
def test_bad_values_are_named(override: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        load(TrainConfig, QUICKSTART, [override])
