"""The gradient the trainer applies equals the analytic ∇log π(a) of the sampling distribution.

A turn is sampled under an admissible-action constraint on a tiny model; the trainer's pieces
(make_samples → constrain → collate → response_logprobs → ppo_loss) give one gradient, and a
reference computed another way gives ∇log π(a): a plain forward pass over prompt + reply with
each step's allowed set worked out by prefix matching over the tokenized actions.

At ratio 1 with advantage A and token-mean aggregation over N response tokens, the PPO loss has
gradient −(A/N)·∇log π(a), so −N·∇loss must equal ∇log π(a).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentgym.constraint import ConstraintCompiler  # noqa: E402
from agentgym.data import Batch, Trajectory, Turn  # noqa: E402
from agentgym.policy import models  # noqa: E402
from agentgym.policy.base import Conversation, SamplingParams  # noqa: E402
from agentgym.policy.hf import HFPolicy  # noqa: E402
from agentgym.trainers.loss import LossConfig, ppo_loss, response_logprobs  # noqa: E402
from agentgym.trainers.tensorize import collate, constrain, make_samples  # noqa: E402

ACTIONS = ["look", "go east", "go west", "open the wooden door", "go", "take key"]


def sample_turn(model, tok, actions, temperature, seed):
    policy = HFPolicy(model, tok, action_mode="constrained", reuse_cache=False)
    conv = Conversation(
        "g",
        [{"role": "system", "content": "play"}, {"role": "user", "content": "A door."}],
        info={"admissible_actions": actions},
    )
    (out,) = policy.generate([conv], SamplingParams(temperature=temperature, seed=seed))
    turn = Turn(
        observation="A door.",
        output=out.text,
        action=out.text,
        reward=1.0,
        terminated=True,
        truncated=False,
        state_key="s",
        prompt_ids=out.prompt_ids,
        response_ids=out.token_ids,
        response_logprobs=out.logprobs,
        new_sequence=True,
        constraint=out.constraint,
    )
    traj = Trajectory("env", "t", 0, "grp", (turn,), won=True, traj_id="g#0")
    return out, Batch((traj,))


def trainer_gradient(model, tok, batch, temperature, advantage=1.0):
    """Gradient of the trainer's loss for the batch's single turn; also the first-epoch ratio."""
    model.zero_grad(set_to_none=True)
    compiler = ConstraintCompiler(tok, model.config.vocab_size)
    samples = constrain(make_samples(batch, np.array([advantage]), "full"), batch, compiler)
    tb = collate(samples, tok.pad_token_id)
    select = tb.loss_mask[:, 1:]
    out = response_logprobs(model, tb, temperature=temperature)
    n = int(select.sum())
    loss, _ = ppo_loss(
        out.logprobs,
        tb.old_logprobs[:, 1:][select],
        tb.advantages[:, 1:][select],
        tb.turn_ids[:, 1:][select],
        LossConfig(),
        total_tokens=n,
        total_turns=1,
    )
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters()])
    ratio = (out.logprobs - tb.old_logprobs[:, 1:][select]).exp()
    return grad, n, ratio.detach()


def analytic_gradient(model, tok, prompt_ids, actions, reply_ids, temperature):
    """∇ log π(reply) with per-step allowed sets from prefix matching (no trie, no masks)."""
    model.zero_grad(set_to_none=True)
    paths = [tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for a in actions]
    ids = torch.tensor([list(prompt_ids) + list(reply_ids)])
    logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].float() / temperature
    logp = 0.0
    for t, token in enumerate(reply_ids):
        allowed = sorted({p[t] for p in paths if len(p) > t and p[:t] == list(reply_ids[:t])})
        logp = logp + logits[t, token] - torch.logsumexp(logits[t, allowed], 0)
    logp.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize(
    ("temperature", "seed"), [(1.0, 0), (1.0, 1), (0.7, 2), (1.0, 3), (1.3, 4)]
)
def test_trainer_gradient_equals_grad_log_pi_of_the_sampled_action(temperature, seed):
    model, tok = models.tiny_model(seed=seed)
    out, batch = sample_turn(model, tok, ACTIONS, temperature, seed)
    grad, n, ratio = trainer_gradient(model, tok, batch, temperature)
    ref = analytic_gradient(model, tok, out.prompt_ids, ACTIONS, out.token_ids, temperature)
    assert float(ref.norm()) > 0
    got = -n * grad
    cosine = float(torch.nn.functional.cosine_similarity(got, ref, dim=0))
    rel = float((got - ref).norm() / ref.norm())
    assert cosine >= 0.9999, (out.text, cosine)
    assert rel <= 1e-4, (out.text, rel)
    torch.testing.assert_close(ratio, torch.ones_like(ratio), atol=1e-5, rtol=0)


def test_actions_of_different_lengths_all_get_the_exact_gradient():
    model, tok = models.tiny_model(seed=7)
    seen = set()
    for seed in range(40):
        out, batch = sample_turn(model, tok, ACTIONS, 1.0, seed)
        if out.text in seen:
            continue
        seen.add(out.text)
        grad, n, _ = trainer_gradient(model, tok, batch, 1.0)
        ref = analytic_gradient(model, tok, out.prompt_ids, ACTIONS, out.token_ids, 1.0)
        got = -n * grad
        assert float((got - ref).norm() / ref.norm()) <= 1e-4, out.text
    assert len({len(a) for a in seen}) >= 3  # several lengths were checked


def test_a_single_admissible_action_gets_zero_gradient():
    model, tok = models.tiny_model(seed=8)
    out, batch = sample_turn(model, tok, ["open the wooden door"], 1.0, 0)
    assert out.text == "open the wooden door"
    grad, _, _ = trainer_gradient(model, tok, batch, 1.0, advantage=5.0)
    assert float(grad.abs().max()) == 0.0
