"""Expert trajectories as training data: read them from runs, rebuild their tokens for a model.

A supervised warm start (:mod:`agentgym.trainers.sft`) trains the policy on the replies of
stored trajectories: an expert's (``agentgym rollout ENV --policy oracle``), a stronger model's,
the agent's own wins. Its loss must be −log π(reply) of the distribution the policy samples
from, so each reply is laid out exactly as the RL recipe's rollout would have fed and sampled
it:

- the chat is rebuilt with the recipe's action format (system prompt from the reset info, each
  observation with or without the action list, the history window), not the one the trajectory
  was collected with;
- prompt token ids follow the hf policy's convention (:class:`~agentgym.policy.token_prompts.
  PromptTracker`): the whole render on a new sequence, then per turn the increment of the
  render over what was fed and replied so far;
- each reply is ``tokens(reply) + [eos]``, the one token path a constrained choice has (the
  trie of :mod:`agentgym.constraint`), and what free or grammar-constrained generation ends
  with;
- under ``policy.decoding=constrained`` the turn keeps the constraint its info stated
  (admissible actions or reply grammar), so the trainer takes the same restricted log-softmax
  as for the policy's own turns.

A trajectory that already carries token ids (collected by an LLM policy) is kept as it is when
its reply tokens decode to its replies under this tokenizer; otherwise the ids belong to another
model and it is rebuilt. The rebuilt turns' ``response_logprobs`` are 0: the expert chose each
reply with probability 1 (a scripted policy is deterministic).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agentgym.constraint import ConstraintCompiler, ConstraintError, spec_from_info
from agentgym.data import Batch, Trajectory, Turn
from agentgym.policy.token_prompts import PromptTracker
from agentgym.prompting import ActionFormat
from agentgym.rollout import trim_window
from agentgym.store import Run


class ExpertDataError(ValueError):
    """The expert data cannot be used (none found, none won, none fits the constraint)."""


def read_trajectories(
    paths: Iterable[str | Path], *, won_only: bool = True, limit: int = 0
) -> list[Trajectory]:
    """Trajectories of every iteration of the runs at ``paths``, in order; faulted ones are
    left out, and lost ones too when ``won_only``. ``limit`` > 0 keeps the first ``limit``."""
    out: list[Trajectory] = []
    seen = 0
    for path in paths:
        for traj in Run(path).read_trajectories():
            seen += 1
            if traj.fault is None and traj.turns and (traj.won or not won_only):
                out.append(traj)
    if not out:
        what = "won, unfaulted" if won_only else "unfaulted"
        raise ExpertDataError(
            f"no {what} trajectories with turns among the {seen} in {list(map(str, paths))}; "
            "collect expert episodes with `agentgym rollout ENV --policy oracle --out RUN`"
            + (" or set sft.won_only=false" if won_only else "")
            + "."
        )
    return out[:limit] if limit > 0 else out


def reply_text(turn: Turn, fmt: ActionFormat) -> str:
    """The reply a policy in ``fmt`` gives for ``turn``'s action: the stored output when it
    parses to that action in ``fmt``, else the action written in ``fmt`` (plain: the action
    itself; tag: ``<action>…</action>``)."""
    if turn.output and fmt.parse(turn.output) == turn.action:
        return turn.output
    if fmt.name == "tag":
        return f"<action>{turn.action}</action>"
    return turn.action


def has_own_tokens(traj: Trajectory, tokenizer: Any) -> bool:
    """Whether every turn has token ids whose reply decodes to its output under ``tokenizer``
    (ids sampled by a policy of this tokenizer, usable as they are)."""
    for turn in traj.turns:
        if not turn.response_ids or len(turn.response_ids) != len(turn.response_logprobs):
            return False
        text = tokenizer.decode(list(turn.response_ids), skip_special_tokens=True)
        if text.strip() != turn.output.strip():
            return False
    return True


def rebuild(
    traj: Trajectory,
    tokenizer: Any,
    fmt: ActionFormat,
    *,
    constrained: bool,
    compiler: ConstraintCompiler | None = None,
    window: int | None = None,
) -> Trajectory:
    """``traj`` with the token data the recipe's policy would have had, had it given the same
    replies (see the module docstring). ``window``: the rollout's history window (None: full).

    Raises :class:`~agentgym.constraint.ConstraintError` when a reply is outside its turn's
    constraint (e.g. an expert action the env did not list as admissible).
    """
    if tokenizer.eos_token_id is None:
        raise ExpertDataError("rebuilding replies needs a tokenizer with an eos token")
    tracker = PromptTracker(tokenizer, history="full" if window is None else "window")
    info = traj.metadata.get("reset_info", {})
    messages = [{"role": "system", "content": fmt.system_prompt(info)}]
    turns = []
    for turn in traj.turns:
        messages.append({"role": "user", "content": fmt.observation(turn.observation, info)})
        plan = tracker.prepare(traj.traj_id, messages)
        reply = reply_text(turn, fmt)
        response = (*tracker.encode(reply), int(tokenizer.eos_token_id))
        spec = spec_from_info(info) if constrained else ""
        if spec and compiler is not None:
            compiler.replay(spec, response)  # raises when the reply is outside the constraint
        tracker.record(plan, response, ended_eos=True)
        turns.append(
            dataclasses.replace(
                turn,
                output=reply,
                prompt_ids=plan.prompt_ids,
                response_ids=response,
                response_logprobs=(0.0,) * len(response),
                new_sequence=plan.new_sequence,
                constraint=spec,
                advantages={},
            )
        )
        messages.append({"role": "assistant", "content": reply})
        if window is not None:
            trim_window(messages, window)
        info = turn.info
    meta = {
        **traj.metadata,
        "history": "full" if window is None else "window",
        "action_format": fmt.name,
        "list_actions": fmt.list_actions,
        "list_style": fmt.list_style,
        "system_prompt": messages[0]["content"],
        "rebuilt_from": traj.metadata.get("policy", "stored replies"),
    }
    return dataclasses.replace(traj, turns=tuple(turns), metadata=meta)


def expert_batch(
    trajectories: Sequence[Trajectory],
    tokenizer: Any,
    fmt: ActionFormat,
    *,
    constrained: bool,
    compiler: ConstraintCompiler,
    window: int | None = None,
) -> tuple[Batch, dict[str, int]]:
    """The trajectories with token data for ``tokenizer`` (kept when they already have it,
    rebuilt otherwise), and counts: ``kept``, ``rebuilt``, ``dropped`` (a reply outside its
    constraint)."""
    out, counts = [], {"kept": 0, "rebuilt": 0, "dropped": 0}
    for traj in trajectories:
        if has_own_tokens(traj, tokenizer):
            out.append(traj)
            counts["kept"] += 1
            continue
        try:
            out.append(
                rebuild(
                    traj,
                    tokenizer,
                    fmt,
                    constrained=constrained,
                    compiler=compiler,
                    window=window,
                )
            )
            counts["rebuilt"] += 1
        except ConstraintError:
            counts["dropped"] += 1
    if not out:
        raise ExpertDataError(
            f"none of the {len(trajectories)} trajectories fits the recipe's constraint (each "
            "had a reply outside its turn's admissible actions or grammar); collect them in the "
            "same environment, or train with policy.decoding=generate."
        )
    return Batch(tuple(out)), counts


__all__ = [
    "ExpertDataError",
    "expert_batch",
    "has_own_tokens",
    "read_trajectories",
    "rebuild",
    "reply_text",
]
