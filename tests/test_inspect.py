"""Inspect: trajectory tables with filters and sorting, and the turn-by-turn credit view."""

from __future__ import annotations

import math

import pytest

from agentgym.cli import main
from agentgym.credit import SALTConfig
from agentgym.data import Trajectory, Turn
from agentgym.report.model import Entry, credit_configs, group_credit
from agentgym.report.terminal import Filters, select
from agentgym.store import Run

ENV = "agentgym/KeyDoor-Small-v0"


def turn(state: str, action: str, reward: float = 0.0, *, end: bool = False) -> Turn:
    return Turn(state, action, action, reward, terminated=end, truncated=False, state_key=state)


def traj(name: str, group: str, turns: list[Turn], won: bool, env: str = "t/A-v0") -> Trajectory:
    return Trajectory(env, f"task-{group}", 0, group, tuple(turns), won=won, traj_id=name)


# Group g: both start in s0 and take "a" to s1; then A wins with "b", B fails with "c".
WIN = traj("A", "g", [turn("s0", "a"), turn("s1", "b", 1.0, end=True)], won=True)
FAIL = traj("B", "g", [turn("s0", "a"), turn("s1", "c", end=True)], won=False)
OTHER = traj("C", "h", [turn("x", "a"), turn("x", "a"), turn("x", "z")], False, env="t/B-v0")


def test_group_credit_labels_anchors_and_edges_by_hand():
    entries = [Entry(1, WIN), Entry(1, FAIL)]
    credit = group_credit(entries)
    a, b = (credit.turns[e.key] for e in entries)
    # anchor groups: s0 holds both first turns, s1 both second turns
    assert [t.anchor for t in a] == ["A0", "A1"] and [t.anchor for t in b] == ["A0", "A1"]
    assert all(t.anchor_turns == 2 for t in a + b)
    # SALT (grpo base, mean_norm): A = +0.5, B = -0.5; the shared edge s0-a->s1 averages to 0
    assert a[0].edge == b[0].edge == "E0"
    assert (a[0].edge_turns, a[0].edge_trajectories, a[0].edge_credit) == (2, 2, 0.0)
    assert (a[1].edge, a[1].edge_credit) == ("E1", 0.5)
    assert (b[1].edge, b[1].edge_credit) == ("E2", -0.5)
    assert [t.return_to_go for t in a] == [1.0, 1.0] and [t.return_to_go for t in b] == [0.0, 0.0]
    labels = {d["label"] for _, _, d in credit.graph.edges(data=True)}
    assert labels == {"E0", "E1", "E2"}
    assert [x["label"] for x in credit.anchors] == ["A0", "A1"]
    assert credit.anchors[0]["members"] == [(entries[0].key, 0), (entries[1].key, 0)]


def test_stored_salt_advantages_colour_the_edges():
    entries = [Entry(1, WIN.with_advantages("salt", [0.25, 2.0])), Entry(1, FAIL)]
    credit = group_credit(entries)
    # E1 is only A's; its stored value wins over the recomputed +0.5
    assert credit.turns[entries[0].key][1].edge_credit == 2.0
    # E0 is shared with B, which stores no salt value: the recomputed credit is used
    assert credit.turns[entries[0].key][0].edge_credit == 0.0


def test_self_loops_and_repeated_states():
    credit = group_credit([Entry(2, OTHER)])
    (c0, c1, c2) = credit.turns[Entry(2, OTHER).key]
    assert c0.anchor == c1.anchor == c2.anchor == "A0" and c0.anchor_turns == 3
    # x -a-> x twice is one self-loop edge; x -z-> failure is another
    assert c0.edge == c1.edge == "E0" and c0.edge_turns == 2 and c0.edge_trajectories == 1
    assert c2.edge == "E1" and c2.edge_turns == 1
    assert math.isclose(c2.return_to_go, 0.0)


def test_credit_configs_come_from_the_run_config():
    gigpo, salt = credit_configs(
        {"credit": {"estimator": "salt", "options": {"count": "trajectory", "base": "rloo"}}}
    )
    assert salt == SALTConfig(base="rloo", count="trajectory")
    assert gigpo.similarity_threshold is None
    gigpo, salt = credit_configs({"credit": {"estimator": "gigpo", "options": {"gamma": 0.5}}})
    assert gigpo.gamma == 0.5 and salt == SALTConfig()
    assert credit_configs({}) == credit_configs({"command": "rollout"})


