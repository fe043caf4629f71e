"""The HTML report shows the credit diagnostics per iteration, from metrics.jsonl or computed."""

from __future__ import annotations

import pytest

from agentgym.cli import main
from agentgym.credit.diagnostics import credit_diagnostics
from agentgym.report.credit_view import COLUMNS
from agentgym.report.html import report_data
from agentgym.store import Run

ENV = "agentgym/KeyDoor-Small-v0"


@pytest.fixture
def rollout_run(tmp_path, capsys) -> Run:
    out = tmp_path / "run"
    argv = ["rollout", ENV, "--policy", "random", "--tasks", "3", "--group-size", "3"]
    assert main([*argv, "--seed", "4", "--out", str(out)]) == 0
    capsys.readouterr()
    return Run(out)


def test_a_run_without_logged_diagnostics_gets_them_from_its_trajectories(rollout_run):
    diag = report_data(rollout_run)["diagnostics"]
    assert "stored trajectories" in diag["source"]
    expected = credit_diagnostics(rollout_run.read_batch(1))
    assert diag["columns"][0] == "iteration" and len(diag["columns"]) == len(COLUMNS) + 1
    assert diag["rows"] == [[1, *(expected[f"credit_{k}"] for k, _ in COLUMNS)]]
    assert diag["curve"].startswith("<svg") and "lone turns" in diag["curve"]


def test_logged_diagnostics_are_shown_as_the_trainer_logged_them(rollout_run):
    logged = {f"credit_{k}": 0.1 * i for i, (k, _) in enumerate(COLUMNS)}
    for it in (2, 3):
        rollout_run.log_metrics({"phase": "train", **logged, "credit_salt_edges": it}, iteration=it)
    diag = report_data(rollout_run)["diagnostics"]
    assert "metrics.jsonl" in diag["source"]
    assert [row[0] for row in diag["rows"]] == [2, 3]
    edges = [k for k, _ in COLUMNS].index("salt_edges") + 1
    assert [row[edges] for row in diag["rows"]] == [2.0, 3.0]
    assert diag["rows"][0][1:edges] == [0.1 * i for i in range(edges - 1)]
