"""Turns, trajectories and batches: frozen, typed records of what happened in an episode.

A :class:`Batch` holds trajectories plus flat index arrays over all their turns, so that credit
estimators are vectorized numpy over the turn axis (T = total turns, N = trajectories):

- ``turn_traj[T]``: index of the trajectory each turn belongs to;
- ``turn_index[T]``: position of the turn in its trajectory (0-based);
- ``traj_group[N]``: group index of each trajectory (groups = same task and seed);
- ``turn_group[T]``: group index of each turn's trajectory;
- ``rewards[T]``, ``returns[N]``, ``traj_len[N]``, ``traj_offset[N]`` (first flat turn index).

Token ids are kept from the rollout, never re-tokenized from text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

# Sentinel next-state keys of a trajectory's last turn (SALT terminal nodes).
TERMINAL_SUCCESS = "<terminal:success>"
TERMINAL_FAILURE = "<terminal:failure>"
TERMINAL_TRUNCATED = "<terminal:truncated>"


@dataclass(frozen=True)
class Turn:
    """One step of an episode: what the agent saw, said and did, and what came of it."""

    observation: str
    """Text shown to the agent before it acted (the env's observation)."""
    output: str
    """Raw text the policy produced."""
    action: str
    """Action parsed from ``output`` and sent to the environment."""
    reward: float
    """Reward returned by the environment for this step (before any shaping)."""
    terminated: bool
    truncated: bool
    state_key: str
    """Key of the environment state in which the action was taken (anchor for GiGPO/SALT)."""
    invalid: bool = False
    """The environment could not parse or execute the action."""
    info: Mapping[str, Any] = field(default_factory=dict)
    """The step's info dict (JSON-serializable parts are stored)."""
    prompt_ids: tuple[int, ...] = ()
    """Prompt token ids fed before this turn's response (the increment in full-history mode)."""
    response_ids: tuple[int, ...] = ()
    """Token ids of ``output`` as sampled."""
    response_logprobs: tuple[float, ...] = ()
    """Log-probability of each response token under the rollout policy."""
    new_sequence: bool = False
    """``prompt_ids`` are a whole prompt that started a new token sequence (the policy did not
    continue the earlier turns' tokens); the trainer scores the turn without them."""
    constraint: str = ""
    """Spec (JSON) of the constraint the response was sampled under (see
    :mod:`agentgym.constraint`); ``""`` for free generation. The trainer rebuilds the allowed
    token sets from it."""
    advantages: Mapping[str, float] = field(default_factory=dict)
    """Per-estimator advantage of this turn, when computed (estimator name -> value)."""


@dataclass(frozen=True)
class Trajectory:
    """One episode in one environment."""

    env_id: str
    task_id: str
    seed: int
    group_id: str
    """Trajectories sharing a group id share task and seed; credit compares within a group."""
    turns: tuple[Turn, ...]
    won: bool
    task: str = ""
    """Instruction text."""
    traj_id: str = ""
    """Unique id within a run."""
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Constructor arguments, so the environment can be rebuilt for replay."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    fault: str | None = None
    """Why the environment ended the episode early (``"ExceptionType: message"``: it raised or
    hung in reset or step; ``metadata["fault"]`` has the stage and turn), None if it did not.
    The trainer keeps faulted trajectories out of credit and the loss (or scores them as
    failures, ``env.faults``)."""

    @property
    def episode_return(self) -> float:
        """Sum of the turns' rewards."""
        return float(sum(t.reward for t in self.turns))

    @property
    def next_state_keys(self) -> tuple[str, ...]:
        """State key after each turn; the last turn leads to a terminal sentinel."""
        if not self.turns:
            return ()
        last = self.turns[-1]
        if self.won:
            end = TERMINAL_SUCCESS
        elif last.terminated:
            end = TERMINAL_FAILURE
        else:
            end = TERMINAL_TRUNCATED
        return tuple(t.state_key for t in self.turns[1:]) + (end,)

    def with_advantages(self, name: str, values: Sequence[float]) -> Trajectory:
        """A copy whose turns carry ``values`` as the advantage of estimator ``name``."""
        if len(values) != len(self.turns):
            raise ValueError(f"{len(values)} advantages for {len(self.turns)} turns")
        turns = tuple(
            dataclasses.replace(t, advantages={**t.advantages, name: float(v)})
            for t, v in zip(self.turns, values, strict=True)
        )
        return dataclasses.replace(self, turns=turns)


@dataclass(frozen=True)
class Batch:
    """Trajectories plus flat per-turn index arrays (see the module docstring)."""

    trajectories: tuple[Trajectory, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "trajectories", tuple(self.trajectories))

    def __len__(self) -> int:
        return len(self.trajectories)

    @cached_property
    def traj_len(self) -> np.ndarray:
        """[N] number of turns of each trajectory."""
        return np.array([len(t.turns) for t in self.trajectories], dtype=np.int64)

    @cached_property
    def traj_offset(self) -> np.ndarray:
        """[N] flat index of each trajectory's first turn."""
        return np.cumsum(self.traj_len) - self.traj_len

    @property
    def num_turns(self) -> int:
        return int(self.traj_len.sum())

    @cached_property
    def turn_traj(self) -> np.ndarray:
        """[T] trajectory index of each turn."""
        return np.repeat(np.arange(len(self.trajectories), dtype=np.int64), self.traj_len)

    @cached_property
    def turn_index(self) -> np.ndarray:
        """[T] 0-based position of each turn in its trajectory."""
        return np.arange(self.num_turns, dtype=np.int64) - self.traj_offset[self.turn_traj]

    @cached_property
    def group_ids(self) -> tuple[str, ...]:
        """Distinct group ids in order of first appearance; ``traj_group`` indexes into this."""
        return tuple(dict.fromkeys(t.group_id for t in self.trajectories))

    @cached_property
    def traj_group(self) -> np.ndarray:
        """[N] group index of each trajectory."""
        index = {g: i for i, g in enumerate(self.group_ids)}
        return np.array([index[t.group_id] for t in self.trajectories], dtype=np.int64)

    @cached_property
    def turn_group(self) -> np.ndarray:
        """[T] group index of each turn."""
        return self.traj_group[self.turn_traj]

    @cached_property
    def rewards(self) -> np.ndarray:
        """[T] reward of each turn."""
        return np.array(
            [turn.reward for t in self.trajectories for turn in t.turns], dtype=np.float64
        )

    @cached_property
    def returns(self) -> np.ndarray:
        """[N] undiscounted return of each trajectory."""
        return np.array([t.episode_return for t in self.trajectories], dtype=np.float64)

    @cached_property
    def won(self) -> np.ndarray:
        """[N] whether each trajectory won."""
        return np.array([t.won for t in self.trajectories], dtype=bool)

    @cached_property
    def state_keys(self) -> tuple[str, ...]:
        """[T] state key of each turn."""
        return tuple(turn.state_key for t in self.trajectories for turn in t.turns)

    @cached_property
    def next_state_keys(self) -> tuple[str, ...]:
        """[T] state key after each turn (terminal sentinels on last turns)."""
        return tuple(k for t in self.trajectories for k in t.next_state_keys)

    @cached_property
    def actions(self) -> tuple[str, ...]:
        """[T] action of each turn."""
        return tuple(turn.action for t in self.trajectories for turn in t.turns)

    def with_advantages(self, name: str, values: np.ndarray) -> Batch:
        """A copy whose turns carry ``values[T]`` as estimator ``name``'s advantages."""
        values = np.asarray(values)
        if values.shape != (self.num_turns,):
            raise ValueError(f"advantages of shape {values.shape}, expected ({self.num_turns},)")
        trajs = tuple(
            t.with_advantages(name, values[o : o + n])
            for t, o, n in zip(self.trajectories, self.traj_offset, self.traj_len, strict=True)
        )
        return Batch(trajs)

    def advantages(self, name: str) -> np.ndarray:
        """[T] stored advantages of estimator ``name`` (NaN where a turn has none)."""
        return np.array(
            [turn.advantages.get(name, np.nan) for t in self.trajectories for turn in t.turns],
            dtype=np.float32,
        )
