"""Token prompts for engines fed token ids: per-conversation bookkeeping, hf.py's convention.

Each turn renders the chat template over the conversation. In full-history mode the policy keeps, per
``Conversation.key``, the token ids fed and sampled so far (never re-tokenized) and feeds the
engine ``those ids + the new prompt increment`` as a token prompt; vLLM's prefix cache makes the
repeated history nearly free. ``Completion.prompt_ids`` is the increment, exactly as in
``agentgym.policy.hf``, so ``prompt_ids_1 + token_ids_1 + prompt_ids_2 + ...`` is the sequence the
model saw and the trainer tensorizes vLLM rollouts like hf ones. How the increment is found
(``Completion.metadata["alignment"]``):

- ``"new"``: first turn (or window mode): the whole rendered prompt.
- ``"extend"``: the render extends the text fed so far; the increment is the rest, encoded.
- ``"closing"``: it does not (a stop string cut the reply inside a token, or the caller edited
  the reply): the sampled tokens are kept, closed with the template's end-of-reply marker, and
  followed by the messages after the last reply rendered on their own.
- ``"reset"``: neither works (the history itself changed): the re-rendered full prompt is fed
  and reported as ``prompt_ids`` with ``Completion.new_sequence`` set (as on a "new" turn), so
  the trainer starts a new sequence there instead of appending it to the earlier turns.

Alignment caveat: keeping the sampled ids means the model may see a token sequence that
re-tokenizing the rendered history would not produce (BPE merges across a reply's boundary,
or a reply sampled as non-canonical tokens). That is what makes training exact (the logprobs
belong to those very tokens) but the prompt differs from a fresh render;
``metadata["canonical"]`` says whether encoding the rendered prompt gives the fed ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HISTORY_MODES = ("full", "window")
_PROBE = "\x00agentgym-probe\x00"
_BASE_CHAT = [{"role": "user", "content": "u"}, {"role": "assistant", "content": _PROBE}]


@dataclass(frozen=True)
class PromptPlan:
    """What to feed for one conversation's turn."""

    key: str
    rendered: str
    """The chat template's render of the conversation, generation prompt included."""
    base_ids: tuple[int, ...]
    """Ids fed and sampled in earlier turns, as they were (empty on a new sequence)."""
    prompt_ids: tuple[int, ...]
    """New prompt tokens this turn (``Completion.prompt_ids``)."""
    alignment: str
    canonical: bool
    """Whether encoding ``rendered`` gives exactly ``input_ids``."""

    @property
    def input_ids(self) -> tuple[int, ...]:
        """The whole token prompt given to the engine."""
        return self.base_ids + self.prompt_ids

    @property
    def new_sequence(self) -> bool:
        """``prompt_ids`` are the whole prompt ("new" or "reset"): ``Completion.new_sequence``."""
        return not self.base_ids


@dataclass
class _Episode:
    ids: tuple[int, ...]
    """Every token fed or sampled so far."""
    text: str
    """The text those ids stand for: last render + decoded response (special tokens kept)."""
    prompt_text: str
    """Last turn's render; the next render must extend it, or the history changed."""
    ended_eos: bool


class PromptTracker:
    """Per-conversation token bookkeeping, hf.py's convention, for engines fed token ids.

    Args:
        tokenizer: a HF tokenizer with a chat template.
        history: ``"full"`` (keep state across turns, report increments) or ``"window"``
            (every turn is a new sequence).
    """

    def __init__(self, tokenizer: Any, *, history: str = "full") -> None:
        if history not in HISTORY_MODES:
            raise ValueError(f"history={history!r}; expected one of {HISTORY_MODES}")
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("the tokenizer has no chat_template; set tokenizer.chat_template")
        self.tokenizer = tokenizer
        self.history = history
        self.stats = {"extend": 0, "closing": 0, "reset": 0, "non_canonical": 0}
        """How often each non-trivial alignment happened, and non-canonical prompts fed."""
        self._episodes: dict[str, _Episode] = {}

    def render(self, messages: Sequence[Mapping[str, str]], generation_prompt: bool = True) -> str:
        """The chat template's text for ``messages``."""
        return self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=generation_prompt
        )

    def encode(self, text: str) -> tuple[int, ...]:
        """Token ids of ``text`` (no special tokens added)."""
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, special tokens kept, no clean-up (so it concatenates exactly)."""
        return self.tokenizer.decode(
            list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def prepare(self, key: str, messages: Sequence[Mapping[str, str]]) -> PromptPlan:
        """Plan this turn's prompt for conversation ``key`` (does not change the state)."""
        rendered = self.render(messages)
        ep = self._episodes.get(key) if self.history == "full" else None
        base: tuple[int, ...] = ()
        suffix: str | None = None
        alignment = "new"
        if ep is not None:
            if rendered.startswith(ep.prompt_text):  # the history so far is unchanged
                suffix, alignment = increment(ep.text, rendered), "extend"
                if suffix is None:
                    eos = self._eos_text(ep.ended_eos)
                    suffix, alignment = closing_increment(self.render, messages, eos), "closing"
            if suffix is None:
                alignment = "reset"
            else:
                base = ep.ids
        if suffix is None:  # a new sequence: the whole render
            suffix = rendered
        prompt_ids = self.encode(suffix)
        canonical = self.encode(rendered) == base + prompt_ids if base else True
        return PromptPlan(key, rendered, base, prompt_ids, alignment, canonical)

    def record(self, plan: PromptPlan, response_ids: Sequence[int], ended_eos: bool) -> None:
        """Remember what was fed and sampled for ``plan.key`` (full-history mode only)."""
        if plan.alignment != "new":
            self.stats[plan.alignment] += 1
        self.stats["non_canonical"] += not plan.canonical
        if self.history != "full":
            return
        self._episodes[plan.key] = _Episode(
            ids=plan.input_ids + tuple(response_ids),
            text=plan.rendered + self.decode(response_ids),
            prompt_text=plan.rendered,
            ended_eos=ended_eos,
        )

    def end(self, keys: Sequence[str]) -> None:
        """Forget these conversations (unknown keys are fine)."""
        for key in keys:
            self._episodes.pop(key, None)

    @property
    def keys(self) -> list[str]:
        """Keys of the conversations whose state is kept."""
        return list(self._episodes)

    def _eos_text(self, ended_eos: bool) -> str:
        return (self.tokenizer.eos_token or "") if ended_eos else ""


def increment(fed_text: str, rendered: str) -> str | None:
    """The text ``rendered`` adds after ``fed_text``, or None when it does not extend it."""
    return rendered[len(fed_text) :] if rendered.startswith(fed_text) else None


def closing_increment(
    render: Callable[..., str], messages: Sequence[Mapping[str, str]], fed_eos: str = ""
) -> str | None:
    """Close the last reply with the template's own marker, then render what came after it.

    ``render(messages, generation_prompt)`` is the chat template. The marker is what the
    template writes after an assistant reply (found with a probe chat); ``fed_eos`` (the eos
    text, when the reply already ended with it) is not repeated. None when there is no assistant
    reply or the template does not render the probe chat as a prefix.
    """
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    if last < 0:
        return None
    try:
        head = render(_BASE_CHAT, False)
        closing = head[head.index(_PROBE) + len(_PROBE) :]
        full = render(_BASE_CHAT + [dict(m) for m in messages[last + 1 :]], True)
    except Exception:  # a template that will not render the probe chat
        return None
    if not full.startswith(head):
        return None
    if fed_eos and closing.startswith(fed_eos):
        closing = closing[len(fed_eos) :]
    return closing + full[len(head) :]
