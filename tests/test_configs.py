"""Every shipped config loads, validates, names a registered env and estimator, and says how
to run it on its first line."""

from pathlib import Path

import pytest

from agentgym import credit
from agentgym.config import ConfigError, load
from agentgym.registry import spec
from agentgym.trainers.config import TrainConfig

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert any(p.name == "quickstart.yaml" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_valid(path):
    first = path.read_text().splitlines()[0]
    assert first == f"# agentgym train configs/{path.name}" or first.startswith(
        f"# agentgym train configs/{path.name} "
    )
    cfg = load(TrainConfig, path)
    spec(cfg.env.id)  # registered
    credit.make_config(cfg.credit.estimator, cfg.credit.options)  # known estimator + options
    assert cfg.name and cfg.trainer.iterations > 0


def test_unknown_key_names_the_nearest(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  learning_rate: 1e-5\n")
    with pytest.raises(ConfigError, match="Valid keys"):
        load(TrainConfig, bad)
    with pytest.raises(ConfigError, match="Did you mean 'iterations'"):
        load(TrainConfig, None, ["trainer.iteration=3"])


SMOKE = [
    "policy.model=tiny",
    "policy.backend=hf",
    "policy.device=cpu",
    "policy.dtype=float32",
    "policy.max_new_tokens=24",
    "env.max_turns=2",
    "env.tasks_per_iter=1",
    "env.group_size=2",
    "env.workers=0",
    "trainer.iterations=1",
    "trainer.eval_episodes=1",
    "trainer.eval_every=0",
    "trainer.eval_at_start=true",
    "trainer.micro_batch_tokens=8192",
]


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_recipe_smoke_runs_with_the_tiny_model(path, tmp_path):
    """One iteration of every recipe on a tiny random model: the whole chain runs."""
    pytest.importorskip("transformers")
    from agentgym.trainers.loop import train

    cfg = load(TrainConfig, path, [*SMOKE, f"out_dir={tmp_path}", "name=smoke"])
    if cfg.env.id.startswith(("agentgym/Code", "agentgym/HumanEval")):
        from agentgym.sandbox import IsolationUnavailable, Sandbox

        try:
            Sandbox()
        except IsolationUnavailable as exc:
            pytest.skip(str(exc))
    run = train(cfg)
    records = list(run.read_metrics())
    step = next(r for r in records if r["phase"] == "train")
    if cfg.policy.decoding == "constrained" and cfg.policy.action_format != "tool":
        assert step["invalid_rate"] == 0.0  # a choice among admissible actions is always valid
    assert sum(r["phase"] == "eval" for r in records) == 2
