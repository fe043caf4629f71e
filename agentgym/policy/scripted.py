"""Scripted policies for tests and baselines: random, oracle and fixed actions.

They answer each conversation with one action as :class:`Completion` text and no token data.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from agentgym.core import ADMISSIBLE
from agentgym.hints import did_you_mean
from agentgym.policy.base import Completion, Conversation, Policy, SamplingParams

FALLBACK_ACTION = "look"


class RandomPolicy:
    """Uniform choice over ``conversation.info["admissible_actions"]``.

    Each episode (conversation key) draws from its own generator seeded with ``(seed, key)``, so
    an episode's actions do not depend on which other episodes share the batch, and the same
    seed replays the same actions. With ``seed=None`` the policy uses ``sampling.seed`` and, if
    that is None too, fresh entropy. When the env lists no admissible actions, the choice is
    uniform over ``fallback``.
    """

    def __init__(self, seed: int | None = 0, *, fallback: Sequence[str] = (FALLBACK_ACTION,)):
        if not fallback:
            raise ValueError("RandomPolicy needs at least one fallback action")
        self.seed = seed
        self.fallback = tuple(fallback)
        self._rngs: dict[str, random.Random] = {}

    def _rng(self, key: str, sampling: SamplingParams) -> random.Random:
        if key not in self._rngs:
            seed = self.seed if self.seed is not None else sampling.seed
            self._rngs[key] = random.Random(None if seed is None else f"{seed}:{key}")
        return self._rngs[key]

    def generate(
        self, conversations: Sequence[Conversation], sampling: SamplingParams
    ) -> list[Completion]:
        out = []
        for conv in conversations:
            choices = conv.info.get(ADMISSIBLE) or self.fallback
            out.append(Completion(text=self._rng(conv.key, sampling).choice(list(choices))))
        return out

    def end_episodes(self, keys: Sequence[str]) -> None:
        """Forget the generators of finished episodes (a reused key starts afresh)."""
        for key in keys:
            self._rngs.pop(key, None)


class OraclePolicy:
    """Plays ``conversation.env.unwrapped.oracle_action()``: a shortest solution.

    Needs the privileged ``conversation.env`` that :func:`agentgym.rollout.collect` fills in.
    Where the oracle knows no action (it returns None), plays ``fallback``.
    """

    def __init__(self, *, fallback: str = FALLBACK_ACTION):
        self.fallback = fallback

    def generate(
        self, conversations: Sequence[Conversation], sampling: SamplingParams
    ) -> list[Completion]:
        return [Completion(text=self._action(conv)) for conv in conversations]

    def _action(self, conv: Conversation) -> str:
        if conv.env is None:
            raise ValueError(
                f"OraclePolicy needs conversation.env (episode {conv.key!r} has none); "
                "rollout.collect sets it, other callers must pass the environment."
            )
        env = conv.env.unwrapped
        try:
            action = env.oracle_action()  # type: ignore[attr-defined]
        except (AttributeError, NotImplementedError) as exc:
            raise TypeError(
                f"OraclePolicy: environment {type(env).__name__} has no oracle_action() "
                f"({exc}); use the random or fixed policy for it."
            ) from exc
        return self.fallback if action is None else action

    def end_episodes(self, keys: Sequence[str]) -> None:
        """Nothing to release: the oracle keeps no per-episode state."""


class FixedPolicy:
    """Plays ``actions`` in order, separately for each episode (conversation key).

    After the last action it repeats the last one, or starts over when ``cycle=True``.
    """

    def __init__(self, actions: Sequence[str], *, cycle: bool = False):
        if isinstance(actions, str) or not actions:
            raise ValueError("FixedPolicy needs a non-empty sequence of actions (not one string)")
        self.actions = tuple(actions)
        self.cycle = cycle
        self._next: dict[str, int] = {}

    def generate(
        self, conversations: Sequence[Conversation], sampling: SamplingParams
    ) -> list[Completion]:
        out = []
        for conv in conversations:
            i = self._next.get(conv.key, 0)
            self._next[conv.key] = i + 1
            index = i % len(self.actions) if self.cycle else min(i, len(self.actions) - 1)
            out.append(Completion(text=self.actions[index]))
        return out

    def end_episodes(self, keys: Sequence[str]) -> None:
        """Forget the positions of finished episodes (a reused key starts from the first)."""
        for key in keys:
            self._next.pop(key, None)


SCRIPTED = {"random": RandomPolicy, "oracle": OraclePolicy, "fixed": FixedPolicy}


def make_scripted(name: str, **kwargs: Any) -> Policy:
    """Build the scripted policy ``name`` ("random", "oracle" or "fixed") with ``kwargs``."""
    try:
        cls = SCRIPTED[name]
    except KeyError:
        hint = did_you_mean(name, SCRIPTED)
        raise ValueError(
            f"Unknown scripted policy {name!r}.{hint} Choose one of: {', '.join(SCRIPTED)}."
        ) from None
    return cls(**kwargs)


__all__ = ["FixedPolicy", "OraclePolicy", "RandomPolicy", "make_scripted"]
