"""The program run inside the sandbox to call a submission on test inputs, and the plain-data
format of those inputs and of the results.

This file is the sandbox's ``main.py`` as it stands (standard library only, no imports from the
project). It reads one JSON request from stdin (``entry_point``, per-call ``timeout`` and
``calls``, each an encoded ``[args, kwargs]``), loads ``solution.py``, calls the entry point on
each input in order and writes one JSON line per call on a copy of stdout taken before the
submission runs (fd 1 and fd 0 then point to ``/dev/null``)::

    [index, "ok", encoded value]      the call returned plain data
    [index, "raise", "TypeName", msg] the call raised
    [index, "bad", why]               the call returned something that is not plain data
    [-1, "raise", "TypeName", msg]    the code could not be loaded (no call was made)

Nothing here is trusted. The expected results never enter the sandbox, so the submission can
at most make the harness report values it could have returned itself; the parent
(:mod:`agentgym.envs.code_grader`) decodes them strictly, compares them with the expected ones
and counts a call without exactly one well-formed line as failed.

Plain data (:func:`encode`, :func:`decode`): ``None``, ``bool``, ``int``, ``float``, ``str`` and
``list`` as JSON; ``tuple``, ``dict``, ``set``, ``frozenset``, ``bytes`` and ``complex`` as JSON
objects with one tag key. Only these exact types: subclasses and other objects are refused.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 200
"""Deepest nesting of containers encoded or decoded."""
MAX_LINE = 1 << 20
"""Longest result line (bytes) the harness writes; a larger result is reported as ``bad``."""
MAX_MEMBERS = 50_000
"""Most set, frozenset and dict members decoded from one budget (one grading): hashing
crafted colliding keys is quadratic, and the decoding process is the trusted one."""
_SCALARS = (type(None), bool, int, float, str)
_TAGS = ("tuple", "dict", "set", "frozenset", "bytes", "complex")


class NotPlainData(ValueError):
    """A value outside the plain-data format."""


def encode(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-ready data, or :class:`NotPlainData` (no user code is called)."""
    kind = type(value)
    if depth > MAX_DEPTH:
        raise NotPlainData("nested too deeply")
    if kind in _SCALARS:
        return value
    if kind is list:
        return [encode(v, depth + 1) for v in value]
    if kind is tuple:
        return {"tuple": [encode(v, depth + 1) for v in value]}
    if kind is dict:
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if kind is set or kind is frozenset:
        return {kind.__name__: [encode(v, depth + 1) for v in value]}
    if kind is bytes:
        return {"bytes": value.hex()}
    if kind is complex:
        return {"complex": [value.real, value.imag]}
    raise NotPlainData(f"a {kind.__module__}.{kind.__qualname__} is not plain data")


def decode(data: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
    """The value :func:`encode` made ``data`` from; :class:`NotPlainData` if malformed.

    ``budget``: a one-item list of how many hashed members (set, frozenset and dict entries)
    may still be decoded; shared by the calls that pass it (default: :data:`MAX_MEMBERS`)."""
    budget = [MAX_MEMBERS] if budget is None else budget
    kind = type(data)
    if depth > MAX_DEPTH:
        raise NotPlainData("nested too deeply")
    if kind in _SCALARS:
        return data
    if kind is list:
        return [decode(v, depth + 1, budget) for v in data]
    if kind is not dict or len(data) != 1:
        raise NotPlainData(f"malformed value of type {kind.__name__}")
    ((tag, body),) = data.items()
    if tag == "bytes" and type(body) is str:
        try:
            return bytes.fromhex(body)
        except ValueError:
            raise NotPlainData("malformed bytes") from None
    if tag == "complex" and type(body) is list and len(body) == 2:
        if all(type(x) in (int, float) for x in body):
            return complex(*body)
    if tag not in _TAGS or type(body) is not list:
        raise NotPlainData(f"malformed tagged value {tag!r}")
    if tag in ("set", "frozenset", "dict"):
        budget[0] -= len(body)
        if budget[0] < 0:
            raise NotPlainData(f"more than {MAX_MEMBERS} set and dict members")
    items = [decode(v, depth + 1, budget) for v in body]
    try:
        if tag == "tuple":
            return tuple(items)
        if tag == "set":
            return set(items)
        if tag == "frozenset":
            return frozenset(items)
        if tag == "dict" and all(type(p) is list and len(p) == 2 for p in items):
            return dict(items)
    except TypeError:  # an unhashable key or member
        raise NotPlainData(f"malformed {tag}") from None
    raise NotPlainData(f"malformed tagged value {tag!r}")


def dumps(value: Any) -> str:
    """``value`` in the plain-data format as one line of JSON text."""
    return json.dumps(encode(value), separators=(",", ":"))


def loads(text: str) -> Any:
    """The value of a :func:`dumps` text; :class:`NotPlainData` if malformed."""
    try:
        return decode(json.loads(text))
    except (ValueError, RecursionError) as exc:
        raise NotPlainData(str(exc)[:200]) from None


def main() -> None:
    """Serve one request: load ``solution.py``, call its entry point on every input."""
    import os
    import signal
    import sys

    request = json.loads(sys.stdin.read())
    with open("solution.py", encoding="utf-8") as f:
        source = f.read()
    out = os.dup(1)  # the result channel; the submission's own output goes nowhere
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    timeout = float(request["timeout"])
    write, dumps_, setitimer, real = os.write, json.dumps, signal.setitimer, signal.ITIMER_REAL

    def report(*record: Any) -> None:
        data = (dumps_(list(record), separators=(",", ":")) + "\n").encode("utf-8", "replace")
        while data:
            data = data[write(out, data) :]

    def describe(exc: BaseException) -> tuple[str, str]:
        kind = type(exc)
        try:  # str() of the submission's own exception classes runs its code: skip it
            message = str(exc)[:200] if kind.__module__ == "builtins" else ""
        except BaseException:  # noqa: BLE001 - anything the submission raises
            message = ""
        return str(kind.__name__)[:100], message

    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"took longer than {timeout} s")

    signal.signal(signal.SIGALRM, alarm)
    namespace: dict[str, Any] = {"__name__": "__solution__"}
    try:
        setitimer(real, timeout)
        exec(compile(source, "solution.py", "exec"), namespace)
        setitimer(real, 0)
    except BaseException as exc:  # noqa: BLE001 - the submission may raise anything
        setitimer(real, 0)
        report(-1, "raise", *describe(exc))
        return
    function = namespace.get(request["entry_point"])
    if not callable(function):
        report(-1, "raise", "NameError", f"no function {request['entry_point']!r} is defined")
        return
    for index, call in enumerate(request["calls"]):
        args, kwargs = decode(call)
        try:
            setitimer(real, timeout)
            value = function(*args, **kwargs)
            setitimer(real, 0)
        except BaseException as exc:  # noqa: BLE001
            setitimer(real, 0)
            report(index, "raise", *describe(exc))
            continue
        try:
            encoded = encode(value)
            size = len(dumps_(encoded))
        except (NotPlainData, ValueError, RecursionError) as exc:
            report(index, "bad", str(exc)[:200])
            continue
        if size > MAX_LINE:
            report(index, "bad", f"the result is too large ({size} bytes as data)")
        else:
            report(index, "ok", encoded)


if __name__ == "__main__":
    main()
