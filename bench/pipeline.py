"""Tabulate a warm start + RL pipeline: greedy success of each stage on one held-out panel, and
the paired comparison of each stage with the one before (exact McNemar, paired bootstrap).

    python bench/pipeline.py --name alfworld_pipeline \\
        cold=runs/alfworld-pick-sft@0 warm=runs/alfworld-pick-sft rl=runs/alfworld-pick

A stage is ``LABEL=SPEC[@ITER]``: SPEC is anything ``agentgym compare`` reads (a run, an
``agentgym eval`` folder or file, a checkpoint); ``@ITER`` picks a run's evaluation after that
iteration (default: its last). Every stage must have played the same panel. Writes
``bench/results/NAME.md`` and ``.json`` with the command line; prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agentgym.compare import compare_episodes
from agentgym.evaluate import wilson_interval
from agentgym.report.comparison import check_comparable, load_side

RESULTS = Path(__file__).parent / "results"


def parse_stage(text: str) -> tuple[str, str, int | None]:
    label, _, spec = text.partition("=")
    if not spec:
        raise SystemExit(f"stage {text!r}: write LABEL=SPEC[@ITER]")
    spec, _, it = spec.partition("@")
    return label, spec, int(it) if it else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stages", nargs="+", metavar="LABEL=SPEC[@ITER]")
    p.add_argument("--name", required=True, help="results file name under bench/results/")
    p.add_argument("--out", default=str(RESULTS), help="folder of the results files")
    args = p.parse_args(argv)
    sides = [
        (label, load_side(spec, iteration=it)) for label, spec, it in map(parse_stage, args.stages)
    ]
    rows, pairs = [], []
    for label, side in sides:
        outcomes = side.record["outcomes"]
        won = sum(bool(e["won"]) for e in outcomes)
        lo, hi = wilson_interval(won, len(outcomes))
        turns = sum(int(e["turns"]) for e in outcomes) / max(len(outcomes), 1)
        rows.append({"stage": label, "source": side.label, "won": won, "episodes": len(outcomes),
                     "ci": [lo, hi], "mean_turns": turns})  # fmt: skip
    for (la, a), (lb, b) in zip(sides, sides[1:], strict=False):
        check_comparable(a, b)
        comp = compare_episodes(a.record["outcomes"], b.record["outcomes"])
        pairs.append({"a": la, "b": lb, **comp.as_dict()})
    command = "python bench/pipeline.py " + " ".join(sys.argv[1:] if argv is None else argv)
    env = sides[0][1].record.get("panel", {})
    lines = [
        f"# {args.name}",
        "",
        f"Command: `{command}`",
        "",
        f"Panel: {env.get('env_id', '?')} {json.dumps(env.get('env_kwargs', {}))}, "
        f"{rows[0]['episodes']} episodes, greedy.",
        "",
        "| stage | won | greedy success (95% CI) | mean turns | source |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['stage']} | {r['won']}/{r['episodes']} | {r['won'] / r['episodes']:.1%} "
            f"({r['ci'][0]:.1%}–{r['ci'][1]:.1%}) | {r['mean_turns']:.1f} | {r['source']} |"
        )
    lines += ["", "| A → B | A only / B only | McNemar p | B − A (95% paired bootstrap) |",
              "|---|---|---|---|"]  # fmt: skip
    for c in pairs:
        lines.append(
            f"| {c['a']} → {c['b']} | {c['a_only']} / {c['b_only']} | {c['mcnemar_p']:.3g} | "
            f"{100 * c['diff']:+.1f} ({100 * c['diff_ci'][0]:+.1f} to {100 * c['diff_ci'][1]:+.1f}) |"
        )
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text(text)
    (out / f"{args.name}.json").write_text(
        json.dumps({"command": command, "stages": rows, "pairs": pairs}, indent=1) + "\n"
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
