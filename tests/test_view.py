"""The HTML report: self-contained, escaped, and working in a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from agentgym.cli import main
from agentgym.data import Trajectory, Turn
from agentgym.report.html import report_data, write_report
from agentgym.store import Run

ENV = "agentgym/KeyDoor-Small-v0"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = "</script><script>window.pwned = 1</script><img src=x onerror='window.pwned=2'>"


@pytest.fixture
def credited_run(tmp_path, capsys) -> Run:
    """`agentgym rollout` (random, 2 tasks x 3) then `agentgym credit` with three estimators."""
    out = tmp_path / "run"
    argv = ["rollout", ENV, "--policy", "random", "--tasks", "2", "--group-size", "3"]
    assert main([*argv, "--seed", "1", "--out", str(out)]) == 0
    for estimator in ("gigpo", "salt", "grpo"):
        assert main(["credit", str(out), "--estimator", estimator]) == 0
    capsys.readouterr()
    return Run(out)


def embedded_data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="agentgym-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def test_view_writes_one_self_contained_file(credited_run, capsys):
    assert main(["view", str(credited_run.path)]) == 0
    path = credited_run.path / "report.html"
    assert str(path) in capsys.readouterr().out.replace("\n", "")
    html = path.read_text(encoding="utf-8")
    # nothing fetched at view time: no external scripts, styles, images or links
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//)""", html)
    assert "<link" not in html and "<script src" not in html
    assert "default-src 'none'" in html
    data = embedded_data(html)
    stored = credited_run.read_trajectories(1)
    assert [t["id"] for t in data["trajectories"]] == [t.traj_id for t in stored]
    assert data["estimators"] == ["gigpo", "grpo", "salt"]
    for shown, traj in zip(data["trajectories"], stored, strict=True):
        for turn_data, turn in zip(shown["turns"], traj.turns, strict=True):
            assert turn_data["adv"] == dict(turn.advantages)
            assert turn_data["action"] == turn.action
    assert len(data["groups"]) == 2 and all("<svg" in g["svg"] for g in data["groups"])
    assert data["curves"] and all(c.startswith("<svg") for c in data["curves"])


def test_hostile_text_cannot_break_out_of_the_page(tmp_path):
    run = Run.create(tmp_path / "hostile", config={"note": HOSTILE})
    turns = (Turn(HOSTILE, HOSTILE, HOSTILE, 1.0, True, False, state_key=HOSTILE),)
    run.write_trajectories([Trajectory(ENV, HOSTILE, 0, HOSTILE, turns, True, traj_id="x")], 1)
    html = write_report(run).read_text(encoding="utf-8")
    assert html.count("</script>") == 2  # the data block's and the viewer's, nothing injected
    assert "<img src=x" not in html
    assert embedded_data(html)["trajectories"][0]["turns"][0]["output"] == HOSTILE


def test_report_data_can_pick_iterations(credited_run):
    assert report_data(credited_run, [1])["run"]["trajectories"] == 6
    assert report_data(credited_run, [])["run"]["trajectories"] == 0


def _browser(playwright, profile: str):
    return playwright.chromium.launch_persistent_context(
        profile,
        executable_path=CHROMIUM,
        args=CHROMIUM_FLAGS,
        headless=True,
        viewport={"width": 1400, "height": 1000},
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/system-deps.sh)")
def test_viewer_in_headless_chromium(credited_run):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[view]')"
    )
    path = write_report(credited_run)
    stored = credited_run.read_trajectories(1)
    traj = max(stored, key=lambda t: (t.won, -len(t.turns)))  # a short winning one if any
    key = f"1/{traj.traj_id}"
    requests, errors = [], []
    with sync_api.sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        browser = _browser(p, profile)
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(path.as_uri())
            assert page.inner_text("h2") == f"Run {credited_run.name}"
            page.click(f'.traj-item[data-traj="{key}"]')
            page.wait_for_selector("table.adv-strip")
            assert page.inner_text("h2") == traj.traj_id
            for name in ("gigpo", "salt", "grpo"):
                cells = page.query_selector_all(f'td.cell[data-estimator="{name}"]')
                assert len(cells) == len(traj.turns)
                for cell, turn in zip(cells, traj.turns, strict=True):
                    want = turn.advantages[name]
                    assert float(cell.get_attribute("data-value")) == want
                    assert abs(float(cell.inner_text()) - want) <= 5e-4
                    colour = cell.evaluate("c => getComputedStyle(c).backgroundColor")
                    if want > 0:
                        assert colour.startswith("rgba(22, 163, 74")
                    elif want < 0:
                        assert colour.startswith("rgba(220, 38, 38")
            first = page.inner_text("#turn-0")
            assert traj.turns[0].observation in first and traj.turns[0].output in first
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "view-trajectory.png"
            page.screenshot(path=str(shot))
            print(f"screenshot: {shot}")
            page.click("text=Show this group's anchor groups and SALT graph")
            page.wait_for_selector("svg.salt-graph")
            n_edges = len(page.query_selector_all("svg.salt-graph g.edge"))
            group = report_data(credited_run)["groups"]
            assert n_edges == next(g for g in group if g["key"] == f"1/{traj.group_id}")[
                "svg"
            ].count('class="edge"')
            page.fill("#search", "no trajectory says this")
            assert page.inner_text("#count").startswith("0 of 6")
        finally:
            browser.close()
    assert not errors, errors
    assert all(u.startswith(("file:", "data:", "about:")) for u in requests), requests
    assert shot.stat().st_size > 10_000
