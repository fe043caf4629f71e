"""Resident memory over hundreds of episodes: a kept env pool vs building envs per episode.

    python bench/memory.py [--envs alfworld,textworld,code] [--episodes 500] [--batch 20]
                           [--warmup 100] [--today-episodes 200] [--out bench/results/memory.md]
    python bench/memory.py --envs alfworld --modes pool --turns 5 --before    # issue 18, both
    python bench/memory.py --rollout [--list-actions] [--rollout-turns 30]   # peak of a rollout

``--before`` adds, for each env, the same measurement with ALFWorld's engine memory as it was
before issue 18 (textworld's strong table of interned facts, the initial-facts memo at 64 games),
so the table shows both side by side. ``--rollout`` measures the peak resident memory (VmHWM) of
a 16-episode ALFWorld PickAndPlace rollout with SmolLM2-135M under constrained decoding, as
``configs/alfworld_pick.yaml`` plays it (4 tasks x 4, 30 turns, ``max_batch`` 16), and appends
its row to ``--out``.

For each env, episodes are collected in batches (``batch`` episodes: batch/2 tasks x 2) as the
trainer does, each batch with new seeds, in a fresh child process per mode:

- ``pool``: one kept in-process :class:`~agentgym.pool.EnvPool` (instances reset, not rebuilt);
- ``pool-process``: a kept pool of 2 worker processes (RSS of the trainer plus its workers);
- ``pool-recycle``: as ``pool-process``, with each worker restarted after ``--recycle-after``
  resets (``EnvPool(recycle_after=...)``, ``env.recycle_after`` in training);
- ``today``: ``collect`` without a pool (a new instance per episode, closed at the end).

The resident set size (Linux ``VmRSS``, summed over the process and its children) is read after
every batch. Growth = RSS at the end - RSS after ``warmup`` episodes (the first batches load
engines, game files and caches); the issue's bound is 30 MB over 500 episodes. Policies are
scripted: random admissible actions (10 turns) for ALFWorld and TextWorld (Coin Collector, 40 games); for the code env two
sandboxed ``run_python`` calls and a submission per episode.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ENVS = {
    "alfworld": "agentgym/ALFWorld-v0",
    "textworld": "agentgym/TextWorld-CoinCollector-v0",
    "code": "agentgym/Code-v0",
}
ENV_KWARGS = {"textworld": {"num_games": 40}}
"""TextWorld: a fixed set of 40 generated games (seed % 40; generating one takes 1-5 s)."""


def rss_mb(pid: int, children: bool = True) -> float:
    """Resident MB of ``pid`` and (``children``) all its descendants (Linux /proc)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(status.split("VmRSS:")[1].split()[0]) / 1024
            for task in Path(f"/proc/{p}/task").iterdir() if children else ():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, IndexError, ProcessLookupError):
            continue
    return total


def restore_old_alfworld_memory() -> None:
    """ALFWorld's engine memory as before issue 18: textworld's intern table a plain dict (it
    keeps every fact of every game loaded) and the initial-facts memo at 64 games."""
    import mementos.core

    from agentgym.envs import alfworld_fast

    mementos.core._memento_cache = dict(mementos.core._memento_cache)
    alfworld_fast._INITIAL_FACTS_MAX = 64


