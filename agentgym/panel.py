"""Evaluation panels: what an evaluation played, so two evaluations can be compared pair by pair.

An evaluation's *panel* is the set of episodes it plays: the environment (id and effective
constructor kwargs), the turn limit, the tasks (task id and seed, in order) and the samples per
task. Two evaluations on the same panel play the same tasks, so their outcomes pair up episode
by episode (``agentgym compare``). The *panel hash* is a SHA-256 over exactly these parts.

What a comparison needs, and what it only reports:

- **Must match (the hash):** env id, kwargs, max_turns, tasks (ids and seeds, in order) and
  samples per task. Anything else plays other episodes; the pairs would not be pairs.
- **Must match unless overridden:** the version of the environment's own package (textworld for
  TextWorld envs, alfworld for ALFWorld envs). A different generator can build a different game
  for the same seed and task id; ``agentgym compare --allow-version-mismatch`` accepts it.
- **Reported, not refused:** the sampling settings (temperature, top_p, decoding mode, action
  format, ...) and the agentgym version. They belong to the *policy* being evaluated (greedy vs
  sampled decoding of one checkpoint is a legitimate comparison), so they are shown next to the
  result when they differ.

An evaluation record (:func:`eval_record`) is JSON: ``panel``, ``panel_hash``, ``sampling``,
``versions``, ``summary`` and ``outcomes`` (one per episode: task id, seed, sample, won,
return, turns, fault).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Mapping, Sequence
from typing import Any

from agentgym.data import Batch
from agentgym.schema import jsonable

FORMAT = "agentgym-eval/1"
VERSIONED_PACKAGES = ("agentgym", "textworld", "alfworld")
ENV_PACKAGES = ("textworld", "alfworld")
"""Packages whose version can change what an environment's tasks are."""


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Versions of agentgym, textworld and alfworld (None: not installed)."""
    return {name: package_version(name) for name in VERSIONED_PACKAGES}


def env_packages(env_id: str) -> tuple[str, ...]:
    """The packages of :data:`ENV_PACKAGES` that ``env_id``'s entry point comes from."""
    from agentgym.registry import spec

    try:
        entry = spec(env_id).entry_point
    except LookupError:  # not registered in this process (a plugin not installed): the id
        entry = env_id
    where = entry if isinstance(entry, str) else getattr(entry, "__module__", "")
    return tuple(p for p in ENV_PACKAGES if p in where.lower())


def effective_env(
    env_id: str, env_kwargs: Mapping[str, Any] | None, max_turns: int | None
) -> tuple[dict[str, Any], int]:
    """(constructor kwargs with the registered defaults filled in, turn limit in force)."""
    from agentgym.registry import spec

    s = spec(env_id)
    kwargs = {**s.kwargs, **dict(env_kwargs or {})}
    return jsonable(kwargs), int(max_turns if max_turns is not None else s.max_turns)


def build_panel(
    env_id: str,
    batch: Batch,
    *,
    env_kwargs: Mapping[str, Any] | None,
    max_turns: int | None,
    samples_per_task: int,
) -> dict[str, Any]:
    """The panel an evaluation played: env, kwargs, turn limit and its tasks in group order."""
    kwargs, turns = effective_env(env_id, env_kwargs, max_turns)
    tasks, seen = [], set()
    for traj in batch.trajectories:
        if traj.group_id not in seen:
            seen.add(traj.group_id)
            tasks.append({"task_id": traj.task_id, "seed": int(traj.seed)})
    return {
        "env_id": env_id,
        "env_kwargs": kwargs,
        "max_turns": turns,
        "samples_per_task": int(samples_per_task),
        "tasks": tasks,
    }


