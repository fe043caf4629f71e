"""``agentgym sft CONFIG [KEY=VALUE ...]``: the supervised warm start of a recipe.

Trains the recipe's model on expert replies (``sft.data`` runs, or ``sft.oracle_episodes`` of
the environment's own expert) with the recipe's prompts and decoding, evaluates it as training
would, and writes ``RUN/model``; ``agentgym train CONFIG policy.model=RUN/model`` starts RL
there (see :mod:`agentgym.trainers.sft`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console


def add_sft_command(sub: Any) -> None:
    """Add the ``sft`` subcommand to the CLI's subparsers."""
    p = sub.add_parser("sft", help="supervised warm start on expert trajectories")
    p.add_argument("config", metavar="CONFIG", help="YAML recipe, e.g. configs/alfworld_pick.yaml")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. sft.epochs=3")
    p.set_defaults(handler=cmd_sft)


def cmd_sft(args: argparse.Namespace, console: Console) -> int:
    from agentgym.config import load
    from agentgym.preflight import check_config_path, check_train, remove_if_empty_run
    from agentgym.progress import console_bar
    from agentgym.trainers.config import TrainConfig
    from agentgym.trainers.progress import ConsoleReporter, summary_table
    from agentgym.trainers.sft import warm_start

    check_config_path(args.config)
    cfg = load(TrainConfig, args.config, args.overrides)
    check_train(cfg)  # the envs build with their kwargs: before the run folder or the model
    run_path = Path(cfg.out_dir) / cfg.name
    existed = run_path.exists()
    source = ", ".join(cfg.sft.data) or f"{cfg.sft.oracle_episodes} oracle episodes"
    console.print(f"Warm start of {cfg.policy.model} on {cfg.env.id} from {source}")
    try:
        with console_bar(console):
            run = warm_start(cfg, report=ConsoleReporter(console, cfg.sft.epochs))
    except BaseException:
        if not existed:
            remove_if_empty_run(run_path)  # a failed start leaves nothing that blocks a retry
        raise
    console.print(summary_table(run))
    console.print(
        f"Trained weights: {run.path / 'model'}  (RL from there: agentgym train {args.config} "
        f"policy.model={run.path / 'model'})"
    )
    return 0
