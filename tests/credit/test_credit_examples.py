"""The worked examples of docs/credit.md (Examples A and B), to 1e-4.

test_credit_docs.py also reads every marked table of that page; this file spells the main ones
out so a change of the numbers shows in review.
"""

from __future__ import annotations

import numpy as np
import pytest
from credit_batches import assert_rows, example_b

from agentgym.credit import compute, graph_distances
from agentgym.data import Batch

LENGTHS_A = (3, 4, 4, 4)

SALT_A_MEAN_NORM = [
    [0.1667, 0.5, 0.5],
    [0.1667, -0.25, 0.5, 0.5],
    [-0.5, -0.5, -0.5, -0.5],
    [0.1667, -0.25, -0.25, -0.25],
]
SALT_A_PER_TRAJECTORY = [
    [0.1667, 0.5, 0.5],
    [0.1667, 0.0, 0.5, 0.5],
    [-0.5, -0.5, -0.5, -0.5],
    [0.1667, 0.0, 0.0, 0.0],
]


def const_rows(values: list[float]) -> list[list[float]]:
    return [[v] * n for v, n in zip(values, LENGTHS_A, strict=True)]


def scaled(rows: list[list[float]], factor: float) -> list[list[float]]:
    return [[v * factor for v in row] for row in rows]


def test_grpo_mean_norm(batch_a: Batch) -> None:
    adv = compute("grpo", batch_a, {"norm": "mean_norm"})
    assert adv.dtype == np.float32
    assert_rows(adv, const_rows([0.5, 0.5, -0.5, -0.5]))


def test_grpo_std(batch_a: Batch) -> None:
    assert_rows(compute("grpo", batch_a), const_rows([0.8660, 0.8660, -0.8660, -0.8660]))


def test_rloo(batch_a: Batch) -> None:
    assert_rows(compute("rloo", batch_a), const_rows([0.6667, 0.6667, -0.6667, -0.6667]))


@pytest.mark.parametrize(
    ("count", "table"),
    [("occurrence", SALT_A_MEAN_NORM), ("trajectory", SALT_A_PER_TRAJECTORY)],
)
def test_salt_grpo_mean_norm(batch_a: Batch, count: str, table: list[list[float]]) -> None:
    assert_rows(compute("salt", batch_a, {"count": count}), table)


@pytest.mark.parametrize("count", ["occurrence", "trajectory"])
def test_salt_grpo_std_base(batch_a: Batch, count: str) -> None:
    table = SALT_A_MEAN_NORM if count == "occurrence" else SALT_A_PER_TRAJECTORY
    adv = compute("salt", batch_a, {"base_norm": "std", "count": count})
    assert_rows(adv, scaled(table, 1 / 0.57735), atol=2e-4)  # the table's 4-digit 0.1667
    if count == "occurrence":
        assert_rows(adv[[0, 4, 1]], [[0.2887, -0.4330, 0.8660]])


@pytest.mark.parametrize("count", ["occurrence", "trajectory"])
def test_salt_rloo_base(batch_a: Batch, count: str) -> None:
    table = SALT_A_MEAN_NORM if count == "occurrence" else SALT_A_PER_TRAJECTORY
    adv = compute("salt", batch_a, {"base": "rloo", "count": count})
    assert_rows(adv, scaled(table, 4 / 3), atol=2e-4)
    if count == "occurrence":
        assert_rows(adv[[0, 4, 1]], [[0.2222, -0.3333, 0.6667]])


def test_gigpo_mean_norm_step_and_total(batch_a: Batch) -> None:
    a_s = [
        [0.4625, 0.4829, 0.0],
        [0.4174, 0.4354, 0.4829, 0.0],
        [-0.44, 0.0, 0.0, 0.0],
        [-0.44, -0.4671, -0.4671, -0.4671],
    ]
    total = [
        [0.9625, 0.9829, 0.5],
        [0.9174, 0.9354, 0.9829, 0.5],
        [-0.94, -0.5, -0.5, -0.5],
        [-0.94, -0.9671, -0.9671, -0.9671],
    ]
    adv = compute("gigpo", batch_a, {"norm": "mean_norm"})
    assert_rows(adv, total)
    episode = compute("grpo", batch_a, {"norm": "mean_norm"})
    assert_rows(adv - episode, a_s)


