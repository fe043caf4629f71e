"""Paired comparison of two evaluations on one panel (``agentgym compare A B``).

Both evaluations played the same episodes (same panel hash, :mod:`agentgym.panel`), so their
outcomes pair up by (seed, sample). From the pairs:

- success rates of A and B with Wilson 95% intervals (:func:`agentgym.evaluate.wilson_interval`);
- the discordant counts: b = A won and B lost, c = A lost and B won;
- the exact McNemar test: under "A and B succeed equally often", each discordant pair is B's
  win with probability 1/2, so p = min(1, 2 * P[Binomial(b + c, 1/2) <= min(b, c)]) (two-sided);
- a paired bootstrap 95% interval of the difference in success rate, B - A: tasks are drawn
  with replacement (a task carries all its samples, so several samples per task stay
  correlated), with a seeded numpy generator.

With one sample per task, McNemar's pairs are independent; with several, the test treats the
samples of a task as independent pairs (optimistic), while the bootstrap, which resamples
tasks, does not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentgym.evaluate import wilson_interval


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value of ``b`` and ``c`` discordant pairs (1.0 when none)."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def paired_bootstrap(
    won_a: np.ndarray,
    won_b: np.ndarray,
    tasks: np.ndarray,
    *,
    resamples: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of mean(won_b) - mean(won_a) over ``resamples`` bootstrap draws of
    the tasks (``tasks[i]`` is the task index 0..K-1 of pair i; a drawn task brings all its
    pairs). Seeded: the same inputs give the same interval."""
    won_a, won_b = np.asarray(won_a, dtype=np.float64), np.asarray(won_b, dtype=np.float64)
    tasks = np.asarray(tasks, dtype=np.int64)
    if won_a.size == 0:
        return 0.0, 0.0
    k = int(tasks.max()) + 1
    diff = np.bincount(tasks, weights=won_b - won_a, minlength=k)  # [K] summed per task
    size = np.bincount(tasks, minlength=k).astype(np.float64)  # [K] pairs per task
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(resamples, k))  # [R, K] tasks of each resample
    stats = diff[draws].sum(axis=1) / size[draws].sum(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Pair:
    """One episode of the panel as both sides played it."""

    task_id: str
    seed: int
    sample: int
    won_a: bool
    won_b: bool
    return_a: float
    return_b: float
    turns_a: int
    turns_b: int


@dataclass(frozen=True)
class Comparison:
    """The paired statistics of two evaluations on one panel."""

    pairs: tuple[Pair, ...]
    both: int
    """Pairs both sides won."""
    neither: int
    b: int
    """A won, B lost."""
    c: int
    """A lost, B won."""
    p_value: float
    """Exact McNemar, two-sided."""
    diff: float
    """Success rate of B minus that of A."""
    diff_interval: tuple[float, float]
    """Paired bootstrap 95% interval of ``diff``."""

    @property
    def n(self) -> int:
        return len(self.pairs)

    @property
    def successes_a(self) -> int:
        return self.both + self.b

    @property
    def successes_b(self) -> int:
        return self.both + self.c

    def interval_a(self) -> tuple[float, float]:
        return wilson_interval(self.successes_a, self.n)

    def interval_b(self) -> tuple[float, float]:
        return wilson_interval(self.successes_b, self.n)

    def as_dict(self) -> dict[str, Any]:
        return {
            "episodes": self.n,
            "success_a": self.successes_a / self.n if self.n else 0.0,
            "success_b": self.successes_b / self.n if self.n else 0.0,
            "ci_a": list(self.interval_a()),
            "ci_b": list(self.interval_b()),
            "both": self.both,
            "neither": self.neither,
            "a_only": self.b,
            "b_only": self.c,
            "mcnemar_p": self.p_value,
            "diff": self.diff,
            "diff_ci": list(self.diff_interval),
        }


def pair_episodes(
    a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]
) -> tuple[Pair, ...]:
    """Pairs of the episode records of two evaluations, matched by (seed, sample), in A's
    order. Every episode must have its partner (true on one panel)."""
    index = {(int(e["seed"]), int(e.get("sample", 0))): e for e in b}
    pairs = []
    for ea in a:
        key = (int(ea["seed"]), int(ea.get("sample", 0)))
        if key not in index:
            raise ValueError(f"episode seed {key[0]} sample {key[1]} of A has no partner in B")
        eb = index[key]
        pairs.append(
            Pair(
                str(ea["task_id"]),
                key[0],
                key[1],
                bool(ea["won"]),
                bool(eb["won"]),
                float(ea["return"]),
                float(eb["return"]),
                int(ea["turns"]),
                int(eb["turns"]),
            )
        )
    if len(pairs) != len(b):
        raise ValueError(f"A has {len(pairs)} episodes and B {len(b)}; they are not one panel")
    return tuple(pairs)


def compare_episodes(
    a: Sequence[Mapping[str, Any]],
    b: Sequence[Mapping[str, Any]],
    *,
    resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """The paired comparison of two evaluations' episode records (see the module docstring)."""
    pairs = pair_episodes(a, b)
    won_a = np.array([p.won_a for p in pairs], dtype=bool)
    won_b = np.array([p.won_b for p in pairs], dtype=bool)
    task_of = {s: i for i, s in enumerate(dict.fromkeys(p.seed for p in pairs))}
    tasks = np.array([task_of[p.seed] for p in pairs], dtype=np.int64)
    b_count = int((won_a & ~won_b).sum())
    c_count = int((~won_a & won_b).sum())
    n = len(pairs)
    return Comparison(
        pairs=pairs,
        both=int((won_a & won_b).sum()),
        neither=int((~won_a & ~won_b).sum()),
        b=b_count,
        c=c_count,
        p_value=mcnemar_exact(b_count, c_count),
        diff=(c_count - b_count) / n if n else 0.0,
        diff_interval=paired_bootstrap(won_a, won_b, tasks, resamples=resamples, seed=seed),
    )


__all__ = ["Comparison", "Pair", "compare_episodes", "mcnemar_exact", "pair_episodes"]
