"""``agentgym compare``: find two evaluation records, check they share a panel, print the pairs.

A side is an evaluation record (:mod:`agentgym.panel`) found from:

- a JSON file: a trainer evaluation (``RUN/evals/iter-NNNNN.json``) or ``agentgym eval``'s
  ``eval.json`` (one result per env; ``--env`` picks one when it holds several);
- an ``agentgym eval`` output folder (its ``eval.json``);
- a checkpoint ``RUN/checkpoints/iter-NNNNN``: the run's evaluation after that iteration, or an
  ``agentgym eval`` of that checkpoint in ``RUN/eval/iter-NNNNN``;
- a training run: its last evaluation (``metrics.jsonl``'s last ``eval`` record), or the one
  after iteration ``--iter``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agentgym.compare import Comparison
from agentgym.panel import (
    panel_differences,
    panel_hash,
    sampling_differences,
    version_differences,
)
from agentgym.store import Run

_CHECKPOINT_PREFIX = "iter-"


class PanelMismatchError(ValueError):
    """The two evaluations did not play the same panel (or not with the same env packages)."""


@dataclass(frozen=True)
class Side:
    """One evaluation to compare: where it came from and its record."""

    label: str
    record: Mapping[str, Any]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not JSON ({exc})") from None


def _from_file(path: Path, env: str | None) -> Side:
    doc = _read_json(path)
    if "results" in doc:  # agentgym eval: one record per env
        results = [r for r in doc["results"] if env is None or r.get("env_id") == env]
        if not results:
            have = ", ".join(r.get("env_id", "?") for r in doc["results"])
            raise ValueError(f"{str(path)!r} has no result for --env {env!r}; it has: {have}")
        if len(results) > 1:
            have = ", ".join(r.get("env_id", "?") for r in results)
            raise ValueError(f"{str(path)!r} holds several envs ({have}); pick one with --env")
        record, label = results[0], f"{path} ({doc.get('policy', '?')})"
    else:
        record, label = doc, str(path)
    return Side(label, _checked(record, path))


def _checked(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """``record`` if it has a panel and per-episode outcomes, else a ValueError saying so."""
    if not all(k in record for k in ("panel", "panel_hash", "outcomes")):
        raise ValueError(
            f"{str(path)!r} has no panel manifest with per-episode outcomes (it was written "
            "before agentgym stored them); evaluate again to compare it."
        )
    return record


def _run_evaluation(run_dir: Path, iteration: int | None) -> Side:
    from agentgym.trainers.evals import eval_path

    done = [int(r["iteration"]) for r in Run(run_dir).read_metrics() if r.get("phase") == "eval"]
    stored = [it for it in dict.fromkeys(done) if eval_path(run_dir, it).is_file()]
    if iteration is None:
        if not stored:
            raise ValueError(
                f"Run {str(run_dir)!r} has no stored evaluation (RUN/evals/iter-NNNNN.json); "
                "train it with this agentgym version, or `agentgym eval` a checkpoint."
            )
        iteration = stored[-1]
    elif iteration not in stored:
        have = ", ".join(map(str, stored)) or "none"
        raise ValueError(
            f"Run {str(run_dir)!r} has no stored evaluation after iteration {iteration}; "
            f"evaluated iterations: {have}."
        )
    path = eval_path(run_dir, iteration)
    return Side(f"{run_dir} iteration {iteration}", _checked(_read_json(path), path))


def _from_checkpoint(path: Path, env: str | None) -> Side:
    from agentgym.trainers.evals import eval_path

    run_dir = path.parent.parent
    try:
        iteration = int(path.name.removeprefix(_CHECKPOINT_PREFIX))
    except ValueError:
        raise ValueError(f"checkpoint folder {str(path)!r} is not named iter-NNNNN") from None
    if eval_path(run_dir, iteration).is_file():
        stored = eval_path(run_dir, iteration)
        return Side(f"{path}", _checked(_read_json(stored), stored))
    own = run_dir / "eval" / path.name / "eval.json"
    if own.is_file():
        return _from_file(own, env)
    raise ValueError(
        f"No evaluation of checkpoint {str(path)!r}: the run did not evaluate after iteration "
        f"{iteration}. Evaluate it (`agentgym eval --policy {path} --env ENV`, which writes "
        f"{own}) and compare again."
    )


def load_side(spec: str, *, iteration: int | None = None, env: str | None = None) -> Side:
    """The evaluation record named by ``spec`` (see the module docstring)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return _from_file(path, env)
    if (path / "state.pt").is_file():
        return _from_checkpoint(path, env)
    if (path / "eval.json").is_file():
        return _from_file(path / "eval.json", env)
    if (path / "config.yaml").is_file():
        return _run_evaluation(path, iteration)
    raise FileNotFoundError(
        f"{spec!r} is not an evaluation file, an `agentgym eval` folder, a checkpoint "
        "(RUN/checkpoints/iter-NNNNN) or a training run directory."
    )


