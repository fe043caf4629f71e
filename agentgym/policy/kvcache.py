"""Per-conversation KV caches, merged into one padded batch cache for a decoding pass.

Each live conversation keeps its own keys/values (``SeqKV``: per layer ``[1, H, L_i, D]``).
A batched pass right-aligns them into ``[B, H, C, D]`` with ``C = max L_i`` (zeros on the
left, masked out), feeds every row's new tokens after that, and afterwards each row's real
positions (attention mask 1) are gathered back into its own ``SeqKV``. Padding never stays
in a stored cache, so caches of any lengths can be batched together on the next turn.

Rotary positions live inside the cached keys, so a row's new tokens must be given explicit
position ids that continue its own sequence (``L_i, L_i + 1, ...``), not the padded index.

The new tokens are left-padded to the longest in the pass; :func:`chunk_rows` splits a turn's
conversations into passes of similar lengths so little of that padding is computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

Layers = list[tuple[torch.Tensor, torch.Tensor]]
"""Per-layer ``(keys, values)``, each ``[B, H, L, D]``."""


@dataclass
class SeqKV:
    """The KV cache of one conversation: per layer ``(keys, values)``, each ``[1, H, L, D]``."""

    layers: Layers

    @property
    def length(self) -> int:
        return self.layers[0][0].shape[-2]

    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self.layers)


def merge(kvs: Sequence[SeqKV | None]) -> tuple[Layers | None, torch.Tensor]:
    """Right-align the caches into one batch; ``None`` rows (no cache yet) are all padding.

    Returns ``(layers [B, H, C, D] or None when every row is None, mask [B, C] long)``.
    """
    lengths = [kv.length if kv is not None else 0 for kv in kvs]
    width = max(lengths, default=0)
    ref = next((kv for kv in kvs if kv is not None), None)
    if ref is None or width == 0:
        return None, torch.zeros(len(kvs), 0, dtype=torch.long)
    device = ref.layers[0][0].device
    mask = torch.zeros(len(kvs), width, dtype=torch.long, device=device)
    layers: Layers = []
    for li, (k0, v0) in enumerate(ref.layers):
        keys = k0.new_zeros(len(kvs), k0.shape[1], width, k0.shape[3])
        values = v0.new_zeros(len(kvs), v0.shape[1], width, v0.shape[3])
        for row, kv in enumerate(kvs):
            if kv is not None and kv.length:
                keys[row, :, width - kv.length :] = kv.layers[li][0][0]
                values[row, :, width - kv.length :] = kv.layers[li][1][0]
        layers.append((keys, values))
    for row, n in enumerate(lengths):
        if n:
            mask[row, width - n :] = 1
    return layers, mask


def extract(layers: Layers, row: int, mask_row: torch.Tensor) -> SeqKV:
    """Gather one row's real positions (``mask_row`` [C] == 1) into its own ``SeqKV``."""
    keep = mask_row.nonzero().squeeze(-1)
    return SeqKV([(k[row : row + 1, :, keep], v[row : row + 1, :, keep]) for k, v in layers])


def select_rows(layers: Layers, rows: torch.Tensor) -> Layers:
    """Keep only ``rows`` [B'] of a batch cache."""
    return [(k[rows], v[rows]) for k, v in layers]


def to_cache(layers: Layers | None):
    """Wrap per-layer tensors as a transformers ``DynamicCache`` (None gives an empty one)."""
    from transformers import DynamicCache

    if layers is None:
        return DynamicCache()
    try:
        return DynamicCache(ddp_cache_data=layers)  # transformers >= 4.52
    except TypeError:  # pragma: no cover - older transformers
        return DynamicCache.from_legacy_cache(tuple(layers))


def from_cache(cache) -> Layers:
    """Per-layer ``(keys, values)`` of a transformers cache (``[B, H, C, D]`` each)."""
    if hasattr(cache, "layers"):  # transformers >= 4.54
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))  # pragma: no cover


CHUNK_COST = 64
"""Padded prefill tokens one more chunk is worth: its extra decoding steps (a CPU forward of a
few tokens costs about as much as prefilling this many)."""


def chunk_rows(
    feeds: Sequence[int], max_batch: int, chunk_cost: int = CHUNK_COST
) -> list[list[int]]:
    """Split rows (by their fed-token counts) into chunks of at most ``max_batch`` rows.

    A chunk's prefill is left-padded to its longest feed, so rows are sorted by feed length
    and cut where the padding saved beats ``chunk_cost``: the partition of the sorted rows into
    contiguous chunks that minimises ``sum(len(chunk) * longest + chunk_cost)`` (exact dynamic
    programme, n <= a few hundred). Deterministic for given feeds.
    """
    order = sorted(range(len(feeds)), key=lambda i: (-feeds[i], i))
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: cost of the first j sorted rows
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(max(0, j - max_batch), j):  # chunk = sorted rows i..j-1
            cost = best[i] + (j - i) * feeds[order[i]] + chunk_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    chunks, j = [], n
    while j > 0:
        chunks.append(order[cut[j] : j])
        j = cut[j]
    return chunks[::-1]
