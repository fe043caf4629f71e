"""Register, make and list environments.

Registration is data: one ``register("agentgym/Name-vN", entry_point="module:Class", ...)`` line
per environment version. Every registration also reaches Gymnasium, so
``gymnasium.make("agentgym/Name-vN")`` works. Third-party packages register through the
entry-point group ``agentgym.envs``: each entry point names a callable (usually a module's
``register_envs`` function) that calls :func:`register`. A module of your own that calls
:func:`register` reaches the CLI through ``--import MODULE`` or the environment variable
``AGENTGYM_IMPORT`` (:func:`import_modules`; comma-separated module names or ``.py`` paths).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from agentgym.core import EpisodeOverError, TextEnv, check_env

ENTRY_POINT_GROUP = "agentgym.envs"
IMPORT_VAR = "AGENTGYM_IMPORT"
"""Environment variable naming modules to import for their registrations (comma-separated)."""
BUILTIN_ENV_MODULES = ("agentgym.envs",)
DEFAULT_MAX_TURNS = 50


@dataclass(frozen=True)
class EnvSpec:
    """One registered environment version."""

    id: str
    """Id of the form ``namespace/Name-vN``."""
    entry_point: str | Callable[..., TextEnv]
    """``"module:Class"`` (imported lazily) or a callable returning a TextEnv."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Default constructor arguments; ``make(id, **kwargs)`` overrides them."""
    max_turns: int = DEFAULT_MAX_TURNS
    """Episodes are truncated after this many steps."""
    description: str = ""
    """One line shown by ``agentgym envs``."""

    def load(self) -> Callable[..., TextEnv]:
        if callable(self.entry_point):
            return self.entry_point
        module_name, _, attr = self.entry_point.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise ImportError(
                f"Environment {self.id!r}: cannot load entry point {self.entry_point!r} ({exc}). "
                "Check the 'module:Class' path and that the package providing it is installed."
            ) from exc
        return obj


_REGISTRY: dict[str, EnvSpec] = {}
_plugins_loaded = False
_imported: set[str] = set()


def register(
    id: str,
    entry_point: str | Callable[..., TextEnv],
    *,
    max_turns: int = DEFAULT_MAX_TURNS,
    description: str = "",
    **kwargs: Any,
) -> EnvSpec:
    """Register an environment version under ``id`` (``"namespace/Name-vN"``).

    ``kwargs`` are the constructor defaults. Registering the same id twice with a different
    definition is an error: bump the version instead of changing behaviour in place.
    """
    if "/" not in id or "-v" not in id.rsplit("/", 1)[-1]:
        raise ValueError(
            f"Environment id {id!r} must look like 'namespace/Name-vN', e.g. 'agentgym/KeyDoor-v0'."
        )
    spec = EnvSpec(id, entry_point, dict(kwargs), int(max_turns), description)
    old = _REGISTRY.get(id)
    if old is not None and old != spec:
        raise ValueError(
            f"Environment {id!r} is already registered with another definition; "
            "register a new version (-vN+1) instead of changing it in place."
        )
    _REGISTRY[id] = spec
    if id not in gym.registry:
        gym.register(id=id, entry_point=_gym_entry(id), max_episode_steps=None, kwargs={})
    return spec


def _gym_entry(env_id: str) -> Callable[..., gym.Env]:
    """Gymnasium entry point that builds the env the way :func:`make` does."""

    def build(**kwargs: Any) -> gym.Env:
        return make(env_id, **kwargs)

    return build


