"""What the terminal views and the HTML report show, computed once from a run directory.

A run's trajectories are read per iteration; each group (trajectories of one task and seed in
one iteration) gets its credit structure:

- GiGPO anchor groups: the turns of the group taken in the same anchor state (equal state key,
  or similar keys when the run's gigpo config sets ``similarity_threshold``), labelled ``A0``,
  ``A1``, ... in order of first appearance;
- the SALT trajectory graph (:func:`agentgym.credit.salt_graphs`) with its edges labelled
  ``E0``, ``E1``, ... (one label per SALT credit edge, see ``SALTConfig.edge_key``) and coloured
  by ``credit``: the stored ``salt`` advantage of the edge's turns when the run stored one,
  else the advantage SALT computes from the stored rewards.

The estimator options come from the run's config (``credit.estimator``/``credit.options`` of a
training run); other runs use the defaults.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from agentgym.credit.gigpo import GiGPOConfig, anchor_ids
from agentgym.credit.salt import SALTConfig, edge_ids, salt_graphs, transition_next_keys
from agentgym.credit.turn_rloo import returns_to_go
from agentgym.data import Batch, Trajectory
from agentgym.store import Run


@dataclass(frozen=True)
class Entry:
    """A stored trajectory and the iteration it belongs to."""

    iteration: int
    traj: Trajectory

    @property
    def key(self) -> str:
        """Unique key in the run: ``"<iteration>/<traj_id>"``."""
        return f"{self.iteration}/{self.traj.traj_id}"

    @property
    def group_key(self) -> str:
        """Unique key of the trajectory's group in the run: ``"<iteration>/<group_id>"``."""
        return f"{self.iteration}/{self.traj.group_id}"


@dataclass(frozen=True)
class TurnCredit:
    """Where one turn sits in its group's credit structure."""

    anchor: str
    """GiGPO anchor-group label, e.g. ``"A2"``."""
    anchor_turns: int
    """Turns of the group in this anchor state (1: a singleton, A_S = 0)."""
    edge: str
    """SALT edge label, e.g. ``"E5"``."""
    edge_turns: int
    """Turns of the group on this edge."""
    edge_trajectories: int
    """Trajectories of the group that took this edge."""
    edge_credit: float
    """The edge's SALT advantage (see the module doc)."""
    return_to_go: float
    """Undiscounted sum of this and the later rewards of the trajectory."""


@dataclass(frozen=True)
class GroupCredit:
    """The credit structure of one group."""

    iteration: int
    group_id: str
    entries: tuple[Entry, ...]
    turns: Mapping[str, tuple[TurnCredit, ...]]
    """Per trajectory key, one :class:`TurnCredit` per turn."""
    anchors: tuple[dict[str, Any], ...]
    """``{"label", "state_key", "members": [(entry key, turn index), ...]}`` per anchor group."""
    graph: nx.MultiDiGraph
    """SALT graph; edges also carry ``label``, ``credit`` and ``traj_keys``."""

    @property
    def key(self) -> str:
        return f"{self.iteration}/{self.group_id}"


def read_entries(run: Run, iterations: Iterable[int] | None = None) -> list[Entry]:
    """Every stored trajectory of ``iterations`` (default: all), in stored order."""
    iters = run.iterations() if iterations is None else list(iterations)
    return [Entry(it, t) for it in iters for t in run.read_trajectories(it)]


def credit_configs(config: Mapping[str, Any]) -> tuple[GiGPOConfig, SALTConfig]:
    """The gigpo and salt configs a run used (its ``credit`` section), else the defaults."""
    section = config.get("credit") if isinstance(config.get("credit"), Mapping) else {}
    options = dict(section.get("options") or {})
    name = section.get("estimator")
    configs = []
    for cls, est in ((GiGPOConfig, "gigpo"), (SALTConfig, "salt")):
        fields = {f.name for f in dataclasses.fields(cls)}
        mine = {k: v for k, v in options.items() if k in fields} if name == est else {}
        configs.append(cls(**mine))
    return configs[0], configs[1]


def _labels(ids: np.ndarray, prefix: str) -> list[str]:
    """``prefix + n`` per element, numbering distinct ids in order of first appearance."""
    order: dict[int, str] = {}
    return [order.setdefault(int(i), f"{prefix}{len(order)}") for i in ids]


