"""The supervised warm start: expert replies laid out as the policy samples them, the gradient
of its loss, and a warm start that makes the tiny model play the toy."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_runs import tiny_run_config  # noqa: E402

from agentgym.cli import main  # noqa: E402
from agentgym.constraint import ConstraintCompiler  # noqa: E402
from agentgym.data import Batch  # noqa: E402
from agentgym.policy import models  # noqa: E402
from agentgym.policy.base import SamplingParams  # noqa: E402
from agentgym.policy.hf import HFPolicy  # noqa: E402
from agentgym.policy.scripted import OraclePolicy  # noqa: E402
from agentgym.prompting import action_format  # noqa: E402
from agentgym.rollout import collect  # noqa: E402
from agentgym.store import Run  # noqa: E402
from agentgym.trainers.expert_data import (  # noqa: E402
    ExpertDataError,
    expert_batch,
    read_trajectories,
    rebuild,
)
from agentgym.trainers.sft import expert_samples, sft_loss, token_logprobs  # noqa: E402
from agentgym.trainers.tensorize import collate  # noqa: E402

ENV = "agentgym/KeyDoor-Small-v0"


def strip_tokens(batch: Batch) -> list:
    """The trajectories as a scripted policy stores them: no token data, no constraint."""
    empty = {"prompt_ids": (), "response_ids": (), "response_logprobs": (), "constraint": ""}
    return [
        dataclasses.replace(t, turns=tuple(dataclasses.replace(u, **empty) for u in t.turns))
        for t in batch.trajectories
    ]


@pytest.mark.parametrize(
    ("window", "list_actions"), [(None, True), (None, False), (1, True), (2, False)]
)
def test_rebuilt_tokens_are_those_the_policy_fed_and_sampled(window, list_actions):
    model, tok = models.tiny_model(seed=3)
    fmt = action_format("plain", list_actions=list_actions)
    history = "full" if window is None else "window"
    policy = HFPolicy(model, tok, action_mode="constrained", history=history)
    rolled = collect(
        ENV,
        policy,
        tasks=2,
        group_size=2,
        seed=5,
        max_turns=5,
        sampling=SamplingParams(temperature=1.0, seed=1),
        env_kwargs={"n_rooms": 2},
        action_format=fmt,
        history_window=window,
    )
    compiler = ConstraintCompiler(tok, model.config.vocab_size)
    for got, want in zip(strip_tokens(rolled), rolled.trajectories, strict=True):
        again = rebuild(got, tok, fmt, constrained=True, compiler=compiler, window=window)
        assert len(again.turns) == len(want.turns) >= 2
        for a, b in zip(again.turns, want.turns, strict=True):
            assert a.prompt_ids == b.prompt_ids
            assert a.response_ids == b.response_ids
            assert a.new_sequence == b.new_sequence
            assert a.constraint == b.constraint
        assert again.metadata["history"] == want.metadata["history"]


def test_the_recipe_layout_not_the_collected_one_is_rebuilt():
    """Oracle episodes collected with the action list are rebuilt for a recipe without it."""
    model, tok = models.tiny_model(seed=4)
    oracle = collect(ENV, OraclePolicy(), tasks=2, group_size=1, seed=0, env_kwargs={"n_rooms": 2})
    bare = action_format("plain", list_actions=False)
    compiler = ConstraintCompiler(tok, model.config.vocab_size)
    batch, counts = expert_batch(
        oracle.trajectories, tok, bare, constrained=True, compiler=compiler
    )
    assert counts == {"kept": 0, "rebuilt": 2, "dropped": 0}
    listed, _ = expert_batch(
        oracle.trajectories, tok, action_format("plain"), constrained=True, compiler=compiler
    )
    hint = "Choose one of these actions"
    assert hint in tok.decode(list(listed.trajectories[0].turns[0].prompt_ids))
    assert hint not in tok.decode(list(batch.trajectories[0].turns[0].prompt_ids))
    assert all(t.won for t in batch.trajectories)
    for traj in batch.trajectories:
        for turn in traj.turns:
            assert json.loads(turn.constraint)["kind"] == "choice"
            assert turn.response_ids[-1] == tok.eos_token_id
            assert set(turn.response_logprobs) == {0.0}  # the expert chose with probability 1


def test_a_reply_outside_its_constraint_is_dropped_and_none_left_is_an_error():
    model, tok = models.tiny_model(seed=4)
    oracle = collect(ENV, OraclePolicy(), tasks=1, group_size=1, seed=0, env_kwargs={"n_rooms": 2})
    traj = oracle.trajectories[0]
    turns = list(traj.turns)
    turns[0] = dataclasses.replace(turns[0], action="dance", output="dance")
    bad = dataclasses.replace(traj, turns=tuple(turns))
    compiler = ConstraintCompiler(tok, model.config.vocab_size)
    fmt = action_format("plain")
    _, counts = expert_batch([traj, bad], tok, fmt, constrained=True, compiler=compiler)
    assert counts["dropped"] == 1 and counts["rebuilt"] == 1
    with pytest.raises(ExpertDataError, match="none of the 1 trajectories"):
        expert_batch([bad], tok, fmt, constrained=True, compiler=compiler)
    # free generation has no constraint to break: the reply is trained as given
    free, counts = expert_batch([bad], tok, fmt, constrained=False, compiler=compiler)
    assert counts["rebuilt"] == 1 and free.trajectories[0].turns[0].constraint == ""


def test_read_trajectories_keeps_won_unfaulted_ones(tmp_path):
    random_run = tmp_path / "random"
    assert (
        main(["rollout", ENV, "--policy", "random", "--tasks", "6", "--out", str(random_run)]) == 0
    )
    everything = read_trajectories([random_run], won_only=False)
    won = [t for t in everything if t.won]
    if won:
        assert read_trajectories([random_run]) == won
    else:
        with pytest.raises(ExpertDataError, match="sft.won_only=false"):
            read_trajectories([random_run])
    assert len(read_trajectories([random_run], won_only=False, limit=3)) == 3


def test_sft_gradient_equals_the_analytic_grad_log_pi_of_the_expert_replies():
    """−N·∇loss equals ∇Σ_turns log π(reply) of the constrained policy, computed another way:
    a plain forward over the whole sequence and per-step allowed sets by prefix matching."""
    model, tok = models.tiny_model(seed=11)
    temperature = 0.8
    oracle = collect(ENV, OraclePolicy(), tasks=1, group_size=1, seed=2, env_kwargs={"n_rooms": 2})
    compiler = ConstraintCompiler(tok, model.config.vocab_size)
    batch, _ = expert_batch(
        oracle.trajectories, tok, action_format("plain"), constrained=True, compiler=compiler
    )
    (traj,) = batch.trajectories
    assert len(traj.turns) >= 3
    (sample,) = expert_samples(batch, "full", compiler)
    tb = collate([sample], tok.pad_token_id)
    model.zero_grad(set_to_none=True)
    token_lp, _ = token_logprobs(model, tb, temperature)
    n = token_lp.numel()
    sft_loss(token_lp, n).backward()
    got = -n * torch.cat([p.grad.flatten() for p in model.parameters()])

    model.zero_grad(set_to_none=True)
    ids = [i for turn in traj.turns for i in (*turn.prompt_ids, *turn.response_ids)]
    logits = model(torch.tensor([ids])).logits[0].float() / temperature
    logp, pos = 0.0, 0
    for turn in traj.turns:
        pos += len(turn.prompt_ids)
        actions = json.loads(turn.constraint)["actions"]
        paths = [
            tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for a in actions
        ]
        reply = list(turn.response_ids)
        for t, token in enumerate(reply):
            allowed = sorted({p[t] for p in paths if len(p) > t and p[:t] == reply[:t]})
            row = logits[pos + t - 1]
            logp = logp + row[token] - torch.logsumexp(row[allowed], 0)
        pos += len(reply)
    logp.backward()
    ref = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert float(ref.norm()) > 0
    cosine = float(torch.nn.functional.cosine_similarity(got, ref, dim=0))
    assert cosine >= 0.9999
    assert float((got - ref).norm() / ref.norm()) <= 1e-4
    # and the loss is −mean log π of those tokens
    torch.testing.assert_close(
        sft_loss(token_lp.detach(), n), -logp.detach() / n, atol=1e-5, rtol=1e-5
    )


def test_tool_calls_of_the_search_expert_fit_the_reply_grammar():
    model, tok = models.tiny_model(seed=1)
    oracle = collect(
        "agentgym/Search-1Hop-v0", OraclePolicy(), tasks=3, group_size=1, seed=0,
        action_format="tool",
    )  # fmt: skip
    assert all(t.won for t in oracle.trajectories)
    compiler = ConstraintCompiler(tok, model.config.vocab_size)
    batch, counts = expert_batch(
        oracle.trajectories, tok, action_format("tool"), constrained=True, compiler=compiler
    )
    assert counts["rebuilt"] == 3 and counts["dropped"] == 0
    kinds = {json.loads(t.constraint)["kind"] for tr in batch.trajectories for t in tr.turns}
    assert kinds == {"grammar"}
    assert any("<tool_call>" in t.output for tr in batch.trajectories for t in tr.turns)


def test_warm_start_from_oracle_episodes_makes_the_tiny_model_play_the_toy(tmp_path):
    """Cold, the tiny random model wins few games; trained on oracle episodes it wins >= 90%
    greedy on held-out seeds, and `agentgym train` starts from its weights."""
    cfg = tiny_run_config(
        tmp_path,
        "env.kwargs={n_rooms: 2}",
        "env.max_turns=8",
        "policy.decoding=constrained",
        "sft.oracle_episodes=12",
        "sft.epochs=4",
        "sft.lr=3e-3",
        "sft.batch_trajectories=4",
        "sft.eval_every=0",
        "trainer.eval_episodes=16",
        name="sft",
    )
    from agentgym.trainers.sft import warm_start

    run = warm_start(cfg)
    evals = [r for r in run.read_metrics() if r.get("phase") == "eval"]
    assert evals[0]["iteration"] == 0 and evals[-1]["iteration"] == 4
    assert evals[-1]["success_rate"] >= 0.9, evals
    assert evals[-1]["success_rate"] > evals[0]["success_rate"]
    epochs = [r for r in run.read_metrics() if r.get("phase") == "sft"]
    assert epochs[-1]["sft_nll"] < epochs[0]["sft_nll"]
    assert Run(run.path / "expert").read_trajectories()  # the oracle episodes, a rollout folder
    assert (run.path / "model" / "config.json").is_file()
    # the expert data is data like any other: the trained-on trajectories replay and inspect
    assert main(["replay", str(run.path)]) == 0
    assert main(["inspect", str(run.path)]) == 0
    # RL starts from the warm-started weights with one setting
    out = tmp_path / "rl"
    code = main(
        [
            "train",
            str(tmp_path / "sft" / "config.yaml"),
            f"out_dir={out}",
            "name=rl",
            f"policy.model={run.path / 'model'}",
            "trainer.iterations=1",
            "trainer.eval_at_start=false",
            "trainer.eval_episodes=16",
        ]
    )
    assert code == 0
    after = [r for r in Run(out / "rl").read_metrics() if r.get("phase") == "eval"]
    assert after[-1]["success_rate"] >= 0.8


def test_sft_without_data_names_the_settings(tmp_path, capsys):
    code = main(["sft", "configs/quickstart.yaml", f"out_dir={tmp_path}", "policy.model=tiny"])
    assert code == 2
    assert "sft.data=" in capsys.readouterr().err
    assert not (tmp_path / "quickstart").exists()


def test_expert_samples_put_every_reply_token_in_the_loss():
    model, tok = models.tiny_model(seed=2)
    oracle = collect(ENV, OraclePolicy(), tasks=2, group_size=1, seed=0, env_kwargs={"n_rooms": 2})
    compiler = ConstraintCompiler(tok, model.config.vocab_size)
    batch, _ = expert_batch(
        oracle.trajectories, tok, action_format("plain"), constrained=True, compiler=compiler
    )
    samples = expert_samples(batch, "window", compiler)
    assert len(samples) == batch.num_turns
    for s, turn in zip(samples, (t for tr in batch.trajectories for t in tr.turns), strict=True):
        assert sum(s.loss_mask) == len(turn.response_ids)
        assert set(np.array(s.advantages)[np.array(s.loss_mask)]) == {1.0}


def test_sft_without_usable_data_leaves_no_run_folder(tmp_path, capsys):
    lost = tmp_path / "lost"
    Run.create(lost, config={"policy": "none"})  # a run folder with no trajectories
    code = main(
        ["sft", "configs/quickstart.yaml", f"out_dir={tmp_path}", "name=s", "policy.model=tiny",
         f"sft.data=[{lost}]"]
    )  # fmt: skip
    assert code == 2
    assert "agentgym rollout ENV --policy oracle" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
