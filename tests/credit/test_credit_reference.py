"""The vectorized estimators against the plain loops of credit_reference.py on random batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from credit_batches import random_batch
from credit_reference import (
    ref_gigpo,
    ref_graphgpo,
    ref_grpo,
    ref_hgpo,
    ref_rloo,
    ref_salt,
    ref_turn_rloo,
)

from agentgym.credit import compute

SEEDS = range(6)

CASES: list[tuple[str, dict[str, Any], Callable[..., list[list[float]]]]] = [
    ("grpo", {}, ref_grpo),
    ("grpo", {"norm": "mean_norm"}, ref_grpo),
    ("rloo", {}, ref_rloo),
    ("turn_rloo", {}, ref_turn_rloo),
    ("turn_rloo", {"gamma": 0.9}, ref_turn_rloo),
    ("turn_rloo", {"gamma": 0.0}, ref_turn_rloo),
    ("gigpo", {}, ref_gigpo),
    ("gigpo", {"norm": "mean_norm", "gamma": 1.0, "omega": 0.5}, ref_gigpo),
    ("gigpo", {"gamma": 0.0}, ref_gigpo),
    ("salt", {}, ref_salt),
    ("salt", {"count": "trajectory"}, ref_salt),
    ("salt", {"base_norm": "std", "edge_key": "state_action"}, ref_salt),
    ("salt", {"base": "rloo", "count": "trajectory", "edge_key": "state_action"}, ref_salt),
    ("hgpo", {}, ref_hgpo),
    ("hgpo", {"norm": "mean_norm", "base_group": True}, ref_hgpo),
    ("hgpo", {"history_length": 0, "alpha": 0.0, "gamma": 1.0}, ref_hgpo),
    ("hgpo", {"history_length": 4, "alpha": 2.5, "base_group": True, "gamma": 0.0}, ref_hgpo),
    ("graphgpo", {}, ref_graphgpo),
    ("graphgpo", {"normalize_distance": True, "norm": "mean_norm", "scale": 10.0}, ref_graphgpo),
    ("graphgpo", {"gamma": 0.9, "episode_weight": 0.0, "step_weight": 2.0}, ref_graphgpo),
    ("graphgpo", {"gamma": 0.0, "episode_weight": 0.5}, ref_graphgpo),
]


def check(name: str, options: dict[str, Any], ref: Callable[..., list[list[float]]], batch) -> None:
    expected = [v for row in ref(batch, **options) for v in row]
    actual = compute(name, batch, options)
    assert actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("name", "options", "ref"), CASES, ids=lambda c: str(c))
def test_matches_loop_reference(name: str, options: dict[str, Any], ref, seed: int) -> None:
    check(name, options, ref, random_batch(seed))


@pytest.mark.parametrize(("name", "options", "ref"), CASES, ids=lambda c: str(c))
def test_matches_loop_reference_on_long_trajectories(name: str, options, ref) -> None:
    # lengths up to 70 exercise several rounds of the discounted-sum scan
    check(name, options, ref, random_batch(99, n_groups=3, max_len=70, n_states=6))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("threshold", [0.3, 0.6, 1.0])
def test_gigpo_similarity_matches_loop_reference(seed: int, threshold: float) -> None:
    options = {"similarity_threshold": threshold, "norm": "mean_norm"}
    check("gigpo", options, ref_gigpo, random_batch(seed, text_keys=True, n_states=6))