def group_credit(
    entries: Sequence[Entry], gigpo: GiGPOConfig | None = None, salt: SALTConfig | None = None
) -> GroupCredit:
    """Anchor groups, SALT graph and per-turn labels of one group's ``entries``."""
    gigpo, salt = gigpo or GiGPOConfig(), salt or SALTConfig()
    batch = Batch(tuple(e.traj for e in entries))
    keys = [e.key for e in entries]
    anchor = anchor_ids(batch, gigpo.similarity_threshold)  # [T]
    edge = edge_ids(batch, salt)  # [T]
    anchor_label, edge_label = _labels(anchor, "A"), _labels(edge, "E")
    graph = salt_graphs(batch, salt)[batch.group_ids[0]] if len(batch) else nx.MultiDiGraph()
    stored = batch.advantages("salt")  # [T], NaN where not stored
    next_keys, _ = transition_next_keys(batch)
    rtg = returns_to_go(batch, 1.0)  # [T]
    edge_turns: dict[tuple, list[int]] = {}
    for t in range(batch.num_turns):
        g_edge = (batch.state_keys[t], next_keys[t], batch.actions[t])
        edge_turns.setdefault(g_edge, []).append(t)
    for u, v, k, data in graph.edges(keys=True, data=True):
        turns = edge_turns.get((u, v, k), [])
        data["label"] = edge_label[turns[0]] if turns else ""
        values = stored[turns] if turns else np.array([], dtype=np.float32)
        known = bool(values.size) and not np.isnan(values).any()
        data["credit"] = float(values.mean()) if known else float(data["advantage"])
        data["traj_keys"] = [keys[i] for i in data["trajectories"]]
    per_turn = _turn_credit(batch, keys, anchor, anchor_label, edge, edge_label, graph, rtg)
    anchors: dict[str, dict[str, Any]] = {}
    for t, label in enumerate(anchor_label):
        a = anchors.setdefault(label, {"label": label, "state_key": batch.state_keys[t]})
        a.setdefault("members", []).append((keys[batch.turn_traj[t]], int(batch.turn_index[t])))
    gid = entries[0].traj.group_id if entries else ""
    it = entries[0].iteration if entries else 0
    return GroupCredit(it, gid, tuple(entries), per_turn, tuple(anchors.values()), graph)


def _turn_credit(
    batch: Batch,
    keys: list[str],
    anchor: np.ndarray,
    anchor_label: list[str],
    edge: np.ndarray,
    edge_label: list[str],
    graph: nx.MultiDiGraph,
    rtg: np.ndarray,
) -> dict[str, tuple[TurnCredit, ...]]:
    """Per trajectory key, the :class:`TurnCredit` of each of its turns."""
    credit_of = {d["label"]: d["credit"] for _, _, d in graph.edges(data=True) if d["label"]}
    anchor_size = np.bincount(anchor)[anchor]
    edge_size = np.bincount(edge)[edge]
    trajs_per_edge = {
        e: len(set(batch.turn_traj[edge == e].tolist())) for e in np.unique(edge).tolist()
    }
    out: dict[str, list[TurnCredit]] = {k: [] for k in keys}
    for t in range(batch.num_turns):
        out[keys[batch.turn_traj[t]]].append(
            TurnCredit(
                anchor=anchor_label[t],
                anchor_turns=int(anchor_size[t]),
                edge=edge_label[t],
                edge_turns=int(edge_size[t]),
                edge_trajectories=trajs_per_edge[int(edge[t])],
                edge_credit=float(credit_of.get(edge_label[t], math.nan)),
                return_to_go=float(rtg[t]),
            )
        )
    return {k: tuple(v) for k, v in out.items()}


def group_credits(
    entries: Sequence[Entry], config: Mapping[str, Any] | None = None
) -> dict[str, GroupCredit]:
    """:class:`GroupCredit` of every group of ``entries``, keyed by ``Entry.group_key``."""
    gigpo, salt = credit_configs(config or {})
    groups: dict[str, list[Entry]] = {}
    for e in entries:
        groups.setdefault(e.group_key, []).append(e)
    return {k: group_credit(members, gigpo, salt) for k, members in groups.items()}


def estimators(entries: Iterable[Entry]) -> list[str]:
    """Names of the estimators whose advantages are stored on any turn, sorted."""
    return sorted({name for e in entries for turn in e.traj.turns for name in turn.advantages})


def read_config(run: Run) -> dict[str, Any]:
    """The run's config, or an empty dict when it has none."""
    try:
        return run.read_config()
    except FileNotFoundError:
        return {}


__all__ = [
    "Entry",
    "GroupCredit",
    "TurnCredit",
    "credit_configs",
    "estimators",
    "group_credit",
    "group_credits",
    "read_config",
    "read_entries",
]
