"""Rank logic for training on several processes (``torchrun``): the only module that knows ranks.

One iteration under ``torchrun --nproc-per-node N`` (N processes, one per GPU, or gloo on CPU):

1. each rank collects its contiguous share of the iteration's tasks (:func:`task_shard`); a
   group is one task, so no group is ever split across ranks;
2. :func:`gather` concatenates the shares in rank order on every rank, so credit sees whole
   groups and every rank computes the same advantages and the same samples;
3. the update shuffles and splits the samples identically on every rank; each rank runs its
   slice of each mini-batch (:meth:`Ranks.micro_plan`) and the gradients are averaged by DDP or
   FSDP2 (:func:`wrap`). The loss of a micro-batch is normalised by the *whole* mini-batch's
   token (or turn) count and scaled by N (:attr:`Ranks.loss_scale`) to undo the averaging, so
   the summed gradient is exactly the single-process one;
4. only rank 0 writes the store, metrics and checkpoints (:class:`RankRun`); checkpoints hold
   full (unsharded) states, so a run resumes with the same N from rank 0's files.

A plain process (no ``WORLD_SIZE`` in the environment) gets :data:`SINGLE`, for which every
function here is the identity and no ``torch.distributed`` call is made.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar

import torch
import torch.distributed as dist

from agentgym.data import Batch

Strategy = Literal["ddp", "fsdp"]
T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def loss_scale(self) -> float:
        """Factor on each rank's loss that undoes DDP/FSDP's gradient averaging."""
        return float(self.world_size)

    def seed(self, seed: int) -> int:
        """A per-rank sampling seed (rank 0 keeps ``seed``), so ranks draw different noise."""
        return (seed + self.rank * 1_000_033) % 2**31

    def device(self, device: str) -> str:
        """``cuda`` becomes this rank's GPU (``cuda:LOCAL_RANK``) under torchrun."""
        return f"cuda:{self.local_rank}" if device == "cuda" and self.distributed else device

    def micro_plan(
        self,
        mini: Sequence[Any],
        split: Callable[[Sequence[Any]], list[list[Any]]],
    ) -> list[tuple[list[Any], float]]:
        """This rank's micro-batches of a mini-batch, each with its loss weight (1 or 0).

        The rank takes every N-th sample of ``mini`` (all ranks hold the same ``mini``) and
        ``split`` groups them into micro-batches. Every rank must run the same number of
        forward/backward passes (DDP all-reduces in the last backward, FSDP2 gathers parameters
        in each forward), so a rank with fewer micro-batches, or with no sample at all (a
        mini-batch smaller than N), repeats a micro-batch with weight 0.
        """
        if not self.distributed:
            return [(m, 1.0) for m in split(mini)]
        mine = list(mini[self.rank :: self.world_size])
        micros = split(mine) if mine else []
        count = torch.tensor([len(micros)], dtype=torch.long)
        dist.all_reduce(count, op=dist.ReduceOp.MAX)
        filler = micros[0] if micros else [mini[0]]
        return [(m, 1.0) for m in micros] + [(filler, 0.0)] * (int(count) - len(micros))

    def sum_stats(self, stats: Mapping[str, float]) -> dict[str, float]:
        """Sum per-rank statistics (each already weighted by its share of the mini-batch)."""
        if not self.distributed:
            return dict(stats)
        keys = sorted(stats)
        values = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64)
        dist.all_reduce(values)
        return dict(zip(keys, values.tolist(), strict=True))

    def set_gradient_sync(self, model: torch.nn.Module, enabled: bool) -> None:
        """Whether the next forward/backward of ``model`` averages gradients over ranks (off for
        all but the last micro-batch of a step: accumulation). What DDP's ``no_sync`` toggles."""
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model.require_backward_grad_sync = enabled
        elif hasattr(model, "set_requires_gradient_sync"):  # an FSDP2 module
            model.set_requires_gradient_sync(enabled)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


SINGLE = Ranks()


