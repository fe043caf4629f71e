"""Checkpoints that let a killed run resume where it stopped.

A checkpoint is a folder ``checkpoints/iter-NNNNN/`` holding ``trainable.pt`` (the trainable
parameters: all weights, or only LoRA adapters), ``optimizer.pt``, ``scheduler.pt`` and
``state.pt`` (iteration, trajectory-store position, RNG states of python, numpy and torch, and
any extra fields). It is written into a temporary folder and renamed, so a kill mid-write leaves
the previous checkpoint intact; ``LATEST`` names the newest complete one. Every file and the
folder are fsynced before the rename, and the parent folder after it, so a power loss cannot
leave a renamed checkpoint (or a ``LATEST``) whose contents never reached the disk.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

LATEST = "LATEST"


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters by name (all weights, or the adapters under LoRA)."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor inside a (nested) state dict."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def check_space(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Raise a clear error when ``folder``'s disk cannot hold one more checkpoint.

    The estimate is the trainable weights plus the optimizer state; the previous checkpoint
    stays intact, so the run can resume once space is freed. Returns the estimate in bytes.
    """
    need = sum(p.numel() * p.element_size() for _, p in model.named_parameters() if p.requires_grad)
    need += _tensor_bytes(optimizer.state_dict()["state"]) + (1 << 20)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise OSError(
            f"not enough disk space for a checkpoint in {folder}: it needs about "
            f"{need / 2**30:.2f} GiB and {free / 2**30:.2f} GiB are free. Free some space "
            "(old runs' checkpoints/ folders can go), set out_dir to a larger disk, lower "
            "trainer.keep_checkpoints, or train LoRA adapters (lora.rank>0) whose checkpoints "
            "are small; then resume with the same command."
        )
    return need


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's contents (a folder: its entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(
    folder: str | Path,
    iteration: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    *,
    keep: int = 2,
    **extra: Any,
) -> Path:
    """Write the checkpoint of ``iteration`` under ``folder`` atomically; prune to ``keep``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"iter-{iteration:05d}"
    check_space(folder, model, optimizer)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=folder))
    try:
        torch.save(trainable_state(model), tmp / "trainable.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict() if scheduler is not None else None, tmp / "scheduler.pt")
        torch.save({"iteration": iteration, "rng": rng_state(), **extra}, tmp / "state.pt")
        for name in ("trainable.pt", "optimizer.pt", "scheduler.pt", "state.pt"):
            _fsync(tmp / name)
        _fsync(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_latest(folder, final.name)
    _prune(folder, keep)
    return final


def _write_latest(folder: Path, name: str) -> None:
    tmp = folder / f".{LATEST}.tmp"
    with open(tmp, "w") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / LATEST)
    _fsync(folder)


def _prune(folder: Path, keep: int) -> None:
    done = sorted(p for p in folder.glob("iter-*") if p.is_dir())
    for old in done[: max(len(done) - max(keep, 1), 0)]:
        shutil.rmtree(old, ignore_errors=True)


def latest(folder: str | Path) -> Path | None:
    """The newest complete checkpoint under ``folder``, or None."""
    folder = Path(folder)
    marker = folder / LATEST
    if not marker.is_file():
        return None
    path = folder / marker.read_text().strip()
    return path if (path / "state.pt").is_file() else None


def load(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    *,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore a checkpoint into ``model`` (and optimizer, scheduler, RNG); return its state."""
    path = Path(path)
    if not (path / "state.pt").is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no state.pt)")
    weights = torch.load(path / "trainable.pt", map_location="cpu", weights_only=True)
    expected = {n for n, p in model.named_parameters() if p.requires_grad}
    if set(weights) != expected:
        missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
        raise ValueError(
            f"checkpoint {path} does not fit this model: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}. Was it made with another model or LoRA setting?"
        )
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    if scheduler is not None:
        sched = torch.load(path / "scheduler.pt", weights_only=False)
        if sched is not None:
            scheduler.load_state_dict(sched)
    state = torch.load(path / "state.pt", weights_only=False)
    if restore_rng:
        set_rng_state(state["rng"])
    return state
