"""Command lines of the sandbox's isolation modes (see :mod:`agentgym.sandbox`).

:data:`LAUNCHER` runs first inside every mode: it applies the resource limits, drops to the
sandbox uid, and execs the program. :func:`bwrap_prefix` and :func:`unshare_prefix` wrap it.
"""

from __future__ import annotations

import functools
import os
import subprocess

SANDBOX_PATH = "/usr/bin:/bin"
"""The only environment variable of a sandboxed program (besides LC_CTYPE set by Python)."""

# Runs inside the sandbox with -I -S; argv[1] is a JSON config (see agentgym.sandbox._command).
LAUNCHER = r"""
import json, os, resource, sys
cfg = json.loads(sys.argv[1])
if os.getpid() == 1:  # init of a pid namespace ignores default-action signals: run as its child
    child = os.fork()
    while child:
        pid, status = os.wait()
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)
for name, soft, hard in cfg["rlimits"]:
    resource.setrlimit(getattr(resource, name), (soft, hard))
if cfg["uid"] is not None:
    os.setgroups([])
    os.setgid(cfg["uid"])
    os.setuid(cfg["uid"])
os.chdir(cfg["cwd"])
os.umask(0o022)
py = cfg["python"]
os.execve(py, [py, "-I", "-S", "-B", "-X", "utf8", cfg["main"]], cfg["env"])
"""


@functools.cache
def python_roots(executable: str) -> tuple[str, ...]:
    """Directories outside ``/usr`` holding the interpreter, its standard library and libraries."""
    query = "import sys; print(sys.base_prefix); print(sys.base_exec_prefix)"
    out = subprocess.run(
        [executable, "-I", "-S", "-c", query], capture_output=True, text=True, timeout=30
    ).stdout.split("\n")[:2]
    roots = {os.path.realpath(p) for p in out if p} | {os.path.dirname(os.path.dirname(executable))}
    keep = [r for r in sorted(roots) if r != "/usr" and not r.startswith("/usr/") and r != "/"]
    return tuple(r for r in keep if not any(r != o and r.startswith(o + "/") for o in keep))


def bwrap_prefix(
    python: str, host_dir: str, names: list[str], disk_bytes: int, root: bool
) -> list[str]:
    """bubblewrap: new namespaces, a whitelisted read-only file system, a tmpfs at ``/tmp``
    (the working directory) holding ``names`` from ``host_dir`` read-only."""
    args = ["bwrap", "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid"]
    args += ["--unshare-net", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if root:
        # Privileged bwrap without a user namespace: a user namespace would map the sandbox
        # to host uid 0, which RLIMIT_NPROC exempts. The launcher needs these two
        # capabilities to drop to the sandbox uid; it holds none after that.
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user", "--disable-userns"]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for top in python_roots(python):
        parents = [os.path.dirname(top)]
        while parents[-1] != "/":
            parents.append(os.path.dirname(parents[-1]))
        for parent in reversed(parents[:-1]):  # bwrap would create them owner-only
            args += ["--perms", "0755", "--dir", parent]
        args += ["--ro-bind", top, top]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", str(disk_bytes), "--tmpfs", "/tmp", "--chmod", "1777", "/tmp"]
    for name in names:
        args += ["--ro-bind", os.path.join(host_dir, name), f"/tmp/{name}"]
    return args + ["--clearenv", "--setenv", "PATH", SANDBOX_PATH, "--chdir", "/tmp", "--"]


def unshare_prefix(root: bool) -> list[str]:
    """util-linux unshare: new network, pid and mount namespaces (a user namespace if not root)."""
    args = ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    return args if root else args[:1] + ["--user", "--map-root-user"] + args[1:]
