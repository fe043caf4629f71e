"""Every table marked ``<!-- check: ... -->`` in docs/credit.md equals what the code computes.

A marker names the estimator (or ``graph_distances``), the worked example and the options as
JSON; the fenced block after it has one row per trajectory: ``t1 [0.5, 0.5, 0.5]``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from credit_batches import assert_rows, example_a, example_b

from agentgym.credit import compute, graph_distances
from agentgym.data import Batch

DOC = Path(__file__).resolve().parents[2] / "docs" / "credit.md"
MARKER = re.compile(
    r"<!-- check: (?P<name>\w+) example=(?P<example>[\w-]+) options=(?P<options>\{.*?\}) -->\n"
    r"```\n(?P<table>.*?)```",
    re.DOTALL,
)
EXAMPLES = {
    "A": example_a,
    "B": example_b,
    "B-k1-alone": lambda: example_b(only_k1_at_turn_3=True),
}


def checks() -> list[tuple[str, str, dict, list[list[float]]]]:
    found = []
    for m in MARKER.finditer(DOC.read_text()):
        rows = [
            [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", line.split("[", 1)[1])]
            for line in m["table"].strip().splitlines()
        ]
        found.append((m["name"], m["example"], json.loads(m["options"]), rows))
    return found


CHECKS = checks()


def test_the_doc_checks_all_seven_estimators() -> None:
    names = {name for name, *_ in CHECKS}
    expected = {"grpo", "rloo", "turn_rloo", "gigpo", "salt", "hgpo", "graphgpo"}
    assert expected | {"graph_distances"} == names


@pytest.mark.parametrize(("name", "example", "options", "rows"), CHECKS, ids=str)
def test_doc_table(name: str, example: str, options: dict, rows: list[list[float]]) -> None:
    batch: Batch = EXAMPLES[example]()
    if name == "graph_distances":
        actual = graph_distances(batch)[0]
    else:
        actual = compute(name, batch, options)
        assert actual.dtype == np.float32
    assert_rows(actual, rows, atol=1e-4)
