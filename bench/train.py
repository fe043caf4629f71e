"""Training cost of a multi-turn trajectory: one full-history pass vs one sample per turn.

    python bench/train.py [--tiny] [--model PATH] [--trajs 1] [--turns 5 10 20] [--repeats 1]

For each number of turns, builds ``trajs`` synthetic trajectories with realistic token counts
(a ~60-token system prompt, ~40-token observations, ~8-token replies, rendered with the model's
chat template exactly as ``HFPolicy`` feeds them: per-turn prompt increments + sampled replies).
Their old logprobs are computed by the model itself (one full-history forward per trajectory),
so the first update sees ratio ~= 1 in both layouts. Then, on the same batch and from the same
weights, it times one PPO update (``tensorize.make_samples`` + ``update.ppo_update`` with
``LossConfig()``, micro-batches of <= 2048 tokens) in each layout:

- ``full``: one sequence per trajectory, observation tokens masked (one pass trains all turns);
- ``window``: one sample per turn, each holding the whole prompt of that turn.

Prints, per turn count and layout, tokens forwarded per trajectory (real and padded), seconds
per update (one optimizer step, AdamW state already allocated), and the window/full ratios.
The mean PPO ratio at the update shows both layouts score the rollout's tokens the same way
(~1.0). Default model: SmolLM2-135M-Instruct (``--tiny``: a 2-layer random Llama with a
character tokenizer, so its token counts are larger). On a shared 2-core CPU the SmolLM2 run
takes ~15-30 minutes, nearly all of it in the window layout at 20 turns.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agentgym.data import Batch, Trajectory, Turn
from agentgym.policy.models import load_model, tiny_model
from agentgym.trainers.loss import LossConfig, response_logprobs
from agentgym.trainers.tensorize import collate, make_samples, micro_batches
from agentgym.trainers.update import ppo_update

ROOMS = ("kitchen", "hall", "closet", "garden", "cellar", "attic", "study", "porch")
THINGS = ("key", "lamp", "book", "coin", "box", "map", "apple", "knife")
EXITS = ("north", "south", "east", "west")
SYSTEM = (
    "You are an agent playing a text adventure. Your task: find the brass key, unlock the "
    "cellar door and escape through it before you run out of turns. Each turn you see where "
    "you are and the valid actions. Reply with exactly one action from the list of available "
    "actions, and nothing else."
)
MICRO_BATCH_TOKENS = 2048


def observation(rng: random.Random, turn: int) -> str:
    """A ~40-token observation with its list of valid actions."""
    a, b = rng.sample(THINGS, 2)
    exits = rng.sample(EXITS, 2)
    return (
        f"Turn {turn}. You are in the {rng.choice(ROOMS)}. On the table you see a {a} and a "
        f"{b}. Exits lead {exits[0]} and {exits[1]}.\n"
        f"Valid actions: take {a}, take {b}, go {exits[0]}, go {exits[1]}, look"
    )


def reply(rng: random.Random) -> str:
    """A one-action reply phrased as small models do (~7 tokens; the end token makes ~8)."""
    thing, exit_ = rng.choice(THINGS), rng.choice(EXITS)
    return rng.choice(
        [
            f"take the {thing} from the table",
            f"go {exit_} through the open door",
            f"look around the room for the {thing}",
        ]
    )


def synthetic_trajectory(tokenizer: Any, rng: random.Random, turns: int, name: str) -> Trajectory:
    """A full-history trajectory whose token ids are laid out as ``HFPolicy`` feeds them.

    Turn i's ``prompt_ids`` is the chat-template render of the conversation so far minus the
    text already fed (the previous render plus the previous reply and end token); its
    ``response_ids`` are the reply's tokens plus the end token. Logprobs are placeholders, to be
    replaced by :func:`score`.
    """
    eos = tokenizer.eos_token_id
    messages = [{"role": "system", "content": SYSTEM}]
    fed_text = ""
    out = []
    for t in range(turns):
        obs = observation(rng, t)
        messages.append({"role": "user", "content": obs})
        rendered = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        if not rendered.startswith(fed_text):
            raise RuntimeError("the chat template does not render history as a prefix")
        prompt = tokenizer(rendered[len(fed_text) :], add_special_tokens=False)["input_ids"]
        text = reply(rng)
        response = list(tokenizer(text, add_special_tokens=False)["input_ids"]) + [eos]
        fed_text = rendered + text + tokenizer.decode([eos])
        messages.append({"role": "assistant", "content": text})
        out.append(
            Turn(
                observation=obs,
                output=text,
                action=text,
                reward=float(rng.random() < 0.2),
                terminated=t == turns - 1,
                truncated=False,
                state_key=f"{name}:{t}",
                prompt_ids=tuple(prompt),
                response_ids=tuple(response),
                response_logprobs=(0.0,) * len(response),
            )
        )
    return Trajectory(
        env_id="bench/Synthetic-v0",
        task_id="synthetic",
        seed=0,
        group_id="bench",
        turns=tuple(out),
        won=False,
        traj_id=name,
        metadata={"history": "full"},
    )


def score(model: torch.nn.Module, batch: Batch, pad_id: int) -> Batch:
    """A copy of ``batch`` whose response logprobs are the model's (temperature 1)."""
    zeros = np.zeros(batch.num_turns)
    trajs = []
    model.eval()
    with torch.no_grad():
        for traj, sample in zip(
            batch.trajectories, make_samples(batch, zeros, "full"), strict=True
        ):
            lp = response_logprobs(model, collate([sample], pad_id)).logprobs.tolist()
            if not traj.turns[0].prompt_ids:
                raise ValueError(f"{traj.traj_id}: the first turn has no prompt tokens")
            turns, k = [], 0  # lp holds every response token's logprob, in order
            for turn in traj.turns:
                n = len(turn.response_ids)
                turns.append(dataclasses.replace(turn, response_logprobs=tuple(lp[k : k + n])))
                k += n
            trajs.append(dataclasses.replace(traj, turns=tuple(turns)))
    return Batch(tuple(trajs))


