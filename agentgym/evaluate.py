"""Success rate of a policy on an environment, with a Wilson 95% interval and pass@k.

The trainer's periodic evaluation and ``agentgym eval`` both call :func:`evaluate`, so a number
printed during training means the same as one printed afterwards.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.data import Batch, Trajectory
from agentgym.policy.base import Policy, SamplingParams

TASK_TYPE = "task_type"


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c successes (Chen et al. 2021, eq. 1)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


@dataclass(frozen=True)
class Score:
    """Success statistics of a set of episodes."""

    episodes: int
    successes: int
    mean_turns: float
    mean_return: float

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)

    def as_dict(self) -> dict[str, float]:
        lo, hi = self.interval
        return {
            "episodes": self.episodes,
            "success_rate": self.success_rate,
            "ci_low": lo,
            "ci_high": hi,
            "mean_turns": self.mean_turns,
            "mean_return": self.mean_return,
        }


def score(trajectories: Sequence[Trajectory]) -> Score:
    n = len(trajectories)
    return Score(
        episodes=n,
        successes=sum(t.won for t in trajectories),
        mean_turns=sum(len(t.turns) for t in trajectories) / n if n else 0.0,
        mean_return=sum(t.episode_return for t in trajectories) / n if n else 0.0,
    )


def task_type(traj: Trajectory) -> str | None:
    """The task type an environment reported (e.g. ALFWorld's six), if any."""
    if TASK_TYPE in traj.metadata:
        return str(traj.metadata[TASK_TYPE])
    for turn in traj.turns:
        if TASK_TYPE in turn.info:
            return str(turn.info[TASK_TYPE])
    return None


@dataclass(frozen=True)
class EvalResult:
    """Evaluation of one policy on one environment."""

    env_id: str
    overall: Score
    by_type: Mapping[str, Score] = field(default_factory=dict)
    pass_at: Mapping[int, float] = field(default_factory=dict)
    """pass@k for k = 1 .. samples per task."""
    batch: Batch | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            **self.overall.as_dict(),
            "by_type": {k: v.as_dict() for k, v in self.by_type.items()},
            "pass_at_k": {str(k): v for k, v in self.pass_at.items()},
        }


def summarize(env_id: str, batch: Batch) -> EvalResult:
    """Scores of a collected batch: overall, per task type and pass@k per group."""
    trajs = batch.trajectories
    types: dict[str, list[Trajectory]] = defaultdict(list)
    groups: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajs:
        kind = task_type(t)
        if kind is not None:
            types[kind].append(t)
        groups[t.group_id].append(t)
    n = min((len(g) for g in groups.values()), default=0)
    pass_at = {
        k: sum(pass_at_k(n, sum(t.won for t in g[:n]), k) for g in groups.values()) / len(groups)
        for k in range(1, n + 1)
    }
    return EvalResult(
        env_id, score(trajs), {k: score(v) for k, v in sorted(types.items())}, pass_at, batch
    )


def evaluate(
    env_id: str,
    policy: Policy,
    *,
    episodes: int,
    samples_per_task: int = 1,
    seed: int = 10_000,
    max_turns: int | None = None,
    sampling: SamplingParams | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    collect_kwargs: Mapping[str, Any] | None = None,
) -> EvalResult:
    """Play ``episodes`` tasks (seeds ``seed``, ``seed+1``, ...) ``samples_per_task`` times each."""
    from agentgym.rollout import collect

    batch = collect(
        env_id,
        policy,
        tasks=episodes,
        group_size=samples_per_task,
        seed=seed,
        max_turns=max_turns,
        sampling=sampling or SamplingParams(temperature=0.0),
        env_kwargs=env_kwargs,
        group_prefix="eval:",
        **dict(collect_kwargs or {}),
    )
    return summarize(env_id, batch)
