"""Group filtering before the update: leave out groups whose returns carry no comparison.

A group whose trajectories all earned the same return teaches a group-relative estimator
nothing (its episode advantages are 0) while still costing a forward and backward pass, and
groups with little return spread add mostly noise. Two filters (``trainer.filter_groups``):

- ``zero_variance``: drop every group whose returns are all equal (up to rounding), as DAPO's
  dynamic sampling does (Yu et al. 2025, "DAPO"); DAPO then samples more groups to refill the
  batch, agentgym trains on the smaller batch.
- ``top_fraction``: keep the ceil(fraction * G) groups with the largest return standard
  deviation and drop the rest (RAGEN's StarPO-S, Wang et al. 2025, keeps its most uncertain
  prompts); a group of zero variance is never kept.

The returns are those the credit estimator saw (after reward shaping). Step-level estimators
can give non-zero advantages inside a zero-variance group (GiGPO with gamma < 1 prefers the
shorter of two wins); filtering drops that signal too. Groups of one trajectory have zero
variance.
"""

from __future__ import annotations

import math

import numpy as np

from agentgym.credit._segments import tied_groups
from agentgym.data import Batch
from agentgym.trainers.options import FilterGroupsSection


def group_return_std(batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """([G] sample std of each group's returns, 0 when tied or alone; [G] whether it varies)."""
    n = len(batch.group_ids)
    ids = batch.traj_group
    count = np.bincount(ids, minlength=n)
    mean = np.bincount(ids, weights=batch.returns, minlength=n) / np.maximum(count, 1)
    dev = batch.returns - mean[ids]
    var = np.bincount(ids, weights=dev * dev, minlength=n) / np.maximum(count - 1, 1)
    varies = (count > 1) & ~tied_groups(batch.returns, ids, n)
    return np.where(varies, np.sqrt(var), 0.0), varies


def keep_groups(batch: Batch, section: FilterGroupsSection) -> tuple[np.ndarray, dict[str, float]]:
    """([N] whether each trajectory takes part in the update, metrics of what was filtered)."""
    n_groups = len(batch.group_ids)
    std, varies = group_return_std(batch)
    if section.mode == "off":
        keep_group = np.ones(n_groups, dtype=bool)
    elif section.mode == "zero_variance":
        keep_group = varies
    elif section.mode == "top_fraction":
        quota = math.ceil(section.fraction * n_groups)
        order = np.argsort(-std, kind="stable")[:quota]  # largest std first, batch order on ties
        keep_group = np.zeros(n_groups, dtype=bool)
        keep_group[order] = True
        keep_group &= varies
    else:
        raise ValueError(
            f"trainer.filter_groups.mode={section.mode!r} is not one of "
            "'off', 'zero_variance', 'top_fraction'"
        )
    keep = keep_group[batch.traj_group] if len(batch) else np.zeros(0, dtype=bool)
    metrics = {
        "filter_groups_kept": float(keep_group.sum()),
        "filter_groups_dropped": float(n_groups - keep_group.sum()),
        "filter_groups_zero_variance": float(n_groups - varies.sum()),
        "filter_trajectories_dropped": float(len(batch) - keep.sum()),
    }
    return keep, metrics


def select_trajectories(
    batch: Batch, advantages: np.ndarray, keep: np.ndarray
) -> tuple[Batch, np.ndarray]:
    """The sub-batch of the kept trajectories (batch order) and their turns' advantages."""
    if keep.all():
        return batch, advantages
    turn_keep = keep[batch.turn_traj]
    kept = tuple(t for t, k in zip(batch.trajectories, keep, strict=True) if k)
    return Batch(kept), np.asarray(advantages)[turn_keep]
