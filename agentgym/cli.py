"""The ``agentgym`` command: parse arguments and dispatch; the work lives in the library.

    agentgym envs
    agentgym rollout ENV --policy random|oracle [--tasks N] [--group-size G] [--seed S]
                         [--max-turns M] --out RUN
    agentgym credit RUN --estimator NAME [--option KEY=VALUE ...] [--iter N] [--traj ID]
    agentgym train CONFIG [KEY=VALUE ...] [--resume [--allow-config-change]] [--nproc N]
    agentgym replay | inspect | view | eval ...   (see agentgym.cli_tools)

Expected failures (unknown env, estimator or option, missing run or iteration) print one line
to stderr and return 2; set ``AGENTGYM_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from agentgym.data import Batch
from agentgym.store import Run, is_run_dir


class CliError(Exception):
    """An expected failure: its message is printed without a traceback."""


_EXPECTED = (CliError, KeyError, LookupError, OSError, ValueError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.handler(args, Console())
    except _EXPECTED as exc:
        if os.environ.get("AGENTGYM_DEBUG"):
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"agentgym: error: {' '.join(str(msg).split())}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agentgym", description="A gym and trainer for LLM agents.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    envs = sub.add_parser("envs", help="list registered environments")
    envs.set_defaults(handler=cmd_envs)

    ro = sub.add_parser("rollout", help="collect a batch of trajectories into a run directory")
    ro.add_argument("env", metavar="ENV", help="environment id, e.g. agentgym/KeyDoor-Small-v0")
    ro.add_argument("--policy", choices=["random", "oracle"], default="random")
    ro.add_argument("--tasks", type=int, default=4, help="number of tasks (default 4)")
    ro.add_argument("--group-size", type=int, default=4, help="episodes per task (default 4)")
    ro.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    ro.add_argument("--max-turns", type=int, default=None, help="override the env's turn limit")
    ro.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    ro.set_defaults(handler=cmd_rollout)

    cr = sub.add_parser("credit", help="compute per-turn advantages of a stored batch")
    cr.add_argument("run", metavar="RUN", help="run directory")
    cr.add_argument("--estimator", required=True, help="grpo, rloo, turn_rloo, gigpo, salt, ...")
    cr.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="estimator option (repeatable), e.g. --option gamma=0.9",
    )
    cr.add_argument("--iter", type=int, default=None, help="iteration (default: the latest)")
    cr.add_argument("--traj", default=None, help="trajectory id to show (default: the first)")
    cr.set_defaults(handler=cmd_credit)

    tr = sub.add_parser("train", help="train a policy with a YAML config")
    tr.add_argument("config", metavar="CONFIG", help="YAML config, e.g. configs/quickstart.yaml")
    tr.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. trainer.lr=1e-5")
    tr.add_argument("--resume", action="store_true", help="continue the run from its checkpoint")
    tr.add_argument(
        "--allow-config-change",
        action="store_true",
        help="with --resume: continue under a config that differs from the run's own",
    )
    tr.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train on N processes of this machine (one per GPU; gloo on CPU): runs "
        "`torchrun --standalone --nproc-per-node N` over this command",
    )
    tr.set_defaults(handler=cmd_train)

    from agentgym.cli_sft import add_sft_command

    add_sft_command(sub)

    from agentgym.cli_tools import add_tool_commands  # replay, inspect, view, eval

    add_tool_commands(sub)
    return p


# -- commands ---------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace, console: Console) -> int:
    from agentgym.config import load
    from agentgym.trainers.config import TrainConfig
    from agentgym.trainers.loop import train
    from agentgym.trainers.progress import (
        ConsoleReporter,
        TensorBoardReporter,
        fan_out,
        summary_table,
    )

    if args.nproc < 1:
        raise CliError(f"--nproc must be at least 1, got {args.nproc}")
    cfg = load(TrainConfig, args.config, args.overrides)  # a bad config fails before torchrun
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _torchrun(args)
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 prints and logs
    if not main_rank:
        console = Console(quiet=True)
    run_path = Path(cfg.out_dir) / cfg.name
    console.print(f"Training {cfg.policy.model} on {cfg.env.id} with {cfg.credit.estimator}")
    report = None
    if main_rank:
        report = fan_out(
            ConsoleReporter(console, cfg.trainer.iterations),
            TensorBoardReporter(run_path / "tensorboard"),
        )
    from agentgym.progress import console_bar

    with console_bar(console):
        run = train(
            cfg, resume=args.resume, report=report, allow_config_change=args.allow_config_change
        )
    console.print(summary_table(run))
    return 0


def _torchrun(args: argparse.Namespace) -> int:
    """Run this ``train`` command again under torchrun with ``args.nproc`` processes."""
    import subprocess

    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={args.nproc}",
        "-m",
        "agentgym",
        "train",
        args.config,
        *args.overrides,
        *(["--resume"] if args.resume else []),
        *(["--allow-config-change"] if args.allow_config_change else []),
    ]
    return subprocess.run(command, check=False).returncode


def cmd_envs(args: argparse.Namespace, console: Console) -> int:
    from agentgym.registry import list_envs

    table = Table(title="Registered environments")
    table.add_column("id", no_wrap=True, style="bold")
    table.add_column("max turns", justify="right")
    table.add_column("description")
    for spec in list_envs():
        table.add_row(spec.id, str(spec.max_turns), spec.description)
    console.print(table)
    return 0


def cmd_rollout(args: argparse.Namespace, console: Console) -> int:
    from agentgym.policy.scripted import make_scripted
    from agentgym.registry import spec
    from agentgym.rollout import collect

    spec(args.env)  # an unknown id fails here, before anything is written
    for name in ("tasks", "group_size"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1")
    out = Path(args.out)
    _check_out(out)
    policy = make_scripted(args.policy, **({"seed": args.seed} if args.policy == "random" else {}))
    batch = collect(
        args.env,
        policy,
        tasks=args.tasks,
        group_size=args.group_size,
        seed=args.seed,
        max_turns=args.max_turns,
    )
    run = Run.create(out)
    run.metrics_path.unlink(missing_ok=True)  # a replaced rollout starts its metrics afresh
    config = {k: v for k, v in vars(args).items() if k != "handler"}
    run.write_config(config)
    run.write_trajectories(batch, iteration=1)
    stats = rollout_stats(batch)
    run.log_metrics(stats, iteration=1)
    console.print(_summary_table(args.env, stats, run))
    return 0


def cmd_credit(args: argparse.Namespace, console: Console) -> int:
    from agentgym import credit

    run = Run(args.run)
    options = dict(parse_option(o) for o in args.option)
    credit.make_config(args.estimator, options)  # unknown estimator/option fails before reading
    iters = run.iterations()
    if not iters:
        raise CliError(f"Run {str(run.path)!r} has no trajectories yet; run `agentgym rollout`.")
    iteration = iters[-1] if args.iter is None else args.iter
    batch = run.read_batch(iteration)
    values = credit.compute(args.estimator, batch, options)
    batch = batch.with_advantages(args.estimator, values)
    path = run.update_trajectories(iteration, batch)
    index = _pick_trajectory(batch, args.traj)
    console.print(_credit_table(batch, index, args.estimator))
    console.print(
        f"{args.estimator} advantages of {batch.num_turns} turns "
        f"(mean {float(np.mean(values)):+.4f}, std {float(np.std(values)):.4f}) stored in {path}"
    )
    return 0


# -- helpers ----------------------------------------------------------------------------------


def parse_option(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, value) with value parsed as int, float, bool, None or str."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise CliError(f"--option expects KEY=VALUE, got {text!r}")
    return key.strip(), parse_value(raw.strip())


def parse_value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def _check_out(out: Path) -> None:
    """Refuse to write over anything but nothing, an empty directory or an earlier rollout."""
    if not out.exists():
        return
    if not out.is_dir():
        raise CliError(f"--out {str(out)!r} is a file; choose a directory path.")
    if not any(out.iterdir()):
        return
    if is_run_dir(out):
        run = Run(out)
        ckpts = run.checkpoints_dir
        if run.iterations() in ([], [1]) and not (ckpts.is_dir() and any(ckpts.iterdir())):
            return  # only an earlier rollout's output: replace it
    raise CliError(
        f"--out {str(out)!r} already holds other data (a training run or files); "
        "choose another --out or remove it."
    )


def rollout_stats(batch: Batch) -> dict[str, float | int]:
    """Summary numbers of a batch (also the rollout's metrics line)."""
    from agentgym.evaluate import batch_metrics

    outcome = batch_metrics(batch)
    return {
        "trajectories": len(batch),
        "groups": len(batch.group_ids),
        **{k: outcome[k] for k in ("success_rate", "mean_return", "mean_turns")},
    }


def _summary_table(env_id: str, stats: dict[str, Any], run: Run) -> Table:
    table = Table(title="Rollout", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("env", env_id)
    table.add_row("trajectories", str(stats["trajectories"]))
    table.add_row("groups", str(stats["groups"]))
    table.add_row("success rate", f"{stats['success_rate']:.1%}")
    table.add_row("mean return", f"{stats['mean_return']:.3f}")
    table.add_row("mean turns", f"{stats['mean_turns']:.2f}")
    table.add_row("run", str(run.path))
    return table


def _pick_trajectory(batch: Batch, traj_id: str | None) -> int:
    if not len(batch):
        raise CliError("The iteration has no trajectories.")
    if traj_id is None:
        return 0
    ids = [t.traj_id for t in batch.trajectories]
    if traj_id in ids:
        return ids.index(traj_id)
    shown = ", ".join(ids[:8]) + (", ..." if len(ids) > 8 else "")
    raise CliError(f"No trajectory {traj_id!r} in this iteration; ids: {shown}")


def _credit_table(batch: Batch, index: int, estimator: str) -> Table:
    traj = batch.trajectories[index]
    title = (
        f"{estimator} advantages of trajectory {traj.traj_id or index} "
        f"(group {traj.group_id}, return {traj.episode_return:g}, won {traj.won})"
    )
    table = Table(title=title)
    table.add_column("turn", justify="right")
    table.add_column("state_key", overflow="fold")
    table.add_column("action", overflow="fold")
    table.add_column("reward", justify="right")
    table.add_column("advantage", justify="right")
    for i, turn in enumerate(traj.turns):
        adv = turn.advantages[estimator]
        table.add_row(str(i), turn.state_key, turn.action, f"{turn.reward:g}", f"{adv:+.4f}")
    return table
