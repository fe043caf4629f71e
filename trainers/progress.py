"""Progress display and TensorBoard logging of training records.

A reporter is a callable that receives each metrics record the loop logs (``phase`` is
``"train"``, ``"eval"``, or in a warm start ``"data"`` and ``"sft"``). :class:`ConsoleReporter` prints one rich line per record;
:class:`TensorBoardReporter` writes scalars; :func:`fan_out` combines reporters.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

Record = dict[str, Any]


class ConsoleReporter:
    """One line per iteration: success rate, reward, KL, tokens/s, times."""

    def __init__(self, console: Console | None = None, total: int | None = None):
        self.console = console or Console()
        self.total = total

    def __call__(self, r: Record) -> None:
        it = r.get("iteration", 0)
        of = f"/{self.total}" if self.total else ""
        if r.get("phase") == "eval":
            self.console.print(
                f"[bold cyan]eval[/] after iter {it}{of}: success "
                f"[bold]{r['success_rate']:.1%}[/] (95% CI {r['ci_low']:.1%}–{r['ci_high']:.1%}, "
                f"{r['episodes']} episodes), mean turns {r['mean_turns']:.1f}"
            )
            return
        if r.get("phase") == "data":
            self.console.print(
                f"[bold]expert data[/]: {r['trajectories']} trajectories, {r['turns']} turns, "
                f"{r['reply_tokens']} reply tokens ({r['trajectories_rebuilt']} rebuilt for this "
                f"model, {r['trajectories_dropped']} outside the constraint)"
            )
            return
        if r.get("phase") == "sft":
            self.console.print(
                f"[bold]epoch {it}{of}[/] nll {r['sft_nll']:.4f}/token  greedy right: "
                f"{r['token_accuracy']:.1%} of tokens, {r['turn_accuracy']:.1%} of turns  "
                f"({r['steps']} steps, {r['epoch_s']:.0f}s)"
            )
            return
        self.console.print(
            f"[bold]iter {it}{of}[/] success {r['success_rate']:.1%}  return "
            f"{r['mean_return']:+.3f}  turns {r['mean_turns']:.1f}  invalid "
            f"{r['invalid_rate']:.0%}  loss {r.get('loss', 0):+.4f}  kl "
            f"{r.get('approx_kl', 0):.4f}  gen {r['rollout_tokens_per_s']:.0f} tok/s  train "
            f"{r['train_tokens_per_s']:.0f} tok/s  ({r['rollout_s']:.0f}s + {r['update_s']:.0f}s)"
        )


class TensorBoardReporter:
    """Scalars of every record under ``logdir`` (``train/...`` and ``eval/...``)."""

    def __init__(self, logdir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is an optional extra
            warnings.warn(
                "tensorboard is not installed; TensorBoard logs are off "
                "(pip install tensorboard to turn them on).",
                stacklevel=2,
            )
            self.writer = None
            return
        self.writer = SummaryWriter(str(logdir))

    def __call__(self, r: Record) -> None:
        if self.writer is None:
            return
        phase, step = r.get("phase", "train"), int(r.get("iteration", 0))
        for key, value in r.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "time":
                self.writer.add_scalar(f"{phase}/{key}", value, step)
        self.writer.flush()


def fan_out(*reporters: Callable[[Record], None]) -> Callable[[Record], None]:
    def report(record: Record) -> None:
        for r in reporters:
            r(record)

    return report


def summary_table(run: Any) -> Any:
    """Success before and after training, and where the run directory is."""
    from rich.table import Table

    evals = [r for r in run.read_metrics() if r.get("phase") == "eval"]
    table = Table(title=f"Run {run.path}")
    table.add_column("evaluation", style="bold")
    table.add_column("after iteration", justify="right")
    table.add_column("success", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_column("mean turns", justify="right")
    first = evals[0] if evals else None
    before = first if first is not None and first["iteration"] == 0 else None
    for label, r in (
        ("before", before),
        ("after", evals[-1] if evals and evals[-1] is not before else None),
    ):
        if r is None:
            continue
        table.add_row(
            label,
            str(r["iteration"]),
            f"{r['success_rate']:.1%}",
            f"{r['ci_low']:.1%}–{r['ci_high']:.1%}",
            f"{r['mean_turns']:.1f}",
        )
    return table
