"""Declaring tools and the tool-call text format (the half of :mod:`agentgym.tools` without env).

- ``@tool`` marks a method as a tool; :class:`ToolSpec` reads its typed signature and docstring,
  renders them for the system prompt and checks JSON arguments against them.
- The format: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` or
  ``<answer>...</answer>``; :func:`parse_tool_call` reads the first one of a reply,
  :func:`format_tool_call` and :func:`format_answer` write them.
- :func:`reply_grammar` states the format as a Lark grammar for constrained decoding: one call
  whose name is a tool and whose arguments fit its types (JSON written the way
  :func:`format_tool_call` writes it), or an answer.

Everything here is re-exported by :mod:`agentgym.tools`; import it from there.
"""

from __future__ import annotations

import inspect
import json
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

ANSWER = "answer"
"""Name of the built-in final-answer tool (``<answer>x</answer>`` is a call of it)."""
TOOL_MARK = "__agentgym_tool__"
"""Attribute ``@tool`` sets on a function (its options); ToolEnv collects methods that have it."""
_TAG = re.compile(r"<(tool_call|answer)>", re.IGNORECASE)


class ToolCallError(ValueError):
    """A reply that holds no valid tool call; its message is shown to the model."""


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: a tool name and its keyword arguments."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """Canonical text of the call (arguments as sorted compact JSON)."""
        args = json.dumps(dict(self.arguments), sort_keys=True, separators=(",", ":"))
        return f"{self.name}{args}"


@dataclass(frozen=True)
class ToolResult:
    """What a tool may return instead of plain data: the observation text plus info entries."""

    text: str
    info: Mapping[str, Any] = field(default_factory=dict)
    """Merged into the step's info (e.g. the ids of retrieved passages)."""


