"""The code sandbox: limits, clean-up, and attacks that must stay contained.

Each attack runs under every isolation mode that works here (bwrap, unshare, none) where that
mode claims to contain it, and is followed by a normal run that must still work. Tests of the
default sandbox (bubblewrap) skip with its install hint where it is unavailable.
"""

import ast
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from agentgym import sandbox as sandbox_module
from agentgym.isolation import python_binds
from agentgym.sandbox import (
    ISOLATIONS,
    SANDBOX_UID,
    IsolationUnavailable,
    Limits,
    Sandbox,
    SandboxWarning,
)

FAST = Limits(
    wall_time=3.0,
    cpu_time=1,
    memory_bytes=256 << 20,
    max_processes=16,
    file_size_bytes=1 << 20,
    disk_bytes=4 << 20,
    open_files=32,
    output_bytes=4096,
)
REPO = Path(__file__).resolve().parents[1]
ROOT = os.geteuid() == 0
_boxes: dict[str, Sandbox | str] = {}


def box_for(mode: str) -> Sandbox:
    """A sandbox in ``mode`` (with the system Python if the venv's is unreadable to it)."""
    if mode not in _boxes:
        _boxes[mode] = "no interpreter tried"
        for python in (None, "/usr/bin/python3"):
            try:
                with warnings.catch_warnings():  # the opt-in modes warn; tested below
                    warnings.simplefilter("ignore", SandboxWarning)
                    _boxes[mode] = Sandbox(FAST, isolation=mode, python=python)
                break
            except IsolationUnavailable as exc:
                _boxes[mode] = str(exc)
    box = _boxes[mode]
    if isinstance(box, str):
        pytest.skip(f"isolation {mode!r} does not work here: {box}")
    return box


def default_box(limits: Limits = FAST) -> Sandbox:
    """``Sandbox()`` (bubblewrap), or skip with its message on how to install it."""
    try:
        return Sandbox(limits)
    except IsolationUnavailable as exc:
        pytest.skip(str(exc))


def still_usable(box: Sandbox) -> None:
    result = box.run("print(6 * 7)")
    assert (result.stdout, result.returncode) == ("42\n", 0), result


