"""The tool-env API: rendering, parsing, argument checks, timeouts, answers, the README example."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

import agentgym
from agentgym.core import GARBAGE_ACTIONS
from agentgym.policy.scripted import OraclePolicy
from agentgym.rollout import collect
from agentgym.tools import (
    Task,
    ToolCall,
    ToolCallError,
    ToolEnv,
    ToolResult,
    f1_score,
    format_answer,
    format_tool_call,
    normalize_answer,
    parse_tool_call,
    tool,
)

README = Path(__file__).resolve().parents[1] / "README.md"
RELEASE = threading.Event()


class KitEnv(ToolEnv):
    """Use the kit of tools to answer."""

    tool_timeout = 0.2
    max_result_chars = 50

    def load_tasks(self) -> list[Task]:
        return [
            Task(
                "t0", "Say hi twice.", ("hi hi",), (ToolCall("echo", {"text": "hi", "times": 2}),)
            ),
            Task("t1", "What is the Eiffel Tower?", ("the tower",)),
        ]

    @tool
    def echo(self, text: str, times: int = 1, sep: str = " ") -> str:
        """Repeat text.

        Args: text to repeat, how many times, and the separator.
        """
        return sep.join([text] * times)

    @tool
    def scale(self, values: list[float], factor: float | None = None) -> list[float]:
        """Multiply every value by factor (default 2)."""
        return [v * (2.0 if factor is None else factor) for v in values]

    @tool(name="fail")
    def _fail(self, why: str) -> str:
        """Raise an error."""
        raise RuntimeError(why)

    @tool
    def wait(self, flag: bool) -> str:
        """Block until the test releases it."""
        RELEASE.wait(10)
        return "released"

    @tool(timeout=5.0)
    def tagged(self, n: int) -> ToolResult:
        """A result with extra info."""
        return ToolResult(f"n={n}", {"n": n})


@pytest.fixture
def env() -> KitEnv:
    env = KitEnv()
    env.reset(options={"task_id": "t0"})
    return env


def call(name: str, **arguments) -> str:
    return format_tool_call(name, **arguments)


def test_system_prompt_renders_signatures_docstrings_and_format(env):
    prompt = KitEnv().system_prompt()
    assert prompt.startswith("Use the kit of tools to answer.")
    assert 'echo(text: str, times: int = 1, sep: str = " ") -> str' in prompt
    assert "    Repeat text.\n\n    Args: text to repeat" in prompt
    assert "scale(values: list[float], factor: float | None = null) -> list[float]" in prompt
    assert "fail(why: str) -> str" in prompt and "_fail" not in prompt
    assert "tagged(n: int) -> str" in prompt  # a ToolResult is shown as its text
    assert prompt.index("tagged(") < prompt.index("answer(text: str)")
    assert '<tool_call>{"name": "echo", "arguments": {"text": "...", "times": 1, "sep": " "}}' in (
        prompt
    )
    obs, info = env.reset(seed=0)
    assert info["system_prompt"] == prompt
    assert agentgym.prompting.action_format("tool").system_prompt(info) == prompt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '<tool_call>{"name": "echo", "arguments": {"text": "a"}}</tool_call>',
            ("echo", {"text": "a"}),
        ),
        (
            'I will echo.\n<TOOL_CALL>\n{"name": "echo", "arguments": {}}\n</TOOL_CALL> ok',
            ("echo", {}),
        ),
        ('<tool_call>{"name": "echo", "arguments": {"text": "cut"}}', ("echo", {"text": "cut"})),
        ('<tool_call>```json\n{"name": "echo"}\n```</tool_call>', ("echo", {})),
        ("thinking... <answer> Paris </answer>", ("answer", {"text": "Paris"})),
        ('<answer>x</answer><tool_call>{"name": "echo"}</tool_call>', ("answer", {"text": "x"})),
    ],
)
def test_parse_tool_call(text, expected):
    parsed = parse_tool_call(text)
    assert (parsed.name, dict(parsed.arguments)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just words", "No tool call or answer found"),
        (
            '<tool_call>{"name": "echo", "arguments": {"text": "a"</tool_call>',
            "could not be parsed",
        ),
        ("<tool_call>[1, 2]</tool_call>", 'string "name"'),
        ('<tool_call>{"name": "echo", "arguments": [1]}</tool_call>', '"arguments" must be'),
    ],
)
def test_malformed_calls_are_invalid_observations(env, text, message):
    with pytest.raises(ToolCallError, match=re.escape(message)):
        parse_tool_call(text)
    key = env.step(call("echo", text="hi"))[4]["state_key"]
    obs, reward, terminated, truncated, info = env.step(text)
    assert message in obs
    assert (reward, terminated, truncated, info["invalid"]) == (0.0, False, False, True)
    assert info["state_key"] == key  # an invalid call changes nothing


def test_unknown_tool_lists_the_tools(env):
    obs, _, terminated, _, info = env.step(call("delete_everything", path="/"))
    assert obs == "Unknown tool 'delete_everything'. Available tools: echo, scale, fail, wait, " + (
        "tagged, answer."
    )
    assert info["invalid"] and not terminated
    assert info["tool_call"] == {"name": "delete_everything", "arguments": {"path": "/"}}


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"text": "a", "times": "3"}, "times must be int, got str '3'"),
        ({"text": "a", "times": True}, "times must be int, got bool True"),
        ({"text": "a", "times": 2.5}, "times must be int, got float 2.5"),
        ({"text": 7}, "text must be str, got int 7"),
        ({}, "missing argument 'text'"),
        ({"text": "a", "color": "red"}, "unknown argument 'color'"),
    ],
)
def test_wrong_arguments_are_refused_with_the_signature(env, arguments, problem):
    obs, _, _, _, info = env.step(call("echo", **arguments))
    assert problem in obs and "Signature: echo(text: str" in obs
    assert info["invalid"]


def test_container_and_optional_types(env):
    assert env.step(call("scale", values=[1, 2.5]))[0] == "[2.0, 5.0]"  # ints pass as floats
    assert env.step(call("scale", values=[1], factor=None))[0] == "[2.0]"
    obs, *_, info = env.step(call("scale", values=[1, "2"]))
    assert info["invalid"] and "values must be list[float]" in obs
    assert env.step(call("scale", values="1,2"))[4]["invalid"]


def test_results_errors_truncation_and_extra_info(env):
    obs, _, _, _, info = env.step(call("echo", text="ab", times=3, sep="-"))
    assert (obs, info["invalid"]) == ("ab-ab-ab", False)
    obs, _, _, _, info = env.step(call("echo", text="x", times=80))
    assert obs.startswith("x " * 25) and obs.endswith("[... 109 more characters cut]")
    obs, _, terminated, _, info = env.step(call("fail", why="disk on fire"))
    assert obs == "Error: fail failed: RuntimeError: disk on fire"
    assert info["invalid"] and not terminated
    obs, _, _, _, info = env.step(call("tagged", n=4))
    assert (obs, info["n"], info["invalid"]) == ("n=4", 4, False)


def test_a_tool_past_its_timeout_is_abandoned(env):
    RELEASE.clear()
    key = env.unwrapped._current_state_key()
    try:
        obs, _, terminated, _, info = env.step(call("wait", flag=True))
        # the step came back while the tool still waits for RELEASE: the timeout cut it off
        assert obs == "Error: wait timed out after 0.2 s."
        assert info["invalid"] and not terminated and info["state_key"] == key
    finally:
        RELEASE.set()
    assert env.step(call("echo", text="still alive"))[0] == "still alive"


def test_final_answer_is_graded_and_ends_the_episode(env):
    obs, reward, terminated, truncated, info = env.step("So: <answer>Hi, HI!</answer>")
    assert (reward, terminated, truncated, info["won"], info["f1"]) == (1.0, True, False, True, 1.0)
    assert obs == "Your answer 'Hi, HI!' is correct."
    assert info["state_key"] == "t0|<answered>"
    env.reset(options={"task_id": "t1"})
    obs, reward, terminated, _, info = env.step(call("answer", text="a tall tower"))
    assert (reward, terminated, info["won"], info["exact_match"]) == (0.0, True, False, False)
    assert info["f1"] == pytest.approx(2 / 3)


def test_empty_answer_is_invalid(env):
    obs, _, terminated, _, info = env.step("<answer>  </answer>")
    assert info["invalid"] and not terminated and "empty" in obs


def test_state_key_names_the_task_and_the_calls(env):
    a = env.step('<tool_call>{"name": "echo", "arguments": {"times": 2, "text": "hi"}}</tool_call>')
    assert a[4]["state_key"] == 't0|echo{"text":"hi","times":2}'
    other = KitEnv()
    other.reset(options={"task_id": "t0"})
    b = other.step(call("echo", text="hi", times=2))
    assert b[4]["state_key"] == a[4]["state_key"]  # argument order does not matter


def test_default_oracle_replays_the_solution_then_answers(env):
    assert env.oracle_action() == call("echo", text="hi", times=2)
    env.step(call("echo", text="detour"))
    assert env.oracle_action() == call("echo", text="hi", times=2)
    env.step(env.oracle_action())
    assert env.oracle_action() == format_answer("hi hi")
    assert env.step(env.oracle_action())[4]["won"]


def test_garbage_actions_are_invalid_observations(env):
    agentgym.check_env(env)
    env.reset(seed=0)
    for action in GARBAGE_ACTIONS:
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(obs, str) and info["invalid"] and not terminated, action


def test_bad_tool_declarations_fail_at_class_creation():
    with pytest.raises(TypeError, match="needs a docstring"):
        type("NoDoc", (ToolEnv,), {"f": tool(lambda self, x: x)})

    def untyped(self, x):
        """Doc."""

    with pytest.raises(TypeError, match="needs a type annotation"):
        type("Untyped", (ToolEnv,), {"f": tool(untyped)})

    def answer(self, text: str) -> str:
        """Doc."""

    with pytest.raises(TypeError, match="reserved"):
        type("Clash", (ToolEnv,), {"answer": tool(answer)})


def test_subclasses_inherit_add_and_drop_tools():
    class Sub(KitEnv):
        @tool
        def extra(self, x: int) -> int:
            """Return x + 1."""
            return x + 1

        def wait(self, flag: bool) -> str:  # overridden without @tool: no longer a tool
            return "not a tool"

    assert list(Sub.tools()) == ["echo", "scale", "fail", "tagged", "extra", "answer"]
    env = Sub()
    env.reset(seed=0)
    assert env.step(call("extra", x=1))[0] == "2"
    assert env.step(call("wait", flag=True))[4]["invalid"]


def test_unknown_task_id_is_refused_and_metrics_normalize():
    with pytest.raises(ValueError, match="no task 'nope'"):
        KitEnv().reset(options={"task_id": "nope"})
    assert normalize_answer("  The Eiffel-Tower, of course! ") == "eiffeltower of course"
    assert f1_score("red apple", ["a green apple"]) == pytest.approx(0.5)
    assert f1_score("", ["x"]) == 0.0


# -- the README example -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def readme_env_id() -> str:
    """Execute the README's tool-env snippet exactly as written (once per process)."""
    text = README.read_text(encoding="utf-8")
    block = re.search(
        r"<!-- tool-env-example:start -->\s*```python\n(.*?)```\s*<!-- tool-env-example:end -->",
        text,
        re.DOTALL,
    )
    assert block, "README.md lost its tool-env example markers"
    code = block.group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 25
    exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
    return "myorg/Arith-v0"


def test_readme_example_registers_a_working_tool_env(readme_env_id):
    env = agentgym.make(readme_env_id)
    agentgym.check_env(env)
    obs, info = env.reset(seed=3)
    assert "multiply(a: int, b: int) -> int" in info["system_prompt"]
    a, b = (int(n) for n in re.findall(r"\d+", obs)[:2])
    assert env.step(call("multiply", a=a, b=b))[0] == str(a * b)
    assert env.step(f"<answer>{a * b + 7}</answer>")[1] == 1.0


def test_readme_example_is_played_by_the_rollout_with_the_tool_format(readme_env_id):
    batch = collect(
        readme_env_id, OraclePolicy(), tasks=3, group_size=2, seed=5, action_format="tool"
    )
    for traj in batch.trajectories:
        assert traj.won and len(traj.turns) == 3
        assert traj.metadata["system_prompt"].startswith("Work out the arithmetic")
        assert [t.invalid for t in traj.turns] == [False, False, False]
        assert traj.turns[0].output.startswith('<tool_call>{"name": "multiply"')
