"""Where a pool's environments live: in this thread, a thread, a process or a Ray actor.

An :class:`EnvHost` holds the environment instances of one worker (one per slot, built on the
slot's first reset and kept) and runs commands on them: ``("reset", slot, seed)``,
``("step", slot, action)``, ``("replay", slot, (seed, actions))``, ``("call", slot, (name,
args))``, ``("ping", 0, None)``. A command answers ``("ok", value)`` or, when the environment raised,
``("error", type name, message)``; an environment that raised in reset, step or replay is
closed and dropped (its slot is rebuilt on its next reset). ``close_all`` closes every instance.

A worker wraps a host behind ``submit(command) -> Future`` (results in submission order),
``shutdown(timeout)`` (close every environment, then stop) and ``kill()`` (abandon a hung or
dead worker). :mod:`agentgym.pool` schedules commands over workers and handles faults.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

Command = tuple[str, int, Any]
Result = tuple[Any, ...]


class WorkerDied(RuntimeError):
    """The worker process or actor ended while commands were pending."""


@dataclass(frozen=True)
class EnvBuild:
    """What a worker needs to build an instance: the id, its registration and arguments."""

    env_id: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    max_turns: int | None = None
    spec: Any = None
    """The main process's :class:`~agentgym.registry.EnvSpec`, registered in a worker that lacks
    it (envs registered at run time, e.g. by a test or a script, are not plugins)."""

    def make(self) -> Any:
        from agentgym import registry

        registry.load_plugins()
        if self.spec is not None and self.env_id not in registry._REGISTRY:
            s = self.spec
            registry.register(
                s.id, s.entry_point, max_turns=s.max_turns, description=s.description, **s.kwargs
            )
        return registry.make(self.env_id, max_turns=self.max_turns, **dict(self.env_kwargs))


def _close_quietly(env: Any) -> None:
    try:
        env.close()
    except Exception:  # noqa: BLE001 - closing a broken env must not hide the fault
        pass


class EnvHost:
    """The environment instances of one worker and the commands run on them."""

    def __init__(self, build: EnvBuild):
        self.build = build
        self.envs: dict[int, Any] = {}

    def execute(self, command: Command) -> Result:
        op, slot, arg = command
        env = self.envs.get(slot)
        try:
            if op == "ping":  # the worker is up (its imports done)
                return ("ok", os.getpid())
            if op in ("reset", "replay") and env is None:
                env = self.envs[slot] = self.build.make()
            if op == "reset":
                return ("ok", env.reset(seed=arg))
            if env is None:
                raise RuntimeError(f"slot {slot} has no environment (reset it first)")
            if op == "step":
                return ("ok", env.step(arg))
            if op == "replay":
                seed, actions = arg
                obs, info = env.reset(seed=seed)
                for action in actions:
                    obs, _, _, _, info = env.step(action)
                return ("ok", (obs, info))
            if op == "call":
                name, args = arg
                return ("ok", getattr(env.unwrapped, name)(*args))
            raise ValueError(f"unknown command {op!r}")
        except Exception as exc:  # noqa: BLE001 - an env's exception is data (a fault)
            if op != "call" and env is not None and self.envs.get(slot) is env:
                del self.envs[slot]
                _close_quietly(env)
            return ("error", type(exc).__name__, str(exc))

    def env(self, slot: int) -> Any:
        return self.envs.get(slot)

    def drop(self, slot: int) -> Any:
        """Forget the instance of ``slot`` without closing it; return it (or None)."""
        return self.envs.pop(slot, None)

    def close_all(self) -> None:
        envs, self.envs = list(self.envs.values()), {}
        for env in envs:
            _close_quietly(env)


class InlineWorker:
    """Runs each command at once in the calling thread (the in-process default)."""

    local = True
    dead = False

    def __init__(self, host: EnvHost):
        self.host = host

    def submit(self, command: Command) -> Future:
        future: Future = Future()
        future.set_result(self.host.execute(command))
        return future

    def kill(self) -> None:
        """Nothing can hang here unnoticed: the caller itself runs the command."""

    def shutdown(self, timeout: float) -> None:
        self.host.close_all()


class ThreadWorker:
    """A daemon thread running the commands of one host in order.

    A hung thread cannot be stopped: :meth:`kill` abandons it (the host's other instances move to
    the replacement; the hung instance is closed from another daemon thread, which may unblock
    it)."""

    local = True
    dead = False

    def __init__(self, host: EnvHost):
        self.host = host
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._killed = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name="agentgym-env")
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._killed:
                return
            command, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self.host.execute(command))
            except BaseException as exc:  # noqa: BLE001 - reported through the future
                future.set_exception(exc)

    def submit(self, command: Command) -> Future:
        future: Future = Future()
        self._queue.put((command, future))
        return future

    def kill(self) -> None:
        self._killed = True  # a hung thread that wakes up runs nothing more
        self._queue.put(None)

    def shutdown(self, timeout: float) -> None:
        self._queue.put(None)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.host.close_all()
        else:  # still inside a step: close from a daemon thread rather than wait forever
            threading.Thread(target=self.host.close_all, daemon=True).start()


ABANDON = "abandon"
"""Message to a process worker whose command hangs: close every env now, then exit."""


def _process_main(conn: multiprocessing.connection.Connection, build: EnvBuild) -> None:
    """A worker process: commands from ``conn`` run in order on a command thread while this
    thread keeps listening, so that a hung command can still be abandoned with every env closed.
    ``None`` stops the worker after the queued commands; ``ABANDON`` stops it at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trainer's to handle
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # still runs the finally below
    host = EnvHost(build)
    commands: queue.SimpleQueue = queue.SimpleQueue()

    def run_commands() -> None:
        while (command := commands.get()) is not None:
            result = host.execute(command)
            try:
                try:
                    conn.send(result)
                except (OSError, ValueError):  # closed: the worker is being abandoned
                    return
                except Exception as exc:  # noqa: BLE001 - e.g. an info dict that does not pickle
                    conn.send(("error", type(exc).__name__, f"result not sendable: {exc}"))
            except (OSError, ValueError):
                return

    runner = threading.Thread(target=run_commands, daemon=True, name="agentgym-commands")
    runner.start()
    abandoned = False
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the trainer is gone
                break
            if message == ABANDON:
                abandoned = True
                break
            commands.put(message)
            if message is None:
                runner.join()
                break
    finally:
        host.close_all()
        conn.close()
        if abandoned:  # the command thread may be stuck in native code: leave without it
            os._exit(0)


