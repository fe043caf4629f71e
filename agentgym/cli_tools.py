"""The after-training subcommands of ``agentgym``: replay, inspect, view, eval and compare.

Registered on the main parser by :func:`add_tool_commands`; each handler parses nothing more,
calls the library and prints. The work lives in :mod:`agentgym.replay`, :mod:`agentgym.report`
and :mod:`agentgym.evaluate`.

    agentgym replay RUN [--iter N] [--traj ID | --all]
    agentgym inspect RUN [--iter N ...] [--env S] [--won | --lost] [--group S] [--task S]
                         [--sort KEY] [--desc] [--limit N] [--traj ID]
    agentgym view RUN [--out report.html] [--iter N ...]
    agentgym eval --env ID[:KEY=VALUE,...] [--env ...] [--env-kwarg KEY=VALUE ...]
                  --policy random|oracle|MODEL|RUN|CHECKPOINT [--episodes N] [--samples K]
                  [--seed S] [--max-turns M] [--temperature T] [--device D]
                  [--out DIR [--overwrite]] [--import MODULE ...]
    agentgym compare A B [--iter N | --iter-a N --iter-b N] [--env ID] [--resamples R]
                     [--seed S] [--allow-version-mismatch]

``replay`` exits 1 when a trajectory diverges (2 stays the code of usage errors).
:class:`CliError` lives here; :mod:`agentgym.cli` imports this module, never the reverse.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from agentgym.store import Run


class CliError(Exception):
    """An expected failure: its message is printed without a traceback."""


def add_import_option(parser: argparse.ArgumentParser) -> None:
    """``--import MODULE`` (repeatable): a module or ``.py`` file whose registrations to load."""
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module (name or .py path) that registers environments (repeatable; "
        "or set AGENTGYM_IMPORT=mod1,mod2)",
    )


def add_env_kwarg_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env-kwarg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="constructor argument of the env (repeatable), e.g. --env-kwarg split=valid_unseen;"
        " or ID:KEY=VALUE,KEY=VALUE in the env argument itself",
    )


def add_tool_commands(sub: Any) -> None:
    """Add the replay, inspect, view, eval and compare subparsers to ``sub`` (argparse)."""
    rp = sub.add_parser("replay", help="re-run stored actions and check the run reproduces")
    rp.add_argument("run", metavar="RUN", help="run directory")
    rp.add_argument("--iter", type=int, default=None, help="iteration (default: all)")
    which = rp.add_mutually_exclusive_group()
    which.add_argument("--traj", default=None, help="replay only this trajectory id")
    which.add_argument("--all", action="store_true", help="replay every trajectory (default)")
    add_import_option(rp)
    rp.set_defaults(handler=cmd_replay)

    ins = sub.add_parser("inspect", help="tables of trajectories, or one trajectory turn by turn")
    ins.add_argument("run", metavar="RUN", help="run directory")
    ins.add_argument("--iter", type=int, action="append", help="iteration (repeatable)")
    ins.add_argument("--env", default=None, help="env ids containing this text")
    outcome = ins.add_mutually_exclusive_group()
    outcome.add_argument("--won", dest="won", action="store_true", default=None, help="won only")
    outcome.add_argument("--lost", dest="won", action="store_false", help="lost only")
    ins.add_argument("--group", default=None, help="group ids containing this text")
    ins.add_argument("--task", default=None, help="task ids or texts containing this text")
    ins.add_argument(
        "--sort", default="iter", help="iter, return, turns, env, task, group, won, id"
    )
    ins.add_argument("--desc", action="store_true", help="sort in descending order")
    ins.add_argument("--limit", type=int, default=None, help="show at most N trajectories")
    ins.add_argument(
        "--traj",
        default=None,
        help="show this trajectory turn by turn: its id, a unique end of it, or its row number (#)",
    )
    ins.set_defaults(handler=cmd_inspect)

    vw = sub.add_parser("view", help="write a self-contained HTML report of a run")
    vw.add_argument("run", metavar="RUN", help="run directory")
    vw.add_argument("--out", default=None, help="HTML file to write (default RUN/report.html)")
    vw.add_argument("--iter", type=int, action="append", help="iteration (repeatable; default all)")
    vw.set_defaults(handler=cmd_view)

    ev = sub.add_parser("eval", help="success rate of a policy per env and task type")
    ev.add_argument(
        "--env",
        action="append",
        required=True,
        metavar="ID[:KEY=VALUE,...]",
        help="env id (repeatable), with constructor arguments after a colon, e.g. "
        "agentgym/ALFWorld-v0:split=valid_unseen",
    )
    add_env_kwarg_option(ev)
    ev.add_argument("--policy", required=True, help="random, oracle, a model, a run or checkpoint")
    ev.add_argument("--episodes", type=int, default=20, help="tasks per env (default 20)")
    ev.add_argument("--samples", type=int, default=1, help="samples per task, for pass@k")
    ev.add_argument("--seed", type=int, default=None, help="base seed (default: the eval seed)")
    ev.add_argument("--max-turns", type=int, default=None, help="override the turn limit")
    ev.add_argument("--temperature", type=float, default=None, help="LLM sampling temperature")
    ev.add_argument("--device", default=None, help="cpu or cuda for LLM policies")
    ev.add_argument(
        "--out",
        default=None,
        help="new folder for eval.json, eval.md, trajectories (default: RUN/eval/TAG or "
        "runs/eval-TAG, numbered -2, -3... when taken)",
    )
    ev.add_argument(
        "--overwrite", action="store_true", help="replace an earlier evaluation in --out"
    )
    add_import_option(ev)
    ev.set_defaults(handler=cmd_eval)

    cp = sub.add_parser("compare", help="paired comparison of two evaluations on one panel")
    cp.add_argument(
        "a", metavar="A", help="eval file or folder, checkpoint, or run (its last eval)"
    )
    cp.add_argument("b", metavar="B", help="the same kinds as A")
    cp.add_argument("--iter", type=int, default=None, help="for runs: the eval after iteration N")
    cp.add_argument("--iter-a", type=int, default=None, help="for run A: overrides --iter")
    cp.add_argument("--iter-b", type=int, default=None, help="for run B: overrides --iter")
    cp.add_argument("--env", default=None, help="env id, for eval files holding several envs")
    cp.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    cp.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    cp.add_argument(
        "--allow-version-mismatch",
        action="store_true",
        help="compare even when the env's package (textworld, alfworld) versions differ",
    )
    cp.set_defaults(handler=cmd_compare)


def cmd_replay(args: argparse.Namespace, console: Console) -> int:
    """Replay and print verdicts; 1 if any trajectory diverged or failed, else 0."""
    from agentgym.replay import print_report, replay_run

    run = Run(args.run)
    if not run.iterations():
        raise CliError(f"Run {str(run.path)!r} has no trajectories to replay.")
    recorded = run.read_config().get("imports") or []
    if recorded:  # the modules `agentgym rollout --import` loaded for this run's env
        from agentgym.registry import import_modules

        import_modules([str(m) for m in recorded if m not in args.imports], export=True)
    iterations = None if args.iter is None else [args.iter]
    results = replay_run(run, iterations=iterations, traj_id=args.traj)
    print_report(results, console)
    return 0 if all(r.ok for r in results) else 1


def cmd_inspect(args: argparse.Namespace, console: Console) -> int:
    """Print the filtered trajectory table, or ``--traj`` turn by turn."""
    from agentgym.report.model import (
        credit_configs,
        estimators,
        group_credit,
        read_config,
        read_entries,
    )
    from agentgym.report.terminal import (
        Filters,
        resolve_traj,
        select,
        short_ids,
        trajectory_table,
        trajectory_view,
    )

    run = Run(args.run)
    entries = read_entries(run, args.iter)
    ids = [e.traj.traj_id for e in entries]
    if args.traj is None:
        filters = Filters(env=args.env, won=args.won, group=args.group, task=args.task)
        rows = select(entries, filters, sort=args.sort, descending=args.desc, limit=args.limit)
        row_of = {id(e): k for k, e in enumerate(entries)}
        table = trajectory_table(
            rows,
            title=f"Trajectories of {run.name} (`--traj #` or an id's end shows one)",
            rows=[row_of[id(e)] for e in rows],
            short=short_ids(ids),
        )
        console.print(table)
        console.print(f"{len(rows)} of {len(entries)} trajectories shown")
        return 0
    found = [entries[i] for i in resolve_traj(ids, args.traj, where=repr(str(run.path)))]
    if len(found) > 1:
        if len({e.traj.traj_id for e in found}) > 1:
            some = ", ".join(e.traj.traj_id for e in found[:3])
            raise CliError(
                f"--traj {args.traj!r} matches {len(found)} trajectories ({some}, ...); "
                "give more of the id or a row number."
            )
        iters = ", ".join(str(e.iteration) for e in found)
        raise CliError(f"Trajectory {args.traj!r} is in iterations {iters}; pick one with --iter.")
    entry = found[0]
    members = [e for e in entries if e.group_key == entry.group_key]
    credit = group_credit(members, *credit_configs(read_config(run)))
    console.print(trajectory_view(entry, credit, estimators(members)))
    return 0


def cmd_view(args: argparse.Namespace, console: Console) -> int:
    """Write the HTML report and print where it is."""
    from agentgym.report.html import write_report

    run = Run(args.run)
    if not run.iterations():
        raise CliError(f"Run {str(run.path)!r} has no trajectories to show.")
    path = write_report(run, args.out, iterations=args.iter)
    console.print(
        f"Report written to {path} ({path.stat().st_size / 1024:.0f} KiB); open it in a browser."
    )
    return 0


def cmd_eval(args: argparse.Namespace, console: Console) -> int:
    """Evaluate a policy on each ``--env``; print the table, write JSON and Markdown."""
    from agentgym.evaluate import DEFAULT_EVAL_SEED, check_scored, evaluate_policy, load_policy
    from agentgym.preflight import check_env_builds, env_args, env_label
    from agentgym.report.eval_results import results_table, write_results

    if args.episodes < 1 or args.samples < 1:
        raise CliError("--episodes and --samples must be at least 1")
    envs = env_args(args.env, args.env_kwarg)
    out = Path(args.out) if args.out else None
    if out is not None:
        check_eval_out(out, overwrite=args.overwrite)  # before anything is loaded or played
    for env_id, kwargs in envs:  # an unknown id or a bad argument fails before the model loads
        check_env_builds(env_id, kwargs, max_turns=args.max_turns, seed=args.seed or 0)
    loaded = load_policy(args.policy, seed=args.seed or 0, device=args.device)
    seed = args.seed
    if seed is None:
        cfg = loaded.train_config
        seed = cfg.trainer.eval_seed if cfg is not None else DEFAULT_EVAL_SEED
    from agentgym.progress import console_bar

    with console_bar(console):
        results = [
            evaluate_policy(
                loaded,
                env_id,
                episodes=args.episodes,
                samples_per_task=args.samples,
                seed=seed,
                max_turns=args.max_turns,
                temperature=args.temperature,
                env_kwargs=kwargs,
            )
            for env_id, kwargs in envs
        ]
    for (env_id, kwargs), result in zip(envs, results, strict=True):
        check_scored(result, label=env_label(env_id, kwargs))
    console.print(results_table(results, title=f"Evaluation of {loaded.name}"))
    out = out if out is not None else default_eval_out(loaded)
    settings = {
        "envs": [env_label(env_id, kwargs) for env_id, kwargs in envs],
        "episodes": args.episodes,
        "samples_per_task": args.samples,
        "seed": seed,
        "max_turns": args.max_turns,
        "temperature": args.temperature,
    }
    json_path, md_path = write_results(out, results, policy=loaded.name, settings=settings)
    console.print(f"Results: {json_path} and {md_path}; trajectories in {out}")
    return 0


def check_eval_out(out: Path, *, overwrite: bool) -> None:
    """Refuse an ``--out`` that holds anything, unless ``overwrite`` and it holds an earlier
    evaluation (then it is replaced)."""
    from agentgym.store import is_run_dir

    if not out.exists():
        return
    if not out.is_dir():
        raise CliError(f"--out {str(out)!r} is a file; choose a folder path.")
    if not any(out.iterdir()):
        return
    earlier = is_run_dir(out) and Run(out).read_config().get("command") == "eval"
    if earlier and overwrite:
        return
    what = "an earlier evaluation" if earlier else "other data"
    fix = "pass --overwrite to replace it, " if earlier else ""
    raise CliError(
        f"--out {str(out)!r} already holds {what}; {fix}choose another --out or remove it."
    )


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    """Print the paired comparison of A and B; a panel mismatch is an error naming what differs."""
    from agentgym.compare import compare_episodes
    from agentgym.report.comparison import check_comparable, load_side, print_comparison

    if args.resamples < 1:
        raise CliError("--resamples must be at least 1")
    a = load_side(args.a, iteration=_pick(args.iter_a, args.iter), env=args.env)
    b = load_side(args.b, iteration=_pick(args.iter_b, args.iter), env=args.env)
    notes = check_comparable(a, b, allow_version_mismatch=args.allow_version_mismatch)
    comp = compare_episodes(
        a.record["outcomes"], b.record["outcomes"], resamples=args.resamples, seed=args.seed
    )
    print_comparison(console, comp, a, b, notes)
    return 0


def _pick(own: int | None, shared: int | None) -> int | None:
    return own if own is not None else shared


def default_eval_out(loaded: Any) -> Path:
    """``RUN/eval/<checkpoint>`` for a trained policy, else ``runs/eval-<policy>``; when that
    folder is taken, the first free of ``...-2``, ``...-3``, ..."""
    if loaded.run_dir is not None:
        base = Path(loaded.run_dir) / "eval" / loaded.tag
    else:
        base = Path("runs") / f"eval-{loaded.tag}"
    path, n = base, 1
    while path.exists() and (not path.is_dir() or any(path.iterdir())):
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


__all__ = [
    "CliError",
    "add_import_option",
    "add_tool_commands",
    "check_eval_out",
    "default_eval_out",
    "cmd_compare",
    "cmd_eval",
    "cmd_inspect",
    "cmd_replay",
    "cmd_view",
]