def test_select_filters_and_sorts():
    entries = [Entry(1, WIN), Entry(1, FAIL), Entry(2, OTHER)]
    assert [e.traj.traj_id for e in select(entries, Filters(won=True))] == ["A"]
    assert [e.traj.traj_id for e in select(entries, Filters(won=False))] == ["B", "C"]
    assert [e.traj.traj_id for e in select(entries, Filters(env="B-v0"))] == ["C"]
    assert [e.traj.traj_id for e in select(entries, Filters(group="g"))] == ["A", "B"]
    assert [e.traj.traj_id for e in select(entries, Filters(task="task-h"))] == ["C"]
    by_turns = select(entries, sort="turns", descending=True, limit=2)
    assert [e.traj.traj_id for e in by_turns] == ["C", "A"]
    assert [e.traj.traj_id for e in select(entries, sort="return", descending=True)][0] == "A"
    with pytest.raises(ValueError, match="Unknown sort key 'size'"):
        select(entries, sort="size")


@pytest.fixture
def credited_run(tmp_path, capsys) -> Run:
    """`agentgym rollout` then `agentgym credit` with gigpo and salt."""
    out = tmp_path / "run"
    argv = ["rollout", ENV, "--policy", "random", "--tasks", "2", "--group-size", "3"]
    assert main([*argv, "--seed", "1", "--out", str(out)]) == 0
    for estimator in ("gigpo", "salt"):
        assert main(["credit", str(out), "--estimator", estimator]) == 0
    capsys.readouterr()
    return Run(out)


def test_inspect_table_filters_on_the_command_line(credited_run, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    trajs = credited_run.read_trajectories(1)
    assert main(["inspect", str(credited_run.path)]) == 0
    out = capsys.readouterr().out
    assert "6 of 6 trajectories shown" in out
    # short ids: the end after the last ':' (seed#member), unique here
    assert all(t.traj_id.rsplit(":", 1)[1] in out for t in trajs)
    assert not any(t.traj_id in out for t in trajs)
    won = [t for t in trajs if t.won]
    assert main(["inspect", str(credited_run.path), "--won"]) == 0
    assert f"{len(won)} of 6 trajectories shown" in capsys.readouterr().out
    assert main(["inspect", str(credited_run.path), "--lost", "--limit", "2"]) == 0
    assert "2 of 6 trajectories shown" in capsys.readouterr().out
    assert main(["inspect", str(credited_run.path), "--sort", "bogus"]) == 2
    assert "Unknown sort key" in capsys.readouterr().err


def test_inspect_one_trajectory_shows_advantages_anchor_and_edge(credited_run, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    t = credited_run.read_trajectories(1)[4]
    assert main(["inspect", str(credited_run.path), "--traj", t.traj_id]) == 0
    out = capsys.readouterr().out
    for word in ("gigpo", "salt", "anchor", "edge", "GiGPO anchor groups", "SALT edges"):
        assert word in out
    for turn in t.turns:
        assert f"{turn.advantages['gigpo']:+.4f}" in out
        assert f"{turn.advantages['salt']:+.4f}" in out
    assert t.turns[0].observation in out
    assert main(["inspect", str(credited_run.path), "--traj", "missing"]) == 2
    err = capsys.readouterr().err
    assert "No trajectory 'missing'" in err and err.count("\n") == 1
    assert not any(other.traj_id in err for other in credited_run.read_trajectories(1))


def test_inspect_traj_by_unique_end_or_row_number(credited_run, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    trajs = credited_run.read_trajectories(1)
    target = trajs[4]
    end = target.traj_id.rsplit(":", 1)[1]  # e.g. "2#1": seed and member
    for query in (end, "4"):
        assert main(["inspect", str(credited_run.path), "--traj", query]) == 0
        out = capsys.readouterr().out
        assert target.traj_id in out, query
        assert not any(t.traj_id in out for t in trajs if t is not target)
    # an end shared by several ids names them and asks for more
    shared = trajs[0].traj_id[-2:]  # "#0": every group's first member
    assert sum(t.traj_id.endswith(shared) for t in trajs) > 1
    assert main(["inspect", str(credited_run.path), "--traj", shared]) == 2
    assert "matches" in capsys.readouterr().err
