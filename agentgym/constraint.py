"""Constrained decoding: which tokens a reply may continue with, for sampling and for training.

An environment states the constraint on its next reply in ``info`` (see :mod:`agentgym.core`):

- ``admissible_actions`` (list[str]): the reply is one of the actions followed by the end token.
  The allowed tokens come from a trie over the tokenized actions (``tokens(a) + [eos]``), so
  each action has exactly one token path and π(a) is the product of the per-step probabilities
  along it.
- ``reply_grammar`` (str, Lark syntax as llguidance reads it): the reply is a sentence of the
  grammar, then the end token. Tool environments build it from their tools' signatures
  (:meth:`agentgym.tools.ToolEnv.reply_grammar`): one well-formed ``<tool_call>{json}</tool_call>``
  whose name is a tool and whose arguments fit its types, or an ``<answer>…</answer>``; text
  stays free inside strings. The token automaton is llguidance's.

Sampling (``agentgym.policy.sampling.sample_next`` with ``allowed``) draws from
``softmax(logits / T)`` renormalised over the allowed set A_t at each step:
``π(y_t | y_<t) = exp(z_t[y_t]/T) / Σ_{v ∈ A_t} exp(z_t[v]/T)``, and stores that logprob. The
turn keeps its constraint as a *spec* (a JSON string); the trainer rebuilds the same matcher from
the spec and replays it over the stored response ids (:meth:`ConstraintCompiler.replay`) to get
the same A_t, then takes the restricted log-softmax of its own forward pass. Hence log π(reply)
= Σ_t log π(y_t | y_<t), the PPO ratio and the entropy are those of the policy that acted; a
step with a single allowed token has probability 1 and contributes no gradient.

Allowed sets travel as packed bitmasks: int32 arrays of ``ceil(V / 32)`` words, bit ``v % 32``
of word ``v // 32`` set when token ``v`` is allowed (llguidance's layout).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from agentgym.core import ADMISSIBLE, REPLY_GRAMMAR

CHOICE = "choice"
GRAMMAR = "grammar"
MAX_CACHED_TRIES = 2048
"""Tries a compiler keeps (least recently used dropped first): ALFWorld states each list their
own actions, so an unbounded cache grows by ~50 KB per new list for a whole training run."""


class ConstraintError(ValueError):
    """A reply does not fit its constraint, or a constraint cannot be built."""


def spec_from_info(info: Mapping[str, Any] | None) -> str:
    """The constraint spec (JSON) an env states in ``info``; ``""`` when it states none.

    A reply grammar wins over an admissible list (a tool env may list neither).
    """
    info = info or {}
    grammar = info.get(REPLY_GRAMMAR)
    if grammar:
        return json.dumps({"kind": GRAMMAR, "lark": str(grammar)})
    actions = [str(a) for a in info.get(ADMISSIBLE) or () if a]
    if actions:
        return json.dumps({"kind": CHOICE, "actions": list(dict.fromkeys(actions))})
    return ""


def spec_kind(spec: str) -> str:
    """``"choice"``, ``"grammar"`` or ``""`` (unconstrained)."""
    return json.loads(spec)["kind"] if spec else ""


class Matcher(Protocol):
    """Where a reply stands in its constraint."""

    def allowed(self) -> np.ndarray:
        """Packed bitmask (int32 [W]) of the tokens allowed next."""
        ...

    def advance(self, token: int) -> None:
        """Consume ``token``; raise :class:`ConstraintError` if it is not allowed."""
        ...

    def done(self) -> bool:
        """The reply is complete (nothing more may follow)."""
        ...

    def forced_tail(self) -> list[int]:
        """Tokens that must follow, up to the end, when only one completion remains; else []."""
        ...


def pack(ids: Sequence[int], words: int) -> np.ndarray:
    """Packed bitmask (int32 [words]) with the bits of ``ids`` set."""
    bits = np.zeros(words * 32, dtype=bool)
    bits[np.asarray(list(ids), dtype=np.int64)] = True
    return np.packbits(bits.reshape(words, 32), axis=1, bitorder="little").view(np.int32).ravel()


def unpack(packed: torch.Tensor, vocab: int) -> torch.Tensor:
    """Bool [..., vocab] from packed int32 [..., W] (bits past ``W * 32`` are False)."""
    shifts = torch.arange(32, dtype=torch.int32, device=packed.device)
    bits = ((packed.to(torch.int32)[..., None] >> shifts) & 1).bool()  # [..., W, 32]
    flat = bits.flatten(-2)
    if flat.shape[-1] >= vocab:
        return flat[..., :vocab]
    pad = flat.new_zeros(*flat.shape[:-1], vocab - flat.shape[-1])
    return torch.cat([flat, pad], -1)


# ------------------------------------------------------------------------------ choice (trie)


@dataclass
class _Node:
    children: dict[int, _Node] = field(default_factory=dict)
    mask: np.ndarray | None = None


class ChoiceMatcher:
    """A walk down the trie of ``tokens(action) + [eos]`` over the admissible actions."""

    def __init__(self, root: _Node, words: int) -> None:
        self._node = root
        self._words = words

    def allowed(self) -> np.ndarray:
        node = self._node
        if node.mask is None:
            node.mask = pack(node.children, self._words)
        return node.mask

    def advance(self, token: int) -> None:
        child = self._node.children.get(int(token))
        if child is None:
            raise ConstraintError(f"token {token} is not a continuation of any admissible action")
        self._node = child

    def done(self) -> bool:
        return not self._node.children

    def forced_tail(self) -> list[int]:
        tail, node = [], self._node
        while len(node.children) == 1:
            token, node = next(iter(node.children.items()))
            tail.append(token)
        return tail if not node.children else []


# ------------------------------------------------------------------------------ grammar (llguidance)


class GrammarMatcher:
    """llguidance's token automaton for a Lark grammar."""

    def __init__(self, matcher: Any, words: int) -> None:
        self._m = matcher
        self._words = words
        self._buf = np.zeros((1, words), dtype=np.int32)

    def allowed(self) -> np.ndarray:
        from llguidance.numpy import fill_next_token_bitmask  # noqa: PLC0415

        fill_next_token_bitmask(self._m, self._buf, 0)
        if self._m.is_error():
            raise ConstraintError(f"grammar matcher error: {self._m.get_error()}")
        return self._buf[0].copy()

    def advance(self, token: int) -> None:
        if not self._m.consume_token(int(token)):
            raise ConstraintError(
                f"token {token} does not continue the reply grammar ({self._m.get_error()})"
            )

    def done(self) -> bool:
        return bool(self._m.is_stopped())

    def forced_tail(self) -> list[int]:
        return []


