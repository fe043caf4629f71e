"""Multi-turn rollout throughput of the hf policy: KV reuse vs re-encoding the history each turn.

    python bench/rollout.py [--tiny] [--model PATH] [--batch 4] [--turns 20] [--new-tokens 16]

Plays ``batch`` conversations for ``turns`` turns with the same model, once with per-conversation
KV caches kept across turns (``HFPolicy(reuse_cache=True)``) and once re-encoding the whole
history every turn (``reuse_cache=False``). Each turn appends a ~30-token observation; replies
are greedy with at most ``new-tokens`` tokens. Prints, per mode, wall time, generated tokens per
second, prefilled tokens, and the first and last turn's latency (flat with reuse, growing
without), then the speed-up. Default model: SmolLM2-135M-Instruct (``--tiny``: a 2-layer random
model, which measures mostly Python overhead).
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from agentgym.policy.base import Conversation, SamplingParams
from agentgym.policy.hf import HFPolicy
from agentgym.policy.models import load_model, tiny_model

ROOMS = ("kitchen", "hall", "closet", "garden", "cellar", "attic", "study", "porch")
THINGS = ("key", "lamp", "book", "coin", "box", "map", "apple", "knife")
SYSTEM = "You play a text adventure. Reply with one short command, such as 'go north'."


def observation(rng: random.Random, turn: int) -> str:
    """A ~30-token room description."""
    a, b = rng.sample(THINGS, 2)
    exits = ", ".join(rng.sample(("north", "south", "east", "west"), 2))
    return (
        f"Turn {turn}. You are in the {rng.choice(ROOMS)}. On the table you see a {a} and a "
        f"{b}. Exits lead {exits}. What do you do?"
    )


def conversations(batch: int, seed: int) -> tuple[list[random.Random], list[Conversation]]:
    """``batch`` fresh conversations (system prompt + first observation) and their text streams."""
    rngs = [random.Random(seed + i) for i in range(batch)]
    convs = [
        Conversation(
            key=f"ep{i}",
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": observation(rngs[i], 0)},
            ],
        )
        for i in range(batch)
    ]
    return rngs, convs


def play(policy: HFPolicy, batch: int, turns: int, new_tokens: int, seed: int) -> dict:
    """One rollout of ``batch`` conversations x ``turns`` turns; returns timings and counts."""
    rngs, convs = conversations(batch, seed)
    sampling = SamplingParams(temperature=0.0, max_new_tokens=new_tokens)
    before = dict(policy.stats)
    turn_s, texts, generated = [], [], 0
    start = time.perf_counter()
    for t in range(turns):
        t0 = time.perf_counter()
        completions = policy.generate(convs, sampling)
        turn_s.append(time.perf_counter() - t0)
        for i, (conv, comp) in enumerate(zip(convs, completions, strict=True)):
            generated += len(comp.token_ids)
            texts.append(comp.text)
            conv.messages.append({"role": "assistant", "content": comp.text})
            conv.messages.append({"role": "user", "content": observation(rngs[i], t + 1)})
    wall = time.perf_counter() - start
    policy.end_episodes([c.key for c in convs])
    return {
        "wall_s": wall,
        "generated": generated,
        "tok_s": generated / wall,
        "prefill": policy.stats["prefill_tokens"] - before["prefill_tokens"],
        "first_turn_s": turn_s[0],
        "last_turn_s": turn_s[-1],
        "texts": texts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random model instead of SmolLM2")
    parser.add_argument("--model", default=None, help="local HF model folder (default SmolLM2)")
    parser.add_argument("--batch", type=int, default=4, help="conversations played together")
    parser.add_argument("--turns", type=int, default=20, help="turns per conversation")
    parser.add_argument("--new-tokens", type=int, default=16, help="max new tokens per reply")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the observations")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    model, tokenizer = tiny_model() if args.tiny else load_model(args.model)
    name = "tiny" if args.tiny else (args.model or "SmolLM2-135M-Instruct")
    print(
        f"model {name} loaded in {time.perf_counter() - t0:.1f}s; torch threads "
        f"{torch.get_num_threads()}; batch {args.batch}, {args.turns} turns, "
        f"<= {args.new_tokens} new tokens per reply"
    )
    # Warm-up (first-call allocations), not timed.
    play(HFPolicy(model, tokenizer), args.batch, 2, 4, args.seed)

    results = {}
    for mode, reuse in (("kv-reuse", True), ("re-encode", False)):
        policy = HFPolicy(model, tokenizer, max_batch=args.batch, reuse_cache=reuse)
        results[mode] = play(policy, args.batch, args.turns, args.new_tokens, args.seed)

    print(
        f"{'mode':<10} {'wall s':>8} {'gen tok':>8} {'tok/s':>8} {'prefill':>9} "
        f"{'turn 1 s':>9} {'turn N s':>9}"
    )
    for mode, r in results.items():
        print(
            f"{mode:<10} {r['wall_s']:>8.2f} {r['generated']:>8d} {r['tok_s']:>8.1f} "
            f"{r['prefill']:>9d} {r['first_turn_s']:>9.3f} {r['last_turn_s']:>9.3f}"
        )
    reuse, fresh = results["kv-reuse"], results["re-encode"]
    same = sum(a == b for a, b in zip(reuse["texts"], fresh["texts"], strict=True))
    print(
        f"speed-up (tok/s, kv-reuse / re-encode): {reuse['tok_s'] / fresh['tok_s']:.2f}x; "
        f"wall-time ratio {fresh['wall_s'] / reuse['wall_s']:.2f}x; "
        f"identical replies {same}/{len(reuse['texts'])}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
