"""Where each iteration's batch comes from: collected in step, or ahead in a background thread.

Policy versions: the trainer's weights after ``u`` updates are version ``u``; iteration ``it``'s
update turns version ``it - 1`` into ``it``. Every trajectory records the version whose weights
sampled it in ``metadata["policy_version"]``, and its *staleness* when trained is the trainer's
version minus that.

``max_staleness = 0`` is the synchronous loop: iteration ``it`` is collected by the trainer's
own policy right before its update (staleness 0), exactly as without this module.

``max_staleness = k >= 1``: a background thread owns a second policy (``worker``: an
``HFPolicy`` over a copy of the model, or the vLLM engine) and collects iterations ``it + 1 ...
it + k`` while iteration ``it`` is being trained. After each update the trainer *publishes* a
copy of its weights; the worker loads the newest published weights at the start of each
collection, never during one, so one batch comes from one version. A collection submitted when
the trainer was at version ``it - 1`` runs with weights at least that new, hence is trained at
staleness ``<= k``; :meth:`Rollouts.get` checks it and refuses anything older. The loss
corrects for the lag with importance ratios against the behaviour logprobs stored in each turn
(``response_logprobs``: those of the version that sampled), see ``trainers.update``.

Under ``torchrun`` each rank collects its share (``trainers.distributed``); the gather runs on
the trainer's thread, never the worker's, so collectives are never issued from two threads.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch

from agentgym.data import Batch
from agentgym.policy.base import Policy
from agentgym.trainers import distributed
from agentgym.trainers.distributed import SINGLE, Ranks

VERSION_KEY = "policy_version"
CollectFn = Callable[[Policy, int], Batch]
"""``(policy, iteration) -> this rank's share of the iteration's batch``."""
T = TypeVar("T")


def stamp(batch: Batch, version: int) -> Batch:
    """A copy of ``batch`` whose trajectories record the policy version that sampled them."""
    return Batch(
        tuple(
            dataclasses.replace(t, metadata={**t.metadata, VERSION_KEY: int(version)})
            for t in batch.trajectories
        )
    )


def staleness(batch: Batch, version: int) -> np.ndarray:
    """[N] how many updates behind ``version`` each trajectory's sampling weights are."""
    return np.array(
        [version - int(t.metadata[VERSION_KEY]) for t in batch.trajectories], dtype=np.int64
    )


def check_correction(max_staleness: int, *, recompute_old: bool, tis_cap: float) -> None:
    """Refuse a loss that would not correct for stale behaviour policies.

    With k >= 1 the trajectories come from an older policy π_b. The loss corrects for it either
    as plain PPO does (``old_logprobs`` = the stored behaviour logprobs: the ratio π_θ/π_b is
    the importance weight, clipped), or decoupled: ``recompute_old_logprobs`` makes the clip
    centre the current policy and ``tis_cap`` > 0 weights each token by min(π_old/π_b, cap).
    Recomputing without that weight would treat stale samples as on-policy: an error.
    """
    if max_staleness > 0 and recompute_old and tis_cap <= 0:
        raise ValueError(
            "trainer.max_staleness > 0 with trainer.recompute_old_logprobs needs trainer.tis_cap "
            "> 0 (the importance weight against the stale behaviour policy), e.g. tis_cap=2; or "
            "leave recompute_old_logprobs off to clip against the behaviour logprobs."
        )


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model``'s full state (unsharded: a collective under FSDP2)."""
    model = distributed.unwrap(model)
    return {k: distributed.full_tensor(v).detach().clone() for k, v in model.state_dict().items()}


def load_weights(policy: Any, state: Mapping[str, torch.Tensor]) -> None:
    """Put ``state`` into a rollout policy: its engine's weight loader, else its model."""
    if hasattr(policy, "sync_weights"):
        policy.sync_weights(state)
    else:
        policy.model.load_state_dict(state)