# ------------------------------------------------------------------------------ compiler


class ConstraintCompiler:
    """Builds matchers from specs for one tokenizer (tries and grammars are cached).

    Args:
        tokenizer: the policy's Hugging Face tokenizer (actions are encoded without special
            tokens, as the reply follows the chat template's generation prompt).
        vocab_size: logits width of the model (at least the tokenizer's length).
    """

    def __init__(self, tokenizer: Any, vocab_size: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = max(int(vocab_size or 0), len(tokenizer))
        self.words = (self.vocab_size + 31) // 32
        self.eos_id = tokenizer.eos_token_id
        self._tries: dict[str, _Node] = {}
        self._grammars: dict[str, Any] = {}
        self._ll_tokenizer: Any = None

    def matcher(self, spec: str) -> Matcher:
        """A fresh matcher at the start of a reply constrained by ``spec``."""
        data = json.loads(spec)
        if data["kind"] == CHOICE:
            root = self._tries.pop(spec, None)  # re-inserted: the dict keeps recent use order
            if root is None:
                root = self._trie(data["actions"])
                while len(self._tries) >= MAX_CACHED_TRIES:  # drop the least recently used
                    self._tries.pop(next(iter(self._tries)))
            self._tries[spec] = root
            return ChoiceMatcher(root, self.words)
        if data["kind"] == GRAMMAR:
            return GrammarMatcher(self._grammar_matcher(data["lark"]), self.words)
        raise ConstraintError(f"unknown constraint kind {data['kind']!r}; expected choice/grammar")

    def replay(self, spec: str, response_ids: Sequence[int]) -> list[np.ndarray]:
        """The allowed bitmask before each response token, checking each token was allowed."""
        m = self.matcher(spec)
        masks = []
        for i, token in enumerate(response_ids):
            mask = m.allowed()
            word, bit = divmod(int(token), 32)
            if word >= len(mask) or not (int(mask[word]) >> bit) & 1:
                raise ConstraintError(
                    f"response token {i} (id {token}) is outside the turn's stored constraint; "
                    "the rollout and the trainer disagree (a different tokenizer or constraint?)"
                )
            masks.append(mask)
            m.advance(token)
        return masks

    def _trie(self, actions: Sequence[str]) -> _Node:
        if self.eos_id is None:
            raise ConstraintError("constrained choice needs a tokenizer with an eos token")
        root = _Node()
        for action in actions:
            node = root
            ids = self.tokenizer(action, add_special_tokens=False)["input_ids"]
            for token in [*ids, self.eos_id]:
                node = node.children.setdefault(int(token), _Node())
        return root

    def _grammar_matcher(self, lark: str) -> Any:
        try:
            import llguidance
            import llguidance.hf
        except ImportError as exc:  # pragma: no cover - llguidance is a core dependency
            raise ConstraintError(
                "grammar-constrained decoding needs llguidance: pip install llguidance"
            ) from exc
        if self._ll_tokenizer is None:
            try:
                self._ll_tokenizer = llguidance.hf.from_tokenizer(
                    self.tokenizer, n_vocab=self.vocab_size
                )
            except ValueError:  # a decoder llguidance does not read (e.g. character-level)
                wrapper = llguidance.TokenizerWrapper(_TokenBytes(self.tokenizer, self.vocab_size))
                self._ll_tokenizer = llguidance.LLTokenizer(wrapper)
        grammar = self._grammars.get(lark)
        if grammar is None:
            grammar = llguidance.LLMatcher.grammar_from_lark(lark)
            failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(
                grammar, self._ll_tokenizer
            )
            if failed:
                raise ConstraintError(f"invalid reply grammar: {'; '.join(messages)}")
            self._grammars[lark] = grammar
        return llguidance.LLMatcher(self._ll_tokenizer, grammar, log_level=0)


class _TokenBytes:
    """A tokenizer as llguidance's generic wrapper reads it: each token's bytes, decoded alone.

    Exact for tokenizers whose tokens decode independently (character- or byte-level
    vocabularies without merges that change spacing); special tokens are marked special.
    """

    def __init__(self, tokenizer: Any, vocab_size: int) -> None:
        self.eos_token_id = tokenizer.eos_token_id
        self.bos_token_id = tokenizer.bos_token_id
        special = set(tokenizer.all_special_ids)
        self.special_token_ids = sorted(special)
        self.tokens = [
            b"<special>" if i in special or i >= len(tokenizer) else tokenizer.decode([i]).encode()
            for i in range(vocab_size)
        ]
        self._tokenizer = tokenizer

    def __call__(self, text: bytes | str) -> list[int]:
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])


__all__ = [
    "CHOICE",
    "GRAMMAR",
    "REPLY_GRAMMAR",
    "ChoiceMatcher",
    "ConstraintCompiler",
    "ConstraintError",
    "GrammarMatcher",
    "Matcher",
    "pack",
    "spec_from_info",
    "spec_kind",
    "unpack",
]
