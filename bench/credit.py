"""Throughput of the credit estimators on a synthetic batch.

    python bench/credit.py [--groups 128] [--group-size 8] [--max-turns 50] [--repeats 7]

Builds ``groups x group-size`` trajectories of 1..max-turns turns whose states come from a small
per-group pool (so anchors and graph edges repeat, as in a real environment), then times each
estimator on the same batch (flat index arrays already built, as in the trainer, where one batch
feeds one estimator). Times all seven registered estimators (grpo, rloo, turn_rloo, gigpo, salt,
hgpo, graphgpo; some with a second option set) and salt_graphs. Prints best and median wall time,
turns per second (median) and the share of a 60 s training iteration the estimator would take.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import numpy as np

import agentgym.credit as credit
from agentgym.data import Batch, Trajectory, Turn

ITERATION_S = 60.0
ROOMS = ("kitchen", "hall", "closet", "garden", "cellar", "attic", "study", "porch")
THINGS = ("key", "lamp", "book", "coin", "box", "map")


def synthetic_batch(groups: int, group_size: int, max_turns: int, pool: int, seed: int) -> Batch:
    """Random walks over a per-group pool of ``pool`` text states; sparse 0/1 final reward."""
    rng = random.Random(seed)
    trajs = []
    for g in range(groups):
        states = [
            f"You are in the {rng.choice(ROOMS)}. You see a {rng.choice(THINGS)} and a "
            f"{rng.choice(THINGS)}. (task {g}, place {i})"
            for i in range(pool)
        ]
        for j in range(group_size):
            n = rng.randint(max(1, max_turns // 5), max_turns)
            won = rng.random() < 0.4
            turns = []
            for t in range(n):
                last = t == n - 1
                action = f"{rng.choice(('go', 'take', 'open', 'look'))} {rng.choice(THINGS)}"
                turns.append(
                    Turn(
                        observation="",
                        output=action,
                        action=action,
                        reward=1.0 if (last and won) else 0.0,
                        terminated=last and won,
                        truncated=last and not won,
                        state_key=rng.choice(states),
                        info={"state_key": rng.choice(states)} if last else {},
                    )
                )
            trajs.append(
                Trajectory(
                    env_id="bench/Rooms-v0",
                    task_id=f"task{g}",
                    seed=g,
                    group_id=f"task{g}",
                    turns=tuple(turns),
                    won=won,
                    traj_id=f"{g}-{j}",
                )
            )
    rng.shuffle(trajs)
    return Batch(tuple(trajs))


def warm(batch: Batch) -> float:
    """Build the batch's cached flat arrays once; seconds it took."""
    start = time.perf_counter()
    for attr in ("turn_traj", "turn_index", "turn_group", "rewards", "returns"):
        getattr(batch, attr)
    for attr in ("state_keys", "next_state_keys", "actions"):
        getattr(batch, attr)
    return time.perf_counter() - start


def timeit(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def cases() -> list[tuple[str, str, dict]]:
    """(label, estimator name, options) to time."""
    return [
        ("grpo", "grpo", {}),
        ("rloo", "rloo", {}),
        ("turn_rloo", "turn_rloo", {"gamma": 0.95}),
        ("gigpo", "gigpo", {}),
        ("gigpo sim>=0.8", "gigpo", {"similarity_threshold": 0.8}),
        ("salt", "salt", {}),
        ("salt per-traj", "salt", {"count": "trajectory"}),
        ("hgpo", "hgpo", {}),
        ("hgpo K=4 base", "hgpo", {"history_length": 4, "base_group": True}),
        ("graphgpo", "graphgpo", {}),
        ("graphgpo progress", "graphgpo", {"normalize_distance": True}),
    ]


def main(argv: list[str] | None = None) -> int:
    """Build the batch, time every estimator, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=128)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-turns", type=int, default=50)
    parser.add_argument("--pool", type=int, default=12, help="distinct states per group")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    batch = synthetic_batch(args.groups, args.group_size, args.max_turns, args.pool, args.seed)
    built = time.perf_counter() - start
    arrays = warm(batch)
    turns = batch.num_turns
    print(
        f"batch: {args.groups} groups x {args.group_size} trajectories, {turns} turns "
        f"(built in {built:.2f} s; flat arrays {arrays * 1e3:.0f} ms)"
    )
    print(f"{'estimator':<16}{'best ms':>9}{'median ms':>11}{'turns/s':>10}{'% of 60 s':>11}")
    rows = [
        (label, lambda n=name, o=opts: credit.compute(n, batch, o)) for label, name, opts in cases()
    ]
    rows.append(("salt_graphs", lambda: credit.salt_graphs(batch)))
    for label, fn in rows:
        times = timeit(fn, args.repeats)
        best, median = min(times), statistics.median(times)
        print(
            f"{label:<16}{best * 1e3:>9.2f}{median * 1e3:>11.2f}"
            f"{turns / median:>10.3g}{100 * median / ITERATION_S:>10.4f}%"
        )
    for name in credit.names():
        assert np.isfinite(credit.compute(name, batch)).all(), name
    missing = set(credit.names()) - {name for _, name, _ in cases()}
    assert not missing, f"bench/credit.py does not time {sorted(missing)}"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