class Rollouts:
    """The source of each iteration's batch (see the module docstring).

    Args:
        collect: collects this rank's share of an iteration with a given policy.
        policy: the trainer's policy (sharing its model for ``hf``): used when
            ``max_staleness == 0``, and for evaluation then.
        model: the trained model; an engine with its own weights (``sync_weights``) starts
            from them (they may come from a resumed checkpoint).
        max_staleness: k; 0 is the synchronous loop.
        version: the trainer's version now (the iterations already trained).
        last_iteration: no collection is started past it.
        ranks: this process's ranks (one process by default).
        worker: the background thread's own policy (needed when k >= 1); it must not share
            weights with the trained model.
    """

    def __init__(
        self,
        collect: CollectFn,
        policy: Policy,
        *,
        model: torch.nn.Module | None = None,
        max_staleness: int = 0,
        version: int = 0,
        last_iteration: int,
        ranks: Ranks = SINGLE,
        worker: Policy | None = None,
    ) -> None:
        if max_staleness < 0:
            raise ValueError(f"trainer.max_staleness must be >= 0, got {max_staleness}")
        if max_staleness > 0 and worker is None:
            raise ValueError("asynchronous rollouts need a worker policy with its own weights")
        self.max_staleness = max_staleness
        self.version = version
        self.policy = policy
        self._collect = collect
        self._last = last_iteration
        self._ranks = ranks
        self._worker = worker
        self._futures: dict[int, Future] = {}
        self._last_lag: np.ndarray | None = None
        self._published: tuple[int, dict[str, torch.Tensor]] | None = None
        self._lock = threading.Lock()
        self._worker_version = version  # the worker starts with a copy of the trainer's weights
        self._pool = (
            ThreadPoolExecutor(1, thread_name_prefix="agentgym-rollout")
            if max_staleness > 0
            else None
        )
        if model is not None and hasattr(policy, "sync_weights"):
            policy.sync_weights(model)

    # ------------------------------------------------------------------ the loop's calls

    def get(self, iteration: int) -> Batch:
        """The whole batch of ``iteration`` (all ranks' shares), each trajectory stamped."""
        if self._pool is None:
            with torch.no_grad():
                local = stamp(self._collect(self.policy, iteration), self.version)
        else:
            for ahead in range(iteration, min(iteration + self.max_staleness, self._last) + 1):
                if ahead not in self._futures:
                    self._futures[ahead] = self._pool.submit(self._work, ahead)
            local = self._futures.pop(iteration).result()
        batch = distributed.gather(local, self._ranks)
        lag = self._last_lag = staleness(batch, self.version)
        if len(lag) and (lag.max() > self.max_staleness or lag.min() < 0):
            raise RuntimeError(
                f"iteration {iteration}: trajectories {int(lag.max())} versions old, past "
                f"trainer.max_staleness={self.max_staleness}"
            )
        return batch

    def before_update(self) -> None:
        """Synchronous with an engine that can release its GPU memory (vLLM sleep mode): do so
        for the update."""
        if self._pool is None and hasattr(self.policy, "sleep"):
            self.policy.sleep()

    def after_update(self, model: torch.nn.Module) -> None:
        """Count the new version and bring it to the rollout policy: into the engine in place
        (synchronous; an ``hf`` policy shares the model already), or published for the
        worker's next collection (asynchronous)."""
        self.version += 1
        if self._pool is None:
            if hasattr(self.policy, "sync_weights"):
                if hasattr(self.policy, "wake_up"):
                    self.policy.wake_up()
                self.policy.sync_weights(model)
            return
        state = snapshot(model)
        with self._lock:
            self._published = (self.version, state)

    @property
    def stats(self) -> dict[str, float]:
        """Staleness of the last batch (asynchronous runs only; nothing when synchronous)."""
        if self._pool is None or self._last_lag is None or not len(self._last_lag):
            return {}
        return {
            "staleness": float(self._last_lag.mean()),
            "staleness_max": int(self._last_lag.max()),
        }

    def call(self, fn: Callable[[Policy], T]) -> T:
        """``fn(policy)`` with the newest weights (evaluation), on the thread owning the policy:
        the trainer's policy when synchronous, else after the worker's queued collections."""
        if self._pool is None:
            return fn(self.policy)
        return self._pool.submit(self._with_newest, fn).result()

    def close(self) -> None:
        """Stop the worker (collections not yet started are dropped)."""
        if self._pool is not None:
            for future in self._futures.values():
                future.cancel()
            self._pool.shutdown(wait=True)
            self._futures.clear()

    # ------------------------------------------------------------------ the worker thread

    def _with_newest(self, fn: Callable[[Policy], T]) -> T:
        with self._lock:
            published, self._published = self._published, None
        if published is not None:
            self._worker_version, state = published
            load_weights(self._worker, state)
        return fn(self._worker)

    def _work(self, iteration: int) -> Batch:
        with torch.no_grad():
            batch = self._with_newest(lambda policy: self._collect(policy, iteration))
        return stamp(batch, self._worker_version)
