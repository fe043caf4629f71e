"""What the trainer does with faulted episodes (an env raised or hung: ``Trajectory.fault``).

``env.faults="exclude"`` keeps them out of credit and the loss (their group compares the
members that finished); ``"fail"`` trains on them as the failed episodes they are (no win, the
rewards they got). Either way they are stored and counted, and an iteration where more than
``env.max_fault_rate`` of the episodes faulted (or where none is left to train on) stops the run
with :class:`FaultThresholdError`, naming the env, a seed and the exception, rather than
training on what little is left.
"""

from __future__ import annotations

from agentgym.data import Batch, Trajectory
from agentgym.trainers.config import EnvSection


class FaultThresholdError(RuntimeError):
    """Too many episodes of an iteration faulted to go on training."""


def split_faults(
    batch: Batch, env: EnvSection, iteration: int
) -> tuple[Batch, tuple[Trajectory, ...]]:
    """(the batch to credit and train on, the faulted trajectories kept out of it).

    Raises :class:`FaultThresholdError` when the fault rate exceeds ``env.max_fault_rate`` or
    nothing is left to train on.
    """
    faulted = tuple(t for t in batch.trajectories if t.fault is not None)
    if not faulted:
        return batch, ()
    kept = tuple(t for t in batch.trajectories if t.fault is None)
    rate = len(faulted) / len(batch)
    if rate > env.max_fault_rate or (env.faults == "exclude" and not kept):
        first = faulted[0]
        kinds = sorted({t.fault.partition(":")[0] for t in faulted if t.fault})
        raise FaultThresholdError(
            f"{len(faulted)} of {len(batch)} episodes of iteration {iteration} faulted in "
            f"{first.env_id} ({rate:.0%} > env.max_fault_rate={env.max_fault_rate:.0%}; "
            f"kinds: {', '.join(kinds)}). First: seed {first.seed} ({first.traj_id}): "
            f"{first.fault}. Fix the environment (replay that seed with agentgym.make), raise "
            "env.step_timeout if steps are merely slow, or raise env.max_fault_rate."
        )
    if env.faults == "fail":
        return batch, ()
    return Batch(kept), faulted


__all__ = ["FaultThresholdError", "split_faults"]
