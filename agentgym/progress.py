"""Progress of long rollouts, reported to whoever listens (the CLI shows a live bar).

:func:`agentgym.rollout.collect` calls :func:`report` after every turn with the episodes done
so far; nothing happens unless a listener is installed with :func:`listen` in the calling
context (a context variable, so library use stays silent and threads do not cross-talk).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """Where a rollout stands."""

    label: str
    """``"evaluation"`` or ``"rollout"``."""
    episodes_done: int
    episodes: int
    turns: int
    """Turns played so far (the policy's generate calls)."""


Listener = Callable[[Progress], None]
_LISTENER: ContextVar[Listener | None] = ContextVar("agentgym_progress", default=None)


@contextlib.contextmanager
def listen(listener: Listener) -> Iterator[None]:
    """Send the progress of rollouts run inside this block to ``listener``."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def report(label: str, episodes_done: int, episodes: int, turns: int) -> None:
    """Tell the listener of this context, if any, where a rollout stands."""
    listener = _LISTENER.get()
    if listener is not None:
        listener(Progress(label, episodes_done, episodes, turns))


@contextlib.contextmanager
def console_bar(console) -> Iterator[None]:
    """A transient rich progress bar of the rollouts run inside this block."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    with Bar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("episodes · turn {task.fields[turns]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, int] = {}

        def show(p: Progress) -> None:
            if p.label not in tasks or p.turns == 0:
                if p.label in tasks:
                    bar.remove_task(tasks[p.label])
                tasks[p.label] = bar.add_task(p.label, total=p.episodes, turns=0)
            bar.update(tasks[p.label], completed=p.episodes_done, turns=p.turns)

        with listen(show):
            yield
