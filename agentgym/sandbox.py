"""Run untrusted Python in a separate, limited and (where the host allows) isolated process.

:class:`Sandbox` runs a program with the interpreter's standard library only (``python -I -S``)
in a fresh process under :class:`Limits` (wall and CPU time, memory, processes, file size, open
files, output kept), in a private temporary working directory removed afterwards, with an
empty environment (only ``PATH=/usr/bin:/bin``). At the wall limit the whole tree is killed.

The limits are set by a small launcher inside the sandbox, after the isolation is set up and
before the untrusted program starts. When the host process is root, the launcher also drops to
an unprivileged uid (default ``nobody``, 65534): ``RLIMIT_NPROC`` counts the processes of a user
and does not bind root. Sandboxes with the same uid share that count, so a fork bomb in one can
make another one running at the same time fail to start (for at most its wall time); give
parallel workers distinct uids (``Sandbox(uid=...)``) to keep them apart.

Isolation (the :attr:`Sandbox.isolation` attribute says which one is active):

``"bwrap"``
    bubblewrap (Debian ``bubblewrap``, installed by ``scripts/system-deps.sh``): new network
    (only a private loopback), pid, ipc and uts namespaces; the file system shows only ``/usr``,
    the ``/bin``/``/lib*`` links and the interpreter with its standard library (read-only; its
    site-packages hidden), a private ``/proc`` and ``/dev``, and a size-limited tmpfs at ``/tmp``,
    the working directory (the disk cannot be filled). ``/etc``, the homes, the repository and
    the parent's environment are not there; the tree dies with it.
``"unshare"``
    util-linux ``unshare``: network, pid and mount namespaces (no network, the tree dies with the
    sandbox, the parent's processes are invisible) but the host file system stays readable as the
    sandbox user sees it, the working directory is on the host disk (each file capped by
    ``RLIMIT_FSIZE``, their number is not), and writes are possible wherever that user may write.
``"none"``
    only the resource limits, the temporary directory and the empty environment; the network and
    the host file system are reachable, and a process that leaves the process group (``setsid``)
    can outlive the run. Not run as root, the program runs as the caller and can read the
    parent's ``/proc/PID/environ``.

``Sandbox(isolation="auto")`` means bubblewrap: where it is missing or cannot create its
namespaces, ``auto`` raises :class:`IsolationUnavailable` (saying how to install it) instead of
running model-written code with less protection. ``"unshare"`` and ``"none"`` are opt-ins, and
each construction of such a sandbox warns (:class:`SandboxWarning`) what it does not contain.
"""

from __future__ import annotations

import functools
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from agentgym.isolation import LAUNCHER, SANDBOX_PATH, bwrap_prefix, unshare_prefix

ISOLATIONS = ("bwrap", "unshare", "none")
SANDBOX_UID = 65534
"""The unprivileged uid and gid (``nobody``) a sandbox runs as by default when the host is root."""
MAIN = "main.py"


INSTALL_HINT = (
    "Install bubblewrap (as root: `apt-get install bubblewrap`, or `make setup`, which runs "
    "scripts/system-deps.sh) and allow unprivileged user namespaces "
    "(sysctl kernel.unprivileged_userns_clone=1) when not running as root. To run untrusted "
    "code without file-system and network isolation anyway, opt in explicitly with "
    "isolation='none' (or 'unshare', no network but host files readable)."
)


class SandboxWarning(UserWarning):
    """The sandbox runs with weaker isolation than bubblewrap gives."""


class IsolationUnavailable(RuntimeError):
    """The requested isolation (``auto``: bubblewrap) does not work on this host."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run."""

    wall_time: float = 10.0
    """Seconds of wall-clock time before the whole process tree is killed."""
    cpu_time: int = 5
    """Seconds of CPU time per process (``RLIMIT_CPU``; SIGXCPU, then SIGKILL a second later)."""
    memory_bytes: int = 512 << 20
    """Address-space limit per process (``RLIMIT_AS``); Python raises MemoryError beyond it."""
    max_processes: int = 32
    """Processes and threads of the sandbox user (``RLIMIT_NPROC``)."""
    file_size_bytes: int = 16 << 20
    """Largest file the program may write (``RLIMIT_FSIZE``; SIGXFSZ beyond it)."""
    disk_bytes: int = 64 << 20
    """Size of the working-directory tmpfs (bwrap only; other modes have no total cap)."""
    open_files: int = 64
    """Open file descriptors per process (``RLIMIT_NOFILE``)."""
    output_bytes: int = 64 << 10
    """Bytes of stdout and of stderr kept each; the rest is counted and dropped."""

    def rlimits(self) -> list[tuple[str, int, int]]:
        """``(RLIMIT name, soft, hard)`` triples the launcher applies."""
        cpu = max(1, int(self.cpu_time))
        return [
            ("RLIMIT_CPU", cpu, cpu + 1),
            ("RLIMIT_AS", self.memory_bytes, self.memory_bytes),
            ("RLIMIT_NPROC", self.max_processes, self.max_processes),
            ("RLIMIT_FSIZE", self.file_size_bytes, self.file_size_bytes),
            ("RLIMIT_NOFILE", self.open_files, self.open_files),
            ("RLIMIT_CORE", 0, 0),
        ]


