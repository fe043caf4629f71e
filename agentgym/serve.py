"""Serve a registered environment over HTTP, and play a served one as if it were local.

``agentgym serve ENV`` runs :class:`EnvServer`: one process, one thread per connection, one
environment instance per episode (instances are reused after ``close``). The client,
:class:`~agentgym.remote.RemoteEnv` (in :mod:`agentgym.remote`, importable from here too), is a
:class:`~agentgym.core.TextEnv` whose ``reset``/``step`` are requests to such a server, so
rollouts, ``check_env`` and training treat a served environment like a local one.

Protocol (JSON over HTTP/1.1; the message shapes follow OpenEnv's ``/reset`` and ``/step``:
``observation``, ``reward``, ``done``, a reset with ``seed`` and ``episode_id``; OpenEnv keeps a
session per WebSocket, this server keys sessions by ``episode_id`` so plain HTTP clients work):

- ``GET /health`` -> ``{"status": "healthy", "env_id": ..., "sessions": n}``
- ``GET /metadata`` -> ``{"env_id", "env_kwargs", "max_turns", "max_sessions", "protocol"}``
- ``POST /reset`` ``{"seed": int|null, "options": {}, "episode_id": str|null}`` -> ``{"episode_id",
  "observation": {"text", "info"}, "reward": null, "done": false}``. Without ``episode_id`` a
  new session is opened; with the id of an open one, that episode restarts.
- ``POST /step`` ``{"episode_id", "action": {"text": str}}`` -> ``{"observation": {"text",
  "info"}, "reward", "done", "terminated", "truncated"}``.
- ``POST /close`` ``{"episode_id"}`` -> ``{"closed": true}``; the session ends and its env
  goes back to the pool.

Errors are JSON ``{"error": message}`` with status 400 (malformed request: the message names the
field), 404 (unknown path or episode id), 409 (step after the episode ended: reset or close),
503 (``max_sessions`` open: close some) or 500 (the environment raised: that session is closed,
the server goes on). Sessions idle for ``idle_timeout`` seconds are closed.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import gymnasium as gym
import numpy as np

from agentgym.core import EpisodeOverError
from agentgym.remote import RemoteEnv, ServerError

__all__ = ["EnvServer", "RemoteEnv", "RequestError", "ServerError", "add_serve_command"]

PROTOCOL = "agentgym-serve/1 (OpenEnv-style reset/step messages, sessions by episode_id)"
MAX_BODY = 8 << 20


class RequestError(Exception):
    """A request the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: many clients connect at once (default 5)


@dataclass
class _Session:
    env: gym.Env
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)
    done: bool = False


