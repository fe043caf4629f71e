"""The small training runs the trainer tests share: a tiny random model on a 3-turn KeyDoor."""

from __future__ import annotations

from pathlib import Path

from agentgym.config import load
from agentgym.trainers.config import TrainConfig

TINY_RUN = (
    "policy.model=tiny",
    "policy.max_new_tokens=4",
    "env.id=agentgym/KeyDoor-Small-v0",
    "env.max_turns=3",
    "env.tasks_per_iter=2",
    "env.group_size=2",
    "trainer.iterations=3",
)
"""Overrides every tiny run starts from (later overrides win)."""


def tiny_run_config(out: str | Path, *extra: str, name: str = "tiny") -> TrainConfig:
    """The tiny run in ``out/name`` with ``extra`` overrides."""
    return load(TrainConfig, None, [f"out_dir={out}", f"name={name}", *TINY_RUN, *extra])
