"""Paired statistics of `agentgym compare` against hand-computed and brute-force numbers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from agentgym.compare import compare_episodes, mcnemar_exact, pair_episodes, paired_bootstrap
from agentgym.evaluate import wilson_interval


def brute_force_mcnemar(b: int, c: int) -> float:
    """P(an outcome at least as far from n/2 as c) over all 2^n equally likely sign patterns."""
    n = b + c
    far = abs(c - n / 2)
    hits = sum(abs(sum(s) - n / 2) >= far - 1e-12 for s in itertools.product((0, 1), repeat=n))
    return hits / 2**n


def test_mcnemar_exact_hand_computed():
    assert mcnemar_exact(1, 8) == pytest.approx(2 * (1 + 9) / 2**9) == pytest.approx(0.0390625)
    assert mcnemar_exact(8, 1) == mcnemar_exact(1, 8)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(2, 10) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0  # 2 * 42/64 > 1: capped
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


@pytest.mark.parametrize("b,c", [(b, c) for b in range(7) for c in range(7) if b != c])
def test_mcnemar_exact_equals_brute_force_enumeration(b, c):
    assert mcnemar_exact(b, c) == pytest.approx(brute_force_mcnemar(b, c))


def episodes(outcomes, samples=1):
    return [
        {
            "task_id": f"t{i // samples}",
            "seed": 100 + i // samples,
            "sample": i % samples,
            "won": bool(w),
            "return": float(w),
            "turns": 3,
        }
        for i, w in enumerate(outcomes)
    ]


def test_compare_episodes_counts_and_tests_the_discordant_pairs():
    # 10 pairs: 1 both won, b = 1 (A only), c = 8 (B only), 0 neither
    a = [1, 1] + [0] * 8
    b = [1, 0] + [1] * 8
    comp = compare_episodes(episodes(a), episodes(b), resamples=2000, seed=1)
    assert (comp.both, comp.b, comp.c, comp.neither) == (1, 1, 8, 0)
    assert comp.p_value == pytest.approx(0.0390625)
    assert comp.diff == pytest.approx(0.9 - 0.2)
    assert comp.interval_a() == wilson_interval(2, 10)
    assert comp.interval_b() == wilson_interval(9, 10)
    lo, hi = comp.diff_interval
    assert lo <= comp.diff <= hi and lo > 0


def test_pairs_match_by_seed_and_sample_not_by_order():
    a = episodes([1, 0, 0, 1], samples=2)
    b = list(reversed(episodes([0, 0, 1, 1], samples=2)))
    pairs = pair_episodes(a, b)
    assert [(p.seed, p.sample, p.won_a, p.won_b) for p in pairs] == [
        (100, 0, True, False),
        (100, 1, False, False),
        (101, 0, False, True),
        (101, 1, True, True),
    ]
    with pytest.raises(ValueError, match="no partner"):
        pair_episodes(a, b[:3])


def test_bootstrap_of_concordant_pairs_is_a_point_and_swapping_negates_it():
    won = np.array([1, 0, 1, 1, 0], dtype=bool)
    tasks = np.arange(5)
    assert paired_bootstrap(won, won, tasks) == (0.0, 0.0)
    a = np.array([1, 0, 0, 1, 0, 1, 0, 0], dtype=bool)
    b = np.array([1, 1, 1, 0, 0, 1, 1, 0], dtype=bool)
    lo, hi = paired_bootstrap(a, b, np.arange(8), seed=3)
    lo2, hi2 = paired_bootstrap(b, a, np.arange(8), seed=3)
    assert (lo2, hi2) == pytest.approx((-hi, -lo))
    assert paired_bootstrap(a, b, np.arange(8), seed=3) == (lo, hi)  # seeded


def test_bootstrap_interval_matches_the_normal_approximation_of_a_paired_difference():
    # n = 400 pairs, b = 60 (A only), c = 100 (B only): diff = 0.1, and the paired difference
    # d_i in {-1, 0, 1} has variance (b + c)/n - diff^2, so SE = sqrt(that / n)
    n, b, c = 400, 60, 100
    won_a = np.array([1] * b + [0] * c + [1] * 100 + [0] * (n - b - c - 100), dtype=bool)
    won_b = np.array([0] * b + [1] * c + [1] * 100 + [0] * (n - b - c - 100), dtype=bool)
    diff = (c - b) / n
    se = math.sqrt(((b + c) / n - diff**2) / n)
    lo, hi = paired_bootstrap(won_a, won_b, np.arange(n), resamples=20_000, seed=0)
    assert lo == pytest.approx(diff - 1.959964 * se, abs=0.006)
    assert hi == pytest.approx(diff + 1.959964 * se, abs=0.006)


def test_bootstrap_resamples_tasks_with_all_their_samples():
    # 10 tasks x 4 samples whose samples agree within a task: resampling tasks (clusters) gives
    # the spread of 10 units, wider than treating the 40 pairs as independent
    per_task_a = np.array([1, 0, 0, 1, 0, 1, 0, 0, 1, 0], dtype=bool)
    per_task_b = np.array([1, 1, 1, 0, 0, 1, 1, 0, 1, 1], dtype=bool)
    won_a, won_b = np.repeat(per_task_a, 4), np.repeat(per_task_b, 4)
    clustered = paired_bootstrap(won_a, won_b, np.repeat(np.arange(10), 4), seed=0)
    independent = paired_bootstrap(won_a, won_b, np.arange(40), seed=0)
    assert clustered[1] - clustered[0] > 1.5 * (independent[1] - independent[0])
