"""Does a credit estimator tell good moves from bad ones? Measured on real CoinCollector batches.

    python bench/credit_accuracy.py RUN [RUN ...] [--novelty 0.1] [--out bench/results] [--name N]

TextWorld Coin Collector states carry the whole map in their facts (``at(P, r_0)``,
``east_of(r_1, r_0)``: r_1 is east of r_0, ``at(o_0, r_4)``: the coin), so every turn's action
can be labelled by an oracle: **good** if it moves one room closer to the coin (shortest path
over the ``free`` exits) or takes the coin, **bad** otherwise (a step away, ``look``,
``inventory``, ...). Each stored batch of the runs gets the trainer's reward shaping (novelty
bonus) and every estimator's advantages; two scores per estimator:

- **same-state accuracy**: over pairs of turns taken in the same state of the same group (one
  good, one bad action), the share where the good one got the larger advantage (ties count
  half). This is the step-level signal: what a policy-gradient step at that state pushes
  towards. 0.5 is no signal.
- **same-state, groups with a win**: the same, only in groups where an episode won (without
  a shaping bonus the other groups give every turn advantage 0: no signal for any estimator).
- **AUC**: the same over all (good, bad) pairs of a group, whatever their states.
- **share of abs. advantage in groups without a win**: how much of the gradient's weight goes to
  groups whose returns differ only by the shaping bonus (not what the task rewards).

The batches come from the policy being trained (the runs' own ``trajectories/iter-*.parquet``),
so they show the estimators on the distribution a training run actually sees. Writes
``NAME.{md,json}`` (default ``credit_accuracy``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict, deque
from pathlib import Path

import numpy as np

import agentgym.credit as credit
from agentgym.store import Run
from agentgym.trainers.config import RewardSection
from agentgym.trainers.shaping import shape_rewards

ESTIMATORS = {
    "grpo": {},
    "rloo": {},
    "turn_rloo": {"gamma": 0.95},
    "gigpo": {"gamma": 0.95, "omega": 1.0},
    "salt": {},
}
KEYS = ("same_state", "any", "same_state_won", "no_win_mass")
_FACT = re.compile(r"(\w+)\(([^)]*)\)")
_OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}


def _args(text: str) -> list[str]:
    return [a.split(":")[0].strip() for a in text.split(",")]


def parse_map(state_key: str) -> tuple[str | None, str | None, dict[str, dict[str, str]]]:
    """(player's room, coin's room, exits: room -> direction -> room) from a state key."""
    player = coin = None
    exits: dict[str, dict[str, str]] = defaultdict(dict)
    free: set[tuple[str, str]] = set()
    for name, body in _FACT.findall(state_key):
        args = _args(body)
        if name == "at" and args[0] == "P":
            player = args[1]
        elif name == "at" and args[0].startswith("o_"):
            coin = args[1]
        elif name == "free":
            free.add((args[0], args[1]))
        elif name.endswith("_of") and name[:-3] in _OPPOSITE:
            there, here = args  # there is <direction> of here
            exits[here][name[:-3]] = there
            exits[there][_OPPOSITE[name[:-3]]] = here
    passable = {
        room: {d: r for d, r in doors.items() if (room, r) in free} for room, doors in exits.items()
    }
    return player, coin, passable


def distances(exits: dict[str, dict[str, str]], goal: str) -> dict[str, int]:
    """Rooms' shortest-path distances (in moves) to ``goal``."""
    dist, queue = {goal: 0}, deque([goal])
    while queue:
        room = queue.popleft()
        for other in exits.get(room, {}).values():
            if other not in dist:
                dist[other] = dist[room] + 1
                queue.append(other)
    return dist


def is_good(state_key: str, action: str) -> bool | None:
    """Whether ``action`` in ``state_key`` is an optimal move (None: the state has no map)."""
    player, coin, exits = parse_map(state_key)
    if player is None:
        return None
    action = action.strip().lower()
    if coin is None:  # the coin is carried: the game is already won
        return None
    if action.startswith("take") and "coin" in action:
        return player == coin
    dist = distances(exits, coin)
    if action.startswith("go ") and player in dist:
        target = exits.get(player, {}).get(action[3:].strip())
        return target is not None and dist.get(target, 1 << 30) < dist[player]
    return False


def pair_scores(adv: np.ndarray, good: np.ndarray, same: np.ndarray) -> tuple[float, int]:
    """Share of (good, bad) pairs where good's advantage is larger (ties 1/2), and the count.
    ``same[i, j]``: whether turns i and j may be paired."""
    g, b = np.nonzero(good)[0], np.nonzero(~good)[0]
    if not len(g) or not len(b):
        return 0.0, 0
    ok = same[np.ix_(g, b)]
    diff = adv[g][:, None] - adv[b][None, :]
    wins = ((diff > 0) + 0.5 * (diff == 0))[ok]
    return float(wins.sum()), int(ok.sum())


