"""``HFPolicy``: a transformers causal LM behind the Policy protocol, with multi-turn KV reuse.

Each ``generate`` call decodes all given conversations together (chunks of ``max_batch``):
one forward pass per decoding step over the whole chunk, left-padded, with an attention mask
and explicit position ids. The decoding loop is our own (not ``model.generate``) so that the
KV cache can outlive a turn.

KV reuse (``history="full"``, ``reuse_cache=True``): the policy keeps, per ``Conversation.key``,
the token sequence fed so far (prompt increments + responses exactly as sampled, never
re-tokenized) and its keys/values. The next turn renders the chat template over the whole
conversation, checks that the rendered text extends the text already fed, and prefills only
the new suffix (the closing of the last reply, the new observation, the generation prompt). A
turn therefore costs the new tokens, not the whole history. If the rendered history does not
extend the fed text (e.g. a stop string was cut inside the last sampled token), the suffix is
built from the new messages alone: the template's end-of-reply marker plus the messages after
the last assistant reply rendered on their own. ``reuse_cache=False`` (or ``history="window"``)
re-renders and re-encodes the whole prompt every turn: the stateless reference.

Token bookkeeping, per conversation and turn: ``Completion.prompt_ids`` are the prompt tokens new
this turn (the whole prompt on a first, stateless or reset turn, which then sets
``Completion.new_sequence``) and ``Completion.token_ids`` the response. In full-history mode the
concatenation ``prompt_ids_1 + token_ids_1 + prompt_ids_2 + token_ids_2 + ...`` from one
``new_sequence`` turn to the next is exactly the sequence the model has seen, so the trainer can
score those turns in one forward pass.

Logprob convention: ``Completion.logprobs[t]`` is the sampled token's log-probability under
``log_softmax(logits / temperature)`` over the full vocabulary (top-p affects sampling only);
the trainer must recompute with the same temperature (``agentgym.policy.sampling.token_logprobs``).
Greedy decoding (temperature 0) reports ``log_softmax(logits)``.

Constrained decoding (``action_mode="constrained"``): a conversation whose latest info states a
constraint (``admissible_actions`` or ``reply_grammar``, see :mod:`agentgym.constraint`) samples
each token from the model's distribution renormalised over the tokens the constraint allows, and
reports that distribution's logprobs; the completion carries the constraint's spec so the trainer
can rebuild the same allowed sets. Once only one completion remains (an admissible action
whose prefix is unique), its remaining tokens have probability 1: they are appended with logprob
0 without further forward passes. A constrained choice always ends as a whole action (it is not
cut at ``max_new_tokens``). Conversations that state no constraint are generated freely.

Stopping: at an end-of-sequence token (kept in ``token_ids``/``logprobs``, left out of ``text``),
after a stop string (``text`` is cut right after the first stop string; ``token_ids`` keep the
whole last token), or at ``max_new_tokens``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from agentgym.constraint import (
    CHOICE,
    ConstraintCompiler,
    Matcher,
    spec_from_info,
    spec_kind,
    unpack,
)
from agentgym.policy import kvcache
from agentgym.policy.base import Completion, Conversation, SamplingParams, check_request
from agentgym.policy.kvcache import SeqKV
from agentgym.policy.prefix import PrefixStates
from agentgym.policy.sampling import find_stop, sample_next
from agentgym.policy.token_prompts import HISTORY_MODES, closing_increment, increment

ACTION_MODES = ("generate", "constrained")


@dataclass
class _Episode:
    """What the policy keeps of one live conversation between turns."""

    ids: list[int]
    """Every token fed or sampled so far: prompt increments and responses, in order."""
    text: str
    """The text those ids stand for (rendered prompt + decoded response, end token included)."""
    prompt_text: str
    """Last turn's rendered prompt; the next turn's render must extend it."""
    ended_eos: bool
    """Whether the last response ended with an end-of-sequence token."""
    kv: SeqKV | None
    """Keys/values of ``ids[:kv.length]`` (the last sampled token is not yet cached)."""


@dataclass
class _Row:
    """One conversation inside a decoding pass."""

    key: str
    rendered: str
    prompt_ids: list[int]
    """New prompt tokens this turn (reported as ``Completion.prompt_ids``)."""
    feed: list[int]
    """Tokens to prefill: ids sampled earlier but not cached yet, then ``prompt_ids``."""
    base_ids: list[int]
    kv: SeqKV | None
    spec: str = ""
    """Constraint spec of this reply (``""``: free generation)."""
    matcher: Matcher | None = None
    response: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str = ""
    ended_eos: bool = False
    new_kv: SeqKV | None = None

    @property
    def start(self) -> int:
        """Position of the first fed token."""
        return self.kv.length if self.kv is not None else 0


class HFPolicy:
    """A transformers causal LM as a Policy, batched, with KV caches kept across turns.

    Args:
        model: a causal LM (e.g. from ``agentgym.policy.models.load_model``); used in eval mode.
        tokenizer: its tokenizer, with a chat template.
        device: where inputs go (the model must already be there).
        max_batch: at most this many conversations per forward pass.
        history: ``"full"`` (the conversation grows turn by turn: KV reuse possible) or
            ``"window"`` (the rollout shows the last k turns: prompts are re-encoded each turn).
        reuse_cache: keep per-conversation KV caches across turns (full history only).
        action_mode: ``"generate"`` (free text) or ``"constrained"`` (replies restricted to
            the constraint the env states: admissible actions or a reply grammar; see the
            module docstring and :mod:`agentgym.constraint`).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: str | torch.device = "cpu",
        max_batch: int = 8,
        history: str = "full",
        reuse_cache: bool = True,
        action_mode: str = "generate",
    ) -> None:
        if history not in HISTORY_MODES:
            raise ValueError(f"history={history!r}; expected one of {HISTORY_MODES}")
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode={action_mode!r}; expected one of {ACTION_MODES}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("the tokenizer has no chat_template; set tokenizer.chat_template")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.max_batch = max_batch
        self.history = history
        self.reuse_cache = reuse_cache and history == "full"
        self.action_mode = action_mode
        vocab = getattr(model.config, "vocab_size", None) or len(tokenizer)
        self.constraints = ConstraintCompiler(tokenizer, vocab)
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.stats = {"prefill_tokens": 0, "decode_tokens": 0, "fallbacks": 0, "resets": 0}
        """Counters: tokens prefilled / sampled, suffix fallbacks, caches dropped as not continuing."""
        self._episodes: dict[str, _Episode] = {}
        self._seed_calls: dict[int, int] = {}
        self.prefix: PrefixStates | None = None
        """Hidden states below the trainable layers, kept for the trainer (``capture_prefix``)."""
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft
        params = inspect.signature(base.forward).parameters
        self._logits_kw = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        # transformers >= 5.2x names the cache argument `cache` (`past_key_values` is deprecated)
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    # ------------------------------------------------------------------ Policy protocol

    def generate(
        self, conversations: Sequence[Conversation], sampling: SamplingParams
    ) -> list[Completion]:
        """One completion per conversation, in order (see the module docstring)."""
        check_request(conversations, sampling)
        rows = [self._prepare(c) for c in conversations]
        if self.action_mode == "constrained":
            for row, conv in zip(rows, conversations, strict=True):
                row.spec = spec_from_info(conv.info)
                row.matcher = self.constraints.matcher(row.spec) if row.spec else None
        limit = getattr(self.model.config, "max_position_embeddings", None)
        for row in rows:
            if limit and row.start + len(row.feed) + sampling.max_new_tokens > limit:
                raise ValueError(
                    f"conversation {row.key!r} would reach "
                    f"{row.start + len(row.feed) + sampling.max_new_tokens} tokens, past the "
                    f"model's {limit}; use history='window' or end the episode sooner"
                )
        generator = None
        if sampling.seed is not None:
            # The n-th call under one seed draws from its own stream: reproducible, and turns
            # of an episode do not replay the same noise.
            n = self._seed_calls[sampling.seed] = self._seed_calls.get(sampling.seed, -1) + 1
            stream = (sampling.seed * 1_000_003 + n) % 2**63
            generator = torch.Generator(device=self.device).manual_seed(stream)
        with torch.inference_mode():
            for chunk in kvcache.chunk_rows([len(r.feed) for r in rows], self.max_batch):
                self._decode([rows[i] for i in chunk], sampling, generator)
        if self.reuse_cache:
            for row in rows:
                self._episodes[row.key] = self._remember(row)
        return [
            Completion(
                text=row.text,
                token_ids=tuple(row.response),
                logprobs=tuple(row.logprobs),
                prompt_ids=tuple(row.prompt_ids),
                constraint=row.spec,
                new_sequence=not row.base_ids,  # a whole prompt, not an increment
            )
            for row in rows
        ]

    def end_episodes(self, keys: Sequence[str]) -> None:
        """Drop the token history and KV cache of these conversations (unknown keys are fine)."""
        for key in keys:
            self._episodes.pop(key, None)

    def capture_prefix(self, layer: int | None) -> None:
        """Keep the hidden states entering decoder layer ``layer`` of every fed token, per
        conversation, for :meth:`pop_prefix_states` (None: stop; see
        :mod:`agentgym.policy.prefix`)."""
        if self.prefix is not None:
            self.prefix.remove()
        self.prefix = PrefixStates(self.model, layer) if layer else None

    def pop_prefix_states(self) -> dict[str, list[torch.Tensor]]:
        """Per conversation key, its segments of recorded hidden states; forgotten here."""
        return self.prefix.pop() if self.prefix is not None else {}

    @property
    def cached_keys(self) -> list[str]:
        """Keys of the conversations whose state is kept."""
        return list(self._episodes)

    def cache_nbytes(self) -> int:
        """Bytes held by kept KV caches."""
        return sum(ep.kv.nbytes() for ep in self._episodes.values() if ep.kv is not None)

    # ------------------------------------------------------------------ prompts

    def _render(self, messages: Sequence[dict[str, str]], generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=generation_prompt
        )

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _decode_text(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(
            list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def _prepare(self, conv: Conversation) -> _Row:
        """Work out what to feed for this conversation's turn."""
        rendered = self._render(conv.messages)
        ep = self._episodes.get(conv.key) if self.reuse_cache else None
        suffix = None
        if ep is not None and rendered.startswith(ep.prompt_text):
            suffix = self._increment(ep, conv.messages, rendered)
        if ep is not None and suffix is None:  # not a continuation of what was fed: start over
            self.stats["resets"] += 1
            self._episodes.pop(conv.key, None)
        if ep is None or suffix is None:
            ids = self._encode(rendered)
            return _Row(conv.key, rendered, prompt_ids=ids, feed=ids, base_ids=[], kv=None)
        prompt_ids = self._encode(suffix)
        cached = ep.kv.length if ep.kv is not None else 0
        feed = ep.ids[cached:] + prompt_ids
        return _Row(conv.key, rendered, prompt_ids, feed=feed, base_ids=ep.ids, kv=ep.kv)

    def _increment(
        self, ep: _Episode, messages: Sequence[dict[str, str]], rendered: str
    ) -> str | None:
        """Text to append after ``ep.text`` so the sequence continues as ``rendered`` does."""
        suffix = increment(ep.text, rendered)
        if suffix is not None:
            return suffix
        # The history's text differs from the tokens fed (e.g. the reply was cut inside a
        # token, or edited): close the reply with the template's own marker and render only
        # the messages after the last assistant reply.
        eos = (self.tokenizer.eos_token or "") if ep.ended_eos else ""
        suffix = closing_increment(self._render, messages, eos)
        if suffix is not None:
            self.stats["fallbacks"] += 1
        return suffix

    def _remember(self, row: _Row) -> _Episode:
        return _Episode(
            ids=row.base_ids + row.prompt_ids + row.response,
            text=row.rendered + self._decode_text(row.response),
            prompt_text=row.rendered,
            ended_eos=row.ended_eos,
            kv=row.new_kv,
        )

    # ------------------------------------------------------------------ decoding

    def _forward(self, ids, mask, positions, cache) -> torch.Tensor:
        """Run the model on ``ids`` [B, N] after ``cache``; return last-position logits [B, V]."""
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            **{self._cache_kw: cache},
            use_cache=True,
            **self._logits_kw,
        )
        return out.logits[:, -1]

    def _prefill_inputs(self, rows: list[_Row]):
        """Left-padded ``ids``, ``mask`` (cache + new tokens) and ``positions`` for a chunk.

        Row layout: [cache pad | cached tokens | feed pad | fed tokens], so the last column is
        every row's last real token and the padding in the middle is masked out.
        """
        layers, cache_mask = kvcache.merge([r.kv for r in rows])
        width = max(len(r.feed) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        feed_mask = torch.zeros(len(rows), width, dtype=torch.long)
        positions = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r.feed)
            ids[i, width - n :] = torch.tensor(r.feed)
            feed_mask[i, width - n :] = 1
            positions[i, width - n :] = torch.arange(r.start, r.start + n)
        mask = torch.cat([cache_mask.to(self.device), feed_mask.to(self.device)], dim=1)
        return layers, ids.to(self.device), mask, positions.to(self.device)

    def _decode(self, rows: list[_Row], sampling: SamplingParams, generator) -> None:
        """Prefill the chunk's new tokens, then sample until every row has stopped."""
        # Rows that start the same prompt (a group's episodes at turn 0) share one prefill.
        fresh = all(r.kv is None for r in rows)
        first: dict[tuple[int, ...], int] = {}
        unique = [first.setdefault(tuple(r.feed), i) for i, r in enumerate(rows)] if fresh else []
        prefill = sorted(set(unique)) if fresh else list(range(len(rows)))
        layers, ids, mask, positions = self._prefill_inputs([rows[i] for i in prefill])
        cache = kvcache.to_cache(layers)
        del layers  # the cache's first update replaces these tensors: let them go then
        fresh_rows = [r.kv is None for r in rows]
        self._release_kv(rows)
        self.stats["prefill_tokens"] += sum(len(rows[i].feed) for i in prefill)
        logits = self._forward(ids, mask, positions, cache)  # [B', V]
        idx = None
        if len(prefill) < len(rows):  # copy each shared prefill to the rows that share it
            idx = torch.tensor([prefill.index(u) for u in unique], device=self.device)
            cache = kvcache.to_cache(kvcache.select_rows(kvcache.from_cache(cache), idx))
            logits, mask, positions = logits[idx], mask[idx], positions[idx]
        if self.prefix is not None:
            keys = [r.key for r in rows]
            self.prefix.prefilled(keys, fresh_rows, [len(r.feed) for r in rows], idx)
        next_pos = positions[:, -1] + 1  # [B]
        live = list(range(len(rows)))  # rows[live[b]] is batch row b
        while True:
            allowed = self._allowed([rows[i] for i in live], logits.shape[-1])
            tokens, logps = sample_next(
                logits, sampling.temperature, sampling.top_p, generator, allowed
            )
            self.stats["decode_tokens"] += len(live)
            keep = []
            for b, (tok, lp) in enumerate(zip(tokens.tolist(), logps.tolist(), strict=True)):
                row = rows[live[b]]
                row.response.append(tok)
                row.logprobs.append(lp)
                if row.matcher is not None:
                    row.matcher.advance(tok)
                    for forced in row.matcher.forced_tail():  # probability 1: no forward pass
                        row.matcher.advance(forced)
                        row.response.append(forced)
                        row.logprobs.append(0.0)
                if not self._stopped(row, sampling):
                    keep.append(b)
                elif self.reuse_cache:  # the cache covers all fed tokens, not the last sample
                    row.new_kv = kvcache.extract(kvcache.from_cache(cache), b, mask[b])
            if not keep:
                return
            if len(keep) < len(live):  # drop finished rows from the batch
                idx = torch.tensor(keep, device=self.device)
                cache = kvcache.to_cache(kvcache.select_rows(kvcache.from_cache(cache), idx))
                mask, next_pos, tokens = mask[idx], next_pos[idx], tokens[idx]
                live = [live[b] for b in keep]
            mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=1)
            logits = self._forward(tokens[:, None], mask, next_pos[:, None], cache)
            if self.prefix is not None:
                self.prefix.stepped([rows[i].key for i in live])
            next_pos = next_pos + 1

    def _release_kv(self, rows: list[_Row]) -> None:
        """Drop the rows' own caches once merged into the batch cache (a copy): only the batch
        cache and the caches extracted for the next turn stay, not a third copy. A turn that
        fails after this re-prefills those conversations from their token ids."""
        for row in rows:
            row.kv = None
            ep = self._episodes.get(row.key)
            if ep is not None:
                ep.kv = None

    def _allowed(self, rows: list[_Row], vocab: int) -> torch.Tensor | None:
        """Allowed-token mask [B, V] of a decoding step (None when no row is constrained)."""
        if all(row.matcher is None for row in rows):
            return None
        allowed = torch.ones(len(rows), vocab, dtype=torch.bool)
        for b, row in enumerate(rows):
            if row.matcher is not None:
                allowed[b] = unpack(torch.from_numpy(row.matcher.allowed()), vocab)
        return allowed.to(self.device)

    def _stopped(self, row: _Row, sampling: SamplingParams) -> bool:
        """Whether the row's last sampled token ends it; if so, set its text."""
        if row.matcher is not None and row.matcher.done():
            row.ended_eos = row.response[-1] in self.eos_ids
            row.text = self._decode_text(row.response[:-1] if row.ended_eos else row.response)
            return True
        if row.response[-1] in self.eos_ids:
            row.ended_eos = True
            row.text = self._decode_text(row.response[:-1])
            return True
        if sampling.stop:
            text = self._decode_text(row.response)
            cut = find_stop(text, sampling.stop)
            if cut is not None:
                row.text = text[:cut]
                return True
        whole_action = row.matcher is not None and spec_kind(row.spec) == CHOICE
        if len(row.response) >= sampling.max_new_tokens and not whole_action:
            row.text = self._decode_text(row.response)
            return True
        return False


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """End-of-sequence ids from the tokenizer and the model's generation config."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen_cfg = getattr(model, "generation_config", None)
    extra = getattr(gen_cfg, "eos_token_id", None) if gen_cfg is not None else None
    if isinstance(extra, int):
        ids.add(extra)
    elif extra:
        ids.update(int(i) for i in extra)
    if not ids:
        warnings.warn("no end-of-sequence token found; replies end at max_new_tokens", stacklevel=3)
    return frozenset(ids)
