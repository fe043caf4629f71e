"""What the code grader keeps in the trusted process: hidden tests, their checks, and the
namespace their code runs in.

A :class:`HiddenTest` holds the encoded arguments of the calls the sandbox makes (all it ever
receives) and either :class:`Case` checks (pairs: a call and its expected result) or a script
(test code replayed here on the reported results). :func:`namespace` builds the namespace in
which test code and its context run here, with a seeded private ``random``. Made by
:mod:`agentgym.envs.code_convert`, judged by :mod:`agentgym.envs.code_grader`.
"""

from __future__ import annotations

import builtins
import functools
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import CodeType, ModuleType
from typing import Any

from agentgym.envs.code_harness import NotPlainData, dumps

ASSERT = "__agentgym_assert__"
"""The name a script's rewritten asserts call (bound by whoever runs the script)."""


def same(actual: Any, expected: Any) -> bool:
    """Equality with exact types (``int`` and ``float`` may meet; floats compared to 1e-9)."""
    numbers = (int, float)
    if type(actual) in numbers and type(expected) in numbers:
        if type(actual) is int and type(expected) is int:
            return actual == expected
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)
    if type(actual) is not type(expected):
        return False
    if type(expected) in (list, tuple):
        return len(actual) == len(expected) and all(map(same, actual, expected))
    if type(expected) is dict:
        return actual.keys() == expected.keys() and all(
            same(actual[k], expected[k]) for k in expected
        )
    return bool(actual == expected)


@dataclass(frozen=True, eq=False)
class Case:
    """One call of the function and what its result must satisfy (checked in the parent)."""

    call: str
    """The encoded ``[args, kwargs]`` sent to the sandbox."""
    kind: str
    """``eq``, ``same``, ``is``, ``truthy``, ``falsy``, ``close`` or ``close_eq`` (``<=``)."""
    expected: Any = None
    tolerance: float = 0.0

    def holds(self, actual: Any) -> bool:
        """Whether ``actual`` (a decoded plain value) passes; an error counts as no."""
        try:
            if self.kind == "eq":
                return bool(actual == self.expected)
            if self.kind == "same":
                return same(actual, self.expected)
            if self.kind == "is":
                return actual is self.expected
            if self.kind in ("truthy", "falsy"):
                return bool(actual) is (self.kind == "truthy")
            distance = abs(actual - self.expected)
            return bool(
                distance < self.tolerance if self.kind == "close" else distance <= self.tolerance
            )
        except Exception:  # noqa: BLE001 - e.g. a list where a number was expected
            return False


@dataclass(frozen=True, eq=False)
class HiddenTest:
    """One hidden test: its source, the calls it makes, and how it is judged."""

    source: str
    calls: tuple[str, ...]
    cases: tuple[Case, ...] = ()
    """Pair form: one case per call. Empty for a script."""
    script: str | None = field(default=None, repr=False)
    """Script form: the test code with asserts wrapped, replayed in the parent when grading
    (:func:`compile_script`)."""


class UngradableTest(ValueError):
    """A test that cannot be graded with its expected values outside the sandbox."""


def encode_call(args: Iterable[Any], kwargs: dict[str, Any]) -> str:
    """The sandbox's form of a call's arguments (:class:`UngradableTest` if not plain data)."""
    try:
        return dumps([list(args), dict(kwargs)])
    except (NotPlainData, ValueError, RecursionError) as exc:
        raise UngradableTest(f"its arguments are not plain data ({exc})") from None


def namespace(context: Any, seed: int, aliases: Iterable[str], function: Any) -> dict[str, Any]:
    """A fresh namespace for test code: ``context`` run in it, ``aliases`` bound to
    ``function``, ``_same`` defined, and ``import random`` giving a private seeded generator
    (:func:`reseed` it per test)."""
    rng = random.Random(seed)
    module = ModuleType("random")
    for name in dir(random):
        if not name.startswith("_"):
            attr = getattr(rng, name, None)
            setattr(module, name, attr if callable(attr) else getattr(random, name))
    real_import = builtins.__import__

    def _import(name: str, *args: Any, **kwargs: Any) -> Any:
        return module if name == "random" else real_import(name, *args, **kwargs)

    ns: dict[str, Any] = {"__builtins__": {**vars(builtins), "__import__": _import}}
    ns.update(__name__="__hidden_tests__", _same=same, _agentgym_rng=rng)
    exec(context, ns)
    for alias in aliases:
        ns[alias] = function
    return ns


def reseed(ns: dict[str, Any], seed: int, index: int) -> None:
    """Give test ``index`` its own random stream, the same when recording and when grading."""
    ns["_agentgym_rng"].seed(seed * 1_000_003 + index)


@functools.lru_cache(maxsize=1024)
def compile_script(script: str) -> CodeType:
    """The code object of a script test (cached)."""
    return compile(script, "<hidden test>", "exec")


__all__ = [
    "ASSERT",
    "Case",
    "HiddenTest",
    "UngradableTest",
    "compile_script",
    "encode_call",
    "namespace",
    "reseed",
    "same",
]
