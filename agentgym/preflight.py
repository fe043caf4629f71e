"""Checks that run before any work starts: each failure is one line naming the problem and the fix.

- :func:`parse_env_arg` reads an environment with constructor arguments from the command line,
  ``agentgym/ALFWorld-v0:split=valid_unseen`` (several: ``ID:a=1,b=x``), plus ``--env-kwarg``.
- :func:`check_env_builds` builds the environment with those arguments and resets it once, so a
  wrong argument fails before a model is loaded or a folder is written.
- :func:`check_config_path` names the recipes when a config file does not exist, and
  :func:`remove_if_empty_run` removes a run folder a failed start left with no work in it.
- :func:`check_train` runs the checks ``agentgym train`` can make before it creates the run
  folder: the environments build with their kwargs, the estimator and its options exist, the
  evaluation seeds are held out.
"""

from __future__ import annotations

import difflib
import inspect
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml


class PreflightError(ValueError):
    """A check before the work failed; the message says what to change."""


def parse_value(raw: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"`` -> True, ``"none"`` -> None, ``"[1, 2]"`` ->
    [1, 2]; anything else (or a quoted value) stays a string."""
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    if raw[:1] in "[{":
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError:
            return raw
    return raw


def parse_kwarg(text: str, *, flag: str = "--env-kwarg") -> tuple[str, Any]:
    """``"key=value"`` -> (key, parsed value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise PreflightError(f"{flag} expects KEY=VALUE, got {text!r}")
    return key.strip(), parse_value(raw.strip())


def parse_env_arg(text: str) -> tuple[str, dict[str, Any]]:
    """``"ns/Name-v0:key=value,key2=value2"`` -> (``"ns/Name-v0"``, kwargs).

    A comma followed by text without ``=`` belongs to the previous value (``k=[1,2]``)."""
    env_id, sep, rest = text.partition(":")
    if not sep:
        return text, {}
    pieces: list[str] = []
    for piece in rest.split(","):
        if pieces and "=" not in piece:
            pieces[-1] += "," + piece
        else:
            pieces.append(piece)
    kwargs = dict(parse_kwarg(p, flag=f"--env {env_id}:") for p in pieces if p.strip())
    return env_id, kwargs


def env_args(envs: Iterable[str], shared: Iterable[str] = ()) -> list[tuple[str, dict[str, Any]]]:
    """(env id, kwargs) of each ``--env``; ``shared`` (``--env-kwarg``) apply to every env,
    and the ``ID:key=value`` ones win over them."""
    common = dict(parse_kwarg(s) for s in shared)
    out = []
    for text in envs:
        env_id, own = parse_env_arg(text)
        out.append((env_id, {**common, **own}))
    return out


def env_label(env_id: str, kwargs: Mapping[str, Any]) -> str:
    """``ID`` or ``ID:k=v,k2=v2``: how results of a variant are named."""
    if not kwargs:
        return env_id
    return env_id + ":" + ",".join(f"{k}={v}" for k, v in kwargs.items())


def constructor_params(env_id: str) -> tuple[dict[str, Any], bool]:
    """(the env constructor's keyword parameters with their defaults, the registered ones
    winning; whether it takes other keyword arguments too, ``**kwargs``)."""
    from agentgym.registry import spec

    s = spec(env_id)
    try:
        sig = inspect.signature(s.load())
    except (TypeError, ValueError):
        return dict(s.kwargs), True
    params: dict[str, Any] = {}
    more = False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            more = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            params[p.name] = None if p.default is p.empty else p.default
    params.update(s.kwargs)
    return params, more


def check_kwarg_names(env_id: str, kwargs: Mapping[str, Any], *, where: str = "--env") -> None:
    """An unknown constructor argument is an error naming the nearest valid one."""
    params, more = constructor_params(env_id)
    if more:
        return
    for key in kwargs:
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise PreflightError(
                f"{where}: {env_id} takes no argument {key!r}.{hint} "
                f"It takes: {', '.join(params) or '(none)'} (`agentgym envs {env_id}`)."
            )


def check_env_builds(
    env_id: str,
    kwargs: Mapping[str, Any],
    *,
    max_turns: int | None = None,
    seed: int = 0,
    where: str = "--env",
) -> None:
    """Build ``env_id`` with ``kwargs`` and reset it with ``seed``; any failure is one
    :class:`PreflightError` naming the env, its arguments and what went wrong."""
    from agentgym.registry import make

    check_kwarg_names(env_id, kwargs, where=where)
    shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "its default arguments"
    env = None
    try:
        env = make(env_id, max_turns=max_turns, **dict(kwargs))
        env.reset(seed=seed)
    except Exception as exc:  # noqa: BLE001 - whatever the env raised, named in one line
        raise PreflightError(
            f"{where}: {env_id} with {shown} does not build and reset: "
            f"{type(exc).__name__}: {exc}. Check the arguments' names and types "
            f"(`agentgym envs {env_id}` lists them with their defaults)."
        ) from exc
    finally:
        if env is not None:
            try:
                env.close()
            except Exception:  # noqa: BLE001, S110 - closing a half-built env is best effort
                pass


def check_train(cfg: Any) -> None:
    """What ``agentgym train`` can check before it creates the run folder or loads a model:
    the estimator and its options, the evaluation seeds, and that every environment it will
    play (training and evaluation) builds with its kwargs."""
    from agentgym import credit
    from agentgym.trainers.evals import check_eval_seeds

    try:
        credit.make_config(cfg.credit.estimator, cfg.credit.options)
    except KeyError as exc:
        msg = str(exc.args[0] if exc.args else exc)
        if cfg.credit.options and "option" in msg.lower():
            msg += " When switching estimators, reset the recipe's options: credit.options={}."
        raise PreflightError(f"credit: {msg}") from None
    check_eval_seeds(cfg)
    env = cfg.env
    check_env_builds(env.id, env.kwargs, max_turns=env.max_turns, seed=env.seed, where="env.kwargs")
    eval_env = _eval_env(cfg)
    if eval_env is not None:
        env_id, kwargs = eval_env
        check_env_builds(
            env_id,
            kwargs,
            max_turns=env.max_turns,
            seed=cfg.trainer.eval_seed,
            where="trainer.eval_env_id/eval_env_kwargs",
        )


def _eval_env(cfg: Any) -> tuple[str, dict[str, Any]] | None:
    """The evaluation environment when it is not the training one (``trainer.eval_env_id``,
    ``env.kwargs`` updated by ``trainer.eval_env_kwargs``), else None."""
    tc = cfg.trainer
    env_id = getattr(tc, "eval_env_id", "") or cfg.env.id
    kwargs = {**cfg.env.kwargs, **(getattr(tc, "eval_env_kwargs", None) or {})}
    if env_id == cfg.env.id and kwargs == dict(cfg.env.kwargs):
        return None
    return env_id, kwargs


def check_config_path(path: str) -> None:
    """A config file that does not exist: name it and the recipes that do."""
    if Path(path).is_file():
        return
    folder = Path(path).parent
    found = sorted(str(p) for p in folder.glob("*.yaml")) if folder.is_dir() else []
    if not found and Path("configs").is_dir():
        folder = Path("configs")
        found = sorted(str(p) for p in folder.glob("*.yaml"))
    close = difflib.get_close_matches(path, found, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]}?" if close else ""
    listed = f" Recipes in {folder}/: {', '.join(found)}." if found else ""
    raise PreflightError(
        f"Config file {path!r} not found.{hint}{listed or ' Pass the path of a YAML config.'}"
    )


def remove_if_empty_run(path: Path) -> None:
    """Delete a run folder this command created when it holds no work: only ``config.yaml``,
    an empty ``metrics.jsonl``, TensorBoard headers and empty folders (no trajectories,
    checkpoint or evaluation)."""
    if not path.is_dir():
        return
    for p in path.rglob("*"):
        rel = p.relative_to(path).as_posix()
        if p.is_dir() or rel == "config.yaml" or rel.startswith("tensorboard/"):
            continue
        if p.name == "metrics.jsonl" and p.stat().st_size == 0:
            continue
        return
    shutil.rmtree(path, ignore_errors=True)


__all__ = [
    "check_config_path",
    "remove_if_empty_run",
    "PreflightError",
    "check_env_builds",
    "check_kwarg_names",
    "check_train",
    "constructor_params",
    "env_args",
    "env_label",
    "parse_env_arg",
    "parse_kwarg",
    "parse_value",
]
