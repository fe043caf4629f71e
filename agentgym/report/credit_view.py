"""The credit diagnostics of a run for the HTML report: a table per iteration and one curve.

The numbers are those the trainer logged in ``metrics.jsonl`` (its train records, computed on
the batch credit saw; see :mod:`agentgym.credit.diagnostics`). A run without them (an
``agentgym rollout`` run, or one trained before they existed) gets them computed from its
stored trajectories instead, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentgym.credit.diagnostics import PREFIX, credit_diagnostics
from agentgym.data import Batch
from agentgym.report.model import Entry, credit_configs
from agentgym.report.svg import line_chart

COLUMNS = (
    ("zero_variance_group_share", "zero-variance groups"),
    ("anchor_groups_per_turn", "anchor groups / turn"),
    ("singleton_anchor_turn_share", "singleton-anchor turns"),
    ("step_group_size", "step-group size"),
    ("step_signal_turn_share", "turns with step signal"),
    ("salt_nodes", "SALT nodes"),
    ("salt_edges", "SALT edges"),
    ("salt_merged_nodes", "merged nodes"),
    ("salt_merged_edges", "merged edges"),
    ("salt_merged_turn_share", "turns on merged edges"),
)
"""(metric without the ``credit_`` prefix, column heading), in table order."""
CURVE = (
    ("zero_variance_group_share", "0-var groups"),
    ("singleton_anchor_turn_share", "lone turns"),
    ("step_signal_turn_share", "step signal"),
    ("salt_merged_turn_share", "merged turns"),
)
"""The shares drawn on the diagnostics chart, with their legend names."""


def _rows_from_metrics(records: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, float]]:
    rows: dict[int, dict[str, float]] = {}
    for r in records:
        if r.get("phase") == "train" and PREFIX + COLUMNS[0][0] in r:
            rows[int(r["iteration"])] = {k: float(r.get(PREFIX + k, 0.0)) for k, _ in COLUMNS}
    return rows


def _rows_from_entries(
    entries: Sequence[Entry], config: Mapping[str, Any]
) -> dict[int, dict[str, float]]:
    gigpo, _ = credit_configs(config)
    by_iter: dict[int, list[Any]] = {}
    for e in entries:
        by_iter.setdefault(e.iteration, []).append(e.traj)
    rows = {}
    for it, trajs in sorted(by_iter.items()):
        d = credit_diagnostics(Batch(tuple(t for t in trajs if t.fault is None)), gigpo)
        rows[it] = {k: d[PREFIX + k] for k, _ in COLUMNS}
    return rows


def diagnostics_data(
    records: Sequence[Mapping[str, Any]], entries: Sequence[Entry], config: Mapping[str, Any]
) -> dict[str, Any]:
    """``{"source", "columns", "rows", "curve"}`` for the viewer: rows are [iteration, values...]
    and ``curve`` an inline-SVG chart of the shares (empty when there is nothing to show)."""
    rows = _rows_from_metrics(records)
    source = "the trainer's train records (metrics.jsonl)"
    if not rows:
        rows = _rows_from_entries(entries, config)
        source = "the stored trajectories (no diagnostics in metrics.jsonl)"
    series = {
        name: [(float(it), row[key]) for it, row in sorted(rows.items())] for key, name in CURVE
    }
    return {
        "source": source,
        "columns": ["iteration", *(title for _, title in COLUMNS)],
        "rows": [[it, *(row[k] for k, _ in COLUMNS)] for it, row in sorted(rows.items())],
        "curve": line_chart("credit diagnostics (shares)", series, width=420) if rows else "",
    }


__all__ = ["COLUMNS", "CURVE", "diagnostics_data"]
