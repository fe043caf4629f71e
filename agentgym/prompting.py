"""How an LLM agent is prompted and how its action is read from its reply.

Two action formats:

- ``plain``: the first non-empty line of the reply, stripped of quotes, backticks and a
  trailing period. Generation should stop at a newline.
- ``tag``: the text inside the first ``<action>...</action>``; anything before it (reasoning) is
  ignored. Generation should stop at ``</action>``.

A reply with no action in it parses to None; the rollout sends it on to the environment marked
invalid, so it costs a turn but never crashes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agentgym.core import TASK

_TAG = re.compile(r"<action>\s*(.*?)\s*</action>", re.DOTALL | re.IGNORECASE)
_STRIP = " \t\"'`*"


def parse_plain(text: str) -> str | None:
    for line in text.splitlines():
        line = line.strip().strip(_STRIP).rstrip(".").strip(_STRIP)
        if line:
            return line
    return None


def parse_tag(text: str) -> str | None:
    # the stop string may have cut the closing tag off
    m = _TAG.search(text if "</action>" in text.lower() else text + "</action>")
    if not m:
        return None
    return parse_plain(m.group(1))


@dataclass(frozen=True)
class ActionFormat:
    """An action format: its parser, the instruction it adds, and where generation stops."""

    name: str
    parse: Callable[[str], str | None]
    instruction: str
    stop: tuple[str, ...]

    def system_prompt(self, info: Mapping[str, Any]) -> str:
        task = str(info.get(TASK, "")).strip()
        head = "You are an agent playing a text game."
        return (
            f"{head} Your task: {task}\n{self.instruction}"
            if task
            else f"{head}\n{self.instruction}"
        )


FORMATS = {
    "plain": ActionFormat(
        "plain",
        parse_plain,
        "Reply with exactly one action from the list of available actions, and nothing else.",
        ("\n",),
    ),
    "tag": ActionFormat(
        "tag",
        parse_tag,
        "Think briefly if you need to, then give exactly one action from the list of available "
        "actions inside <action></action>, e.g. <action>look</action>.",
        ("</action>",),
    ),
}


def action_format(name: str) -> ActionFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise KeyError(
            f"Unknown action format {name!r}; choose one of {sorted(FORMATS)}."
        ) from None
