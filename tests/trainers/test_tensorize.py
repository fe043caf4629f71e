import numpy as np
import pytest
import torch

from agentgym.trainers.loss import response_logprobs
from agentgym.trainers.tensorize import collate, make_samples, micro_batches


def per_turn_logprobs(model, batch, layout):
    samples = make_samples(batch, np.zeros(batch.num_turns, dtype=np.float32), layout)
    tb = collate(samples)
    with torch.no_grad():
        lp = response_logprobs(model, tb).logprobs
    turns = tb.turn_ids[:, 1:][tb.loss_mask[:, 1:]]
    return {int(t): lp[turns == t] for t in torch.unique(turns)}


def test_full_layout_masks_observations_and_spreads_turn_advantages(token_batch):
    adv = np.arange(token_batch.num_turns, dtype=np.float32)
    samples = make_samples(token_batch, adv, "full")
    assert len(samples) == len(token_batch)
    first = token_batch.trajectories[0]
    s = samples[0]
    assert s.input_ids == [x for t in first.turns for x in t.prompt_ids + t.response_ids]
    n_resp = sum(len(t.response_ids) for t in first.turns)
    assert sum(s.loss_mask) == n_resp
    # every response token carries its own turn's advantage, prompt tokens none
    for m, a, tid in zip(s.loss_mask, s.advantages, s.turn_ids, strict=True):
        assert (tid >= 0) == m
        assert a == (adv[tid] if m else 0.0)


def test_window_layout_rebuilds_each_turns_prompt(token_batch):
    samples = make_samples(token_batch, np.zeros(token_batch.num_turns, np.float32), "window")
    assert len(samples) == token_batch.num_turns
    t0 = token_batch.trajectories[0]
    second = samples[1]
    expect = list(t0.turns[0].prompt_ids + t0.turns[0].response_ids + t0.turns[1].prompt_ids)
    assert second.input_ids[: len(expect)] == expect
    assert second.input_ids[len(expect) :] == list(t0.turns[1].response_ids)


def test_full_and_window_layouts_give_the_same_per_turn_logprobs(tiny_lm, token_batch):
    full = per_turn_logprobs(tiny_lm, token_batch, "full")
    window = per_turn_logprobs(tiny_lm, token_batch, "window")
    assert full.keys() == window.keys() == set(range(token_batch.num_turns))
    for t in full:
        torch.testing.assert_close(full[t], window[t], atol=1e-5, rtol=1e-5)


def test_padding_does_not_change_logprobs(tiny_lm, token_batch):
    samples = make_samples(token_batch, np.zeros(token_batch.num_turns, np.float32), "full")
    with torch.no_grad():
        together = response_logprobs(tiny_lm, collate(samples)).logprobs
        alone = torch.cat([response_logprobs(tiny_lm, collate([s])).logprobs for s in samples])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_micro_batches_respect_the_token_budget(token_batch):
    samples = make_samples(token_batch, np.zeros(token_batch.num_turns, np.float32), "window")
    groups = micro_batches(samples, max_tokens=40)
    assert sorted(len(s.input_ids) for g in groups for s in g) == sorted(
        len(s.input_ids) for s in samples
    )
    for g in groups:
        longest = max(len(s.input_ids) for s in g)
        assert len(g) == 1 or longest * len(g) <= 40


def test_untrainable_trajectory_is_refused_with_a_reason(token_batch):
    from agentgym.data import Batch, Trajectory, Turn

    t = Trajectory("t/T-v0", "x", 0, "g", (Turn("o", "a", "a", 0.0, True, False, "s"),), False)
    with pytest.raises(ValueError, match="LLM policy"):
        make_samples(Batch([t]), np.zeros(1, np.float32), "full")


def test_the_padding_mask_is_left_out_only_for_right_padded_rows(tiny_lm, token_batch):
    """Right padding: a causal mask alone gives the logprobs of the samples one by one (and
    the fast kernel); any other padding keeps its mask."""
    import dataclasses

    from agentgym.trainers.loss import padding_mask

    samples = make_samples(token_batch, np.zeros(token_batch.num_turns, np.float32), "full")
    tb = collate(samples)
    assert (tb.attention_mask == 0).any()  # the batch has padding
    assert padding_mask(tb.attention_mask) is None
    # the same rows left-padded: every per-row tensor shifted right by its padding
    pad = (tb.attention_mask == 0).sum(1)
    left = dataclasses.replace(
        tb,
        **{
            name: torch.stack([torch.roll(row, int(p)) for row, p in zip(value, pad, strict=True)])
            for name, value in vars(tb).items()
            if isinstance(value, torch.Tensor) and value.dim() == 2 and name != "allowed"
        },
    )
    assert padding_mask(left.attention_mask) is left.attention_mask
    with torch.no_grad():
        right_lp = response_logprobs(tiny_lm, tb).logprobs
        alone = torch.cat([response_logprobs(tiny_lm, collate([s])).logprobs for s in samples])
    torch.testing.assert_close(right_lp, alone, atol=1e-5, rtol=1e-5)
