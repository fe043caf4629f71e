"""Terminal views of a run (``agentgym inspect``): a trajectory table and a turn-by-turn view.

The table lists trajectories (iteration, id, env, task, group, turns, return, won) after
:class:`Filters`, sorted by one of :data:`SORT_KEYS`. The trajectory view shows each turn's
observation, action, reward, return-to-go and every stored estimator's advantage side by side,
with the GiGPO anchor group and the SALT edge the turn belongs to (see
:mod:`agentgym.report.model`), then legends of those anchors and edges.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from agentgym.report.model import Entry, GroupCredit

SORT_KEYS: dict[str, Callable[[Entry], Any]] = {
    "iter": lambda e: (e.iteration, e.traj.traj_id),
    "return": lambda e: e.traj.episode_return,
    "turns": lambda e: len(e.traj.turns),
    "env": lambda e: e.traj.env_id,
    "task": lambda e: e.traj.task_id,
    "group": lambda e: (e.iteration, e.traj.group_id),
    "won": lambda e: e.traj.won,
    "id": lambda e: e.traj.traj_id,
}
"""Sort keys of the trajectory table (``--sort``)."""


@dataclass(frozen=True)
class Filters:
    """Which trajectories the table shows; every set field must match."""

    env: str | None = None
    """Substring of the env id."""
    won: bool | None = None
    """True: only won trajectories; False: only lost ones."""
    group: str | None = None
    """Substring of the group id."""
    task: str | None = None
    """Substring of the task id or the task text."""

    def match(self, entry: Entry) -> bool:
        """Whether ``entry`` passes every set filter."""
        t = entry.traj
        return (
            (self.env is None or self.env in t.env_id)
            and (self.won is None or t.won == self.won)
            and (self.group is None or self.group in t.group_id)
            and (self.task is None or self.task in t.task_id or self.task in t.task)
        )


def select(
    entries: Sequence[Entry],
    filters: Filters = Filters(),
    *,
    sort: str = "iter",
    descending: bool = False,
    limit: int | None = None,
) -> list[Entry]:
    """``entries`` that pass ``filters``, sorted by ``sort`` (a :data:`SORT_KEYS` name)."""
    if sort not in SORT_KEYS:
        raise ValueError(f"Unknown sort key {sort!r}; choose one of: {', '.join(SORT_KEYS)}.")
    chosen = sorted(filter(filters.match, entries), key=SORT_KEYS[sort], reverse=descending)
    return chosen if limit is None else chosen[: max(limit, 0)]


def _won(won: bool) -> Text:
    return Text("yes", style="green") if won else Text("no", style="red")


def trajectory_table(entries: Sequence[Entry], *, title: str = "Trajectories") -> Table:
    """One row per trajectory: iteration, id, env, task, group, turns, return, won."""
    table = Table(title=title)
    for name, justify in (("iter", "right"), ("trajectory", "left"), ("env", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    table.add_column("task", overflow="fold")
    table.add_column("group", overflow="fold")
    table.add_column("turns", justify="right")
    table.add_column("return", justify="right")
    table.add_column("won", justify="center")
    for e in entries:
        t = e.traj
        table.add_row(
            str(e.iteration),
            t.traj_id,
            t.env_id,
            t.task_id,
            t.group_id,
            str(len(t.turns)),
            f"{t.episode_return:g}",
            _won(t.won),
        )
    return table


def advantage_text(value: float | None) -> Text:
    """An advantage coloured by sign (green positive, red negative); ``-`` when missing."""
    if value is None or math.isnan(value):
        return Text("-", style="dim")
    style = "green" if value > 0 else "red" if value < 0 else "dim"
    return Text(f"{value:+.4f}", style=style)


def _header(entry: Entry) -> Table:
    t = entry.traj
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    rows = [
        ("trajectory", t.traj_id),
        ("iteration", str(entry.iteration)),
        ("env", t.env_id),
        ("task", f"{t.task_id}: {t.task}" if t.task else t.task_id),
        ("group", t.group_id),
        ("seed", str(t.seed)),
        ("turns / return", f"{len(t.turns)} / {t.episode_return:g}"),
    ]
    for name, value in rows:
        grid.add_row(name, value)
    grid.add_row("won", _won(t.won))
    return grid


def turn_table(entry: Entry, credit: GroupCredit, estimators: Sequence[str]) -> Table:
    """Turn by turn: observation, action, reward, return-to-go, advantages, anchor and edge."""
    table = Table(title="Turns", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("observation", overflow="fold", ratio=3)
    table.add_column("action", overflow="fold", ratio=1)
    table.add_column("reward", justify="right")
    table.add_column("return", justify="right")
    for name in estimators:
        table.add_column(name, justify="right")
    table.add_column("anchor", no_wrap=True)
    table.add_column("edge", no_wrap=True)
    for i, (turn, tc) in enumerate(zip(entry.traj.turns, credit.turns[entry.key], strict=True)):
        action = Text(turn.action, style="red" if turn.invalid else "")
        table.add_row(
            str(i),
            turn.observation,
            action,
            f"{turn.reward:g}",
            f"{tc.return_to_go:g}",
            *(advantage_text(turn.advantages.get(name)) for name in estimators),
            f"{tc.anchor} ×{tc.anchor_turns}",
            f"{tc.edge} ×{tc.edge_turns}",
        )
    return table


def anchor_legend(entry: Entry, credit: GroupCredit) -> Table:
    """The anchor groups this trajectory's turns belong to, with the turns they hold."""
    used = {tc.anchor for tc in credit.turns[entry.key]}
    table = Table(title="GiGPO anchor groups (turns of the group in the same state)")
    table.add_column("anchor", no_wrap=True)
    table.add_column("state", overflow="fold")
    table.add_column("turns (trajectory#turn)", overflow="fold")
    index = {e.key: i for i, e in enumerate(credit.entries)}
    for a in credit.anchors:
        if a["label"] in used:
            members = ", ".join(f"#{index[k]}.{turn}" for k, turn in a["members"])
            table.add_row(a["label"], a["state_key"], members)
    return table


def edge_legend(entry: Entry, credit: GroupCredit) -> Table:
    """The SALT edges this trajectory took: transition, use counts and credit."""
    used = {tc.edge for tc in credit.turns[entry.key]}
    table = Table(title="SALT edges (state --action--> next state)")
    table.add_column("edge", no_wrap=True)
    table.add_column("transition", overflow="fold")
    table.add_column("turns", justify="right")
    table.add_column("trajectories", justify="right")
    table.add_column("credit", justify="right")
    for u, v, data in credit.graph.edges(data=True):
        if data.get("label") in used:
            transition = f"{u} --{data['action']}--> {v}"
            count, trajs = str(data["count"]), str(len(data["trajectories"]))
            table.add_row(data["label"], transition, count, trajs, advantage_text(data["credit"]))
    return table


def trajectory_view(entry: Entry, credit: GroupCredit, estimators: Sequence[str]) -> RenderableType:
    """The whole turn-by-turn view of one trajectory."""
    index = [e.key for e in credit.entries].index(entry.key)
    title = f"Trajectory #{index} of group {credit.group_id} ({len(credit.entries)} trajectories)"
    return Group(
        Panel(_header(entry), title=title, title_align="left"),
        turn_table(entry, credit, estimators),
        anchor_legend(entry, credit),
        edge_legend(entry, credit),
    )


__all__ = [
    "SORT_KEYS",
    "Filters",
    "advantage_text",
    "anchor_legend",
    "edge_legend",
    "select",
    "trajectory_table",
    "trajectory_view",
    "turn_table",
]
