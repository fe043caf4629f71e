"""How far episodes of ALFWorld pick-and-place get: saw the object, took it, won.

    python bench/alfworld_progress.py RUN [--iter N]

A sparse 0/1 reward gives a trainer nothing when no episode of a group wins; this shows how
close the policy's episodes come. For each stored trajectory of the run's iteration(s) it reads
the task (``put a knife in drawer``) and checks whether an observation after the first showed
an object of that type, whether the policy took one (``take knife 1 from ...``), and whether
it won. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import re

from agentgym.store import Run

_TASK = re.compile(r"put (?:a|an|some|two) (\w+) (?:in|on|in/on)", re.IGNORECASE)


def progress(traj) -> dict[str, bool | int]:
    """Milestones of one pick-and-place episode."""
    task = str(traj.metadata.get("reset_info", {}).get("task", "")) or traj.task_id
    m = _TASK.search(task)
    obj = m.group(1).lower() if m else ""
    seen = took = False
    places = set()
    for turn in traj.turns:
        action = (turn.action or "").lower()
        if action.startswith("go to "):
            places.add(action[6:])
        if obj and re.search(rf"\b{obj} \d+\b", (turn.observation or "").lower()) and places:
            seen = True
        if obj and action.startswith(f"take {obj} "):
            took = True
    return {
        "seen": seen,
        "took": took,
        "won": bool(traj.won),
        "places": len(places),
        "turns": len(traj.turns),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run")
    p.add_argument("--iter", type=int, action="append", help="iteration(s); default all")
    args = p.parse_args(argv)
    run = Run(args.run)
    rows = [
        progress(traj)
        for it in args.iter or run.iterations()
        for traj in run.read_batch(it).trajectories
    ]
    n = len(rows)
    share = lambda key: sum(bool(r[key]) for r in rows)  # noqa: E731
    print("| episodes | saw the object | took it | won | distinct places visited (mean) |")
    print("|---|---|---|---|---|")
    print(
        f"| {n} | {share('seen')} | {share('took')} | {share('won')} | "
        f"{sum(r['places'] for r in rows) / max(n, 1):.1f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
