"""Batch builders for the credit tests: the worked examples and random batches."""

from __future__ import annotations

import random
from collections.abc import Sequence

from agentgym.data import Batch, Trajectory, Turn

Step = tuple[str, str, float]  # (state_key, action, reward)


def make_traj(
    group: str,
    steps: Sequence[Step],
    *,
    won: bool = False,
    terminated: bool | None = None,
    reached: str | None = None,
    traj_id: str = "",
) -> Trajectory:
    """A trajectory of ``steps``; each turn's step info names the state it led to.

    The last turn is terminated when ``won`` (or ``terminated``), truncated otherwise; its info
    carries ``reached`` as the state key after it, when given.
    """
    term = won if terminated is None else terminated
    turns = []
    for i, (state, action, reward) in enumerate(steps):
        last = i == len(steps) - 1
        nxt = reached if last else steps[i + 1][0]
        turns.append(
            Turn(
                observation=f"obs {state}",
                output=action,
                action=action,
                reward=float(reward),
                terminated=last and term,
                truncated=last and not term,
                state_key=state,
                info={} if nxt is None else {"state_key": nxt},
            )
        )
    return Trajectory(
        env_id="test/Room-v0",
        task_id=group,
        seed=0,
        group_id=group,
        turns=tuple(turns),
        won=won,
        traj_id=traj_id,
    )


def example_a(group: str = "A") -> Batch:
    """docs/credit.md, Example A: four trajectories in a key-and-door room."""
    return Batch(
        (
            make_traj(
                group,
                [("S0", "go east", 0), ("S1", "take key", 0), ("S3", "open door", 1)],
                won=True,
                traj_id="t1",
            ),
            make_traj(
                group,
                [
                    ("S0", "go east", 0),
                    ("S1", "look", 0),
                    ("S1", "take key", 0),
                    ("S3", "open door", 1),
                ],
                won=True,
                traj_id="t2",
            ),
            make_traj(
                group,
                [("S0", "go west", 0), ("S2", "look", 0), ("S2", "look", 0), ("S2", "go east", 0)],
                reached="S0",
                traj_id="t3",
            ),
            make_traj(
                group,
                [("S0", "go east", 0), ("S1", "look", 0), ("S1", "look", 0), ("S1", "look", 0)],
                reached="S1",
                traj_id="t4",
            ),
        )
    )


def example_b(group: str = "B", *, only_k1_at_turn_3: bool = False) -> Batch:
    """docs/credit.md, Example B: turn-level rewards, unequal lengths (k3 cut to 2 turns
    when ``only_k1_at_turn_3``)."""
    rewards = {"k1": [0.2, 0.5, 1.1], "k2": [0.0, 0.6], "k3": [0.3, 0.3, 0.3]}
    if only_k1_at_turn_3:
        rewards["k3"] = [0.3, 0.3]
    return Batch(
        tuple(
            make_traj(group, [(f"{k}-{i}", "act", r) for i, r in enumerate(rs)], traj_id=k)
            for k, rs in rewards.items()
        )
    )


WORDS = ("kitchen", "hall", "key", "door", "table", "lamp", "open", "closed")


def random_batch(
    seed: int,
    *,
    n_groups: int = 4,
    max_group: int = 5,
    max_len: int = 6,
    n_states: int = 4,
    n_actions: int = 3,
    dense: bool | None = None,
    text_keys: bool = False,
    shuffle: bool = True,
) -> Batch:
    """Random groups (sizes 1..max_group) with states and actions from small per-group pools,
    so states and transitions repeat; trajectories of all groups interleaved when ``shuffle``.

    Rewards are dense floats or a sparse final 0/1 (random per group unless ``dense`` is set).
    ``text_keys`` draws multi-word state keys, for similarity-based anchors.
    """
    rng = random.Random(seed)
    trajs = []
    for g in range(n_groups):
        if text_keys:
            pool = [" ".join(rng.sample(WORDS, rng.randint(1, 4))) for _ in range(n_states)]
        else:
            pool = [f"s{i}" for i in range(n_states)]  # same keys in every group
        is_dense = rng.random() < 0.5 if dense is None else dense
        for j in range(rng.randint(1, max_group)):
            n = rng.randint(1, max_len)
            states = [rng.choice(pool) for _ in range(n)]
            actions = [f"a{rng.randrange(n_actions)}" for _ in range(n)]
            won = rng.random() < 0.4
            if is_dense:
                rewards = [round(rng.uniform(-1, 1), 3) for _ in range(n)]
            else:
                rewards = [0.0] * (n - 1) + [1.0 if won else 0.0]
            steps = list(zip(states, actions, rewards, strict=True))
            reached = rng.choice([None, *pool])
            terminated = won or rng.random() < 0.3
            trajs.append(
                make_traj(
                    f"group{g}",
                    steps,
                    won=won,
                    terminated=terminated,
                    reached=reached,
                    traj_id=f"g{g}t{j}",
                )
            )
    if shuffle:
        rng.shuffle(trajs)
    return Batch(tuple(trajs))


def select_group(batch: Batch, group_id: str) -> Batch:
    """The sub-batch of one group, trajectories in their batch order."""
    return Batch(tuple(t for t in batch.trajectories if t.group_id == group_id))


def assert_rows(actual, expected: Sequence[Sequence[float]], atol: float = 1e-4) -> None:
    """``actual`` [T] equals the per-trajectory rows ``expected`` (concatenated) within atol."""
    import numpy as np

    flat = [v for row in expected for v in row]
    assert actual.shape == (len(flat),)
    np.testing.assert_allclose(actual, flat, rtol=0, atol=atol)