def processes_named(comm: str) -> list[int]:
    """Host pids whose process name (``/proc/PID/comm``) is ``comm``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == comm:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def rename_self(marker: str) -> str:
    """Sandbox code that names its process ``marker`` (inherited by its children)."""
    return f"import ctypes\nctypes.CDLL(None).prctl(15, {marker.encode()!r}, 0, 0, 0)\n"


@pytest.fixture
def open_dir():
    """A fresh host directory under the system temp dir that anyone may read and write."""
    path = Path(tempfile.mkdtemp(prefix="agentgym-sandbox-test-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def assert_gone(marker: str) -> None:
    deadline = time.monotonic() + 3
    while processes_named(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_named(marker) == [], f"processes {marker!r} outlived the run"


# -- normal runs and limits -----------------------------------------------------------------------
def test_auto_isolation_is_bubblewrap():
    box = default_box()
    assert box.isolation == "bwrap"
    with warnings.catch_warnings():
        warnings.simplefilter("error", SandboxWarning)  # no warning: nothing was given up
        assert Sandbox(FAST, isolation="bwrap").isolation == "bwrap"


def test_missing_bwrap_refuses_instead_of_running_unprotected(monkeypatch):
    python = box_for("none").python  # an interpreter the sandbox user can run without bwrap
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "bwrap" else which(name))
    sandbox_module._probe_cached.cache_clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", SandboxWarning)
            with pytest.raises(IsolationUnavailable) as refused:
                Sandbox(FAST, python=python)
            with pytest.raises(IsolationUnavailable):
                Sandbox(FAST, isolation="bwrap", python=python)
        message = str(refused.value)
        for hint in ("bwrap is not installed", "apt-get install bubblewrap", "make setup"):
            assert hint in message
        assert "isolation='none'" in message
        with pytest.warns(SandboxWarning, match="SANDBOX WITHOUT FULL ISOLATION.*'none'"):
            box = Sandbox(FAST, isolation="none", python=python)  # the explicit opt-in
    finally:
        sandbox_module._probe_cached.cache_clear()
    assert box.isolation == "none"
    still_usable(box)


def test_user_namespaces_refused_gives_the_same_hint(monkeypatch):
    """bwrap installed but unable to create its namespaces: refused, with the hint."""
    python = box_for("bwrap").python
    monkeypatch.setattr(
        sandbox_module,
        "_run",
        lambda job, limits: sandbox_module.RunResult(
            "", "bwrap: No permissions to creating new namespace", 1, False, 0.0
        ),
    )
    sandbox_module._probe_cached.cache_clear()
    try:
        with pytest.raises(IsolationUnavailable, match="namespace.*apt-get install bubblewrap"):
            Sandbox(FAST, python=python)
    finally:
        sandbox_module._probe_cached.cache_clear()


@pytest.mark.parametrize("mode", ["unshare", "none"])
def test_weaker_modes_are_explicit_and_loud(mode):
    box_for(mode)  # skips where the mode does not work at all
    with pytest.warns(SandboxWarning, match=f"SANDBOX WITHOUT FULL ISOLATION: isolation='{mode}'"):
        Sandbox(FAST, isolation=mode, python=box_for(mode).python)


def test_normal_run_sees_stdin_files_and_an_empty_environment():
    box = default_box()
    code = (
        "import os, sys\n"
        "print(input().upper(), open('data.txt').read(), sorted(os.environ.items()))\n"
        "print('site' in sys.modules, any('site-packages' in p for p in sys.path))\n"
        "sys.exit(3)\n"
    )
    result = box.run(code, stdin="hello\n", files={"data.txt": "payload"})
    lines = result.stdout.splitlines()
    assert lines[0].startswith("HELLO payload [('LC_CTYPE', 'C.UTF-8'), ('PATH', '/usr/bin:/bin')]")
    assert lines[1] == "False False"
    assert result.returncode == 3 and not result.ok and result.describe() == "Exited with status 3."
    with pytest.raises(ValueError, match="plain name"):
        box.run("pass", files={"../x": ""})
    odd = box.run("print('\ud800')\x00")  # a lone surrogate and a NUL byte: an error, no raise
    assert odd.returncode == 1 and "null bytes" in odd.stderr


def test_only_the_standard_library_is_importable():
    result = default_box().run("import json, sqlite3, ssl\nimport agentgym")
    assert "ModuleNotFoundError: No module named 'agentgym'" in result.stderr


def test_output_is_capped_and_flagged():
    result = default_box().run(
        "import sys\nprint('x' * 100000)\nprint('e' * 9000, file=sys.stderr)"
    )
    assert len(result.stdout) == FAST.output_bytes and result.stdout_truncated
    assert len(result.stderr) == FAST.output_bytes and result.stderr_truncated
    assert result.ok


def test_working_directory_is_removed(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = default_box().run("open('junk', 'w').write('x' * 1000)\nprint('done')")
    assert result.stdout == "done\n"
    assert list(tmp_path.iterdir()) == []


def test_wall_time_kills_a_sleeping_program():
    start = time.monotonic()
    code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
    result = default_box().run(code, limits=replace(FAST, wall_time=1.0))
    assert result.timed_out and result.stdout == "started\n"
    assert time.monotonic() - start < 3
    assert "wall-time" in result.describe()


def test_cpu_time_limit():
    box = default_box()
    result = box.run("while True: pass", limits=Limits(wall_time=20, cpu_time=1))
    assert not result.timed_out and result.returncode in (-signal.SIGXCPU, -signal.SIGKILL)
    assert "CPU" in result.describe()


def test_process_and_file_descriptor_limits():
    code = (
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    while n < 100:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(5); os._exit(0)\n"
        "        n += 1\n"
        "except OSError:\n"
        "    pass\n"
        "files = []\n"
        "try:\n"
        "    while len(files) < 100:\n"
        "        files.append(open('/dev/null'))\n"
        "except OSError:\n"
        "    pass\n"
        "print(n, len(files))\n"
    )
    forks, files = map(int, default_box().run(code).stdout.split())
    assert 0 < forks < FAST.max_processes
    assert 0 < files < FAST.open_files


# -- attacks --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ISOLATIONS)
def test_fork_bomb_is_contained(mode):
    box, marker = box_for(mode), "bomb" + secrets.token_hex(4)
    code = (
        rename_self(marker)
        + "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    start = time.monotonic()
    result = box.run(code, limits=replace(FAST, wall_time=1.0))
    assert not result.ok and time.monotonic() - start < 3.5
    assert_gone(marker)
    still_usable(box)


@pytest.mark.parametrize("mode", ISOLATIONS)
def test_memory_bomb_is_contained(mode):
    box = box_for(mode)
    result = box.run("chunks = []\nwhile True:\n    chunks.append(bytearray(10 ** 7))")
    assert result.returncode != 0 and "MemoryError" in result.stderr
    result = box.run("x = bytearray(2 ** 40)")
    assert "MemoryError" in result.stderr
    still_usable(box)


@pytest.mark.parametrize("mode", ISOLATIONS)
def test_infinite_loop_is_contained(mode):
    box = box_for(mode)
    start = time.monotonic()
    result = box.run("while True:\n    pass", limits=replace(FAST, wall_time=1.5))
    assert not result.ok and time.monotonic() - start < 3.5  # killed by the CPU or wall limit
    still_usable(box)


@pytest.mark.parametrize("mode", ["bwrap", "unshare"])
def test_network_is_unreachable(mode):
    box = box_for(mode)
    with socket.socket() as server:  # a host service the sandbox must not reach
        server.bind(("127.0.0.1", 0))
        server.listen()
        code = (
            "import socket\n"
            f"for addr in [('127.0.0.1', {server.getsockname()[1]}), ('1.1.1.1', 80)]:\n"
            "    try:\n"
            "        socket.create_connection(addr, timeout=1)\n"
            "        print('connected', addr)\n"
            "    except OSError as e:\n"
            "        print('blocked', e.errno)\n"
        )
        result = box.run(code)
    assert result.stdout.count("blocked") == 2 and "connected" not in result.stdout, result
    still_usable(box)


def _try_writes(box: Sandbox, paths: list[str]) -> str:
    code = (
        f"for p in {paths!r}:\n"
        "    try:\n"
        "        open(p, 'w').write('pwned')\n"
        "        print('wrote', p)\n"
        "    except OSError as e:\n"
        "        print('refused', p, e.errno)\n"
    )
    return box.run(code).stdout


@pytest.mark.parametrize("mode", ISOLATIONS)
def test_writing_outside_the_working_directory_is_refused(mode, open_dir):
    if mode != "bwrap" and not ROOT:
        pytest.skip(f"isolation {mode!r} without root keeps the caller's uid and write access")
    box = box_for(mode)
    name = "agentgym-sandbox-attack-" + secrets.token_hex(4)
    targets = [REPO / name, Path("/etc") / name, Path("/usr") / name, Path(sys.prefix) / name]
    private = []
    if mode == "bwrap":  # only bwrap hides world-writable host directories
        targets.append(open_dir / name)
        private.append(Path(tempfile.gettempdir()) / name)  # /tmp is the private working dir
    out = _try_writes(box, [str(t) for t in targets + private])
    assert "wrote" not in out.replace(f"wrote {private[0]}" if private else "wrote", "")
    assert out.count("refused") == len(targets), out
    assert not any(t.exists() for t in targets + private)
    still_usable(box)


def test_host_files_outside_the_whitelist_are_invisible(open_dir):
    box = box_for("bwrap")
    secret = open_dir / "secret.txt"  # readable by anyone: only the mount namespace hides it
    secret.write_text("s3cr3t")
    secret.chmod(0o644)
    paths = [str(secret), "/etc/passwd", "/etc/hostname", str(REPO / "pyproject.toml"), "/home"]
    code = (
        "import os\n"
        f"for p in {paths!r}:\n"
        "    print(p, os.path.exists(p))\n"
        "print(sorted(os.listdir('/')))\n"
    )
    out = box.run(code).stdout.splitlines()
    assert out[:-1] == [f"{p} False" for p in paths]
    assert set(ast.literal_eval(out[-1])) <= {
        "bin",
        "dev",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "proc",
    } | {"root", "sbin", "tmp", "usr", "opt", "home", "work"}
    still_usable(box)


@pytest.mark.parametrize("mode", ISOLATIONS)
def test_filling_the_disk_is_contained(mode):
    box = box_for(mode)
    big = box.run("with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 65536)")
    assert big.returncode != 0 and (
        "File too large" in big.stderr or big.returncode == -signal.SIGXFSZ
    )
    if mode == "bwrap":  # many files under the size limit: the tmpfs is full
        code = (
            "import os\n"
            "written = 0\n"
            "try:\n"
            "    for i in range(10 ** 6):\n"
            "        with open(f'f{i}', 'wb') as f:\n"
            "            f.write(b'x' * 500000)\n"
            "        written += 500000\n"
            "except OSError as e:\n"
            "    print(e.errno, written)\n"
        )
        errno, written = map(int, box.run(code).stdout.split())
        assert errno == 28 and written <= FAST.disk_bytes  # ENOSPC
    still_usable(box)


@pytest.mark.parametrize("mode", ISOLATIONS)
def test_killing_the_parent_is_contained(mode):
    if mode == "none" and not ROOT:
        pytest.skip("isolation 'none' without root runs as the caller, who may signal itself")
    box = box_for(mode)
    victim = subprocess.Popen(["sleep", "60"])
    try:
        code = (
            "import os, signal\n"
            f"for pid in [{victim.pid}, {os.getpid()}, os.getppid(), -1]:\n"
            "    try:\n"
            "        os.kill(pid, signal.SIGKILL)\n"
            "    except OSError:\n"
            "        pass\n"
            "print('tried')\n"
        )
        box.run(code)
        time.sleep(0.2)
        assert victim.poll() is None, "the sandbox killed a host process"
    finally:
        victim.kill()
        victim.wait()
    still_usable(box)


@pytest.mark.parametrize("mode", ["bwrap", "unshare"])
def test_daemon_leaving_the_session_dies_with_the_sandbox(mode):
    box, marker = box_for(mode), "dmn" + secrets.token_hex(4)
    code = rename_self(marker) + (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\nprint('left')\n"
    )
    start = time.monotonic()
    result = box.run(code)
    assert "left" in result.stdout and time.monotonic() - start < 2.5
    assert_gone(marker)
    still_usable(box)


@pytest.mark.parametrize("mode", ["bwrap", "none"])
def test_runs_as_an_unprivileged_user(mode):
    out = box_for(mode).run("import os\nprint(os.getuid(), os.geteuid(), os.getgroups())")
    uid = SANDBOX_UID if ROOT else os.getuid()
    assert out.stdout == f"{uid} {uid} []\n"
    if ROOT:  # parallel workers may take their own uids, so that their process limits differ
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SandboxWarning)
            mine = Sandbox(
                FAST, isolation=box_for(mode).isolation, python=box_for(mode).python, uid=54321
            )
        assert mine.run("import os\nprint(os.getuid())").stdout == "54321\n"
        with pytest.raises(ValueError, match="uid 0"):
            Sandbox(FAST, uid=0)


# -- what a run must not see: the parent's environment, home, project and installed packages ---
@pytest.mark.parametrize("mode", ISOLATIONS)
def test_parent_environment_is_invisible(mode, monkeypatch):
    if mode == "none" and not ROOT:
        pytest.skip("isolation 'none' without root runs as the caller: /proc/PID/environ is open")
    box = box_for(mode)
    secret = "agentgym-secret-" + secrets.token_hex(6)
    monkeypatch.setenv("AGENTGYM_TEST_SECRET", secret)
    holder = subprocess.Popen(["sleep", "30"], env={"AGENTGYM_TEST_SECRET": secret})
    try:
        code = (
            "import os\n"
            "seen = [repr(dict(os.environ))]\n"
            f"for pid in set(os.listdir('/proc')) | {{'{holder.pid}', '{os.getpid()}'}}:\n"
            "    for name in ('environ', 'cmdline'):\n"
            "        try:\n"
            "            seen.append(open(f'/proc/{pid}/{name}', 'rb').read().decode('latin-1'))\n"
            "        except OSError:\n"
            "            pass\n"
            "print(len(seen), any('agentgym-secret-' in s for s in seen))\n"
        )
        result = box.run(code)
    finally:
        holder.kill()
        holder.wait()
    assert result.stdout.split()[1:] == ["False"], result
    still_usable(box)


def test_home_project_and_installed_packages_are_invisible():
    """bwrap shows the interpreter and its standard library, nothing else of its prefix or
    of the home it may live in; site-packages (where HumanEval's answers live) is empty."""
    box = box_for("bwrap")
    binds, hidden = python_binds(box.python)
    home = Path.home()
    secret = home / f".agentgym-sandbox-test-{secrets.token_hex(4)}"
    secret.write_text("s3cr3t")
    secret.chmod(0o644)
    try:
        code = (
            "import json, os\n"
            f"home, secret, repo, prefix = {str(home)!r}, {str(secret)!r}, {str(REPO)!r}, "
            f"{sys.prefix!r}\n"
            "files = [os.path.join(r, n) for r, _, ns in os.walk(home) for n in ns]\n"
            f"hidden = {{p: os.listdir(p) for p in {list(hidden)!r}}}\n"
            "print(json.dumps([os.path.exists(secret), os.path.exists(repo),\n"
            "                  os.path.exists(prefix), files, hidden]))\n"
        )
        result = box.run(code, limits=replace(FAST, output_bytes=16 << 20))
    finally:
        secret.unlink()
    secret_seen, repo_seen, venv_seen, home_files, listed = json.loads(result.stdout)
    assert (secret_seen, repo_seen, venv_seen) == (False, False, False), result
    assert all(any(f == b or f.startswith(b + "/") for b in binds) for f in home_files)
    assert all(not any(f.startswith(h + "/") for h in hidden) for f in home_files)
    assert listed == {h: [] for h in hidden}
    assert any(os.listdir(h) for h in hidden)  # on the host: the installed packages
    still_usable(box)
