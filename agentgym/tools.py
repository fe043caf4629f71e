"""Tool environments: typed Python functions as tools, called by the model in one text format.

API summary (stable; ``agentgym.envs.search`` and ``agentgym.envs.code`` build on it; the
declaration and text-format half lives in :mod:`agentgym.toolcall` and is re-exported here):

- ``@tool`` / ``@tool(timeout=s, name=...)`` marks a :class:`ToolEnv` method as a tool. It needs
  a docstring and a type annotation on every parameter; ``answer`` is reserved.
- :class:`ToolEnv` (a :class:`~agentgym.core.TextEnv`): subclasses implement
  ``load_tasks() -> Sequence[Task]`` (the task source, loaded once per env) and may override
  ``grade(task, answer) -> Grade`` (default: normalized exact match against ``task.answers``,
  F1 in ``info``), ``start_task(task) -> str`` (the first observation; default ``task.prompt``)
  and ``oracle_action()`` (default: replay ``task.solution``, then answer ``task.answers[0]``).
  Class attributes: ``instructions`` (the opening of the system prompt), ``tool_timeout``
  (seconds) and ``max_result_chars``.
- :class:`Task` (id, prompt, answers, solution, data), :class:`ToolCall` (name, arguments),
  :class:`Grade` (reward, won, message, info). A tool returns ``str`` (shown as is),
  JSON-able data (shown as JSON) or a :class:`ToolResult` (text plus extra ``info`` entries).
- Text format: ``<tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>`` calls
  a tool; ``<answer>text</answer>`` (or a call of the built-in ``answer(text)``) gives the final
  answer and ends the episode. Text around the tags (reasoning) is ignored; only the first tag
  of a reply counts. :func:`format_tool_call` and :func:`format_answer` write them.
- ``info`` keys: :data:`TOOL_CALL` (the parsed call as a dict, or None) and
  :data:`NUM_TOOL_CALLS` (tools run so far this episode) on every step, and
  :data:`~agentgym.prompting.SYSTEM_PROMPT` at reset: the rendered system prompt (instructions,
  tool signatures with docstrings, the call format), which the rollout uses as the system
  message. The rollout must hand the env the whole model output: use the ``tool`` action
  format of :mod:`agentgym.prompting` (its parser is the identity).
  :data:`~agentgym.core.REPLY_GRAMMAR` on every reset and step: the reply format as a Lark
  grammar built from the tools' signatures (:func:`~agentgym.toolcall.reply_grammar`), which
  constrained decoding (``policy.decoding=constrained``) samples within.
- ``state_key``: ``"<task id>|<call>|<call>..."`` with each successful call as
  ``name{sorted-json-arguments}``; invalid or failed calls leave the state (and key) unchanged;
  after the answer the key ends in ``|<answered>``.

Tools run in a daemon worker thread and are abandoned after their timeout (the episode goes on
with a timeout observation). That bounds pure-Python tools; it cannot kill a thread, so a
hostile or CPU-bound-forever tool needs a process sandbox (``agentgym.sandbox``), as the code
environment uses.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import string
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agentgym.core import INVALID, REPLY_GRAMMAR, STATE_KEY, TASK, TASK_ID, WON, TextEnv
from agentgym.prompting import SYSTEM_PROMPT
from agentgym.toolcall import (
    ANSWER,
    TOOL_MARK,
    ToolCall,
    ToolCallError,
    ToolResult,
    ToolSpec,
    format_answer,
    format_tool_call,
    parse_tool_call,
    reply_grammar,
    short_repr,
    tool,
)

TOOL_CALL = "tool_call"
"""``info`` key: the call parsed from the action, ``{"name": ..., "arguments": {...}}`` or None."""
NUM_TOOL_CALLS = "num_tool_calls"
"""``info`` key (reset and every step): how many tool calls this episode has run so far, this
step's included. A call counts once it passed parsing and argument checks and its tool ran,
whether it returned, raised or timed out; replies that name no valid call and the final answer
do not count. The tool-efficiency reward (``reward.tool_efficiency``) reads it."""


@dataclass(frozen=True)
class Task:
    """One episode's task: what the model is asked, the gold answers and a scripted solution."""

    id: str
    prompt: str
    answers: tuple[str, ...] = ()
    """Accepted answers (the default grader compares normalized text; the oracle gives [0])."""
    solution: tuple[ToolCall, ...] = ()
    """Tool calls the default oracle makes, in order, before answering."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """Anything else the env needs (gold passages, tests...)."""


@dataclass(frozen=True)
class Grade:
    """The verdict on a final answer."""

    reward: float
    won: bool
    message: str = ""
    """Observation after the answer (default: says whether it was correct)."""
    info: Mapping[str, Any] = field(default_factory=dict)
    """Merged into the step's info (e.g. ``f1``)."""


# -- answer metrics (SQuAD-style normalization) -----------------------------------------------
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no articles (a/an/the), single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(prediction: str, answers: Sequence[str]) -> bool:
    """True when the normalized prediction equals any normalized gold answer."""
    pred = normalize_answer(prediction)
    return any(pred == normalize_answer(a) for a in answers)


