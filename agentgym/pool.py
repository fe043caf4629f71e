"""Environment pools: the environments of rollouts, kept across calls and stepped in parallel.

:class:`EnvPool` holds instances of one environment (id, constructor arguments, turn limit) in
``workers`` workers of one executor:

- ``inline``: in this thread, one after another (what :func:`agentgym.rollout.collect` does
  when given no pool);
- ``thread``: one daemon thread per worker (I/O-bound envs: remote APIs, sandboxes);
- ``process``: one spawned child process per worker (CPU-bound or not thread-safe envs);
- ``ray``: one Ray actor per worker (envs on other machines of a Ray cluster; ``pip install
  'agentgym[ray]'``; a local Ray runtime is started if none is initialized).

Slots number the instances: slot ``s`` lives on worker ``s % workers`` and is built on its
first reset; later resets reuse it (a reset costs a reset, not a rebuild). :meth:`EnvPool.run`
sends a list of commands (see :mod:`agentgym.workers`), runs each worker's share in order and
the workers in parallel, and answers one :class:`Outcome` per command.

Faults are data: an instance that raises answers an Outcome with ``fault`` set (``"Type:
message"``) and is rebuilt on its next reset. With ``step_timeout``, a command running longer is
abandoned as ``"TimeoutError: ..."`` (a first reset includes building the instance; a worker's
start-up is not counted) and its worker replaced (a hung thread is left behind; a hung
process or actor is killed), as is a worker that dies. A replaced process or actor loses its
other instances: the pool rebuilds each live one by replaying its seed and actions and checks
that the replay ends in the recorded observation; one that does not is lost, and its next step
answers a fault. With ``recycle_after=n`` (process and Ray workers), a worker that ran ``n``
resets is restarted before its next reset wave (when it holds no live episode), which bounds
the memory an env leaks. :meth:`EnvPool.close` closes every instance (also at interpreter exit and when
the pool is garbage collected). A pool is used from one thread at a time.
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

from agentgym.workers import (
    Command,
    EnvBuild,
    EnvHost,
    InlineWorker,
    ProcessWorker,
    RayWorker,
    ThreadWorker,
)

EXECUTORS = ("inline", "thread", "process", "ray")
SHUTDOWN_TIMEOUT = 30.0
"""Seconds a worker gets to close its environments before it is killed."""
STARTUP_TIMEOUT = 300.0
"""Seconds a new worker (process start, imports, Ray actor placement) may take to answer."""


@dataclass(frozen=True)
class Outcome:
    """The answer to one command: its value, or the reason it faulted."""

    value: Any = None
    fault: str | None = None


@dataclass
class _Live:
    """What it takes to rebuild a slot's episode elsewhere: seed, actions, last observation."""

    seed: int | None
    actions: list[str] = field(default_factory=list)
    obs: Any = None


def _shutdown(workers: list[Any]) -> None:
    for worker in workers:
        try:
            worker.shutdown(SHUTDOWN_TIMEOUT)
        except Exception:  # noqa: BLE001 - shut the others down regardless
            pass
    workers.clear()


