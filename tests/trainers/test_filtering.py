"""trainer.filter_groups: which groups take part in the update, and the metrics of the rest."""

from __future__ import annotations

import numpy as np
import pytest

from agentgym.credit import compute
from agentgym.data import Batch, Trajectory, Turn
from agentgym.trainers.filtering import group_return_std, keep_groups, select_trajectories
from agentgym.trainers.options import FilterGroupsSection


def traj(group: str, rewards: list[float], name: str) -> Trajectory:
    turns = tuple(
        Turn(f"o{i}", "a", "a", r, i == len(rewards) - 1, False, f"s{i}")
        for i, r in enumerate(rewards)
    )
    return Trajectory("t/T-v0", group, 0, group, turns, won=sum(rewards) > 0, traj_id=name)


def batch() -> Batch:
    # g0: returns 1, 0, 1 (std 0.577); g1: 0, 0 (tied); g2: 0.1 + 0.2 vs 0.3 (tied up to
    # rounding); g3: 2, 0 (std 1.414); g4: one trajectory
    return Batch(
        (
            traj("g0", [0, 1], "a"),
            traj("g1", [0], "b"),
            traj("g0", [0, 0, 0], "c"),
            traj("g2", [0.1, 0.2], "d"),
            traj("g3", [2.0], "e"),
            traj("g2", [0.3], "f"),
            traj("g0", [1], "g"),
            traj("g1", [0, 0], "h"),
            traj("g3", [0, 0], "i"),
            traj("g4", [1], "j"),
        )
    )


def test_group_std_counts_rounding_ties_and_singletons_as_zero() -> None:
    std, varies = group_return_std(batch())
    np.testing.assert_allclose(std, [np.std([1, 0, 1], ddof=1), 0, 0, np.sqrt(2), 0])
    assert varies.tolist() == [True, False, False, True, False]


def test_off_keeps_everything() -> None:
    keep, metrics = keep_groups(batch(), FilterGroupsSection())
    assert keep.all() and metrics["filter_groups_dropped"] == 0
    assert metrics["filter_groups_zero_variance"] == 3


def test_zero_variance_drops_tied_and_lone_groups() -> None:
    b = batch()
    keep, metrics = keep_groups(b, FilterGroupsSection(mode="zero_variance"))
    assert [t.traj_id for t, k in zip(b.trajectories, keep, strict=True) if k] == list("acegi")
    assert metrics == {
        "filter_groups_kept": 2.0,
        "filter_groups_dropped": 3.0,
        "filter_groups_zero_variance": 3.0,
        "filter_trajectories_dropped": 5.0,
    }


@pytest.mark.parametrize(
    ("fraction", "kept"), [(0.2, ["g3"]), (0.25, ["g0", "g3"]), (1.0, ["g0", "g3"])]
)
def test_top_fraction_keeps_the_most_varied_groups(fraction: float, kept: list[str]) -> None:
    b = batch()
    keep, metrics = keep_groups(b, FilterGroupsSection(mode="top_fraction", fraction=fraction))
    assert sorted({t.group_id for t, k in zip(b.trajectories, keep, strict=True) if k}) == kept
    assert metrics["filter_groups_kept"] == len(kept)
    assert metrics["filter_trajectories_dropped"] == 10 - sum(
        t.group_id in kept for t in b.trajectories
    )


def test_selected_sub_batch_keeps_each_turns_advantage() -> None:
    b = batch()
    adv = compute("gigpo", b)
    keep, _ = keep_groups(b, FilterGroupsSection(mode="zero_variance"))
    sub, sub_adv = select_trajectories(b, adv, keep)
    assert [t.traj_id for t in sub.trajectories] == list("acegi")
    # groups are credited independently: the sub-batch's own credit is the same
    np.testing.assert_allclose(sub_adv, compute("gigpo", sub), atol=1e-6)
    same, same_adv = select_trajectories(b, adv, np.ones(len(b), dtype=bool))
    assert same is b and same_adv is adv


def test_fraction_is_validated() -> None:
    with pytest.raises(ValueError, match=r"fraction=0.0 must lie in \(0, 1\]"):
        FilterGroupsSection(mode="top_fraction", fraction=0.0)
