"""The registry as the trainer uses it: names, configs, helpful errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import agentgym.credit as credit
from agentgym.credit import GiGPOConfig, get, make_config, names
from agentgym.data import Batch

ALL = ["gigpo", "graphgpo", "grpo", "hgpo", "rloo", "salt", "turn_rloo"]


def test_import_registers_all_seven() -> None:
    assert names() == ALL


@pytest.mark.parametrize("name", ALL)
def test_default_config_and_float32(name: str, batch_a: Batch) -> None:
    est = get(name)
    assert dataclasses.is_dataclass(est.config_cls)
    adv = est(batch_a)
    assert adv.dtype == np.float32 and adv.shape == (batch_a.num_turns,)
    np.testing.assert_array_equal(adv, credit.compute(name, batch_a))


@pytest.mark.parametrize("name", ALL)
def test_configs_are_frozen(name: str) -> None:
    config = make_config(name)
    for field in dataclasses.fields(config):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(config, field.name, None)


def test_unknown_option_names_the_nearest() -> None:
    with pytest.raises(KeyError, match=r"'nrom'.*Did you mean 'norm'\?.*Valid options"):
        make_config("grpo", {"nrom": "std"})


def test_unknown_estimator_suggests_gigpo() -> None:
    with pytest.raises(KeyError, match=r"Did you mean 'gigpo'\?"):
        get("gipgo")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("grpo", {"norm": "l2"}, r"norm='l2' is not one of 'std', 'mean_norm'"),
        ("grpo", {"eps": 0.0}, r"eps=0.0 must lie in \(0.0, inf\]"),
        ("gigpo", {"gamma": "0.9"}, r"gamma='0.9' must be a number"),
        ("turn_rloo", {"gamma": 1.5}, r"gamma=1.5 must lie in \[0.0, 1.0\]"),
        ("gigpo", {"similarity_threshold": 0.0}, r"similarity_threshold=0.0 must lie in \(0.0"),
        ("salt", {"base": "ppo"}, r"base='ppo' is not one of 'grpo', 'rloo'"),
        ("salt", {"edge_key": "state"}, r"edge_key='state'"),
        ("salt", {"count": "once"}, r"count='once'"),
        ("hgpo", {"history_length": -1}, r"history_length=-1 must lie in \[0, 64\]"),
        ("hgpo", {"history_length": 2.0}, r"history_length=2.0 must be an integer"),
        ("hgpo", {"alpha": -1.0}, r"alpha=-1.0 must lie in \[0.0, 100.0\]"),
        ("hgpo", {"norm": "l1"}, r"norm='l1' is not one of 'std', 'mean_norm'"),
        ("hgpo", {"base_group": "yes"}, r"base_group='yes' must be true or false"),
        ("graphgpo", {"gamma": 1.5}, r"gamma=1.5 must lie in \[0.0, 1.0\]"),
        ("graphgpo", {"scale": 0.0}, r"scale=0.0 must lie in \(0.0, inf\]"),
        ("graphgpo", {"episode_weight": -1}, r"episode_weight=-1 must lie in \[0.0, inf\]"),
        ("graphgpo", {"normalize_distance": 1}, r"normalize_distance=1 must be true or false"),
    ],
)
def test_bad_values_are_named(name: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_config(name, options)


def test_make_config_passes_options() -> None:
    assert make_config("gigpo", {"gamma": 0.5}) == GiGPOConfig(gamma=0.5)
