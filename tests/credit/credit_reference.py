"""Plain-loop reference implementations of the estimators, written to be read, not to be fast.

Each works from ``batch.trajectories`` only (no flat index arrays) and returns one list of
advantages per trajectory.
"""

from __future__ import annotations

import math
from collections import defaultdict

from agentgym.data import TERMINAL_TRUNCATED, Batch, Trajectory


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def std(xs: list[float]) -> float:
    """Unbiased (N-1) standard deviation."""
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def normalized(x: float, xs: list[float], norm: str, eps: float) -> float:
    """x centred on the mean of xs (its group, x included), /(std + eps) for "std"; 0 if alone."""
    if len(xs) < 2:
        return 0.0
    if norm == "std":
        return (x - mean(xs)) / (std(xs) + eps)
    return x - mean(xs)


def returns_by_group(batch: Batch) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = defaultdict(list)
    for traj in batch.trajectories:
        groups[traj.group_id].append(traj.episode_return)
    return groups


def ref_grpo_traj(batch: Batch, norm: str, eps: float) -> list[float]:
    groups = returns_by_group(batch)
    return [normalized(t.episode_return, groups[t.group_id], norm, eps) for t in batch.trajectories]


def ref_rloo_traj(batch: Batch) -> list[float]:
    groups = returns_by_group(batch)
    out = []
    for traj in batch.trajectories:
        rs = groups[traj.group_id]
        if len(rs) < 2:
            out.append(0.0)
        else:
            others = sum(rs) - traj.episode_return
            out.append(traj.episode_return - others / (len(rs) - 1))
    return out


def per_turn(batch: Batch, traj_values: list[float]) -> list[list[float]]:
    return [[v] * len(t.turns) for t, v in zip(batch.trajectories, traj_values, strict=True)]


def ref_grpo(batch: Batch, norm: str = "std", eps: float = 1e-6) -> list[list[float]]:
    return per_turn(batch, ref_grpo_traj(batch, norm, eps))


def ref_rloo(batch: Batch) -> list[list[float]]:
    return per_turn(batch, ref_rloo_traj(batch))


def discounted(traj: Trajectory, gamma: float) -> list[float]:
    out = [0.0] * len(traj.turns)
    running = 0.0
    for t in reversed(range(len(traj.turns))):
        running = traj.turns[t].reward + gamma * running
        out[t] = running
    return out


def ref_turn_rloo(batch: Batch, gamma: float = 1.0) -> list[list[float]]:
    g = [discounted(t, gamma) for t in batch.trajectories]
    slots: dict[tuple[str, int], list[float]] = defaultdict(list)
    for traj, gs in zip(batch.trajectories, g, strict=True):
        for t, value in enumerate(gs):
            slots[traj.group_id, t].append(value)
    wholes: dict[str, list[float]] = defaultdict(list)  # G_{j,0} of each group's trajectories
    for traj, gs in zip(batch.trajectories, g, strict=True):
        wholes[traj.group_id].append(gs[0] if gs else 0.0)
    out = []
    for traj, gs in zip(batch.trajectories, g, strict=True):
        row = []
        others = list(wholes[traj.group_id])
        others.remove(gs[0] if gs else 0.0)
        for t, value in enumerate(gs):
            values = slots[traj.group_id, t]
            if len(values) == 1:  # alone at turn t: baseline = other trajectories' returns
                row.append(value - sum(others) / len(others) if others else 0.0)
            else:
                row.append(value - (sum(values) - value) / (len(values) - 1))
        out.append(row)
    return out


def jaccard(a: str, b: str) -> float:
    sa, sb = set(a.lower().split()), set(b.lower().split())
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def find(parent: list[int], i: int) -> int:
    """Root of i in a union-find forest."""
    while parent[i] != i:
        i = parent[i]
    return i


def anchor_of(batch: Batch, threshold: float | None) -> dict[tuple[str, str], str]:
    """(group, state key) -> anchor name: the key itself, or a representative of its cluster."""
    keys: dict[str, list[str]] = defaultdict(list)
    for traj in batch.trajectories:
        for turn in traj.turns:
            if turn.state_key not in keys[traj.group_id]:
                keys[traj.group_id].append(turn.state_key)
    anchor = {}
    for group, ks in keys.items():
        parent = list(range(len(ks)))  # union-find over the group's keys
        for i in range(len(ks)):
            for j in range(i + 1, len(ks)):
                if threshold is not None and jaccard(ks[i], ks[j]) >= threshold:
                    parent[find(parent, j)] = find(parent, i)
        for i, k in enumerate(ks):
            anchor[group, k] = ks[find(parent, i)]
    return anchor


def ref_gigpo(
    batch: Batch,
    gamma: float = 0.95,
    omega: float = 1.0,
    norm: str = "std",
    eps: float = 1e-6,
    similarity_threshold: float | None = None,
) -> list[list[float]]:
    episode = ref_grpo_traj(batch, norm, eps)
    anchor = anchor_of(batch, similarity_threshold)
    g = [discounted(t, gamma) for t in batch.trajectories]
    members: dict[tuple[str, str], list[float]] = defaultdict(list)
    for traj, gs in zip(batch.trajectories, g, strict=True):
        for turn, value in zip(traj.turns, gs, strict=True):
            members[traj.group_id, anchor[traj.group_id, turn.state_key]].append(value)
    out = []
    for traj, gs, a_e in zip(batch.trajectories, g, episode, strict=True):
        row = []
        for turn, value in zip(traj.turns, gs, strict=True):
            group = members[traj.group_id, anchor[traj.group_id, turn.state_key]]
            row.append(a_e + omega * normalized(value, group, norm, eps))
        out.append(row)
    return out


