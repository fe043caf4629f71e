"""Rollout speed of vLLM vs hf on the same conversations, and vLLM's logprob mismatch (GPU).

    python bench/vllm_rollout.py [--model smollm2-135m] [--batch 16] [--turns 8]
                                 [--new-tokens 16] [--dtype float32] [--out FILE.json]

Plays ``batch`` conversations for ``turns`` turns (the observations of ``bench/rollout.py``,
identical for both backends), sampling at temperature 1 with at most ``new-tokens`` tokens a
turn, once with ``HFPolicy`` (KV reuse) and once with ``VLLMPolicy`` (prefix caching), both on
the GPU. Prints, per backend, wall time and generated tokens per second. Then the logprob
mismatch the trainer sees: each vLLM trajectory (``prompt_ids + token_ids`` over its turns, the
trainer's own layout) is scored by the hf model's forward pass at the same temperature, and the
mean and max |log π_vllm − log π_trainer| over its response tokens are reported (the hf
rollout's own mismatch is printed beside it as the floor). Needs a CUDA GPU and vLLM.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from rollout import conversations, observation  # noqa: E402

from agentgym.policy.base import SamplingParams  # noqa: E402
from agentgym.policy.hf import HFPolicy  # noqa: E402
from agentgym.policy.models import load_model  # noqa: E402
from agentgym.policy.sampling import token_logprobs  # noqa: E402
from agentgym.policy.vllm import VLLMPolicy, resolve_model  # noqa: E402


def play(policy, batch: int, turns: int, new_tokens: int, seed: int) -> dict:
    """``batch`` conversations × ``turns`` turns; returns time, tokens and the completions."""
    rngs, convs = conversations(batch, seed)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=new_tokens, seed=seed)
    history = []
    start = time.perf_counter()
    for t in range(turns):
        completions = policy.generate(convs, sampling)
        history.append(completions)
        for i, (conv, comp) in enumerate(zip(convs, completions, strict=True)):
            conv.messages.append({"role": "assistant", "content": comp.text})
            conv.messages.append({"role": "user", "content": observation(rngs[i], t + 1)})
    seconds = time.perf_counter() - start
    policy.end_episodes([c.key for c in convs])
    tokens = sum(len(c.token_ids) for turn in history for c in turn)
    return {"seconds": seconds, "tokens": tokens, "history": history}


@torch.no_grad()
def mismatch(model, history: list, temperature: float = 1.0) -> dict:
    """Mean and max |stored − recomputed| logprob over all response tokens of ``history``."""
    diffs = []
    for i in range(len(history[0])):
        seq, positions, stored = [], [], []
        for turn in history:
            comp = turn[i]
            if getattr(comp, "new_sequence", False) and seq:
                raise SystemExit("a turn started a new sequence; the bench expects one per episode")
            seq += list(comp.prompt_ids)
            positions += [len(seq) + k - 1 for k in range(len(comp.token_ids))]
            stored += list(comp.logprobs)
            seq += list(comp.token_ids)
        ids = torch.tensor([seq], device=model.device)
        logits = model(input_ids=ids).logits[0].float()
        pos = torch.tensor(positions, device=model.device)
        targets = ids[0, pos + 1]
        fresh = token_logprobs(logits[pos], targets, temperature)
        diffs.append((torch.tensor(stored, device=model.device) - fresh).abs())
    all_diffs = torch.cat(diffs)
    return {"mean": float(all_diffs.mean()), "max": float(all_diffs.max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/vllm_rollout.py needs a CUDA GPU")

    model, tokenizer = load_model(args.model, dtype=args.dtype, device="cuda")
    model.eval()
    hf = HFPolicy(model, tokenizer, device="cuda", max_batch=args.batch)
    shape = (args.batch, args.turns, args.new_tokens)
    hf_run = play(hf, *shape, seed=0)
    engine = VLLMPolicy(
        resolve_model(args.model), dtype=args.dtype, gpu_memory_utilization=0.3, seed=0
    )
    play(engine, 2, 2, 4, seed=99)  # warm-up (CUDA graphs, compilation)
    vllm_run = play(engine, *shape, seed=0)
    figures = {
        "model": args.model,
        "dtype": args.dtype,
        "batch": args.batch,
        "turns": args.turns,
        "hf_tokens_per_s": hf_run["tokens"] / hf_run["seconds"],
        "vllm_tokens_per_s": vllm_run["tokens"] / vllm_run["seconds"],
        "hf_seconds": hf_run["seconds"],
        "vllm_seconds": vllm_run["seconds"],
        "logprob_mismatch_vllm": mismatch(model, vllm_run["history"]),
        "logprob_mismatch_hf": mismatch(model, hf_run["history"]),
    }
    figures["speedup"] = figures["vllm_tokens_per_s"] / figures["hf_tokens_per_s"]
    print(json.dumps(figures, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
