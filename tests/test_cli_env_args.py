"""The CLI reaches every environment and variant: constructor arguments on the command line
(``ID:key=value``, ``--env-kwarg``), recorded where ``agentgym compare`` reads them, and
environments registered in the user's own module (``--import``, ``AGENTGYM_IMPORT``)."""

import json
import textwrap

import pytest

from agentgym.cli import main
from agentgym.policy.scripted import OraclePolicy
from agentgym.preflight import env_args, parse_env_arg
from agentgym.rollout import collect
from agentgym.store import Run

ENV = "agentgym/KeyDoor-Small-v0"


def error_of(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err.startswith("agentgym: error: ")
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1
    return captured.err


def test_parse_env_arg_splits_id_and_typed_kwargs():
    assert parse_env_arg(ENV) == (ENV, {})
    assert parse_env_arg("agentgym/ALFWorld-v0:split=valid_unseen") == (
        "agentgym/ALFWorld-v0",
        {"split": "valid_unseen"},
    )
    got = parse_env_arg("ns/X-v0:a=1,b=0.5,c=true,d=none,e=[1,2],f='7'")
    assert got == ("ns/X-v0", {"a": 1, "b": 0.5, "c": True, "d": None, "e": [1, 2], "f": "7"})
    # a value with commas (no '=' after them) stays whole
    assert parse_env_arg("t/F-v0:faults=5:0:raise,6:0:raise")[1] == {
        "faults": "5:0:raise,6:0:raise"
    }
    # --env-kwarg applies to every env; ID:k=v wins
    assert env_args([ENV, f"{ENV}:n_rooms=4"], ["n_rooms=2"]) == [
        (ENV, {"n_rooms": 2}),
        (ENV, {"n_rooms": 4}),
    ]


@pytest.mark.parametrize("how", ["inline", "flag"])
def test_rollout_with_kwargs_plays_the_variant(tmp_path, capsys, how):
    out = tmp_path / "r"
    env = f"{ENV}:n_rooms=2" if how == "inline" else ENV
    extra = [] if how == "inline" else ["--env-kwarg", "n_rooms=2"]
    argv = ["rollout", env, *extra, "--policy", "oracle", "--tasks", "2", "--group-size", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "n_rooms=2" in capsys.readouterr().out
    stored = Run(out).read_trajectories(1)
    # the same episodes as the Python API with env_kwargs (computed the other way)
    direct = collect(ENV, OraclePolicy(), tasks=2, group_size=1, env_kwargs={"n_rooms": 2})
    assert [t.env_kwargs for t in stored] == [{"n_rooms": 2}] * 2
    assert [[u.observation for u in t.turns] for t in stored] == [
        [u.observation for u in t.turns] for t in direct.trajectories
    ]
    default = collect(ENV, OraclePolicy(), tasks=2, group_size=1)
    assert [len(t.turns) for t in stored] != [len(t.turns) for t in default.trajectories]
    assert Run(out).read_config()["env_kwargs"] == {"n_rooms": 2}
    assert main(["replay", str(out)]) == 0  # replay rebuilds the variant


def test_bad_kwargs_fail_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["rollout", f"{ENV}:nrooms=2", "--out", str(out)]) == 2
    err = error_of(capsys)
    assert "'nrooms'" in err and "Did you mean 'n_rooms'" in err
    assert main(["rollout", f"{ENV}:n_rooms=two", "--out", str(out)]) == 2
    err = error_of(capsys)
    assert "n_rooms='two'" in err and "agentgym envs" in err
    assert not out.exists()


def test_eval_variant_is_recorded_and_compared(tmp_path, capsys):
    def evaluate(policy: str, env: str, name: str) -> dict:
        argv = ["eval", "--env", env, "--policy", policy, "--episodes", "4"]
        assert main([*argv, "--out", str(tmp_path / name)]) == 0
        return json.loads((tmp_path / name / "eval.json").read_text())

    oracle = evaluate("oracle", f"{ENV}:n_rooms=2", "oracle2")
    random = evaluate("random", f"{ENV}:n_rooms=2", "random2")
    default = evaluate("random", ENV, "random3")
    capsys.readouterr()
    assert oracle["results"][0]["panel"]["env_kwargs"] == {"n_rooms": 2}
    assert default["results"][0]["panel"]["env_kwargs"] == {"n_rooms": 3}
    assert oracle["settings"]["envs"] == [f"{ENV}:n_rooms=2"]
    assert random["results"][0]["panel_hash"] == oracle["results"][0]["panel_hash"]
    assert main(["compare", str(tmp_path / "random2"), str(tmp_path / "oracle2")]) == 0
    assert "100.0%" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "random3"), str(tmp_path / "oracle2")]) == 2
    assert "n_rooms" in error_of(capsys)


MODULE = """
import agentgym
from agentgym.envs.toy import KeyDoorEnv


class MyDoor(KeyDoorEnv):
    '''KeyDoor under another name, from a user's module.'''


agentgym.register("myorg/MyDoor-v0", entry_point=MyDoor, max_turns=12, n_rooms=2)
"""


def test_import_option_reaches_a_users_env(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cli_user_envs.py").write_text(textwrap.dedent(MODULE))
    argv = ["rollout", "myorg/MyDoor-v0", "--policy", "oracle", "--tasks", "2", "--out", "r"]
    assert main(argv) == 2
    err = error_of(capsys)
    assert "--import MODULE" in err and "AGENTGYM_IMPORT" in err and "'agentgym.envs'" in err
    monkeypatch.setenv("AGENTGYM_IMPORT", "")  # recorded, so unset again after the test
    assert main([*argv, "--import", "cli_user_envs"]) == 0
    assert Run(tmp_path / "r").read_trajectories(1)[0].won
    # the import is exported for child processes; replay and eval find the env through it
    import os

    assert "cli_user_envs" in os.environ["AGENTGYM_IMPORT"].split(",")
    assert main(["replay", "r"]) == 0
    assert main(["envs", "myorg/MyDoor-v0"]) == 0
    assert "n_rooms" in capsys.readouterr().out


def test_import_a_file_by_path_and_a_bad_import(tmp_path, capsys, monkeypatch):
    path = tmp_path / "sub" / "other_envs.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(MODULE).replace("myorg/MyDoor-v0", "myorg/OtherDoor-v0"))
    monkeypatch.setenv("AGENTGYM_IMPORT", str(path))
    argv = ["eval", "--env", "myorg/OtherDoor-v0", "--policy", "oracle", "--episodes", "2"]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 0
    assert json.loads((tmp_path / "e" / "eval.json").read_text())["results"][0]["success_rate"] == 1
    capsys.readouterr()
    assert main(["envs", "--import", str(tmp_path / "missing.py")]) == 2
    assert "missing.py" in error_of(capsys)
