"""hgpo and graphgpo reach the viewer like the others: `agentgym credit` stores them per turn and
the report shows every stored estimator's column (no viewer change needed, checked here)."""

from __future__ import annotations

import numpy as np

from agentgym.cli import main
from agentgym.credit import compute
from agentgym.report.html import report_data
from agentgym.store import Run


def test_new_estimators_are_stored_and_shown(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["rollout", "agentgym/KeyDoor-Small-v0", "--policy", "random", "--tasks", "2"]
    assert main([*argv, "--group-size", "3", "--seed", "2", "--out", str(out)]) == 0
    for name, options in (
        ("hgpo", ["--option", "history_length=1"]),
        ("graphgpo", []),
        ("gigpo", []),
    ):
        assert main(["credit", str(out), "--estimator", name, *options]) == 0
    capsys.readouterr()
    run = Run(out)
    batch = run.read_batch(1)
    np.testing.assert_allclose(
        batch.advantages("hgpo"), compute("hgpo", batch, {"history_length": 1}), atol=1e-6
    )
    np.testing.assert_allclose(batch.advantages("graphgpo"), compute("graphgpo", batch), atol=1e-6)
    data = report_data(run)
    assert data["estimators"] == ["gigpo", "graphgpo", "hgpo"]
    shown = [turn["adv"]["graphgpo"] for t in data["trajectories"] for turn in t["turns"]]
    np.testing.assert_allclose(shown, batch.advantages("graphgpo"), atol=1e-6)
    assert data["scale"]["hgpo"] == max(abs(batch.advantages("hgpo")))
