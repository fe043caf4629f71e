"""The Policy protocol every backend implements (scripted, hf, vllm, openai).

A rollout gathers the prompts of all live episodes into one ``generate`` call per turn:
``policy.generate(conversations, sampling) -> list[Completion]``, one completion per
conversation, in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import gymnasium as gym


@dataclass(frozen=True)
class SamplingParams:
    """How to sample a completion."""

    temperature: float = 1.0
    """Softmax temperature; 0 means greedy."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    max_new_tokens: int = 64
    """Upper bound on generated tokens per turn."""
    stop: tuple[str, ...] = ()
    """Generation stops after any of these strings."""
    seed: int | None = None
    """Seed for reproducible sampling (scripted policies use it too)."""


@dataclass
class Conversation:
    """The state of one live episode as a policy sees it.

    ``messages`` is the chat so far (``{"role": ..., "content": ...}`` dicts: system, then
    alternating user observations and assistant outputs). ``info`` is the environment's latest
    info dict (admissible actions among others). ``env`` gives privileged access to the
    environment for scripted policies (the oracle); learned policies must not use it. ``key``
    identifies the episode across turns (LLM backends key their KV caches on it).
    """

    key: str
    messages: list[dict[str, str]]
    info: Mapping[str, Any] = field(default_factory=dict)
    env: gym.Env | None = None


@dataclass(frozen=True)
class Completion:
    """One generated reply: its text and, for LLM policies, token ids and logprobs."""

    text: str
    token_ids: tuple[int, ...] = ()
    """Response token ids as sampled."""
    logprobs: tuple[float, ...] = ()
    """Log-probability of each response token under the sampling policy."""
    prompt_ids: tuple[int, ...] = ()
    """Prompt tokens fed for this turn (the increment when the backend reuses a KV cache)."""
    constraint: str = ""
    """Spec of the constraint the reply was sampled under (:mod:`agentgym.constraint`); ``""``
    for free generation. A constrained reply is sent to the environment verbatim."""
    new_sequence: bool = False
    """``prompt_ids`` are a whole prompt starting a new token sequence, not an increment: the
    first turn, a stateless or window-mode turn, or a conversation whose render no longer
    extends what was fed (a reset). Earlier turns' tokens were not in the model's context."""


@runtime_checkable
class Policy(Protocol):
    """Anything that turns conversations into completions."""

    def generate(
        self, conversations: Sequence[Conversation], sampling: SamplingParams
    ) -> list[Completion]: ...

    def end_episodes(self, keys: Sequence[str]) -> None:
        """Release per-episode state (e.g. KV caches) of finished episodes."""
        ...


def check_request(conversations: Sequence[Conversation], sampling: SamplingParams) -> list[str]:
    """Validate a ``generate`` request; return the conversation keys (unique, in order)."""
    if sampling.max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {sampling.max_new_tokens}")
    keys = [c.key for c in conversations]
    if len(set(keys)) != len(keys):
        raise ValueError("conversation keys must be unique within a generate call")
    return keys