def score_batch(batch, novelty: float) -> dict[str, dict[str, list[float]]]:
    """Per estimator: summed pair wins and counts (same-state, any) over the batch's groups."""
    shaped = shape_rewards(batch, RewardSection(novelty_bonus=novelty))
    turns = [(t, traj.group_id) for traj in batch.trajectories for t in traj.turns]
    labels = [is_good(t.state_key or "", t.action or "") for t, _ in turns]
    keep = np.array([lab is not None for lab in labels])
    good = np.array([bool(lab) for lab in labels])
    groups = np.array([g for _, g in turns])
    states = np.array([t.state_key for t, _ in turns])
    won = {traj.group_id for traj in batch.trajectories if traj.won}
    no_win = np.array([g not in won for g in groups], dtype=bool)
    out: dict[str, dict[str, list[float]]] = {}
    for name, options in ESTIMATORS.items():
        adv = np.asarray(credit.get(name)(shaped, credit.make_config(name, options)))
        tally = {key: [0.0, 0] for key in KEYS}
        for group in np.unique(groups):
            idx = np.nonzero((groups == group) & keep)[0]
            same_group = np.ones((len(idx), len(idx)), dtype=bool)
            same_state = states[idx][:, None] == states[idx][None, :]
            masks = [("same_state", same_state), ("any", same_group)]
            if group in won:
                masks.append(("same_state_won", same_state))
            for key, mask in masks:
                w, n = pair_scores(adv[idx], good[idx], mask)
                tally[key][0] += w
                tally[key][1] += n
        # where the gradient's weight goes: |advantage| summed over turns of groups without a win
        mass = np.abs(adv)
        tally["no_win_mass"] = [float(mass[no_win].sum()), float(mass.sum())]
        out[name] = tally
    return out


def bootstrap_lines(
    per_batch: list[dict[str, tuple[float, int]]], baseline: str = "grpo", resamples: int = 2000
) -> list[str]:
    """95% intervals of each estimator's same-state accuracy minus the baseline's, resampling
    whole batches (pairs within a batch are not independent)."""
    rng = np.random.default_rng(0)
    n = len(per_batch)
    lines = [
        f"Same-state accuracy minus {baseline}'s, 95% bootstrap interval over the {n} batches "
        f"({resamples} resamples):",
        "",
    ]
    for name in ESTIMATORS:
        if name == baseline:
            continue
        diffs = []
        for _ in range(resamples):
            pick = rng.integers(0, n, n)
            acc = {
                k: sum(per_batch[i][k][0] for i in pick)
                / max(sum(per_batch[i][k][1] for i in pick), 1)
                for k in (name, baseline)
            }
            diffs.append(acc[name] - acc[baseline])
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        lines.append(f"- {name}: {lo:+.3f} to {hi:+.3f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="training run directories on CoinCollector")
    p.add_argument("--novelty", type=float, default=0.1, help="reward.novelty_bonus of the runs")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--name", default="credit_accuracy", help="file name of the results")
    args = p.parse_args(argv)
    total = {name: {key: [0.0, 0] for key in KEYS} for name in ESTIMATORS}
    per_batch: list[dict[str, tuple[float, int]]] = []  # same-state tallies, for the bootstrap
    turns = good_turns = batches = 0
    for path in args.runs:
        run = Run(path)
        for it in run.iterations():
            batch = run.read_batch(it)
            batches += 1
            for traj in batch.trajectories:
                for t in traj.turns:
                    lab = is_good(t.state_key or "", t.action or "")
                    turns += lab is not None
                    good_turns += bool(lab)
            scored = score_batch(batch, args.novelty)
            per_batch.append({name: tuple(t["same_state"]) for name, t in scored.items()})
            for name, tally in scored.items():
                for key in tally:
                    total[name][key][0] += tally[key][0]
                    total[name][key][1] += tally[key][1]
    command = " ".join(["python bench/credit_accuracy.py", *(argv or sys.argv[1:])])
    lines = [
        "# Credit accuracy on CoinCollector batches (oracle-labelled moves)",
        "",
        f"Command: `{command}`",
        "",
        f"{batches} batches, {turns} labelled turns, {good_turns} of them good moves "
        f"({good_turns / max(turns, 1):.0%}); novelty bonus {args.novelty}.",
        "",
        "| estimator | same-state accuracy | pairs | same-state, groups with a win | pairs | "
        "AUC (any pair in a group) | pairs | share of abs. advantage in groups without a win |",
        "|---|---|---|---|---|---|---|---|",
    ]
    result = {}
    for name, tally in total.items():
        score = {key: tally[key][0] / tally[key][1] if tally[key][1] else 0.0 for key in KEYS}
        pairs = {key: tally[key][1] for key in KEYS}
        result[name] = {"score": score, "pairs": pairs}
        lines.append(
            f"| {name} | {score['same_state']:.3f} | {pairs['same_state']} | "
            f"{score['same_state_won']:.3f} | {pairs['same_state_won']} | {score['any']:.3f} | "
            f"{pairs['any']} | {score['no_win_mass']:.2f} |"
        )
    lines += ["", *bootstrap_lines(per_batch)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
