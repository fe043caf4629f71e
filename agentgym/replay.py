"""Replay stored trajectories and prove a run is reproducible.

Each trajectory is replayed in a fresh environment rebuilt from what the trajectory stores: its
env id, constructor kwargs, turn limit (``metadata["max_turns"]``) and seed. The stored actions
are stepped in order and everything the environment said is compared with what was stored:

- turn ``k``'s observation (the reset observation for ``k = 0``, else what step ``k - 1``
  returned) and its state key (the state the action was taken in);
- step ``k``'s reward, ``terminated`` and ``truncated``;
- step ``k``'s info for the contract keys of :mod:`agentgym.core` (``task``, ``task_id``,
  ``won``, ``admissible_actions``, ``invalid``, ``state_key``) that the stored info holds;
- at reset, the task id; after the last step, the trajectory's ``won``.

The first mismatch is the trajectory's :class:`Divergence` (turn, field, stored and replayed
values). An edited observation of turn ``k`` is therefore reported at turn ``k``; an edited action
at turn ``k`` shows up where its consequence first differs (turn ``k``'s reward or info, or turn
``k + 1``'s observation). Replay never calls a policy: it needs no model and is fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from agentgym.core import INFO_KEYS, STATE_KEY, TASK_ID, WON
from agentgym.data import Trajectory
from agentgym.registry import make
from agentgym.schema import jsonable
from agentgym.store import Run


@dataclass(frozen=True)
class Divergence:
    """The first place where a replay disagreed with the stored trajectory."""

    turn: int
    """Index of the stored turn (0-based)."""
    field: str
    """What differed: ``observation``, ``state_key``, ``reward``, ``terminated``, ``truncated``,
    ``task_id``, ``info.<key>``, ``won`` (the trajectory's outcome), or ``step`` (the
    environment refused or crashed on the step)."""
    stored: Any
    replayed: Any
    action: str | None = None
    """The stored action of that turn (None for a mismatch found before it was taken)."""


@dataclass(frozen=True)
class ReplayResult:
    """Verdict on one trajectory."""

    traj_id: str
    env_id: str
    iteration: int | None
    turns: int
    divergence: Divergence | None = None
    error: str | None = None
    """The environment could not be rebuilt or reset (e.g. the env id is not registered)."""

    @property
    def ok(self) -> bool:
        """Whether the replay matched every stored turn."""
        return self.divergence is None and self.error is None

    @property
    def verdict(self) -> str:
        """One line: identical, or where and how it diverged."""
        if self.error is not None:
            return f"error: {self.error}"
        if self.divergence is not None:
            return f"diverged at turn {self.divergence.turn}: {self.divergence.field}"
        return "identical"


def _same(stored: Any, replayed: Any) -> bool:
    """Equality, with floats compared to 1e-9 (rewards are stored as float64)."""
    if isinstance(stored, float) or isinstance(replayed, float):
        try:
            return math.isclose(float(stored), float(replayed), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return stored == replayed


def _check_state(traj: Trajectory, k: int, obs: str, info: dict[str, Any]) -> Divergence | None:
    """Compare turn ``k``'s stored observation and state key with the live environment."""
    turn = traj.turns[k]
    if not _same(turn.observation, obs):
        return Divergence(k, "observation", turn.observation, obs)
    key = str(info.get(STATE_KEY, obs))
    if not _same(turn.state_key, key):
        return Divergence(k, "state_key", turn.state_key, key)
    return None


def _check_step(traj: Trajectory, k: int, step: tuple) -> Divergence | None:
    """Compare step ``k``'s reward, flags and contract info keys with what was stored."""
    turn = traj.turns[k]
    _, reward, terminated, truncated, info = step
    pairs = [
        ("reward", turn.reward, float(reward)),
        ("terminated", turn.terminated, bool(terminated)),
        ("truncated", turn.truncated, bool(truncated)),
    ]
    live = jsonable(info)
    pairs += [
        (f"info.{key}", turn.info[key], live.get(key)) for key in INFO_KEYS if key in turn.info
    ]
    for name, stored, replayed in pairs:
        if not _same(stored, replayed):
            return Divergence(k, name, stored, replayed, turn.action)
    return None


