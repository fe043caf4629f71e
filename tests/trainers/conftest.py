import numpy as np
import pytest
import torch

from agentgym.data import Batch, Trajectory, Turn

VOCAB = 97


@pytest.fixture
def tiny_lm():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
    )
    model = transformers.LlamaForCausalLM(cfg)
    model.eval()
    return model


def token_trajectory(rng: np.random.Generator, group: str, n_turns: int, name: str) -> Trajectory:
    turns = []
    for i in range(n_turns):
        p = tuple(int(x) for x in rng.integers(1, VOCAB, size=int(rng.integers(3, 9))))
        r = tuple(int(x) for x in rng.integers(1, VOCAB, size=int(rng.integers(1, 5))))
        turns.append(
            Turn(
                observation=f"o{i}",
                output=f"a{i}",
                action=f"a{i}",
                reward=float(i == n_turns - 1),
                terminated=i == n_turns - 1,
                truncated=False,
                state_key=f"s{i}",
                prompt_ids=p,
                response_ids=r,
                response_logprobs=tuple([-1.0] * len(r)),
            )
        )
    return Trajectory("t/T-v0", "task", 0, group, tuple(turns), won=True, traj_id=name)


@pytest.fixture
def token_batch() -> Batch:
    rng = np.random.default_rng(0)
    return Batch([token_trajectory(rng, f"g{i % 2}", 2 + i, f"t{i}") for i in range(4)])
