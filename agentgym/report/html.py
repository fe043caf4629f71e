"""The self-contained HTML report of a run (``agentgym view``).

One file, no server and no network at view time: the run's data is embedded as JSON, the
viewer's page, CSS and JavaScript (``agentgym/report/viewer.*``) are inlined, and every figure is
inline SVG computed here (learning curves from ``metrics.jsonl``; one SALT trajectory graph per
group, laid out with networkx). The page has a run summary with learning curves; a list of
groups and trajectories with search and filters; a trajectory view with the conversation and a
per-turn advantage strip coloured by sign and size; and a group view with the GiGPO anchor
groups and the SALT graph (nodes = states, edges = actions, edge colour = credit).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from agentgym.report.credit_view import diagnostics_data
from agentgym.report.model import (
    Entry,
    GroupCredit,
    estimators,
    group_credits,
    read_config,
    read_entries,
)
from agentgym.report.svg import line_chart, salt_graph_svg
from agentgym.rollout import conversation_messages
from agentgym.store import Run, atomic_write

REPORT_FILE = "report.html"
CURVE_METRICS = (
    "success_rate",
    "mean_return",
    "mean_turns",
    "invalid_rate",
    "loss",
    "kl",
    "entropy",
    "grad_norm",
    "clip_frac",
)
"""Metrics drawn as learning curves, in this order, when ``metrics.jsonl`` has them."""


def _num(value: Any) -> float | None:
    """A finite float for JSON, None for NaN/inf/missing."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def curves(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Inline-SVG learning curves, one chart per metric of :data:`CURVE_METRICS` present;
    one line per phase (``train``, ``eval``, or ``rollout`` for records without a phase)."""
    charts = []
    for metric in CURVE_METRICS:
        series: dict[str, list[tuple[float, float]]] = {}
        for r in records:
            value = _num(r.get(metric)) if isinstance(r.get(metric), (int, float)) else None
            if value is not None and "iteration" in r:
                series.setdefault(str(r.get("phase", "rollout")), []).append(
                    (float(r["iteration"]), value)
                )
        if series:
            charts.append(line_chart(metric.replace("_", " "), series))
    return charts


def _iteration_rows(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """Per iteration: trajectories, success rate, mean return and mean turns."""
    rows: dict[int, list[Entry]] = {}
    for e in entries:
        rows.setdefault(e.iteration, []).append(e)
    out = []
    for it, es in sorted(rows.items()):
        n = len(es)
        out.append(
            {
                "iteration": it,
                "trajectories": n,
                "success_rate": sum(e.traj.won for e in es) / n,
                "mean_return": sum(e.traj.episode_return for e in es) / n,
                "mean_turns": sum(len(e.traj.turns) for e in es) / n,
            }
        )
    return out


def _trajectory(entry: Entry, credit: GroupCredit, names: Sequence[str]) -> dict[str, Any]:
    """One trajectory as the viewer reads it (turn texts as the policy saw them)."""
    t = entry.traj
    messages = conversation_messages(t)
    turns = []
    for i, (turn, tc) in enumerate(zip(t.turns, credit.turns[entry.key], strict=True)):
        turns.append(
            {
                "user": messages[1 + 2 * i]["content"],
                "output": turn.output,
                "action": turn.action,
                "reward": turn.reward,
                "rtg": tc.return_to_go,
                "invalid": turn.invalid,
                "terminated": turn.terminated,
                "truncated": turn.truncated,
                "state_key": turn.state_key,
                "anchor": tc.anchor,
                "anchor_n": tc.anchor_turns,
                "edge": tc.edge,
                "edge_n": tc.edge_turns,
                "edge_trajs": tc.edge_trajectories,
                "edge_credit": _num(tc.edge_credit),
                "adv": {n: _num(turn.advantages.get(n)) for n in names},
            }
        )
    return {
        "key": entry.key,
        "id": t.traj_id,
        "iteration": entry.iteration,
        "env": t.env_id,
        "task_id": t.task_id,
        "task": t.task,
        "group": entry.group_key,
        "group_id": t.group_id,
        "seed": t.seed,
        "won": t.won,
        "ret": t.episode_return,
        "system": messages[0]["content"],
        "turns": turns,
    }


def _group(credit: GroupCredit) -> dict[str, Any]:
    """One group as the viewer reads it: members, anchor groups, SALT graph and its legend."""
    first = credit.entries[0].traj
    start = first.turns[0].state_key if first.turns else None
    inner = [n for n in credit.graph if not credit.graph.nodes[n].get("terminal")]
    labels = {n: f"S{i}" for i, n in enumerate(inner)}
    return {
        "key": credit.key,
        "iteration": credit.iteration,
        "group_id": credit.group_id,
        "env": first.env_id,
        "task_id": first.task_id,
        "trajs": [e.key for e in credit.entries],
        "anchors": [
            {"label": a["label"], "state_key": a["state_key"], "members": a["members"]}
            for a in credit.anchors
        ],
        "nodes": [{"label": labels[n], "key": n} for n in inner],
        "svg": salt_graph_svg(credit.graph, labels, start),
    }


def report_data(run: Run, iterations: Iterable[int] | None = None) -> dict[str, Any]:
    """Everything the viewer shows, as JSON-ready data."""
    config = read_config(run)
    entries = read_entries(run, iterations)
    names = estimators(entries)
    credits = group_credits(entries, config)
    trajs = [_trajectory(e, credits[e.group_key], names) for e in entries]
    scale = {
        n: max(
            (abs(v) for t in trajs for turn in t["turns"] if (v := turn["adv"][n]) is not None),
            default=0.0,
        )
        for n in names
    }
    n = len(entries)
    return {
        "run": {
            "name": run.name,
            "path": str(run.path),
            "config": yaml.safe_dump(config, sort_keys=False, allow_unicode=True) if config else "",
            "iterations": sorted({e.iteration for e in entries}),
            "trajectories": n,
            "groups": len(credits),
            "success_rate": sum(e.traj.won for e in entries) / n if n else 0.0,
            "mean_return": sum(e.traj.episode_return for e in entries) / n if n else 0.0,
        },
        "per_iteration": _iteration_rows(entries),
        "curves": curves(run.read_metrics()),
        "diagnostics": diagnostics_data(run.read_metrics(), entries, config),
        "estimators": names,
        "scale": scale,
        "trajectories": trajs,
        "groups": [_group(c) for c in credits.values()],
    }


def _static(name: str) -> str:
    return resources.files("agentgym.report").joinpath(name).read_text("utf-8")


def render_html(data: Mapping[str, Any]) -> str:
    """The page: template with the CSS, the JS and ``data`` (JSON, ``<`` escaped) inlined."""
    payload = json.dumps(data, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")
    title = f"agentgym report: {data['run']['name']}"
    values = {
        "__TITLE__": _escape_text(title),
        "/*__CSS__*/": _static("viewer.css"),
        "/*__JS__*/": _static("viewer.js"),
        "__DATA__": payload,
    }
    # one pass, so nothing inserted is scanned for tokens again
    pattern = "|".join(re.escape(token) for token in values)
    return re.sub(pattern, lambda m: values[m.group(0)], _static("viewer.html"))


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_report(
    run: Run,
    out: str | os.PathLike[str] | None = None,
    *,
    iterations: Iterable[int] | None = None,
) -> Path:
    """Write the report of ``run`` to ``out`` (default ``RUN/report.html``), atomically."""
    path = Path(out) if out is not None else run.path / REPORT_FILE
    page = render_html(report_data(run, iterations)).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda f: f.write(page))


__all__ = ["REPORT_FILE", "curves", "render_html", "report_data", "write_report"]
