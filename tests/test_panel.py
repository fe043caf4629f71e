"""Panel manifests of evaluations: what they record, their hash, and what blocks a comparison."""

from __future__ import annotations

import copy

import pytest

from agentgym.evaluate import evaluate
from agentgym.panel import eval_record, panel_differences, panel_hash
from agentgym.policy.scripted import OraclePolicy
from agentgym.report.comparison import PanelMismatchError, Side, check_comparable

ENV = "agentgym/KeyDoor-Small-v0"


@pytest.fixture(scope="module")
def oracle_record():
    result = evaluate(ENV, OraclePolicy(), episodes=3, samples_per_task=2, seed=500)
    return result, eval_record(result, policy="oracle")


def test_evaluate_records_the_panel_it_played(oracle_record):
    result, record = oracle_record
    panel = record["panel"]
    trajs = result.batch.trajectories
    assert panel["env_id"] == ENV
    assert panel["env_kwargs"] == {"n_rooms": 3}  # the registered default, filled in
    assert panel["max_turns"] == 15  # the registered limit, since none was given
    assert panel["samples_per_task"] == 2
    assert [t["seed"] for t in panel["tasks"]] == [500, 501, 502]
    assert [t["task_id"] for t in panel["tasks"]] == [trajs[i].task_id for i in (0, 2, 4)]
    assert [(e["seed"], e["sample"], e["won"], e["turns"]) for e in record["outcomes"]] == [
        (t.seed, i % 2, t.won, len(t.turns)) for i, t in enumerate(trajs)
    ]
    assert record["panel_hash"] == panel_hash(panel)
    assert record["sampling"]["temperature"] == 0.0
    assert set(record["versions"]) == {"agentgym", "textworld", "alfworld"}
    assert record["summary"]["success_rate"] == result.overall.success_rate


def test_the_same_panel_spelled_differently_has_the_same_hash(oracle_record):
    _, record = oracle_record
    explicit = evaluate(
        ENV,
        OraclePolicy(),
        episodes=3,
        samples_per_task=2,
        seed=500,
        max_turns=15,
        env_kwargs={"n_rooms": 3},
    )
    assert eval_record(explicit)["panel_hash"] == record["panel_hash"]


def test_differences_are_named(oracle_record):
    _, record = oracle_record
    a = record["panel"]
    b = copy.deepcopy(a)
    b["max_turns"] = 9
    b["env_kwargs"]["n_rooms"] = 5
    b["tasks"] = b["tasks"][1:] + [{"task_id": "keydoor-3-k0-s0", "seed": 503}]
    b["tasks"][0]["task_id"] = "other"
    assert panel_hash(a) != panel_hash(b)
    found = panel_differences(a, b)
    assert "max_turns: 15 vs 9" in found
    assert "env_kwargs.n_rooms: 3 vs 5" in found
    assert any("only in A: 500" in d and "only in B: 503" in d for d in found)
    assert any(d.startswith("task ids differ at 1 seeds (501)") for d in found)


def side(record, **changes):
    rec = copy.deepcopy(record)
    for path, value in changes.items():
        section, key = path.split("__")
        rec[section][key] = value
    return Side(path if changes else "A", rec)


def test_check_comparable_refuses_another_panel_and_reports_sampling(oracle_record):
    _, record = oracle_record
    a = Side("A", record)
    with pytest.raises(PanelMismatchError, match=r"max_turns: 15 vs 7"):
        check_comparable(a, side(record, panel__max_turns=7))
    notes = check_comparable(a, side(record, sampling__temperature=0.7))
    assert notes == ["sampling temperature: 0.0 vs 0.7"]
    # textworld's version does not define KeyDoor's tasks: a note, not a refusal
    notes = check_comparable(a, side(record, versions__textworld="0.0.1"))
    assert notes and notes[0].startswith("version textworld")


def test_a_different_env_package_version_blocks_unless_allowed(oracle_record):
    _, record = oracle_record
    tw = copy.deepcopy(record)
    tw["panel"]["env_id"] = "agentgym/TextWorld-CoinCollector-v0"
    other = copy.deepcopy(tw)
    other["versions"]["textworld"] = "0.0.1"
    with pytest.raises(PanelMismatchError, match="--allow-version-mismatch"):
        check_comparable(Side("A", tw), Side("B", other))
    notes = check_comparable(Side("A", tw), Side("B", other), allow_version_mismatch=True)
    assert any("textworld" in n for n in notes)