def replay_trajectory(traj: Trajectory, *, iteration: int | None = None) -> ReplayResult:
    """Rebuild ``traj``'s environment, re-execute its actions and compare (see module doc)."""
    result = ReplayResult(traj.traj_id, traj.env_id, iteration, len(traj.turns))
    max_turns = traj.metadata.get("max_turns")
    try:
        env = make(traj.env_id, max_turns=max_turns, **dict(traj.env_kwargs))
    except Exception as exc:  # noqa: BLE001 - any failure to rebuild is this trajectory's verdict
        return _with(result, error=f"{type(exc).__name__}: {exc}")
    try:
        try:
            obs, info = env.reset(seed=int(traj.seed))
        except Exception as exc:  # noqa: BLE001
            return _with(result, error=f"reset failed: {type(exc).__name__}: {exc}")
        task_id = str(info.get(TASK_ID, ""))
        if traj.task_id and task_id != traj.task_id:
            return _with(result, divergence=Divergence(0, "task_id", traj.task_id, task_id))
        for k, turn in enumerate(traj.turns):
            found = _check_state(traj, k, obs, info)
            if found is not None:
                return _with(result, divergence=found)
            try:
                step = env.step(turn.action)
            except Exception as exc:  # noqa: BLE001 - e.g. EpisodeOverError after a stored end
                found = Divergence(k, "step", "a step", f"{type(exc).__name__}: {exc}", turn.action)
                return _with(result, divergence=found)
            found = _check_step(traj, k, step)
            if found is not None:
                return _with(result, divergence=found)
            obs, info = step[0], step[4]
        won = bool(info.get(WON, False))
        if traj.turns and won != traj.won:
            last = len(traj.turns) - 1
            return _with(result, divergence=Divergence(last, "won", traj.won, won))
    finally:
        env.close()
    return result


def _with(result: ReplayResult, **changes: Any) -> ReplayResult:
    return dataclasses.replace(result, **changes)


def replay_run(
    run: Run, *, iterations: Sequence[int] | None = None, traj_id: str | None = None
) -> list[ReplayResult]:
    """Replay the trajectories of ``iterations`` (default: all) of ``run``.

    ``traj_id`` keeps only that trajectory; an id found in no replayed iteration is a LookupError
    that lists some of the ids there are.
    """
    iters = list(run.iterations() if iterations is None else iterations)
    results, seen = [], []
    for it in iters:
        for traj in run.read_trajectories(it):
            seen.append(traj.traj_id)
            if traj_id is None or traj.traj_id == traj_id:
                results.append(replay_trajectory(traj, iteration=it))
    if traj_id is not None and not results:
        shown = ", ".join(seen[:6]) + (", ..." if len(seen) > 6 else "")
        raise LookupError(
            f"No trajectory {traj_id!r} in iteration(s) {iters} of {str(run.path)!r}; "
            f"ids there: {shown or '(none)'}"
        )
    return results


# -- terminal output ---------------------------------------------------------------------------


def verdict_table(results: Iterable[ReplayResult]) -> Table:
    """One row per trajectory: iteration, id, env, turns and the verdict."""
    table = Table(title="Replay")
    table.add_column("iter", justify="right")
    table.add_column("trajectory", overflow="fold")
    table.add_column("env", overflow="fold")
    table.add_column("turns", justify="right")
    table.add_column("verdict", overflow="fold")
    for r in results:
        style = "green" if r.ok else "bold red"
        it = "" if r.iteration is None else str(r.iteration)
        table.add_row(it, r.traj_id, r.env_id, str(r.turns), Text(r.verdict, style=style))
    return table


def _show(value: Any) -> Text:
    return Text(value if isinstance(value, str) else repr(value))


def divergence_panel(result: ReplayResult) -> Panel:
    """The first diverging turn of ``result``: the stored and the replayed value, and a diff."""
    d = result.divergence
    if d is None:
        raise ValueError(f"trajectory {result.traj_id!r} did not diverge")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    if d.action is not None:
        grid.add_row("action", _show(d.action))
    grid.add_row("stored", _show(d.stored))
    grid.add_row("replayed", _show(d.replayed))
    parts: list[Any] = [grid]
    if isinstance(d.stored, str) and isinstance(d.replayed, str) and "\n" in d.stored + d.replayed:
        diff = difflib.unified_diff(
            d.stored.splitlines(), d.replayed.splitlines(), "stored", "replayed", lineterm=""
        )
        parts.append(Text("\n".join(diff), style="yellow"))
    title = f"{result.traj_id}: turn {d.turn}, {d.field} differs"
    return Panel(Group(*parts), title=title, border_style="red", title_align="left")


def print_report(results: Sequence[ReplayResult], console: Console, *, max_panels: int = 5) -> None:
    """Print the verdict table, the first ``max_panels`` divergences and a one-line summary."""
    console.print(verdict_table(results))
    diverged = [r for r in results if r.divergence is not None]
    for r in diverged[:max_panels]:
        console.print(divergence_panel(r))
    if len(diverged) > max_panels:
        console.print(f"... and {len(diverged) - max_panels} more diverging trajectories")
    bad = sum(not r.ok for r in results)
    style = "bold red" if bad else "bold green"
    console.print(
        Text(f"{len(results) - bad}/{len(results)} trajectories replayed identically", style=style)
    )


__all__ = [
    "Divergence",
    "ReplayResult",
    "divergence_panel",
    "print_report",
    "replay_run",
    "replay_trajectory",
    "verdict_table",
]
