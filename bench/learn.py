"""Credit estimators compared on one recipe with the same budget and several seeds.

    python bench/learn.py --config configs/textworld_coin.yaml \
        --estimators grpo rloo turn_rloo gigpo salt --seeds 0 1 2 --set trainer.iterations=4

Each (estimator, seed) is a full ``agentgym train`` run of the config (same tasks, same number
of episodes, same evaluation panel); runs already finished in ``--runs`` are reused, and a run
that went on past the budget (``trainer.iterations``) counts with its metrics up to the budget
and its evaluation after it (with a constant learning rate its first part is the same run). Writes
to ``--out`` (default ``bench/results``), prefixed with ``--tag``; ``--finished-only`` trains
nothing and tabulates the finished runs (each estimator paired with the baseline on the seeds
both have):

- ``TAG.csv``: one row per (estimator, seed, phase, iteration): success, return, seconds;
- ``TAG.png``: training success per iteration (mean over seeds) and final greedy success;
- ``TAG.md``: final greedy success per estimator (pooled over seeds, Wilson 95% interval), and
  each estimator paired against ``--baseline`` on the same panel: per (seed, task) outcomes
  pooled over seeds, the discordant counts, the exact McNemar p-value and a paired bootstrap
  95% interval of the success difference (:mod:`agentgym.compare`).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from agentgym.compare import compare_episodes
from agentgym.config import load
from agentgym.evaluate import wilson_interval
from agentgym.trainers.config import TrainConfig
from agentgym.trainers.evals import eval_path
from agentgym.trainers.loop import train


def run_one(
    config: str,
    estimator: str,
    seed: int,
    runs: Path,
    extra: list[str],
    tag: str,
    *,
    train_missing: bool = True,
) -> tuple[Path, int]:
    """The run of (estimator, seed), trained unless its evaluation after the budget's last
    iteration exists (or ``train_missing`` is False); returns its folder and the budget
    (iterations)."""
    cfg = load(
        TrainConfig,
        config,
        [
            f"credit.estimator={estimator}",
            "credit.options={}",
            f"seed={seed}",
            f"name={tag}-{estimator}-s{seed}",
            f"out_dir={runs}",
            "trainer.keep_checkpoints=1",  # 15 full-weight runs x 2 checkpoints filled 50 GB
            *extra,
        ],
    )
    path = Path(cfg.out_dir) / cfg.name
    if train_missing and not eval_path(path, cfg.trainer.iterations).exists():
        t0 = time.perf_counter()
        train(cfg, resume=True)
        print(f"{estimator} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
        shutil.rmtree(path / "checkpoints", ignore_errors=True)  # finished: nothing to resume
    return path, cfg.trainer.iterations


def metric_rows(path: Path, estimator: str, seed: int, budget: int) -> list[dict]:
    """The run's metrics up to iteration ``budget`` (a longer run counts for its first part:
    with a constant learning rate it is the same run up to there)."""
    rows = []
    for line in (path / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["iteration"] > budget:
            continue
        rows.append(
            {
                "estimator": estimator,
                "seed": seed,
                "phase": r["phase"],
                "iteration": r["iteration"],
                "success_rate": r["success_rate"],
                "mean_return": r.get("mean_return", ""),
                "seconds": round(r.get("rollout_s", 0) + r.get("update_s", 0), 1),
            }
        )
    return rows


def final_outcomes(path: Path, budget: int) -> list[dict]:
    """Episode outcomes of the run's evaluation after iteration ``budget``."""
    return json.loads(eval_path(path, budget).read_text())["outcomes"]