def init(backend: str | None = None, timeout_s: float = 1800.0) -> Ranks:
    """Join the job ``torchrun`` describes in the environment, or :data:`SINGLE` without one.

    ``backend`` defaults to nccl with CUDA, gloo otherwise.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return Ranks(dist.get_rank(), dist.get_world_size(), local)


def teardown(ranks: Ranks) -> None:
    """Leave the process group (after a last barrier, so no rank exits while others write).

    Call it once the wrapped models are out of scope: DDP and FSDP2 hold the process group in
    reference cycles, and the collections here destroy it (and join gloo's threads) now, while
    the interpreter is whole, rather than at exit, where a rank sometimes aborted with
    "terminate called without an active exception".
    """
    if ranks.distributed and dist.is_initialized():
        dist.barrier()
        gc.collect()  # the wrapped models' cycles
        dist.destroy_process_group()
        gc.collect()  # the process group itself, now that the package let it go


def free_port() -> int:
    """A TCP port free on this host now (for a local rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def task_shard(tasks: int, ranks: Ranks) -> tuple[int, int]:
    """``(first, count)``: this rank's contiguous share of ``tasks`` (the first ranks get one
    more when N does not divide it; a rank may get none)."""
    base, extra = divmod(tasks, ranks.world_size)
    first = ranks.rank * base + min(ranks.rank, extra)
    return first, base + (ranks.rank < extra)


def gather(batch: Batch, ranks: Ranks) -> Batch:
    """All ranks' shares of an iteration concatenated in rank order, on every rank."""
    if not ranks.distributed:
        return batch
    shares: list[Any] = [None] * ranks.world_size
    dist.all_gather_object(shares, list(batch.trajectories))
    return Batch(tuple(t for share in shares for t in share))


def wrap(model: torch.nn.Module, ranks: Ranks, strategy: Strategy = "ddp") -> torch.nn.Module:
    """The module the update trains: ``model`` itself for one process, else DDP or FSDP2.

    ``ddp`` keeps a full replica per rank (models that fit); ``fsdp`` shards parameters,
    gradients and optimizer state with ``fully_shard`` per decoder layer, then the root (models
    that do not). Both average gradients over ranks. FSDP2 changes ``model`` in place (its
    parameters become DTensors); build the optimizer after wrapping.
    """
    if not ranks.distributed:
        return model
    if strategy == "ddp":
        device_ids = [ranks.local_rank] if next(model.parameters()).is_cuda else None
        # no buffer sync in forward: it would make each forward a collective, and ranks run
        # different numbers of no-grad forwards (generation, recomputed logprobs)
        params = inspect.signature(torch.nn.parallel.DistributedDataParallel).parameters
        no_sync = (
            "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
        )
        return _DDP(model, device_ids=device_ids, **{no_sync: False})
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in decoder_layers(model):
            fully_shard(layer)
        fully_shard(model)
        return model
    raise ValueError(f"unknown strategy {strategy!r}; use 'ddp' or 'fsdp'")


def check_strategy(ranks: Ranks, strategy: Strategy, backend: str, frozen_reference: bool) -> None:
    """Refuse what FSDP2 cannot do here: hf generation (it would gather the sharded weights at
    every decoding step) and a deep-copied frozen KL reference (use LoRA: the reference is then
    the model with its adapters off)."""
    if not ranks.distributed or strategy != "fsdp":
        return
    if backend != "vllm":
        raise ValueError(
            "trainer.strategy=fsdp needs policy.backend=vllm: hf generation with sharded "
            "weights would gather them at every decoding step. Use strategy=ddp with hf."
        )
    if frozen_reference:
        raise ValueError(
            "trainer.strategy=fsdp with trainer.kl_coef > 0 needs lora.enabled=true (the KL "
            "reference is then the model with its adapters off, not a sharded deep copy)."
        )


class _DDP(torch.nn.parallel.DistributedDataParallel):
    """DDP that still answers the wrapped model's own methods (``get_output_embeddings``...)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP wrapper (FSDP2 modules are their own model)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a transformers causal LM (peft-wrapped or not): FSDP2 units."""
    blocks = getattr(model, "_no_split_modules", None) or []
    found = [m for m in model.modules() if type(m).__name__ in set(blocks)]
    if found:
        return found
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 1]
    return list(max(lists, key=len)) if lists else []


# ---------------------------------------------------------------------------------------------
# full states for checkpoints and weight sync
# ---------------------------------------------------------------------------------------------


def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None):
    """``(model_state, optimizer_state)`` unsharded, on CPU, on every rank (a collective under
    FSDP2; for DDP and one process, the local states)."""
    model = unwrap(model)
    if not _is_fsdp(model):
        return model.state_dict(), optimizer.state_dict() if optimizer is not None else None
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True, broadcast_from_rank0=False)
    model_state = get_model_state_dict(model, options=opts)
    optim_state = None
    if optimizer is not None:
        optim_state = get_optimizer_state_dict(model, optimizer, options=opts)
    return model_state, optim_state


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's whole value (a collective); other tensors as they are."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _is_fsdp(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


