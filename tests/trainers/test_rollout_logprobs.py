"""The rollout's stored logprobs against a fresh forward pass over the tensorized samples.

The forward here is the model's own (``model(input_ids).logits``), independent of the trainer's
``response_logprobs``: every response token must be scored in exactly the context in which it
was sampled, whatever the policy fed (KV-cache increments, or a whole new prompt on a turn that
does not continue the conversation).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agentgym.data import Batch, Trajectory, Turn
from agentgym.schema import from_table, to_table
from agentgym.trainers.tensorize import Sample, make_samples

pytest.importorskip("transformers")

from agentgym.policy.base import SamplingParams  # noqa: E402
from agentgym.policy.hf import HFPolicy  # noqa: E402
from agentgym.policy.models import tiny_model  # noqa: E402
from agentgym.rollout import collect  # noqa: E402


def fresh_logprobs(model: torch.nn.Module, sample: Sample) -> np.ndarray:
    """log p(token p | tokens < p) of every loss position of ``sample``, one plain forward."""
    ids = torch.tensor([sample.input_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    pos = [p for p, m in enumerate(sample.loss_mask) if m and p > 0]
    return logp[[p - 1 for p in pos], [sample.input_ids[p] for p in pos]].numpy()


def stored(sample: Sample) -> np.ndarray:
    return np.array(
        [
            v
            for p, (m, v) in enumerate(zip(sample.loss_mask, sample.old_logprobs, strict=True))
            if m and p > 0
        ]
    )


def rollout(reuse_cache: bool, history: str = "full") -> tuple[torch.nn.Module, Batch]:
    model, tokenizer = tiny_model(seed=0)
    policy = HFPolicy(model, tokenizer, history=history, reuse_cache=reuse_cache)
    batch = collect(
        "agentgym/KeyDoor-Small-v0",
        policy,
        tasks=2,
        group_size=2,
        max_turns=3,
        sampling=SamplingParams(temperature=1.0, max_new_tokens=4, seed=0),
    )
    assert all(len(t.turns) >= 2 for t in batch.trajectories)  # multi-turn: contexts matter
    return model, batch


def check_every_turn_once(batch: Batch, samples: list[Sample]) -> None:
    counts = np.zeros(batch.num_turns, dtype=int)
    for s in samples:
        for tid in set(s.turn_ids) - {-1}:
            counts[tid] += 1
    np.testing.assert_array_equal(counts, 1)


@pytest.mark.parametrize("layout", ["full", "window"])
@pytest.mark.parametrize(
    ("reuse_cache", "history"),
    [(True, "full"), (False, "full"), (True, "window")],
    ids=["kv-increments", "stateless", "policy-window"],
)
def test_stored_logprobs_equal_a_fresh_forward(layout, reuse_cache, history):
    # "stateless" and "policy-window" feed a whole new prompt every turn of a full-history
    # conversation: the trainer must not append it to the earlier turns' tokens.
    model, batch = rollout(reuse_cache, history)
    samples = make_samples(batch, np.zeros(batch.num_turns, np.float32), layout)
    check_every_turn_once(batch, samples)
    for s in samples:
        np.testing.assert_allclose(stored(s), fresh_logprobs(model, s), atol=2e-5, rtol=0)


def synthetic_turn(prompt: tuple[int, ...], response: tuple[int, ...], new_sequence: bool) -> Turn:
    return Turn(
        "o",
        "a",
        "a",
        0.0,
        False,
        False,
        "s",
        prompt_ids=prompt,
        response_ids=response,
        response_logprobs=(-1.0,) * len(response),
        new_sequence=new_sequence,
    )


def test_a_turn_that_restarts_the_sequence_starts_a_new_sample():
    turns = (
        synthetic_turn((1, 2, 3), (4, 5), True),
        synthetic_turn((6,), (7,), False),  # an increment: continues turn 0
        synthetic_turn((1, 2, 3, 9, 9), (8, 8), True),  # the whole prompt again (a reset)
        synthetic_turn((6, 6), (5,), False),
    )
    batch = Batch((Trajectory("t/T-v0", "x", 0, "g", turns, False, traj_id="t"),))
    adv = np.arange(4, dtype=np.float32)
    full = make_samples(batch, adv, "full")
    assert [s.input_ids for s in full] == [[1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 9, 9, 8, 8, 6, 6, 5]]
    window = make_samples(batch, adv, "window")
    assert [s.input_ids for s in window] == [
        [1, 2, 3, 4, 5],
        [1, 2, 3, 4, 5, 6, 7],
        [1, 2, 3, 9, 9, 8, 8],
        [1, 2, 3, 9, 9, 8, 8, 6, 6, 5],
    ]
    assert [s.turn_ids[-1] for s in window] == [0, 1, 2, 3]
    # the flag survives storage
    back = from_table(to_table(batch.trajectories))[0]
    assert [t.new_sequence for t in back.turns] == [True, False, True, False]
