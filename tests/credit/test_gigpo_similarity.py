"""GiGPO's optional similarity-merged anchors (token-set Jaccard, connected components)."""

from __future__ import annotations

import numpy as np
import pytest
from credit_batches import make_traj

from agentgym.credit import compute
from agentgym.credit.gigpo import connected_components, jaccard_matrix
from agentgym.data import Batch


def one_turn_batch(keys_and_returns: list[tuple[str, float]]) -> Batch:
    return Batch(tuple(make_traj("g", [(k, "act", r)]) for k, r in keys_and_returns))


def test_jaccard_matrix() -> None:
    sim = jaccard_matrix(["a b", "B A c", "", "  "])
    np.testing.assert_allclose(sim[0], [1.0, 2 / 3, 0.0, 0.0])
    assert sim[2, 3] == 1.0  # two keys without tokens


def test_connected_components_are_transitive() -> None:
    adj = np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=bool)
    assert connected_components(adj).tolist() == [0, 0, 0, 3]


@pytest.mark.parametrize(
    ("threshold", "step"),
    [(None, [0.0, 0.0, 0.0]), (0.8, [0.0, 0.0, 0.0]), (0.7, [0.5, -0.5, 0.0])],
)
def test_similar_keys_share_an_anchor(threshold: float | None, step: list[float]) -> None:
    # Jaccard("kitchen table key", "kitchen table key lamp") = 0.75, case-insensitive
    batch = one_turn_batch(
        [("kitchen table key", 1.0), ("Kitchen  TABLE key lamp", 0.0), ("hall door", 0.0)]
    )
    options = {"norm": "mean_norm", "gamma": 1.0, "similarity_threshold": threshold}
    episode = np.array([2 / 3, -1 / 3, -1 / 3])
    np.testing.assert_allclose(compute("gigpo", batch, options), episode + step, atol=1e-6)


def test_chains_of_similar_keys_merge() -> None:
    # "a b" ~ "a b c" (0.67) and "a b c" ~ "a b c d" (0.75), but "a b" vs "a b c d" is 0.5
    batch = one_turn_batch([("a b", 3.0), ("a b c", 0.0), ("a b c d", 0.0)])
    adv = compute("gigpo", batch, {"norm": "mean_norm", "gamma": 1.0, "similarity_threshold": 0.6})
    np.testing.assert_allclose(adv, [4.0, -2.0, -2.0], atol=1e-6)
