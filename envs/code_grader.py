"""Grading a submission: the sandbox computes results, this (trusted) process judges them.

:func:`run_tests` sends the sandbox the submission, the entry point and the arguments of every
call the task's hidden tests make (:mod:`agentgym.envs.code_convert`), never an expected value.
The harness (:mod:`agentgym.envs.code_harness`) reports one line per call with what the
function returned or raised; this module parses those lines strictly (a call with no line, a
malformed line or two lines counts as failed), decodes values as plain data only, and decides
each test here: pair tests compare the values with the expected ones, script tests run their
test code here with the function replaced by the reported results.

Why a submission cannot forge a verdict: it runs in the same process as the harness, so it can
write lines of its own, patch the harness or end the process, but the only thing a line can
carry is a plain value for a call, which is what the submission could have returned anyway;
whether that value is right is decided here, with expected values the sandbox never held.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType
from typing import TYPE_CHECKING, Any

from agentgym.envs.code_checks import (
    ASSERT,
    HiddenTest,
    compile_script,
    encode_call,
    namespace,
    reseed,
)
from agentgym.envs.code_harness import MAX_MEMBERS, NotPlainData, decode
from agentgym.sandbox import Limits, RunResult, Sandbox

if TYPE_CHECKING:
    from agentgym.envs.code_tasks import CodeTask

HARNESS = Path(__file__).with_name("code_harness.py").read_text(encoding="utf-8")
"""The sandbox's main program (the harness module's own source)."""
RESULT_BYTES = 8 << 20
"""Output kept from a grading run: the result lines."""


@dataclass(frozen=True)
class CallResult:
    """What the sandbox reported for one call: ``ok`` (``value``), ``raise`` or ``bad``."""

    status: str
    value: Any = None
    error: str = ""
    """``"TypeName"``/``"TypeName: message"`` for ``raise``, why for ``bad`` and missing calls."""


@dataclass(frozen=True)
class GradeReport:
    """The outcome of running a task's hidden tests on some code."""

    passed: int
    total: int
    failures: tuple[str, ...] = ()
    """``"test i: why"`` per failed test (no expected value), or why the code did not load."""
    run: RunResult | None = field(default=None, compare=False)

    @property
    def reward(self) -> float:
        return self.passed / self.total if self.total else 0.0

    @property
    def won(self) -> bool:
        return self.total > 0 and self.passed == self.total

    def message(self) -> str:
        text = f"Passed {self.passed} of {self.total} hidden tests (reward {self.reward:.2f})."
        if self.failures:
            text += " Failures: " + "; ".join(self.failures[:5])
            text += " ..." if len(self.failures) > 5 else "."
        if self.run is not None and (self.run.timed_out or (self.run.returncode or 0) < 0):
            text += f" The test run was stopped: {self.run.describe()}"
        return text


def parse_results(stdout: str, count: int) -> tuple[list[CallResult | None], str]:
    """Per call, the sandbox's result (None: no line), and the load error if one was reported.

    Lines that are not well-formed records are ignored; a call reported twice counts as
    ``bad``. Values are decoded as plain data only, with at most
    :data:`~agentgym.envs.code_harness.MAX_MEMBERS` set and dict members in all."""
    results: list[CallResult | None] = [None] * count
    seen: set[int] = set()
    load_error = ""
    budget = [MAX_MEMBERS]
    for line in stdout.split("\n"):
        record = _record(line, count, budget)
        if record is None:
            continue
        index, result = record
        if index == -1:
            load_error = load_error or result.error
        elif index in seen:
            results[index] = CallResult("bad", error="the result was reported twice")
        else:
            seen.add(index)
            results[index] = result
    return results, load_error


def _record(line: str, count: int, budget: list[int]) -> tuple[int, CallResult] | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if type(record) is not list or len(record) < 3 or type(record[0]) is not int:
        return None
    index, status = record[0], record[1]
    if not -1 <= index < count:
        return None
    if status == "ok" and len(record) == 3 and index >= 0:
        try:
            return index, CallResult("ok", decode(record[2], budget=budget))
        except (NotPlainData, RecursionError) as exc:
            return index, CallResult("bad", error=f"not plain data ({exc})")
    if status == "raise" and len(record) == 4 and all(type(x) is str for x in record[2:]):
        name, message = record[2][:100], record[3][:200]
        return index, CallResult("raise", error=f"{name}: {message}" if message else name)
    if status == "bad" and len(record) == 3 and type(record[2]) is str:
        return index, CallResult("bad", error=record[2][:200])
    return None


def _why(result: CallResult | None, ended: str) -> str:
    if result is None:
        return f"no result (the program ended first: {ended})"
    if result.status == "raise":
        return f"raised {result.error}"
    if result.status == "bad":
        return f"returned something that is not plain data: {result.error}"
    return "wrong result"