@dataclass
class Result:
    """One layout's cost at one turn count."""

    tokens: float
    """Real tokens forwarded per trajectory."""
    padded: float
    """Tokens forwarded per trajectory including micro-batch padding."""
    samples: int
    seconds: float
    """Median wall time of one update."""
    cpu: float
    """Median CPU time of one update (all threads; less sensitive to other jobs than wall time)."""
    ratio: float
    """Mean PPO ratio new/old at the update (1.0 when the layout scores tokens like the rollout)."""


def run_layout(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    layout: str,
    pad_id: int,
    repeats: int,
) -> Result:
    """Time ``repeats`` updates in ``layout``, each from the same starting weights."""
    rng = np.random.default_rng(0)
    advantages = rng.standard_normal(batch.num_turns)
    samples = make_samples(batch, advantages, layout)
    groups = micro_batches(samples, MICRO_BATCH_TOKENS)
    padded = sum(len(g) * max(len(s.input_ids) for s in g) for g in groups)
    start = copy.deepcopy(model.state_dict())
    times, cpus, ratios = [], [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        stats = ppo_update(
            model,
            optimizer,
            samples,
            LossConfig(),
            micro_batch_tokens=MICRO_BATCH_TOKENS,
            pad_id=pad_id,
        )
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        ratios.append(stats["ratio"])
        model.load_state_dict(start)
    n = len(batch)
    return Result(
        tokens=sum(len(s.input_ids) for s in samples) / n,
        padded=padded / n,
        samples=len(samples),
        seconds=statistics.median(times),
        cpu=statistics.median(cpus),
        ratio=statistics.mean(ratios),
    )


def token_counts(tokenizer: Any, batch: Batch) -> str:
    """Mean system+first-observation, later-observation and reply token counts."""
    turns = [t for traj in batch.trajectories for t in traj.turns]
    first = statistics.mean(len(traj.turns[0].prompt_ids) for traj in batch.trajectories)
    later = [len(t.prompt_ids) for traj in batch.trajectories for t in traj.turns[1:]]
    rendered = tokenizer.apply_chat_template(
        [{"role": "system", "content": SYSTEM}], tokenize=False
    )
    system = len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
    return (
        f"tokens: system prompt {system}, first prompt {first:.0f}, later increments "
        f"{statistics.mean(later):.1f} (observation + template), replies "
        f"{statistics.mean(len(t.response_ids) for t in turns):.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random model instead of SmolLM2")
    parser.add_argument("--model", default=None, help="local HF model folder (default SmolLM2)")
    parser.add_argument("--trajs", type=int, default=1, help="trajectories per update")
    parser.add_argument("--turns", type=int, nargs="+", default=[5, 10, 20], help="turn counts")
    parser.add_argument("--repeats", type=int, default=1, help="timed updates per layout")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic text")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    model, tokenizer = tiny_model() if args.tiny else load_model(args.model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    name = "tiny" if args.tiny else (args.model or "SmolLM2-135M-Instruct")
    print(
        f"model {name} loaded in {time.perf_counter() - t0:.1f}s; torch threads "
        f"{torch.get_num_threads()}; {args.trajs} trajectories per update, "
        f"micro-batches of <= {MICRO_BATCH_TOKENS} tokens, {args.repeats} timed update(s)"
    )
    # One optimizer for all updates (its state is allocated once, in the warm-up); weights are
    # restored after each update, so every update starts from the scored model.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    rows = []
    for turns in args.turns:
        rng = random.Random(args.seed + turns)
        raw = Batch(
            tuple(
                synthetic_trajectory(tokenizer, rng, turns, f"t{turns}#{i}")
                for i in range(args.trajs)
            )
        )
        batch = score(model, raw, pad_id)
        if turns == args.turns[0]:
            print(token_counts(tokenizer, batch))
            run_layout(model, optimizer, batch, "full", pad_id, 1)  # warm-up: allocations
        full = run_layout(model, optimizer, batch, "full", pad_id, args.repeats)
        window = run_layout(model, optimizer, batch, "window", pad_id, args.repeats)
        rows.append((turns, full, window))
        print(f"  {turns} turns done ({full.seconds + window.seconds:.1f}s)", flush=True)

    print()
    print(
        f"{'turns':>5} | {'full tok/traj':>13} {'padded':>7} {'s/update':>9} {'cpu s':>7} | "
        f"{'window tok/traj':>15} {'padded':>7} {'samples':>7} {'s/update':>9} {'cpu s':>7} | "
        f"{'tokens x':>8} {'time x':>7} {'cpu x':>6}"
    )
    for turns, f, w in rows:
        print(
            f"{turns:>5} | {f.tokens:>13.0f} {f.padded:>7.0f} {f.seconds:>9.2f} {f.cpu:>7.1f} | "
            f"{w.tokens:>15.0f} {w.padded:>7.0f} {w.samples:>7d} {w.seconds:>9.2f} {w.cpu:>7.1f} | "
            f"{w.tokens / f.tokens:>8.2f} {w.seconds / f.seconds:>7.2f} {w.cpu / f.cpu:>6.2f}"
        )
    ratios = [r.ratio for _, f, w in rows for r in (f, w)]
    print(f"mean PPO ratio new/old at the updates: {min(ratios):.4f} .. {max(ratios):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
