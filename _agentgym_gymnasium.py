"""Makes ``gymnasium.make("agentgym/...")`` work after ``import gymnasium`` alone.

Gymnasium 1.x no longer loads plugin entry points, so ``agentgym-gymnasium.pth`` (installed
with the package; site runs it at interpreter start) imports this module. It imports nothing
itself: it puts a one-shot finder on ``sys.meta_path``. When ``gymnasium`` or ``agentgym`` is
first imported, the finder lets it load as usual and then imports ``agentgym.envs``, which
registers the built-in environments in Gymnasium's registry too. (Third-party
``agentgym.envs`` plugins still load with :func:`agentgym.registry.load_plugins`, on the
first ``agentgym.make``.)
"""

from __future__ import annotations

import sys

_WATCHED = ("gymnasium", "agentgym")


class _RegisterAfterImport:
    """A meta-path finder that wraps the loader of the first watched module to be imported."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        if name not in _WATCHED:
            return None
        _uninstall()
        import importlib.util

        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        run = getattr(loader, "exec_module", None)
        if run is None:
            return spec

        def exec_module(module: object) -> None:
            run(module)
            _register_builtin_envs()

        loader.exec_module = exec_module  # type: ignore[union-attr]
        return spec


def _register_builtin_envs() -> None:
    try:
        import agentgym.envs  # noqa: F401 - registering is importing
    except Exception as exc:  # noqa: BLE001 - never break `import gymnasium`
        import warnings

        warnings.warn(
            f"agentgym could not register its environments with gymnasium: {exc!r}",
            stacklevel=2,
        )


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RegisterAfterImport)]


def install() -> None:
    """Put the finder first on ``sys.meta_path`` unless a watched module is already loaded."""
    if not any(name in sys.modules for name in _WATCHED):
        _uninstall()
        sys.meta_path.insert(0, _RegisterAfterImport())
