"""``OpenAIPolicy``: any OpenAI-compatible ``/v1/chat/completions`` endpoint as a Policy.

For evaluating hosted models (OpenAI, Together, ...) or models served locally (``vllm serve``,
``llama.cpp``'s ``llama-server``, SGLang, TGI). Standard library only: ``urllib`` for HTTP and a
thread pool so the conversations of one ``generate`` call are requested concurrently (at most
``max_concurrency`` at a time); completions come back in the order of the conversations.

Request: the conversation's messages as they are, ``temperature``, ``top_p``, ``max_tokens``
(from ``max_new_tokens``), ``stop`` (when not empty), ``seed`` (when set, each request gets its
own from ``agentgym.policy.vllm.request_seed``: group members that share a prompt do not share
a sample, and turns do not replay one seed; the first call's conversation ``i`` gets
``seed + i``), ``logprobs: true`` and ``n: 1``. A server that ignores a field (many ignore
``seed``) just ignores it.

Response: ``Completion.text`` is ``choices[0].message.content``. As the OpenAI API does, servers
leave the stop string out of the text (the ``hf`` backend keeps it); the rollout's action parsers
accept both. ``token_ids`` and ``prompt_ids`` are empty: the server's tokenization is not ours,
so trajectories from this policy are for evaluation, not training. ``logprobs`` are
``choices[0].logprobs.content[].logprob`` when the server returns them, else empty; which
distribution they are taken under (before or after temperature) is the server's convention.

Errors: a refused connection raises :class:`ConnectionError` naming the URL and how to start a
server; HTTP 429 and 5xx, timeouts (``timeout`` seconds without a byte: a server that accepts
and never answers) and dropped connections (closed before the status line or in the middle of
the body) are retried ``retries`` times with exponential backoff (honouring ``Retry-After``), then
raise :class:`ConnectionError` saying how many attempts failed and why; other HTTP errors raise
:class:`OpenAIError` with the server's own message.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentgym.policy.base import Completion, Conversation, SamplingParams
from agentgym.policy.vllm import request_seed

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: rate limits, timeouts and server-side failures."""
START_HINT = (
    "Start an OpenAI-compatible server there, e.g. `vllm serve MODEL --port 8000` "
    "(base_url='http://localhost:8000/v1') or `llama-server -m MODEL.gguf --port 8080` "
    "(base_url='http://localhost:8080/v1'), or pass the base_url of a hosted API."
)


class OpenAIError(RuntimeError):
    """The server answered with an error; ``status`` is its HTTP status (0: no valid answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def chat_url(base_url: str) -> str:
    """The chat-completions URL of ``base_url`` (``.../v1`` or already ``.../chat/completions``)."""
    base = base_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
    return base if base.endswith("/chat/completions") else f"{base}/chat/completions"


def request_body(
    model: str, messages: Sequence[Mapping[str, str]], sampling: SamplingParams, seed: int | None
) -> dict[str, Any]:
    """The JSON body of one chat-completion request."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [dict(m) for m in messages],
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_new_tokens,
        "n": 1,
        "logprobs": True,
    }
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if seed is not None:
        body["seed"] = seed
    return body


def parse_completion(payload: Mapping[str, Any]) -> Completion:
    """A :class:`Completion` from a chat-completion response body."""
    choices = payload.get("choices")
    if not choices:
        raise OpenAIError(f"the server's response has no choices: {_clip(json.dumps(payload))}")
    choice = choices[0]
    text = (choice.get("message") or {}).get("content") or ""
    content = (choice.get("logprobs") or {}).get("content") or []
    logprobs = tuple(float(entry["logprob"]) for entry in content if "logprob" in entry)
    return Completion(text=text, logprobs=logprobs)


