"""Play an environment served by ``agentgym serve`` as if it were local: :class:`RemoteEnv`.

The client half of :mod:`agentgym.serve` (the server, its protocol and its errors are described
there). It needs only the standard library's ``http.client``, so a trainer on another machine
imports this module without the server.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from agentgym.core import TextEnv


class ServerError(RuntimeError):
    """A served environment answered with an error."""


class RemoteEnv(TextEnv):
    """Plays episodes of an environment served by ``agentgym serve`` at ``url``.

    ## Description

    ``reset`` opens (or restarts) a session on the server, ``step`` sends the action there; the
    observation, reward, flags and ``info`` are the served env's. ``close()`` ends the session.

    ## Arguments

    ``url``: the server, e.g. ``http://127.0.0.1:8000``; ``timeout``: seconds per request.

    The served env keeps its own turn limit (it reports ``truncated``); register this client
    with a larger ``max_turns``: ``agentgym.register("served/Name-v0", "agentgym.remote:RemoteEnv",
    url=..., max_turns=100_000)``.
    """

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"RemoteEnv url must look like http://HOST:PORT, got {url!r}")
        self.url = f"http://{parts.hostname}:{parts.port or 80}"
        self._host, self._port, self._timeout = parts.hostname, parts.port or 80, timeout
        self._conn: http.client.HTTPConnection | None = None
        self._episode: str | None = None

    def metadata_json(self) -> dict[str, Any]:
        return self._call("GET", "/metadata")

    def _reset(self, seed: int | None, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if seed is None:  # seeded from the client's own generator: reproducible on its side
            seed = int(self.np_random.integers(2**31 - 1))
        body = {"seed": seed, "options": options, "episode_id": self._episode}
        try:
            out = self._call("POST", "/reset", body)
        except ServerError:
            if self._episode is None:
                raise
            body["episode_id"] = self._episode = None  # reaped by the server: open a new one
            out = self._call("POST", "/reset", body)
        self._episode = out["episode_id"]
        return out["observation"]["text"], out["observation"]["info"]

    def _step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        out = self._call("POST", "/step", {"episode_id": self._episode, "action": {"text": action}})
        obs = out["observation"]
        return obs["text"], out["reward"], out["terminated"], out["truncated"], obs["info"]

    def close(self) -> None:
        if self._episode is not None:
            try:
                self._call("POST", "/close", {"episode_id": self._episode})
            except (ServerError, OSError):
                pass
            self._episode = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        # a dropped connection is retried once, except for /step: the server may have stepped
        retries = (0,) if path == "/step" else (0, 1)
        for attempt in retries:
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
            try:
                self._conn.request(method, path, body=data, headers=headers)
                resp = self._conn.getresponse()
                payload = json.loads(resp.read() or b"{}")
                break
            except (http.client.HTTPException, ConnectionError) as exc:
                self._conn.close()
                self._conn = None
                if attempt == retries[-1]:
                    raise ServerError(
                        f"{self.url}{path}: {exc!r}; is `agentgym serve` running?"
                    ) from exc
        if resp.status != 200:
            raise ServerError(f"{self.url}{path} answered {resp.status}: {payload.get('error')}")
        return payload