def check_comparable(a: Side, b: Side, *, allow_version_mismatch: bool = False) -> list[str]:
    """Raise :class:`PanelMismatchError` naming what differs when A and B did not play the same
    panel (or, unless allowed, under other versions of the env's package); otherwise return
    notes on what differs but does not prevent pairing (sampling settings, agentgym version)."""
    pa, pb = a.record["panel"], b.record["panel"]
    if panel_hash(pa) != panel_hash(pb):
        differences = panel_differences(pa, pb) or ["the panel hashes differ"]
        raise PanelMismatchError(
            "A and B were not evaluated on the same panel, so their episodes do not pair up: "
            + "; ".join(differences)
            + ". Evaluate both with the same env, kwargs, max_turns, episodes and seed."
        )
    blocking, notes = version_differences(a.record, b.record, pa["env_id"])
    if blocking and not allow_version_mismatch:
        raise PanelMismatchError(
            f"A and B ran {pa['env_id']} under different versions of its package ("
            + "; ".join(blocking)
            + "), which may build different games for the same seeds; pass "
            "--allow-version-mismatch to compare anyway."
        )
    notes = [f"version {n}" for n in blocking + notes]
    notes += [f"sampling {d}" for d in sampling_differences(a.record, b.record)]
    return notes


def _outcome(won: bool, turns: int) -> str:
    return f"[green]won[/] ({turns})" if won else f"[red]lost[/] ({turns})"


def pairs_table(comp: Comparison, *, limit: int = 60) -> tuple[Table, str]:
    """Per-episode outcomes side by side (all, or only the discordant ones past ``limit``)."""
    show_all = comp.n <= limit
    table = Table(title="Paired outcomes (turns in brackets)")
    for name, justify in (("seed", "right"), ("sample", "right"), ("task", "left")):
        table.add_column(name, justify=justify)
    table.add_column("A", justify="right")
    table.add_column("B", justify="right")
    table.add_column("", justify="left")
    shown = 0
    for p in comp.pairs:
        if not show_all and p.won_a == p.won_b:
            continue
        mark = "" if p.won_a == p.won_b else ("[bold]A only[/]" if p.won_a else "[bold]B only[/]")
        table.add_row(
            str(p.seed),
            str(p.sample),
            p.task_id,
            _outcome(p.won_a, p.turns_a),
            _outcome(p.won_b, p.turns_b),
            mark,
        )
        shown += 1
    note = "" if show_all else f"{shown} discordant pairs of {comp.n} shown"
    return table, note


def summary_table(comp: Comparison, a: Side, b: Side) -> Table:
    """Success of A and B with Wilson intervals, the discordant counts, McNemar and bootstrap."""
    table = Table(title="Paired comparison on one panel", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, side, k, (lo, hi) in (
        ("A", a, comp.successes_a, comp.interval_a()),
        ("B", b, comp.successes_b, comp.interval_b()),
    ):
        table.add_row(name, side.label)
        table.add_row(
            f"success {name}",
            f"{k}/{comp.n} = {k / max(comp.n, 1):.1%}  (Wilson 95% CI {lo:.1%} – {hi:.1%})",
        )
    table.add_row("both won / neither", f"{comp.both} / {comp.neither}")
    table.add_row("discordant", f"A only (b) = {comp.b}, B only (c) = {comp.c}")
    table.add_row("McNemar exact p", f"{comp.p_value:.4g}")
    lo, hi = comp.diff_interval
    table.add_row("B − A", f"{comp.diff:+.1%}  (paired bootstrap 95% CI {lo:+.1%} – {hi:+.1%})")
    return table


def print_comparison(
    console: Console, comp: Comparison, a: Side, b: Side, notes: Sequence[str]
) -> None:
    """The panel line, the pairs, the summary and the notes."""
    panel = a.record["panel"]
    seen = [s.record.get("train_task_overlap") for s in (a, b)]
    console.print(
        f"Panel {a.record['panel_hash'][:12]}: {panel['env_id']}, {len(panel['tasks'])} tasks × "
        f"{panel['samples_per_task']} sample(s), max_turns {panel['max_turns']}"
    )
    table, note = pairs_table(comp)
    console.print(table)
    if note:
        console.print(note)
    console.print(summary_table(comp, a, b))
    for name, overlap in zip("AB", seen, strict=True):
        if overlap and overlap.get("seen_in_training"):
            console.print(
                f"[yellow]note:[/] {overlap['seen_in_training']} of {overlap['tasks']} panel "
                f"tasks of {name} had a task id its run had trained on (distinct seeds, same task)"
            )
    for n in notes:
        console.print(f"[yellow]note:[/] differs but does not break the pairing: {n}")


__all__ = [
    "PanelMismatchError",
    "Side",
    "check_comparable",
    "load_side",
    "pairs_table",
    "print_comparison",
    "summary_table",
]
