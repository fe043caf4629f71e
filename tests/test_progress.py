"""Rollouts report their progress to a listener of the calling context, and only to it."""

from agentgym import progress
from agentgym.policy.scripted import RandomPolicy
from agentgym.rollout import collect


def test_collect_reports_episodes_done_after_every_turn():
    seen: list[progress.Progress] = []
    with progress.listen(seen.append):
        batch = collect("agentgym/KeyDoor-Small-v0", RandomPolicy(seed=0), tasks=2, group_size=2)
    assert seen[0] == progress.Progress("rollout", 0, 4, 0)
    assert [p.turns for p in seen] == list(range(len(seen)))
    assert seen[-1].episodes_done == 4
    assert seen[-1].turns == max(len(t.turns) for t in batch.trajectories)
    done = [p.episodes_done for p in seen]
    assert done == sorted(done)  # never goes back


def test_evaluation_is_labelled_and_nothing_is_reported_without_a_listener():
    seen: list[progress.Progress] = []
    collect("agentgym/KeyDoor-Small-v0", RandomPolicy(seed=0), tasks=1, group_size=1)
    with progress.listen(seen.append):
        collect(
            "agentgym/KeyDoor-Small-v0",
            RandomPolicy(seed=0),
            tasks=1,
            group_size=1,
            group_prefix="eval:",
        )
    assert seen and {p.label for p in seen} == {"evaluation"}
