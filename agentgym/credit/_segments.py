"""Vectorized helpers shared by the credit estimators.

Turn-level arrays are flat over the turn axis [T]; a trajectory is a contiguous segment of it
(``Batch.traj_offset`` / ``Batch.traj_len``), and groups, anchors and edges are integer ids.
Everything here is numpy over that flat axis: no Python loop over turns.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd

NORMS = ("std", "mean_norm")


def require_choice(field: str, value: Any, choices: Collection[Any]) -> None:
    """Raise a ValueError naming ``field``, the bad ``value`` and the valid ``choices``."""
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{field}={value!r} is not one of {valid}")


def require_range(field: str, value: float, low: float, high: float, *, open_low: bool) -> None:
    """Raise a ValueError unless ``low < value <= high`` (``low <=`` when not ``open_low``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{field}={value!r} must be a number")
    ok = (low < value if open_low else low <= value) and value <= high
    if not ok:
        bracket = "(" if open_low else "["
        raise ValueError(f"{field}={value!r} must lie in {bracket}{low}, {high}]")


def factorize(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Codes [T] (int64, 0..K-1 in order of first appearance) and the K distinct values.

    Hash-based (pandas), so long string keys are never copied into a fixed-width array.
    """
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    codes, uniques = pd.factorize(arr)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def combine(*codes: np.ndarray) -> np.ndarray:
    """[T] dense ids of the tuples ``(codes[0][t], codes[1][t], ...)``: equal tuples, equal ids.

    Combines pairwise so every intermediate id stays below T (no int64 overflow).
    """
    out = np.asarray(codes[0], dtype=np.int64)
    for c in codes[1:]:
        c = np.asarray(c, dtype=np.int64)
        if out.size == 0:
            return out
        out = pd.factorize(out * (int(c.max()) + 1) + c)[0].astype(np.int64)
    return out


def group_stats(
    values: np.ndarray, ids: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-id (count [n], mean [n], unbiased std [n]) of ``values`` [M] with ``ids`` [M] in 0..n-1.

    Two-pass (centre, then square) for accuracy. std is NaN where an id has fewer than 2 values.
    """
    count = np.bincount(ids, minlength=n)
    total = np.bincount(ids, weights=values, minlength=n)
    mean = total / np.maximum(count, 1)
    dev = values - mean[ids]
    sq = np.bincount(ids, weights=dev * dev, minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.where(count > 1, np.sqrt(sq / (count - 1)), np.nan)
    return count, mean, std


TIE_RTOL = 1e-6
"""Values of one id whose spread (max - min) is at most this times their largest magnitude are
a tie: float rounding (0.1 + 0.2 vs 0.3, float32 rewards summed in float64) must not become an
advantage once divided by a std of the same tiny size. 1e-6 is about 8 float32 ulps."""


def tied_groups(values: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """[n] whether the values of each id are equal up to rounding (see :data:`TIE_RTOL`)."""
    hi = np.full(n, -np.inf)
    lo = np.full(n, np.inf)
    scale = np.zeros(n)
    np.maximum.at(hi, ids, values)
    np.minimum.at(lo, ids, values)
    np.maximum.at(scale, ids, np.abs(values))
    with np.errstate(invalid="ignore"):
        return ~(hi - lo > TIE_RTOL * scale)


def normalize_in_groups(
    values: np.ndarray, ids: np.ndarray, n: int, norm: str, eps: float
) -> np.ndarray:
    """[M] ``values`` centred on their id's mean, divided by (std + eps) when ``norm == "std"``.

    An id holding a single value gets 0: its mean is itself and its std is undefined. An id
    whose values are equal up to rounding (:func:`tied_groups`) gets exactly 0 too.
    """
    count, mean, std = group_stats(values, ids, n)
    out = values - mean[ids]
    if norm == "std":
        with np.errstate(invalid="ignore"):
            out = out / (std[ids] + eps)
    keep = (count > 1) & ~tied_groups(values, ids, n)
    return np.where(keep[ids], out, 0.0)


def leave_one_out(values: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """[M] ``value - mean of the other values with the same id``; a lone value keeps itself."""
    count = np.bincount(ids, minlength=n)[ids]
    total = np.bincount(ids, weights=values, minlength=n)[ids]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = values - (total - values) / (count - 1)
    return np.where(count > 1, out, values)


def reverse_discounted_cumsum(
    values: np.ndarray, remaining: np.ndarray, gamma: float
) -> np.ndarray:
    """[T] ``G_t = sum_{k>=t} gamma^(k-t) v_k`` within each contiguous segment (trajectory).

    ``remaining[t]`` is the number of turns from t to the end of t's segment (>= 1). A parallel
    prefix scan: after the step with shift s, ``G_t`` sums the window [t, t + 2s) clipped to the
    segment, so log2(max length) vectorized steps suffice. No division by gamma^t, so it is exact
    for gamma = 0 and stable for long segments.
    """
    out = np.asarray(values, dtype=np.float64).copy()
    longest = int(remaining.max()) if remaining.size else 0
    shift = 1
    while shift < longest:
        ahead = np.zeros_like(out)
        ahead[:-shift] = out[shift:]  # G of the turn `shift` steps later (same segment or masked)
        out = out + np.where(remaining > shift, gamma**shift * ahead, 0.0)
        shift *= 2
    return out


def remaining_turns(
    turn_index: np.ndarray, traj_len: np.ndarray, turn_traj: np.ndarray
) -> np.ndarray:
    """[T] number of turns from each turn to the end of its trajectory, itself included."""
    return traj_len[turn_traj] - turn_index