def server_message(raw: bytes) -> str:
    """The error message inside an error response (OpenAI, FastAPI or plain text styles)."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return _clip(text) or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            for key in ("message", "detail", "msg"):
                if err.get(key):
                    return _clip(str(err[key]))
        elif isinstance(err, str):
            return _clip(err)
    return _clip(text)


def _clip(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class OpenAIPolicy:
    """A model behind an OpenAI-compatible chat endpoint, as a Policy (stateless across turns).

    Args:
        base_url: the API root, e.g. ``"http://localhost:8000/v1"`` or
            ``"https://api.openai.com/v1"`` (a full ``.../chat/completions`` URL works too).
        model: the model name the server expects.
        api_key: sent as ``Authorization: Bearer``; default ``$OPENAI_API_KEY``, none if unset.
        timeout: seconds to wait for one response.
        max_concurrency: at most this many requests in flight.
        retries: extra attempts after a 429/5xx, timeout or dropped connection.
        backoff: first retry delay in seconds; doubles each retry, capped at ``max_backoff``.
        max_backoff: longest wait between attempts (also caps ``Retry-After``).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_concurrency: int = 8,
        retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.url = chat_url(base_url)
        self.model = model
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self.stats = {"requests": 0, "retries": 0, "prompt_tokens": 0, "completion_tokens": 0}
        """Counters over the policy's life: HTTP attempts, retries, tokens billed (``usage``)."""
        self._lock = threading.Lock()
        self._seed_calls: dict[int, int] = {}

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIPolicy(url={self.url!r}, model={self.model!r})"

    def generate(
        self, conversations: Sequence[Conversation], sampling: SamplingParams
    ) -> list[Completion]:
        """One completion per conversation, in order; requests run concurrently."""
        if sampling.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {sampling.max_new_tokens}")
        seeds: list[int | None] = [None] * len(conversations)
        if sampling.seed is not None:
            call = self._seed_calls[sampling.seed] = self._seed_calls.get(sampling.seed, -1) + 1
            seeds = [request_seed(sampling.seed, call, i) for i in range(len(conversations))]
        bodies = [
            request_body(self.model, conv.messages, sampling, seed)
            for conv, seed in zip(conversations, seeds, strict=True)
        ]
        if len(bodies) <= 1:
            return [self.complete(b) for b in bodies]
        workers = min(self.max_concurrency, len(bodies))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai") as pool:
            return list(pool.map(self.complete, bodies))

    def end_episodes(self, keys: Sequence[str]) -> None:
        """Nothing to release: the policy keeps no per-episode state."""

    def complete(self, body: Mapping[str, Any]) -> Completion:
        """Send one request body, retrying transient failures; parse the answer."""
        data = json.dumps(body).encode("utf-8")
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            request = urllib.request.Request(self.url, data=data, headers=self._headers)
            self._count("requests")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as err:
                message = server_message(err.read())
                if err.code not in RETRY_STATUS or last:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    raise OpenAIError(
                        f"{self.url} answered HTTP {err.code}{tries}: {message}", err.code
                    ) from None
                self._wait(attempt, err.headers.get("Retry-After"))
            except urllib.error.URLError as err:
                if _refused(err.reason):
                    raise ConnectionError(
                        f"could not connect to {self.url}: connection refused, no server is "
                        f"listening there. {START_HINT}"
                    ) from None
                if last:
                    raise ConnectionError(f"request to {self.url} failed: {err.reason}") from err
                self._wait(attempt, None)
            except (TimeoutError, ConnectionError, http.client.HTTPException) as err:
                if last:
                    raise ConnectionError(
                        f"request to {self.url} failed after {attempt + 1} attempts: "
                        f"{type(err).__name__}: {err} (timeout={self.timeout}s)"
                    ) from err
                self._wait(attempt, None)
            except ValueError as err:  # the body is not JSON
                raise OpenAIError(f"{self.url} sent a response that is not JSON: {err}") from err
            else:
                self._add_usage(payload.get("usage") or {})
                return parse_completion(payload)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * 2**attempt
        if retry_after:
            try:
                delay = float(retry_after)
            except ValueError:
                pass  # an HTTP date: keep the exponential delay
        self._count("retries")
        time.sleep(min(max(delay, 0.0), self.max_backoff))

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] += n

    def _add_usage(self, usage: Mapping[str, Any]) -> None:
        for key in ("prompt_tokens", "completion_tokens"):
            if isinstance(usage.get(key), int):
                self._count(key, usage[key])


def _refused(reason: object) -> bool:
    """Whether a URLError's reason is a refused connection."""
    return isinstance(reason, ConnectionRefusedError) or (
        isinstance(reason, OSError) and "refused" in str(reason).lower()
    )
