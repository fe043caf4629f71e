"""Collect groups of trajectories with a Policy.

:func:`collect` runs ``tasks x group_size`` environments. The members of group ``i`` all reset
with seed ``seed + i``, so they share the task and the initial state; credit compares within a
group. Each turn, the conversations of all live episodes go to the policy in one ``generate``
call; each output is parsed into an action and stepped in its environment.

The chat an episode shows the policy is::

    system     system_prompt(reset info)       (default: the action format's, with the task)
    user       fmt.observation(obs, info)      (the observation, the valid actions, a hint)
    assistant  raw output
    user       ...                            (repeated until the episode ends)

:func:`conversation_messages` rebuilds it from a stored :class:`Trajectory`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentgym import progress
from agentgym.core import INVALID, STATE_KEY, TASK, TASK_ID, WON
from agentgym.data import Batch, Trajectory, Turn
from agentgym.policy.base import Completion, Conversation, Policy, SamplingParams
from agentgym.pool import EnvPool, Outcome
from agentgym.prompting import ActionFormat
from agentgym.prompting import action_format as action_format_of
from agentgym.schema import jsonable

ActionParser = Callable[[str], str | None]
SystemPrompt = Callable[[dict], str]


@dataclass
class _Episode:
    """A live episode: its env's pool slot, the chat the policy sees, and the turns so far."""

    slot: int
    traj_id: str
    group_id: str
    seed: int
    conversation: Conversation
    obs: str
    """The latest observation, not yet acted on."""
    info: dict[str, Any]
    """The info that came with ``obs`` (its state key is the state the next action is taken in)."""
    reset_info: dict[str, Any]
    turns: list[Turn] = field(default_factory=list)
    done: bool = False
    fault: dict[str, Any] | None = None
    """Why the env ended the episode early: stage (reset/step), turn, reason."""


def collect(
    env_id: str,
    policy: Policy,
    *,
    tasks: int,
    group_size: int,
    seed: int = 0,
    max_turns: int | None = None,
    sampling: SamplingParams | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    group_prefix: str = "",
    action_format: str | ActionFormat = "plain",
    parse_action: ActionParser | None = None,
    system_prompt: SystemPrompt | None = None,
    history_window: int | None = None,
    workers: int | None = None,
    executor: str | None = None,
    step_timeout: float | None = None,
    pool: EnvPool | None = None,
) -> Batch:
    """Play ``tasks`` groups of ``group_size`` episodes of ``env_id`` with ``policy``.

    Group ``i`` resets with seed ``seed + i``; its group id is
    ``f"{group_prefix}{env_id}:{task_id}:{seed + i}"`` and its members' trajectory ids are
    ``f"{group_id}#{member}"`` (also the conversation keys). ``max_turns`` overrides the
    registered limit; ``env_kwargs`` go to :func:`agentgym.make`. ``action_format`` (see
    :mod:`agentgym.prompting`) sets the prompt text and the action parser; ``parse_action`` and
    ``system_prompt`` override its parts. ``parse_action`` turns an
    output into an action (default: the ``plain`` format of :mod:`agentgym.prompting`); when it returns None the raw
    output is sent and the turn is marked invalid. ``system_prompt`` builds the system message
    from the reset info (default: the ``plain`` format's). Finished episodes are passed to
    ``policy.end_episodes`` on the turn they end. Trajectories come in group order, members in
    order.

    ``history_window``: None shows the policy the whole conversation (``metadata["history"] ==
    "full"``); k shows only the system message and the last k turns (``"window"``, verl-agent
    style), so prompts stay short but each turn is a new sequence for the model.

    Environments live in an :class:`~agentgym.pool.EnvPool`: ``pool`` (kept by the caller, so
    instances are reused across calls; it must build ``env_id``, with ``env_kwargs`` and
    ``max_turns`` if they are given), else a pool for this call only, of ``workers`` workers of ``executor``
    (``"thread"`` by default when ``workers`` is set; without both, in this thread, as
    before) with ``step_timeout``. The envs of a turn step in parallel across workers.
    Faults are data: an env that raises (or hangs past ``step_timeout``) in reset or step ends
    that episode only; its trajectory keeps the turns it has and ``fault`` says why.
    """
    if history_window is not None and history_window < 0:
        raise ValueError(f"history_window must be >= 0 or None, got {history_window}")
    if tasks < 0 or group_size < 1:
        raise ValueError(f"need tasks >= 0 and group_size >= 1, got {tasks} and {group_size}")
    sampling = sampling or SamplingParams()
    fmt = action_format_of(action_format)
    parse = parse_action or fmt.parse
    kwargs = dict(env_kwargs or {})
    own_pool = pool is None
    if pool is None:
        pool = _call_pool(env_id, kwargs, max_turns, workers, executor, step_timeout)
    else:  # unless given, the environment's arguments are the pool's
        kwargs = pool.env_kwargs if env_kwargs is None else kwargs
        max_turns = pool.max_turns_arg if max_turns is None else max_turns
        _check_pool(pool, env_id, kwargs, max_turns, workers, executor, step_timeout)
    episodes: list[_Episode] = []
    live: list[_Episode] = []
    try:
        episodes = _start_episodes(
            pool, env_id, tasks, seed, group_size, group_prefix, fmt, system_prompt
        )
        live = [e for e in episodes if not e.done]
        label, turns = ("evaluation" if group_prefix.startswith("eval") else "rollout"), 0
        progress.report(label, len(episodes) - len(live), len(episodes), turns)
        while live:
            completions = policy.generate([e.conversation for e in live], sampling)
            if len(completions) != len(live):
                raise ValueError(
                    f"{type(policy).__name__}.generate returned {len(completions)} completions "
                    f"for {len(live)} conversations; it must return one per conversation."
                )
            acts = [_action(completion, parse) for completion in completions]
            steps = pool.step([e.slot for e in live], [action for _, action in acts])
            for episode, completion, act, step in zip(live, completions, acts, steps, strict=True):
                if step.fault is None:
                    _advance(episode, completion, *act, step.value, fmt, history_window)
                else:
                    _fault(episode, "step", step, act[1])
            finished = [e.traj_id for e in live if e.done]
            live = [e for e in live if not e.done]
            turns += 1
            progress.report(label, len(episodes) - len(live), len(episodes), turns)
            if finished:
                policy.end_episodes(finished)
    finally:
        if live:  # an exception stopped the rollout: release what the policy still holds
            policy.end_episodes([e.traj_id for e in live])
        if own_pool:
            pool.close()
    history = "full" if history_window is None else "window"
    return Batch(tuple(_trajectory(env_id, e, kwargs, history, fmt, pool) for e in episodes))


