"""The frozen prefix of a model: reuse the rollout's activations below the first trainable layer.

With LoRA on the top layers only (``lora.top_layers``), the embedding and the first ``k``
decoder layers are frozen: the hidden states entering layer ``k`` depend on the token ids
alone, and the rollout has already computed them for every token it fed. The policy records
them (:class:`PrefixCapture`, a forward pre-hook on layer ``k``); the trainer then runs only
layers ``k..`` , the final norm and the LM head on them (:func:`top_logits`) instead of the
whole model, which saves ``k / num_layers`` of the update's forward pass.

Exactness: the trainer's log-probabilities are a function of the same frozen activations and
the current trainable weights, as in a full forward; they differ from the full forward only by
floating-point rounding (the rollout computed them incrementally with a KV cache).
The tokens the rollout never fed (the last sampled token of an episode and the tokens the
constraint forced after it) are at the end of the sequence, so no other position attends to
them; the positions they feed predict only forced tokens (restricted log-probability exactly 0
whatever the logits) or nothing, and :func:`tail_is_forced` checks that before a sample uses
the recorded states.

Supported: decoder-only models laid out like Llama (``model.layers``, ``model.rotary_emb``,
``model.norm``, ``lm_head``) run as one process; the trainer checks the first micro-batch
against a full forward and falls back to full forwards if they disagree.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Prefix:
    """Hidden states entering decoder layer ``layer``: [N, D] of one sample, or [B, L, D]."""

    layer: int
    states: torch.Tensor

    def to(self, device: str | torch.device) -> Prefix:
        return Prefix(self.layer, self.states.to(device))


@dataclass(frozen=True)
class _Parts:
    inner: Any  # the decoder stack (LlamaModel-like)
    layers: Any
    lm_head: torch.nn.Module
    config: Any


def _parts(model: torch.nn.Module) -> _Parts | None:
    """The modules of a Llama-like causal LM (a peft wrapper is looked through), or None."""
    if type(model).__name__ in ("DistributedDataParallel", "FullyShardedDataParallel"):
        return None
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", None)
    lm_head = getattr(base, "lm_head", None)
    needed = ("layers", "rotary_emb", "norm", "embed_tokens")
    if inner is None or lm_head is None or not all(hasattr(inner, n) for n in needed):
        return None
    config = getattr(base, "config", None)
    if config is None or getattr(config, "final_logit_softcapping", None):
        return None
    if getattr(config, "logit_scale", None) not in (None, 1, 1.0):
        return None
    return _Parts(inner, inner.layers, lm_head, config)


def frozen_layers(model: torch.nn.Module) -> int:
    """How many leading decoder layers (with the embedding) no gradient reaches; 0 when none
    or when the model is not of a supported layout."""
    parts = _parts(model)
    if parts is None or any(p.requires_grad for p in parts.inner.embed_tokens.parameters()):
        return 0
    for i, layer in enumerate(parts.layers):
        if any(p.requires_grad for p in layer.parameters()):
            return i
    return 0  # no trainable decoder layer: only the head trains, nothing to reuse


class PrefixCapture:
    """Records the hidden states entering decoder layer ``layer`` on every forward."""

    def __init__(self, model: torch.nn.Module, layer: int) -> None:
        parts = _parts(model)
        if parts is None or not 0 < layer < len(parts.layers):
            raise ValueError(f"cannot capture the input of layer {layer} of this model")
        self.layer = layer
        self._last: torch.Tensor | None = None
        self._handle = parts.layers[layer].register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        self._last = hidden.detach()

    def take(self) -> torch.Tensor:
        """The hidden states [B, N, D] of the last forward (once)."""
        if self._last is None:
            raise RuntimeError("no forward since the last take()")
        last, self._last = self._last, None
        return last

    def remove(self) -> None:
        self._handle.remove()


class PrefixStates:
    """Per conversation, the hidden states entering layer ``layer`` of every token fed so far.

    A conversation's states come in segments: a fresh prefill (no cache: first turn, reset,
    stateless turn) opens a new one, exactly where the trainer starts a new sample.
    """

    def __init__(self, model: torch.nn.Module, layer: int) -> None:
        self.capture = PrefixCapture(model, layer)
        self.layer = layer
        self._segments: dict[str, list[list[torch.Tensor]]] = {}

    def prefilled(
        self, keys: list[str], fresh: list[bool], fed: list[int], rows: torch.Tensor | None
    ) -> None:
        """After a left-padded prefill: row i fed its last ``fed[i]`` columns (``rows``: the
        forward's row of each conversation, when shared prompts were prefilled once)."""
        hidden = self.capture.take()
        if rows is not None:
            hidden = hidden[rows]
        width = hidden.shape[1]
        for i, key in enumerate(keys):
            part = hidden[i, width - fed[i] :].clone()
            if fresh[i] or key not in self._segments:
                self._segments.setdefault(key, []).append([part])
            else:
                self._segments[key][-1].append(part)

    def stepped(self, keys: list[str]) -> None:
        """After a decoding step that fed one token per conversation of ``keys``."""
        hidden = self.capture.take()
        for i, key in enumerate(keys):
            self._segments[key][-1].append(hidden[i, -1:].clone())

    def pop(self) -> dict[str, list[torch.Tensor]]:
        """Every conversation's segments [N_fed, D] so far, forgotten here."""
        out = {k: [torch.cat(parts) for parts in segs] for k, segs in self._segments.items()}
        self._segments.clear()
        return out

    def remove(self) -> None:
        self.capture.remove()
        self._segments.clear()


def top_logits(
    model: torch.nn.Module,
    hidden: torch.Tensor,
    attention_mask: torch.Tensor | None,
    predicts: torch.Tensor,
    layer: int,
) -> torch.Tensor | None:
    """Logits [N, V] at the ``predicts`` positions from layer ``layer`` up, given the hidden
    states [B, L, D] entering it (positions 0..L-1 as in a full forward; ``attention_mask``
    None: causal only). None when the model is not of a supported layout."""
    parts = _parts(model)
    if parts is None:
        return None
    from transformers.masking_utils import create_causal_mask  # noqa: PLC0415

    positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
    # the cache argument is `cache` in some transformers releases, `past_key_values` in others
    params = inspect.signature(create_causal_mask).parameters
    mask = create_causal_mask(
        config=parts.config,
        inputs_embeds=hidden,
        attention_mask=attention_mask,
        **{"cache" if "cache" in params else "past_key_values": None},
        position_ids=positions,
    )
    rope = parts.inner.rotary_emb(hidden, position_ids=positions)
    h = hidden
    for decoder_layer in parts.layers[layer : parts.config.num_hidden_layers]:
        h = decoder_layer(h, attention_mask=mask, position_embeddings=rope, position_ids=positions)
        h = h[0] if isinstance(h, tuple) else h
    h = parts.inner.norm(h)
    return parts.lm_head(h[predicts]).float()


def tail_is_forced(fed: int, loss_mask: list[bool], allowed: tuple) -> bool:
    """Whether every token after the first ``fed`` ones that is predicted (a loss position
    past ``fed``) was forced: its allowed set holds a single token."""
    for pos in range(fed + 1, len(loss_mask)):  # position pos-1 >= fed predicts token pos
        if not loss_mask[pos]:
            continue
        mask = allowed[pos] if allowed else None
        if mask is None or _popcount(mask) != 1:
            return False
    return True


def _popcount(packed: np.ndarray) -> int:
    return int(np.unpackbits(packed.view(np.uint8)).sum())
