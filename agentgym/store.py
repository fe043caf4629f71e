"""Run directories: config, metrics, Parquet trajectories and checkpoints, all written atomically.

Layout of a run (``runs/NAME``)::

    config.yaml                    the run's configuration (YAML)
    metrics.jsonl                  one JSON object per line, each with its "iteration"
    trajectories/iter-00001.parquet  one row per trajectory, turns nested (see agentgym.schema)
    checkpoints/                   written by the trainer

Every file is written to a temporary file in its own directory and then renamed over the
target (``os.replace``), so a reader never sees half a file and a crash leaves the old one.
Metrics are appended one line at a time and flushed to disk after each line.

Example::

    run = Run.create("runs/demo")
    run.write_config({"env": "agentgym/KeyDoor-Small-v0"})
    run.write_trajectories(batch, iteration=1)
    run.log_metrics({"success_rate": 0.5}, iteration=1)
    df = to_pandas(run)  # one row per turn
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml

from agentgym.data import Batch, Trajectory
from agentgym.schema import check_version, from_table, jsonable, to_table

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
TRAJECTORIES_DIR = "trajectories"
CHECKPOINTS_DIR = "checkpoints"
_ITER_RE = re.compile(r"^iter-(\d+)\.parquet$")


class NotARunError(FileNotFoundError):
    """The path is not a run directory."""


class MissingIterationError(LookupError):
    """The run has no trajectories for the asked iteration."""


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then rename it to ``path``.

    The data is fsynced before the rename; if ``write`` raises, the temporary file is removed
    and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a file follows the umask
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (threads are writing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` looks like a run directory (has trajectories/ or config.yaml)."""
    p = Path(path)
    return (p / TRAJECTORIES_DIR).is_dir() or (p / CONFIG_FILE).is_file()