def load_plugins() -> None:
    """Import the built-in environments and every ``agentgym.envs`` entry point (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        import_modules([m for m in _env_imports() if m not in _imported])
        return
    _plugins_loaded = True
    for module in BUILTIN_ENV_MODULES:
        importlib.import_module(module)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = ep.load()
        except Exception as exc:  # noqa: BLE001
            raise ImportError(
                f"Plugin {ep.name!r} ({ep.value}) of entry-point group {ENTRY_POINT_GROUP!r} "
                f"failed to load: {exc!r}. Fix or uninstall the package that provides it."
            ) from exc
        if callable(target):
            target()
    import_modules(_env_imports())


def _env_imports() -> list[str]:
    return [m.strip() for m in os.environ.get(IMPORT_VAR, "").split(",") if m.strip()]


def import_modules(modules: list[str] | tuple[str, ...], *, export: bool = False) -> None:
    """Import each of ``modules`` for the environments it registers.

    An entry is a module name (``mypkg.envs``; the current directory is searched too, as with
    ``python -m``) or the path of a ``.py`` file. ``export`` also appends them to
    ``$AGENTGYM_IMPORT``, so worker processes and ``torchrun`` children import them as well.
    """
    for name in modules:
        try:
            _import_one(name)
            _imported.add(name)
        except Exception as exc:  # noqa: BLE001 - any failure of the user's module, named
            raise ImportError(
                f"--import {name!r} (or {IMPORT_VAR}) failed: {exc!r}. Give a module name "
                "importable from the current directory or a path to a .py file."
            ) from exc
    if export and modules:
        known = _env_imports()
        os.environ[IMPORT_VAR] = ",".join(known + [m for m in modules if m not in known])


def _import_one(name: str) -> None:
    if name.endswith(".py") or os.sep in name:
        path = os.path.abspath(name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no file {path}")
        mod_name = os.path.splitext(os.path.basename(path))[0]
        loaded = sys.modules.get(mod_name)
        if loaded is not None and os.path.abspath(getattr(loaded, "__file__", "") or "") == path:
            return
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {path} as a module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(mod_name, None)
            raise
        return
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    importlib.import_module(name)


def spec(env_id: str) -> EnvSpec:
    """The registered :class:`EnvSpec` of ``env_id``; unknown ids list close matches."""
    load_plugins()
    try:
        return _REGISTRY[env_id]
    except KeyError:
        close = difflib.get_close_matches(env_id, list(_REGISTRY), n=5, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        own = (
            ""
            if env_id.startswith("agentgym/")
            else " If your own module registers it, import that module with `--import MODULE` "
            f"(or {IMPORT_VAR}=MODULE), or install a package that registers it through the "
            f"{ENTRY_POINT_GROUP!r} entry-point group."
        )
        listed = ", ".join(sorted(_REGISTRY)) if len(_REGISTRY) <= 8 else ""
        raise KeyError(
            f"No environment registered as {env_id!r}.{hint}{own} "
            f"{len(_REGISTRY)} are registered{': ' + listed if listed else ''}; "
            "`agentgym envs` lists them."
        ) from None


def list_envs() -> list[EnvSpec]:
    """All registered environments, sorted by id."""
    load_plugins()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def make(env_id: str, *, max_turns: int | None = None, **kwargs: Any) -> gym.Env[str, str]:
    """Build a registered environment, wrapped with a max-turns limit.

    ``kwargs`` override the registered defaults; ``max_turns`` overrides the registered limit.
    """
    s = spec(env_id)
    params = {**s.kwargs, **kwargs}
    try:
        env = s.load()(**params)
    except TypeError as exc:
        raise TypeError(f"Environment {env_id!r} rejected its arguments {params}: {exc}") from exc
    if not isinstance(env, TextEnv):
        raise TypeError(
            f"Entry point of {env_id!r} built a {type(env).__name__}, not an agentgym.TextEnv."
        )
    env.spec = gym.envs.registration.EnvSpec(id=env_id, entry_point=s.entry_point, kwargs=params)
    limit = s.max_turns if max_turns is None else int(max_turns)
    return TurnLimit(env, limit)


class TurnLimit(gym.Wrapper[str, str, str, str]):
    """Truncate an episode after ``max_turns`` steps; refuse steps after the end."""

    def __init__(self, env: gym.Env[str, str], max_turns: int):
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        super().__init__(env)
        self.max_turns = max_turns
        self._turns = 0
        self._ended = True

    def reset(self, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        self._turns = 0
        self._ended = False
        return self.env.reset(**kwargs)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._ended:
            raise EpisodeOverError(
                f"step() called after the episode ended (limit {self.max_turns} turns or "
                "termination); call reset() to start a new episode."
            )
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._turns += 1
        if self._turns >= self.max_turns and not terminated:
            truncated = True
        self._ended = terminated or truncated
        return obs, reward, terminated, truncated, info

    @property
    def turns(self) -> int:
        return self._turns


__all__ = [
    "IMPORT_VAR",
    "EnvSpec",
    "TurnLimit",
    "check_env",
    "import_modules",
    "list_envs",
    "load_plugins",
    "make",
    "register",
    "spec",
]
