"""The Arrow schema of stored trajectories and the conversion to and from it.

One row per trajectory; its turns are a nested ``list<struct>`` column. Token ids are
``list<int32>``, logprobs ``list<float32>``, advantages ``list<struct<name, value: float32>>``
(one entry per estimator; not an Arrow ``map``, which Hugging Face ``datasets`` cannot load:
huggingface/datasets#5612), and free-form mappings (``info``, ``env_kwargs``, ``metadata``) are JSON strings, so
the file reads back with pyarrow, pandas (``pd.read_parquet``) or anything else that speaks
Parquet. The schema version is kept in the file's key-value metadata.

Round trip: text, ids and rewards come back exactly; logprobs and advantages come back as
float32; in JSON fields tuples come back as lists and values JSON cannot hold are dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

import numpy as np
import pyarrow as pa

from agentgym.data import Trajectory, Turn

SCHEMA_VERSION = 1
"""Bump when the layout changes; readers refuse files newer than they know."""
VERSION_KEY = b"agentgym.schema_version"

ADVANTAGE_TYPE = pa.struct([pa.field("name", pa.string()), pa.field("value", pa.float32())])

TURN_TYPE = pa.struct(
    [
        pa.field("observation", pa.string()),
        pa.field("output", pa.string()),
        pa.field("action", pa.string()),
        pa.field("reward", pa.float64()),
        pa.field("terminated", pa.bool_()),
        pa.field("truncated", pa.bool_()),
        pa.field("state_key", pa.string()),
        pa.field("invalid", pa.bool_()),
        pa.field("info", pa.string()),  # JSON object
        pa.field("prompt_ids", pa.list_(pa.int32())),
        pa.field("response_ids", pa.list_(pa.int32())),
        pa.field("response_logprobs", pa.list_(pa.float32())),
        pa.field("new_sequence", pa.bool_()),
        pa.field("constraint", pa.string()),
        pa.field("advantages", pa.list_(ADVANTAGE_TYPE)),
    ]
)

TRAJECTORY_SCHEMA = pa.schema(
    [
        pa.field("traj_id", pa.string()),
        pa.field("env_id", pa.string()),
        pa.field("task_id", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("group_id", pa.string()),
        pa.field("task", pa.string()),
        pa.field("won", pa.bool_()),
        pa.field("return", pa.float64()),  # derived: sum of rewards, for queries
        pa.field("num_turns", pa.int32()),  # derived
        pa.field("env_kwargs", pa.string()),  # JSON object
        pa.field("metadata", pa.string()),  # JSON object
        pa.field("fault", pa.string()),  # null unless the env raised or hung (Trajectory.fault)
        pa.field("turns", pa.list_(TURN_TYPE)),
    ],
    metadata={VERSION_KEY: str(SCHEMA_VERSION).encode()},
)

_DROP = object()


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, tuples, sets and paths made JSON-friendly.

    Mapping keys become strings; values JSON cannot hold (objects, functions) are dropped.
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, Mapping):
        out = {str(k): jsonable(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _DROP}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [v for v in map(jsonable, items) if v is not _DROP]
    return _DROP


def dumps(mapping: Mapping[str, Any]) -> str:
    """Compact JSON of a mapping's JSON-friendly parts (see :func:`jsonable`)."""
    return json.dumps(jsonable(mapping), ensure_ascii=False, separators=(",", ":"))


def _turn_row(turn: Turn) -> dict[str, Any]:
    return {
        "observation": turn.observation,
        "output": turn.output,
        "action": turn.action,
        "reward": float(turn.reward),
        "terminated": bool(turn.terminated),
        "truncated": bool(turn.truncated),
        "state_key": turn.state_key,
        "invalid": bool(turn.invalid),
        "info": dumps(turn.info),
        "prompt_ids": turn.prompt_ids,
        "response_ids": turn.response_ids,
        "response_logprobs": turn.response_logprobs,
        "new_sequence": bool(turn.new_sequence),
        "constraint": turn.constraint,
        "advantages": [{"name": str(k), "value": float(v)} for k, v in turn.advantages.items()],
    }


def _traj_row(traj: Trajectory) -> dict[str, Any]:
    return {
        "traj_id": traj.traj_id,
        "env_id": traj.env_id,
        "task_id": traj.task_id,
        "seed": int(traj.seed),
        "group_id": traj.group_id,
        "task": traj.task,
        "won": bool(traj.won),
        "return": traj.episode_return,
        "num_turns": len(traj.turns),
        "env_kwargs": dumps(traj.env_kwargs),
        "metadata": dumps(traj.metadata),
        "fault": traj.fault,
        "turns": [_turn_row(t) for t in traj.turns],
    }


def to_table(trajectories: Iterable[Trajectory]) -> pa.Table:
    """Trajectories as an Arrow table of :data:`TRAJECTORY_SCHEMA` (one row each)."""
    rows = [_traj_row(t) for t in trajectories]
    return pa.Table.from_pylist(rows, schema=TRAJECTORY_SCHEMA)


def _turn(row: Mapping[str, Any]) -> Turn:
    return Turn(
        observation=row["observation"],
        output=row["output"],
        action=row["action"],
        reward=row["reward"],
        terminated=row["terminated"],
        truncated=row["truncated"],
        state_key=row["state_key"],
        invalid=row["invalid"],
        info=json.loads(row["info"]),
        prompt_ids=tuple(row["prompt_ids"] or ()),
        response_ids=tuple(row["response_ids"] or ()),
        response_logprobs=tuple(row["response_logprobs"] or ()),
        new_sequence=bool(row.get("new_sequence") or False),
        constraint=str(row.get("constraint") or ""),
        advantages={a["name"]: a["value"] for a in row["advantages"] or ()},
    )


def from_table(table: pa.Table) -> list[Trajectory]:
    """Trajectories of a table written by :func:`to_table` (checks the schema version)."""
    check_version(table.schema)
    return [
        Trajectory(
            env_id=row["env_id"],
            task_id=row["task_id"],
            seed=row["seed"],
            group_id=row["group_id"],
            turns=tuple(_turn(t) for t in row["turns"]),
            won=row["won"],
            task=row["task"],
            traj_id=row["traj_id"],
            env_kwargs=json.loads(row["env_kwargs"]),
            metadata=json.loads(row["metadata"]),
            fault=row.get("fault"),
        )
        for row in table.to_pylist()
    ]


def check_version(schema: pa.Schema, source: str = "table") -> int:
    """The schema version of ``schema``; a missing or newer version is a ValueError."""
    raw = (schema.metadata or {}).get(VERSION_KEY)
    if raw is None:
        raise ValueError(
            f"{source} has no {VERSION_KEY.decode()!r} metadata: it was not written by "
            "agentgym.store (write trajectories with Run.write_trajectories)."
        )
    version = int(raw)
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"{source} uses trajectory schema version {version}, newer than this agentgym "
            f"reads ({SCHEMA_VERSION}); upgrade agentgym."
        )
    return version
