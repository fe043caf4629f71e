"""Credit estimators registered by name, all with one signature.

``estimate(batch: Batch, config: C) -> np.ndarray[float32]`` of shape [T], one advantage per
turn (the trainer broadcasts it to that turn's response tokens). Each estimator declares a
frozen config dataclass ``C``; callers build it with :func:`make_config` and never branch on
which estimator they got.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from agentgym.data import Batch
from agentgym.hints import did_you_mean

C = TypeVar("C")
EstimateFn = Callable[[Batch, Any], np.ndarray]


@dataclass(frozen=True)
class Estimator(Generic[C]):
    name: str
    fn: Callable[[Batch, C], np.ndarray]
    config_cls: type[C]

    def __call__(self, batch: Batch, config: C | None = None) -> np.ndarray:
        cfg = self.config_cls() if config is None else config
        out = np.asarray(self.fn(batch, cfg), dtype=np.float32)
        if out.shape != (batch.num_turns,):
            raise AssertionError(
                f"{self.name} returned shape {out.shape}, want ({batch.num_turns},)"
            )
        return out


_ESTIMATORS: dict[str, Estimator] = {}


def register_estimator(
    name: str, config_cls: type[C]
) -> Callable[[Callable[[Batch, C], np.ndarray]], Callable[[Batch, C], np.ndarray]]:
    """Decorator: register ``fn(batch, config) -> advantages[T]`` under ``name``."""

    def deco(fn: Callable[[Batch, C], np.ndarray]) -> Callable[[Batch, C], np.ndarray]:
        if name in _ESTIMATORS:
            raise ValueError(f"credit estimator {name!r} is already registered")
        _ESTIMATORS[name] = Estimator(name, fn, config_cls)
        return fn

    return deco


def get(name: str) -> Estimator:
    """The estimator registered as ``name``; unknown names list the registered ones."""
    try:
        return _ESTIMATORS[name]
    except KeyError:
        hint = did_you_mean(name, _ESTIMATORS)
        raise KeyError(
            f"Unknown credit estimator {name!r}.{hint} Registered: {', '.join(names())}."
        ) from None


def names() -> list[str]:
    return sorted(_ESTIMATORS)


def make_config(name: str, options: Mapping[str, Any] | None = None) -> Any:
    """Build estimator ``name``'s config from ``options``; unknown keys are named with a hint."""
    est = get(name)
    valid = {f.name: f for f in dataclasses.fields(est.config_cls)}
    for key in options or {}:
        if key not in valid:
            hint = did_you_mean(key, valid)
            raise KeyError(
                f"Unknown option {key!r} for credit estimator {name!r}.{hint} "
                f"Valid options: {', '.join(valid) or '(none)'}."
            )
    return est.config_cls(**dict(options or {}))


def compute(name: str, batch: Batch, options: Mapping[str, Any] | None = None) -> np.ndarray:
    """Advantages[T] of estimator ``name`` with ``options`` on ``batch``."""
    return get(name)(batch, make_config(name, options))
