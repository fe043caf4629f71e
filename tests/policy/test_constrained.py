"""Constrained decoding in HFPolicy: what is sampled is the renormalised distribution it reports.

Reference values are computed another way: a plain forward pass over prompt + reply, with the
allowed set of each step worked out by prefix matching over the tokenized actions (no trie).
"""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("llguidance")

from agentgym.constraint import ConstraintCompiler, ConstraintError, spec_from_info  # noqa: E402
from agentgym.policy import models  # noqa: E402
from agentgym.policy.base import Conversation, SamplingParams  # noqa: E402
from agentgym.policy.hf import HFPolicy  # noqa: E402
from agentgym.toolcall import parse_tool_call  # noqa: E402

ACTIONS = ["look", "go east", "go west", "open door", "go"]


def conv(key, actions=None, text="You see a door.", info=None):
    return Conversation(
        key,
        [{"role": "system", "content": "play"}, {"role": "user", "content": text}],
        info=info if info is not None else {"admissible_actions": actions},
    )


def reference_logprob(model, tok, prompt_ids, actions, reply_ids, temperature=1.0):
    """log π(reply) under the renormalised distribution, by prefix matching (no trie)."""
    paths = [tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for a in actions]
    ids = torch.tensor([list(prompt_ids) + list(reply_ids)])
    logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].float() / temperature  # [R, V]
    total = 0.0
    for t, token in enumerate(reply_ids):
        allowed = sorted({p[t] for p in paths if len(p) > t and p[:t] == list(reply_ids[:t])})
        assert token in allowed
        z = logits[t]
        total = total + z[token] - torch.logsumexp(z[allowed], 0)
    return total


def test_constrained_reply_is_an_admissible_action_with_renormalised_logprobs():
    model, tok = models.tiny_model(seed=1)
    policy = HFPolicy(model, tok, action_mode="constrained", reuse_cache=False)
    (out,) = policy.generate([conv("a", ACTIONS)], SamplingParams(temperature=0.7, seed=3))
    assert out.text in ACTIONS
    assert out.token_ids[-1] == tok.eos_token_id and len(out.token_ids) == len(out.logprobs)
    assert json.loads(out.constraint)["actions"] == ACTIONS
    with torch.no_grad():
        ref = reference_logprob(model, tok, out.prompt_ids, ACTIONS, out.token_ids, 0.7)
    assert sum(out.logprobs) == pytest.approx(float(ref), abs=1e-4)


def test_sampling_frequencies_follow_the_renormalised_action_probabilities():
    model, tok = models.tiny_model(seed=2)
    policy = HFPolicy(model, tok, action_mode="constrained", reuse_cache=False)
    (probe,) = policy.generate([conv("p", ACTIONS)], SamplingParams(temperature=0.0))
    prompt = list(probe.prompt_ids)
    probs = {}
    with torch.no_grad():
        for a in ACTIONS:
            reply = tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            probs[a] = math.exp(float(reference_logprob(model, tok, prompt, ACTIONS, reply)))
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)  # a distribution over actions
    outs = policy.generate(
        [conv(f"k{i}", ACTIONS) for i in range(600)], SamplingParams(temperature=1.0, seed=5)
    )
    for a in ACTIONS:
        freq = sum(o.text == a for o in outs) / len(outs)
        assert abs(freq - probs[a]) < 4 * math.sqrt(probs[a] * (1 - probs[a]) / 600) + 0.01
    # greedy follows the per-step argmax of the renormalised distribution
    assert probe.text in ACTIONS and all(lp <= 0 for lp in probe.logprobs)


def test_a_single_admissible_action_has_probability_one():
    model, tok = models.tiny_model(seed=3)
    policy = HFPolicy(model, tok, action_mode="constrained")
    (out,) = policy.generate([conv("s", ["open door"])], SamplingParams(temperature=1.0, seed=0))
    assert out.text == "open door"
    assert out.logprobs == (0.0,) * len(out.token_ids)
    assert policy.stats["decode_tokens"] == 1  # the rest was forced without forward passes