class EnvPool:
    """Instances of ``env_id`` in ``workers`` workers of ``executor`` (see the module docs)."""

    def __init__(
        self,
        env_id: str,
        *,
        env_kwargs: Mapping[str, Any] | None = None,
        max_turns: int | None = None,
        workers: int = 1,
        executor: str = "inline",
        step_timeout: float | None = None,
        mp_context: str = "spawn",
        ray_options: Mapping[str, Any] | None = None,
        recycle_after: int | None = None,
    ):
        from agentgym.registry import spec

        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if executor == "inline" and workers != 1:
            raise ValueError("the inline executor has exactly one worker (this thread)")
        if step_timeout is not None and step_timeout <= 0:
            raise ValueError(f"step_timeout must be > 0 seconds or None, got {step_timeout}")
        if recycle_after is not None and (recycle_after < 1 or executor in ("inline", "thread")):
            raise ValueError(
                "recycle_after needs worker processes or actors (executor process or ray) and "
                f"must be >= 1, got {recycle_after} with executor {executor!r}"
            )
        if step_timeout is not None and executor == "inline":
            raise ValueError(
                "step_timeout needs a worker to abandon: use executor thread, process or ray"
            )
        registered = spec(env_id)
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.max_turns_arg = max_turns
        self.max_turns = registered.max_turns if max_turns is None else int(max_turns)
        self.executor = executor
        self.workers = workers
        self.step_timeout = step_timeout
        self.replaced = 0
        """How many workers were replaced (hung or died)."""
        self.recycle_after = recycle_after
        self.recycled = 0
        """How many workers were restarted after ``recycle_after`` resets."""
        self._resets = [0] * workers
        self._mp_context = mp_context
        self._ray_options = dict(ray_options or {})
        self._build = EnvBuild(env_id, self.env_kwargs, max_turns, registered)
        self._hosts = [EnvHost(self._build) if self.local else None for _ in range(workers)]
        self._workers: list[Any] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._workers)
        self._workers.extend(self._spawn(w) for w in range(workers))
        self._await_startup(range(workers))
        self._live: dict[int, _Live] = {}
        self._lost: dict[int, str] = {}

    @property
    def local(self) -> bool:
        """Whether the instances are objects of this process (inline and thread)."""
        return self.executor in ("inline", "thread")

    def matches(
        self, env_id: str, env_kwargs: Mapping[str, Any] | None, max_turns: int | None
    ) -> bool:
        """Whether this pool builds what ``collect(env_id, env_kwargs=, max_turns=)`` asks."""
        return (env_id, dict(env_kwargs or {}), max_turns) == (
            self.env_id,
            self.env_kwargs,
            self.max_turns_arg,
        )

    def _spawn(self, w: int) -> Any:
        host = self._hosts[w]
        if self.executor == "inline":
            return InlineWorker(host)  # type: ignore[arg-type]
        if self.executor == "thread":
            return ThreadWorker(host)  # type: ignore[arg-type]
        if self.executor == "process":
            return ProcessWorker(self._build, self._mp_context)
        return RayWorker(self._build, self._ray_options)

    def _await_startup(self, which: Sequence[int] | range) -> None:
        """Wait until workers ``which`` answer (start-up is not a step: no step_timeout)."""
        pings = [self._workers[w].submit(("ping", w, None)) for w in which]
        done, _ = wait(pings, timeout=STARTUP_TIMEOUT)
        for future in pings:
            if future not in done or future.exception() is not None:
                self.close()
                why = "no answer" if future not in done else future.exception()
                raise RuntimeError(
                    f"an env worker ({self.executor}) of {self.env_id} did not start: {why}"
                )

    def worker_of(self, slot: int) -> int:
        return slot % self.workers

    def env(self, slot: int) -> Any:
        """The instance of ``slot``: the object itself when local, else a :class:`RemoteEnv`."""
        if self.local:
            return self._hosts[self.worker_of(slot)].env(slot)  # type: ignore[union-attr]
        return RemoteEnv(self, slot)

    # -- running commands ---------------------------------------------------------------------

    def reset(self, slots: Sequence[int], seeds: Sequence[int | None]) -> list[Outcome]:
        return self.run([("reset", s, seed) for s, seed in zip(slots, seeds, strict=True)])

    def step(self, slots: Sequence[int], actions: Sequence[str]) -> list[Outcome]:
        return self.run([("step", s, a) for s, a in zip(slots, actions, strict=True)])

    def run(self, commands: Sequence[Command]) -> list[Outcome]:
        """Run ``commands`` (each worker's in order, workers in parallel); one Outcome each."""
        if not self._finalizer.alive:
            raise RuntimeError("this EnvPool is closed")
        outcomes: list[Outcome | None] = [None] * len(commands)
        for w in {self.worker_of(c[1]) for c in commands}:
            if self._workers[w].dead:  # it died between commands: replace it, no fault
                self._respawn(w)
        self._recycle_due({self.worker_of(c[1]) for c in commands if c[0] == "reset"})
        queues: dict[int, deque[tuple[int, Future]]] = {}
        for i, command in enumerate(commands):
            op, slot, _ = command
            if op != "reset" and slot in self._lost:
                outcomes[i] = Outcome(fault=self._lost.pop(slot))
                continue
            w = self.worker_of(slot)
            self._resets[w] += op == "reset"
            queues.setdefault(w, deque()).append((i, self._workers[w].submit(command)))
        started = dict.fromkeys(queues, time.monotonic())
        while any(queues.values()):
            for w, q in queues.items():
                while q and q[0][1].done():
                    i, future = q.popleft()
                    started[w] = time.monotonic()
                    exc = future.exception()
                    if exc is None:
                        outcomes[i] = self._settle(commands[i], future.result())
                    else:
                        outcomes[i] = self._fail(commands[i], f"{type(exc).__name__}: {exc}")
                        self._replace(w, commands[i][1], q, commands)
            busy = [w for w, q in queues.items() if q]
            if not busy:
                break
            timeout = None
            if self.step_timeout is not None:
                now = time.monotonic()
                late = [w for w in busy if now - started[w] >= self.step_timeout]
                for w in late:
                    i, _ = queues[w].popleft()
                    op, slot, _ = commands[i]
                    reason = (
                        f"TimeoutError: {op} took longer than step_timeout={self.step_timeout}s"
                    )
                    outcomes[i] = self._fail(commands[i], reason)
                    self._replace(w, slot, queues[w], commands)
                    started[w] = time.monotonic()
                if late:
                    continue
                timeout = min(started[w] for w in busy) + self.step_timeout - now
            wait([queues[w][0][1] for w in busy], timeout=timeout, return_when=FIRST_COMPLETED)
        return outcomes  # type: ignore[return-value]

    def _recycle_due(self, resetting: set[int]) -> None:
        """Restart the workers about to reset that ran ``recycle_after`` resets and hold no live
        episode: a fresh process returns what the envs leaked (native libraries, caches)."""
        if self.recycle_after is None:
            return
        for w in sorted(resetting):
            busy = any(self.worker_of(s) == w for s in self._live)
            if self._resets[w] >= self.recycle_after and not busy:
                self._workers[w].shutdown(SHUTDOWN_TIMEOUT)  # closes its envs
                self._workers[w] = self._spawn(w)
                self._await_startup([w])
                self._resets[w] = 0
                self.recycled += 1

    def _settle(self, command: Command, result: tuple[Any, ...]) -> Outcome:
        """Record a worker's answer in the slot's history; turn it into an Outcome."""
        op, slot, arg = command
        if result[0] != "ok":
            if op == "call":  # a failed query leaves the episode as it was
                return Outcome(fault=f"{result[1]}: {result[2]}")
            return self._fail(command, f"{result[1]}: {result[2]}")
        value = result[1]
        if op == "reset":
            self._live[slot] = _Live(arg, [], value[0])
        elif op == "step":
            live = self._live.get(slot)
            if live is not None:
                live.actions.append(arg)
                live.obs = value[0]
                if value[2] or value[3]:  # over: nothing left to rebuild
                    del self._live[slot]
        return Outcome(value)

    def _fail(self, command: Command, reason: str) -> Outcome:
        self._live.pop(command[1], None)
        return Outcome(fault=reason)

    def _replace(
        self, w: int, bad_slot: int, queue: deque[tuple[int, Future]], commands: Sequence[Command]
    ) -> None:
        """Replace worker ``w`` (hung on or killed by ``bad_slot``): rebuild its other live
        instances, then resend the commands that were still queued on it.

        A local worker's instances are shared with its replacement, and its abandoned thread
        may already have started the next queued command (woken by the close, or never hung):
        that command's answer stands; only the ones it had not started are sent again."""
        host = self._hosts[w]
        if host is not None:  # local: the other instances move to the new thread
            abandoned = host.drop(bad_slot)
            if abandoned is not None:
                _close_later(abandoned)
        self._respawn(w)
        pending = list(queue)
        queue.clear()
        for i, old in pending:
            op, slot, _ = commands[i]
            if host is not None and not old.cancel():  # started on the shared instances
                queue.append((i, old))
            elif op != "reset" and slot in self._lost:
                queue.append((i, _done(("error", "WorkerLost", self._lost.pop(slot)))))
            else:
                queue.append((i, self._workers[w].submit(commands[i])))

    def _respawn(self, w: int) -> None:
        """Replace worker ``w`` by a new one holding its live episodes (rebuilt by replay)."""
        self.replaced += 1
        self._workers[w].kill()
        self._workers[w] = self._spawn(w)
        self._await_startup([w])
        if self._hosts[w] is None:
            self._restore(w)

    def _restore(self, w: int) -> None:
        """Replay the live episodes of worker ``w``'s slots in its new worker."""
        slots = [s for s in self._live if self.worker_of(s) == w]
        worker = self._workers[w]
        futures = [
            (s, worker.submit(("replay", s, (self._live[s].seed, list(self._live[s].actions)))))
            for s in slots
        ]
        steps = sum(len(self._live[s].actions) + 1 for s in slots)
        limit = None if self.step_timeout is None else self.step_timeout * max(steps, 1)
        done, _ = wait([f for _, f in futures], timeout=limit)
        for s, future in futures:
            live = self._live.pop(s)
            why = "its worker was replaced and"
            if future not in done or future.exception() is not None:
                self._lost[s] = f"WorkerLost: {why} rebuilding the episode failed"
            elif future.result()[0] != "ok":
                self._lost[s] = f"WorkerLost: {why} the replay raised {future.result()[1]}"
            elif future.result()[1][0] != live.obs:
                self._lost[s] = f"WorkerLost: {why} the replay did not reproduce the episode"
            else:
                self._live[s] = live
        if len(done) < len(futures):  # the new worker hung too: start afresh
            self._workers[w].kill()
            self._workers[w] = self._spawn(w)
            self._await_startup([w])
            self.replaced += 1

    def close(self) -> None:
        """Close every instance and stop the workers (idempotent)."""
        self._finalizer()

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _done(result: tuple[Any, ...]) -> Future:
    future: Future = Future()
    future.set_result(result)
    return future