def next_states(traj: Trajectory) -> list[str]:
    """State after each turn; a truncated last turn goes to the state its info names."""
    nxt = list(traj.next_state_keys)
    reached = traj.turns[-1].info.get("state_key") if traj.turns else None
    if nxt and nxt[-1] == TERMINAL_TRUNCATED and reached is not None:
        nxt[-1] = reached
    return nxt


def ref_salt(
    batch: Batch,
    base: str = "grpo",
    base_norm: str = "mean_norm",
    eps: float = 1e-6,
    edge_key: str = "transition",
    count: str = "occurrence",
) -> list[list[float]]:
    adv = ref_rloo_traj(batch) if base == "rloo" else ref_grpo_traj(batch, base_norm, eps)
    keys = []
    for traj in batch.trajectories:
        row = []
        for turn, nxt in zip(traj.turns, next_states(traj), strict=True):
            edge = (traj.group_id, turn.state_key, turn.action)
            row.append(edge + (nxt,) if edge_key == "transition" else edge)
        keys.append(row)
    uses: dict[tuple, list[tuple[int, float]]] = defaultdict(list)  # edge -> (traj, base adv)
    for i, row in enumerate(keys):
        for edge in row:
            uses[edge].append((i, adv[i]))
    value = {}
    for edge, used in uses.items():
        if count == "trajectory":
            used = list(dict(used).items())  # once per trajectory
        value[edge] = sum(a for _, a in used) / len(used)
    return [[value[edge] for edge in row] for row in keys]


def tied(xs: list[float]) -> bool:
    """Equal up to rounding: spread at most 1e-6 of the largest magnitude (the estimators' rule)."""
    return max(xs) - min(xs) <= 1e-6 * max(abs(x) for x in xs)


def ref_hgpo(
    batch: Batch,
    gamma: float = 0.95,
    history_length: int = 2,
    alpha: float = 1.0,
    norm: str = "std",
    base_group: bool = False,
    eps: float = 1e-6,
) -> list[list[float]]:
    """Level j groups turns by (group, last j states); weighted mean of the informative levels."""
    g = [discounted(t, gamma) for t in batch.trajectories]
    members: dict[tuple, list[float]] = defaultdict(list)  # (group, window) -> step returns
    for traj, gs in zip(batch.trajectories, g, strict=True):
        states = [turn.state_key for turn in traj.turns]
        for t, value in enumerate(gs):
            for j in range(1, min(history_length + 1, t + 1) + 1):
                members[traj.group_id, tuple(states[t - j + 1 : t + 1])].append(value)
    groups = returns_by_group(batch)
    episode = ref_grpo_traj(batch, norm, eps)
    out = []
    for traj, gs, a_e in zip(batch.trajectories, g, episode, strict=True):
        states = [turn.state_key for turn in traj.turns]
        row = []
        for t, value in enumerate(gs):
            items = []  # (weight, advantage)
            rs = groups[traj.group_id]
            if base_group and len(rs) > 1 and not tied(rs):
                items.append((1.0, a_e))
            for j in range(1, min(history_length + 1, t + 1) + 1):
                xs = members[traj.group_id, tuple(states[t - j + 1 : t + 1])]
                if len(xs) < 2 or tied(xs):
                    continue
                m = mean(xs)
                pop_std = math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))
                adv = (value - m) / (pop_std + eps) if norm == "std" else value - m
                items.append(((j + 1.0) ** alpha, adv))
            total = sum(w for w, _ in items)
            row.append(sum(w * a for w, a in items) / total if items else 0.0)
        out.append(row)
    return out


def graph_distance(batch: Batch, group_id: str) -> dict[str, float]:
    """State -> fewest transitions to success in the group's graph (networkx, reversed BFS)."""
    import networkx as nx

    from agentgym.data import TERMINAL_SUCCESS

    graph = nx.DiGraph()
    for traj in batch.trajectories:
        if traj.group_id != group_id:
            continue
        for turn, nxt in zip(traj.turns, next_states(traj), strict=True):
            graph.add_edge(turn.state_key, nxt)
    found: dict[str, float] = {}
    if TERMINAL_SUCCESS in graph:
        found = dict(nx.single_source_shortest_path_length(graph.reverse(), TERMINAL_SUCCESS))
    far = max(found.values(), default=0)
    return {node: float(found.get(node, far + 1)) for node in graph.nodes}


def ref_graphgpo(
    batch: Batch,
    gamma: float = 0.1,
    normalize_distance: bool = False,
    scale: float = 1.0,
    step_weight: float = 1.0,
    episode_weight: float = 1.0,
    norm: str = "std",
    eps: float = 1e-6,
) -> list[list[float]]:
    dist = {gid: graph_distance(batch, gid) for gid in dict.fromkeys(batch.group_ids)}
    step: list[list[float]] = []
    anchors: dict[tuple[str, str], list[float]] = defaultdict(list)
    for traj in batch.trajectories:
        d = dist[traj.group_id]
        row = []
        for turn, nxt in zip(traj.turns, next_states(traj), strict=True):
            exponent = d[nxt] - d[turn.state_key] + 1 if normalize_distance else d[nxt]
            row.append(scale * gamma**exponent)
            anchors[traj.group_id, turn.state_key].append(row[-1])
        step.append(row)
    episode = ref_grpo_traj(batch, norm, eps)
    out = []
    for traj, row, a_e in zip(batch.trajectories, step, episode, strict=True):
        adv = []
        for turn, value in zip(traj.turns, row, strict=True):
            xs = anchors[traj.group_id, turn.state_key]
            a_s = 0.0 if tied(xs) else normalized(value, xs, norm, eps)
            adv.append(step_weight * a_s + episode_weight * a_e)
        out.append(adv)
    return out
