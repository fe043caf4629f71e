"""Credit diagnostics: how much a batch gives each credit estimator to work with.

Pure functions of a :class:`~agentgym.data.Batch`, whatever estimator trains on it (a GRPO run
also shows whether step-level credit would have found anchors). The trainer logs
:func:`credit_diagnostics` in every train record of ``metrics.jsonl`` (hence TensorBoard and the
HTML report). Everything is vectorised numpy over the turn axis, cheap enough for every
iteration. A run that learns nothing usually shows why here:

- ``credit_zero_variance_group_share``: groups whose returns are all equal (up to rounding, as
  the estimators decide ties) or that hold one trajectory. GRPO/RLOO give such a group 0
  everywhere; at 1.0 no trajectory-level signal is left.
- ``credit_anchor_groups_per_turn``: distinct (group, state key) anchors over turns. 1.0 means
  no state was revisited within a group, so GiGPO's step advantage A_S is 0 everywhere.
- ``credit_singleton_anchor_turn_share``: turns alone in their anchor group (A_S = 0 for them).
- ``credit_step_group_size``: mean size of the anchor groups that hold two turns or more (the
  step groups GiGPO compares within); 0 when there are none.
- ``credit_step_signal_turn_share``: turns in a step group whose discounted step returns are
  not all tied, i.e. where A_S can be non-zero.
- ``credit_salt_nodes`` / ``credit_salt_edges``: nodes and edges of SALT's per-group trajectory
  graphs, summed over groups (the graphs of :func:`agentgym.credit.salt.salt_graphs`, with
  edges keyed by (state, action, next state)); ``credit_salt_merged_nodes`` /
  ``credit_salt_merged_edges``: those that more than one trajectory went through;
  ``credit_salt_merged_turn_share``: turns taken on a merged edge. SALT's step credit differs
  from its trajectory base only on merged edges.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agentgym.credit._segments import combine, factorize, tied_groups
from agentgym.credit.gigpo import anchor_ids
from agentgym.credit.salt import SALTConfig, edge_ids, transition_next_keys
from agentgym.credit.turn_rloo import returns_to_go
from agentgym.data import TERMINAL_TRUNCATED, Batch

PREFIX = "credit_"


def zero_variance_group_share(batch: Batch) -> float:
    """Share of groups whose returns are tied (see ``tied_groups``) or that hold one trajectory."""
    n = len(batch.group_ids)
    if n == 0:
        return 0.0
    ids = batch.traj_group
    count = np.bincount(ids, minlength=n)
    varies = (count > 1) & ~tied_groups(batch.returns, ids, n)
    return float(1.0 - varies.mean())


def anchor_stats(
    batch: Batch, *, similarity_threshold: float | None = None, gamma: float = 0.95
) -> dict[str, float]:
    """Anchor groups per turn, singleton turn share, mean step-group size and step-signal turn
    share (GiGPO's anchors: equal state keys within a group, or similar ones when
    ``similarity_threshold`` is set; step returns discounted by ``gamma``)."""
    t = batch.num_turns
    if t == 0:
        return {
            "anchor_groups_per_turn": 0.0,
            "singleton_anchor_turn_share": 0.0,
            "step_group_size": 0.0,
            "step_signal_turn_share": 0.0,
        }
    anchor = anchor_ids(batch, similarity_threshold)  # [T]
    n = int(anchor.max()) + 1
    size = np.bincount(anchor, minlength=n)  # [A] turns per anchor group
    step = size >= 2
    signal = step & ~tied_groups(returns_to_go(batch, gamma), anchor, n)
    return {
        "anchor_groups_per_turn": n / t,
        "singleton_anchor_turn_share": float((size[anchor] == 1).mean()),
        "step_group_size": float(size[step].mean()) if step.any() else 0.0,
        "step_signal_turn_share": float(signal[anchor].mean()),
    }


def _merged(ids: np.ndarray, traj: np.ndarray, n: int) -> np.ndarray:
    """[n] whether more than one distinct trajectory has each id."""
    if ids.size == 0:
        return np.zeros(n, dtype=bool)
    pairs = np.unique(np.stack([ids, traj], axis=1), axis=0)
    return np.bincount(pairs[:, 0], minlength=n) > 1


def salt_graph_stats(batch: Batch) -> dict[str, float]:
    """Nodes, edges, merged nodes and edges of SALT's per-group graphs, and the share of turns
    on a merged edge; vectorised, counting what :func:`~agentgym.credit.salt.salt_graphs`
    builds (a truncated trajectory whose last step named the state it reached adds an
    action-less edge from that state to the truncation sentinel)."""
    t = batch.num_turns
    if t == 0:
        return {k: 0.0 for k in ("nodes", "edges", "merged_nodes", "merged_edges")} | {
            "merged_turn_share": 0.0
        }
    nxt, reached = transition_next_keys(batch)
    ended = np.flatnonzero(reached)  # [R] trajectories with an action-less end edge
    last = batch.traj_offset[ended] + batch.traj_len[ended] - 1
    keys, _ = factorize([*batch.state_keys, *nxt, TERMINAL_TRUNCATED])
    state, after, trunc = keys[:t], keys[t : 2 * t], keys[2 * t]
    # node visits: (group, key) with the trajectory that visited it
    group = np.concatenate([batch.turn_group, batch.turn_group, batch.traj_group[ended]])
    key = np.concatenate([state, after, np.full(ended.size, trunc)])
    traj = np.concatenate([batch.turn_traj, batch.turn_traj, ended])
    node = combine(group, key)
    n_nodes = int(node.max()) + 1
    # edges: one per (group, state, action, next state), plus one end edge per (group, state)
    edge = edge_ids(batch, SALTConfig(edge_key="transition"))  # [T]
    n_turn_edges = int(edge.max()) + 1
    end = combine(batch.traj_group[ended], after[last]) if ended.size else ended
    n_end_edges = int(end.max()) + 1 if end.size else 0
    merged_edge = _merged(edge, batch.turn_traj, n_turn_edges)
    merged_end = _merged(end, ended, n_end_edges)
    return {
        "nodes": float(n_nodes),
        "edges": float(n_turn_edges + n_end_edges),
        "merged_nodes": float(_merged(node, traj, n_nodes).sum()),
        "merged_edges": float(merged_edge.sum() + merged_end.sum()),
        "merged_turn_share": float(merged_edge[edge].mean()),
    }


def credit_diagnostics(batch: Batch, config: Any = None) -> dict[str, float]:
    """All diagnostics of the module docstring, keys prefixed ``credit_``.

    ``config``: the run's estimator config; its ``similarity_threshold`` and ``gamma`` (when it
    has them, as GiGPO's does) shape the anchors and step returns, else exact state keys and
    gamma 0.95 (GiGPO's default)."""
    threshold = getattr(config, "similarity_threshold", None)
    gamma = float(getattr(config, "gamma", 0.95))
    out = {"zero_variance_group_share": zero_variance_group_share(batch)}
    out |= anchor_stats(batch, similarity_threshold=threshold, gamma=gamma)
    out |= {f"salt_{k}": v for k, v in salt_graph_stats(batch).items()}
    return {PREFIX + k: float(v) for k, v in out.items()}


__all__ = [
    "anchor_stats",
    "credit_diagnostics",
    "salt_graph_stats",
    "zero_variance_group_share",
]