class Run:
    """A run directory. ``Run(path)`` opens an existing run; ``Run(path, create=True)`` (or
    :meth:`Run.create`) also creates it when missing."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False):
        self.path = Path(path)
        if create:
            self.trajectories_dir.mkdir(parents=True, exist_ok=True)
            self.checkpoints_dir.mkdir(exist_ok=True)
        elif not is_run_dir(self.path):
            what = "does not exist" if not self.path.exists() else "is not a run directory"
            raise NotARunError(
                f"{str(self.path)!r} {what} (a run has {CONFIG_FILE} and {TRAJECTORIES_DIR}/). "
                "Create one with `agentgym rollout ENV --out PATH` or "
                "agentgym.store.Run.create(PATH)."
            )

    @classmethod
    def create(cls, path: str | os.PathLike[str], config: Any = None) -> Run:
        """Open or create the run at ``path``; write ``config`` when given."""
        run = cls(path, create=True)
        if config is not None:
            run.write_config(config)
        return run

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def trajectories_dir(self) -> Path:
        return self.path / TRAJECTORIES_DIR

    @property
    def checkpoints_dir(self) -> Path:
        """Directory for the trainer's checkpoints (created with the run)."""
        return self.path / CHECKPOINTS_DIR

    # -- config -------------------------------------------------------------------------------

    def write_config(self, config: Any) -> Path:
        """Write ``config`` (a mapping or a dataclass) as YAML, atomically."""
        if dataclasses.is_dataclass(config) and not isinstance(config, type):
            config = dataclasses.asdict(config)
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping or a dataclass, got {type(config).__name__}")
        text = yaml.safe_dump(jsonable(config), sort_keys=False, allow_unicode=True)
        return atomic_write(self.config_path, lambda f: f.write(text.encode("utf-8")))

    def read_config(self) -> dict[str, Any]:
        """The run's config; a run without one is a FileNotFoundError."""
        if not self.config_path.is_file():
            raise FileNotFoundError(f"Run {str(self.path)!r} has no {CONFIG_FILE}.")
        data = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        return dict(data or {})

    # -- metrics ------------------------------------------------------------------------------

    def log_metrics(self, metrics: Mapping[str, Any], *, iteration: int | None = None) -> dict:
        """Append one JSON line of ``metrics`` (plus ``iteration`` and ``time``), fsynced.

        ``iteration`` defaults to ``metrics["iteration"]``, else the last stored iteration (0
        when there is none). Returns the record written.
        """
        if iteration is None:
            iteration = metrics.get("iteration")
        if iteration is None:
            iteration = max(self.iterations(), default=0)
        record = {"iteration": int(iteration), **jsonable(metrics)}
        record["iteration"] = int(iteration)
        record.setdefault("time", time.time())
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        return record

    def read_metrics(self) -> list[dict[str, Any]]:
        """All metric records in order (a half-written last line, from a crash, is skipped)."""
        if not self.metrics_path.is_file():
            return []
        text = self.metrics_path.read_text(encoding="utf-8")
        lines = text.splitlines()
        records = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines) - 1 and not text.endswith("\n"):
                    break
                raise ValueError(f"{self.metrics_path}: line {i + 1} is not JSON") from None
        return records

    # -- trajectories -------------------------------------------------------------------------

    def trajectory_path(self, iteration: int) -> Path:
        return self.trajectories_dir / f"iter-{int(iteration):05d}.parquet"

    def iterations(self) -> list[int]:
        """Iterations that have stored trajectories, ascending."""
        if not self.trajectories_dir.is_dir():
            return []
        found = (_ITER_RE.match(p.name) for p in self.trajectories_dir.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def write_trajectories(
        self, trajectories: Batch | Iterable[Trajectory], iteration: int
    ) -> Path:
        """Write one iteration's trajectories as Parquet (replacing any earlier file)."""
        if isinstance(iteration, bool) or not isinstance(iteration, (int, np.integer)):
            raise TypeError(f"iteration must be an int, got {iteration!r}")
        if iteration < 0:
            raise ValueError(f"iteration must be >= 0, got {iteration}")
        trajs = trajectories.trajectories if isinstance(trajectories, Batch) else trajectories
        table = to_table(trajs)
        self.trajectories_dir.mkdir(parents=True, exist_ok=True)
        return atomic_write(self.trajectory_path(iteration), lambda f: pq.write_table(table, f))

    def _existing_path(self, iteration: int) -> Path:
        path = self.trajectory_path(iteration)
        if not path.is_file():
            have = self.iterations()
            listed = ", ".join(map(str, have)) if have else "none yet"
            raise MissingIterationError(
                f"Run {str(self.path)!r} has no trajectories for iteration {iteration}; "
                f"available iterations: {listed}."
            )
        return path

    def read_trajectories(self, iteration: int | None = None) -> list[Trajectory]:
        """Trajectories of ``iteration``, or of all iterations in order when None."""
        if iteration is None:
            return [t for it in self.iterations() for t in self.read_trajectories(it)]
        path = self._existing_path(iteration)
        table = pq.read_table(path)
        check_version(table.schema, str(path))
        return from_table(table)

    def read_batch(self, iteration: int) -> Batch:
        """The trajectories of ``iteration`` as a :class:`Batch`."""
        return Batch(tuple(self.read_trajectories(iteration)))

    def update_trajectories(self, iteration: int, batch: Batch | Iterable[Trajectory]) -> Path:
        """Rewrite ``iteration``'s file with ``batch`` (the same trajectories, e.g. with
        advantages added). The trajectories must match the stored ones by id and order."""
        trajs = tuple(batch.trajectories if isinstance(batch, Batch) else batch)
        path = self._existing_path(iteration)
        stored = pq.read_table(path, columns=["traj_id"]).column("traj_id").to_pylist()
        given = [t.traj_id for t in trajs]
        if stored != given:
            raise ValueError(
                f"update_trajectories: iteration {iteration} stores {len(stored)} trajectories "
                f"{_preview(stored)}, got {len(given)} {_preview(given)}; they must be the same "
                "trajectories in the same order (use write_trajectories to replace them)."
            )
        return self.write_trajectories(trajs, iteration)

    def truncate_after(self, iteration: int) -> None:
        """Forget everything stored after ``iteration``: later trajectory files and metric
        records. A resumed run calls this with its checkpoint's iteration, so the iterations it
        redoes are neither lost nor duplicated."""
        for it in self.iterations():
            if it > iteration:
                self.trajectory_path(it).unlink()
        kept = [r for r in self.read_metrics() if int(r.get("iteration", 0)) <= iteration]
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
        atomic_write(self.metrics_path, lambda f: f.write(text.encode("utf-8")))


def _preview(ids: list[str], n: int = 3) -> str:
    shown = ", ".join(repr(i) for i in ids[:n])
    return f"[{shown}{', ...' if len(ids) > n else ''}]"


# -- flat view --------------------------------------------------------------------------------

_FLAT_COLUMNS = (
    "run",
    "iteration",
    "traj_id",
    "group_id",
    "env_id",
    "task_id",
    "seed",
    "turn",
    "observation",
    "output",
    "action",
    "reward",
    "terminated",
    "truncated",
    "invalid",
    "return",
    "won",
    "state_key",
)


def _flat_rows(
    trajs: Iterable[Trajectory], run: str | None, iteration: int | None
) -> Iterable[dict[str, Any]]:
    for traj in trajs:
        ret = traj.episode_return
        for i, turn in enumerate(traj.turns):
            row = {
                "run": run,
                "iteration": iteration,
                "traj_id": traj.traj_id,
                "group_id": traj.group_id,
                "env_id": traj.env_id,
                "task_id": traj.task_id,
                "seed": traj.seed,
                "turn": i,
                "observation": turn.observation,
                "output": turn.output,
                "action": turn.action,
                "reward": turn.reward,
                "terminated": turn.terminated,
                "truncated": turn.truncated,
                "invalid": turn.invalid,
                "return": ret,
                "won": traj.won,
                "state_key": turn.state_key,
            }
            row.update({f"adv_{k}": v for k, v in turn.advantages.items()})
            yield row


def to_pandas(
    source: Run | str | os.PathLike[str] | Batch | Iterable[Trajectory],
    *,
    iteration: int | None = None,
) -> pd.DataFrame:
    """A flat DataFrame with one row per turn.

    ``source`` is a :class:`Run`, a run directory path, a :class:`Batch` or trajectories.
    For a run, ``iteration`` picks one iteration (default: all). Columns: run, iteration,
    traj_id, group_id, env_id, task_id, seed, turn, observation, output, action, reward,
    terminated, truncated, invalid, return, won, state_key, then ``adv_<estimator>`` for every
    estimator found (NaN on turns without it). ``run``/``iteration`` are missing values when
    the source is not a run.
    """
    if isinstance(source, (str, os.PathLike)):
        source = Run(source)
    if isinstance(source, Run):
        iters = source.iterations() if iteration is None else [iteration]
        rows = [
            r for it in iters for r in _flat_rows(source.read_trajectories(it), source.name, it)
        ]
    else:
        trajs = source.trajectories if isinstance(source, Batch) else source
        rows = list(_flat_rows(trajs, None, None))
    adv_cols = sorted({k for r in rows for k in r if k.startswith("adv_")})
    df = pd.DataFrame(rows, columns=[*_FLAT_COLUMNS, *adv_cols])
    df["iteration"] = df["iteration"].astype("Int64")
    df["seed"] = df["seed"].astype("int64")
    df["turn"] = df["turn"].astype("int64")
    for col in ("reward", "return", *adv_cols):
        df[col] = df[col].astype("float64")
    for col in ("terminated", "truncated", "invalid", "won"):
        df[col] = df[col].astype(bool)
    return df


__all__ = [
    "MissingIterationError",
    "NotARunError",
    "Run",
    "atomic_write",
    "is_run_dir",
    "to_pandas",
]
