"""The loop with the new estimators and the optional stabilisers switched on (tiny model, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
from test_loop import tiny_config
from test_tool_efficiency import traj

from agentgym.data import Batch
from agentgym.trainers.config import RewardSection
from agentgym.trainers.filtering import keep_groups
from agentgym.trainers.loop import shape_rewards, train
from agentgym.trainers.options import ToolEfficiencySection

pytest.importorskip("transformers")


@pytest.mark.parametrize(
    ("estimator", "extra"),
    [
        ("hgpo", ("trainer.llds.coef=0.1", "trainer.llds.trigger=trajectory")),
        (
            "graphgpo",
            ("trainer.llds.coef=0.1", "trainer.llds.trigger=turn", "trainer.layout=window"),
        ),
    ],
)
def test_new_estimators_train_with_llds(tmp_path, estimator: str, extra: tuple[str, ...]) -> None:
    cfg = tiny_config(tmp_path, "trainer.iterations=1", f"credit.estimator={estimator}", *extra)
    run = train(cfg)
    record = next(r for r in run.read_metrics() if r["phase"] == "train")
    assert np.isfinite(record["loss"])
    assert record["llds_penalty"] >= 0 and 0 <= record["llds_units_fell"] <= 1
    assert not np.isnan(run.read_batch(1).advantages(estimator)).any()


def test_filtered_groups_are_counted_and_stay_in_the_store(tmp_path) -> None:
    cfg = tiny_config(tmp_path, "trainer.iterations=2", "trainer.filter_groups.mode=zero_variance")
    run = train(cfg)
    records = [r for r in run.read_metrics() if r["phase"] == "train"]
    for it, record in enumerate(records, start=1):
        batch = run.read_batch(it)  # every trajectory is stored, filtered or not
        assert len(batch) == cfg.env.tasks_per_iter * cfg.env.group_size
        _, expected = keep_groups(shape_rewards(batch, cfg.reward), cfg.trainer.filter_groups)
        assert {k: record[k] for k in expected} == expected
        if record["filter_groups_kept"]:
            assert np.isfinite(record["loss"])
        else:  # nothing left to train on: no optimizer step
            assert record["empty_update"] == 1.0 and "loss" not in record


def test_trajectory_trigger_needs_the_full_layout(tmp_path) -> None:
    cfg = tiny_config(
        tmp_path,
        "trainer.llds.coef=0.1",
        "trainer.llds.trigger=trajectory",
        "trainer.layout=window",
    )
    with pytest.raises(ValueError, match="set trainer.llds.trigger=turn"):
        train(cfg)


def test_reward_shaping_applies_tool_efficiency_before_the_added_terms() -> None:
    batch = Batch((traj("g", 3, True, "a"), traj("g", 1, True, "b")))  # n = 1
    section = RewardSection(win_bonus=0.5, tool_efficiency=ToolEfficiencySection(mode="group"))
    shaped = shape_rewards(batch, section)
    r_tool = np.sin(2 * 1 * 3 / 4 * np.pi / 2)  # m = 3, n = 1
    np.testing.assert_allclose(shaped.returns, [r_tool * 1.0 + 0.5, 1.0 + 0.5])


def test_lora_top_layers_puts_adapters_only_in_the_last_layers(tmp_path):
    from agentgym.config import load
    from agentgym.trainers.config import TrainConfig
    from agentgym.trainers.loop import build_model

    cfg = load(TrainConfig, None, ["policy.model=tiny", "lora.enabled=true", "lora.top_layers=1"])
    model, _ = build_model(cfg, "cpu")
    trained = {
        n.split(".layers.")[1].split(".")[0] for n, p in model.named_parameters() if p.requires_grad
    }
    assert trained == {str(model.config.num_hidden_layers - 1)}
