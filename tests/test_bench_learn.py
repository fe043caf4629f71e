"""bench/learn.py's table: each estimator paired with the baseline on the seeds both have."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
spec = importlib.util.spec_from_file_location(
    "bench_learn", Path(__file__).resolve().parents[1] / "bench" / "learn.py"
)
learn = importlib.util.module_from_spec(spec)
spec.loader.exec_module(learn)


def panel(wins: list[bool]) -> list[dict]:
    return [
        {"task_id": f"t{i}", "seed": 100 + i, "won": w, "return": float(w), "turns": 3}
        for i, w in enumerate(wins)
    ]


def row(lines: list[str], est: str) -> list[str]:
    (line,) = [x for x in lines if x.startswith(f"| {est} |")]
    return [c.strip() for c in line.strip("|").split("|")]


def test_estimators_are_paired_on_the_seeds_both_have():
    finals = {
        "grpo": {0: panel([False, False, True, False]), 1: panel([True, False, False, False])},
        # seed 2 has no grpo partner: it counts in salt's own success, not in the pairing
        "salt": {0: panel([True, True, True, False]), 2: panel([True, True, True, True])},
        "gigpo": {3: panel([True, False, False, False])},
    }
    lines = learn.paired_table(finals, "grpo")
    salt = row(lines, "salt")
    assert salt[1].startswith("87.5%") and salt[1].endswith("n=8)")
    assert salt[2] == "2"
    assert salt[3] == "0 / 2"  # seed 0 only: grpo won game 2 (so did salt), salt also won 0 and 1
    assert salt[5].startswith("+50.0%")
    assert row(lines, "gigpo")[3:] == ["–", "–", "–"]  # no seed in common with grpo
    assert row(lines, "grpo")[2] == "2"


def test_late_training_success_is_the_last_third_per_seed():
    rows = [
        {"estimator": "gigpo", "seed": s, "phase": "train", "iteration": i, "success_rate": v}
        for s, values in ((0, [0.0, 0.0, 0.5, 1.0, 0.5, 0.0]), (1, [1.0] * 4 + [0.0, 0.5]))
        for i, v in enumerate(values, start=1)
    ]
    rows.append(
        {"estimator": "gigpo", "seed": 0, "phase": "eval", "iteration": 6, "success_rate": 1.0}
    )
    lines = learn.late_training_table(rows)
    assert lines[0].startswith("Training-batch success over iterations 5–6")
    assert row(lines, "gigpo") == ["gigpo", "25.0%", "s0: 25%, s1: 25%"]