@dataclass(frozen=True)
class RunResult:
    """What a sandboxed run produced."""

    stdout: str
    stderr: str
    returncode: int | None
    """Exit status; negative for a signal (e.g. -9 for SIGKILL), None if it never started."""
    timed_out: bool
    """The wall-time limit was hit and the process tree was killed."""
    wall_time: float
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    isolation: str = "none"

    @property
    def ok(self) -> bool:
        """The program ran to completion and exited with status 0."""
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        """One line saying how the run ended, for an agent or a log."""
        if self.timed_out:
            return "Killed: wall-time limit exceeded."
        rc = self.returncode
        if rc is None:
            return "The program could not be started."
        if rc >= 0:
            return f"Exited with status {rc}."
        reasons = {
            signal.SIGXCPU: "CPU-time limit exceeded",
            signal.SIGXFSZ: "file-size limit exceeded",
            signal.SIGKILL: "killed (SIGKILL; CPU-time or memory limit)",
            signal.SIGSEGV: "segmentation fault",
        }
        try:
            sig = signal.Signals(-rc)
        except ValueError:
            return f"Killed by signal {-rc}."
        return f"Killed: {reasons.get(sig, sig.name)}."


def _is_root() -> bool:
    return os.geteuid() == 0


class Sandbox:
    """Runs Python programs under :class:`Limits` with the strongest isolation available.

    ``isolation`` is ``"auto"`` (default: bubblewrap) or one of ``"bwrap"``, ``"unshare"``,
    ``"none"``; asking for a mode that does not work here raises :class:`IsolationUnavailable`
    (``"unshare"`` and ``"none"`` also warn what they leave exposed). ``python`` is the interpreter run
    inside (default: the real path of ``sys.executable``; only its standard library is visible).
    ``uid``: the user the program runs as when the host process is root (give parallel workers
    distinct uids so that their process limits are separate). The chosen mode is in
    :attr:`isolation`. Thread-safe: every run uses its own directory.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        isolation: str = "auto",
        python: str | None = None,
        uid: int = SANDBOX_UID,
    ):
        self.limits = limits or Limits()
        self.python = os.path.realpath(python or sys.executable)
        self.uid: int | None = int(uid) if _is_root() else None
        if self.uid == 0:
            raise ValueError("the sandbox must not run as uid 0; pick an unprivileged uid")
        if isolation not in ("auto", *ISOLATIONS):
            raise ValueError(f"isolation must be 'auto' or one of {ISOLATIONS}, got {isolation!r}")
        mode = "bwrap" if isolation == "auto" else isolation
        error = _probe_cached(mode, self.python)
        if error:
            root = (
                f" As root the sandbox runs as uid {self.uid}, which must be able to read the "
                "interpreter and its standard library: pass Sandbox(python=...) one under /usr."
                if self.uid is not None and "Permission denied" in error
                else ""
            )
            raise IsolationUnavailable(
                f"Sandbox isolation {isolation!r} does not work here ({mode}: {error})."
                + root
                + (" " + INSTALL_HINT if mode == "bwrap" else "")
            )
        if mode != "bwrap":
            _warn_weak(mode)
        self.isolation = mode

    def run(
        self,
        code: str,
        *,
        stdin: str = "",
        files: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> RunResult:
        """Run ``code`` as ``main.py`` in a fresh working directory holding ``files``.

        ``stdin`` is the program's standard input. ``files`` maps plain file names to text put
        read-only (bwrap) or readable next to the program. Never raises for anything the
        program does; returns what it printed and how it ended.
        """
        job = _Job(self.isolation, self.python, self.uid, code, stdin, dict(files or {}))
        return _run(job, limits or self.limits)

    def __repr__(self) -> str:
        return f"Sandbox(isolation={self.isolation!r}, limits={self.limits})"


@dataclass(frozen=True)
class _Job:
    """One run: where and as whom (uid None: keep the caller's, who is not root), and what."""

    isolation: str
    python: str
    uid: int | None
    code: str
    stdin: str
    files: dict[str, str]


def _run(job: _Job, limits: Limits) -> RunResult:
    for name in job.files:
        if not name or "/" in name or name in (".", "..", MAIN) or name.startswith("."):
            raise ValueError(f"file name {name!r} must be a plain name other than {MAIN!r}")
    host_dir = tempfile.mkdtemp(prefix="agentgym-sandbox-")
    try:
        for name, text in {MAIN: job.code, **job.files, ".stdin": job.stdin}.items():
            with open(os.path.join(host_dir, name), "w", encoding="utf-8", errors="replace") as f:
                f.write(text)
        if job.uid is not None and job.isolation != "bwrap":
            os.chown(host_dir, job.uid, job.uid)
        argv = _command(job, host_dir, limits)
        with open(os.path.join(host_dir, ".stdin"), "rb") as stdin_file:
            os.unlink(stdin_file.name)  # the program reads it from fd 0 only
            return _execute(argv, stdin_file, limits, job.isolation)
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)


