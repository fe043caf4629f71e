"""Faults in training: counted, kept out of credit and loss (or trained as failures), and a run
over the fault threshold stops with the env, the seed and the exception (tiny model, CPU)."""

import pytest
from pool_envs import FAULTY

from agentgym.config import load
from agentgym.store import Run
from agentgym.trainers.config import TrainConfig
from agentgym.trainers.faults import FaultThresholdError
from agentgym.trainers.loop import train

pytest.importorskip("transformers")


def config(tmp_path, faults, *extra):
    return load(
        TrainConfig,
        None,
        [
            f"out_dir={tmp_path}",
            "name=faulty",
            "policy.model=tiny",
            "policy.max_new_tokens=4",
            f"env.id={FAULTY}",
            f"env.kwargs={{faults: '{faults}'}}",
            "env.max_turns=3",
            "env.tasks_per_iter=2",
            "env.group_size=2",
            "trainer.iterations=1",
            "trainer.eval_episodes=2",
            *extra,
        ],
    )


@pytest.mark.parametrize("mode", ["exclude", "fail"])
def test_faulted_episodes_are_counted_and_kept_out_of_the_loss(tmp_path, mode):
    # iteration 1 plays seeds 0 and 1; seed 1 raises at its second step (both members)
    cfg = config(
        tmp_path,
        "1:1:raise",
        "env.workers=2",
        "env.executor=thread",
        "env.max_fault_rate=0.5",
        f"env.faults={mode}",
    )
    records = []
    run = train(cfg, report=records.append)
    (record,) = [r for r in records if r["phase"] == "train"]
    assert record["faults"] == 2
    stored = Run(run.path).read_trajectories(1)
    faulted = [t for t in stored if t.fault]
    assert len(stored) == 4 and len(faulted) == 2
    assert {t.seed for t in faulted} == {1}
    assert all(t.fault == "ValueError: injected fault at seed 1 turn 1" for t in faulted)
    assert all(len(t.turns) == 1 for t in faulted)
    estimator = cfg.credit.estimator
    for t in stored:
        has_credit = all(estimator in turn.advantages for turn in t.turns)
        assert has_credit == (t.fault is None or mode == "fail")


def test_a_run_over_the_fault_threshold_stops_naming_env_seed_and_exception(tmp_path):
    cfg = config(tmp_path, "0:0:raise", "env.max_fault_rate=0.25")
    with pytest.raises(FaultThresholdError) as err:
        train(cfg)
    message = str(err.value)
    assert "2 of 4 episodes of iteration 1 faulted in test/FaultyKeyDoor-v0" in message
    assert "seed 0" in message and "ValueError: injected fault at seed 0 turn 0" in message
