"""ALFWorld engine speed: agentgym's env vs the raw alfworld environment, same games and actions.

    python bench/envs_alfworld.py [--games 6] [--steps 100] [--gen 3] [--oracle 0]

For ``games`` generated games (task types in turn, ``train`` split), one action sequence per game
is drawn first (``steps`` random admissible commands, with a garbage command now and then,
seeded). It is then played, side by side in this process, through

- raw: the environment alfworld's ``AlfredTWEnv.init_env`` builds (``textworld.gym`` over
  TextWorld's ``PddlEnv`` with alfworld's ``AlfredDemangler`` and ``AlfredInfos`` wrappers,
  admissible commands and ``won`` requested), one game per env, in-process
  (``asynchronous=False``; alfworld's own default adds a worker process per env);
- agentgym: ``agentgym.make("agentgym/ALFWorld-v0", ...)`` on the same game file (fast engine),

timing resets and steps separately, and checking that both gave the same observations. Then
``gen`` fresh games per task type are generated in a temporary cache and timed (sampling,
translation, planning and the replay check), and with ``--oracle N`` the oracle plays N games
per task type from the cache (first from the start, then after 5 random actions).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import textworld
import textworld.gym
from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

import agentgym
from agentgym.envs import alfworld_games
from agentgym.envs.alfworld import clean_command
from agentgym.envs.alfworld_fast import clear_caches
from agentgym.envs.alfworld_gen import TASK_TYPES

GARBAGE = ("", "take the moon", "go to narnia 1", "\x00\x1b[2J", "ünïcødé 🙂", "x" * 300)


def action_plan(game: Path, steps: int, seed: int) -> list[str]:
    """A seeded action sequence for ``game``: admissible commands with some garbage mixed in."""
    env = agentgym.make("agentgym/ALFWorld-v0", max_turns=10**9)
    _, info = env.reset(options={"game_file": str(game)})
    rng = random.Random(seed)
    actions = []
    for _ in range(steps):
        action = (
            rng.choice(GARBAGE) if rng.random() < 0.1 else rng.choice(info["admissible_actions"])
        )
        actions.append(action)
        _, _, terminated, _, info = env.step(action)
        if terminated:
            break
    return actions


def play_raw(game: Path, actions: list[str]) -> tuple[float, float, list[str]]:
    """Reset and step seconds, and observations, of the raw alfworld environment."""
    infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
    wrappers = [AlfredDemangler(shuffle=False), AlfredInfos]
    env_id = textworld.gym.register_games(
        [str(game)],
        infos,
        batch_size=1,
        asynchronous=False,
        max_episode_steps=10**9,
        wrappers=wrappers,
    )
    env = textworld.gym.make(env_id)
    start = time.perf_counter()
    obs, _ = env.reset()
    reset_s = time.perf_counter() - start
    seen = [obs[0]]
    start = time.perf_counter()
    for action in actions:
        obs, _, _, _ = env.step([clean_command(action)])  # the text agentgym sends
        seen.append(obs[0])
    step_s = time.perf_counter() - start
    env.close()
    return reset_s, step_s, seen


def play_agentgym(game: Path, actions: list[str]) -> tuple[float, float, list[str]]:
    """Reset and step seconds, and observations, through ``agentgym.make`` (cold: new env,
    memoized translations forgotten)."""
    clear_caches()
    env = agentgym.make("agentgym/ALFWorld-v0", max_turns=10**9)
    start = time.perf_counter()
    obs, _ = env.reset(options={"game_file": str(game)})
    reset_s = time.perf_counter() - start
    seen = [obs]
    start = time.perf_counter()
    for action in actions:
        seen.append(env.step(action)[0])
    return reset_s, time.perf_counter() - start, seen


def bench_speed(n_games: int, steps: int) -> dict[str, float]:
    """Steps per second and reset times, raw vs agentgym, over the same games and actions."""
    totals = {"raw_reset": 0.0, "raw_step": 0.0, "ours_reset": 0.0, "ours_step": 0.0, "steps": 0}
    for i in range(n_games):
        task_type = TASK_TYPES[i % len(TASK_TYPES)]
        game = alfworld_games.generated_game("train", task_type, i // len(TASK_TYPES))
        actions = action_plan(game, steps, seed=i)
        raw = play_raw(game, actions)
        ours = play_agentgym(game, actions)
        same = raw[2] == ours[2]
        print(
            f"{task_type:32s} {len(actions):4d} steps  raw {len(actions) / raw[1]:7.1f}/s "
            f"reset {raw[0]:5.2f}s | agentgym {len(actions) / ours[1]:7.1f}/s reset {ours[0]:5.2f}s"
            f" | same observations: {same}"
        )
        if not same:
            raise SystemExit("The engines disagreed: the fast engine is broken.")
        for key, value in zip(
            ("raw_reset", "raw_step", "ours_reset", "ours_step"), raw[:2] + ours[:2], strict=True
        ):
            totals[key] += value
        totals["steps"] += len(actions)
    return totals


def bench_generation(per_type: int) -> dict[str, list[float]]:
    """Seconds to generate (and check) fresh games, per task type, in a temporary cache."""
    times: dict[str, list[float]] = {}
    old = os.environ.get("AGENTGYM_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AGENTGYM_CACHE"] = tmp
        try:
            for task_type in TASK_TYPES:
                for seed in range(per_type):
                    start = time.perf_counter()
                    alfworld_games.generated_game("train", task_type, 10_000 + seed)
                    times.setdefault(task_type, []).append(time.perf_counter() - start)
        finally:
            if old is None:
                os.environ.pop("AGENTGYM_CACHE", None)
            else:
                os.environ["AGENTGYM_CACHE"] = old
    return times


def oracle_success(task_type: str, n: int, detour: int = 5) -> tuple[int, int]:
    """Games (of ``n``) the oracle wins within 50 turns: from the start, and after ``detour``
    random admissible actions."""
    env = agentgym.make("agentgym/ALFWorld-v0", task_types=task_type)
    rng = random.Random(0)
    wins = [0, 0]
    for seed in range(n):
        for run, steps in enumerate((0, detour)):
            _, info = env.reset(seed=seed)
            done = False
            for _ in range(steps):
                _, _, done, _, info = env.step(rng.choice(info["admissible_actions"]))
                if done:
                    break
            while not done and (action := env.unwrapped.oracle_action()) is not None:
                _, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
            wins[run] += bool(info["won"])
    return wins[0], wins[1]


def run(args: argparse.Namespace) -> dict:
    """Run the benchmark with parsed ``args`` (see :func:`parser`; options missing from
    ``args`` take their defaults, so a caller's own namespace works); returns the numbers."""
    defaults = vars(parser().parse_args([]))
    args = argparse.Namespace(**{k: getattr(args, k, v) for k, v in defaults.items()})
    totals = bench_speed(args.games, args.steps)
    raw_sps = totals["steps"] / totals["raw_step"]
    ours_sps = totals["steps"] / totals["ours_step"]
    print(
        f"\nsteps/s: raw alfworld {raw_sps:.1f}, agentgym {ours_sps:.1f} -> {ours_sps / raw_sps:.1f}x"
        f"\nreset s/game (cold): raw {totals['raw_reset'] / args.games:.2f}, "
        f"agentgym {totals['ours_reset'] / args.games:.2f}"
    )
    result = {"raw_steps_per_s": raw_sps, "agentgym_steps_per_s": ours_sps}
    result["speedup"] = ours_sps / raw_sps
    if args.gen:
        times = bench_generation(args.gen)
        print("\ngeneration s/game (sample + translate + plan + replay):")
        for task_type, secs in times.items():
            print(f"  {task_type:32s} mean {statistics.mean(secs):5.2f}  max {max(secs):5.2f}")
        result["generation_s"] = {k: statistics.mean(v) for k, v in times.items()}
    if args.oracle:
        print(f"\noracle success over {args.oracle} games per type (from start / after 5 random):")
        result["oracle"] = {}
        for task_type in TASK_TYPES:
            clean_wins, detour_wins = oracle_success(task_type, args.oracle)
            result["oracle"][task_type] = (clean_wins, detour_wins)
            print(f"  {task_type:32s} {clean_wins}/{args.oracle}  {detour_wins}/{args.oracle}")
    return result


def parser() -> argparse.ArgumentParser:
    """Command-line options of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--games", type=int, default=6, help="games timed (task types in turn)")
    p.add_argument("--steps", type=int, default=100, help="actions per game")
    p.add_argument("--gen", type=int, default=3, help="fresh games generated per task type")
    p.add_argument("--oracle", type=int, default=0, help="oracle games per task type (0: skip)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse ``argv`` and run."""
    run(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
