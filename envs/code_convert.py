"""Hidden tests of the code environment as calls for the sandbox plus checks kept outside it.

A hidden test is Python code that calls the submitted function (by its entry-point name or an
alias such as HumanEval's ``candidate``) and asserts on the results. :func:`convert_tests`
turns a task's tests, at load time and in the trusted parent process, into
:class:`HiddenTest` objects whose ``calls`` (encoded arguments) are all the sandbox ever sees:

- *pairs*: when every assert that mentions the function is one of
  ``f(...) == E`` (or ``E == f(...)``), ``_same(f(...), E)``, ``f(...) is True/False/None``,
  ``f(...)``, ``not f(...)`` or ``abs(f(...) - E) < T`` (also ``<=``, either operand order),
  the test code runs here once with each such assert replaced by recording a :class:`Case`
  (the arguments and ``E``, evaluated as the test would, loops and helpers included);
- *scripts*: otherwise, the test code runs here once with the function replaced by a recorder
  (its results are placeholders, assert failures ignored) to learn its calls, and at grading
  time it runs again with the function replaced by the sandbox's results, asserts for real.
  A test whose code outside asserts uses the results (so its calls cannot be known before the
  sandbox runs), or that needs names the trusted context does not define, is rejected here with
  a message naming it. Inside an assert, placeholders give neutral values (true, empty, 0) so
  that the calls after them are recorded too; a test whose calls still depend on the results
  there (``f(x) or f(y)``, ``any(f(x) for ...)``) fails at grading with a message saying so.

The context (the task's ``setup``, HumanEval's prompt and the test file's top level) runs in
the parent too, so helpers such as HumanEval's ``poly`` are the task's, not the submission's.
``import random`` in that code gives a generator seeded per task and test, so that recording
and grading see the same inputs.
"""

from __future__ import annotations

import ast
import copy
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agentgym.envs.code_checks import (
    ASSERT,
    Case,
    HiddenTest,
    UngradableTest,
    compile_script,
    encode_call,
    namespace,
    reseed,
)

CASE, ARGS = "__agentgym_case__", "__agentgym_args__"


class _PendingUse(Exception):
    """The recording pass touched a result it does not have yet."""


class _Pending:
    """Stands for a result during recording. Outside asserts any use of it raises
    :class:`_PendingUse` (the test's calls would depend on results); inside an assert
    (``lenient``) every operation gives a neutral value, so that the rest of the assert runs
    and its later calls are recorded too (``tuple(f(x)) == tuple(g(x))``)."""

    __slots__ = ()


_LENIENT = threading.local()
"""``_LENIENT.on``: this thread is recording inside an assert."""
_NEUTRAL: dict[str, Any] = {
    "bool": True,
    "len": 0,
    "hash": 0,
    "int": 0,
    "index": 0,
    "float": 0.0,
    "complex": 0j,
    "str": "<pending>",
    "repr": "<pending>",
    "format": "<pending>",
    "bytes": b"",
    "contains": False,
    "exit": False,
    "setitem": None,
    "delitem": None,
}


def _dunder(name: str) -> Callable[..., Any]:
    def method(self: _Pending, *args: Any, **kwargs: Any) -> Any:
        if not getattr(_LENIENT, "on", False):
            raise _PendingUse("a result of the function is not known while recording")
        if name in ("iter", "reversed"):
            return iter(())
        return _NEUTRAL[name] if name in _NEUTRAL else _Pending()

    return method


for _name in (
    "eq ne lt le gt ge hash bool len iter contains getitem setitem delitem call getattr "
    "add radd sub rsub mul rmul truediv rtruediv floordiv rfloordiv mod rmod pow rpow neg pos "
    "abs invert int float complex index round str repr format bytes reversed enter exit "
    "and rand or ror xor rxor lshift rlshift rshift rrshift matmul rmatmul divmod rdivmod"
).split():
    setattr(_Pending, f"__{_name}__", _dunder(_name))


class _NotHere(Exception):
    """The function was called where the pair form evaluates code without it."""


