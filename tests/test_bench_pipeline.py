"""bench/pipeline.py: stages of one panel, each paired with the one before."""

import importlib.util
import json
from pathlib import Path

from agentgym.cli import main

spec = importlib.util.spec_from_file_location(
    "bench_pipeline", Path(__file__).resolve().parents[1] / "bench" / "pipeline.py"
)
pipeline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pipeline)

ENV = "agentgym/KeyDoor-Small-v0:n_rooms=2"


def test_stages_are_tabulated_and_paired(tmp_path):
    for policy in ("random", "oracle"):
        out = tmp_path / policy
        assert (
            main(["eval", "--env", ENV, "--policy", policy, "--episodes", "12", "--out", str(out)])
            == 0
        )
    code = pipeline.main(
        [f"random={tmp_path / 'random'}", f"oracle={tmp_path / 'oracle'}", "--name", "p",
         "--out", str(tmp_path / "results")]
    )  # fmt: skip
    assert code == 0
    doc = json.loads((tmp_path / "results" / "p.json").read_text())
    random_won, oracle_won = (s["won"] for s in doc["stages"])
    assert oracle_won == 12 and random_won < 12
    (pair,) = doc["pairs"]
    assert pair["b_only"] == 12 - random_won and pair["a_only"] == 0
    text = (tmp_path / "results" / "p.md").read_text()
    assert "| oracle | 12/12 | 100.0%" in text and "python bench/pipeline.py" in text