class EnvServer:
    """Serves ``agentgym.make(env_id, **env_kwargs)`` episodes on ``host:port`` (port 0: any).

    ``start()`` serves in a background thread and returns the base URL; ``serve_forever()``
    blocks; ``stop()`` shuts down and closes every env.
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_sessions: int = 256,
        idle_timeout: float = 600.0,
    ) -> None:
        from agentgym.registry import make, spec

        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.max_turns = spec(env_id).max_turns
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self._make = lambda: make(env_id, **self.env_kwargs)
        self._make().close()  # an unknown id or a bad argument fails now, not at the first reset
        self._sessions: dict[str, _Session] = {}
        self._idle: list[gym.Env] = []
        self._lock = threading.Lock()
        self._httpd = _Server((host, port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            envs = [s.env for s in self._sessions.values()] + self._idle
            self._sessions.clear()
            self._idle.clear()
        for env in envs:
            env.close()

    def open_sessions(self) -> int:
        with self._lock:
            return len(self._sessions)

    # -- handlers (called from the request threads) -------------------------------------------
    def health(self) -> dict[str, Any]:
        return {"status": "healthy", "env_id": self.env_id, "sessions": self.open_sessions()}

    def metadata(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "max_turns": self.max_turns,
            "max_sessions": self.max_sessions,
            "protocol": PROTOCOL,
        }

    def reset(self, body: dict[str, Any]) -> dict[str, Any]:
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise RequestError(400, f"'seed' must be a non-negative integer or null, got {seed!r}")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise RequestError(400, f"'options' must be an object, got {type(options).__name__}")
        episode_id = body.get("episode_id")
        if episode_id is None:
            episode_id, session = self._open()
        else:
            session = self._session(episode_id)
        with session.lock:
            try:
                obs, info = session.env.reset(seed=seed, options=options)
            except Exception as exc:  # noqa: BLE001 - the episode fails, the server goes on
                self._drop(episode_id)
                raise RequestError(500, f"the environment raised at reset: {exc!r}") from exc
            session.done, session.last_used = False, time.monotonic()
        observation = {"text": obs, "info": info}
        return {"episode_id": episode_id, "observation": observation, "reward": None, "done": False}

    def step(self, body: dict[str, Any]) -> dict[str, Any]:
        episode_id = body.get("episode_id")
        action = body.get("action")
        if isinstance(action, dict):
            action = action.get("text")
        if not isinstance(action, str):
            raise RequestError(400, "'action' must be {\"text\": <string>} (or a string)")
        session = self._session(episode_id)
        with session.lock:
            if session.done:
                raise RequestError(409, f"episode {episode_id} has ended: reset or close it")
            try:
                obs, reward, terminated, truncated, info = session.env.step(action)
            except EpisodeOverError as exc:
                raise RequestError(409, str(exc)) from exc
            except Exception as exc:  # noqa: BLE001 - the episode fails, the server goes on
                self._drop(episode_id)
                raise RequestError(500, f"the environment raised at step: {exc!r}") from exc
            session.done = bool(terminated or truncated)
            session.last_used = time.monotonic()
        return {
            "observation": {"text": obs, "info": info},
            "reward": float(reward),
            "done": session.done,
            "terminated": bool(terminated),
            "truncated": bool(truncated),
        }

    def close(self, body: dict[str, Any]) -> dict[str, Any]:
        episode_id = body.get("episode_id")
        session = self._session(episode_id)
        with self._lock:
            self._sessions.pop(episode_id, None)
            if len(self._idle) < self.max_sessions:
                self._idle.append(session.env)
                return {"closed": True}
        session.env.close()
        return {"closed": True}

    # -- sessions ------------------------------------------------------------------------------
    def _open(self) -> tuple[str, _Session]:
        self._reap()
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                raise RequestError(
                    503,
                    f"{len(self._sessions)} sessions are open (max_sessions={self.max_sessions}): "
                    "close finished episodes (POST /close) or start the server with more",
                )
            env = self._idle.pop() if self._idle else None
            episode_id = uuid.uuid4().hex
            # reserve the slot before building (building may be slow and runs unlocked)
            self._sessions[episode_id] = session = _Session(env)  # type: ignore[arg-type]
        if env is None:
            try:
                session.env = self._make()
            except Exception as exc:  # noqa: BLE001
                self._drop(episode_id)
                raise RequestError(500, f"building the environment failed: {exc!r}") from exc
        return episode_id, session

    def _session(self, episode_id: Any) -> _Session:
        if not isinstance(episode_id, str):
            raise RequestError(400, "'episode_id' (a string from /reset) is required")
        with self._lock:
            session = self._sessions.get(episode_id)
        if session is None:
            raise RequestError(404, f"no open episode {episode_id!r} (closed, reaped or unknown)")
        return session

    def _drop(self, episode_id: str) -> None:
        with self._lock:
            session = self._sessions.pop(episode_id, None)
        if session is not None and session.env is not None:
            try:
                session.env.close()
            except Exception:  # noqa: BLE001 - a crashed env may fail to close too
                pass

    def _reap(self) -> None:
        now = time.monotonic()
        with self._lock:
            stale = [k for k, s in self._sessions.items() if now - s.last_used > self.idle_timeout]
        for episode_id in stale:
            self._drop(episode_id)


def _handler_for(server: EnvServer) -> type[BaseHTTPRequestHandler]:
    routes = {
        ("GET", "/health"): lambda body: server.health(),
        ("GET", "/metadata"): lambda body: server.metadata(),
        ("POST", "/reset"): server.reset,
        ("POST", "/step"): server.step,
        ("POST", "/close"): server.close,
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet server
            pass

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            try:
                body = self._body() if method == "POST" else {}
                route = routes.get((method, self.path.split("?")[0]))
                if route is None:
                    paths = ", ".join(f"{m} {p}" for m, p in routes)
                    raise RequestError(404, f"no route {method} {self.path}; routes: {paths}")
                status, payload = 200, route(body)
            except RequestError as exc:
                status, payload = exc.status, {"error": str(exc)}
            except Exception as exc:  # noqa: BLE001 - never let a request kill the server
                status, payload = 500, {"error": f"internal error: {exc!r}"}
            data = json.dumps(payload, default=_jsonable).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise RequestError(400, f"request body over {MAX_BODY} bytes")
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw or b"{}")
            except ValueError as exc:
                raise RequestError(400, f"request body is not JSON: {exc}") from exc
            if not isinstance(body, dict):
                raise RequestError(400, "request body must be a JSON object")
            return body

    return Handler


# -- CLI ------------------------------------------------------------------------------------------


def add_serve_command(sub: Any) -> None:
    """Add ``agentgym serve ENV`` to the CLI's subparsers ``sub``."""
    from agentgym.cli_tools import add_env_kwarg_option, add_import_option

    sv = sub.add_parser(
        "serve", help="serve a registered environment over HTTP (agentgym.serve.RemoteEnv plays it)"
    )
    sv.add_argument("env", metavar="ENV", help="environment id, optionally ID:KEY=VALUE,...")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free one)")
    sv.add_argument("--max-sessions", type=int, default=256, help="open episodes at most (256)")
    sv.add_argument(
        "--idle-timeout", type=float, default=600.0, help="close sessions idle this long (s, 600)"
    )
    add_env_kwarg_option(sv)
    add_import_option(sv)
    sv.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace, console: Any) -> int:
    from agentgym.preflight import env_args

    ((env_id, kwargs),) = env_args([args.env], args.env_kwarg)
    server = EnvServer(
        env_id,
        kwargs,
        host=args.host,
        port=args.port,
        max_sessions=args.max_sessions,
        idle_timeout=args.idle_timeout,
    )
    console.print(f"Serving {env_id} at {server.url}; play it with RemoteEnv('{server.url}')")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
