"""Prefill chunking: the dynamic programme finds the cheapest split, checked by brute force."""

import itertools
import random

import pytest

from agentgym.policy.kvcache import chunk_rows


def _cost(feeds, chunks, chunk_cost):
    return sum(len(c) * max(feeds[i] for i in c) + chunk_cost for c in chunks)


def _brute_force(feeds, max_batch, chunk_cost):
    """Cheapest split over every partition of the rows into chunks (any grouping)."""
    n, best = len(feeds), float("inf")
    for labels in itertools.product(range(n), repeat=n):
        groups: dict[int, list[int]] = {}
        for i, g in enumerate(labels):
            groups.setdefault(g, []).append(i)
        if all(len(g) <= max_batch for g in groups.values()):
            best = min(best, _cost(feeds, list(groups.values()), chunk_cost))
    return best


@pytest.mark.parametrize("trial", range(12))
def test_the_split_is_as_cheap_as_the_best_grouping(trial):
    rng = random.Random(trial)
    n = rng.randint(1, 6)
    feeds = [rng.choice([3, 40, 41, 100, 118, 250]) for _ in range(n)]
    max_batch, chunk_cost = rng.randint(1, 4), rng.choice([0, 10, 64, 500])
    chunks = chunk_rows(feeds, max_batch, chunk_cost)
    assert sorted(i for c in chunks for i in c) == list(range(n))  # every row once
    assert all(1 <= len(c) <= max_batch for c in chunks)
    assert _cost(feeds, chunks, chunk_cost) == _brute_force(feeds, max_batch, chunk_cost)


def test_a_turn_of_short_and_long_observations_splits_in_two():
    feeds = [41] * 11 + [111, 118, 111, 118, 111]
    chunks = chunk_rows(feeds, 16)
    assert len(chunks) == 2
    assert sorted(chunks[1]) == list(range(11))  # the short ones together
    padded = sum(len(c) * max(feeds[i] for i in c) for c in chunks)
    assert padded < 0.7 * len(feeds) * max(feeds)  # one chunk would pad 16 x 118