def f1_score(prediction: str, answers: Sequence[str]) -> float:
    """Best token-level F1 between the normalized prediction and any gold answer."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for gold in (normalize_answer(a).split() for a in answers):
        common = sum((Counter(pred) & Counter(gold)).values())
        if common:
            precision, recall = common / len(pred), common / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
        elif not pred and not gold:
            best = 1.0
    return best


def _answer_tool(text: str) -> None:
    """Give your final answer; this ends the episode."""


ANSWER_SPEC = dataclasses.replace(
    ToolSpec.from_function(_answer_tool, skip_self=False), name=ANSWER
)


def run_with_timeout(fn: Callable[..., Any], kwargs: Mapping[str, Any], timeout: float) -> Any:
    """``fn(**kwargs)`` in a daemon thread; raise TimeoutError if it runs past ``timeout`` s.

    A call that times out keeps running in the background (threads cannot be killed).
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="agentgym-tool")
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"timed out after {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


# -- the environment --------------------------------------------------------------------------
class ToolEnv(TextEnv):
    """A TextEnv whose actions are tool calls or a final answer (see the module docstring).

    Each turn the reply is parsed with :func:`parse_tool_call`. A tool call is checked against
    the tool's signature and run with a timeout; its result (``str`` as is, anything else as
    JSON, cut to ``max_result_chars``) is the next observation. The answer is graded by
    :meth:`grade` and ends the episode (terminated). A reply with no call, broken JSON, an
    unknown tool, wrong arguments, an exception or a timeout in the tool gives an observation
    saying what was wrong, ``info["invalid"] = True``, reward 0, and the episode goes on.
    """

    instructions: ClassVar[str] = ""
    """Opening of the system prompt; defaults to the first paragraph of the class docstring."""
    tool_timeout: ClassVar[float] = 10.0
    """Seconds a tool may run (``@tool(timeout=...)`` overrides it per tool)."""
    max_result_chars: ClassVar[int] = 4000
    """Longer tool results are cut, with a note saying how much was left out."""
    _tool_specs: ClassVar[dict[str, ToolSpec]] = {}

    _task_list: Sequence[Task] | None = None
    _current: Task | None = None
    _calls: list[ToolCall]
    _runs: int = 0
    _answered: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # attribute names in definition order, base classes first; the most derived attribute
        # decides (an override without @tool is no longer a tool)
        names = dict.fromkeys(n for klass in reversed(cls.__mro__) for n in vars(klass))
        specs: dict[str, ToolSpec] = {}
        for name in names:
            attr = getattr(cls, name, None)
            if callable(attr) and hasattr(attr, TOOL_MARK):
                spec = ToolSpec.from_function(attr)
                specs[spec.name] = spec
        if ANSWER in specs:
            raise TypeError(f"{cls.__name__}: the tool name {ANSWER!r} is reserved.")
        cls._tool_specs = specs

    # -- to implement / override ----------------------------------------------------------------
    def load_tasks(self) -> Sequence[Task]:
        """The task source: every task this env can pose (called once, then cached)."""
        raise NotImplementedError(f"{type(self).__name__} must implement load_tasks()")

    def grade(self, task: Task, answer: str) -> Grade:
        """Reward 1 for a normalized exact match with ``task.answers``, else 0; F1 in info."""
        if not task.answers:
            raise NotImplementedError(f"{type(self).__name__}: task has no answers; override grade")
        em = exact_match(answer, task.answers)
        verdict = "correct" if em else "incorrect"
        return Grade(
            float(em),
            em,
            f"Your answer {short_repr(answer, 80)} is {verdict}.",
            {"exact_match": em, "f1": f1_score(answer, task.answers)},
        )

    def start_task(self, task: Task) -> str:
        """First observation of an episode (default: the task prompt)."""
        return task.prompt

    def oracle_action(self) -> str | None:
        """Next call of ``task.solution`` not yet made (in order), then the first gold answer."""
        task = self.task
        done = 0
        for call in self._calls:
            if done < len(task.solution) and call == task.solution[done]:
                done += 1
        if done < len(task.solution):
            return format_tool_call(task.solution[done])
        return format_answer(task.answers[0]) if task.answers else None

    # -- public helpers ---------------------------------------------------------------------------
    @classmethod
    def tools(cls) -> dict[str, ToolSpec]:
        """The env's tools by name, the built-in ``answer`` last."""
        return {**cls._tool_specs, ANSWER: ANSWER_SPEC}

    @classmethod
    def reply_grammar(cls) -> str:
        """The reply format as a Lark grammar: a call of one of the tools, or an answer."""
        if "_grammar" not in cls.__dict__:
            cls._grammar = reply_grammar(list(cls._tool_specs.values()))
        return cls._grammar

    @property
    def task(self) -> Task:
        """The current episode's task (after reset)."""
        if self._current is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before using the task")
        return self._current

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        """The successful tool calls of this episode, in order."""
        return tuple(getattr(self, "_calls", ()))

    def task_list(self) -> Sequence[Task]:
        """``load_tasks()``, loaded once."""
        if self._task_list is None:
            tasks = list(self.load_tasks())
            if not tasks:
                raise ValueError(f"{type(self).__name__}.load_tasks() returned no tasks")
            self._task_list = tasks
        return self._task_list

    def system_prompt(self) -> str:
        """Instructions, every tool's signature and docstring, and the call format."""
        intro = self.instructions or (inspect.getdoc(type(self)) or "").split("\n\n")[0]
        specs = self.tools()
        example = next(iter(specs.values())).example()
        return (
            f"{intro.strip()}\n\nTools:\n"
            + "\n".join(spec.render() for spec in specs.values())
            + "\n\nCall one tool per turn with a JSON object inside <tool_call></tool_call>, e.g.\n"
            f"{format_tool_call(example)}\n"
            "Give your final answer as <answer>your answer</answer>; this ends the episode."
        )

    # -- TextEnv ----------------------------------------------------------------------------------
    def _reset(self, seed: int | None, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        tasks = self.task_list()
        if "task_id" in options:
            by_id = {t.id: t for t in tasks}
            if options["task_id"] not in by_id:
                known = ", ".join(t.id for t in tasks[:5])
                raise ValueError(
                    f"{type(self).__name__}: no task {options['task_id']!r}; "
                    f"task ids look like {known}, ..."
                )
            self._current = by_id[options["task_id"]]
        else:
            self._current = tasks[int(self.np_random.integers(len(tasks)))]
        self._calls, self._answered, self._runs = [], False, 0
        info = {
            TASK: self._current.prompt,
            TASK_ID: self._current.id,
            SYSTEM_PROMPT: self.system_prompt(),
            REPLY_GRAMMAR: self.reply_grammar(),
            TOOL_CALL: None,
            NUM_TOOL_CALLS: 0,
            STATE_KEY: self._current_state_key(),
        }
        return self.start_task(self._current), info

    def _step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        info: dict[str, Any] = {TOOL_CALL: None}
        try:
            call = parse_tool_call(action)
            info[TOOL_CALL] = {"name": call.name, "arguments": dict(call.arguments)}
            spec = self.tools().get(call.name)
            if spec is None:
                raise ToolCallError(
                    f"Unknown tool {short_repr(call.name)}. Available tools: {', '.join(self.tools())}."
                )
            arguments = spec.check(call.arguments)
            if call.name == ANSWER and not arguments["text"].strip():
                raise ToolCallError("The answer is empty: write it inside <answer>...</answer>.")
        except ToolCallError as exc:
            return str(exc), 0.0, False, False, self._info(info, invalid=True)
        if call.name == ANSWER:
            grade = self.grade(self.task, arguments["text"])
            self._answered = True
            info.update(grade.info)
            info[WON] = bool(grade.won)
            obs = grade.message or "Answer received."
            return obs, float(grade.reward), True, False, self._info(info)
        return self._run(spec, call, arguments, info)

    def _run(
        self, spec: ToolSpec, call: ToolCall, arguments: dict[str, Any], info: dict[str, Any]
    ) -> tuple[str, float, bool, bool, dict[str, Any]]:
        timeout = spec.timeout if spec.timeout is not None else self.tool_timeout
        bound = spec.fn.__get__(self, type(self))
        self._runs += 1
        try:
            result = run_with_timeout(bound, arguments, timeout)
        except TimeoutError:
            obs = f"Error: {spec.name} timed out after {timeout:g} s."
            return obs, 0.0, False, False, self._info(info, invalid=True)
        except Exception as exc:  # noqa: BLE001 - a failing tool is an observation
            obs = f"Error: {spec.name} failed: {type(exc).__name__}: {exc}"[: self.max_result_chars]
            return obs, 0.0, False, False, self._info(info, invalid=True)
        self._calls.append(ToolCall(call.name, arguments))
        if isinstance(result, ToolResult):
            info.update(result.info)
            result = result.text
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        if len(text) > self.max_result_chars:
            cut = len(text) - self.max_result_chars
            text = text[: self.max_result_chars] + f"\n[... {cut} more characters cut]"
        return text, 0.0, False, False, self._info(info)

    def _info(self, info: dict[str, Any], *, invalid: bool = False) -> dict[str, Any]:
        """``info`` with the invalid flag and the current state key."""
        return {
            **info,
            INVALID: invalid,
            NUM_TOOL_CALLS: self._runs,
            STATE_KEY: self._current_state_key(),
            REPLY_GRAMMAR: self.reply_grammar(),
        }

    def _current_state_key(self) -> str:
        if self._current is None:
            return ""
        key = "|".join([self._current.id, *(c.key() for c in self._calls)])
        return key + ("|<answered>" if self._answered else "")


__all__ = [
    "ANSWER",
    "NUM_TOOL_CALLS",
    "TOOL_CALL",
    "Grade",
    "Task",
    "ToolCall",
    "ToolCallError",
    "ToolEnv",
    "ToolResult",
    "ToolSpec",
    "exact_match",
    "f1_score",
    "format_answer",
    "format_tool_call",
    "normalize_answer",
    "parse_tool_call",
    "run_with_timeout",
    "tool",
]
