"""Turn trajectories with per-turn advantages into padded training tensors.

Two layouts over the same token data (token ids come from the rollout, never re-tokenized):

- ``full``: one sequence per trajectory, ``prompt_0 + response_0 + prompt_1 + response_1 + ...``
  where each ``prompt_i`` is the increment fed before turn i. A turn whose prompt started a new
  sequence (``Turn.new_sequence``: a policy reset, a stateless policy) starts a new sample, so
  no token is scored in a context the model did not see. Observation tokens are masked out of
  the loss; each response token carries its turn's advantage. One forward pass trains all turns.
- ``window``: one sample per turn, ``full prompt of turn i + response_i``. For full-history
  trajectories the full prompt is rebuilt from the earlier turns' increments and responses; for
  windowed rollouts (``metadata["history"] == "window"``) each turn's prompt ids are already the
  whole prompt.

Constrained turns (``Turn.constraint``, see :mod:`agentgym.constraint`): :func:`constrain` replays
each turn's constraint over its response ids and attaches the allowed-token bitmask of every
response token, so the loss takes the same renormalised distribution the rollout sampled from.

Shapes: B samples, L = longest sample. Position p of ``loss_mask``, ``old_logprobs``,
``advantages`` and ``turn_ids`` describes token ``input_ids[:, p]``, predicted from position p-1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from agentgym.constraint import ConstraintCompiler
from agentgym.data import Batch, Trajectory
from agentgym.policy.prefix import Prefix, tail_is_forced

Layout = Literal["full", "window"]
PrefixStates = tuple[int, Mapping[str, list[torch.Tensor]]]
"""A policy's recorded states: the layer they enter, and per trajectory id its segments."""


@dataclass(frozen=True)
class Sample:
    """One training sequence before padding."""

    input_ids: list[int]
    loss_mask: list[bool]
    old_logprobs: list[float]
    advantages: list[float]
    turn_ids: list[int]
    """Flat batch turn index of each response token, -1 elsewhere."""
    allowed: tuple[np.ndarray | None, ...] = ()
    """Packed allowed-token bitmask of each token (None: unconstrained); ``()``: none at all."""
    prefix: Prefix | None = None
    """The rollout's hidden states below the trainable layers for the fed tokens (a prefix of
    ``input_ids``), when recorded (see :mod:`agentgym.policy.prefix`)."""


@dataclass(frozen=True)
class TensorBatch:
    """Padded tensors of a list of samples (see the module docstring for alignment)."""

    input_ids: torch.Tensor  # [B, L] long
    attention_mask: torch.Tensor  # [B, L] long
    loss_mask: torch.Tensor  # [B, L] bool
    old_logprobs: torch.Tensor  # [B, L] float32
    advantages: torch.Tensor  # [B, L] float32
    turn_ids: torch.Tensor  # [B, L] long, -1 where no response token
    allowed: torch.Tensor | None = None
    """[N, W] int32 packed allowed-token bitmasks of the N loss positions (row-major), all bits
    set where a token is unconstrained; None when no token of the batch is constrained."""
    prefix: Prefix | None = None
    """Hidden states [B, L, D] entering layer ``prefix.layer`` (zeros past each row's fed
    tokens) when every sample has them; the loss then runs only the layers from there up."""

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())

    def to(self, device: str | torch.device) -> TensorBatch:
        return TensorBatch(*(t if t is None else t.to(device) for t in self.__dict__.values()))


def _check_tokens(traj: Trajectory) -> None:
    for i, turn in enumerate(traj.turns):
        if len(turn.response_ids) != len(turn.response_logprobs):
            raise ValueError(
                f"trajectory {traj.traj_id!r} turn {i}: {len(turn.response_ids)} response ids but "
                f"{len(turn.response_logprobs)} logprobs; was it collected by an LLM policy?"
            )
        if not turn.response_ids:
            raise ValueError(
                f"trajectory {traj.traj_id!r} turn {i} has no response tokens; only trajectories "
                "from an LLM policy (hf, vllm) can be trained on."
            )