def _mentions(node: ast.AST, aliases: frozenset[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in aliases for n in ast.walk(node))


def _call(node: ast.AST, aliases: frozenset[str]) -> ast.Call | None:
    """``node`` if it is a call of the function whose arguments do not mention it."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in aliases:
        if not any(_mentions(a, aliases) for a in [*node.args, *node.keywords]):
            return node
    return None


def _match(
    test: ast.expr, aliases: frozenset[str]
) -> tuple[ast.Call, str, ast.expr, ast.expr] | None:
    """``(call, kind, expected, tolerance)`` if ``test`` is one of the pair patterns."""
    none = ast.Constant(None)
    zero = ast.Constant(0.0)
    if (call := _call(test, aliases)) is not None:
        return call, "truthy", none, zero
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        if (call := _call(test.operand, aliases)) is not None:
            return call, "falsy", none, zero
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "_same":
        if len(test.args) == 2 and not test.keywords and not _mentions(test.args[1], aliases):
            if (call := _call(test.args[0], aliases)) is not None:
                return call, "same", test.args[1], zero
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return None
    left, op, right = test.left, test.ops[0], test.comparators[0]
    if isinstance(op, ast.Eq):
        for a, b in ((left, right), (right, left)):
            if (call := _call(a, aliases)) is not None and not _mentions(b, aliases):
                return call, "eq", b, zero
    if (
        isinstance(op, ast.Is)
        and isinstance(right, ast.Constant)
        and right.value in (True, False, None)
    ):
        if (call := _call(left, aliases)) is not None:
            return call, "is", right, zero
    if isinstance(op, (ast.Lt, ast.LtE)) and not _mentions(right, aliases):
        kind = "close" if isinstance(op, ast.Lt) else "close_eq"
        if isinstance(left, ast.Call) and isinstance(left.func, ast.Name) and left.func.id == "abs":
            inner = left.args[0] if len(left.args) == 1 and not left.keywords else None
            if isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Sub):
                for a, b in ((inner.left, inner.right), (inner.right, inner.left)):
                    if (call := _call(a, aliases)) is not None and not _mentions(b, aliases):
                        return call, kind, b, right
    return None


class _ToPairs(ast.NodeTransformer):
    def __init__(self, aliases: frozenset[str]):
        self.aliases = aliases

    def visit_Assert(self, node: ast.Assert) -> ast.stmt:
        found = _match(node.test, self.aliases)
        if found is None:
            return node
        call, kind, expected, tolerance = found
        args = ast.Call(ast.Name(ARGS, ast.Load()), call.args, call.keywords)
        record = ast.Call(
            ast.Name(CASE, ast.Load()), [ast.Constant(kind), args, expected, tolerance], []
        )
        return ast.copy_location(ast.Expr(record), node)


class _ToScript(ast.NodeTransformer):
    def visit_Assert(self, node: ast.Assert) -> ast.stmt:
        check = ast.Lambda(ast.arguments([], [], None, [], [], None, []), node.test)
        wrapped = ast.Call(ast.Name(ASSERT, ast.Load()), [check], [])
        return ast.copy_location(ast.Expr(wrapped), node)


def _compile(tree: ast.Module, name: str) -> Any:
    return compile(ast.fix_missing_locations(tree), name, "exec")


@dataclass
class _Recorder:
    """The function while recording: keeps each call's encoded arguments."""

    calls: list[str] = field(default_factory=list)

    def __call__(self, *args: Any, **kwargs: Any) -> _Pending:
        self.calls.append(encode_call(args, kwargs))
        return _Pending()


def _label(index: int, source: str) -> str:
    first = source.strip().splitlines()[0] if source.strip() else ""
    return f"test {index} ({first[:80]!r})"


def _missing_name(label: str, error: NameError) -> str:
    return (
        f"{label} needs a name the grader does not have ({error}): tests run outside the "
        "sandbox and may call the entry point (or `candidate`) and what the task's setup defines"
    )


def _run_pairs(
    sources: list[str], context: Any, seed: int, aliases: frozenset[str]
) -> tuple[HiddenTest, ...] | None:
    """The pair form of every test, or None if one needs the script form."""
    trees = [_ToPairs(aliases).visit(ast.parse(s)) for s in sources]
    if any(_mentions(t, aliases) for t in trees):
        return None

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise _NotHere("a helper of the tests calls the function")

    ns = namespace(context, seed, aliases, forbidden)
    cases: list[Case] = []

    def record(kind: str, call: tuple[tuple, dict], expected: Any, tolerance: float) -> None:
        cases.append(Case(encode_call(*call), kind, copy.deepcopy(expected), tolerance))

    ns[CASE], ns[ARGS] = record, lambda *a, **k: (a, k)
    tests = []
    for index, (source, tree) in enumerate(zip(sources, trees, strict=True)):
        cases.clear()
        reseed(ns, seed, index)
        try:
            exec(_compile(tree, f"<hidden test {index}>"), ns)
        except _NotHere:
            return None
        except NameError as exc:
            raise UngradableTest(_missing_name(_label(index, source), exc)) from None
        except UngradableTest as exc:
            raise UngradableTest(f"{_label(index, source)}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - the test code is the task author's
            raise UngradableTest(
                f"{_label(index, source)} fails while converting: {exc!r}"
            ) from None
        if not cases:
            raise UngradableTest(f"{_label(index, source)} never calls the function")
        tests.append(HiddenTest(source, tuple(c.call for c in cases), tuple(cases)))
    return tuple(tests)


def _record_scripts(
    sources: list[str], context: Any, seed: int, aliases: frozenset[str]
) -> tuple[HiddenTest, ...]:
    recorder = _Recorder()
    ns = namespace(context, seed, aliases, recorder)
    missing: list[NameError] = []

    def check(test: Callable[[], Any]) -> None:
        _LENIENT.on = True
        try:
            test()
        except NameError as exc:
            missing.append(exc)
        except Exception:  # noqa: BLE001 - placeholders make some asserts fail here
            pass
        finally:
            _LENIENT.on = False

    ns[ASSERT] = check
    tests = []
    for index, source in enumerate(sources):
        script = ast.unparse(ast.fix_missing_locations(_ToScript().visit(ast.parse(source))))
        code = compile_script(script)
        recorder.calls = []
        reseed(ns, seed, index)
        label = _label(index, source)
        try:
            exec(code, ns)
        except _PendingUse:
            raise UngradableTest(
                f"{label} uses the function's result outside an assert, so its calls cannot "
                "be known before the sandbox runs; compare results only inside asserts"
            ) from None
        except UngradableTest as exc:
            raise UngradableTest(f"{label}: {exc}") from None
        except Exception as exc:  # noqa: BLE001
            raise UngradableTest(f"{label} fails while recording its calls: {exc!r}") from None
        if missing:
            raise UngradableTest(_missing_name(label, missing[0]))
        if not recorder.calls:
            raise UngradableTest(f"{label} never calls the function")
        tests.append(HiddenTest(source, tuple(recorder.calls), script=script))
    return tuple(tests)


def convert_tests(
    sources: Iterable[str], context: str, seed: int, aliases: Iterable[str]
) -> tuple[HiddenTest, ...]:
    """``sources`` (one test each, run in order in one namespace after ``context``) as hidden
    tests: all pairs if every one converts, else all scripts. :class:`UngradableTest` (a
    ValueError naming the test) for a test that cannot be graded outside the sandbox."""
    sources, names = list(sources), frozenset(aliases)
    try:
        code = compile(context, "<test setup>", "exec")
        namespace(code, seed, names, None)
    except Exception as exc:  # noqa: BLE001 - the task author's setup code
        raise UngradableTest(f"the tests' setup code fails here: {exc!r}") from None
    return _run_pairs(sources, code, seed, names) or _record_scripts(sources, code, seed, names)


__all__ = ["UngradableTest", "convert_tests"]
