"""Fixtures of the credit tests: the worked examples of docs/credit.md."""

from __future__ import annotations

import pytest
from credit_batches import example_a, example_b

from agentgym.data import Batch


@pytest.fixture
def batch_a() -> Batch:
    return example_a()


@pytest.fixture
def batch_b() -> Batch:
    return example_b()