def _call_pool(
    env_id: str,
    env_kwargs: dict[str, Any],
    max_turns: int | None,
    workers: int | None,
    executor: str | None,
    step_timeout: float | None,
) -> EnvPool:
    """The pool of one collect call: in this thread unless workers or an executor are asked."""
    if executor in (None, "inline") and not workers:
        executor, workers = "inline", 1
    return EnvPool(
        env_id,
        env_kwargs=env_kwargs,
        max_turns=max_turns,
        workers=workers or 1,
        executor=executor or "thread",
        step_timeout=step_timeout,
    )


def _check_pool(
    pool: EnvPool,
    env_id: str,
    env_kwargs: dict[str, Any],
    max_turns: int | None,
    workers: int | None,
    executor: str | None,
    step_timeout: float | None,
) -> None:
    if not pool.matches(env_id, env_kwargs, max_turns):
        raise ValueError(
            f"the pool builds {pool.env_id} with {pool.env_kwargs} and max_turns="
            f"{pool.max_turns_arg}, but collect asks for {env_id} with {env_kwargs} and "
            f"max_turns={max_turns}; make a pool for this environment."
        )
    asked = {"workers": workers, "executor": executor, "step_timeout": step_timeout}
    differ = [k for k, v in asked.items() if v is not None and v != getattr(pool, k)]
    if differ:
        raise ValueError(
            f"collect got a pool and different {', '.join(differ)}; pass one or the other"
        )


