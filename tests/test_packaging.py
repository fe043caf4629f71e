"""The declared dependency bounds are ones the code runs on."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

pytest.importorskip("transformers")
packaging_version = pytest.importorskip("packaging.version")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
OLDEST_TRANSFORMERS = "4.56"
"""from_pretrained(dtype=...) (agentgym.policy.models.load_model) arrived in 4.56; on 4.55 loading
any model fails with "unexpected keyword argument 'dtype'"."""


def declared_lower_bound(name: str) -> str:
    match = re.search(rf'"{name}>=([0-9.]+)', PYPROJECT.read_text())
    assert match, f"pyproject.toml declares no lower bound for {name}"
    return match.group(1)


def test_transformers_lower_bound_covers_the_apis_the_code_uses():
    bound = packaging_version.Version(declared_lower_bound("transformers"))
    assert bound >= packaging_version.Version(OLDEST_TRANSFORMERS)
    assert packaging_version.Version(version("transformers")) >= bound


def test_load_model_honours_the_dtype(tmp_path):
    import torch

    from agentgym.policy.models import load_model, tiny_model

    model, tokenizer = tiny_model(seed=0)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, _ = load_model(tmp_path, dtype="bfloat16")
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
