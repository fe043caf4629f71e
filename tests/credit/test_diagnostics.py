"""Credit diagnostics: hand-counted on the worked example, and against SALT's graph builder."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from credit_batches import example_a, make_traj, random_batch

from agentgym.credit.diagnostics import (
    anchor_stats,
    credit_diagnostics,
    salt_graph_stats,
    zero_variance_group_share,
)
from agentgym.credit.salt import salt_graphs
from agentgym.data import Batch


def test_example_a_hand_counted(batch_a):
    # anchors S0 {4 turns}, S1 {6}, S2 {3}, S3 {2}: 4 anchor groups over 15 turns, none alone;
    # step returns (gamma 0.95) differ within S0 and S1, are tied within S2 (all 0) and S3 (1, 1)
    assert anchor_stats(batch_a) == pytest.approx(
        {
            "anchor_groups_per_turn": 4 / 15,
            "singleton_anchor_turn_share": 0.0,
            "step_group_size": (4 + 6 + 3 + 2) / 4,
            "step_signal_turn_share": 10 / 15,
        }
    )
    # nodes S0 S1 S2 S3 won cut; edges east, take, open, S1-look-S1 (all merged), west,
    # S2-look-S2, S2-east-S0 and the end edges S0->cut (t3) and S1->cut (t4);
    # only S2 is visited by one trajectory; t3's 4 turns are the only ones on unmerged edges
    assert salt_graph_stats(batch_a) == {
        "nodes": 6.0,
        "edges": 9.0,
        "merged_nodes": 5.0,
        "merged_edges": 4.0,
        "merged_turn_share": 11 / 15,
    }
    assert zero_variance_group_share(batch_a) == 0.0


def test_zero_variance_share_counts_ties_and_singletons():
    tied = [
        make_traj("Z", [("s", "a", 0.1), ("t", "b", 0.2)], traj_id="z1"),
        make_traj("Z", [("s", "a", 0.3)], traj_id="z2"),  # 0.1 + 0.2 vs 0.3: a rounding tie
    ]
    alone = [make_traj("Y", [("s", "a", 1.0)], won=True, traj_id="y1")]
    batch = Batch(example_a().trajectories + tuple(tied) + tuple(alone))
    assert batch.returns[4] != batch.returns[5]  # not equal as floats
    assert zero_variance_group_share(batch) == pytest.approx(2 / 3)


def test_no_revisits_means_no_anchors_whatever_the_estimator():
    trajs = [
        make_traj("G", [(f"u{j}-{i}", "go", 0.0) for i in range(3)], traj_id=f"t{j}")
        for j in range(2)
    ]
    d = credit_diagnostics(Batch(tuple(trajs)))
    assert d["credit_anchor_groups_per_turn"] == 1.0
    assert d["credit_singleton_anchor_turn_share"] == 1.0
    assert d["credit_step_group_size"] == 0.0 and d["credit_step_signal_turn_share"] == 0.0
    assert d["credit_salt_merged_edges"] == 0.0 and d["credit_salt_merged_turn_share"] == 0.0
    assert d["credit_zero_variance_group_share"] == 1.0
    assert credit_diagnostics(Batch(())) == {k: 0.0 for k in d}


def graph_counts(batch: Batch) -> dict[str, float]:
    """The same counts read off the networkx graphs of salt_graphs."""
    nodes = edges = merged_nodes = merged_edges = 0
    for g in salt_graphs(batch).values():
        nodes += g.number_of_nodes()
        edges += g.number_of_edges()
        merged_edges += sum(len(d["trajectories"]) > 1 for _, _, d in g.edges(data=True))
        for n in g.nodes:
            seen = {t for *_, d in g.in_edges(n, data=True) for t in d["trajectories"]}
            seen |= {t for *_, d in g.out_edges(n, data=True) for t in d["trajectories"]}
            merged_nodes += len(seen) > 1
    return {
        "nodes": nodes,
        "edges": edges,
        "merged_nodes": merged_nodes,
        "merged_edges": merged_edges,
    }


def naive_anchors(batch: Batch) -> tuple[float, float]:
    """(anchor groups per turn, singleton share) by counting (group, state key) pairs."""
    keys = [(t.group_id, turn.state_key) for t in batch.trajectories for turn in t.turns]
    count = Counter(keys)
    return len(count) / len(keys), sum(count[k] == 1 for k in keys) / len(keys)


@pytest.mark.parametrize("seed", range(12))
def test_random_batches_agree_with_the_graph_builder_and_naive_counts(seed):
    batch = random_batch(seed, n_groups=3, max_group=4, max_len=5)
    stats = salt_graph_stats(batch)
    assert {k: stats[k] for k in graph_counts(batch)} == graph_counts(batch)
    per_turn, singletons = naive_anchors(batch)
    got = anchor_stats(batch)
    assert got["anchor_groups_per_turn"] == pytest.approx(per_turn)
    assert got["singleton_anchor_turn_share"] == pytest.approx(singletons)
    # the step-signal share is the share of turns where GiGPO's step advantage can be non-zero
    from agentgym.credit.gigpo import GiGPOConfig, step_advantages

    nonzero = np.abs(step_advantages(batch, GiGPOConfig(norm="mean_norm"))) > 0
    assert nonzero.mean() <= got["step_signal_turn_share"] + 1e-12
