"""What the vLLM backend needs for training, checked on CPU where it can be, on GPU where not.

CPU: the weights handed to the engine (LoRA folded in as peft merges it; DDP unwrapped), and the
constraint mask the vLLM logits processor applies (a greedy decode masked by it reproduces
HFPolicy's constrained greedy replies). GPU (vLLM + CUDA): constrained replies from the engine,
and sleep / wake / in-memory weight sync.
"""

from __future__ import annotations

import copy
import importlib.util

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentgym.constraint import ConstraintCompiler, spec_from_info, unpack  # noqa: E402
from agentgym.policy import models  # noqa: E402
from agentgym.policy.base import Conversation, SamplingParams  # noqa: E402
from agentgym.policy.hf import HFPolicy  # noqa: E402
from agentgym.policy.sampling import token_logprobs  # noqa: E402
from agentgym.policy.vllm_constraint import ConstraintMasker  # noqa: E402
from agentgym.policy.weights import hf_weights  # noqa: E402

HAS_VLLM = importlib.util.find_spec("vllm") is not None
ACTIONS = ["take key", "open door", "go north", "go east", "look"]


def chat(i: int) -> Conversation:
    info = {"admissible_actions": ACTIONS[i % 3 :]}
    messages = [
        {"role": "system", "content": "You play a game."},
        {"role": "user", "content": f"You are in room {i}. What now?"},
    ]
    return Conversation(key=f"c{i}", messages=messages, info=info)


def test_lora_weights_are_merged_as_peft_merges_them():
    peft = pytest.importorskip("peft")
    model, _ = models.tiny_model(seed=0)
    plain = {k: v.clone() for k, v in model.state_dict().items()}
    lora = peft.get_peft_model(
        model,
        peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)  # non-zero adapters (B starts at 0)
    before = {k: v.clone() for k, v in lora.state_dict().items()}
    got = dict(hf_weights(lora))
    expected = copy.deepcopy(lora).merge_and_unload().state_dict()
    assert set(got) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=0, atol=1e-6, msg=name)
    changed = [n for n in plain if not torch.equal(got[n], plain[n])]
    assert changed and all("q_proj" in n or "v_proj" in n for n in changed)  # adapters folded in
    for name, value in lora.state_dict().items():  # and the trained model is untouched
        assert torch.equal(value, before[name]), name


def test_ddp_wrapped_weights_have_plain_names(tmp_path):
    import torch.distributed as dist

    from agentgym.trainers.distributed import free_port

    model, _ = models.tiny_model(seed=0)
    dist.init_process_group(
        "gloo", rank=0, world_size=1, init_method=f"tcp://127.0.0.1:{free_port()}"
    )
    try:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
        got = dict(hf_weights(wrapped))
    finally:
        dist.destroy_process_group()
    assert set(got) == set(model.state_dict())
    assert all(torch.equal(got[k], v) for k, v in model.state_dict().items())


def test_masked_greedy_decode_reproduces_hf_constrained_replies():
    """The vLLM logits processor's mask, applied in a plain greedy loop over the same model,
    gives HFPolicy's constrained greedy replies token for token, with the same logprobs."""
    model, tokenizer = models.tiny_model(seed=0)
    hf = HFPolicy(model, tokenizer, action_mode="constrained", reuse_cache=False)
    convs = [chat(i) for i in range(3)]
    replies = hf.generate(convs, SamplingParams(temperature=0.0, max_new_tokens=12))
    compiler = ConstraintCompiler(tokenizer, model.config.vocab_size)
    for conv, reply in zip(convs, replies, strict=True):
        spec = spec_from_info(conv.info)
        masker = ConstraintMasker(compiler, spec)
        ids = list(reply.prompt_ids)
        out: list[int] = []
        logprobs = []
        with torch.no_grad():
            while len(out) < 12:
                logits = model(torch.tensor([ids + out])).logits[0, -1]
                masked = masker(out, logits)
                token = int(torch.argmax(masked))
                logprobs.append(float(token_logprobs(masked, torch.tensor(token), 1.0)))
                out.append(token)
                if token == tokenizer.eos_token_id:
                    break
        assert out == list(reply.token_ids)
        assert reply.text in conv.info["admissible_actions"]
        torch.testing.assert_close(
            torch.tensor(logprobs), torch.tensor(reply.logprobs), rtol=0, atol=1e-5
        )
        # and the mask at each step is the set the trainer replays from the stored spec
        replay = compiler.replay(spec, out)
        check = ConstraintMasker(compiler, spec)
        for t, packed in enumerate(replay):
            allowed = check.allowed(out[:t], model.config.vocab_size, "cpu")
            assert torch.equal(allowed, unpack(torch.from_numpy(packed), allowed.shape[-1]))


# ---------------------------------------------------------------------------- real engine

needs_gpu = pytest.mark.skipif(
    not (HAS_VLLM and torch.cuda.is_available()), reason="needs vLLM and a CUDA GPU"
)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    model, tokenizer = models.tiny_model(seed=0, hidden=256, layers=2)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model


@pytest.mark.gpu
@needs_gpu
def test_engine_constrained_replies_are_admissible(tiny_folder):
    from agentgym.policy.vllm import VLLMPolicy

    folder, model = tiny_folder
    engine = VLLMPolicy(folder, dtype="float32", gpu_memory_utilization=0.2, decoding="constrained")
    convs = [chat(i) for i in range(3)]
    replies = engine.generate(convs, SamplingParams(temperature=1.0, max_new_tokens=12, seed=0))
    compiler = ConstraintCompiler(engine.tokenizer, model.config.vocab_size)
    for conv, reply in zip(convs, replies, strict=True):
        assert reply.constraint == spec_from_info(conv.info)
        assert reply.text in conv.info["admissible_actions"]
        compiler.replay(reply.constraint, reply.token_ids)  # every token inside its set
        assert all(lp <= 1e-6 for lp in reply.logprobs)


@pytest.mark.gpu
@needs_gpu
def test_sleep_wake_and_sync_restore_the_engine(tiny_folder):
    from agentgym.policy.vllm import VLLMPolicy

    folder, model = tiny_folder
    engine = VLLMPolicy(folder, dtype="float32", gpu_memory_utilization=0.2, enable_sleep_mode=True)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=8)
    first = engine.generate([chat(0)], greedy)
    engine.end_episodes(["c0"])
    free_before = torch.cuda.mem_get_info()[0]
    engine.sleep()
    assert torch.cuda.mem_get_info()[0] > free_before  # memory went back
    engine.wake_up()
    engine.sync_weights(model)
    again = engine.generate([chat(0)], greedy)
    assert again[0].token_ids == first[0].token_ids
