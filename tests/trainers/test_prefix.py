"""Training from the rollout's frozen-layer states (agentgym.policy.prefix) is exact.

Checked against computations that do not use the recorded states: the model's own hidden
states on the whole token sequence, and the trainer's full forward (logprobs and gradient).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from tiny_runs import tiny_run_config

from agentgym.constraint import ConstraintCompiler
from agentgym.policy.prefix import Prefix
from agentgym.trainers import loss as loss_module
from agentgym.trainers.build import build_model, build_policy, capture_prefix
from agentgym.trainers.distributed import SINGLE
from agentgym.trainers.loop import collect_iteration, train
from agentgym.trainers.loss import response_logits, response_logprobs
from agentgym.trainers.tensorize import check_prefix, collate, constrain, make_samples

LORA = ("lora.enabled=true", "lora.top_layers=1", "policy.decoding=constrained")


@pytest.fixture(scope="module")
def rollout(tmp_path_factory):
    """A tiny 2-layer model with LoRA on its top layer (random adapters), one iteration."""
    cfg = tiny_run_config(tmp_path_factory.mktemp("prefix"), *LORA, "env.max_turns=4")
    model, tok = build_model(cfg, "cpu")
    gen = torch.Generator().manual_seed(0)
    for p in model.parameters():
        if p.requires_grad:  # adapters away from their zero init: the top layer matters
            p.data = 0.3 * torch.randn(p.shape, generator=gen)
    policy = build_policy(cfg, model, tok, "cpu")
    layer = capture_prefix(cfg, policy, model, SINGLE)
    batch = collect_iteration(cfg, policy, 1)
    states = policy.pop_prefix_states()
    return cfg, model, tok, layer, batch, states


def test_the_first_trainable_layer_is_found(rollout):
    _, model, _, layer, _, _ = rollout
    assert layer == model.config.num_hidden_layers - 1 == 1


def test_recorded_states_are_the_models_own_hidden_states(rollout):
    _, model, _, layer, batch, states = rollout
    for traj in batch.trajectories:
        ids = [t for turn in traj.turns for t in (*turn.prompt_ids, *turn.response_ids)]
        (segment,) = states[traj.traj_id]  # one sequence per episode (KV reuse)
        assert 0 < len(ids) - len(segment) <= len(traj.turns[-1].response_ids)
        with torch.no_grad():
            hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states[layer]
        torch.testing.assert_close(segment, hidden[0, : len(segment)], atol=1e-5, rtol=1e-4)


def _logprobs_and_grad(model, tb, advantages):
    model.zero_grad(set_to_none=True)
    lp = response_logprobs(model, tb).logprobs
    (lp * advantages).sum().backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])
    return lp.detach(), grad


def test_logprobs_and_gradient_equal_the_full_forwards(rollout):
    _, model, tok, layer, batch, states = rollout
    compiler = ConstraintCompiler(tok, model.config.vocab_size)
    adv = np.random.default_rng(0).normal(size=batch.num_turns)
    samples = make_samples(batch, adv, "full", (layer, states))
    samples = check_prefix(constrain(samples, batch, compiler))
    assert all(s.prefix is not None for s in samples)
    plain = [dataclasses.replace(s, prefix=None) for s in samples]
    with_states, without = collate(samples, tok.pad_token_id), collate(plain, tok.pad_token_id)
    assert with_states.prefix is not None and without.prefix is None
    select = without.loss_mask[:, 1:]
    weights = without.advantages[:, 1:][select]
    model.train()
    lp_top, g_top = _logprobs_and_grad(model, with_states, weights)
    lp_full, g_full = _logprobs_and_grad(model, without, weights)
    # fp32 rounding only (the rollout computed the states incrementally, with a KV cache)
    torch.testing.assert_close(lp_top, lp_full, atol=1e-4, rtol=0)
    # and both are what the rollout sampled with
    rollout_lp = without.old_logprobs[:, 1:][select]
    torch.testing.assert_close(lp_top, rollout_lp, atol=1e-4, rtol=0)
    torch.testing.assert_close(lp_full, rollout_lp, atol=1e-4, rtol=0)
    cosine = torch.nn.functional.cosine_similarity(g_top, g_full, dim=0)
    assert float(cosine) >= 0.99999
    assert float((g_top - g_full).norm() / g_full.norm()) <= 1e-4


def test_states_of_the_wrong_layer_are_caught_and_the_full_forward_used(rollout, monkeypatch):
    _, model, tok, layer, batch, states = rollout
    compiler = ConstraintCompiler(tok, model.config.vocab_size)
    samples = check_prefix(
        constrain(
            make_samples(batch, np.ones(batch.num_turns), "full", (layer, states)),
            batch,
            compiler,
        )
    )
    tb = collate(samples, tok.pad_token_id)
    wrong = dataclasses.replace(tb, prefix=Prefix(layer - 1, tb.prefix.states))
    monkeypatch.setattr(loss_module, "_TOP_OK", {})
    with torch.no_grad():
        with pytest.warns(UserWarning, match="differ from a full forward"):
            got = response_logits(model, wrong)
        full = response_logits(model, dataclasses.replace(tb, prefix=None))
    torch.testing.assert_close(got, full)


def test_a_training_run_uses_the_states_and_scores_what_it_sampled(tmp_path):
    # the novelty bonus gives returns that differ, so every iteration makes a step
    cfg = tiny_run_config(tmp_path, *LORA, "trainer.iterations=2", "reward.novelty_bonus=0.1")
    records = [r for r in train(cfg).read_metrics() if r["phase"] == "train"]
    assert all(r["reused_states_share"] == 1.0 for r in records)
    assert all(r["logprob_mismatch"] <= 1e-4 for r in records)  # rollout vs update, top path
    assert all(r["ratio"] == pytest.approx(1.0, abs=1e-3) for r in records)
