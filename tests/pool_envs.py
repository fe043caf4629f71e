"""Environments for the pool and fault tests: KeyDoor with injected faults and a life log.

``FaultyKeyDoor(faults="SEED:TURN:KIND,...", log=PATH)`` behaves as ``KeyDoorEnv`` except that in
an episode reset with seed SEED, step number TURN (0-based; ``reset`` for TURN means the reset)
raises ``ValueError`` (KIND ``raise``) or never returns (KIND ``hang``: sleeps until closed from
another thread, or forever in a process) or ends its process (KIND ``die``: ``os._exit``; only
for process workers). With ``barrier=N`` every step first waits (3 s at
most, else ``BrokenBarrierError``) until N steps of this process's instances wait together, so
a batch steps without a fault only if N of its steps run at the same time. Every instance appends ``build PID ID`` when built and
``close PID ID`` when closed to the file ``log``, so a test can count both across processes.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from agentgym.envs.toy import KeyDoorEnv
from agentgym.registry import register

FAULTY = "test/FaultyKeyDoor-v0"
_BARRIERS: dict[int, threading.Barrier] = {}
_LOCK = threading.Lock()


def barrier(parties: int) -> threading.Barrier:
    with _LOCK:
        if parties not in _BARRIERS or _BARRIERS[parties].broken:
            _BARRIERS[parties] = threading.Barrier(parties, timeout=3)
        return _BARRIERS[parties]


def parse_faults(spec: str) -> dict[tuple[int, str], str]:
    out = {}
    for item in filter(None, spec.split(",")):
        seed, turn, kind = item.split(":")
        out[(int(seed), turn)] = kind
    return out


class FaultyKeyDoor(KeyDoorEnv):
    def __init__(self, faults: str = "", log: str = "", barrier: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self._barrier = barrier
        self._faults = parse_faults(faults)
        self._log = log
        self._closed = threading.Event()
        self._seed: int | None = None
        self._turn = 0
        self._write("build")

    def _write(self, event: str) -> None:
        if self._log:
            with Path(self._log).open("a") as f:
                f.write(f"{event} {os.getpid()} {id(self)}\n")

    def _inject(self, turn: str) -> None:
        kind = self._faults.get((int(self._seed or 0), turn))
        if kind == "raise":
            raise ValueError(f"injected fault at seed {self._seed} turn {turn}")
        if kind == "die":
            os._exit(3)
        if kind == "hang":
            while not self._closed.wait(0.05):
                pass
            raise RuntimeError("closed while hung")

    def _reset(self, seed: int | None, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._seed, self._turn = seed, 0
        self._inject("reset")
        return super()._reset(seed, options)

    def _step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        turn, self._turn = self._turn, self._turn + 1
        if self._barrier:
            barrier(self._barrier).wait()
        self._inject(str(turn))
        return super()._step(action)

    def close(self) -> None:
        self._closed.set()
        self._write("close")
        super().close()


register(FAULTY, "pool_envs:FaultyKeyDoor", n_rooms=3, max_turns=15)


def life(log: Path) -> tuple[list[str], list[str]]:
    """(built instance keys, closed instance keys) from a log file."""
    built, closed = [], []
    if log.exists():
        for line in log.read_text().splitlines():
            event, pid, obj = line.split()
            (built if event == "build" else closed).append(f"{pid}:{obj}")
    return built, closed
