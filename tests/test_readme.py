"""Every command and snippet of the README runs as written, in order, in a fresh folder.

``agentgym`` lines run through ``main(argv)``; ``train`` gets the tiny random model and one short
iteration appended (and an ``eval`` of a trained run two episodes), so the test stays fast; the
``make`` lines are only checked to be Makefile targets (``make demo`` trains the real model for
minutes, ``make test`` would run this test again). Python blocks run in a fresh interpreter,
except one introduced by "Save this as `NAME`", which is written to NAME for the commands after
it. Links to files of the repository must exist.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from agentgym.cli import main
from agentgym.store import Run

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 230
"""The README is read in five minutes: about 200 lines; details belong in docs/."""

TINY_TRAIN = [
    "policy.model=tiny",
    "policy.device=cpu",
    "policy.dtype=float32",
    "policy.max_new_tokens=24",
    "env.max_turns=2",
    "env.tasks_per_iter=1",
    "env.group_size=2",
    "env.workers=0",
    "trainer.iterations=1",
    "trainer.eval_episodes=2",
    "trainer.eval_every=0",
]

BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)
SAVE_AS = re.compile(r"Save this as `([\w./-]+)`:\s*$")


def readme_blocks() -> list[tuple[str, str, str | None]]:
    """(language, code, file name to save it as or None) of each fenced block, in order."""
    text = README.read_text(encoding="utf-8")
    out = []
    for m in BLOCK.finditer(text):
        before = text[: m.start()].rstrip().splitlines()[-1] if m.start() else ""
        save = SAVE_AS.search(before)
        out.append((m.group(1), m.group(2), save.group(1) if save else None))
    return out


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^([\w-]+):", text, re.M)}


def run_agentgym(args: list[str], capsys) -> str:
    if args[0] in ("train", "sft"):
        own_model = any(a.startswith("policy.model=") for a in args)  # e.g. a warm start's
        args = [*args, *(a for a in TINY_TRAIN if not (own_model and a.startswith("policy.model")))]
    if args[0] == "sft":
        args = [*args, "sft.oracle_episodes=2", "sft.epochs=1", "env.max_turns=8"]
    if args[0] == "eval" and args[args.index("--policy") + 1].startswith("runs/"):
        args = [*args, "--episodes", "2"]  # a trained (tiny) run: two episodes are enough
    code = main(args)
    captured = capsys.readouterr()
    assert code == 0, f"`agentgym {shlex.join(args)}` exited {code}: {captured.err}"
    return captured.out


def run_python(code: str, cwd: Path, name: str) -> None:
    path = cwd / name
    path.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(path)], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"README snippet {name} failed:\n{code}\n{done.stderr}"


@pytest.mark.slow
def test_every_command_and_snippet_of_the_readme_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTGYM_IMPORT", "")  # restored (unset) after; --import sets it
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    targets = makefile_targets()
    outputs: dict[str, str] = {}
    ran = 0
    for i, (lang, code, save_as) in enumerate(readme_blocks()):
        if lang == "python":
            if save_as:
                (tmp_path / save_as).write_text(code, encoding="utf-8")
            else:
                run_python(code, tmp_path, f"readme_snippet_{i}.py")
            ran += 1
            continue
        assert lang == "bash", f"README block {i} in {lang!r}: the test cannot run it"
        for line in code.splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if words[0] == "make":
                assert words[1] in targets, f"README names `make {words[1]}`, not a target"
            elif words[0] == "agentgym":
                outputs[line] = run_agentgym(words[1:], capsys)
            elif words[0] == "python":
                done = subprocess.run(
                    [sys.executable, *words[1:]], capture_output=True, text=True, timeout=300
                )
                assert done.returncode == 0, f"`{line}` failed: {done.stderr}"
                outputs[line] = done.stdout
            else:
                pytest.fail(f"README command the test does not know how to run: {line}")
            ran += 1
    assert ran >= 15
    # a few results checked another way than by the commands' exit codes
    flat = Run("runs/r").read_batch(1)
    assert all("gigpo" in turn.advantages for t in flat.trajectories for turn in t.turns)
    assert Path("runs/r/report.html").is_file()
    said = " ".join(out for line, out in outputs.items() if "check_env" in line)
    assert "myorg/Guess-v0 passed" in said
    compared = next(out for line, out in outputs.items() if "agentgym compare" in line)
    assert "McNemar" in compared
    guess = Run("runs/guess").read_trajectories(1)
    assert guess and all(t.env_id == "myorg/Guess-v0" for t in guess)


def test_readme_links_point_at_files_that_exist():
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://", "#", "mailto:")):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{doc.name} links to {target}, which does not exist"


def test_readme_stays_short_and_runs_only_known_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, (
        f"README.md has {len(lines)} lines; keep it near 200 and move details to docs/"
    )
    blocks = readme_blocks()
    assert any(save for _, _, save in blocks), "the TextEnv example lost 'Save this as'"
    assert {lang for lang, _, _ in blocks} <= {"bash", "python"}
