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
    assert first == f"# agentgym train configs/{path.name}"
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
