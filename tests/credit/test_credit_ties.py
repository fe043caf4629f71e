"""Returns equal up to float rounding are ties (advantage exactly 0), not noise divided by eps,
and the turn_rloo baseline when a trajectory has no peer at its turn index."""

from __future__ import annotations

import numpy as np
import pytest
from credit_batches import example_b, make_traj

from agentgym.credit import compute
from agentgym.data import Batch

F32_TENTH = float(np.float32(0.1))  # an env that returns float32 rewards


def tie_batch(split: list[float], whole: float, n_whole: int = 2) -> Batch:
    """One group: a trajectory earning ``split`` turn by turn, ``n_whole`` earning ``whole`` at
    once; the returns are equal up to rounding, never exactly (asserted)."""
    trajs = [make_traj("g", [(f"s{i}", "a", r) for i, r in enumerate(split)], traj_id="split")]
    trajs += [make_traj("g", [("s0", "b", whole)], traj_id=f"w{k}") for k in range(n_whole)]
    batch = Batch(tuple(trajs))
    assert batch.returns[0] != batch.returns[1]
    assert batch.returns[0] == pytest.approx(batch.returns[1], rel=1e-6)
    return batch


TIES = [
    ([0.1, 0.2], 0.3),  # float64: 0.30000000000000004 vs 0.3
    ([F32_TENTH] * 3, float(np.float32(0.3))),  # float32 rewards: 7e-9 apart
    ([F32_TENTH] * 7, float(np.float32(0.7))),
]
STD_ESTIMATORS = [
    ("grpo", {}),
    ("grpo", {"eps": 1e-12}),
    ("gigpo", {"gamma": 1.0}),  # undiscounted: the step returns tie as well
    ("gigpo", {"gamma": 1.0, "eps": 1e-9}),
    ("salt", {"base_norm": "std"}),
]


@pytest.mark.parametrize(("split", "whole"), TIES)
@pytest.mark.parametrize(("name", "options"), STD_ESTIMATORS, ids=str)
def test_returns_equal_up_to_rounding_are_a_tie(split, whole, name, options) -> None:
    adv = compute(name, tie_batch(split, whole), options)
    np.testing.assert_array_equal(adv, 0.0)


@pytest.mark.parametrize("name", ["grpo", "gigpo"])
def test_a_real_difference_just_above_rounding_still_counts(name: str) -> None:
    batch = tie_batch([0.1, 0.2], 0.3)  # control: the same layout with a real gap of 1e-4
    gap = Batch((batch.trajectories[0], *(make_traj("g", [("s0", "b", 0.3001)]) for _ in range(2))))
    adv = compute(name, gap, {"gamma": 1.0} if name == "gigpo" else {})
    assert adv[0] < -0.5 and adv[-1] > 0.5


def test_gigpo_step_returns_tied_by_rounding_give_zero() -> None:
    # two trajectories reach anchor s1 and then earn 0.1 + 0.2 or 0.3: the same future
    a = make_traj("g", [("s0", "x", 0.0), ("s1", "y", 0.1), ("s2", "z", 0.2)])
    b = make_traj("g", [("s0", "x", 0.0), ("s1", "y", 0.3)])
    adv = compute("gigpo", Batch((a, b)), {"gamma": 1.0, "eps": 1e-12})
    np.testing.assert_array_equal(adv, 0.0)


# ---- turn_rloo: the baseline of a trajectory with no peer at its turn index ----------------


def test_turn_rloo_alone_at_a_turn_falls_back_to_the_leave_one_out_return() -> None:
    # Example B with k3 cut to two turns: k1 is alone at turn 3 (index 2); its G there is 1.1
    # and the other trajectories' whole returns are k2: 0.6 and k3: 0.6.
    batch = example_b(only_k1_at_turn_3=True)
    adv = compute("turn_rloo", batch)
    assert adv[2] == pytest.approx(1.1 - (0.6 + 0.6) / 2, abs=1e-6)
    # with a discount the baseline is the others' discounted whole returns G_{j,0}
    adv = compute("turn_rloo", batch, {"gamma": 0.5})
    assert adv[2] == pytest.approx(1.1 - ((0.0 + 0.5 * 0.6) + (0.3 + 0.5 * 0.3)) / 2, abs=1e-6)


def test_turn_rloo_lone_turn_advantage_does_not_depend_on_its_own_return_offset() -> None:
    # Adding a constant c to every reward of every trajectory shifts each G_{i,t} by
    # c * (turns left) -- a baseline that ignores the peers would pass c straight through.
    batch = example_b(only_k1_at_turn_3=True)
    shifted = Batch(
        tuple(
            make_traj("B", [(t.state_key, "act", t.reward + 5.0) for t in traj.turns])
            for traj in batch.trajectories
        )
    )
    lone = compute("turn_rloo", shifted)[2]
    assert abs(lone) < 5.0  # raw return-to-go would be 1.1 + 5


def test_turn_rloo_group_of_one_gives_zero_like_every_other_estimator() -> None:
    alone = Batch((make_traj("g", [("s0", "a", 0.5), ("s1", "b", 1.0)]),))
    for name in ("grpo", "rloo", "turn_rloo", "gigpo", "salt"):
        np.testing.assert_array_equal(compute(name, alone), 0.0)
