"""Terminal views of a run (``agentgym inspect``): a trajectory table and a turn-by-turn view.

The table lists trajectories (row number, iteration, short id, env, task, turns, return, won)
after :class:`Filters`, sorted by one of :data:`SORT_KEYS`; :func:`short_ids` gives each id its
shortest unique end, and :func:`resolve_traj` finds a trajectory by id, unique end or row number.
Also the views of ``agentgym credit`` (:func:`credit_table`, :func:`pick_trajectory`) and
``agentgym envs ID`` (:func:`env_view`). The trajectory view shows each turn's
observation, action, reward, return-to-go and every stored estimator's advantage side by side,
with the GiGPO anchor group and the SALT edge the turn belongs to (see
:mod:`agentgym.report.model`), then legends of those anchors and edges.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from agentgym.data import Batch
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


def short_ids(ids: Sequence[str]) -> dict[str, str]:
    """Each id's shortest end, cut at ``:`` boundaries, that no other id of ``ids`` ends with
    (``eval:agentgym/Maze-v0:maze-7:10007#2`` -> ``10007#2`` when that is unique)."""
    parts = {i: i.split(":") for i in ids}
    depth = max((len(p) for p in parts.values()), default=0)
    out: dict[str, str] = {}
    for k in range(1, depth + 1):
        ends = {i: ":".join(p[-k:]) for i, p in parts.items() if i not in out}
        counts = Counter(":".join(p[-k:]) for p in parts.values())
        for i, end in ends.items():
            if counts[end] == 1 or end == i:
                out[i] = end
    return out


def resolve_traj(ids: Sequence[str], query: str, *, where: str = "this run") -> list[int]:
    """Indices of the trajectories ``query`` names: an exact id, else a row number (digits
    only: the ``#`` column of ``agentgym inspect``), else the ids ending with it (``10003#1``).
    No match is an error showing a few ids."""
    exact = [i for i, t in enumerate(ids) if t == query]
    if exact:
        return exact
    if query.isdigit() and int(query) < len(ids):
        return [int(query)]
    ending = [i for i, t in enumerate(ids) if t.endswith(query)]
    if ending:
        return ending
    shown = ", ".join(list(dict.fromkeys(short_ids(ids).values()))[:4])
    raise LookupError(
        f"No trajectory {query!r} in {where} ({len(ids)} trajectories; ids end like: "
        f"{shown or '(none)'}). Give an id, a unique end of one or a row number "
        "(`agentgym inspect RUN` lists them)."
    )


def short_text(text: str, width: int = 60) -> str:
    """``text`` on one line, cut to about ``width`` characters with a short hash of the whole
    (two long keys that share a start stay told apart)."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:6]
    return f"{flat[: width - 10]}… #{digest}"


def _won(won: bool) -> Text:
    return Text("yes", style="green") if won else Text("no", style="red")


def trajectory_table(
    entries: Sequence[Entry],
    *,
    title: str = "Trajectories",
    rows: Sequence[int] | None = None,
    short: dict[str, str] | None = None,
) -> Table:
    """One row per trajectory: row number (``rows``, for ``--traj``), iteration, short id
    (``short``, default :func:`short_ids` of ``entries``), env, task, turns, return, won."""
    short = short if short is not None else short_ids([e.traj.traj_id for e in entries])
    table = Table(title=title)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("iter", justify="right", no_wrap=True)
    table.add_column("trajectory", no_wrap=True)
    table.add_column("env", no_wrap=True)
    table.add_column("task", overflow="ellipsis", no_wrap=True, max_width=40)
    table.add_column("turns", justify="right")
    table.add_column("return", justify="right")
    table.add_column("won", justify="center")
    for k, e in enumerate(entries):
        t = e.traj
        table.add_row(
            str(rows[k] if rows is not None else k),
            str(e.iteration),
            short.get(t.traj_id, t.traj_id),
            t.env_id.removeprefix("agentgym/"),
            t.task_id,
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


def env_view(s: Any) -> Table:
    """One environment: id, entry point, turn limit, description and every constructor
    argument with its default (the registered one where it overrides the class's)."""
    import inspect

    from agentgym.preflight import constructor_params

    table = Table(title=s.id, show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    entry = s.entry_point if isinstance(s.entry_point, str) else _qualname(s.entry_point)
    table.add_row("entry point", entry)
    table.add_row("max turns", str(s.max_turns))
    table.add_row("description", s.description or "-")
    doc = inspect.getdoc(s.load()) or ""
    if doc:
        table.add_row("docstring", doc.split("\n\n")[0])
    params, more = constructor_params(s.id)
    for name, default in params.items():
        mark = " (registered)" if name in s.kwargs else ""
        table.add_row(f"  {name}", f"{default!r}{mark}")
    if more:
        table.add_row("  ...", "other keyword arguments (see the class docstring)")
    table.add_row("variants", f"{s.id}:KEY=VALUE,... or --env-kwarg KEY=VALUE")
    return table


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"


def pick_trajectory(batch: Batch, traj_id: str | None, estimator: str) -> int:
    """The trajectory ``traj_id`` names (id, unique end or row number), or by default the one
    whose stored estimators disagree most (several stored), else whose ``estimator``
    advantages are largest: never an all-zero one when another exists."""
    if not len(batch):
        raise LookupError("The iteration has no trajectories.")
    if traj_id is not None:
        ids = [t.traj_id for t in batch.trajectories]
        found = resolve_traj(ids, traj_id, where="this iteration")
        if len(found) > 1:
            raise LookupError(
                f"--traj {traj_id!r} matches {len(found)} trajectories; give more of the id."
            )
        return found[0]

    def interest(traj: Any) -> tuple[float, float]:
        spread = sum(
            max(turn.advantages.values()) - min(turn.advantages.values())
            for turn in traj.turns
            if len(turn.advantages) > 1
        )
        return spread, sum(abs(turn.advantages.get(estimator, 0.0)) for turn in traj.turns)

    scores = [interest(t) for t in batch.trajectories]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def credit_table(batch: Batch, index: int, estimator: str) -> Table:
    traj = batch.trajectories[index]
    others = sorted({k for turn in traj.turns for k in turn.advantages} - {estimator})
    title = (
        f"{estimator} advantages of trajectory {traj.traj_id or index} (row {index}; "
        f"group {traj.group_id}, return {traj.episode_return:g}, won {traj.won})"
    )
    table = Table(title=title)
    table.add_column("turn", justify="right")
    table.add_column("state_key", overflow="fold", max_width=64)
    table.add_column("action", overflow="fold")
    table.add_column("reward", justify="right")
    table.add_column(estimator, justify="right", style="bold")
    for name in others:
        table.add_column(name, justify="right")
    for i, turn in enumerate(traj.turns):
        adv = turn.advantages[estimator]
        stored = [f"{turn.advantages[n]:+.4f}" if n in turn.advantages else "-" for n in others]
        table.add_row(
            str(i),
            short_text(turn.state_key),
            turn.action,
            f"{turn.reward:g}",
            f"{adv:+.4f}",
            *stored,
        )
    return table


__all__ = [
    "credit_table",
    "env_view",
    "pick_trajectory",
    "SORT_KEYS",
    "Filters",
    "advantage_text",
    "anchor_legend",
    "edge_legend",
    "resolve_traj",
    "select",
    "short_ids",
    "short_text",
    "trajectory_table",
    "trajectory_view",
    "turn_table",
]
