"""salt_graphs: the trajectory graph kept for the viewer (Example A)."""

from __future__ import annotations

import dataclasses
import math

import networkx as nx
import pytest
from credit_batches import make_traj

from agentgym.credit import SALTConfig, salt_graphs
from agentgym.credit.salt import END_KEY
from agentgym.data import TERMINAL_SUCCESS, TERMINAL_TRUNCATED, Batch


@pytest.fixture
def graph(batch_a: Batch) -> nx.MultiDiGraph:
    graphs = salt_graphs(batch_a)
    assert list(graphs) == ["A"]
    return graphs["A"]


def test_nodes_are_states_and_sentinels(graph: nx.MultiDiGraph) -> None:
    assert isinstance(graph, nx.DiGraph)
    assert set(graph.nodes) == {"S0", "S1", "S2", "S3", TERMINAL_SUCCESS, TERMINAL_TRUNCATED}
    assert graph.nodes[TERMINAL_SUCCESS]["terminal"] and not graph.nodes["S1"]["terminal"]


def test_edges_carry_action_count_trajectories_advantage(graph: nx.MultiDiGraph) -> None:
    look = graph.edges["S1", "S1", "look"]
    assert look["action"] == "look" and look["count"] == 4 and look["trajectories"] == (1, 3)
    assert look["advantage"] == pytest.approx(-0.25)
    east = graph.edges["S0", "S1", "go east"]
    assert east["count"] == 3 and east["trajectories"] == (0, 1, 3)
    assert east["advantage"] == pytest.approx(1 / 6)
    door = graph.edges["S3", TERMINAL_SUCCESS, "open door"]
    assert door["count"] == 2 and door["advantage"] == pytest.approx(0.5)


def test_turn_edges_cover_every_turn_once(graph: nx.MultiDiGraph, batch_a: Batch) -> None:
    turn_edges = [d for *_, d in graph.edges(data=True) if d["action"] is not None]
    assert sum(d["count"] for d in turn_edges) == batch_a.num_turns


def test_truncated_trajectories_end_in_the_sentinel(graph: nx.MultiDiGraph) -> None:
    from_s0 = graph.edges["S0", TERMINAL_TRUNCATED, END_KEY]  # t3 stopped in S0
    from_s1 = graph.edges["S1", TERMINAL_TRUNCATED, END_KEY]  # t4 stopped in S1
    assert from_s0["trajectories"] == (2,) and from_s1["trajectories"] == (3,)
    assert from_s0["action"] is None and math.isnan(from_s0["advantage"])


def test_advantages_follow_the_config(batch_a: Batch) -> None:
    graph = salt_graphs(batch_a, SALTConfig(count="trajectory"))["A"]
    assert graph.edges["S1", "S1", "look"]["advantage"] == pytest.approx(0.0)


def test_truncation_without_state_info_goes_to_the_sentinel() -> None:
    batch = Batch(
        (
            make_traj("g", [("S0", "wait", 0.0)], won=False),  # no info: unknown end state
            make_traj("g", [("S0", "go", 1.0)], won=True),
        )
    )
    graph = salt_graphs(batch)["g"]
    assert graph.edges["S0", TERMINAL_TRUNCATED, "wait"]["advantage"] == pytest.approx(-0.5)
    assert not graph.has_edge("S0", TERMINAL_TRUNCATED, END_KEY)


def test_groups_get_separate_graphs(batch_a: Batch) -> None:
    other = Batch(tuple(dataclasses.replace(t, group_id="B") for t in batch_a.trajectories))
    both = Batch(batch_a.trajectories + other.trajectories)
    graphs = salt_graphs(both)
    assert list(graphs) == ["A", "B"]
    assert graphs["B"].edges["S1", "S1", "look"]["trajectories"] == (5, 7)
    assert graphs["A"].edges["S1", "S1", "look"]["count"] == 4
