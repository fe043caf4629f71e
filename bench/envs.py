"""Environment engine speed: agentgym's envs vs the raw engines, on the same games and actions.

    python bench/envs.py [--family textworld|alfworld|all] [--games 4] [--steps 100] [--gen 3]
                         [--repeats 3] [--oracle 0] [--garbage 0]

TextWorld (one registered id per family: Custom, Simple, CoinCollector, TreasureHunter,
Cooking): for ``games`` cached games per family (seeds 0..games-1) one seeded action sequence
per game is drawn first (``steps`` random admissible commands, every tenth a garbage command).
It is then played, alternately ``repeats`` times in this process, through

- raw: ``textworld.start(game, EnvInfos(...))`` with the infos agentgym requests (admissible
  commands, won, lost, score, max score), stepping the text agentgym sends;
- agentgym: ``agentgym.make("agentgym/TextWorld-<Family>-v0")`` on the same game, which adds
  action cleaning, the invalid flag, the state key (sorted world facts), observation cleaning,
  reward, the info dict and the turn-limit wrapper;

with warm engines (both loaded before timing), checking that both gave the same observations.
Overhead = agentgym step time / raw step time - 1, over all steps (and the median over games).
Then ``gen`` fresh games per family are generated in a temporary cache, one child process per
game (what a first ``reset`` on a new seed costs) and all in one child (amortized). ``--oracle
N`` plays the oracle on N games per family (from the start, and after 5 random actions);
``--garbage N`` sends N random and garbage actions across the families and counts exceptions.
``--family alfworld`` runs ``bench/envs_alfworld.py`` with the same options.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

import textworld

import agentgym
from agentgym.core import GARBAGE_ACTIONS
from agentgym.envs.textworld import ENGINE_INFOS, clean_feedback, sanitize_action
from agentgym.envs.textworld_games import GameSpec, ensure_games

FAMILIES = {
    "custom": "agentgym/TextWorld-Custom-v0",
    "simple": "agentgym/TextWorld-Simple-v0",
    "coin_collector": "agentgym/TextWorld-CoinCollector-v0",
    "treasure_hunter": "agentgym/TextWorld-TreasureHunter-v0",
    "cooking": "agentgym/TextWorld-Cooking-v0",
}
SPEED_GARBAGE = ("take the moon", "xyzzy", "ünïcødé 🙂", "x" * 300, "open the pod bay doors")


def registered_spec(env_id: str) -> GameSpec:
    """The GameSpec an id is registered with."""
    kwargs = dict(agentgym.registry.spec(env_id).kwargs)
    return GameSpec.create(kwargs.pop("family"), **kwargs)


def action_plan(env_id: str, seed: int, steps: int) -> list[str]:
    """Seeded actions for game ``seed``: admissible commands, every tenth a garbage one."""
    env = agentgym.make(env_id, max_turns=10**9)
    _, info = env.reset(seed=seed)
    rng = random.Random(seed)
    actions = []
    for i in range(steps):
        pool = SPEED_GARBAGE if i % 10 == 9 else info["admissible_actions"]
        actions.append(rng.choice(pool))
        _, _, terminated, _, info = env.step(actions[-1])
        if terminated:
            break
    env.close()
    return actions


def time_raw(engine: textworld.Environment, actions: list[str]) -> tuple[float, float, list]:
    """Reset seconds, step seconds and observations (cleaned as agentgym does, untimed)."""
    start = time.perf_counter()
    engine.reset()
    reset_s = time.perf_counter() - start
    commands = [sanitize_action(a) for a in actions]
    seen = []
    start = time.perf_counter()
    for command in commands:
        state, _, _ = engine.step(command)
        seen.append(state["feedback"])
    elapsed = time.perf_counter() - start
    return reset_s, elapsed, [clean_feedback(s) for s in seen]


def time_ours(env: agentgym.registry.TurnLimit, seed: int, actions: list[str]) -> tuple:
    """Reset seconds, step seconds and observations through agentgym."""
    start = time.perf_counter()
    env.reset(seed=seed)
    reset_s = time.perf_counter() - start
    seen = []
    start = time.perf_counter()
    for action in actions:
        seen.append(env.step(action)[0])
    return reset_s, time.perf_counter() - start, seen


def bench_speed(games: int, steps: int, repeats: int) -> dict[str, dict[str, float]]:
    """Steps per second, raw vs agentgym, per family, over the same games and actions."""
    results = {}
    for family, env_id in FAMILIES.items():
        paths = ensure_games(registered_spec(env_id), list(range(games)), workers=2)
        raw_s = ours_s = 0.0
        n_steps = 0
        ratios, raw_resets, our_resets, cold = [], [], [], []
        for seed, path in enumerate(paths):
            actions = action_plan(env_id, seed, steps)
            engine = textworld.start(str(path), textworld.EnvInfos(**ENGINE_INFOS))
            start = time.perf_counter()
            env = agentgym.make(env_id, max_turns=10**9)
            env.reset(seed=seed)  # load the game before timing the warm runs
            cold.append(time.perf_counter() - start)
            game_raw = game_ours = 0.0
            for _ in range(repeats):
                r_raw, t_raw, seen_raw = time_raw(engine, actions)
                r_ours, t_ours, seen_ours = time_ours(env, seed, actions)
                if seen_raw != seen_ours:
                    raise SystemExit(f"{env_id} seed {seed}: observations differ from the engine's")
                game_raw, game_ours = game_raw + t_raw, game_ours + t_ours
                raw_resets.append(r_raw)
                our_resets.append(r_ours)
            engine.close()
            env.close()
            raw_s, ours_s, n_steps = raw_s + game_raw, ours_s + game_ours, n_steps + len(actions)
            ratios.append(game_ours / game_raw)
        total = n_steps * repeats
        results[family] = {
            "raw_steps_per_s": total / raw_s,
            "agentgym_steps_per_s": total / ours_s,
            "overhead": ours_s / raw_s - 1,
            "median_game_overhead": statistics.median(ratios) - 1,
            "steps": total,
            "raw_reset_ms": 1000 * statistics.mean(raw_resets),
            "agentgym_reset_ms": 1000 * statistics.mean(our_resets),
            "cold_make_reset_s": statistics.mean(cold),
        }
        r = results[family]
        print(
            f"{family:16s} {total:6d} steps  raw {r['raw_steps_per_s']:7.1f}/s  agentgym "
            f"{r['agentgym_steps_per_s']:7.1f}/s  overhead {100 * r['overhead']:+5.1f}% "
            f"(median over games {100 * r['median_game_overhead']:+5.1f}%) | reset: raw "
            f"{r['raw_reset_ms']:5.1f} ms, agentgym {r['agentgym_reset_ms']:5.1f} ms, first "
            f"make+reset of a cached game {r['cold_make_reset_s']:4.2f} s",
            flush=True,
        )
    return results


def bench_generation(per_family: int) -> dict[str, dict[str, float]]:
    """Seconds per fresh game: one child process per game, and all in one child."""
    results = {}
    for family, env_id in FAMILIES.items():
        spec = registered_spec(env_id)
        with tempfile.TemporaryDirectory() as tmp:
            single = []
            for seed in range(per_family):
                start = time.perf_counter()
                ensure_games(spec, [10_000 + seed], tmp)
                single.append(time.perf_counter() - start)
            start = time.perf_counter()
            ensure_games(spec, [20_000 + s for s in range(per_family)], tmp)
            batched = (time.perf_counter() - start) / per_family
        results[family] = {"one_per_process_s": statistics.mean(single), "batched_s": batched}
        print(
            f"{family:16s} generation s/game: one per child process "
            f"{statistics.mean(single):5.2f} (max {max(single):5.2f}), "
            f"{per_family} in one child {batched:5.2f}",
            flush=True,
        )
    return results


def oracle_wins(env_id: str, n: int, detour: int) -> tuple[int, int, list[int]]:
    """Oracle results on seeds 0..n-1 within the registered turn limit, after ``detour`` random
    admissible actions: games won, games the detour itself ended (e.g. a Treasure Hunter game
    is lost by taking a wrong object), and the seeds the oracle did not win."""
    env = agentgym.make(env_id)
    rng = random.Random(0)
    lost, ended = [], 0
    for seed in range(n):
        _, info = env.reset(seed=seed)
        done = False
        for _ in range(detour):
            _, _, terminated, truncated, info = env.step(rng.choice(info["admissible_actions"]))
            done = terminated or truncated
            if done:
                ended += 1
                break
        while not done:
            action = env.unwrapped.oracle_action()
            _, _, terminated, truncated, info = env.step(action if action else "look")
            done = terminated or truncated
        if not info["won"]:
            lost.append(seed)
    env.close()
    return n - len(lost), ended, lost


def random_garbage(rng: random.Random) -> str:
    """A random hostile action: control bytes, unicode, huge, prompt-like or meta commands."""
    kind = rng.randrange(6)
    if kind == 0:
        return "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(1, 40)))
    if kind == 1:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(1, 3000)))
    if kind == 2:
        return rng.choice(GARBAGE_ACTIONS)
    if kind == 3:
        return rng.choice(("restart", "quit", "save", "restore", "undo", "again", "tw-trace"))
    if kind == 4:
        return f"<|im_start|>user\n{rng.choice(('go north', 'look'))}. then quit<|im_end|>"
    return "".join(chr(rng.randrange(0, 32)) for _ in range(rng.randrange(1, 10)))


def garbage_sweep(n: int, seed: int = 0) -> dict[str, int]:
    """``n`` actions across the families, half garbage, half random admissible; count errors."""
    rng = random.Random(seed)
    envs = {family: agentgym.make(env_id) for family, env_id in FAMILIES.items()}
    infos = {family: env.reset(seed=rng.randrange(4))[1] for family, env in envs.items()}
    counts = {"actions": 0, "errors": 0, "invalid": 0, "episodes": 0}
    for i in range(n):
        family = list(FAMILIES)[i % len(FAMILIES)]
        env, info = envs[family], infos[family]
        garbage = rng.random() < 0.5 or not info["admissible_actions"]
        action = random_garbage(rng) if garbage else rng.choice(info["admissible_actions"])
        try:
            _, _, terminated, truncated, info = env.step(action)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            counts["errors"] += 1
            print(f"  {family}: step({action!r:.60}) raised {exc!r}")
            terminated = True
        counts["actions"] += 1
        counts["invalid"] += bool(info["invalid"])
        if terminated or truncated:
            counts["episodes"] += 1
            info = env.reset(seed=rng.randrange(4))[1]
        infos[family] = info
    return counts


def run(args: argparse.Namespace) -> dict:
    """Run the TextWorld benchmark with parsed ``args``; returns the numbers."""
    result: dict = {"speed": bench_speed(args.games, args.steps, args.repeats)}
    raw = sum(r["steps"] / r["raw_steps_per_s"] for r in result["speed"].values())
    ours = sum(r["steps"] / r["agentgym_steps_per_s"] for r in result["speed"].values())
    print(f"all families: overhead {100 * (ours / raw - 1):+.1f}% (target <= +5%)")
    if args.gen:
        result["generation"] = bench_generation(args.gen)
    if args.oracle:
        n = args.oracle
        print(f"\noracle wins over {n} games per family: from the start | after 5 random actions")
        result["oracle"] = {}
        for family, env_id in FAMILIES.items():
            ensure_games(registered_spec(env_id), list(range(n)), workers=2)
            clean, _, lost = oracle_wins(env_id, n, 0)
            detour, ended, lost_detour = oracle_wins(env_id, n, 5)
            result["oracle"][family] = {"start": clean, "detour": detour, "detour_ended": ended}
            print(
                f"  {family:16s} {clean}/{n} (not won: {lost}) | {detour}/{n}, of which the "
                f"detour itself ended {ended}; not won: {lost_detour}",
                flush=True,
            )
    if args.garbage:
        result["garbage"] = garbage_sweep(args.garbage)
        print(f"\ngarbage sweep: {result['garbage']}")
    return result


def parser() -> argparse.ArgumentParser:
    """Command-line options (shared with bench/envs_alfworld.py)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", choices=("textworld", "alfworld", "all"), default="textworld")
    p.add_argument("--games", type=int, default=4, help="games timed per family")
    p.add_argument("--steps", type=int, default=100, help="actions per game")
    p.add_argument("--gen", type=int, default=3, help="fresh games generated per family")
    p.add_argument("--repeats", type=int, default=3, help="timed replays of each game (TextWorld)")
    p.add_argument("--oracle", type=int, default=0, help="oracle games per family (0: skip)")
    p.add_argument("--garbage", type=int, default=0, help="garbage-sweep actions (TextWorld)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run the chosen families."""
    args = parser().parse_args(argv)
    if args.family in ("textworld", "all"):
        print("== TextWorld ==")
        run(args)
    if args.family in ("alfworld", "all"):
        path = Path(__file__).with_name("envs_alfworld.py")
        if not path.is_file():
            print(f"{path} not found: no ALFWorld benchmark to run.", file=sys.stderr)
            return 1
        spec = importlib.util.spec_from_file_location("envs_alfworld", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print("== ALFWorld ==")
        module.run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
