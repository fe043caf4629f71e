"""GiGPO: episode-level group advantage plus a step-level advantage over anchor states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from agentgym.credit._segments import (
    NORMS,
    combine,
    factorize,
    normalize_in_groups,
    require_choice,
    require_range,
)
from agentgym.credit.grpo import grpo_trajectory_advantages
from agentgym.credit.registry import register_estimator
from agentgym.credit.turn_rloo import returns_to_go
from agentgym.data import Batch


@dataclass(frozen=True)
class GiGPOConfig:
    """Options of the ``gigpo`` estimator."""

    gamma: float = 0.95
    """Discount of the step returns R_t = sum_{k>=t} gamma^(k-t) r_k used by A_S, in [0, 1]."""
    omega: float = 1.0
    """Weight of the step-level advantage: A = A_E + omega * A_S."""
    norm: Literal["std", "mean_norm"] = "std"
    """Normalization of both A_E and A_S: "std" divides by (std + eps), "mean_norm" only centres."""
    eps: float = 1e-6
    """Added to a std before dividing."""
    similarity_threshold: float | None = None
    """Off (None): anchors are equal state keys. Set: keys of one group whose token-set Jaccard
    similarity (lower-cased, whitespace tokens) is >= this are linked, and each connected
    component of links is one anchor. 1.0 merges keys with the same set of words."""

    def __post_init__(self) -> None:
        require_range("gamma", self.gamma, 0.0, 1.0, open_low=False)
        require_choice("norm", self.norm, NORMS)
        require_range("eps", self.eps, 0.0, float("inf"), open_low=True)
        if self.similarity_threshold is not None:
            require_range(
                "similarity_threshold", self.similarity_threshold, 0.0, 1.0, open_low=True
            )


def jaccard_matrix(keys: Sequence[str]) -> np.ndarray:
    """[K, K] token-set Jaccard similarity of ``keys`` (lower-cased, split on whitespace).

    Two keys without any token have similarity 1 with each other, 0 with any other key.
    """
    token_sets = [set(str(k).lower().split()) for k in keys]
    vocab = {tok: i for i, tok in enumerate(sorted(set().union(*token_sets)))}
    member = np.zeros((len(keys), len(vocab)), dtype=np.float64)  # [K, V] token incidence
    for row, toks in enumerate(token_sets):
        member[row, [vocab[t] for t in toks]] = 1.0
    inter = member @ member.T
    size = member.sum(axis=1)
    union = size[:, None] + size[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 1.0)


def connected_components(adjacency: np.ndarray) -> np.ndarray:
    """[K] component label (smallest member index) of a symmetric boolean [K, K] adjacency."""
    k = adjacency.shape[0]
    labels = np.arange(k)
    linked = adjacency | np.eye(k, dtype=bool)
    while True:  # min-label propagation; at most diameter + 1 rounds
        new = np.where(linked, labels[None, :], k).min(axis=1)
        if np.array_equal(new, labels):
            return labels
        labels = new


def anchor_ids(batch: Batch, similarity_threshold: float | None) -> np.ndarray:
    """[T] anchor-state id of each turn: (group, state key), optionally merging similar keys."""
    state, uniques = factorize(batch.state_keys)
    if similarity_threshold is None or state.size == 0:
        return combine(batch.turn_group, state)
    pair = combine(batch.turn_group, state)  # [T] id of (group, state)
    _, first = np.unique(pair, return_index=True)  # pair p's first turn is first[p]
    pair_group, pair_state = batch.turn_group[first], state[first]
    rep = pair_state.copy()  # representative state code of each (group, state) pair
    order = np.argsort(pair_group, kind="stable")
    bounds = np.flatnonzero(np.diff(pair_group[order])) + 1
    for members in np.split(order, bounds):  # one group at a time: O(K^2) in its distinct keys
        sim = jaccard_matrix([uniques[s] for s in pair_state[members]])
        comp = connected_components(sim >= similarity_threshold)
        rep[members] = pair_state[members][comp]
    return combine(batch.turn_group, rep[pair])


def step_advantages(batch: Batch, config: GiGPOConfig) -> np.ndarray:
    """[T] A_S: discounted step returns normalized within their anchor group (singletons: 0)."""
    anchor = anchor_ids(batch, config.similarity_threshold)
    n = int(anchor.max()) + 1 if anchor.size else 0
    return normalize_in_groups(
        returns_to_go(batch, config.gamma), anchor, n, config.norm, config.eps
    )


@register_estimator("gigpo", GiGPOConfig)
def gigpo_advantages(batch: Batch, config: GiGPOConfig) -> np.ndarray:
    """GiGPO advantages [T]: A = A_E + omega * A_S.

    Feng et al. 2025, "Group-in-Group Policy Optimization for LLM Agent Training", §3: the
    episode relative advantage A_E(tau_i) = (R(tau_i) - mean_j R(tau_j)) / F_norm over the
    group's trajectories; the step relative advantage A_S(a_t) = (R_t - mean R) / F_norm over
    the anchor-state group (all turns of the group taken in the same state), with discounted
    step returns R_t = sum_{k>=t} gamma^(k-t) r_k; and the group-in-group advantage
    A = A_E + omega * A_S. F_norm is std + eps or 1 (``norm``). A group of one trajectory gives
    A_E = 0 and a singleton anchor group gives A_S = 0.
    """
    episode = grpo_trajectory_advantages(batch, config.norm, config.eps)[batch.turn_traj]
    adv = episode + config.omega * step_advantages(batch, config)
    return adv.astype(np.float32)