def full_history_samples(
    batch: Batch, advantages: np.ndarray, prefix_states: PrefixStates | None = None
) -> list[Sample]:
    """One sample per trajectory (requires full-history rollouts), or one per run of turns
    between turns whose prompt started a new sequence (``Turn.new_sequence``): such a turn's
    ``prompt_ids`` are its whole prompt, and the model did not see the earlier turns' tokens.

    ``prefix_states``: the policy's recorded hidden states (layer, per trajectory id its
    segments); a sample gets its segment when the trajectory has one per sample and it does
    not cover more tokens than the sample."""
    samples = []
    for traj, offset in zip(batch.trajectories, batch.traj_offset, strict=True):
        first = len(samples)
        if traj.metadata.get("history", "full") != "full":
            raise ValueError(
                f"trajectory {traj.traj_id!r} was collected with a history window; "
                "use layout 'window' to train on it."
            )
        _check_tokens(traj)
        ids: list[int] = []
        mask: list[bool] = []
        old: list[float] = []
        adv: list[float] = []
        tid: list[int] = []
        for i, turn in enumerate(traj.turns):
            if turn.new_sequence and ids:  # close the sequence the model saw so far
                samples.append(Sample(ids, mask, old, adv, tid))
                ids, mask, old, adv, tid = [], [], [], [], []
            n_p, n_r = len(turn.prompt_ids), len(turn.response_ids)
            a = float(advantages[offset + i])
            ids += list(turn.prompt_ids) + list(turn.response_ids)
            mask += [False] * n_p + [True] * n_r
            old += [0.0] * n_p + list(turn.response_logprobs)
            adv += [0.0] * n_p + [a] * n_r
            tid += [-1] * n_p + [int(offset + i)] * n_r
        samples.append(Sample(ids, mask, old, adv, tid))
        if prefix_states is not None:
            layer, states = prefix_states
            segments = states.get(traj.traj_id, [])
            if len(segments) == len(samples) - first:
                for j, seg in enumerate(segments):
                    if len(seg) <= len(samples[first + j].input_ids):
                        prefix = Prefix(layer, seg)
                        samples[first + j] = dataclasses.replace(samples[first + j], prefix=prefix)
    return samples


def window_samples(batch: Batch, advantages: np.ndarray) -> list[Sample]:
    """One sample per turn: the turn's whole prompt plus its response."""
    samples = []
    for traj, offset in zip(batch.trajectories, batch.traj_offset, strict=True):
        _check_tokens(traj)
        increments = traj.metadata.get("history", "full") == "full"
        context: list[int] = []
        for i, turn in enumerate(traj.turns):
            if turn.new_sequence:  # the whole prompt: earlier turns were not in the context
                context = []
            prompt = context + list(turn.prompt_ids) if increments else list(turn.prompt_ids)
            n_p, n_r = len(prompt), len(turn.response_ids)
            samples.append(
                Sample(
                    prompt + list(turn.response_ids),
                    [False] * n_p + [True] * n_r,
                    [0.0] * n_p + list(turn.response_logprobs),
                    [0.0] * n_p + [float(advantages[offset + i])] * n_r,
                    [-1] * n_p + [int(offset + i)] * n_r,
                )
            )
            if increments:
                context = prompt + list(turn.response_ids)
    return samples


def make_samples(
    batch: Batch,
    advantages: np.ndarray,
    layout: Layout,
    prefix_states: PrefixStates | None = None,
) -> list[Sample]:
    """Samples of ``batch`` in ``layout`` with per-turn ``advantages[T]`` (``prefix_states``:
    see :func:`full_history_samples`; the window layout does not use them)."""
    if advantages.shape != (batch.num_turns,):
        raise ValueError(f"advantages of shape {advantages.shape}, want ({batch.num_turns},)")
    if layout == "full":
        return full_history_samples(batch, advantages, prefix_states)
    if layout == "window":
        return window_samples(batch, advantages)
    raise ValueError(f"unknown layout {layout!r}; use 'full' or 'window'")


def constrain(
    samples: Sequence[Sample], batch: Batch, compiler: ConstraintCompiler
) -> list[Sample]:
    """``samples`` with the allowed-token bitmask of every constrained response token attached.

    Each constrained turn's stored spec is replayed over its response ids (the tokens must fit:
    see :meth:`ConstraintCompiler.replay`); samples without constrained turns come back as is.
    """
    turns = [turn for traj in batch.trajectories for turn in traj.turns]
    masks: dict[int, list[np.ndarray]] = {}
    out = []
    for s in samples:
        tids = {t for t in s.turn_ids if t >= 0 and turns[t].constraint}
        if not tids:
            out.append(s)
            continue
        for t in tids - masks.keys():
            masks[t] = compiler.replay(turns[t].constraint, turns[t].response_ids)
        allowed: list[np.ndarray | None] = [None] * len(s.input_ids)
        seen: dict[int, int] = {}
        for pos, t in enumerate(s.turn_ids):
            if t in tids:
                allowed[pos] = masks[t][seen.get(t, 0)]
                seen[t] = seen.get(t, 0) + 1
        out.append(dataclasses.replace(s, allowed=tuple(allowed)))
    return out