def child(
    env: str, mode: str, episodes: int, batch: int, recycle_after: int, turns: int = 10
) -> None:
    """Collect ``episodes`` in batches; print one JSON line: RSS (MB) after each batch."""
    from agentgym.policy.scripted import FixedPolicy, RandomPolicy
    from agentgym.pool import EnvPool
    from agentgym.rollout import collect
    from agentgym.tools import format_tool_call

    env_id = ENVS[env]
    tasks = batch // 2
    kwargs = ENV_KWARGS.get(env, {})
    if mode.endswith("-before"):
        restore_old_alfworld_memory()
        mode = mode.removesuffix("-before")
    kw: dict = {"tasks": tasks, "group_size": 2, "max_turns": turns, "env_kwargs": kwargs}
    if env == "code":
        program = "print(sum(i * i for i in range(20000)))"
        kw["action_format"] = "tool"

        def policy(b: int) -> FixedPolicy:
            return FixedPolicy(
                [format_tool_call("run_python", code=program)] * 2
                + [format_tool_call("submit", code="def solution():\n    return None\n")]
            )
    else:

        def policy(b: int) -> RandomPolicy:
            return RandomPolicy(b)

    pool = None
    if mode == "pool":
        pool = EnvPool(env_id, env_kwargs=kwargs, max_turns=turns)
    elif mode == "pool-process":
        pool = EnvPool(env_id, env_kwargs=kwargs, max_turns=turns, workers=2, executor="process")
    elif mode == "pool-recycle":
        pool = EnvPool(
            env_id,
            env_kwargs=kwargs,
            max_turns=turns,
            workers=2,
            executor="process",
            recycle_after=recycle_after,
        )
    series, own, start = [], [], time.perf_counter()
    for b in range(episodes // batch):
        collect(env_id, policy(b), seed=1000 + b * tasks, pool=pool, **kw)
        series.append(round(rss_mb(os.getpid()), 1))
        own.append(round(rss_mb(os.getpid(), children=False), 1))
    if pool is not None:
        pool.close()
    print(json.dumps({"rss": series, "own": own, "seconds": time.perf_counter() - start}))


def hf_policy_class(rev: str) -> type:
    """``HFPolicy`` as in the working tree (``rev`` empty) or as ``agentgym/policy/hf.py`` was at
    git revision ``rev`` (its source run as a module of its own, against today's helpers)."""
    if not rev:
        from agentgym.policy.hf import HFPolicy

        return HFPolicy
    import types

    source = subprocess.run(
        ["git", "show", f"{rev}:agentgym/policy/hf.py"], capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType("hf_at_rev")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:agentgym/policy/hf.py", "exec"), module.__dict__)
    return module.HFPolicy


def rollout_child(list_actions: bool, turns: int, tasks: int, group: int, rev: str = "") -> None:
    """One ALFWorld PickAndPlace rollout with SmolLM2-135M, constrained decoding; print one JSON
    line: peak and final RSS (MB), turns played, tokens prefilled, seconds."""
    import torch

    from agentgym.policy.models import load_model
    from agentgym.prompting import action_format
    from agentgym.rollout import collect

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    model, tokenizer = load_model("smollm2-135m")
    policy = hf_policy_class(rev)(model, tokenizer, max_batch=16, action_mode="constrained")
    start = time.perf_counter()
    batch = collect(
        "agentgym/ALFWorld-PickAndPlace-v0",
        policy,
        tasks=tasks,
        group_size=group,
        seed=0,
        max_turns=turns,
        action_format=action_format("plain", list_actions=list_actions),
    )
    status = Path("/proc/self/status").read_text()
    peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
    result = {
        "peak": round(peak, 1),
        "end": round(rss_mb(os.getpid(), children=False), 1),
        "turns": sum(len(t.turns) for t in batch.trajectories),
        "prefill_tokens": policy.stats["prefill_tokens"],
        "seconds": round(time.perf_counter() - start),
    }
    print(json.dumps(result))


def run_child(
    env: str, mode: str, episodes: int, batch: int, recycle_after: int, turns: int = 10
) -> dict:
    cmd = [sys.executable, __file__, "--child", env, mode, str(episodes), str(batch)]
    cmd += [str(recycle_after), str(turns)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rollout_row(args: argparse.Namespace) -> str:
    """Run :func:`rollout_child` in a fresh process and format its table row."""
    cmd = [sys.executable, __file__, "--rollout-child", str(int(args.list_actions))]
    cmd += [str(args.rollout_turns), str(args.rollout_tasks), str(args.rollout_group)]
    out = subprocess.run(cmd + [args.hf_rev], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    rev = subprocess.run(
        ["git", "rev-parse", "--short", args.hf_rev or "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"| {rev} | {'yes' if args.list_actions else 'no'} "
        f"| {args.rollout_tasks * args.rollout_group} x {args.rollout_turns} | {r['turns']} "
        f"| {r['prefill_tokens']} | {r['peak']:.0f} | {r['end']:.0f} | {r['seconds']} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", default="alfworld,textworld,code")
    parser.add_argument("--modes", default="pool,pool-process,today")
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--today-episodes", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench/results/memory.md"))
    parser.add_argument("--recycle-after", type=int, default=20)
    parser.add_argument("--turns", type=int, default=10, help="Turns per episode.")
    parser.add_argument(
        "--before", action="store_true", help="Also run each mode with the old ALFWorld memory."
    )
    parser.add_argument("--rollout", action="store_true", help="Peak RSS of a SmolLM2 rollout.")
    parser.add_argument("--list-actions", action="store_true")
    parser.add_argument("--rollout-turns", type=int, default=30)
    parser.add_argument("--rollout-tasks", type=int, default=4)
    parser.add_argument("--rollout-group", type=int, default=4)
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument(
        "--hf-rev", default="", help="--rollout: use agentgym/policy/hf.py as at this git revision."
    )
    parser.add_argument("--rollout-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        env, mode, episodes, batch, recycle_after, turns = args.child
        child(env, mode, int(episodes), int(batch), int(recycle_after), int(turns))
        return
    if args.rollout_child:
        list_actions, turns, tasks, group, rev = args.rollout_child
        rollout_child(bool(int(list_actions)), int(turns), int(tasks), int(group), rev)
        return
    if args.rollout:
        row = rollout_row(args)
        print(row)
        with args.out.open("a") as f:
            f.write(row + "\n")
        return
    lines = [
        "# bench/memory.py: resident memory over many episodes\n",
        f"Command: `python {' '.join(sys.argv)}`  ",
        f"Machine: {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"batches of {args.batch} episodes, growth measured after {args.warmup} warm-up episodes\n",
        "RSS: the collecting process and its env workers; trainer: that process alone.\n",
        "| env | collection | episodes | RSS after warm-up (MB) | RSS at end (MB) | growth (MB) "
        "| growth per 100 episodes (MB) | max after warm-up (MB) | trainer growth (MB) "
        "| seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    warm = max(args.warmup // args.batch, 1)
    for env in args.envs.split(","):
        modes = args.modes.split(",")
        if args.before:
            modes = [m for mode in modes for m in (f"{mode}-before", mode)]
        for mode in modes:
            episodes = args.today_episodes if mode.startswith("today") else args.episodes
            result = run_child(env, mode, episodes, args.batch, args.recycle_after, args.turns)
            rss, own = result["rss"], result["own"]
            base, end = rss[warm - 1], rss[-1]
            per100 = (end - base) / max(episodes - warm * args.batch, 1) * 100
            row = (
                f"| {env} | {mode} | {episodes} | {base:.1f} | {end:.1f} | {end - base:+.1f} "
                f"| {per100:+.1f} | {max(rss[warm - 1 :]):.1f} | {own[-1] - own[warm - 1]:+.1f} "
                f"| {result['seconds']:.0f} |"
            )
            print(row, "  series:", rss, flush=True)
            lines.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