def test_constrained_choice_with_kv_reuse_matches_the_stateless_reference():
    model, tok = models.tiny_model(seed=3)
    outs = {}
    for reuse in (True, False):
        policy = HFPolicy(model, tok, action_mode="constrained", reuse_cache=reuse)
        c = conv("c", ACTIONS)
        seq = []
        for turn in range(3):
            (o,) = policy.generate([c], SamplingParams(temperature=0.0))
            seq.append((o.text, list(o.logprobs)))
            c.messages += [
                {"role": "assistant", "content": o.text},
                {"role": "user", "content": f"turn {turn}: nothing happens."},
            ]
        outs[reuse] = seq
    assert [t for t, _ in outs[True]] == [t for t, _ in outs[False]]
    for (_, a), (_, b) in zip(outs[True], outs[False], strict=True):
        assert a == pytest.approx(b, abs=1e-4)


def test_long_actions_are_not_cut_at_max_new_tokens():
    model, tok = models.tiny_model(seed=4)
    policy = HFPolicy(model, tok, action_mode="constrained")
    acts = ["put the small key into the wooden box", "put the small key onto the table"]
    outs = policy.generate(
        [conv(f"l{i}", acts) for i in range(8)], SamplingParams(temperature=1.0, max_new_tokens=3)
    )
    assert all(o.text in acts for o in outs)


def test_without_a_stated_constraint_the_reply_is_free():
    model, tok = models.tiny_model(seed=4)
    policy = HFPolicy(model, tok, action_mode="constrained")
    (out,) = policy.generate(
        [conv("f", info={})], SamplingParams(temperature=0.0, max_new_tokens=3)
    )
    assert out.constraint == "" and 1 <= len(out.token_ids) <= 3


def test_tool_grammar_replies_always_parse_as_a_call_or_answer():
    import agentgym

    env = agentgym.make("agentgym/Search-1Hop-v0")
    _, info = env.reset(seed=0)
    model, tok = models.tiny_model(seed=5)
    policy = HFPolicy(model, tok, action_mode="constrained")
    sampling = SamplingParams(temperature=1.0, max_new_tokens=400, seed=1)
    outs = policy.generate([conv(f"t{i}", info=info) for i in range(6)], sampling)
    for out in outs:
        call = parse_tool_call(out.text)  # raises on an invalid reply
        assert call.name in ("search", "answer")
        if call.name == "search":
            assert isinstance(call.arguments["query"], str)
            assert set(call.arguments) <= {"query", "k"}
        # the stored logprobs are of the grammar-restricted distribution
        masks = ConstraintCompiler(tok, model.config.vocab_size).replay(
            out.constraint, out.token_ids
        )
        assert len(masks) == len(out.token_ids)


def test_replay_refuses_a_token_outside_the_constraint():
    _, tok = models.tiny_model(seed=0)
    compiler = ConstraintCompiler(tok)
    spec = spec_from_info({"admissible_actions": ["look", "go"]})
    bad = tok("lx", add_special_tokens=False)["input_ids"]
    with pytest.raises(ConstraintError, match="outside the turn's stored constraint"):
        compiler.replay(spec, bad)


def test_restricted_entropy_has_finite_gradients_and_the_right_value():
    from agentgym.policy.sampling import restricted_entropy, scaled_log_probs

    logits = torch.tensor([[1.0, 2.0, 0.5, -1.0]], requires_grad=True)
    allowed = torch.tensor([[True, True, False, False]])
    ent = restricted_entropy(scaled_log_probs(logits, 1.0, allowed))
    p = torch.softmax(torch.tensor([1.0, 2.0]), 0)
    assert float(ent.detach()) == pytest.approx(float(-(p * p.log()).sum()), abs=1e-6)
    ent.sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 2] == 0 and logits.grad[0, 3] == 0


def test_the_compilers_trie_cache_is_bounded_and_keeps_recent_lists(monkeypatch):
    import agentgym.constraint as constraint
    from agentgym.policy import models

    _, tok = models.tiny_model(seed=0)
    compiler = constraint.ConstraintCompiler(tok)
    monkeypatch.setattr(constraint, "MAX_CACHED_TRIES", 3)
    specs = [
        constraint.spec_from_info({"admissible_actions": [f"go {i}", "look"]}) for i in range(5)
    ]
    for spec in specs[:3]:
        compiler.matcher(spec)
    compiler.matcher(specs[0])  # used again: now the most recent
    for spec in specs[3:]:
        compiler.matcher(spec)
    assert list(compiler._tries) == [specs[0], specs[3], specs[4]]
    # a dropped list is rebuilt the same
    m = compiler.matcher(specs[1])
    ids = tok("go 1", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    for t in ids:
        m.advance(t)
    assert m.done()
