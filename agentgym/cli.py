"""The ``agentgym`` command: parse arguments and dispatch; the work lives in the library.

    agentgym envs [ID]
    agentgym rollout ENV[:KEY=VALUE,...] --policy random|oracle [--tasks N] [--group-size G]
                     [--seed S] [--max-turns M] [--env-kwarg KEY=VALUE ...] --out RUN
    agentgym credit RUN --estimator NAME [--option KEY=VALUE ...] [--iter N] [--traj ID]
    agentgym train CONFIG [KEY=VALUE ...] [--resume [--allow-config-change]] [--nproc N]
    agentgym replay | inspect | view | eval ...   (see agentgym.cli_tools)

Expected failures (unknown env, estimator or option, missing run or iteration) print one line
to stderr and return 2; set ``AGENTGYM_DEBUG=1`` to see the traceback instead. ``--import
MODULE`` (or ``AGENTGYM_IMPORT``) loads a module of the user's that registers environments.
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

from agentgym import __version__
from agentgym.cli_tools import (
    CliError,
    add_env_kwarg_option,
    add_import_option,
    add_tool_commands,
)
from agentgym.data import Batch
from agentgym.evaluate import AllFaultedError
from agentgym.preflight import parse_value
from agentgym.store import Run, is_run_dir

_EXPECTED = (CliError, KeyError, LookupError, OSError, ValueError, ImportError, AllFaultedError)
LOG_WIDTH = 200
"""Columns of output written to a file or a CI log (a terminal uses its own width)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else 2
    try:
        if getattr(args, "imports", None):
            from agentgym.registry import import_modules

            import_modules(args.imports, export=True)  # torchrun and worker processes too
        return args.handler(args, make_console())
    except _EXPECTED as exc:
        if os.environ.get("AGENTGYM_DEBUG"):
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"agentgym: error: {' '.join(str(msg).split())}", file=sys.stderr)
        return 2