def _command(job: _Job, host_dir: str, limits: Limits) -> list[str]:
    """The full command line: isolation prefix, then the launcher with its configuration."""
    cwd = "/tmp" if job.isolation == "bwrap" else host_dir
    config = {
        "rlimits": limits.rlimits(),
        "uid": job.uid,
        "cwd": cwd,
        "python": job.python,
        "main": os.path.join(cwd, MAIN),
        "env": {"PATH": SANDBOX_PATH},
    }
    launch = [job.python, "-I", "-S", "-c", LAUNCHER, json.dumps(config)]
    if job.isolation == "bwrap":
        names = [MAIN, *job.files]
        return bwrap_prefix(job.python, host_dir, names, limits.disk_bytes, _is_root()) + launch
    if job.isolation == "unshare":
        return unshare_prefix(_is_root()) + launch
    return launch


def _execute(argv: list[str], stdin_file: BinaryIO, limits: Limits, isolation: str) -> RunResult:
    """Start ``argv`` in its own session, read capped output, enforce the wall time."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=stdin_file,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"PATH": SANDBOX_PATH},
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        return RunResult("", f"sandbox: cannot start: {exc}", None, False, 0.0, isolation=isolation)
    out, err, timed_out = _collect(proc, start + limits.wall_time, limits.output_bytes)
    returncode = proc.wait()  # the main process is dead or exited by now
    if isolation != "none" and returncode > 128 and returncode - 128 in signal.valid_signals():
        returncode = 128 - returncode  # the namespace's init reports a signal as 128 + signal
    return RunResult(
        stdout=out.text(),
        stderr=err.text(),
        returncode=returncode,
        timed_out=timed_out,
        wall_time=time.monotonic() - start,
        stdout_truncated=out.dropped > 0,
        stderr_truncated=err.dropped > 0,
        isolation=isolation,
    )


@dataclass
class _Capped:
    """An output stream kept up to ``cap`` bytes; later bytes are only counted."""

    cap: int
    data: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def add(self, chunk: bytes) -> None:
        room = max(0, self.cap - len(self.data))
        self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - room)

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _collect(proc: subprocess.Popen, deadline: float, cap: int) -> tuple[_Capped, _Capped, bool]:
    """Read stdout/stderr until both close; kill the tree at the deadline.

    Without a pid namespace a descendant that left the process group (``setsid``) can hold the
    pipes open after the main process ended or was killed: reading stops one second later.
    """
    streams = {proc.stdout: _Capped(cap), proc.stderr: _Capped(cap)}
    timed_out, ended_at = False, None
    with selectors.DefaultSelector() as sel:
        for stream in streams:
            sel.register(stream, selectors.EVENT_READ)
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline and not timed_out:
                timed_out = True
                _kill_tree(proc)
            if ended_at is None and (timed_out or proc.poll() is not None):
                ended_at = now
            if ended_at is not None and now - ended_at > 0.5:
                _kill_tree(proc)
                if now - ended_at > 1.0:
                    break
            for key, _ in sel.select(timeout=max(0.01, min(0.1, deadline - now))):
                chunk = os.read(key.fd, 1 << 16)
                if chunk:
                    streams[key.fileobj].add(chunk)
                else:
                    sel.unregister(key.fileobj)
    for stream in streams:
        stream.close()
    return streams[proc.stdout], streams[proc.stderr], timed_out


def _probe(isolation: str, python: str) -> str:
    """Empty string if ``isolation`` works here, else why not."""
    if isolation == "bwrap" and shutil.which("bwrap") is None:
        return "bwrap is not installed (apt-get install bubblewrap)"
    if isolation == "unshare" and shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    uid = SANDBOX_UID if _is_root() else None
    job = _Job(isolation, python, uid, "print('sandbox-ok')", "", {})
    result = _run(job, Limits(wall_time=20.0))
    if result.ok and result.stdout.strip() == "sandbox-ok":
        return ""
    return (result.stderr.strip() or result.describe())[-500:]


@functools.cache
def _probe_cached(isolation: str, python: str) -> str:
    """:func:`_probe`, once per mode and interpreter (a probe starts a process)."""
    return _probe(isolation, python)


def _warn_weak(isolation: str) -> None:
    exposed = (
        "host files (the project, its tests and answers, the homes) stay readable"
        if isolation == "unshare"
        else "the network and host files (the project, its tests and answers, the homes) "
        "stay reachable"
    )
    warnings.warn(
        f"SANDBOX WITHOUT FULL ISOLATION: isolation={isolation!r} runs untrusted code where "
        f"{exposed}; model-written code can read hidden answers this way. {INSTALL_HINT}",
        SandboxWarning,
        stacklevel=3,
    )


__all__ = [
    "INSTALL_HINT",
    "ISOLATIONS",
    "IsolationUnavailable",
    "Limits",
    "RunResult",
    "Sandbox",
    "SandboxWarning",
]