def panel_hash(panel: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the panel-defining parts, as canonical JSON."""
    parts = {
        k: panel.get(k) for k in ("env_id", "env_kwargs", "max_turns", "samples_per_task", "tasks")
    }
    text = json.dumps(jsonable(parts), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def episode_outcomes(batch: Batch) -> list[dict[str, Any]]:
    """One record per episode in batch order: task id, seed, sample (its index in its group),
    won, return, turns and whether the env faulted (a fault counts as a failure)."""
    sample: dict[str, int] = {}
    out = []
    for traj in batch.trajectories:
        k = sample.get(traj.group_id, 0)
        sample[traj.group_id] = k + 1
        out.append(
            {
                "task_id": traj.task_id,
                "seed": int(traj.seed),
                "sample": k,
                "won": bool(traj.won) and traj.fault is None,
                "return": float(traj.episode_return),
                "turns": len(traj.turns),
                "fault": traj.fault is not None,
            }
        )
    return out


def sampling_settings(policy: Any, sampling: Any, collect_kwargs: Mapping[str, Any] | None) -> dict:
    """How the policy chose its actions: temperature, top_p, token limit, decoding mode and
    action format (with whether valid actions were listed) and the history mode."""
    fmt = dict(collect_kwargs or {}).get("action_format", "plain")
    decoding = getattr(policy, "action_mode", None) or getattr(policy, "decoding", None)
    style = getattr(fmt, "list_style", "bullets")
    # the list style only when not the default: panels recorded before the option keep their hash
    styled = {"list_style": style} if style != "bullets" else {}
    return {
        "policy": type(policy).__name__,
        "temperature": float(sampling.temperature),
        "top_p": float(sampling.top_p),
        "max_new_tokens": sampling.max_new_tokens,
        "decoding": decoding or "n/a",
        "action_format": getattr(fmt, "name", fmt),
        "list_actions": getattr(fmt, "list_actions", True),
        **styled,
        "history": getattr(policy, "history", "n/a"),
        "history_window": dict(collect_kwargs or {}).get("history_window"),
    }


def eval_record(result: Any, **extra: Any) -> dict[str, Any]:
    """The JSON record of an :class:`~agentgym.evaluate.EvalResult` that carries a panel:
    ``extra`` (e.g. iteration, policy), panel, its hash, sampling, versions, summary, episodes."""
    if result.panel is None or result.batch is None:
        raise ValueError("this evaluation result carries no panel (made outside evaluate())")
    panel = dict(result.panel)
    meta = {k: panel.pop(k) for k in ("sampling", "versions") if k in panel}
    return {
        "format": FORMAT,
        **jsonable(extra),
        "panel": panel,
        "panel_hash": panel_hash(panel),
        **jsonable(meta),
        "summary": jsonable(result.overall.as_dict()),
        "outcomes": episode_outcomes(result.batch),
    }


# -- differences between two panels ----------------------------------------------------------


def seed_ranges(seeds: Sequence[int], limit: int = 6) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"`` (at most ``limit`` ranges, then ``...``)."""
    ordered = sorted(set(seeds))
    spans: list[tuple[int, int]] = []
    for s in ordered:
        if spans and s == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], s)
        else:
            spans.append((s, s))
    text = [f"{a}" if a == b else f"{a}-{b}" for a, b in spans[:limit]]
    return ", ".join(text) + (", ..." if len(spans) > limit else "")


def panel_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """What differs between panels ``a`` and ``b``, one phrase each (empty: the same panel)."""
    out = []
    for key in ("env_id", "max_turns", "samples_per_task"):
        if a.get(key) != b.get(key):
            out.append(f"{key}: {a.get(key)!r} vs {b.get(key)!r}")
    ka, kb = a.get("env_kwargs") or {}, b.get("env_kwargs") or {}
    for key in sorted(set(ka) | set(kb)):
        if ka.get(key, "<unset>") != kb.get(key, "<unset>"):
            out.append(
                f"env_kwargs.{key}: {ka.get(key, '<unset>')!r} vs {kb.get(key, '<unset>')!r}"
            )
    ta = {int(t["seed"]): t["task_id"] for t in a.get("tasks", [])}
    tb = {int(t["seed"]): t["task_id"] for t in b.get("tasks", [])}
    only_a, only_b = sorted(set(ta) - set(tb)), sorted(set(tb) - set(ta))
    if only_a or only_b:
        out.append(
            f"seeds: {len(ta)} tasks ({seed_ranges(ta)}) vs {len(tb)} ({seed_ranges(tb)}); "
            f"only in A: {seed_ranges(only_a) or 'none'}; only in B: {seed_ranges(only_b) or 'none'}"
        )
    changed = sorted(s for s in set(ta) & set(tb) if ta[s] != tb[s])
    if changed:
        s = changed[0]
        out.append(
            f"task ids differ at {len(changed)} seeds ({seed_ranges(changed)}), e.g. seed {s}: "
            f"{ta[s]!r} vs {tb[s]!r}"
        )
    if not out and a.get("tasks") != b.get("tasks"):
        out.append("task order differs")
    return out


def version_differences(
    a: Mapping[str, Any], b: Mapping[str, Any], env_id: str
) -> tuple[list[str], list[str]]:
    """(differences in the versions of the env's own packages, other version differences)."""
    va, vb = a.get("versions") or {}, b.get("versions") or {}
    relevant = env_packages(env_id)
    blocking, notes = [], []
    for name in sorted(set(va) | set(vb)):
        if va.get(name) != vb.get(name):
            text = f"{name} {va.get(name) or 'not installed'} vs {vb.get(name) or 'not installed'}"
            (blocking if name in relevant else notes).append(text)
    return blocking, notes


def sampling_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Sampling settings that differ between two records (reported, never refused)."""
    sa, sb = a.get("sampling") or {}, b.get("sampling") or {}
    return [
        f"{k}: {sa.get(k)!r} vs {sb.get(k)!r}"
        for k in sorted(set(sa) | set(sb))
        if sa.get(k) != sb.get(k)
    ]


__all__ = [
    "FORMAT",
    "build_panel",
    "env_packages",
    "episode_outcomes",
    "eval_record",
    "panel_differences",
    "panel_hash",
    "sampling_differences",
    "seed_ranges",
    "version_differences",
    "versions",
]