def _judge_pairs(test: HiddenTest, results: list[CallResult | None], ended: str) -> str:
    """Empty if every case of ``test`` holds, else why the first one does not."""
    for case, result in zip(test.cases, results, strict=True):
        if result is None or result.status != "ok" or not case.holds(result.value):
            return _why(result, ended)
    return ""


class _NoResult(BaseException):
    """A call without a usable result: the test fails even if its code catches exceptions."""


class SubmissionError(Exception):
    """Raised in a script test for a call that raised an exception of the submission's own."""


class _Replay:
    """The function while grading a script test: the sandbox's results, in recorded order."""

    def __init__(self, ended: str):
        self.ended = ended
        self.calls: tuple[str, ...] = ()
        self.results: list[CallResult | None] = []
        self.next = 0
        self.failure, self.broken = "", False

    def start(self, test: HiddenTest, results: list[CallResult | None]) -> None:
        self.calls, self.results, self.next = test.calls, results, 0
        self.failure, self.broken = "", False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        index, self.next = self.next, self.next + 1
        if index >= len(self.calls) or encode_call(args, kwargs) != self.calls[index]:
            self.failure = (
                "the test made a call its recording did not see (its calls depend on the "
                "function's results, e.g. `or`/`any` in an assert, or it is not deterministic)"
            )
            self.broken = True
            raise _NoResult(self.failure)
        result = self.results[index]
        if result is not None and result.status == "ok":
            return result.value
        self.failure = _why(result, self.ended)
        if result is None or result.status != "raise":
            self.broken = True
            raise _NoResult(self.failure)
        error = getattr(builtins, result.error.split(":")[0], None)
        if isinstance(error, type) and issubclass(error, Exception):
            raise error(result.error)  # the test may expect this exception
        raise SubmissionError(result.error)


@functools.lru_cache(maxsize=256)
def _context(source: str) -> CodeType:
    return compile(source, "<test setup>", "exec")


def _judge_scripts(
    task: CodeTask, per_test: list[list[CallResult | None]], ended: str
) -> list[str]:
    replay = _Replay(ended)
    ns = namespace(_context(task.context), task.seed, task.aliases, replay)

    def check(test: Callable[[], Any]) -> None:
        if not test():
            raise AssertionError

    ns[ASSERT] = check
    verdicts = []
    for index, (test, results) in enumerate(zip(task.tests, per_test, strict=True)):
        replay.start(test, results)
        reseed(ns, task.seed, index)
        try:
            exec(compile_script(test.script), ns)
            why = "" if replay.next == len(test.calls) else "the test skipped some of its calls"
        except AssertionError:
            why = replay.failure or "wrong result"
        except (Exception, _NoResult) as exc:  # noqa: BLE001 - e.g. a result of the wrong type
            why = replay.failure or f"the check raised {type(exc).__name__}"
        verdicts.append(replay.failure if replay.broken else why)
    return verdicts


def judge(task: CodeTask, results: list[CallResult | None], ended: str = "") -> list[str]:
    """Per test of ``task`` (a CodeTask), an empty string if it passed, else why not."""
    per_test, start = [], 0
    for test in task.tests:
        per_test.append(results[start : start + len(test.calls)])
        start += len(test.calls)
    if any(test.script is not None for test in task.tests):
        return _judge_scripts(task, per_test, ended)
    return [_judge_pairs(t, r, ended) for t, r in zip(task.tests, per_test, strict=True)]


def run_tests(
    sandbox: Sandbox, task: CodeTask, code: str, *, test_timeout: float = 3.0
) -> GradeReport:
    """Run ``task``'s hidden tests (a CodeTask) on ``code``: calls in ``sandbox``, verdicts here."""
    calls = [call for test in task.tests for call in test.calls]
    request = (
        f'{{"entry_point":{json.dumps(task.entry_point)},"timeout":{float(test_timeout)!r},'
        f'"calls":[{",".join(calls)}]}}'
    )
    limits: Limits = dataclasses.replace(sandbox.limits, output_bytes=RESULT_BYTES)
    run = sandbox.run(HARNESS, stdin=request, files={"solution.py": code}, limits=limits)
    results, load_error = parse_results(run.stdout, len(calls))
    verdicts = judge(task, results, run.describe())
    if load_error and not any(r is not None for r in results):
        failures: tuple[str, ...] = (f"your code raised {load_error}",)
    else:
        failures = tuple(f"test {i}: {why}" for i, why in enumerate(verdicts) if why)
    passed = sum(1 for why in verdicts if not why)
    return GradeReport(passed, len(task.tests), failures, run)


__all__ = ["CallResult", "GradeReport", "HARNESS", "judge", "parse_results", "run_tests"]