@contextlib.contextmanager
def main_first(ranks: Ranks) -> Iterator[None]:
    """Run the block on rank 0 first; the others run it after rank 0 finished it (they see its
    files). An error on rank 0 is raised on every rank instead of leaving them waiting."""
    if not ranks.distributed:
        yield
        return
    if ranks.is_main:
        try:
            yield
        except BaseException as err:
            ranks.broadcast(f"{type(err).__name__}: {err}")
            raise
        ranks.broadcast(None)
    else:
        failure = ranks.broadcast(None)
        if failure is not None:
            raise RuntimeError(f"rank 0 failed: {failure}")
        yield


class RankRun:
    """A run directory as one rank sees it: rank 0 writes; on other ranks writes do nothing
    (``log_metrics`` still returns the record) and reads go to rank 0's files."""

    _WRITES = ("write_trajectories", "update_trajectories", "truncate_after", "write_config")

    def __init__(self, run: Any, ranks: Ranks) -> None:
        self._run = run
        self._ranks = ranks

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._run, name)
        if name in self._WRITES and not self._ranks.is_main:
            return lambda *args, **kwargs: None
        return attr

    def log_metrics(self, metrics: Mapping[str, Any], *, iteration: int | None = None) -> dict:
        if self._ranks.is_main:
            return self._run.log_metrics(metrics, iteration=iteration)
        return {"iteration": iteration, **metrics}

    @property
    def inner(self) -> Any:
        """The wrapped :class:`agentgym.store.Run`."""
        return self._run


def save_checkpoint(ranks: Ranks, folder: Any, iteration: int, model, optimizer, scheduler, **kw):
    """:func:`agentgym.trainers.checkpoint.save` by rank 0 with the full (unsharded) states;
    every rank must call it (gathering FSDP2 shards is a collective)."""
    from agentgym.trainers import checkpoint

    model = unwrap(model)
    if _is_fsdp(model):
        model_state, optim_state = full_state(model, optimizer)
        model, optimizer = _FullView(model, model_state), _FullOptimizer(optim_state)
    if ranks.is_main:
        checkpoint.save(folder, iteration, model, optimizer, scheduler, **kw)
    ranks.barrier()


def load_checkpoint(path: Any, model, optimizer, scheduler) -> dict[str, Any]:
    """:func:`agentgym.trainers.checkpoint.load` on every rank; FSDP2 shards take their part of
    the full states that :func:`save_checkpoint` wrote."""
    from agentgym.trainers import checkpoint

    model = unwrap(model)
    if not _is_fsdp(model):
        return checkpoint.load(path, model, optimizer, scheduler)
    from pathlib import Path

    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    path = Path(path)
    opts = StateDictOptions(full_state_dict=True, strict=False)
    weights = torch.load(path / "trainable.pt", map_location="cpu", weights_only=True)
    set_model_state_dict(model, weights, options=opts)
    optim = torch.load(path / "optimizer.pt", weights_only=False)
    set_optimizer_state_dict(model, optimizer, optim, options=opts)
    sched = torch.load(path / "scheduler.pt", weights_only=False)
    if scheduler is not None and sched is not None:
        scheduler.load_state_dict(sched)
    state = torch.load(path / "state.pt", weights_only=False)
    checkpoint.set_rng_state(state["rng"])
    return state


class _FullView:
    """What :func:`checkpoint.save` reads of a model, with FSDP2's full tensors."""

    def __init__(self, model: torch.nn.Module, full: Mapping[str, torch.Tensor]) -> None:
        self._trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        self._full = full

    def named_parameters(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name in self._trainable:
            yield name, self._full[name].detach().requires_grad_(True)


class _FullOptimizer:
    def __init__(self, state: Any) -> None:
        self._state = state

    def state_dict(self) -> Any:
        return self._state
