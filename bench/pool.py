"""Env pool throughput: episodes per second with N workers, relative to in-process.

    python bench/pool.py [--only io,code,alfworld] [--workers 1 2 4 8] [--tasks 8] [--group 2]
                         [--repeats 2] [--out bench/results/pool.md]

- ``io``: an I/O-bound tool env, the search env with a tool that waits 200 ms before answering
  (as a remote search API does). Each episode makes 4 searches, then answers (0.8 s of waiting).
- ``code``: the code env; each episode runs a small program twice in the sandbox
  (``run_python``), then submits it (the hidden tests run in the sandbox too).
- ``alfworld``: ALFWorld (random actions, 10 turns) collected batch after batch as the trainer
  does: today's ``collect`` without a pool (a new instance per episode) vs a kept pool whose
  instances are reset, not rebuilt (in-process, and 2 worker processes); each way in a fresh
  process (ALFWorld's engine memoizes per process).

For io and code, each executor (thread, process) and worker count N gets a kept pool; one
warm-up batch (``tasks x group`` episodes) builds its instances, then ``repeats`` batches are
timed. The baseline is in-process (a kept inline pool: the same instances, stepped one after
another). Speed-up = episodes/s with N workers / episodes/s in-process. The policy is scripted
(fixed actions), so the figures are the environments' alone. Every batch is checked to give
the in-process trajectories. Results go to ``--out`` (Markdown, with this command).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from agentgym.data import Batch
from agentgym.envs.search import SearchEnv
from agentgym.policy.scripted import FixedPolicy, RandomPolicy
from agentgym.pool import EnvPool
from agentgym.registry import register
from agentgym.rollout import collect
from agentgym.tools import ToolResult, format_answer, format_tool_call, tool

LATENCY = 0.2
SLOW_SEARCH = "bench/SlowSearch-v0"


class SlowSearchEnv(SearchEnv):
    """The 1-hop search env whose search tool first waits LATENCY seconds (a remote API)."""

    @tool
    def search(self, query: str, k: int = 3) -> ToolResult:
        """Search the passages with BM25 (after a 200 ms network round trip); return the k best
        (k: 1 to 10), one per line, as "Doc i (Title: title) text"."""
        time.sleep(LATENCY)
        return super().search(query, k)


register(SLOW_SEARCH, SlowSearchEnv, multi_hop=False, max_turns=6)

PROGRAM = "print(sum(i * i for i in range(20000)))"
SCENARIOS: dict[str, tuple[str, Callable[[], FixedPolicy]]] = {
    "io": (
        SLOW_SEARCH,
        lambda: FixedPolicy(
            [format_tool_call("search", query=f"who founded city {i}") for i in range(4)]
            + [format_answer("unknown")]
        ),
    ),
    "code": (
        "agentgym/Code-v0",
        lambda: FixedPolicy(
            [format_tool_call("run_python", code=PROGRAM)] * 2
            + [format_tool_call("submit", code="def solution():\n    return None\n")]
        ),
    ),
}


def timed(fn: Callable[[], Batch], repeats: int) -> tuple[float, int, Batch]:
    """(seconds, episodes, last batch) of ``repeats`` calls of ``fn``."""
    start, episodes, batch = time.perf_counter(), 0, None
    for _ in range(repeats):
        batch = fn()
        episodes += len(batch)
    return time.perf_counter() - start, episodes, batch  # type: ignore[return-value]


def throughput(name: str, args: argparse.Namespace, lines: list[str]) -> None:
    env_id, make_policy = SCENARIOS[name]
    kw = {"tasks": args.tasks, "group_size": args.group, "action_format": "tool"}
    rows = []

    def run(executor: str, workers: int) -> tuple[float, Batch]:
        with EnvPool(env_id, workers=workers, executor=executor) as pool:
            collect(env_id, make_policy(), seed=0, pool=pool, **kw)  # warm-up: build instances
            seconds, episodes, batch = timed(
                lambda: collect(env_id, make_policy(), seed=1, pool=pool, **kw), args.repeats
            )
        return episodes / seconds, batch

    base, expected = run("inline", 1)
    rows.append(("in-process", 1, base, 1.0))
    print(f"{name}: in-process {base:.2f} episodes/s", flush=True)
    for executor in ("thread", "process"):
        for n in args.workers:
            rate, batch = run(executor, n)
            assert batch == expected, f"{executor} x{n} gave other trajectories"
            rows.append((executor, n, rate, rate / base))
            print(f"{name}: {executor} x{n} {rate:.2f} episodes/s ({rate / base:.2f}x)", flush=True)
    lines += [
        f"\n## {name}: {env_id}\n",
        "| executor | workers | episodes/s | vs in-process | target 0.8*N |",
        "|---|---|---|---|---|",
        *(f"| {e} | {n} | {r:.2f} | {s:.2f}x | {0.8 * n:.1f}x |" for e, n, r, s in rows),
    ]


def alfworld_child(mode: str, batches: int, tasks: int, group: int) -> None:
    """Collect ALFWorld batches one way (in this fresh process); print seconds and a digest."""
    env_id = "agentgym/ALFWorld-v0"
    kw = {"tasks": tasks, "group_size": group, "max_turns": 10}
    pool = None
    if mode != "today":
        executor, workers = mode.split("x")
        pool = EnvPool(env_id, max_turns=10, workers=int(workers), executor=executor)
    # warm-up, untimed: imports; a pool also builds its instances (once per run in training)
    warm = {**kw, "seed": 10**6} if pool else {**kw, "seed": 10**6, "tasks": 1, "group_size": 1}
    collect(env_id, RandomPolicy(0), pool=pool, **warm)
    digest = hashlib.sha256()
    start = time.perf_counter()
    for b in range(batches):
        batch = collect(env_id, RandomPolicy(b), seed=100 * b, pool=pool, **kw)
        digest.update(repr(batch.trajectories).encode())
    seconds = time.perf_counter() - start
    if pool is not None:
        pool.close()
    print(json.dumps({"seconds": seconds, "digest": digest.hexdigest()}))


def alfworld(args: argparse.Namespace, lines: list[str]) -> None:
    """Each way in a fresh process, so none inherits another's warm engine caches."""
    batches, rows = args.alf_batches, []
    labels = {
        "today": "today: collect builds every episode",
        "inlinex1": "kept pool, in-process (reset, not rebuilt)",
        "processx2": "kept pool, 2 worker processes (reset, not rebuilt)",
    }
    digests = set()
    for mode, label in labels.items():
        cmd = [sys.executable, __file__, "--alf-child", mode, str(batches)]
        cmd += [str(args.tasks), str(args.group)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        digests.add(result["digest"])
        rows.append((label, result["seconds"]))
        print(f"alfworld: {label}: {result['seconds']:.1f} s", flush=True)
    assert len(digests) == 1, "the ways of collecting gave different trajectories"
    episodes = batches * args.tasks * args.group
    lines += [
        f"\n## alfworld: agentgym/ALFWorld-v0, {batches} batches of {args.tasks * args.group} "
        "episodes (random actions, 10 turns, new seeds every batch; each way in a fresh process, "
        "same trajectories)\n",
        "| collection | seconds | episodes/s | vs today |",
        "|---|---|---|---|",
        *(
            f"| {label} | {s:.1f} | {episodes / s:.2f} | {rows[0][1] / s:.2f}x |"
            for label, s in rows
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="io,code,alfworld")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--group", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--alf-batches", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench/results/pool.md"))
    parser.add_argument("--alf-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.alf_child:
        mode, batches, tasks, group = args.alf_child
        alfworld_child(mode, int(batches), int(tasks), int(group))
        return
    lines = [
        "# bench/pool.py: env pool throughput\n",
        f"Command: `python {' '.join(sys.argv)}`  ",
        f"Machine: {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
    ]
    for name in args.only.split(","):
        if name == "alfworld":
            alfworld(args, lines)
        else:
            throughput(name, args, lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