def _close_later(env: Any) -> None:
    """Close an abandoned (hung) instance from a daemon thread: it may never return."""
    import threading

    def close() -> None:
        try:
            env.close()
        except Exception:  # noqa: BLE001 - best effort on a hung env
            pass

    threading.Thread(target=close, daemon=True, name="agentgym-close").start()


class RemoteEnv:
    """A privileged handle on an instance in another process, for scripted policies.

    ``handle.unwrapped.method(*args)`` runs ``method`` on the instance's unwrapped env in its
    worker and returns the result (e.g. the oracle's ``oracle_action()``).
    """

    def __init__(self, pool: EnvPool, slot: int):
        self._pool = pool
        self._slot = slot

    @property
    def unwrapped(self) -> RemoteEnv:
        return self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any) -> Any:
            (outcome,) = self._pool.run([("call", self._slot, (name, args))])
            if outcome.fault is None:
                return outcome.value
            kind, _, message = outcome.fault.partition(": ")
            if kind in ("AttributeError", "NotImplementedError"):
                raise {
                    "AttributeError": AttributeError,
                    "NotImplementedError": NotImplementedError,
                }[kind](message)
            raise RuntimeError(f"{name}() failed in the worker: {outcome.fault}")

        return call


__all__ = ["EXECUTORS", "EnvPool", "Outcome", "RemoteEnv"]
