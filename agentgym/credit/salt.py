"""SALT: step-level advantages shared along the edges of a per-group trajectory graph."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import networkx as nx
import numpy as np

from agentgym.core import STATE_KEY
from agentgym.credit._segments import NORMS, combine, factorize, require_choice, require_range
from agentgym.credit.grpo import grpo_trajectory_advantages
from agentgym.credit.registry import register_estimator
from agentgym.credit.rloo import rloo_trajectory_advantages
from agentgym.data import TERMINAL_FAILURE, TERMINAL_SUCCESS, TERMINAL_TRUNCATED, Batch

TERMINALS = (TERMINAL_SUCCESS, TERMINAL_FAILURE, TERMINAL_TRUNCATED)
END_KEY = "<end>"
"""Graph edge key of the action-less edge from a truncated trajectory's last state to the
truncation sentinel."""


@dataclass(frozen=True)
class SALTConfig:
    """Options of the ``salt`` estimator."""

    base: Literal["grpo", "rloo"] = "grpo"
    """Trajectory-level advantage that the graph redistributes: GRPO or RLOO."""
    base_norm: Literal["mean_norm", "std"] = "mean_norm"
    """Normalization of the grpo base: "mean_norm" centres only, "std" also divides by std+eps."""
    eps: float = 1e-6
    """Added to the std of the grpo base with base_norm="std"."""
    edge_key: Literal["transition", "state_action"] = "transition"
    """What makes two turns the same edge: (state, action, next state) or (state, action)."""
    count: Literal["occurrence", "trajectory"] = "occurrence"
    """Average over every occurrence of the edge, or over the trajectories that took it (each
    counted once however often it took the edge)."""

    def __post_init__(self) -> None:
        require_choice("base", self.base, ("grpo", "rloo"))
        require_choice("base_norm", self.base_norm, NORMS)
        require_range("eps", self.eps, 0.0, float("inf"), open_low=True)
        require_choice("edge_key", self.edge_key, ("transition", "state_action"))
        require_choice("count", self.count, ("occurrence", "trajectory"))


def transition_next_keys(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """[T] state key each turn leads to (object array), and [N] whether a truncated trajectory's
    last turn leads to a real state.

    ``Batch.next_state_keys`` ends every trajectory in a terminal sentinel. A truncation is the
    time limit, not the outcome of the last action, so when the last turn's step ``info`` names
    the state reached (``info["state_key"]``) the transition goes there, and the trajectory then
    ends in the truncation sentinel (an action-less edge in :func:`salt_graphs`). Without that
    info, the transition goes to the sentinel itself. Wins and failures always go to theirs.
    """
    nxt = np.empty(batch.num_turns, dtype=object)
    nxt[:] = batch.next_state_keys
    reached = np.zeros(len(batch), dtype=bool)
    for i, traj in enumerate(batch.trajectories):  # N last turns only, never every turn
        if not traj.turns:
            continue
        last = batch.traj_offset[i] + batch.traj_len[i] - 1
        key = traj.turns[-1].info.get(STATE_KEY)
        if nxt[last] == TERMINAL_TRUNCATED and isinstance(key, str):
            nxt[last], reached[i] = key, True
    return nxt, reached


def edge_ids(batch: Batch, config: SALTConfig) -> np.ndarray:
    """[T] id of each turn's graph edge: (group, state, action[, next state])."""
    parts = [batch.turn_group, factorize(batch.state_keys)[0], factorize(batch.actions)[0]]
    if config.edge_key == "transition":
        parts.append(factorize(transition_next_keys(batch)[0])[0])
    return combine(*parts)


def base_advantages(batch: Batch, config: SALTConfig) -> np.ndarray:
    """[N] the trajectory-level advantages SALT starts from."""
    if config.base == "rloo":
        return rloo_trajectory_advantages(batch)
    return grpo_trajectory_advantages(batch, config.base_norm, config.eps)


