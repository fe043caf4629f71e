"""OpenAIPolicy against a small chat-completions server started on 127.0.0.1 by the test.

The server is deterministic: it replies with the first valid action listed in the last user
message ("Valid actions: a, b, c" or a bulleted "- a" list), else "look"; it cuts the reply before the first stop string
(as OpenAI-compatible servers do) and returns one logprob per word, ``-0.5 * (k + 1)`` for word k.
Tests can queue HTTP failures to be served before the next successes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentgym.policy.base import Conversation, Policy, SamplingParams
from agentgym.policy.openai import OpenAIError, OpenAIPolicy, chat_url, server_message
from agentgym.rollout import collect


def reply_for(body: dict) -> str:
    """The deterministic reply of the test server to a request body."""
    last_user = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    text = "look"
    for line in last_user.splitlines():  # "Valid actions: a, b" or a bulleted list "- a"
        if line.startswith("Valid actions:"):
            text = line.removeprefix("Valid actions:").split(",")[0].strip()
            break
        if line.startswith("- "):
            text = line.removeprefix("- ").strip()
            break
    for stop in body.get("stop") or []:
        if stop in text:
            text = text[: text.index(stop)]
    return text


class ChatServer(ThreadingHTTPServer):
    """Records requests; serves queued failures first, then deterministic completions."""

    daemon_threads = True

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), ChatHandler)
        self.delay = delay
        self.requests: list[tuple[dict, dict]] = []  # (headers, body)
        self.failures: list[tuple[int, str]] = []  # (status, body) served before successes
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class ChatHandler(BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: str) -> None:
        data = payload.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            srv.requests.append((dict(self.headers), body))
            failure = srv.failures.pop(0) if srv.failures else None
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            time.sleep(srv.delay)
            if self.path != "/v1/chat/completions":
                self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}))
            elif failure is not None:
                self._send(*failure)
            else:
                text = reply_for(body)
                words = text.split()
                content = [{"token": w, "logprob": -0.5 * (k + 1)} for k, w in enumerate(words)]
                payload = {
                    "id": "cmpl-test",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                            "logprobs": {"content": content} if body.get("logprobs") else None,
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": len(words)},
                }
                self._send(200, json.dumps(payload))
        finally:
            with srv.lock:
                srv.in_flight -= 1


@pytest.fixture
def server():
    srv = ChatServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def conv(key: str, actions: list[str]) -> Conversation:
    return Conversation(
        key=key,
        messages=[
            {"role": "system", "content": "Play."},
            {"role": "user", "content": f"A room.\nValid actions: {', '.join(actions)}"},
        ],
    )


def test_satisfies_protocol_and_hides_key():
    policy = OpenAIPolicy("http://127.0.0.1:1/v1", "m", api_key="sk-secret")
    assert isinstance(policy, Policy)
    assert "sk-secret" not in repr(policy)


def test_chat_url():
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"
    with pytest.raises(ValueError, match="http://"):
        chat_url("localhost:8000/v1")


def test_server_message_styles():
    assert server_message(b'{"error": {"message": "bad model"}}') == "bad model"
    assert server_message(b'{"detail": "not found"}') == "not found"
    assert server_message(b'{"error": "quota"}') == "quota"
    assert server_message(b"plain failure") == "plain failure"


def test_request_format_and_response(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    policy = OpenAIPolicy(server.base_url, "smol", backoff=0.0)
    sampling = SamplingParams(temperature=0.3, top_p=0.8, max_new_tokens=7, stop=("\n",), seed=5)
    [completion] = policy.generate([conv("a", ["go north", "look"])], sampling)
    assert completion.text == "go north"
    assert completion.logprobs == (-0.5, -1.0)
    assert completion.token_ids == () and completion.prompt_ids == ()
    [(headers, body)] = server.requests
    assert headers["Authorization"] == "Bearer sk-from-env"
    assert headers["Content-Type"] == "application/json"
    assert body == {
        "model": "smol",
        "messages": conv("a", ["go north", "look"]).messages,
        "temperature": 0.3,
        "top_p": 0.8,
        "max_tokens": 7,
        "n": 1,
        "logprobs": True,
        "stop": ["\n"],
        "seed": 5,
    }
    assert policy.stats["prompt_tokens"] == 10 and policy.stats["completion_tokens"] == 2


def test_optional_fields_left_out_and_no_key(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    policy = OpenAIPolicy(server.base_url, "smol")
    policy.generate([conv("a", ["look"])], SamplingParams(temperature=0.0))
    [(headers, body)] = server.requests
    assert "Authorization" not in headers
    assert "stop" not in body and "seed" not in body
    assert body["temperature"] == 0.0


def test_stop_strings_are_passed_and_applied(server):
    policy = OpenAIPolicy(server.base_url, "smol")
    [completion] = policy.generate(
        [conv("a", ["take key</action>"])], SamplingParams(stop=("</action>", "\n\n"))
    )
    assert server.requests[0][1]["stop"] == ["</action>", "\n\n"]
    assert completion.text == "take key"


def test_batch_is_concurrent_bounded_and_ordered(server):
    server.delay = 0.2
    policy = OpenAIPolicy(server.base_url, "smol", max_concurrency=3)
    convs = [conv(f"c{i}", [f"take item{i}", "look"]) for i in range(7)]
    completions = policy.generate(convs, SamplingParams(seed=100))
    assert [c.text for c in completions] == [f"take item{i}" for i in range(7)]
    assert len(server.requests) == 7
    assert 2 <= server.max_in_flight <= 3
    # conversation i of the first call is sampled with seed + i: equal prompts differ
    by_action = {reply_for(body): body["seed"] for _, body in server.requests}
    assert by_action == {f"take item{i}": 100 + i for i in range(7)}
    # a second call under the same seed uses new seeds (turns do not replay the same noise)
    policy.generate(convs[:2], SamplingParams(seed=100))
    later = {body["seed"] for _, body in server.requests[7:]}
    assert len(later) == 2 and not later & set(by_action.values())


def test_server_error_is_retried(server):
    server.failures = [(500, '{"error": {"message": "overloaded"}}'), (429, "{}")]
    policy = OpenAIPolicy(server.base_url, "smol", retries=2, backoff=0.01)
    [completion] = policy.generate([conv("a", ["look"])], SamplingParams())
    assert completion.text == "look"
    assert len(server.requests) == 3
    assert policy.stats["retries"] == 2


def test_retries_run_out(server):
    server.failures = [(503, '{"error": {"message": "warming up"}}')] * 3
    policy = OpenAIPolicy(server.base_url, "smol", retries=1, backoff=0.01)
    with pytest.raises(OpenAIError, match="HTTP 503 after 2 attempts: warming up") as err:
        policy.generate([conv("a", ["look"])], SamplingParams())
    assert err.value.status == 503
    assert len(server.requests) == 2


def test_client_error_is_not_retried_and_says_why(server):
    message = "The model `gpt-x` does not exist."
    server.failures = [(400, json.dumps({"error": {"message": message, "type": "invalid"}}))]
    policy = OpenAIPolicy(server.base_url, "gpt-x", retries=3, backoff=0.01)
    with pytest.raises(OpenAIError, match="HTTP 400: The model `gpt-x` does not exist") as err:
        policy.generate([conv("a", ["look"])], SamplingParams())
    assert err.value.status == 400
    assert len(server.requests) == 1


def test_wrong_path_reports_404(server):
    policy = OpenAIPolicy(server.base_url.removesuffix("/v1") + "/v2", "smol")
    with pytest.raises(OpenAIError, match="HTTP 404: no route /v2/chat/completions"):
        policy.generate([conv("a", ["look"])], SamplingParams())


def test_refused_connection_names_url_and_server_command():
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    policy = OpenAIPolicy(f"http://127.0.0.1:{port}/v1", "smol", retries=2, backoff=0.01)
    with pytest.raises(ConnectionError) as err:
        policy.generate([conv("a", ["look"])], SamplingParams())
    text = str(err.value)
    assert f"http://127.0.0.1:{port}/v1/chat/completions" in text
    assert "connection refused" in text and "vllm serve" in text
    assert policy.stats["retries"] == 0


def test_missing_logprobs_give_empty_tuple(server):
    policy = OpenAIPolicy(server.base_url, "smol")
    body = {"model": "smol", "messages": conv("a", ["look"]).messages}  # logprobs not asked
    completion = policy.complete(body)
    assert completion.text == "look" and completion.logprobs == ()


def test_rollout_driven_by_server(server):
    policy = OpenAIPolicy(server.base_url, "smol", max_concurrency=4)
    batch = collect(
        "agentgym/KeyDoor-Small-v0",
        policy,
        tasks=2,
        group_size=2,
        max_turns=4,
        sampling=SamplingParams(temperature=0.0, stop=("\n",)),
    )
    assert len(batch) == 4
    for traj in batch.trajectories:
        assert len(traj.turns) == 4 or traj.won
        for turn in traj.turns:
            assert not turn.invalid
            assert turn.action == turn.output
            assert turn.response_ids == ()
            assert turn.response_logprobs == tuple(
                -0.5 * (k + 1) for k in range(len(turn.output.split()))
            )
    assert len(server.requests) == 4 * 4  # one request per live episode per turn
    assert all(body["stop"] == ["\n"] for _, body in server.requests)


class SilentServer:
    """A TCP server that accepts each connection, reads the request and then either never
    answers (``reply=None``: a stalled server or proxy, which only a client timeout ends) or
    sends ``reply`` and closes. A test double for network faults, not for a chat server."""

    def __init__(self, reply: bytes | None = None) -> None:
        self.reply = reply
        self.accepted = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.accepted += 1
            self.conns.append(conn)
            conn.recv(65536)
            if self.reply is not None:
                conn.sendall(self.reply)
                conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


def test_server_that_never_answers_times_out_retries_then_fails():
    silent = SilentServer()
    try:
        policy = OpenAIPolicy(silent.base_url, "smol", timeout=0.3, retries=2, backoff=0.01)
        start = time.monotonic()
        with pytest.raises(ConnectionError) as err:
            policy.generate([conv("a", ["look"])], SamplingParams())
        elapsed = time.monotonic() - start
    finally:
        silent.close()
    assert "after 3 attempts" in str(err.value) and "timeout=0.3s" in str(err.value)
    assert silent.accepted == 3 and policy.stats["retries"] == 2
    assert elapsed < 3 * 0.3 + 2  # three timeouts and two short waits, no hang


@pytest.mark.parametrize(
    "reply",
    [
        b"",  # closes without a status line
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"id',
    ],
    ids=["closed-at-once", "truncated-body"],
)
def test_dropped_connection_is_retried_then_fails(reply):
    """A connection closed before the answer is whole: retried, then a ConnectionError."""
    dropper = SilentServer(reply)
    try:
        policy = OpenAIPolicy(dropper.base_url, "smol", timeout=5, retries=1, backoff=0.01)
        with pytest.raises(ConnectionError, match="after 2 attempts"):
            policy.generate([conv("a", ["look"])], SamplingParams())
    finally:
        dropper.close()
    assert dropper.accepted == 2 and policy.stats["retries"] == 1