def paired_table(finals: dict[str, dict[int, list[dict]]], baseline: str) -> list[str]:
    lines = [
        f"| estimator | final greedy success (95% CI) | seeds | vs {baseline} (seeds both have): "
        f"{baseline} only / estimator only | McNemar p | success diff (95% bootstrap CI) |",
        "|---|---|---|---|---|---|",
    ]
    for est, by_seed in finals.items():
        episodes = [e for eps in by_seed.values() for e in eps]
        won = sum(bool(e["won"]) for e in episodes)
        lo, hi = wilson_interval(won, len(episodes))
        cell = f"{won / len(episodes):.1%} ({lo:.1%}–{hi:.1%}, n={len(episodes)})"
        cell += f" | {len(by_seed)}"
        shared = sorted(set(by_seed) & set(finals.get(baseline, {})))
        if est == baseline or not shared:
            lines.append(f"| {est} | {cell} | – | – | – |")
            continue
        # pair per seed (same panel) on the seeds both have, then pool
        tag = lambda eps, s: [{**e, "seed": int(e["seed"]) * 1000 + s} for e in eps]  # noqa: E731
        a = [e for s in shared for e in tag(finals[baseline][s], s)]
        b = [e for s in shared for e in tag(by_seed[s], s)]
        cmp = compare_episodes(a, b)
        low, high = cmp.diff_interval
        lines.append(
            f"| {est} | {cell} | {cmp.b} / {cmp.c} | {cmp.p_value:.3f} | "
            f"{cmp.diff:+.1%} ({low:+.1%} to {high:+.1%}) |"
        )
    return lines


def late_training_table(rows: list[dict]) -> list[str]:
    """Training-batch success (sampled episodes) over the last third of the budget, per
    estimator: mean over seeds and each seed's value. More episodes than the greedy panel
    (tasks_per_iter x group_size per iteration), so a steadier if on-policy measure."""
    last = max(r["iteration"] for r in rows)
    first = last - max(last // 3, 1) + 1
    lines = [
        f"Training-batch success over iterations {first}–{last} (sampled, on-policy):",
        "",
        "| estimator | mean over seeds | per seed |",
        "|---|---|---|",
    ]
    for est in dict.fromkeys(r["estimator"] for r in rows):
        mine = [r for r in rows if r["estimator"] == est and r["phase"] == "train"]
        by_seed = {
            s: np.mean(
                [r["success_rate"] for r in mine if r["seed"] == s and r["iteration"] >= first]
            )
            for s in dict.fromkeys(r["seed"] for r in mine)
        }
        each = ", ".join(f"s{s}: {v:.0%}" for s, v in by_seed.items())
        lines.append(f"| {est} | {np.mean(list(by_seed.values())):.1%} | {each} |")
    return lines


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for est in dict.fromkeys(r["estimator"] for r in rows):
        for ax, phase in zip(axes, ("train", "eval"), strict=True):
            mine = [r for r in rows if r["estimator"] == est and r["phase"] == phase]
            iters = sorted({r["iteration"] for r in mine})
            mean = [
                np.mean([r["success_rate"] for r in mine if r["iteration"] == i]) for i in iters
            ]
            ax.plot(iters, mean, marker="o", label=est)
    axes[0].set_title("training-batch success (mean over seeds)")
    axes[1].set_title("greedy success on held-out tasks (mean over seeds)")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", default="configs/textworld_coin.yaml")
    p.add_argument("--estimators", nargs="+", default=["grpo", "gigpo"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--baseline", default="grpo")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--tag", default="learn")
    p.add_argument("--runs", default="runs/learn", help="where the runs go (not committed)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument(
        "--finished-only",
        action="store_true",
        help="train nothing: tabulate the runs whose evaluation after the budget exists",
    )
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    finals: dict[str, dict[int, list[dict]]] = {}
    missing = []
    for seed in args.seeds:  # every estimator of a seed before the next seed
        for est in args.estimators:
            path, budget = run_one(
                args.config,
                est,
                seed,
                Path(args.runs),
                args.set,
                args.tag,
                train_missing=not args.finished_only,
            )
            if not eval_path(path, budget).exists():
                missing.append(f"{est} seed {seed}")
                continue
            rows += metric_rows(path, est, seed, budget)
            finals.setdefault(est, {})[seed] = final_outcomes(path, budget)
    with open(out / f"{args.tag}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out / f"{args.tag}.png")
    command = " ".join(["python", "bench/learn.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [f"# {args.tag}: credit estimators on {args.config}", "", f"Command: `{command}`", ""]
    lines += paired_table(finals, args.baseline)
    lines += ["", *late_training_table(rows)]
    if missing:
        lines += ["", f"Not finished (left out): {', '.join(missing)}."]
    lines += ["", f"Curves: {args.tag}.png; per-iteration numbers: {args.tag}.csv.", ""]
    (out / f"{args.tag}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