def _start_episodes(
    pool: EnvPool,
    env_id: str,
    tasks: int,
    seed: int,
    group_size: int,
    group_prefix: str,
    fmt: ActionFormat,
    system_prompt: SystemPrompt | None,
) -> list[_Episode]:
    """Reset the ``group_size`` members of each of ``tasks`` groups (group ``i``: ``seed + i``),
    all at once. Member ``m`` of group ``i`` plays in slot ``i + m * stride`` (``stride``:
    ``tasks`` rounded up to a multiple of the pool's workers), so a group's members share a
    worker (and its per-process caches of the task), groups go round the workers, and the same
    call shape uses the same slots (instances) every time."""
    prompt = system_prompt or fmt.system_prompt
    stride = -(-tasks // pool.workers) * pool.workers
    slots = [i + m * stride for i in range(tasks) for m in range(group_size)]
    seeds = [seed + i for i in range(tasks) for _ in range(group_size)]
    resets = pool.reset(slots, seeds)
    episodes = []
    for i in range(tasks):
        members = resets[i * group_size : (i + 1) * group_size]
        task_ids = {str(r.value[1].get(TASK_ID, "")) for r in members if r.fault is None}
        if len(task_ids) > 1:
            raise RuntimeError(
                f"{env_id} gave different task ids {sorted(task_ids)} for the same seed "
                f"{seed + i}; the environment breaks the contract that a seed fixes the task "
                "(run check_env)."
            )
        group_id = f"{group_prefix}{env_id}:{task_ids.pop() if task_ids else ''}:{seed + i}"
        for member, reset in enumerate(members):
            slot = slots[i * group_size + member]
            traj_id = f"{group_id}#{member}"
            obs, info = reset.value if reset.fault is None else ("", {})
            messages = [
                {"role": "system", "content": prompt(info) if reset.fault is None else ""},
                {"role": "user", "content": fmt.observation(obs, info)},
            ]
            conversation = Conversation(key=traj_id, messages=messages, info=info)
            episode = _Episode(slot, traj_id, group_id, seed + i, conversation, obs, info, info)
            if reset.fault is None:
                conversation.env = pool.env(slot)
            else:
                _fault(episode, "reset", reset, None)
            episodes.append(episode)
    return episodes


def _fault(episode: _Episode, stage: str, outcome: Outcome, action: str | None) -> None:
    """End ``episode``: its env faulted in ``stage`` (the turns so far are kept)."""
    episode.done = True
    episode.fault = {
        "stage": stage,
        "turn": len(episode.turns),
        "reason": outcome.fault,
        "action": action,
    }


def _action(completion: Completion, parse: ActionParser) -> tuple[str | None, str]:
    """The parsed action of a reply (None if it did not parse) and what is sent to the env."""
    output = completion.text
    # a reply sampled under a constraint is already a valid action: it goes to the env verbatim
    parsed = output if completion.constraint else parse(output)
    action = output if parsed is None else parsed
    return parsed, action


def _advance(
    episode: _Episode,
    completion: Completion,
    parsed: str | None,
    action: str,
    step: tuple[str, float, bool, bool, dict[str, Any]],
    fmt: ActionFormat,
    window: int | None,
) -> None:
    """Record the turn that ``step`` (the env's answer to ``action``) ends; extend the chat."""
    output = completion.text
    obs, reward, terminated, truncated, info = step
    episode.turns.append(
        Turn(
            observation=episode.obs,
            output=output,
            action=action,
            reward=float(reward),
            terminated=bool(terminated),
            truncated=bool(truncated),
            state_key=str(episode.info.get(STATE_KEY, episode.obs)),
            invalid=parsed is None or bool(info.get(INVALID, False)),
            info=jsonable(info),
            prompt_ids=tuple(completion.prompt_ids),
            response_ids=tuple(completion.token_ids),
            response_logprobs=tuple(completion.logprobs),
            new_sequence=bool(completion.new_sequence),
            constraint=completion.constraint,
        )
    )
    messages = episode.conversation.messages
    messages.append({"role": "assistant", "content": output})
    episode.obs, episode.info = obs, info
    episode.conversation.info = info
    episode.done = bool(terminated or truncated)
    if not episode.done:
        messages.append({"role": "user", "content": fmt.observation(obs, info)})
        if window is not None:
            trim_window(messages, window)


def trim_window(messages: list[dict[str, str]], window: int) -> None:
    """Keep the system message, the last ``window`` (user, assistant) pairs and, when the
    chat ends with a new observation, that observation (in place)."""
    keep = 2 * window + (1 if messages and messages[-1]["role"] == "user" else 0)
    if len(messages) > 1 + keep:
        del messages[1 : len(messages) - keep]


def _trajectory(
    env_id: str,
    episode: _Episode,
    env_kwargs: dict[str, Any],
    history: str,
    fmt: ActionFormat,
    pool: EnvPool,
) -> Trajectory:
    reset_info = episode.reset_info
    system = episode.conversation.messages[0]["content"]
    return Trajectory(
        env_id=env_id,
        task_id=str(reset_info.get(TASK_ID, "")),
        seed=episode.seed,
        group_id=episode.group_id,
        turns=tuple(episode.turns),
        won=bool(episode.info.get(WON, False)),
        task=str(reset_info.get(TASK, "")),
        traj_id=episode.traj_id,
        env_kwargs=jsonable(env_kwargs),
        metadata={
            "system_prompt": system,
            "reset_info": jsonable(reset_info),
            "max_turns": pool.max_turns,
            "history": history,
            "action_format": fmt.name,
            "list_actions": fmt.list_actions,
            "list_style": fmt.list_style,
            **({"fault": episode.fault} if episode.fault else {}),
        },
        fault=episode.fault["reason"] if episode.fault else None,
    )


def conversation_messages(trajectory: Trajectory) -> list[dict[str, str]]:
    """The chat of a trajectory collected by :func:`collect`, as the policy saw it, rebuilt.

    System message, then for each turn the user observation (formatted with the valid actions
    of the info that came with it) and the assistant output.
    """
    meta = trajectory.metadata
    messages = [{"role": "system", "content": str(meta.get("system_prompt", ""))}]
    fmt = action_format_of(
        str(meta.get("action_format", "plain")),
        list_actions=bool(meta.get("list_actions", True)),
        list_style=str(meta.get("list_style", "bullets")),
    )
    info: Mapping[str, Any] = meta.get("reset_info", {})
    for turn in trajectory.turns:
        messages.append({"role": "user", "content": fmt.observation(turn.observation, info)})
        messages.append({"role": "assistant", "content": turn.output})
        info = turn.info
    return messages


__all__ = [
    "collect",
    "conversation_messages",
    "trim_window",
]
