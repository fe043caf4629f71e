"""ALFWorld game files: the generated-game cache and real ALFWorld data directories.

Generated games live under ``$AGENTGYM_CACHE/alfworld`` (default ``~/.cache/agentgym/alfworld``)
in the layout ``alfworld-download`` produces, so the folder also works as an ``ALFWORLD_DATA``
for alfworld's own env classes::

    generated-v{GEN_VERSION}/json_2.1.1/{split}/{task_type}/{seed:06d}/{game.tw-pddl,traj_data.json}

A game is written atomically (temporary file, then rename; ``traj_data.json`` before
``game.tw-pddl``), so a reader never sees half a game and concurrent writers of the same seed
write the same bytes. Real data: ``{data_dir}/json_2.1.1/{train,valid_seen,valid_unseen}/...``
with a ``traj_data.json`` and a solvable ``game.tw-pddl`` per trial, collected as alfworld's
``AlfredTWEnv`` collects them (movable-receptacle and sliced trials are skipped).

Run ``python -m agentgym.envs.alfworld_games --split train --per-type 20`` to generate ahead.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import textworld
from alfworld.agents.environment.alfred_tw_env import AlfredDemangler

from agentgym.envs.alfworld_fast import FastPddlEnv
from agentgym.envs.alfworld_gen import (
    GEN_VERSION,
    SPLITS,
    TASK_TYPES,
    canonical_task_type,
    sample_game,
)
from agentgym.envs.alfworld_plan import expert_plan

MAX_ATTEMPTS = 25
"""Candidates drawn for one seed before giving up (unsolvable samples are rare)."""

REAL_SPLITS = {
    "train": "train",
    "valid_seen": "valid_seen",
    "valid_unseen": "valid_unseen",
    "eval_in_distribution": "valid_seen",
    "eval_out_of_distribution": "valid_unseen",
}


def cache_root() -> Path:
    """``$AGENTGYM_CACHE/alfworld``, by default ``~/.cache/agentgym/alfworld``."""
    root = os.environ.get("AGENTGYM_CACHE") or os.path.join("~", ".cache", "agentgym")
    return Path(root).expanduser() / "alfworld"


def generated_root() -> Path:
    """The ``ALFWORLD_DATA``-like folder of this generator version's games."""
    return cache_root() / f"generated-v{GEN_VERSION}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_SOLVER: list[Any] = []


def _solver() -> Any:
    """One engine per process for solvability checks (it holds a copy of the planner library)."""
    if not _SOLVER:
        infos = textworld.EnvInfos(admissible_commands=True, won=True)
        _SOLVER.append(AlfredDemangler(FastPddlEnv(infos), shuffle=False))
    return _SOLVER[0]


def solve(game: dict[str, Any], traj: dict[str, Any]) -> list[str] | None:
    """The planner's walkthrough of ``game`` if replaying it on the full game wins, else None.

    The plan comes from Fast Downward, the planner of TextWorld's PDDL engine (see
    :func:`agentgym.envs.alfworld_plan.expert_plan`); every command of it must be admissible
    when played.
    """
    env = _solver()
    env.load(dict(game, walkthrough=None))
    state = env.reset()
    plan = expert_plan(env, traj["pddl_params"], traj["task_type"])
    if not plan or state["won"]:
        return None
    for command in plan:
        if command not in state["admissible_commands"]:
            return None
        state, _, done = env.step(command)
        if done:
            break
    return plan if state["won"] else None


def game_dir(split: str, task_type: str, seed: int) -> Path:
    """Folder of generated game ``seed`` of ``task_type`` in ``split``."""
    return generated_root() / "json_2.1.1" / split / task_type / f"{seed:06d}"


def generated_game(split: str, task_type: str, seed: int) -> Path:
    """Path of the ``game.tw-pddl`` of a generated game, generating and caching it if needed."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; known: {', '.join(SPLITS)}.")
    task_type = canonical_task_type(task_type)
    folder = game_dir(split, task_type, seed)
    path = folder / "game.tw-pddl"
    if path.is_file():
        return path
    for attempt in range(MAX_ATTEMPTS):
        game, traj = sample_game(split, task_type, seed, attempt)
        plan = solve(game, traj)
        if plan is not None:
            game.update(solvable=True, walkthrough=plan)
            write_json_atomic(folder / "traj_data.json", traj)
            write_json_atomic(path, game)
            return path
    raise RuntimeError(f"No solvable {task_type} game for seed {seed} in {MAX_ATTEMPTS} attempts.")


def real_games(data_dir: str | os.PathLike, split: str, task_types: Iterable[str]) -> list[Path]:
    """Solvable ``game.tw-pddl`` files of a real ALFWorld data folder, sorted.

    ``data_dir`` is the ``ALFWORLD_DATA`` folder (holding ``json_2.1.1``) or ``json_2.1.1``
    itself; ``$VARS`` and ``~`` are expanded.
    """
    root = Path(os.path.expanduser(os.path.expandvars(str(data_dir))))
    if (root / "json_2.1.1").is_dir():
        root = root / "json_2.1.1"
    if split not in REAL_SPLITS:
        raise ValueError(f"Unknown split {split!r}; known: {', '.join(REAL_SPLITS)}.")
    folder = root / REAL_SPLITS[split]
    if not folder.is_dir():
        raise FileNotFoundError(
            f"No ALFWorld split folder {folder}. Pass data_dir= the folder alfworld-download "
            "filled (it holds json_2.1.1/train, valid_seen, valid_unseen)."
        )
    wanted = set(task_types)
    games = []
    for traj_path in sorted(folder.rglob("traj_data.json")):
        trial = traj_path.parent
        game_path = trial / "game.tw-pddl"
        if "movable" in str(trial) or "Sliced" in str(trial) or not game_path.is_file():
            continue
        if json.loads(traj_path.read_text()).get("task_type") not in wanted:
            continue
        if json.loads(game_path.read_text()).get("solvable"):
            games.append(game_path)
    return games


def task_type_of(game_path: Path) -> str:
    """The task type recorded in the ``traj_data.json`` beside a game file."""
    return str(json.loads((game_path.parent / "traj_data.json").read_text())["task_type"])


def pregenerate(split: str, task_types: Sequence[str], seeds: Iterable[int]) -> dict[str, float]:
    """Generate (or find cached) games; return the seconds spent per task type."""
    spent = {}
    for task_type in task_types:
        start = time.perf_counter()
        for seed in seeds:
            generated_game(split, task_type, seed)
        spent[task_type] = time.perf_counter() - start
    return spent


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: generate games ahead of training."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--per-type", type=int, default=10, help="games per task type")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--task-types", nargs="*", default=list(TASK_TYPES))
    args = parser.parse_args(argv)
    seeds = range(args.first_seed, args.first_seed + args.per_type)
    for task_type, secs in pregenerate(args.split, args.task_types, seeds).items():
        print(f"{task_type}: {args.per_type} games in {secs:.1f} s -> {generated_root()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