def test_gigpo_std(batch_a: Batch) -> None:
    table = [
        [1.7759, 1.8093, 0.8660],
        [1.6871, 1.7165, 1.8093, 0.8660],
        [-1.7315, -0.8660, -0.8660, -0.8660],
        [-1.7315, -1.7784, -1.7784, -1.7784],
    ]
    assert_rows(compute("gigpo", batch_a), table)


def test_turn_rloo_gamma_1(batch_b: Batch) -> None:
    # trajectory-major rows: k1 turns 1-3, k2 turns 1-2, k3 turns 1-3
    expected = [[1.05, 1.00, 0.80], [-0.75, -0.50], [-0.30, -0.50, -0.80]]
    assert_rows(compute("turn_rloo", batch_b), expected)


def test_turn_rloo_gamma_09(batch_b: Batch) -> None:
    expected = [[0.8645, 0.905, 0.8], [-0.637, -0.43], [-0.2275, -0.475, -0.8]]
    assert_rows(compute("turn_rloo", batch_b, {"gamma": 0.9}), expected)


def test_turn_rloo_alone_at_a_turn_gets_the_rloo_baseline() -> None:
    adv = compute("turn_rloo", example_b(only_k1_at_turn_3=True))
    # k1's third turn; nobody else has one: G = 1.1 minus the mean whole return of k2 and k3
    # (0.6 and 0.6), not the raw 1.1 of the old rule
    assert adv[2] == pytest.approx(0.5, abs=1e-6)


def test_hgpo_mean_norm(batch_a: Batch) -> None:
    # docs/credit.md, hgpo: levels of 1, 2 and 3 states weigh 2, 3 and 4
    table = [
        [0.4625, 0.3927, 0.0],
        [0.4174, 0.3452, 0.5295, 0.0],
        [-0.44, 0.0, 0.0, 0.0],
        [-0.44, -0.5573, -0.4205, -0.3768],
    ]
    assert_rows(compute("hgpo", batch_a, {"norm": "mean_norm"}), table)
    # the hand computation of three of them
    adv = compute("hgpo", batch_a, {"norm": "mean_norm"})
    assert adv[1] == pytest.approx((2 * 0.482917 + 3 * 0.3325) / 5, abs=1e-5)
    assert adv[5] == pytest.approx((2 * 0.482917 + 3 * 0.633333 + 4 * 0.475) / 9, abs=1e-5)
    assert adv[14] == pytest.approx((2 * -0.467083 + 3 * -0.316667) / 5, abs=1e-5)


def test_hgpo_base_group(batch_a: Batch) -> None:
    table = [
        [0.475, 0.4106, 0.5],
        [0.4449, 0.371, 0.5266, 0.5],
        [-0.46, -0.5, -0.5, -0.5],
        [-0.46, -0.5478, -0.4284, -0.3974],
    ]
    assert_rows(compute("hgpo", batch_a, {"norm": "mean_norm", "base_group": True}), table)


def test_graphgpo_distances(batch_a: Batch) -> None:
    d_state, d_next = graph_distances(batch_a)
    assert_rows(d_state, [[3, 2, 1], [3, 2, 2, 1], [3, 4, 4, 4], [3, 2, 2, 2]])
    assert_rows(d_next, [[2, 1, 0], [2, 2, 1, 0], [4, 4, 4, 3], [2, 2, 2, 2]])


def test_graphgpo_readable_numbers(batch_a: Batch) -> None:
    # docs/credit.md, graphgpo: step returns 10 * 0.5^d(next), mean-centred per anchor, + A_E
    table = [
        [0.96875, 2.16667, 0.5],
        [0.96875, -0.33333, 2.16667, 0.5],
        [-1.90625, -0.70833, -0.70833, -0.08333],
        [-0.03125, -1.33333, -1.33333, -1.33333],
    ]
    options = {"norm": "mean_norm", "scale": 10.0, "gamma": 0.5}
    assert_rows(compute("graphgpo", batch_a, options), table)


def test_graphgpo_defaults(batch_a: Batch) -> None:
    table = [
        [1.3659, 2.157, 0.866],
        [1.3659, 0.2205, 2.157, 0.866],
        [-2.3657, -1.4423, -1.4423, 0.2865],
        [-0.3661, -1.5115, -1.5115, -1.5115],
    ]
    assert_rows(compute("graphgpo", batch_a), table)
