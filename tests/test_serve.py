"""agentgym serve (agentgym.serve) over HTTP on 127.0.0.1, and RemoteEnv (agentgym.remote) playing it."""

import http.client
import json
import subprocess
import sys
import threading

import pytest

import agentgym
from agentgym.cli import _parser
from agentgym.core import EpisodeOverError, check_env
from agentgym.envs.toy import KeyDoorEnv
from agentgym.remote import RemoteEnv, ServerError
from agentgym.serve import EnvServer

KEYDOOR = "agentgym/KeyDoor-Small-v0"


class _CrashesOnBoom(KeyDoorEnv):
    """KeyDoor whose step raises on the action 'boom' (a broken environment)."""

    def _step(self, action):
        if action == "boom":
            raise RuntimeError("the environment broke")
        return super()._step(action)


agentgym.register("test/CrashingKeyDoor-v0", _CrashesOnBoom, n_rooms=3, max_turns=15)


@pytest.fixture
def server():
    srv = EnvServer(KEYDOOR, host="127.0.0.1", port=0, max_sessions=80)
    srv.start()
    yield srv
    srv.stop()


def request(srv, method, path, body=None, raw=None):
    host, port = srv._httpd.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = resp.status, json.loads(resp.read())
    conn.close()
    return out


def play(env, seed, steps=12):
    """Reset with ``seed``, then take the last admissible action each turn; the transcript."""
    record = [env.reset(seed=seed)]
    for _ in range(steps):
        out = env.step(record[-1][-1]["admissible_actions"][-1])
        record.append(out)
        if out[2] or out[3]:
            break
    return record


def test_remote_env_keeps_the_contract_and_plays_like_the_local_env(server):
    remote = RemoteEnv(server.url)
    check_env(remote)
    local = agentgym.make(KEYDOOR)
    for seed in (0, 5, 9):
        assert play(remote, seed) == play(local, seed)
    remote.close()
    assert server.open_sessions() == 0


def test_step_after_the_end_and_bad_requests_get_clear_errors(server):
    assert request(server, "GET", "/health")[1]["status"] == "healthy"
    assert request(server, "GET", "/metadata")[1]["env_id"] == KEYDOOR
    status, out = request(server, "POST", "/reset", raw=b"{not json")
    assert status == 400 and "not JSON" in out["error"]
    status, out = request(server, "POST", "/reset", {"seed": -3})
    assert status == 400 and "seed" in out["error"]
    status, out = request(
        server, "POST", "/step", {"episode_id": "nope", "action": {"text": "look"}}
    )
    assert status == 404 and "no open episode" in out["error"]
    status, out = request(server, "GET", "/teleport")
    assert status == 404 and "POST /step" in out["error"]
    status, out = request(server, "POST", "/reset", {"seed": 1})
    episode = out["episode_id"]
    status, out = request(server, "POST", "/step", {"episode_id": episode, "action": 7})
    assert status == 400 and "'action'" in out["error"]
    # walk to the end with the oracle, then one step too many
    env = agentgym.make(KEYDOOR)
    env.reset(seed=1)
    done = False
    while not done:
        action = env.unwrapped.oracle_action()
        env.step(action)
        status, out = request(
            server, "POST", "/step", {"episode_id": episode, "action": {"text": action}}
        )
        assert status == 200
        done = out["done"]
    assert out["terminated"] and out["observation"]["info"]["won"]
    status, out = request(
        server, "POST", "/step", {"episode_id": episode, "action": {"text": "look"}}
    )
    assert status == 409 and "reset or close" in out["error"]
    assert request(server, "POST", "/close", {"episode_id": episode})[0] == 200


def test_the_client_raises_episode_over_after_the_end(server):
    remote = RemoteEnv(server.url)
    env = agentgym.make(KEYDOOR)
    remote.reset(seed=2)
    env.reset(seed=2)
    ended = False
    while not ended:
        action = env.unwrapped.oracle_action()
        env.step(action)
        ended = any(remote.step(action)[2:4])
    with pytest.raises(EpisodeOverError):
        remote.step("look")
    remote.close()


def test_a_crashing_episode_does_not_take_the_server_down():
    srv = EnvServer("test/CrashingKeyDoor-v0", port=0)
    srv.start()
    try:
        broken, healthy = RemoteEnv(srv.url), RemoteEnv(srv.url)
        broken.reset(seed=0)
        healthy.reset(seed=0)
        with pytest.raises(ServerError, match="500.*the environment broke"):
            broken.step("boom")
        assert srv.open_sessions() == 1  # the crashed session is gone, the other one stays
        local = agentgym.make("test/CrashingKeyDoor-v0")
        local.reset(seed=0)
        assert healthy.step("look") == local.step("look")
        broken.reset(seed=1)  # the client opens a new session after the crash
        assert srv.open_sessions() == 2
    finally:
        srv.stop()


def test_max_sessions_is_enforced():
    srv = EnvServer(KEYDOOR, port=0, max_sessions=2)
    srv.start()
    try:
        envs = [RemoteEnv(srv.url) for _ in range(3)]
        envs[0].reset(seed=0)
        envs[1].reset(seed=0)
        with pytest.raises(ServerError, match="503.*max_sessions=2"):
            envs[2].reset(seed=0)
        envs[0].close()
        envs[2].reset(seed=0)  # a closed session frees its slot
    finally:
        srv.stop()


def test_load_64_concurrent_episodes_no_lost_or_crossed_sessions(server):
    """64 clients in threads, one episode each with its own seed, all at once against one
    server; every trajectory must equal the same seed played locally."""
    n = 64
    local = agentgym.make(KEYDOOR)
    expected = [play(local, seed) for seed in range(n)]
    got = [None] * n
    errors = []
    barrier = threading.Barrier(n, timeout=60)

    def worker(i):
        env = RemoteEnv(server.url, timeout=60)
        try:
            barrier.wait()
            got[i] = play(env, i)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append((i, repr(exc)))
        finally:
            env.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors
    assert got == expected
    assert server.open_sessions() == 0


def test_the_client_module_does_not_import_the_server():
    code = (
        "import sys, agentgym.remote; "
        "print(sorted(m for m in ('agentgym.serve', 'http.server') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("entry_point", ["agentgym.remote:RemoteEnv", "agentgym.serve:RemoteEnv"])
def test_a_registered_remote_env_plays_like_the_local_env(server, entry_point):
    env_id = f"test/Served-{entry_point.split('.')[1].split(':')[0]}-v0"
    agentgym.register(env_id, entry_point, url=server.url, max_turns=100_000)
    remote = agentgym.make(env_id)
    assert play(remote, 11) == play(agentgym.make(KEYDOOR), 11)
    remote.close()
    assert server.open_sessions() == 0


def test_serve_subcommand_is_in_the_cli():
    args = _parser().parse_args(["serve", KEYDOOR, "--port", "0", "--max-sessions", "8"])
    assert (args.command, args.env, args.port, args.max_sessions) == ("serve", KEYDOOR, 0, 8)


def test_a_served_textarena_game_plays_like_the_local_one():
    pytest.importorskip("textarena")
    srv = EnvServer("textarena/TowerOfHanoi-v0", port=0)
    srv.start()
    try:
        remote = RemoteEnv(srv.url)
        check_env(remote)
        assert play(remote, 3, steps=6) == play(
            agentgym.make("textarena/TowerOfHanoi-v0"), 3, steps=6
        )
        remote.close()
    finally:
        srv.stop()