# -- declaring tools --------------------------------------------------------------------------
def tool(
    fn: Callable[..., Any] | None = None, *, timeout: float | None = None, name: str | None = None
) -> Any:
    """Mark a ToolEnv method as a tool: ``@tool`` or ``@tool(timeout=2.0, name="lookup")``.

    ``timeout`` (seconds) overrides the env's ``tool_timeout``; ``name`` the method name.
    """

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        setattr(f, TOOL_MARK, {"timeout": timeout, "name": name or f.__name__})
        return f

    return mark if fn is None else mark(fn)


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _matches(value: Any, annotation: Any) -> bool:
    """Whether a JSON-decoded ``value`` fits ``annotation`` (ints are accepted as floats)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is Literal:
        return value in args
    if origin in (list, tuple, Sequence):
        return isinstance(value, list) and all(_matches(v, args[0]) for v in value if args)
    if origin in (dict, Mapping):
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is type(None):
        return value is None
    return isinstance(annotation, type) and isinstance(value, annotation)


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the env knows it: name, function, typed parameters, docstring, timeout."""

    name: str
    fn: Callable[..., Any]
    params: tuple[inspect.Parameter, ...]
    hints: Mapping[str, Any]
    doc: str
    timeout: float | None = None

    @classmethod
    def from_function(cls, fn: Callable[..., Any], *, skip_self: bool = True) -> ToolSpec:
        """Read a (possibly unbound) method's signature; refuse untyped or undocumented tools."""
        options = getattr(fn, TOOL_MARK, {})
        name = options.get("name") or fn.__name__
        params = list(inspect.signature(fn).parameters.values())[1 if skip_self else 0 :]
        doc = inspect.getdoc(fn) or ""
        if not doc:
            raise TypeError(f"Tool {name!r} needs a docstring: it is shown to the model.")
        hints = get_type_hints(fn)
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise TypeError(f"Tool {name!r}: parameter {p.name!r} must be a named parameter.")
            if p.name not in hints:
                raise TypeError(f"Tool {name!r}: parameter {p.name!r} needs a type annotation.")
        return cls(name, fn, tuple(params), hints, doc, options.get("timeout"))

    def signature(self) -> str:
        """``name(a: int, b: str = "x") -> str`` as shown to the model (defaults as JSON)."""
        parts = []
        for p in self.params:
            text = f"{p.name}: {_type_name(self.hints[p.name])}"
            if p.default is not p.empty:
                text += f" = {json.dumps(p.default)}"
            parts.append(text)
        ret = self.hints.get("return", type(None))
        ret = str if ret is ToolResult else ret  # the model sees its text
        shown = "" if ret is type(None) else f" -> {_type_name(ret)}"
        return f"{self.name}({', '.join(parts)}){shown}"

    def render(self) -> str:
        """The signature, then the docstring indented under it."""
        doc = "\n".join(f"    {line}".rstrip() for line in self.doc.split("\n"))
        return f"{self.signature()}\n{doc}"

    def check(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments if they fit the signature; else raise ToolCallError saying why."""
        names = {p.name for p in self.params}
        unknown = sorted(set(arguments) - names)
        missing = [p.name for p in self.params if p.default is p.empty and p.name not in arguments]
        problems = [f"unknown argument {n!r}" for n in unknown]
        problems += [f"missing argument {n!r}" for n in missing]
        for p in self.params:
            if p.name in arguments and not _matches(arguments[p.name], self.hints[p.name]):
                want, got = _type_name(self.hints[p.name]), type(arguments[p.name]).__name__
                problems.append(
                    f"{p.name} must be {want}, got {got} {short_repr(arguments[p.name])}"
                )
        if problems:
            raise ToolCallError(
                f"Invalid arguments for {self.name}: {'; '.join(problems)}. "
                f"Signature: {self.signature()}."
            )
        return dict(arguments)

    def example(self) -> ToolCall:
        """A call with placeholder arguments, for the format example of the system prompt."""
        fill = {str: "...", int: 1, float: 1.0, bool: True}
        args = {
            p.name: p.default if p.default is not p.empty else fill.get(self.hints[p.name], "...")
            for p in self.params
        }
        return ToolCall(self.name, args)


# -- the format as a grammar ------------------------------------------------------------------
def json_schema(annotation: Any) -> dict[str, Any]:
    """JSON Schema of the values :func:`_matches` accepts for ``annotation``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is Any:
        return {}
    if origin in (Union, types.UnionType):
        return {"anyOf": [json_schema(a) for a in args]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, Sequence):
        return {"type": "array", **({"items": json_schema(args[0])} if args else {})}
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return {"type": "object"}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array"}
    if annotation is type(None):
        return {"type": "null"}
    if annotation in simple:
        return {"type": simple[annotation]}
    return {}


def call_schema(spec: ToolSpec) -> dict[str, Any]:
    """JSON Schema of ``{"name": spec.name, "arguments": {...}}`` for one tool."""
    arguments = {
        "type": "object",
        "properties": {p.name: json_schema(spec.hints[p.name]) for p in spec.params},
        "required": [p.name for p in spec.params if p.default is p.empty],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"name": {"const": spec.name}, "arguments": arguments},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def reply_grammar(specs: Sequence[ToolSpec]) -> str:
    """Lark grammar (llguidance) of a well-formed reply: one tool call or one answer.

    The call's JSON has ``name`` then ``arguments``, separators ``", "`` and ``": "`` (as
    :func:`format_tool_call` writes it); strings are free text; the answer is any text without
    ``<``. Nothing may come before or after the tag.
    """
    schema = {
        "anyOf": [call_schema(s) for s in specs],
        "x-guidance": {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "},
    }
    rules = [
        "start: call | answer" if specs else "start: answer",
        'answer: "<answer>" ANSWER_TEXT "</answer>"',
        "ANSWER_TEXT: /[^<]+/",
    ]
    if specs:
        rules.append('call: "<tool_call>" call_json "</tool_call>"')
        rules.append(f"call_json: %json {json.dumps(schema)}")
    return "\n".join(rules) + "\n"


# -- the text format --------------------------------------------------------------------------
def format_tool_call(call: ToolCall | str, /, **arguments: Any) -> str:
    """``<tool_call>{...}</tool_call>`` for a ToolCall, or for a name and keyword arguments."""
    if isinstance(call, ToolCall):
        call, arguments = call.name, dict(call.arguments)
    body = json.dumps({"name": call, "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>{body}</tool_call>"


def format_answer(text: str) -> str:
    """``<answer>text</answer>``."""
    return f"<answer>{text}</answer>"


def short_repr(value: Any, limit: int = 40) -> str:
    """``repr(value)`` with unprintable characters as ``?``, cut to ``limit`` characters."""
    text = "".join(ch if ch.isprintable() else "?" for ch in repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_tool_call(text: str) -> ToolCall:
    """The first tool call or answer in ``text``; raise ToolCallError (model-readable) if none.

    A missing closing tag is tolerated (a stop string may have cut it); JSON may sit inside a
    Markdown code fence. An answer comes back as ``ToolCall("answer", {"text": ...})``.
    """
    m = _TAG.search(text)
    if m is None:
        raise ToolCallError(
            "No tool call or answer found. Reply with one tool call, "
            '<tool_call>{"name": "<tool>", "arguments": {...}}</tool_call>, '
            "or with your final answer, <answer>...</answer>."
        )
    kind = m.group(1).lower()
    rest = text[m.end() :]
    end = rest.lower().find(f"</{kind}>")
    body = (rest if end < 0 else rest[:end]).strip()
    if kind == ANSWER:
        return ToolCall(ANSWER, {"text": body})
    body = re.sub(r"^```(?:json)?\s*|\s*```$", "", body)
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ToolCallError(
            f"Invalid tool call: the JSON could not be parsed ({exc.msg} at character {exc.pos}). "
            'Expected <tool_call>{"name": "<tool>", "arguments": {...}}</tool_call>.'
        ) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        raise ToolCallError('Invalid tool call: expected a JSON object with a string "name".')
    arguments = obj.get("arguments", {})
    if not isinstance(arguments, dict):
        raise ToolCallError('Invalid tool call: "arguments" must be a JSON object.')
    return ToolCall(obj["name"], arguments)


__all__ = [
    "ANSWER",
    "ToolCall",
    "ToolCallError",
    "ToolResult",
    "ToolSpec",
    "format_answer",
    "format_tool_call",
    "parse_tool_call",
    "reply_grammar",
    "tool",
]
