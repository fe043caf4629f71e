"""GraphGPO: step returns from each transition's graph distance to success, per task group."""

from __future__ import annotations

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
from agentgym.credit.gigpo import anchor_ids
from agentgym.credit.grpo import grpo_trajectory_advantages
from agentgym.credit.registry import register_estimator
from agentgym.credit.salt import transition_next_keys
from agentgym.data import TERMINAL_SUCCESS, Batch


@dataclass(frozen=True)
class GraphGPOConfig:
    """Options of the ``graphgpo`` estimator."""

    gamma: float = 0.1
    """Decay of the step return with distance: scale * gamma^d, in [0, 1] (the reference's 0.1;
    small values separate near and far states sharply)."""
    normalize_distance: bool = False
    """False: the return of a step is scale * gamma^d(next state) (proximity to success). True:
    scale * gamma^(d(next) - d(state) + 1) (progress: 1 for a step one closer, gamma for a step
    that stays as far, gamma^2 for one step back)."""
    scale: float = 1.0
    """Multiplies every step return (the reference uses 10, its environments' success reward;
    it cancels out with norm="std")."""
    step_weight: float = 1.0
    """Weight of the graph step advantage: A = step_weight * A_S + episode_weight * A_E."""
    episode_weight: float = 1.0
    """Weight of the episode-level GRPO advantage A_E (0: the graph signal alone)."""
    norm: Literal["std", "mean_norm"] = "std"
    """Normalization of A_S (within anchor-state groups) and A_E (within task groups)."""
    eps: float = 1e-6
    """Added to a std before dividing."""

    def __post_init__(self) -> None:
        require_range("gamma", self.gamma, 0.0, 1.0, open_low=False)
        if not isinstance(self.normalize_distance, bool):
            raise ValueError(
                f"normalize_distance={self.normalize_distance!r} must be true or false"
            )
        require_range("scale", self.scale, 0.0, float("inf"), open_low=True)
        require_range("step_weight", self.step_weight, 0.0, float("inf"), open_low=False)
        require_range("episode_weight", self.episode_weight, 0.0, float("inf"), open_low=False)
        require_choice("norm", self.norm, NORMS)
        require_range("eps", self.eps, 0.0, float("inf"), open_low=True)


def graph_distances(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """([T] distance of each turn's state, [T] distance of the state it led to) to success.

    Per task group, a directed graph: nodes are state keys plus the terminal sentinels reached
    (a truncated trajectory whose last step names the state it reached leads there, as in SALT),
    one unit-length edge per turn from its state to the next. The distance of a node is the
    fewest edges from it to the success sentinel (a breadth-first search backwards from success,
    all groups at once). A node with no path, and every node of a group without a win, gets the
    group's largest finite distance plus one (1 in a group without a win).
    """
    t = batch.num_turns
    if t == 0:
        return np.zeros(0), np.zeros(0)
    next_keys, _ = transition_next_keys(batch)
    codes = factorize(list(batch.state_keys) + list(next_keys))[0]
    groups = np.concatenate([batch.turn_group, batch.turn_group])
    node = combine(groups, codes)  # [2T] node ids: turn states, then next states
    u, v = node[:t], node[t:]
    n = int(node.max()) + 1
    node_group = np.zeros(n, dtype=np.int64)
    node_group[node] = groups
    dist = np.full(n, np.inf)
    frontier = np.unique(v[np.asarray(next_keys == TERMINAL_SUCCESS, dtype=bool)])
    dist[frontier] = 0.0
    level = 0
    while frontier.size:  # one backward BFS layer per pass, O(T) each
        on_frontier = np.zeros(n, dtype=bool)
        on_frontier[frontier] = True
        reach = np.unique(u[on_frontier[v] & np.isinf(dist[u])])
        level += 1
        dist[reach] = level
        frontier = reach
    far = np.zeros(len(batch.group_ids))
    finite = np.isfinite(dist)
    np.maximum.at(far, node_group[finite], dist[finite])
    dist = np.where(finite, dist, far[node_group] + 1.0)
    return dist[u], dist[v]


def step_returns(batch: Batch, config: GraphGPOConfig) -> np.ndarray:
    """[T] graph step returns: scale * gamma^d(next), or scale * gamma^(d(next) - d(state) + 1)."""
    d_state, d_next = graph_distances(batch)
    exponent = d_next - d_state + 1.0 if config.normalize_distance else d_next
    return config.scale * np.power(config.gamma, exponent)


@register_estimator("graphgpo", GraphGPOConfig)
def graphgpo_advantages(batch: Batch, config: GraphGPOConfig) -> np.ndarray:
    """GraphGPO advantages [T]: A = step_weight * A_S + episode_weight * A_E.

    Cheng et al. 2026, "Beyond Trajectory-Level Attribution: Graph-Based Credit Assignment for
    Agentic Reinforcement Learning" (ICML 2026, arXiv 2605.26684; reference implementation
    verl-agent ``recipe/GraphGPO``). The trajectories of a task group are merged into one
    state-transition graph; each state's distance d to success is its shortest path in that
    graph (:func:`graph_distances`), so a failed trajectory's step that reaches a state from
    which some trajectory won still earns credit. The step return is scale * gamma^d(next)
    (or the progress form, ``normalize_distance``); A_S normalizes it within the anchor-state
    group (the turns of the group taken in the same state; a singleton or tied group gives 0),
    and A_E is the episode-level GRPO advantage of the trajectory.
    """
    anchor = anchor_ids(batch, None)
    n = int(anchor.max()) + 1 if anchor.size else 0
    a_step = normalize_in_groups(step_returns(batch, config), anchor, n, config.norm, config.eps)
    adv = config.step_weight * a_step
    if config.episode_weight:
        a_episode = grpo_trajectory_advantages(batch, config.norm, config.eps)[batch.turn_traj]
        adv = adv + config.episode_weight * a_episode
    return adv.astype(np.float32)
