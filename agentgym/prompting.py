"""How an LLM agent is prompted and how its action is read from its reply.

Three action formats:

- ``plain``: the first non-empty line of the reply, stripped of quotes, backticks and a
  trailing period. Generation should stop at a newline.
- ``tag``: the text inside the first ``<action>...</action>``; anything before it (reasoning) is
  ignored. Generation should stop at ``</action>``.
- ``tool``: the whole reply, stripped (tool environments parse ``<tool_call>`` / ``<answer>``
  themselves, see :mod:`agentgym.tools`). Generation should stop at ``</tool_call>`` or
  ``</answer>``.

A reply with no action in it parses to None; the rollout sends it on to the environment marked
invalid, so it costs a turn but never crashes.

An environment may write its own system prompt into the reset info under
:data:`SYSTEM_PROMPT` (tool environments do: it lists their tool signatures); every format's
``system_prompt`` then returns it unchanged instead of the generic text-game prompt.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agentgym.core import ADMISSIBLE, TASK

SYSTEM_PROMPT = "system_prompt"
"""Reset-info key: a system prompt written by the environment, used as is when present."""

_TAG = re.compile(r"<action>\s*(.*?)\s*</action>", re.DOTALL | re.IGNORECASE)
_STRIP = " \t\"'`*"


_BULLET = re.compile(r"^(?:[-*•>]|\d+[.)]|action:|answer:)\s*", re.IGNORECASE)


def parse_plain(text: str) -> str | None:
    """The first non-empty line, without list markers ("- ", "2. "), quotes or a final period."""
    for line in text.splitlines():
        line = _BULLET.sub("", line.strip()).strip(_STRIP).rstrip(".").strip(_STRIP)
        if line:
            return line
    return None


def parse_tag(text: str) -> str | None:
    # the stop string may have cut the closing tag off
    m = _TAG.search(text if "</action>" in text.lower() else text + "</action>")
    if not m:
        return None
    return parse_plain(m.group(1))


def parse_whole(text: str) -> str | None:
    """The whole reply, stripped (None if empty): for envs that parse the reply themselves."""
    return text.strip() or None


@dataclass(frozen=True)
class ActionFormat:
    """An action format: its parser, the prompt text around observations, where generation stops.

    Small chat models follow an instruction best when it closes the user message, so the valid
    actions are listed after the observation as a bulleted list, then ``reply_hint``.
    """

    name: str
    parse: Callable[[str], str | None]
    instruction: str
    """Added to the system message."""
    reply_hint: str
    """Closes each user message that lists valid actions."""
    stop: tuple[str, ...]
    list_actions: bool = True
    """List the valid actions after each observation. Under constrained decoding the list is
    optional (the constraint already holds it); leaving it out shortens every prompt."""
    list_style: str = "bullets"
    """``bullets``: a bulleted list under "Choose one of these actions:", then ``reply_hint``;
    ``inline``: one line ``Actions: a | b | c`` (about half the tokens, no hint)."""

    def system_prompt(self, info: Mapping[str, Any]) -> str:
        own = info.get(SYSTEM_PROMPT)  # an env's own prompt (tool envs list their tools in it)
        if isinstance(own, str) and own.strip():
            return own
        task = str(info.get(TASK, "")).strip()
        head = "You are an agent in a text environment."
        return f"{head} Goal: {task}\n{self.instruction}" if task else f"{head}\n{self.instruction}"

    def observation(self, obs: str, info: Mapping[str, Any]) -> str:
        """The user message of a turn: the observation, then the valid actions when known."""
        admissible = info.get(ADMISSIBLE)
        if not admissible or not self.list_actions:
            return obs
        if self.list_style == "inline":
            return f"{obs}\n\nActions: {' | '.join(admissible)}"
        listed = "\n".join(f"- {a}" for a in admissible)
        return f"{obs}\n\nChoose one of these actions:\n{listed}\n\n{self.reply_hint}"


FORMATS = {
    "plain": ActionFormat(
        "plain",
        parse_plain,
        "Each turn, reply with exactly one action and nothing else.",
        "Answer with the action only.",
        ("\n",),
    ),
    "tag": ActionFormat(
        "tag",
        parse_tag,
        "Each turn, think briefly if you need to, then give exactly one action inside "
        "<action></action>, e.g. <action>look</action>.",
        "Answer with <action>the action</action>.",
        ("</action>",),
    ),
    "tool": ActionFormat(
        "tool",
        parse_whole,
        "Each turn, call one tool inside <tool_call></tool_call> or give your final answer "
        "inside <answer></answer>.",
        "Reply with one <tool_call>...</tool_call> or with <answer>...</answer>.",
        ("</tool_call>", "</answer>"),
    ),
}


LIST_STYLES = ("bullets", "inline")


def action_format(
    name: str | ActionFormat, *, list_actions: bool = True, list_style: str = "bullets"
) -> ActionFormat:
    """The registered format ``name`` (an ActionFormat passes through), listing valid actions
    after each observation (in ``list_style``, one of :data:`LIST_STYLES`) unless
    ``list_actions`` is False."""
    if isinstance(name, ActionFormat):
        return name
    if list_style not in LIST_STYLES:
        raise ValueError(f"Unknown list style {list_style!r}; choose one of {list(LIST_STYLES)}.")
    try:
        fmt = FORMATS[name]
    except KeyError:
        raise KeyError(
            f"Unknown action format {name!r}; choose one of {sorted(FORMATS)}."
        ) from None
    if list_actions and list_style == fmt.list_style:
        return fmt
    return dataclasses.replace(fmt, list_actions=list_actions, list_style=list_style)
