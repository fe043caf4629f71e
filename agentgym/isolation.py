"""Command lines of the sandbox's isolation modes (see :mod:`agentgym.sandbox`).

:data:`LAUNCHER` runs first inside every mode: it applies the resource limits, drops to the
sandbox uid, and execs the program. :func:`bwrap_prefix` and :func:`unshare_prefix` wrap it.
"""

from __future__ import annotations

import functools
import json
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


_LAYOUT_QUERY = """
import json, site, sys, sysconfig
paths, var = sysconfig.get_paths(), sysconfig.get_config_var
print(json.dumps({
    "stdlib": [paths["stdlib"], paths["platstdlib"]],
    "site": [paths["purelib"], paths["platlib"], *site.getsitepackages()],
    "libs": [f"{var('LIBDIR')}/{var(name)}" for name in ("INSTSONAME", "LDLIBRARY") if var(name)],
}))
"""


@functools.cache
def python_binds(executable: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What bubblewrap must show of an interpreter installed outside ``/usr``.

    Returns ``(binds, hidden)``: the interpreter, its standard library and its shared library
    (read-only binds), and its site-packages directories inside them or under ``/usr``
    (``dist-packages`` of a system Python), covered by an empty tmpfs so that installed
    packages (and any data they ship, such as benchmark answers) stay out of the sandbox.
    Only these paths are shown, not the whole installation prefix (which may sit in a home).
    """
    out = subprocess.run(
        [executable, "-I", "-S", "-c", _LAYOUT_QUERY], capture_output=True, text=True, timeout=30
    )
    layout = json.loads(out.stdout)
    candidates = [executable, *layout["stdlib"], *layout["libs"]]
    binds = sorted({os.path.realpath(p) for p in candidates if os.path.exists(p)})
    binds = [p for p in binds if not _under(p, "/usr") and p != "/"]
    binds = [p for p in binds if not any(o != p and _under(p, o) for o in binds)]
    hidden = sorted(
        {
            os.path.realpath(p)
            for p in layout["site"]
            if os.path.isdir(p) and any(_under(os.path.realpath(p), b) for b in (*binds, "/usr"))
        }
    )
    return tuple(binds), tuple(hidden)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def bwrap_prefix(
    python: str, host_dir: str, names: list[str], disk_bytes: int, root: bool
) -> list[str]:
    """bubblewrap: new namespaces, a whitelisted read-only file system (``/usr``, the
    ``/bin``/``/lib*`` links, the interpreter: :func:`python_binds`), a tmpfs at ``/tmp`` (the
    working directory) holding ``names`` from ``host_dir`` read-only."""
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
    binds, hidden = python_binds(python)
    made: set[str] = set()
    for top in binds:
        parents = [os.path.dirname(top)]
        while parents[-1] != "/":
            parents.append(os.path.dirname(parents[-1]))
        for parent in reversed(parents[:-1]):  # bwrap would create them owner-only
            if parent not in made:
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += ["--ro-bind", top, top]
    for path in hidden:
        args += ["--size", "4096", "--tmpfs", path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", str(disk_bytes), "--tmpfs", "/tmp", "--chmod", "1777", "/tmp"]
    for name in names:
        args += ["--ro-bind", os.path.join(host_dir, name), f"/tmp/{name}"]
    return args + ["--clearenv", "--setenv", "PATH", SANDBOX_PATH, "--chdir", "/tmp", "--"]


def unshare_prefix(root: bool) -> list[str]:
    """util-linux unshare: new network, pid and mount namespaces (a user namespace if not root)."""
    args = ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]
    return args if root else args[:1] + ["--user", "--map-root-user"] + args[1:]
