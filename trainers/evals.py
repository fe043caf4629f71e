"""The trainer's evaluations: held-out seeds, and a comparable record of each evaluation.

- :func:`check_eval_seeds` refuses a config whose evaluation seeds overlap its training seeds
  (an evaluation on training tasks measures memorisation, not learning). Iteration ``it`` trains
  on the tasks of seeds ``env.seed + (it - 1) * tasks_per_iter + k`` (``k < tasks_per_iter``;
  every rank and the asynchronous rollouts draw from the same formula), so a run trains on
  ``env.seed + [0, iterations * tasks_per_iter)``; the evaluation plays
  ``trainer.eval_seed + [0, eval_episodes)``. An evaluation environment of its own
  (``trainer.eval_env_id`` / ``eval_env_kwargs``: ALFWorld's ``valid_unseen`` split, another
  level) has other tasks, and is not checked.
- :func:`log_eval` writes ``RUN/evals/iter-NNNNN.json`` (the panel manifest and per-episode
  outcomes, see :mod:`agentgym.panel`; ``agentgym compare`` reads it) and then the evaluation's
  line in ``metrics.jsonl``, which is unchanged.

Distinct seeds are not always distinct tasks: an environment with a fixed pool of games
(``num_games``) or a handful of layouts (the KeyDoor toy) maps many seeds to one task. The
record therefore also says how many evaluation tasks had a task id already seen in training
(``train_task_overlap``), and ``agentgym compare`` shows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from agentgym.evaluate import EvalResult
from agentgym.panel import eval_record, seed_ranges
from agentgym.store import Run, atomic_write

EVALS_DIR = "evals"


class EvalSeedOverlapError(ValueError):
    """The evaluation seeds overlap the training seeds."""


def training_seeds(cfg: Any) -> range:
    """The seeds a run of ``cfg`` trains on (all iterations, all ranks)."""
    env = cfg.env
    return range(env.seed, env.seed + cfg.trainer.iterations * env.tasks_per_iter)


def eval_seeds(cfg: Any) -> range:
    """The seeds the trainer's evaluations play."""
    tc = cfg.trainer
    return range(tc.eval_seed, tc.eval_seed + tc.eval_episodes)


def check_eval_seeds(cfg: Any) -> None:
    """Raise :class:`EvalSeedOverlapError` naming the shared seeds and the fix, when the
    evaluation seeds overlap the training seeds."""
    tc = cfg.trainer
    if (tc.eval_env_id or cfg.env.id) != cfg.env.id or {
        **cfg.env.kwargs,
        **tc.eval_env_kwargs,
    } != dict(cfg.env.kwargs):
        return  # another environment (split, level): its tasks are not the training tasks
    train, held_out = training_seeds(cfg), eval_seeds(cfg)
    low, high = max(train.start, held_out.start), min(train.stop, held_out.stop)
    if low >= high:
        return
    env = cfg.env
    raise EvalSeedOverlapError(
        f"Evaluation seeds overlap the training seeds: trainer.eval_seed={tc.eval_seed} with "
        f"trainer.eval_episodes={tc.eval_episodes} evaluates seeds "
        f"{seed_ranges(held_out)}, and training uses seeds {seed_ranges(train)} "
        f"(env.seed={env.seed} + trainer.iterations={tc.iterations} x "
        f"env.tasks_per_iter={env.tasks_per_iter}); shared seeds: {seed_ranges(range(low, high))}. "
        f"Set trainer.eval_seed={train.stop} or higher (or trainer.eval_seed="
        f"{train.start - tc.eval_episodes} or lower when that is >= 0), or move env.seed."
    )


def eval_path(run_dir: str | Path, iteration: int) -> Path:
    """``RUN/evals/iter-NNNNN.json``: the record of the evaluation after ``iteration``."""
    return Path(run_dir) / EVALS_DIR / f"iter-{iteration:05d}.json"


def training_task_ids(run: Run, upto: int) -> set[str]:
    """Task ids of the training trajectories of iterations 1..``upto`` (column reads only)."""
    ids: set[str] = set()
    for it in run.iterations():
        if 1 <= it <= upto:
            column = pq.read_table(run.trajectory_path(it), columns=["task_id"]).column(0)
            ids.update(str(v) for v in column.to_pylist())
    return ids


def log_eval(run: Run, result: EvalResult, iteration: int) -> dict[str, Any]:
    """Write the evaluation's record to ``RUN/evals/iter-NNNNN.json``, then log its metrics
    line (``phase: eval``, the overall score, as before); returns the metrics record."""
    if result.panel is not None and result.batch is not None:
        seen = training_task_ids(run, iteration)
        tasks = result.panel["tasks"]
        overlap = [t["seed"] for t in tasks if t["task_id"] in seen]
        doc = eval_record(
            result,
            iteration=iteration,
            source=f"run {run.path} iteration {iteration}",
            train_task_overlap={"tasks": len(tasks), "seen_in_training": len(overlap)},
        )
        path = eval_path(run.path, iteration)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
        atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return run.log_metrics({"phase": "eval", **result.overall.as_dict()}, iteration=iteration)


__all__ = [
    "EVALS_DIR",
    "EvalSeedOverlapError",
    "check_eval_seeds",
    "eval_path",
    "eval_seeds",
    "log_eval",
    "training_seeds",
]
