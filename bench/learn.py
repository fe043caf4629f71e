"""Learning curves: success rate per iteration of a training config, per credit estimator.

    python bench/learn.py                                   # quickstart, gigpo only, seed 0
    python bench/learn.py --estimators grpo rloo turn_rloo gigpo salt --seeds 0 1 2
    python bench/learn.py --config configs/quickstart.yaml --set trainer.iterations=4

Each (estimator, seed) is a full `agentgym train` run on the same budget (same config, same
tasks, same number of episodes). Writes ``bench/out/learn.csv`` (iteration, estimator, seed,
train success rate, mean return, eval success before/after) and ``bench/out/learn.png``.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from agentgym.config import load
from agentgym.trainers.config import TrainConfig
from agentgym.trainers.loop import train


def run_one(config: str, estimator: str, seed: int, out: Path, extra: list[str]) -> list[dict]:
    cfg = load(
        TrainConfig,
        config,
        [
            f"credit.estimator={estimator}",
            "credit.options={}",
            f"seed={seed}",
            f"name=learn-{estimator}-s{seed}",
            f"out_dir={out / 'runs'}",
            *extra,
        ],
    )
    t0 = time.perf_counter()
    run = train(cfg, resume=True)
    rows = []
    for r in run.read_metrics():
        rows.append(
            {
                "estimator": estimator,
                "seed": seed,
                "phase": r["phase"],
                "iteration": r["iteration"],
                "success_rate": r["success_rate"],
                "mean_return": r.get("mean_return", ""),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for est in sorted({r["estimator"] for r in rows}):
        train_rows = [r for r in rows if r["estimator"] == est and r["phase"] == "train"]
        iters = sorted({r["iteration"] for r in train_rows})
        mean = [
            sum(r["success_rate"] for r in train_rows if r["iteration"] == i)
            / max(1, sum(1 for r in train_rows if r["iteration"] == i))
            for i in iters
        ]
        ax.plot(iters, mean, marker="o", label=est)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training success rate (mean over seeds)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", default="configs/quickstart.yaml")
    p.add_argument("--estimators", nargs="+", default=["gigpo"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--out", default="bench/out")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for est in args.estimators:
        for seed in args.seeds:
            rows += run_one(args.config, est, seed, out, args.set)
            with open(out / "learn.csv", "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    plot(rows, out / "learn.png")
    print(f"wrote {out / 'learn.csv'} and {out / 'learn.png'}")
    for est in args.estimators:
        evals = [r for r in rows if r["estimator"] == est and r["phase"] == "eval"]
        first = [r["success_rate"] for r in evals if r["iteration"] == 0]
        last = [r["success_rate"] for r in evals if r["iteration"] > 0]
        if first and last:
            print(
                f"{est:10s} eval success before {sum(first) / len(first):.1%} "
                f"after {sum(last) / len(last):.1%} over {len(first)} seed(s)"
            )


if __name__ == "__main__":
    main()
