"""Building the trainer's pieces from a :class:`TrainConfig`: model, policy, sampling, rollout
arguments, environment pool, evaluation and the run directory.

Each is a small function of the config that :func:`agentgym.trainers.loop.train` calls; tests
and ``agentgym eval`` call them too, so a checkpoint is evaluated exactly as training did.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentgym.config import to_dict
from agentgym.evaluate import EvalResult, evaluate
from agentgym.policy.base import Policy, SamplingParams
from agentgym.policy.prefix import frozen_layers
from agentgym.pool import EnvPool
from agentgym.prompting import action_format
from agentgym.store import Run
from agentgym.trainers import checkpoint, distributed
from agentgym.trainers.config import TrainConfig
from agentgym.trainers.resume import eval_sampling_seed
from agentgym.trainers.update import (
    eval_mode,
)


class RunExistsError(FileExistsError):
    """The run directory already holds a run; resume it or choose another name."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def iteration_seed(base: int, iteration: int) -> int:
    """Sampling seed of an iteration: a pure function of (seed, iteration), so a resumed run
    replays the iteration it was killed in exactly."""
    return (base * 1_000_003 + iteration * 7_919) % 2**31


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("policy.device is 'cuda' but no CUDA device is available; use 'cpu'.")
    return device


# ---------------------------------------------------------------------------------------------
# building the pieces from the config
# ---------------------------------------------------------------------------------------------


def build_model(cfg: TrainConfig, device: str) -> tuple[torch.nn.Module, Any]:
    """The policy model (with LoRA adapters if asked) and its tokenizer."""
    from agentgym.policy.models import load_model, tiny_model

    if cfg.policy.model == "tiny":  # a random tiny Llama: for tests and smoke runs only
        model, tokenizer = tiny_model(seed=cfg.seed)
        model = model.to(device)
    else:
        model, tokenizer = load_model(cfg.policy.model, dtype=cfg.policy.dtype, device=device)
    if cfg.lora.enabled:
        from peft import LoraConfig, get_peft_model

        with warnings.catch_warnings():  # peft reads a transformers attribute deprecated in 5.x
            warnings.filterwarnings(
                "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
            )
            model = get_peft_model(
                model,
                LoraConfig(
                    r=cfg.lora.r,
                    lora_alpha=cfg.lora.alpha,
                    lora_dropout=cfg.lora.dropout,
                    target_modules=list(cfg.lora.target_modules),
                    task_type="CAUSAL_LM",
                    **_top_layers(model, cfg.lora.top_layers),
                ),
            )
    if cfg.trainer.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    return model, tokenizer


def _top_layers(model: torch.nn.Module, top: int) -> dict[str, Any]:
    """peft arguments that restrict LoRA to the last ``top`` decoder layers (0, or at least
    the model's layer count: all layers)."""
    n = model.config.num_hidden_layers
    if top <= 0 or top >= n:
        return {}
    return {"layers_to_transform": list(range(n - top, n)), "layers_pattern": "layers"}


def build_policy(
    cfg: TrainConfig,
    model: torch.nn.Module,
    tokenizer: Any,
    device: str,
    ranks: distributed.Ranks = distributed.SINGLE,
) -> Policy:
    kl_copy = cfg.trainer.kl_coef > 0 and not cfg.lora.enabled  # a frozen copy as reference
    distributed.check_strategy(ranks, cfg.trainer.strategy, cfg.policy.backend, kl_copy)
    if cfg.policy.backend == "vllm":  # an engine beside the trained model, synced after updates
        from agentgym.policy.vllm import VLLMPolicy

        return VLLMPolicy(
            cfg.policy.model,
            dtype=cfg.policy.dtype,
            gpu_memory_utilization=cfg.policy.gpu_memory_utilization,
            enable_prefix_caching=True,
            kv_cache_memory_bytes=(cfg.policy.vllm_kv_cache_mib << 20) or None,
            enable_sleep_mode=cfg.policy.vllm_sleep and cfg.trainer.max_staleness == 0,
            seed=cfg.seed,
            history=cfg.policy.history,
            decoding=cfg.policy.decoding,
            data_parallel=ranks.world_size,
        )
    from agentgym.policy.hf import HFPolicy

    return HFPolicy(
        model,
        tokenizer,
        device=device,
        max_batch=cfg.policy.max_batch,
        history=cfg.policy.history,
        action_mode=cfg.policy.decoding,
    )


