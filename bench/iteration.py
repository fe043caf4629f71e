"""Cost of one training iteration on TextWorld-CoinCollector: before this round's work vs now.

    python bench/iteration.py                      # baseline rev 2d26d3e vs the working tree
    python bench/iteration.py --baseline-rev REV --settings new=configs/textworld_coin.yaml

Both sides run one real iteration (16 episodes of up to 15 turns with SmolLM2-135M on CPU:
rollout, credit, update) in child processes of this one run, one after the other:

- ``before``: the code at ``--baseline-rev`` (checked out with ``git archive`` into a temporary
  folder and imported from there) with the settings a user had then: the quickstart recipe
  (``decoding=choose``) pointed at CoinCollector.
- ``now``: the working tree with ``configs/textworld_coin.yaml``, the recipe that learns
  (constrained decoding with the action list shown, LoRA on the top 10 layers trained from the
  rollout's frozen-layer states, zero-advantage samples skipped).
- ``now, inline list``: the recipe with the actions on one line (``policy.list_style=inline``,
  about half the list's tokens).
- ``now, no list``: the same without the action list in the prompt (the constraint still holds
  it): shorter prompts.
- ``now, no state reuse``: the recipe with ``trainer.reuse_rollout_states=false`` (the update
  re-runs the frozen layers), to show what that part is worth.

The timing of each side comes from its own ``metrics.jsonl`` (``rollout_s``, ``update_s``);
evaluation is not part of an iteration. Writes ``bench/results/iteration.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMON = [
    "env.id=agentgym/TextWorld-CoinCollector-v0",
    "env.kwargs={}",
    "env.max_turns=15",
    "env.tasks_per_iter=4",
    "env.group_size=4",
    "trainer.iterations=1",
    "trainer.eval_episodes=1",
]
NOW_SIDES = {
    "now": [],
    "now, inline list": ["policy.list_style=inline"],
    "now, no list": ["policy.list_actions=false"],
    "now, no state reuse": ["trainer.reuse_rollout_states=false"],
}
"""The working tree's sides: overrides of the recipe."""
CHILD = """
import json, sys, time
from agentgym.config import load
from agentgym.trainers.config import TrainConfig
from agentgym.trainers.loop import train
cfg = load(TrainConfig, sys.argv[1], sys.argv[3:] + ["name=bench", "out_dir=" + sys.argv[2]])
train(cfg)
"""


def overlay(rev: str, where: Path) -> Path:
    """An importable ``agentgym`` package of ``rev`` (envs/ and trainers/ mapped inside it)."""
    src = where / "src"
    src.mkdir(parents=True)
    archive = where / "rev.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), rev], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(src, filter="data")
    pkg = where / "pkg" / "agentgym"
    pkg.parent.mkdir()
    pkg.symlink_to(src / "agentgym", target_is_directory=True)
    for sub in ("envs", "trainers"):  # setuptools' package-dir mapping, as symlinks
        link = src / "agentgym" / sub
        if not link.exists():
            link.symlink_to(src / sub, target_is_directory=True)
    return src


def run_side(name: str, config: Path, overrides: list[str], pythonpath: Path | None) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"bench-iter-{name}-"))
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath.parent / "pkg")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(config), str(out), *overrides],
        env=env,
        cwd=pythonpath or ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-4000:]}")
    records = [json.loads(line) for line in (out / "bench" / "metrics.jsonl").open()]
    train = next(r for r in records if r["phase"] == "train")
    return {
        "side": name,
        "rollout_s": round(train["rollout_s"], 1),
        "update_s": round(train["update_s"], 1),
        "iteration_s": round(train["rollout_s"] + train["update_s"], 1),
        "episodes": 16,
        "mean_turns": train["mean_turns"],
        "response_tokens": train["response_tokens"],
        "prompt_tokens": train.get("prompt_tokens"),
        "success_rate": train["success_rate"],
        "wall_s_incl_load_and_eval": round(wall, 1),
        "overrides": overrides,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline-rev", default="2d26d3e")
    ap.add_argument("--baseline-config", default="configs/quickstart.yaml")
    ap.add_argument("--config", default=str(ROOT / "configs/textworld_coin.yaml"))
    ap.add_argument("--out", default=str(ROOT / "bench/results"))
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = overlay(args.baseline_rev, Path(tmp))
        rows.append(
            run_side("before", src / args.baseline_config, COMMON + ["policy.decoding=choose"], src)
        )
        print(json.dumps(rows[-1]), flush=True)
    for name, extra in NOW_SIDES.items():
        rows.append(run_side(name, Path(args.config), COMMON + extra, None))
        print(json.dumps(rows[-1]), flush=True)
    for r in rows:
        r["speedup"] = round(rows[0]["iteration_s"] / r["iteration_s"], 2)
    speedup = rows[1]["speedup"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    result = {"rows": rows, "speedup": round(speedup, 2), "loadavg": load, "argv": sys.argv}
    (out / "iteration.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# One training iteration on TextWorld-CoinCollector (16 episodes, ≤ 15 turns, CPU)",
        "",
        f"Command: `python bench/iteration.py --baseline-rev {args.baseline_rev}` "
        f"(load average at the end: {load[0]:.1f}).",
        "",
        "| side | rollout s | update s | iteration s | speed-up | prompt tokens | "
        "response tokens |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['side']} | {r['rollout_s']} | {r['update_s']} | {r['iteration_s']} | "
            f"{r['speedup']}× | {r['prompt_tokens']} | {r['response_tokens']} |"
        )
    lines += ["", f"Speed-up of an iteration with the recipe: **{speedup:.2f}×**.", ""]
    (out / "iteration.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