def make_console() -> Console:
    """A console for stdout: a terminal's own width, else :data:`LOG_WIDTH` without wrapping
    (a log file or CI keeps one line per record)."""
    if sys.stdout.isatty():
        return Console()
    width = int(os.environ.get("COLUMNS", 0) or 0) or LOG_WIDTH
    return Console(width=width, soft_wrap=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agentgym", description="A gym and trainer for LLM agents.")
    p.add_argument("--version", action="version", version=f"agentgym {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    envs = sub.add_parser("envs", help="list registered environments, or describe one")
    envs.add_argument("env", metavar="ID", nargs="?", help="show this environment in full")
    add_import_option(envs)
    envs.set_defaults(handler=cmd_envs)

    ro = sub.add_parser("rollout", help="collect a batch of trajectories into a run directory")
    ro.add_argument(
        "env",
        metavar="ENV",
        help="environment id, e.g. agentgym/KeyDoor-Small-v0, with constructor arguments "
        "after a colon: agentgym/CoinCollector-v0:level=10",
    )
    ro.add_argument("--policy", choices=["random", "oracle"], default="random")
    ro.add_argument("--tasks", type=int, default=4, help="number of tasks (default 4)")
    ro.add_argument("--group-size", type=int, default=4, help="episodes per task (default 4)")
    ro.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    ro.add_argument("--max-turns", type=int, default=None, help="override the env's turn limit")
    ro.add_argument("--out", required=True, metavar="RUN", help="run directory to write")
    add_env_kwarg_option(ro)
    add_import_option(ro)
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
    cr.add_argument(
        "--traj",
        default=None,
        help="trajectory to show: id, unique end of it or row number (default: the one whose "
        "estimators disagree most, or with the largest advantages)",
    )
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
    add_import_option(tr)
    tr.set_defaults(handler=cmd_train)

    from agentgym.cli_sft import add_sft_command

    add_sft_command(sub)

    add_tool_commands(sub)  # replay, inspect, view, eval, compare
    from agentgym.serve import add_serve_command

    add_serve_command(sub)  # serve an env over HTTP
    return p


# -- commands ---------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace, console: Console) -> int:
    from agentgym.config import load
    from agentgym.preflight import check_config_path, check_train, remove_if_empty_run
    from agentgym.trainers.config import TrainConfig
    from agentgym.trainers.faults import FaultThresholdError
    from agentgym.trainers.loop import train
    from agentgym.trainers.progress import (
        ConsoleReporter,
        TensorBoardReporter,
        fan_out,
        summary_table,
    )

    if args.nproc < 1:
        raise CliError(f"--nproc must be at least 1, got {args.nproc}")
    check_config_path(args.config)
    cfg = load(TrainConfig, args.config, args.overrides)  # a bad config fails before torchrun
    main_rank = os.environ.get("RANK", "0") == "0"
    if main_rank:
        # the env builds with its kwargs, the estimator exists, the eval seeds are held out:
        # before torchrun, the run folder or the model
        check_train(cfg)
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _torchrun(args)
    if not main_rank:  # under torchrun only rank 0 prints and logs
        console = Console(quiet=True)
    run_path = Path(cfg.out_dir) / cfg.name
    existed = run_path.exists()  # before the TensorBoard writer makes it
    console.print(f"Training {cfg.policy.model} on {cfg.env.id} with {cfg.credit.estimator}")
    report = None
    if main_rank:
        report = fan_out(
            ConsoleReporter(console, cfg.trainer.iterations),
            TensorBoardReporter(run_path / "tensorboard"),
        )
    from agentgym.progress import console_bar

    try:
        with console_bar(console):
            run = train(
                cfg,
                resume=args.resume,
                report=report,
                allow_config_change=args.allow_config_change,
            )
    except BaseException as exc:
        if main_rank and not existed:
            remove_if_empty_run(run_path)  # a failed start leaves nothing that blocks a retry
        if isinstance(exc, FaultThresholdError):  # names the env, seed and fault: one line
            raise CliError(str(exc)) from exc
        raise
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
    from agentgym.registry import list_envs, spec

    if args.env:
        from agentgym.report.terminal import env_view

        console.print(env_view(spec(args.env)))
        return 0
    specs = list_envs()
    if not console.is_terminal:  # a file or a pipe: one whole line per env, for grep
        width = max(len(s.id) for s in specs)
        for s in specs:
            console.print(f"{s.id:<{width}}  {s.max_turns:>4}  {s.description}", markup=False)
        return 0
    table = Table(title="Registered environments (`agentgym envs ID` shows one in full)")
    table.add_column("id", no_wrap=True, style="bold")
    table.add_column("max turns", justify="right")
    table.add_column("description", overflow="fold")
    for s in specs:
        table.add_row(s.id, str(s.max_turns), s.description)
    console.print(table)
    return 0


def cmd_rollout(args: argparse.Namespace, console: Console) -> int:
    from agentgym.policy.scripted import make_scripted
    from agentgym.preflight import check_env_builds, env_args, env_label
    from agentgym.rollout import collect

    ((env_id, kwargs),) = env_args([args.env], args.env_kwarg)
    for name in ("tasks", "group_size"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1")
    out = Path(args.out)
    _check_out(out)
    # an unknown id or a bad argument fails here, before anything is written
    check_env_builds(env_id, kwargs, max_turns=args.max_turns, seed=args.seed)
    policy = make_scripted(args.policy, **({"seed": args.seed} if args.policy == "random" else {}))
    batch = collect(
        env_id,
        policy,
        tasks=args.tasks,
        group_size=args.group_size,
        seed=args.seed,
        max_turns=args.max_turns,
        env_kwargs=kwargs,
    )
    run = Run.create(out)
    run.metrics_path.unlink(missing_ok=True)  # a replaced rollout starts its metrics afresh
    skip = ("handler", "env_kwarg")  # imports stay: replay imports them again
    config = {k: v for k, v in vars(args).items() if k not in skip}
    files = [str(Path(m).resolve()) if m.endswith(".py") else m for m in args.imports]
    config.update(env=env_id, env_kwargs=kwargs, imports=files)
    run.write_config(config)
    run.write_trajectories(batch, iteration=1)
    stats = rollout_stats(batch)
    run.log_metrics(stats, iteration=1)
    console.print(_summary_table(env_label(env_id, kwargs), stats, run))
    return 0


def cmd_credit(args: argparse.Namespace, console: Console) -> int:
    from agentgym import credit
    from agentgym.report.terminal import credit_table, pick_trajectory

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
    index = pick_trajectory(batch, args.traj, args.estimator)
    console.print(credit_table(batch, index, args.estimator))
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