def capture_prefix(
    cfg: TrainConfig, policy: Policy, model: torch.nn.Module, ranks: distributed.Ranks
) -> int:
    """Have an hf policy record the hidden states entering the first trainable layer, when the
    update can use them (``trainer.reuse_rollout_states``); return that layer (0: off)."""
    tc = cfg.trainer
    layout = cfg.policy.history if tc.layout == "auto" else tc.layout
    usable = (
        tc.reuse_rollout_states
        and hasattr(policy, "capture_prefix")
        and ranks.world_size == 1
        and tc.max_staleness == 0
        and layout == "full"
    )
    layer = frozen_layers(model) if usable else 0
    if layer:
        policy.capture_prefix(layer)
    return layer


def sampling_params(
    cfg: TrainConfig, *, temperature: float | None = None, seed: int
) -> SamplingParams:
    fmt = action_format(cfg.policy.action_format)
    return SamplingParams(
        temperature=cfg.policy.temperature if temperature is None else temperature,
        top_p=cfg.policy.top_p,
        max_new_tokens=cfg.policy.max_new_tokens,
        stop=tuple(cfg.policy.stop) or fmt.stop,
        seed=seed,
    )


def collect_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """Arguments of :func:`agentgym.rollout.collect` shared by training and evaluation."""
    window = cfg.policy.window if cfg.policy.history == "window" else None
    workers = {"workers": cfg.env.workers, "executor": cfg.env.executor} if cfg.env.workers else {}
    return {
        "action_format": action_format(
            cfg.policy.action_format,
            list_actions=cfg.policy.list_actions,
            list_style=cfg.policy.list_style,
        ),
        "history_window": window,
        "step_timeout": cfg.env.step_timeout,
        **workers,
    }


def env_pool(cfg: TrainConfig) -> EnvPool:
    """The pool whose env instances the training iterations reuse (in the trainer's thread when
    ``env.workers`` is 0)."""
    return EnvPool(
        cfg.env.id,
        env_kwargs=cfg.env.kwargs,
        max_turns=cfg.env.max_turns,
        workers=cfg.env.workers or 1,
        executor=cfg.env.executor if cfg.env.workers else "inline",
        step_timeout=cfg.env.step_timeout,
        recycle_after=cfg.env.recycle_after or None,
    )


def run_eval(
    cfg: TrainConfig, policy: Policy, model: torch.nn.Module, *, iteration: int = 0
) -> EvalResult:
    """Greedy evaluation on seeds disjoint from training (the same code as ``agentgym eval``).

    The tasks are the same every time; sampling (``eval_temperature`` > 0) draws from a stream
    of (``eval_seed``, ``iteration``) alone, so a resumed process evaluates as a straight run."""
    env_id, env_kwargs = eval_env(cfg)
    with eval_mode(model), torch.no_grad():
        return evaluate(
            env_id,
            policy,
            episodes=cfg.trainer.eval_episodes,
            seed=cfg.trainer.eval_seed,
            max_turns=cfg.env.max_turns,
            sampling=sampling_params(
                cfg,
                temperature=cfg.trainer.eval_temperature,
                seed=eval_sampling_seed(cfg.trainer.eval_seed, iteration),
            ),
            env_kwargs=env_kwargs,
            collect_kwargs=collect_kwargs(cfg),
        )


def eval_env(cfg: TrainConfig) -> tuple[str, dict[str, Any]]:
    """The evaluation environment: ``trainer.eval_env_id`` (default ``env.id``) with
    ``env.kwargs`` updated by ``trainer.eval_env_kwargs``."""
    tc = cfg.trainer
    return tc.eval_env_id or cfg.env.id, {**cfg.env.kwargs, **tc.eval_env_kwargs}


def open_run(cfg: TrainConfig, resume: bool, ranks: distributed.Ranks = distributed.SINGLE) -> Run:
    path = Path(cfg.out_dir) / cfg.name
    if not ranks.is_main:  # rank 0 opened it (distributed.main_first); only rank 0 writes
        return distributed.RankRun(Run(path), ranks)
    has_work = (path / "metrics.jsonl").exists() or checkpoint.latest(path / "checkpoints")
    if has_work and not resume:
        raise RunExistsError(
            f"Run directory {str(path)!r} already holds a run. Pass --resume to continue it, "
            f"or choose another name (name=... or out_dir=...)."
        )
    run = Run.create(path, config=to_dict(cfg))
    return distributed.RankRun(run, ranks) if ranks.distributed else run
