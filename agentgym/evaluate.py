"""Success rate of a policy on an environment, with a Wilson 95% interval and pass@k.

The trainer's periodic evaluation and ``agentgym eval`` both call :func:`evaluate`, so a number
printed during training means the same as one printed afterwards. :func:`load_policy` turns
``random``, ``oracle``, a model, a training run or a checkpoint into a policy, and
:func:`evaluate_policy` evaluates it (a trained policy through the trainer's own ``run_eval``).
Tables, JSON and Markdown of the results: :mod:`agentgym.report.eval_results`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
    faults: int = 0
    """Episodes whose env raised or hung (``Trajectory.fault``); they count as failures."""

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
            "faults": self.faults,
        }


def score(trajectories: Sequence[Trajectory]) -> Score:
    n = len(trajectories)
    return Score(
        episodes=n,
        successes=sum(t.won for t in trajectories),
        mean_turns=sum(len(t.turns) for t in trajectories) / n if n else 0.0,
        mean_return=sum(t.episode_return for t in trajectories) / n if n else 0.0,
        faults=sum(t.fault is not None for t in trajectories),
    )


def batch_metrics(batch: Batch) -> dict[str, float]:
    """Outcome statistics of a collected batch."""
    turns = [t for traj in batch.trajectories for t in traj.turns]
    return {
        "success_rate": float(batch.won.mean()) if len(batch) else 0.0,
        "mean_return": float(batch.returns.mean()) if len(batch) else 0.0,
        "mean_turns": float(batch.traj_len.mean()) if len(batch) else 0.0,
        "invalid_rate": sum(t.invalid for t in turns) / max(len(turns), 1),
        "response_tokens": sum(len(t.response_ids) for t in turns),
        "prompt_tokens": sum(len(t.prompt_ids) for t in turns),
        "faults": sum(t.fault is not None for t in batch.trajectories),
    }


def task_type(traj: Trajectory) -> str | None:
    """The task type an environment reported (e.g. ALFWorld's six), if any: in the
    trajectory's metadata, its reset info (``metadata["reset_info"]``) or a step's info."""
    if TASK_TYPE in traj.metadata:
        return str(traj.metadata[TASK_TYPE])
    reset_info = traj.metadata.get("reset_info")
    if isinstance(reset_info, Mapping) and TASK_TYPE in reset_info:
        return str(reset_info[TASK_TYPE])
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
    panel: Mapping[str, Any] | None = None
    """What was played, for paired comparisons (:mod:`agentgym.panel`): env, kwargs, turn limit,
    tasks, samples per task, plus ``sampling`` and ``versions``. Set by :func:`evaluate`."""

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


class AllFaultedError(RuntimeError):
    """Every episode of an evaluation faulted: there is no success rate to report."""


def check_scored(result: EvalResult, *, label: str | None = None) -> EvalResult:
    """``result``, or :class:`AllFaultedError` naming the env and the first fault when every
    episode faulted (a broken env or argument, not a 0% policy)."""
    overall = result.overall
    if overall.episodes and overall.faults == overall.episodes:
        trajs = result.batch.trajectories if result.batch is not None else []
        first = next((t.fault for t in trajs if t.fault), "unknown")
        raise AllFaultedError(
            f"Every one of the {overall.episodes} episodes of {label or result.env_id} faulted "
            f"(the first: {first}); no success rate to report. Check the env and its arguments "
            "(`agentgym rollout` shows the same fault on a few episodes)."
        )
    return result


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
    from agentgym import panel

    played = panel.build_panel(
        env_id, batch, env_kwargs=env_kwargs, max_turns=max_turns, samples_per_task=samples_per_task
    )
    played["sampling"] = panel.sampling_settings(
        policy, sampling or SamplingParams(temperature=0.0), collect_kwargs
    )
    played["versions"] = panel.versions()
    return dataclasses.replace(summarize(env_id, batch), panel=played)


# ---------------------------------------------------------------------------------------------
# policies to evaluate: random | oracle | a model | a training run or checkpoint
# ---------------------------------------------------------------------------------------------

DEFAULT_EVAL_SEED = 10_000
"""Base seed of evaluation tasks when neither ``--seed`` nor a run's config names one."""


@dataclass
class LoadedPolicy:
    """A policy ready to evaluate, with what is needed to evaluate it as the trainer would."""

    name: str
    """What was loaded, e.g. ``"random"`` or ``"checkpoint runs/q/checkpoints/iter-00008"``."""
    policy: Policy
    train_config: Any = None
    """The ``TrainConfig`` of an LLM policy (its run's, or the defaults for a bare model)."""
    model: Any = None
    """The torch model behind an LLM policy."""
    run_dir: Path | None = None
    """The training run the policy came from, if any."""
    tag: str = ""
    """Short name for output folders: ``random``, ``oracle``, ``iter-00008``, ``model``..."""


def _checkpoint_dir(path: Path) -> bool:
    return (path / "state.pt").is_file() and (path / "trainable.pt").is_file()


def load_policy(spec: str, *, seed: int = 0, device: str | None = None) -> LoadedPolicy:
    """The policy named by ``spec``.

    ``random`` (seeded with ``seed``) or ``oracle``; a model (``smollm2-135m``, ``tiny`` or a
    Hugging Face folder), evaluated with the trainer's default policy settings (a run's exported
    ``RUN/model`` with that run's settings); a checkpoint folder ``RUN/checkpoints/iter-NNNNN``;
    or a training run directory (its latest checkpoint, else its exported ``RUN/model``).
    Checkpoints and runs are rebuilt with the trainer's own ``build_model``/``build_policy`` and
    the run's config, so the policy is the one the trainer evaluated. ``device`` overrides the
    config's ``policy.device``.
    """
    from agentgym.policy.scripted import OraclePolicy, RandomPolicy

    if spec == "random":
        return LoadedPolicy("random", RandomPolicy(seed=seed), tag="random")
    if spec == "oracle":
        return LoadedPolicy("oracle", OraclePolicy(), tag="oracle")
    from agentgym.policy.models import SMOLLM2_ALIASES  # imports torch: only for LLM policies

    path = Path(spec).expanduser()
    if _checkpoint_dir(path):
        return _llm_policy(path.parent.parent, path, None, device)
    if (path / "config.yaml").is_file() and not (path / "config.json").is_file():
        from agentgym.trainers import checkpoint

        ckpt = checkpoint.latest(path / "checkpoints")
        if ckpt is not None:
            return _llm_policy(path, ckpt, None, device)
        if (path / "model" / "config.json").is_file():
            return _llm_policy(path, None, path / "model", device)
        raise FileNotFoundError(
            f"Run {str(path)!r} has no checkpoint (checkpoints/iter-NNNNN) and no exported "
            "model/ folder to evaluate; train it first or pass a model folder."
        )
    if (path / "config.json").is_file() and (path.parent / "config.yaml").is_file():
        return _llm_policy(path.parent, None, path, device)  # RUN/model: with its run's config
    if (path / "config.json").is_file() or spec in (*SMOLLM2_ALIASES, "tiny"):
        return _llm_policy(None, None, spec, device)
    raise ValueError(
        f"--policy {spec!r} is not 'random', 'oracle', a model ({', '.join(SMOLLM2_ALIASES)}, "
        "tiny, or a Hugging Face folder with config.json), a training run directory or a "
        "checkpoint folder (RUN/checkpoints/iter-NNNNN)."
    )


def _llm_policy(
    run_dir: Path | None, ckpt: Path | None, model: str | Path | None, device: str | None
) -> LoadedPolicy:
    """Build an LLM policy the way the trainer does (see :func:`load_policy`)."""
    import dataclasses

    from agentgym.config import from_dict
    from agentgym.trainers import checkpoint
    from agentgym.trainers.config import TrainConfig
    from agentgym.trainers.loop import build_model, build_policy, resolve_device

    cfg = TrainConfig()
    if run_dir is not None:
        cfg = from_dict(TrainConfig, yaml.safe_load((run_dir / "config.yaml").read_text()) or {})
    if model is not None:  # a bare or exported model: no adapters to restore
        policy_cfg = dataclasses.replace(cfg.policy, model=str(model))
        cfg = dataclasses.replace(
            cfg, policy=policy_cfg, lora=dataclasses.replace(cfg.lora, enabled=False)
        )
    if device is not None:
        cfg = dataclasses.replace(cfg, policy=dataclasses.replace(cfg.policy, device=device))
    dev = resolve_device(cfg.policy.device)
    net, tokenizer = build_model(cfg, dev)
    if ckpt is not None:
        checkpoint.load(ckpt, net, restore_rng=False)
    net.eval()
    name = f"checkpoint {ckpt}" if ckpt is not None else f"model {model}"
    tag = ckpt.name if ckpt is not None else Path(str(model)).name
    return LoadedPolicy(name, build_policy(cfg, net, tokenizer, dev), cfg, net, run_dir, tag)


def eval_config(
    train_config: Any, env_id: str, env_kwargs: Mapping[str, Any] | None = None, **changes: Any
) -> Any:
    """``train_config`` set up to evaluate on ``env_id`` with ``env_kwargs``: episodes, seed,
    max_turns and temperature from ``changes`` (None keeps the config's). The training env's
    kwargs (under ``env_kwargs``) and turn limit carry over only when ``env_id`` is the
    training env; the config's own evaluation env (``trainer.eval_env_*``) does not apply."""
    import dataclasses

    cfg = train_config
    same_env = env_id == cfg.env.id
    env = dataclasses.replace(
        cfg.env,
        id=env_id,
        kwargs={**(dict(cfg.env.kwargs) if same_env else {}), **dict(env_kwargs or {})},
        max_turns=changes.get("max_turns") or (cfg.env.max_turns if same_env else None),
    )
    trainer = cfg.trainer
    for name, empty in (("eval_env_id", ""), ("eval_env_kwargs", {})):
        if hasattr(trainer, name):
            trainer = dataclasses.replace(trainer, **{name: empty})
    for key, field_name in (
        ("episodes", "eval_episodes"),
        ("seed", "eval_seed"),
        ("temperature", "eval_temperature"),
    ):
        if changes.get(key) is not None:
            trainer = dataclasses.replace(trainer, **{field_name: changes[key]})
    return dataclasses.replace(cfg, env=env, trainer=trainer)


def evaluate_policy(
    loaded: LoadedPolicy,
    env_id: str,
    *,
    episodes: int,
    samples_per_task: int = 1,
    seed: int | None = None,
    max_turns: int | None = None,
    temperature: float | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> EvalResult:
    """Evaluate ``loaded`` on ``env_id`` built with ``env_kwargs`` (a held-out split, a level).

    An LLM policy goes through the trainer's periodic evaluation, ``trainers.loop.run_eval``,
    with its config pointed at ``env_id`` (greedy unless ``temperature``), so a checkpoint
    scores here what it scored during training. With ``samples_per_task > 1`` (pass@k) it calls
    :func:`evaluate` with the same sampling and collect settings, since ``run_eval`` plays one
    sample per task. Scripted policies call :func:`evaluate` directly.
    """
    if loaded.train_config is None:
        return evaluate(
            env_id,
            loaded.policy,
            episodes=episodes,
            samples_per_task=samples_per_task,
            seed=DEFAULT_EVAL_SEED if seed is None else seed,
            max_turns=max_turns,
            env_kwargs=env_kwargs,
        )
    import torch

    from agentgym.trainers.loop import collect_kwargs, run_eval, sampling_params
    from agentgym.trainers.update import eval_mode

    cfg = eval_config(
        loaded.train_config,
        env_id,
        env_kwargs,
        episodes=episodes,
        seed=seed,
        max_turns=max_turns,
        temperature=temperature,
    )
    if samples_per_task == 1:
        return run_eval(cfg, loaded.policy, loaded.model)
    tc = cfg.trainer
    with eval_mode(loaded.model), torch.no_grad():
        return evaluate(
            env_id,
            loaded.policy,
            episodes=episodes,
            samples_per_task=samples_per_task,
            seed=tc.eval_seed,
            max_turns=cfg.env.max_turns,
            sampling=sampling_params(cfg, temperature=tc.eval_temperature, seed=tc.eval_seed),
            env_kwargs=cfg.env.kwargs,
            collect_kwargs=collect_kwargs(cfg),
        )
