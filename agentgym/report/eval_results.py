"""Evaluation results on the terminal, as JSON and as Markdown (``agentgym eval``).

One row per environment and one per task type the environment reported (e.g. ALFWorld's six):
episodes, success rate with its Wilson 95% interval, mean turns, mean return and, when several
samples per task were played, pass@k. :func:`write_results` also stores the played trajectories
as a run, so ``agentgym replay`` and ``agentgym view`` work on an evaluation too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from agentgym.evaluate import EvalResult, Score
from agentgym.panel import eval_record
from agentgym.store import Run, atomic_write, is_run_dir


def _rows(results: Sequence[EvalResult]) -> list[tuple[str, str, Score, Mapping[int, float]]]:
    """(env, task type or "all", score, pass@k) per env, then per task type of that env."""
    rows = []
    for r in results:
        rows.append((r.env_id, "all", r.overall, r.pass_at))
        rows += [(r.env_id, kind, s, {}) for kind, s in r.by_type.items()]
    return rows


def _cells(s: Score, pass_at: Mapping[int, float]) -> list[str]:
    lo, hi = s.interval
    k = max(pass_at, default=0)
    return [
        str(s.episodes),
        f"{s.success_rate:.1%}",
        f"[{lo:.1%}, {hi:.1%}]",
        f"{s.mean_turns:.2f}",
        f"{s.mean_return:.3f}",
        f"{pass_at[k]:.1%} (k={k})" if k > 1 else "",
    ]


HEADERS = (
    "env",
    "task type",
    "episodes",
    "success",
    "95% CI (Wilson)",
    "mean turns",
    "mean return",
    "pass@k",
)


def results_table(results: Sequence[EvalResult], *, title: str = "Evaluation") -> Table:
    """A rich Table: one row per env and one per task type the env reported."""
    table = Table(title=title)
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("env", "task type") else "right")
    for env, kind, s, pass_at in _rows(results):
        table.add_row(env if kind == "all" else "", kind, *_cells(s, pass_at))
    return table


def to_markdown(results: Sequence[EvalResult], *, policy: str, settings: Mapping[str, Any]) -> str:
    """The results as a Markdown document: settings, then the table of :func:`results_table`."""
    lines = [f"# Evaluation of {policy}", ""]
    lines += [f"- {k}: `{v}`" for k, v in settings.items()]
    lines += ["", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for env, kind, s, pass_at in _rows(results):
        lines.append("| " + " | ".join([env, kind, *_cells(s, pass_at)]) + " |")
    return "\n".join(lines) + "\n"


def write_results(
    out: str | Path, results: Sequence[EvalResult], *, policy: str, settings: Mapping[str, Any]
) -> tuple[Path, Path]:
    """Write ``eval.json`` and ``eval.md`` to ``out``, and the played trajectories as a run
    (``config.yaml`` + ``trajectories/iter-00001.parquet``), so ``agentgym replay`` and
    ``agentgym view`` work on it. Refuses a folder holding anything but an earlier eval."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        earlier = is_run_dir(out) and Run(out).read_config().get("command") == "eval"
        if not earlier:
            raise FileExistsError(
                f"{str(out)!r} already holds other data; choose another --out or remove it."
            )
    run = Run.create(out, config={"command": "eval", "policy": policy, **settings})
    trajs = [t for r in results if r.batch is not None for t in r.batch.trajectories]
    run.write_trajectories(trajs, iteration=1)
    doc = {
        "policy": policy,
        "settings": dict(settings),
        "results": [{**r.as_dict(), **_panel_fields(r, policy)} for r in results],
    }
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    md = to_markdown(results, policy=policy, settings=settings)
    json_path = atomic_write(out / "eval.json", lambda f: f.write(text.encode("utf-8")))
    md_path = atomic_write(out / "eval.md", lambda f: f.write(md.encode("utf-8")))
    return json_path, md_path


def _panel_fields(result: EvalResult, policy: str) -> dict[str, Any]:
    """The panel manifest and per-episode outcomes of ``result`` (``agentgym compare`` reads
    them; see :mod:`agentgym.panel`), or nothing for a result made without a panel."""
    if result.panel is None or result.batch is None:
        return {}
    record = eval_record(result, policy=policy)
    return {k: v for k, v in record.items() if k != "summary"}


__all__ = ["HEADERS", "results_table", "to_markdown", "write_results"]