def check_prefix(samples: Sequence[Sample]) -> list[Sample]:
    """``samples`` with the recorded states dropped where a token past them is predicted
    freely (after :func:`constrain`: the tokens the rollout never fed must be forced)."""
    return [
        s
        if s.prefix is None or tail_is_forced(len(s.prefix.states), s.loss_mask, s.allowed)
        else dataclasses.replace(s, prefix=None)
        for s in samples
    ]


def collate(samples: Sequence[Sample], pad_id: int = 0) -> TensorBatch:
    """Right-pad samples into a :class:`TensorBatch`."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    length = max(len(s.input_ids) for s in samples)
    b = len(samples)
    ids = torch.full((b, length), pad_id, dtype=torch.long)
    attn = torch.zeros((b, length), dtype=torch.long)
    mask = torch.zeros((b, length), dtype=torch.bool)
    old = torch.zeros((b, length), dtype=torch.float32)
    adv = torch.zeros((b, length), dtype=torch.float32)
    tid = torch.full((b, length), -1, dtype=torch.long)
    for row, s in enumerate(samples):
        n = len(s.input_ids)
        ids[row, :n] = torch.tensor(s.input_ids, dtype=torch.long)
        attn[row, :n] = 1
        mask[row, :n] = torch.tensor(s.loss_mask, dtype=torch.bool)
        old[row, :n] = torch.tensor(s.old_logprobs, dtype=torch.float32)
        adv[row, :n] = torch.tensor(s.advantages, dtype=torch.float32)
        tid[row, :n] = torch.tensor(s.turn_ids, dtype=torch.long)
    mask[:, 0] = False  # position 0 has no prediction
    allowed = _collate_allowed(samples, mask)
    return TensorBatch(ids, attn, mask, old, adv, tid, allowed, _collate_prefix(samples, length))


def _collate_prefix(samples: Sequence[Sample], length: int) -> Prefix | None:
    """The samples' recorded states right-padded with zeros to [B, length, D], when all have
    them at the same layer."""
    if any(s.prefix is None for s in samples) or len({s.prefix.layer for s in samples}) != 1:
        return None
    first = samples[0].prefix.states
    states = first.new_zeros(len(samples), length, first.shape[-1])
    for row, s in enumerate(samples):
        states[row, : len(s.prefix.states)] = s.prefix.states
    return Prefix(samples[0].prefix.layer, states)


def _collate_allowed(samples: Sequence[Sample], mask: torch.Tensor) -> torch.Tensor | None:
    """Packed allowed bitmasks [N, W] of the loss positions, row-major (see TensorBatch)."""
    if not any(s.allowed for s in samples):
        return None
    words = next(m.shape[0] for s in samples for m in s.allowed if m is not None)
    rows = []
    full = np.full(words, -1, dtype=np.int32)  # every bit set: unconstrained
    for row, s in enumerate(samples):
        for pos in torch.nonzero(mask[row]).flatten().tolist():
            m = s.allowed[pos] if s.allowed else None
            rows.append(full if m is None else m)
    return torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, words, dtype=torch.int32)


def micro_batches(samples: Sequence[Sample], max_tokens: int) -> list[list[Sample]]:
    """Group samples (sorted by length) so each group's padded size stays under ``max_tokens``.

    A sample longer than ``max_tokens`` forms a group of its own.
    """
    order = sorted(range(len(samples)), key=lambda i: len(samples[i].input_ids))
    groups: list[list[Sample]] = []
    current: list[Sample] = []
    for i in order:
        s = samples[i]
        longest = max([len(s.input_ids)] + [len(c.input_ids) for c in current])
        if current and longest * (len(current) + 1) > max_tokens:
            groups.append(current)
            current = []
        current.append(s)
    if current:
        groups.append(current)
    return groups