@register_estimator("salt", SALTConfig)
def salt_advantages(batch: Batch, config: SALTConfig) -> np.ndarray:
    """SALT advantages [T]: each turn gets the mean base advantage over its edge.

    "SALT: Step-level Advantage Assignment for LLM Agents via Trajectory Graph" (Li et al. 2025):
    the trajectories of a group are merged into a graph whose nodes are states and whose edges
    are transitions; a step's advantage is the average of the trajectory advantages A_i of the
    trajectories through its edge, A(e) = sum_{(i, t) on e} A_i / |{(i, t) on e}| (counted per
    occurrence) or sum_{i through e} A_i / |{i through e}| (once per trajectory). An edge of a
    single trajectory keeps its A_i; an edge every trajectory takes once gets 0 (the base sums
    to 0 over a group). Groups never share edges.
    """
    base = base_advantages(batch, config)  # [N]
    edge = edge_ids(batch, config)  # [T]
    n_edges = int(edge.max()) + 1 if edge.size else 0
    members = np.arange(batch.num_turns)
    if config.count == "trajectory":  # first turn of each (edge, trajectory) pair
        members = np.unique(edge * len(batch) + batch.turn_traj, return_index=True)[1]
    ids, weights = edge[members], base[batch.turn_traj[members]]
    total = np.bincount(ids, weights=weights, minlength=n_edges)
    count = np.bincount(ids, minlength=n_edges)
    return (total / np.maximum(count, 1))[edge].astype(np.float32)


def salt_graphs(batch: Batch, config: SALTConfig | None = None) -> dict[str, nx.MultiDiGraph]:
    """One trajectory graph per group id, for the trainer's logs and the viewer.

    A ``networkx.MultiDiGraph`` (a ``DiGraph`` subclass; parallel edges are distinct actions
    between the same two states). Nodes: state keys and the terminal sentinels reached, with a
    ``terminal`` bool attribute. Edges ``(state, next_state, key=action)`` carry ``action``,
    ``count`` (turns taken on it), ``trajectories`` (sorted batch indices of the trajectories
    that took it) and ``advantage`` (SALT advantage of its turns). A truncated trajectory that
    ended in a real state adds an edge to the truncation sentinel with key ``END_KEY``,
    ``action=None`` and ``advantage=nan``. Loops over turns: for inspection, not the hot path.
    """
    config = SALTConfig() if config is None else config
    adv = salt_advantages(batch, config)
    next_keys, reached = transition_next_keys(batch)
    graphs = {gid: nx.MultiDiGraph(group_id=gid) for gid in batch.group_ids}
    for t, (traj, state, action) in enumerate(
        zip(batch.turn_traj, batch.state_keys, batch.actions, strict=True)
    ):
        graph = graphs[batch.group_ids[batch.traj_group[traj]]]
        _add_use(graph, (state, next_keys[t], action), action, int(traj), float(adv[t]))
    for i in np.flatnonzero(reached):
        graph = graphs[batch.group_ids[batch.traj_group[i]]]
        last = next_keys[batch.traj_offset[i] + batch.traj_len[i] - 1]
        _add_use(graph, (last, TERMINAL_TRUNCATED, END_KEY), None, int(i), float("nan"))
    for graph in graphs.values():
        for _, _, data in graph.edges(data=True):
            data["trajectories"] = tuple(sorted(data["trajectories"]))
        for node, data in graph.nodes(data=True):
            data["terminal"] = node in TERMINALS
    return graphs


def _add_use(
    graph: nx.MultiDiGraph,
    edge: tuple[str, str, str],
    action: str | None,
    traj: int,
    advantage: float,
) -> None:
    """Record one use of ``edge`` = (u, v, key) by trajectory ``traj``."""
    if graph.has_edge(*edge):
        data = graph.edges[edge]
        data["count"] += 1
        data["trajectories"].add(traj)
        return
    u, v, key = edge
    graph.add_edge(u, v, key=key, action=action, count=1, trajectories={traj}, advantage=advantage)
