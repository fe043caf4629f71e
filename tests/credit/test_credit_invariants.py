"""Properties of the estimators (the end of docs/credit.md), checked with hypothesis."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from credit_batches import make_traj, random_batch, select_group
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgym.credit import compute
from agentgym.data import Batch

FAST = settings(max_examples=40, deadline=None)
STATES = ("s0", "s1", "hub")
ACTIONS = ("a", "b")

rewards = st.floats(-2, 2, allow_nan=False).map(lambda x: round(x, 3))
steps = st.lists(
    st.tuples(st.sampled_from(STATES), st.sampled_from(ACTIONS), rewards), min_size=1, max_size=5
)
groups = st.lists(steps, min_size=2, max_size=6)

SALT_OPTIONS: list[dict[str, Any]] = [
    {"base": base, "base_norm": norm, "count": count, "edge_key": key}
    for base, norm in (("grpo", "mean_norm"), ("grpo", "std"), ("rloo", "mean_norm"))
    for count in ("occurrence", "trajectory")
    for key in ("transition", "state_action")
]
ZERO_WHEN_EQUAL: list[tuple[str, dict[str, Any]]] = [
    ("grpo", {}),
    ("grpo", {"norm": "mean_norm"}),
    ("rloo", {}),
    *(("salt", o) for o in SALT_OPTIONS),
]


def group_batch(trajs: list, group: str = "g", *, won: bool = False) -> Batch:
    return Batch(tuple(make_traj(group, s, won=won, reached="s0") for s in trajs))


@FAST
@given(groups, st.floats(-3, 3, allow_nan=False))
def test_equal_returns_give_zero(trajs: list, ret: float) -> None:
    same = [[(s, a, 0.0) for s, a, _ in t[:-1]] + [(t[-1][0], t[-1][1], ret)] for t in trajs]
    batch = group_batch(same)
    for name, options in ZERO_WHEN_EQUAL:
        np.testing.assert_allclose(compute(name, batch, options), 0.0, atol=1e-6)


@FAST
@given(groups)
def test_salt_edge_taken_once_by_every_trajectory_gets_zero(trajs: list) -> None:
    # every trajectory starts start -begin-> hub; "start" never comes back
    batch = group_batch([[("start", "begin", 0.0), ("hub", "a", 0.0), *t] for t in trajs])
    first = batch.traj_offset
    for options in SALT_OPTIONS:
        np.testing.assert_allclose(compute("salt", batch, options)[first], 0.0, atol=1e-5)


@FAST
@given(groups)
def test_salt_edge_of_one_trajectory_keeps_its_base(trajs: list) -> None:
    trajs = [[("s0", "only-mine", 0.0), *trajs[0]], *trajs[1:]]
    batch = group_batch(trajs)
    for options in SALT_OPTIONS:
        base_name = "rloo" if options["base"] == "rloo" else "grpo"
        base = compute(
            base_name, batch, {} if base_name == "rloo" else {"norm": options["base_norm"]}
        )
        assert compute("salt", batch, options)[0] == pytest.approx(base[0], abs=1e-5)


@FAST
@given(groups, st.floats(0.1, 10))
def test_salt_is_linear_in_the_base(trajs: list, scale: float) -> None:
    batch = group_batch(trajs)
    big = group_batch([[(s, a, r * scale) for s, a, r in t] for t in trajs])
    n = len(trajs)
    for count in ("occurrence", "trajectory"):
        grpo_base = compute("salt", batch, {"count": count})
        rloo_base = compute("salt", batch, {"base": "rloo", "count": count})
        np.testing.assert_allclose(rloo_base, grpo_base * n / (n - 1), rtol=1e-4, atol=1e-5)
        scaled = compute("salt", big, {"count": count})
        np.testing.assert_allclose(scaled, grpo_base * scale, rtol=1e-4, atol=1e-4)


@FAST
@given(groups, st.sampled_from(["std", "mean_norm"]))
def test_gigpo_singleton_anchors_give_the_episode_advantage(trajs: list, norm: str) -> None:
    unique = [[(f"{i}-{j}", a, r) for j, (_, a, r) in enumerate(t)] for i, t in enumerate(trajs)]
    batch = group_batch(unique)
    gigpo = compute("gigpo", batch, {"norm": norm})
    np.testing.assert_allclose(gigpo, compute("grpo", batch, {"norm": norm}), atol=1e-6)


@FAST
@given(st.lists(st.integers(1, 6), min_size=2, max_size=6).filter(lambda ls: len(set(ls)) > 1))
def test_gigpo_all_winners_prefer_the_shorter_path(lengths: list[int]) -> None:
    trajs = [[("s0", "a", 0.0)] * (n - 1) + [("s0", "a", 1.0)] for n in lengths]
    batch = group_batch(trajs, won=True)
    np.testing.assert_allclose(compute("grpo", batch), 0.0, atol=1e-6)  # A_E = 0
    adv = compute("gigpo", batch)  # = A_S; every turn is in anchor s0
    first = adv[batch.traj_offset]
    assert np.abs(adv).max() > 1e-3
    shortest, longest = int(np.argmin(lengths)), int(np.argmax(lengths))
    assert first[shortest] > first[longest]


@FAST
@given(
    st.integers(2, 6),
    st.integers(1, 5),
    st.lists(rewards, min_size=30, max_size=30),
    st.sampled_from([1.0, 0.9, 0.0]),
)
def test_turn_rloo_equal_counts_is_scaled_centring(
    n: int, length: int, rs: list, gamma: float
) -> None:
    trajs = [[(f"s{t}", "a", rs[i * length + t]) for t in range(length)] for i in range(n)]
    batch = group_batch(trajs)
    adv = compute("turn_rloo", batch, {"gamma": gamma}).reshape(n, length)
    g = np.zeros((n, length))
    for t in reversed(range(length)):
        g[:, t] = np.array([row[t][2] for row in trajs]) + (
            gamma * g[:, t + 1] if t + 1 < length else 0
        )
    np.testing.assert_allclose(adv, n / (n - 1) * (g - g.mean(axis=0)), rtol=1e-4, atol=1e-5)


ESTIMATOR_CASES: list[tuple[str, dict[str, Any]]] = [
    ("grpo", {}),
    ("grpo", {"norm": "mean_norm"}),
    ("rloo", {}),
    ("turn_rloo", {"gamma": 0.9}),
    ("gigpo", {}),
    ("gigpo", {"similarity_threshold": 0.5}),
    *(("salt", o) for o in SALT_OPTIONS[::3]),
    ("hgpo", {}),
    ("hgpo", {"norm": "mean_norm", "base_group": True, "history_length": 3}),
    ("graphgpo", {}),
    ("graphgpo", {"normalize_distance": True, "norm": "mean_norm"}),
]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("name", "options"), ESTIMATOR_CASES, ids=str)
def test_groups_never_mix(name: str, options: dict[str, Any], seed: int) -> None:
    # groups interleaved, sharing state keys and actions; each must equal the group alone
    batch = random_batch(seed, n_groups=5, text_keys=seed % 2 == 1)
    together = compute(name, batch, options)
    for index, group_id in enumerate(batch.group_ids):
        alone = compute(name, select_group(batch, group_id), options)
        np.testing.assert_allclose(together[batch.turn_group == index], alone, atol=1e-6)


@pytest.mark.parametrize(("name", "options"), ESTIMATOR_CASES, ids=str)
def test_group_of_one_trajectory(name: str, options: dict[str, Any]) -> None:
    batch = group_batch([[("s0", "a", 0.5), ("s1", "b", 1.0)]])
    adv = compute(name, batch, options)
    assert np.isfinite(adv).all()
    np.testing.assert_allclose(adv, 0.0)  # no baseline in any estimator
