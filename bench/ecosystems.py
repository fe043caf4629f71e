"""Random-policy success and steps/s of the TextArena and GEM games that run offline.

    python bench/ecosystems.py --out bench/results/ecosystems_games.md

Each game is played through its agentgym adapter (``textarena/...``, ``gem/...``; unregistered
variants with ``game=`` / ``gem_id=``) by a uniform random policy over the admissible actions;
for a GEM game without a move list, GEM's own ``sample_random_action``; TextArena games without
one get no random baseline. Episodes run until ``--episodes`` or ``--budget`` seconds per game;
steps/s counts the adapter's whole step (admissible moves and state key included), resets apart,
in CPU time of this process (the machine is shared: wall-clock speed depends on the other jobs).
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import agentgym
from agentgym.envs import gem as gem_adapter
from agentgym.envs import textarena as ta_adapter


def games() -> list[tuple[str, str, dict, int]]:
    """(label, registered id, kwargs, max_turns) of every offline game."""
    out = []
    for g, turns in ta_adapter.GAMES.items():
        out.append((f"textarena/{g}", f"textarena/{g}", {}, turns))
    for g in ta_adapter.VARIANTS:
        family = g.split("-v0")[0]
        bases = [b for b in ta_adapter.GAMES if b.split("-v0")[0] == family]
        turns = 3 * ta_adapter.GAMES[bases[0]] if bases else 100  # harder variants: longer
        base = bases[0] if bases else "TowerOfHanoi-v0"  # any id: game= picks the game
        out.append((f"textarena/{g}", f"textarena/{base}", {"game": g}, turns))
    for g, turns in gem_adapter.GAMES.items():
        out.append((f"gem/{g}", f"gem/{g}", {}, turns))
    extra = ["Crosswords-v0-easy", "Crosswords-v0-hard"]
    for g in ["GuessTheNumber-v0-hard", "GuessTheNumber-v0-random", "Mastermind-v0-hard",
              "Mastermind-v0-random", "Minesweeper-v0-hard", "Minesweeper-v0-random",
              "FifteenPuzzle-v0-hard", "Sudoku-v0-hard", "Sudoku-v0-random",
              "TowerofHanoi-v0-hard", "TowerofHanoi-v0-random", "Game2048-v0-hard",
              "Game2048-v0-extreme-hard", "Game2048-v0-random", "Sokoban-v0-hard",
              "Sokoban-v0-random", *extra]:  # fmt: skip
        out.append((f"gem/{g}", "gem/TowerofHanoi-v0-easy", {"gem_id": f"game:{g}"}, 120))
    for t in gem_adapter.REASONING_GYM:
        out.append((f"gem/rg-{t}-v0", f"gem/rg-{t}-v0", {}, 3))
    return out


# resets of several seconds each: left out unless --all (docs/ecosystems.md gives their times)
SLOW = ("RushHour", "Set-v0", "Sudoku-v0-hard", "Sokoban-v0-medium", "Sokoban-v0-hard",
        "Sokoban-v0-random", "Crosswords-v0-easy", "Crosswords-v0-hard")  # fmt: skip


def random_action(env, info, rng: random.Random) -> str | None:
    adm = info.get("admissible_actions")
    if adm:
        return rng.choice(adm)
    inner = getattr(env.unwrapped, "_env", None)
    if isinstance(env.unwrapped, gem_adapter.GEMEnv) and hasattr(inner, "sample_random_action"):
        try:
            return inner.sample_random_action()  # uses GEM's global RNG: fine for a baseline
        except NotImplementedError:
            return None
    return None


def measure(env_id: str, kwargs: dict, max_turns: int, episodes: int, budget: float) -> dict:
    env = agentgym.make(env_id, max_turns=max_turns, **kwargs)
    rng = random.Random(0)
    wins = played = steps = 0
    step_time = reset_time = 0.0
    has_list = None
    baseline = True
    start = time.process_time()
    for seed in range(episodes):
        if seed and time.process_time() - start > budget:
            break
        t = time.process_time()
        _, info = env.reset(seed=seed)
        reset_time += time.process_time() - t
        has_list = info["admissible_actions"] is not None if has_list is None else has_list
        done = False
        while not done:
            action = random_action(env, info, rng)
            if action is None:
                baseline = False
                break
            t = time.process_time()
            _, _, term, trunc, info = env.step(action)
            step_time += time.process_time() - t
            steps += 1
            done = term or trunc
        if not baseline:
            break
        played += 1
        wins += bool(info["won"])
    env.close()
    return {
        "episodes": played,
        "success": wins / played if baseline and played else None,
        "steps_per_s": steps / step_time if step_time else None,
        "reset_s": reset_time / max(1, played if baseline else 1),
        "admissible": has_list,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument(
        "--budget", type=float, default=15.0, help="seconds per game (at least one episode)"
    )
    p.add_argument("--only", default="", help="substring of the games to run")
    p.add_argument("--all", action="store_true", help="also the games with slow resets")
    p.add_argument(
        "--exclude",
        default="",
        help="comma-separated substrings of games to skip (NAME$: that game exactly)",
    )
    p.add_argument("--out", default="bench/results/ecosystems_games.md")
    args = p.parse_args()
    rows = []
    for label, env_id, kwargs, turns in games():
        skip = [x for x in args.exclude.split(",") if x] + ([] if args.all else list(SLOW))
        if args.only not in label or any(x in label or x == label + "$" for x in skip):
            continue
        try:
            r = measure(env_id, kwargs, turns, args.episodes, args.budget)
        except Exception as exc:  # noqa: BLE001 - a game that fails here is reported, not fatal
            rows.append(f"| {label} | failed: {type(exc).__name__}: {str(exc)[:80]} | | | | |")
            print(rows[-1], flush=True)
            continue
        succ = "—" if r["success"] is None else f"{r['success']:.0%} ({r['episodes']})"
        sps = "—" if r["steps_per_s"] is None else f"{r['steps_per_s']:.0f}"
        adm = "yes" if r["admissible"] else "no"
        rows.append(f"| {label} | {succ} | {sps} | {r['reset_s']:.2f} | {adm} | {turns} |")
        print(rows[-1], flush=True)
    head = [
        "# TextArena and GEM games that run offline: random policy",
        "",
        f"Command: `nice -n 10 .venv/bin/python bench/ecosystems.py --episodes {args.episodes} "
        f"--budget {args.budget:g}` on the shared 2-core CPU; times are CPU seconds of the "
        "process (two training runs shared the machine). textarena 0.7.4, gem-llm 0.1.0.",
        "",
        "Success: share of episodes won by a uniform random choice among the admissible actions "
        "(GEM games without a list: GEM's `sample_random_action`; — : no random baseline), "
        "(episodes played) within the turn limit given. Steps/s: the adapter's step, admissible "
        "moves and state key included, per CPU second. Reset: CPU seconds per reset.",
        "",
        "| game | random success (episodes) | steps/s | reset s | admissible actions | max turns |",
        "|---|---|---|---|---|---|",
    ]
    Path(args.out).write_text("\n".join(head + rows) + "\n")


if __name__ == "__main__":
    main()