class ProcessWorker:
    """A child process (spawned: safe after CUDA and threads) holding its own instances."""

    local = False

    def __init__(self, build: EnvBuild, context: str = "spawn"):
        ctx = multiprocessing.get_context(context)
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_process_main, args=(child, build), daemon=True)
        self.process.start()
        child.close()
        self._pending: deque[Future] = deque()
        self._dead = False
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True, name="agentgym-pipe")
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                result = self._conn.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                future = self._pending.popleft()
            future.set_result(result)
        self.process.join(5)  # reap it, to report how it ended
        with self._lock:
            pending, self._pending = list(self._pending), deque()
            self._dead = True
        code = self.process.exitcode
        for future in pending:
            future.set_exception(WorkerDied(f"worker process ended (exit code {code})"))

    @property
    def dead(self) -> bool:
        """The process ended (crashed or was killed) and was reaped."""
        return self._dead

    def submit(self, command: Command) -> Future:
        future: Future = Future()
        with self._lock:
            if self._dead:  # it ended while idle: nothing would ever answer
                code = self.process.exitcode
                future.set_exception(WorkerDied(f"worker process ended (exit code {code})"))
                return future
            self._pending.append(future)
            try:
                self._conn.send(command)
            except (OSError, ValueError) as exc:
                self._pending.pop()
                future.set_exception(WorkerDied(f"worker process unreachable: {exc}"))
        return future

    def kill(self, grace: float = 5.0) -> None:
        """Abandon the worker: it closes its envs and exits, or is killed after ``grace`` s."""
        try:
            self._conn.send(ABANDON)
        except (OSError, ValueError):
            pass
        self.process.join(grace)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(grace)
        self._conn.close()

    def shutdown(self, timeout: float) -> None:
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()  # SIGTERM: the worker still closes its envs
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        self._conn.close()


_RAY_HOST: Any = None


def _ray_host(ray: Any) -> Any:
    """The actor class: commands run in order in the default concurrency group (one thread);
    ``abandon`` runs in its own group, so it can close the envs while a command hangs."""

    class RayEnvHost(EnvHost):
        @ray.method(concurrency_group="control")
        def abandon(self) -> None:
            self.close_all()

    return ray.remote(concurrency_groups={"control": 1})(RayEnvHost)


class RayWorker:
    """A Ray actor holding its own instances (a local Ray runtime or a cluster's)."""

    local = False
    dead = False  # a dead actor shows as failed commands

    def __init__(self, build: EnvBuild, options: Mapping[str, Any] | None = None):
        global _RAY_HOST
        import ray

        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False)
        if _RAY_HOST is None:
            _RAY_HOST = _ray_host(ray)
        self._ray = ray
        self.actor = _RAY_HOST.options(**dict(options or {})).remote(build)

    def submit(self, command: Command) -> Future:
        future: Future = Future()
        inner = self.actor.execute.remote(command).future()

        def relay(done: Future) -> None:
            exc = done.exception()
            if exc is None:
                future.set_result(done.result())
            else:
                future.set_exception(WorkerDied(f"Ray actor failed: {exc}"))

        inner.add_done_callback(relay)
        return future

    def kill(self, grace: float = 5.0) -> None:
        """Abandon the actor: it closes its envs (even mid-command), then is killed."""
        try:
            self._ray.get(self.actor.abandon.remote(), timeout=grace)
        except Exception:  # noqa: BLE001 - a dead or wedged actor is killed regardless
            pass
        self._ray.kill(self.actor, no_restart=True)

    def shutdown(self, timeout: float) -> None:
        try:
            self._ray.get(self.actor.close_all.remote(), timeout=timeout)
        except Exception:  # noqa: BLE001 - a dead actor has nothing left to close
            pass
        self._ray.kill(self.actor, no_restart=True)


__all__ = [
    "EnvBuild",
    "EnvHost",
    "InlineWorker",
    "ProcessWorker",
    "RayWorker",
    "ThreadWorker",
    "WorkerDied",
]
