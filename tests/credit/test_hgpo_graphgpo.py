"""Properties of hgpo and graphgpo beyond the shared invariants (hypothesis and random batches)."""

from __future__ import annotations

import numpy as np
import pytest
from credit_batches import make_traj, random_batch
from credit_reference import ref_graphgpo, ref_hgpo
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgym.credit import compute, graph_distances
from agentgym.credit.hgpo import normalize_level, window_ids
from agentgym.credit.turn_rloo import returns_to_go
from agentgym.data import Batch

FAST = settings(max_examples=40, deadline=None)
STATES = ("s0", "s1", "hub")

rewards = st.floats(-2, 2, allow_nan=False).map(lambda x: round(x, 3))
steps = st.lists(
    st.tuples(st.sampled_from(STATES), st.sampled_from(("a", "b")), rewards), min_size=1, max_size=6
)
groups = st.lists(steps, min_size=2, max_size=6)


def unique_states(trajs: list) -> Batch:
    """The same rewards, every turn in a state no other turn of the group visits."""
    return Batch(
        tuple(
            make_traj("g", [(f"{i}-{j}", a, r) for j, (_, a, r) in enumerate(t)])
            for i, t in enumerate(trajs)
        )
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("gamma", [0.95, 1.0, 0.0])
def test_hgpo_depth_zero_is_the_gigpo_step_advantage(seed: int, gamma: float) -> None:
    # K = 0 keeps only the anchor-state level: GiGPO's A_S = gigpo - grpo (mean_norm: no std)
    batch = random_batch(seed)
    hgpo = compute("hgpo", batch, {"history_length": 0, "norm": "mean_norm", "gamma": gamma})
    gigpo = compute("gigpo", batch, {"norm": "mean_norm", "gamma": gamma})
    episode = compute("grpo", batch, {"norm": "mean_norm"})
    np.testing.assert_allclose(hgpo, gigpo - episode, atol=1e-5)


@FAST
@given(groups, st.sampled_from(["std", "mean_norm"]), st.integers(0, 4))
def test_hgpo_turns_in_unshared_states_get_zero_or_the_episode_advantage(
    trajs: list, norm: str, depth: int
) -> None:
    # a singleton anchor group makes every deeper group a singleton too
    batch = unique_states(trajs)
    options = {"norm": norm, "history_length": depth}
    np.testing.assert_array_equal(compute("hgpo", batch, options), 0.0)
    with_base = compute("hgpo", batch, {**options, "base_group": True})
    np.testing.assert_allclose(with_base, compute("grpo", batch, {"norm": norm}), atol=1e-6)


def level_advantages(batch: Batch, depth: int, norm: str) -> tuple[np.ndarray, np.ndarray]:
    """[L, T] advantage of each level alone and [L, T] whether it is informative."""
    returns = returns_to_go(batch, 0.95)
    advs, used = [], []
    for ids in window_ids(batch, depth):
        adv, informative = np.zeros(batch.num_turns), np.zeros(batch.num_turns, dtype=bool)
        rows = np.flatnonzero(ids >= 0)
        if rows.size:
            a, i = normalize_level(returns[rows], ids[rows], int(ids.max()) + 1, norm, 1e-6)
            adv[rows], informative[rows] = a, i
        advs.append(adv)
        used.append(informative)
    return np.array(advs), np.array(used)


@FAST
@given(groups, st.floats(0.0, 5.0), st.sampled_from(["std", "mean_norm"]))
def test_hgpo_lies_between_its_informative_levels(trajs: list, alpha: float, norm: str) -> None:
    batch = Batch(tuple(make_traj("g", t) for t in trajs))
    adv = compute("hgpo", batch, {"history_length": 3, "alpha": alpha, "norm": norm})
    levels, used = level_advantages(batch, 3, norm)
    lo = np.where(used, levels, np.inf).min(axis=0)
    hi = np.where(used, levels, -np.inf).max(axis=0)
    some = used.any(axis=0)
    np.testing.assert_array_equal(adv[~some], 0.0)
    assert np.all(adv[some] >= lo[some] - 1e-5) and np.all(adv[some] <= hi[some] + 1e-5)
    # a huge alpha leaves the deepest informative level
    deep = compute("hgpo", batch, {"history_length": 3, "alpha": 100.0, "norm": norm})
    deepest = levels[np.argmax(used * np.arange(1, 5)[:, None], axis=0), np.arange(len(adv))]
    np.testing.assert_allclose(deep[some], deepest[some], rtol=1e-4, atol=1e-4)


def test_hgpo_deeper_history_judges_a_step_against_its_own_context() -> None:
    # two ways into "hall": from "kitchen" (one win, one loss) and from "closet" (two losses)
    trajs = [
        ([("kitchen", "go", 0.0), ("hall", "open", 1.0)], True),
        ([("kitchen", "go", 0.0), ("hall", "open", 0.0)], False),
        ([("closet", "go", 0.0), ("hall", "open", 0.0)], False),
        ([("closet", "go", 0.0), ("hall", "open", 0.0)], False),
    ]
    batch = Batch(tuple(make_traj("g", t, won=won) for t, won in trajs))
    hall = batch.traj_offset + 1
    options = {"norm": "mean_norm", "gamma": 1.0}
    flat = compute("hgpo", batch, {**options, "history_length": 0})
    np.testing.assert_allclose(flat[hall], [0.75, -0.25, -0.25, -0.25])
    # level 2 (weight 3): (kitchen, hall) returns [1, 0] give +-0.5; (closet, hall) ties and
    # drops out instead of pulling its turns toward 0
    deep = compute("hgpo", batch, {**options, "history_length": 1})
    np.testing.assert_allclose(deep[hall], [0.6, -0.4, -0.25, -0.25])


@pytest.mark.parametrize("seed", range(6))
def test_graph_distances_chain_along_trajectories_and_bound_winning_paths(seed: int) -> None:
    batch = random_batch(seed, n_groups=5, max_len=8)
    d_state, d_next = graph_distances(batch)
    for i, traj in enumerate(batch.trajectories):
        first, n = int(batch.traj_offset[i]), int(batch.traj_len[i])
        np.testing.assert_array_equal(d_state[first + 1 : first + n], d_next[first : first + n - 1])
        if traj.won:  # a winning trajectory is itself a path: d(state_t) <= turns left
            assert d_next[first + n - 1] == 0
            assert np.all(d_state[first : first + n] <= np.arange(n, 0, -1))


@FAST
@given(groups)
def test_graphgpo_without_a_win_has_no_step_signal(trajs: list) -> None:
    batch = Batch(tuple(make_traj("g", t) for t in trajs))  # nobody wins
    d_state, d_next = graph_distances(batch)
    np.testing.assert_array_equal(d_state, 1.0)
    np.testing.assert_array_equal(d_next, 1.0)
    step = compute("graphgpo", batch, {"episode_weight": 0.0})
    np.testing.assert_array_equal(step, 0.0)


@FAST
@given(groups, st.floats(0.1, 50.0))
def test_graphgpo_mean_norm_step_advantage_is_linear_in_scale(trajs: list, scale: float) -> None:
    wins = [make_traj("g", t, won=i == 0) for i, t in enumerate(trajs)]
    batch = Batch(tuple(wins))
    options = {"norm": "mean_norm", "episode_weight": 0.0, "gamma": 0.5}
    one = compute("graphgpo", batch, options)
    many = compute("graphgpo", batch, {**options, "scale": scale})
    np.testing.assert_allclose(many, one * scale, rtol=1e-4, atol=1e-5)


def test_graphgpo_credits_a_failed_step_into_a_state_that_leads_to_success() -> None:
    # t2 fails, but its first step enters "hall", from which t1 won: graph credit, not outcome
    t1 = make_traj("g", [("start", "east", 0.0), ("hall", "open", 1.0)], won=True)
    t2 = make_traj("g", [("start", "east", 0.0), ("hall", "sleep", 0.0)], terminated=True)
    t3 = make_traj("g", [("start", "west", 0.0), ("cellar", "sleep", 0.0)], terminated=True)
    batch = Batch((t1, t2, t3))
    d_state, _ = graph_distances(batch)
    np.testing.assert_array_equal(d_state, [2, 1, 2, 1, 2, 3])
    adv = compute("graphgpo", batch, {"episode_weight": 0.0})
    assert adv[2] > 0 > adv[4]  # t2's "east" beats t3's "west" though both failed
    assert adv[2] == pytest.approx(adv[0])


HGPO_OPTIONS = st.fixed_dictionaries(
    {
        "gamma": st.sampled_from([0.0, 0.5, 0.95, 1.0]),
        "history_length": st.integers(0, 4),
        "alpha": st.sampled_from([0.0, 1.0, 3.5]),
        "norm": st.sampled_from(["std", "mean_norm"]),
        "base_group": st.booleans(),
    }
)
GRAPHGPO_OPTIONS = st.fixed_dictionaries(
    {
        "gamma": st.sampled_from([0.0, 0.1, 0.5, 1.0]),
        "normalize_distance": st.booleans(),
        "scale": st.sampled_from([1.0, 10.0]),
        "episode_weight": st.sampled_from([0.0, 1.0]),
        "norm": st.sampled_from(["std", "mean_norm"]),
    }
)
one_traj = st.tuples(steps, st.booleans(), st.sampled_from([None, *STATES]))
batches = st.lists(st.lists(one_traj, min_size=1, max_size=6), min_size=1, max_size=3)


def batch_of(groups: list) -> Batch:
    trajs = [
        make_traj(f"g{g}", s, won=won, terminated=won, reached=reached, traj_id=f"{g}-{i}")
        for g, group in enumerate(groups)
        for i, (s, won, reached) in enumerate(group)
    ]
    return Batch(tuple(trajs[::2] + trajs[1::2]))  # groups interleaved


@FAST
@given(batches, HGPO_OPTIONS)
def test_hgpo_matches_the_loop_reference(groups: list, options: dict) -> None:
    batch = batch_of(groups)
    expected = [v for row in ref_hgpo(batch, **options) for v in row]
    np.testing.assert_allclose(compute("hgpo", batch, options), expected, rtol=1e-5, atol=1e-5)


@FAST
@given(batches, GRAPHGPO_OPTIONS)
def test_graphgpo_matches_the_loop_reference(groups: list, options: dict) -> None:
    batch = batch_of(groups)
    expected = [v for row in ref_graphgpo(batch, **options) for v in row]
    np.testing.assert_allclose(compute("graphgpo", batch, options), expected, rtol=1e-5, atol=1e-5)
