"""A trained model's weights under their plain Hugging Face names, for an inference engine.

The trainer's model may be wrapped: by ``DistributedDataParallel`` (``module.`` prefix), by
FSDP2 (parameters are DTensor shards) or by peft (LoRA: ``base_model.model.`` prefix,
``.base_layer.`` inside adapted layers, separate ``lora_A``/``lora_B`` tensors). An engine such
as vLLM loads weights by the names of the plain model, so :func:`hf_weights` undoes all three:
it unwraps, gathers full tensors, and folds LoRA adapters into their base weights
(``W + scale · B A``, peft's own merge), without changing the trained model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch

_PEFT_PREFIX = "base_model.model."


def hf_weights(model: Any) -> list[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` pairs of ``model``'s full weights under plain HF names.

    ``model`` is a transformers model (possibly DDP-, FSDP2- or peft-wrapped) or already a
    state dict (returned as pairs; DTensors made whole).
    """
    if isinstance(model, Mapping):
        return [(k, _whole(v).detach()) for k, v in model.items()]
    model = getattr(model, "module", model) if _is_ddp(model) else model
    if hasattr(model, "merge_adapter") and hasattr(model, "unmerge_adapter"):
        return list(_merged_lora(model))
    return [(k, _whole(v).detach()) for k, v in model.state_dict().items()]


def _merged_lora(model: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """A peft model's weights with the active adapters added (``W + ΔW``, peft's
    ``get_delta_weight``), under the base model's names. The model is not touched (merging in
    place and unmerging would drift the frozen base weights by rounding)."""
    with torch.no_grad():
        state = {
            k: _whole(v).detach().clone() for k, v in model.state_dict().items() if "lora_" not in k
        }
        for path, module in model.named_modules():
            if not (hasattr(module, "get_delta_weight") and hasattr(module, "base_layer")):
                continue
            key = f"{path}.base_layer.weight"
            for adapter in module.active_adapters:
                if adapter in getattr(module, "lora_A", {}) and key in state:
                    delta = _whole(module.get_delta_weight(adapter))
                    state[key] = state[key] + delta.to(state[key].dtype)
    for name, tensor in state.items():
        yield name.removeprefix(_PEFT_PREFIX).replace(".base_layer.", "."), tensor


def _whole(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _is_ddp(model: Any) -> bool:
    return isinstance(model, torch.nn.parallel.DistributedDataParallel)
