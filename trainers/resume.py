"""Rules that make a resumed run the run it would have been.

- The config must be the one the run was started with (:func:`check_resume_config`); a changed
  key is an error naming it, unless the caller allows changes (``--allow-config-change``).
- Evaluations are scheduled by iteration (:func:`eval_due`); the one due after the checkpoint's
  iteration runs on resume when its record is missing (a kill during that evaluation, the final
  one included), before anything is exported.
- Each evaluation samples from a stream that is a pure function of (``trainer.eval_seed``,
  iteration) (:func:`eval_sampling_seed`), so a fresh process draws what the straight run drew.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from agentgym.config import to_dict
from agentgym.schema import jsonable
from agentgym.store import CONFIG_FILE

LOCATION_KEYS = frozenset({"out_dir", "name"})
"""Keys that only say where the run lives (a moved run keeps its identity)."""


class ConfigChangedError(ValueError):
    """``--resume`` with a config that differs from the run's own."""


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (mappings only; lists are values)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def config_changes(stored: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two config trees (either side may lack one)."""
    a, b = flatten(stored), flatten(new)
    keys = sorted((set(a) | set(b)) - LOCATION_KEYS)
    return [k for k in keys if a.get(k, _MISSING) != b.get(k, _MISSING)]


_MISSING = object()


def check_resume_config(cfg: Any, *, resume: bool, allow_change: bool = False) -> None:
    """Raise :class:`ConfigChangedError` naming the keys that differ from the run's stored
    config, when resuming a run that has one and changes are not allowed."""
    path = Path(cfg.out_dir) / cfg.name / CONFIG_FILE
    if not resume or allow_change or not path.is_file():
        return
    stored = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    new = yaml.safe_load(yaml.safe_dump(jsonable(to_dict(cfg)), sort_keys=False))
    changed = config_changes(stored, new)
    if changed:
        shown = ", ".join(
            f"{k}: {flatten(stored).get(k, '<unset>')!r} -> {flatten(new).get(k, '<unset>')!r}"
            for k in changed[:10]
        )
        more = f" and {len(changed) - 10} more" if len(changed) > 10 else ""
        raise ConfigChangedError(
            f"--resume with a config that differs from the run's ({path}): {shown}{more}. "
            "Resume with the run's own config, or pass --allow-config-change "
            "(train(..., allow_config_change=True)) to continue under the new one."
        )


def eval_due(trainer: Any, iteration: int) -> bool:
    """Whether an evaluation follows ``iteration`` (0: the one before training)."""
    every = trainer.eval_every
    if iteration == 0:
        return bool(getattr(trainer, "eval_at_start", True))
    return iteration == trainer.iterations or bool(every and iteration % every == 0)


def eval_sampling_seed(eval_seed: int, iteration: int) -> int:
    """Sampling seed of the evaluation after ``iteration``: independent of earlier ones."""
    return (eval_seed * 1_000_003 + iteration * 7_919 + 1) % 2**31
