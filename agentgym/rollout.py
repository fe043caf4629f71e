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

import gymnasium as gym

from agentgym.core import INVALID, STATE_KEY, TASK, TASK_ID, WON
from agentgym.data import Batch, Trajectory, Turn
from agentgym.policy.base import Completion, Conversation, Policy, SamplingParams
from agentgym.prompting import ActionFormat
from agentgym.prompting import action_format as action_format_of
from agentgym.registry import make
from agentgym.schema import jsonable

ActionParser = Callable[[str], str | None]
SystemPrompt = Callable[[dict], str]


@dataclass
class _Episode:
    """A live episode: its env, the chat the policy sees, and the turns so far."""

    env: gym.Env
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
    """
    if history_window is not None and history_window < 0:
        raise ValueError(f"history_window must be >= 0 or None, got {history_window}")
    if tasks < 0 or group_size < 1:
        raise ValueError(f"need tasks >= 0 and group_size >= 1, got {tasks} and {group_size}")
    sampling = sampling or SamplingParams()
    fmt = action_format_of(action_format)
    parse = parse_action or fmt.parse
    kwargs = dict(env_kwargs or {})
    episodes = [
        episode
        for i in range(tasks)
        for episode in _start_group(
            env_id, kwargs, max_turns, seed + i, group_size, group_prefix, fmt, system_prompt
        )
    ]
    live = episodes
    try:
        while live:
            completions = policy.generate([e.conversation for e in live], sampling)
            if len(completions) != len(live):
                raise ValueError(
                    f"{type(policy).__name__}.generate returned {len(completions)} completions "
                    f"for {len(live)} conversations; it must return one per conversation."
                )
            for episode, completion in zip(live, completions, strict=True):
                _advance(episode, completion, parse, fmt, history_window)
            finished = [e.traj_id for e in live if e.done]
            live = [e for e in live if not e.done]
            if finished:
                policy.end_episodes(finished)
    finally:
        if live:  # an exception stopped the rollout: release what the policy still holds
            policy.end_episodes([e.traj_id for e in live])
        for episode in episodes:
            episode.env.close()
    history = "full" if history_window is None else "window"
    return Batch(tuple(_trajectory(env_id, e, kwargs, history, fmt.name) for e in episodes))


def _start_group(
    env_id: str,
    env_kwargs: dict[str, Any],
    max_turns: int | None,
    seed: int,
    group_size: int,
    group_prefix: str,
    fmt: ActionFormat,
    system_prompt: SystemPrompt | None,
) -> list[_Episode]:
    """Build and reset the ``group_size`` members of one group (all with ``seed``)."""
    prompt = system_prompt or fmt.system_prompt
    resets = []
    for _ in range(group_size):
        env = make(env_id, max_turns=max_turns, **env_kwargs)
        resets.append((env, *env.reset(seed=seed)))
    task_ids = {str(info.get(TASK_ID, "")) for _, _, info in resets}
    if len(task_ids) != 1:
        raise RuntimeError(
            f"{env_id} gave different task ids {sorted(task_ids)} for the same seed {seed}; "
            "the environment breaks the contract that a seed fixes the task (run check_env)."
        )
    group_id = f"{group_prefix}{env_id}:{task_ids.pop()}:{seed}"
    episodes = []
    for member, (env, obs, info) in enumerate(resets):
        traj_id = f"{group_id}#{member}"
        messages = [
            {"role": "system", "content": prompt(info)},
            {"role": "user", "content": fmt.observation(obs, info)},
        ]
        conversation = Conversation(key=traj_id, messages=messages, info=info, env=env)
        episodes.append(_Episode(env, traj_id, group_id, seed, conversation, obs, info, info))
    return episodes


def _advance(
    episode: _Episode,
    completion: Completion,
    parse: ActionParser,
    fmt: ActionFormat,
    window: int | None,
) -> None:
    """Parse the policy's output, step the env, record the turn and extend the chat."""
    output = completion.text
    parsed = parse(output)
    action = output if parsed is None else parsed
    obs, reward, terminated, truncated, info = episode.env.step(action)
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
        )
    )
    messages = episode.conversation.messages
    messages.append({"role": "assistant", "content": output})
    episode.obs, episode.info = obs, info
    episode.conversation.info = info
    episode.done = bool(terminated or truncated)
    if not episode.done:
        messages.append({"role": "user", "content": fmt.observation(obs, info)})
        if window is not None and len(messages) > 2 + 2 * window:
            # system message + the last `window` (user, assistant) pairs + the new observation
            del messages[1 : len(messages) - 1 - 2 * window]


def _trajectory(
    env_id: str, episode: _Episode, env_kwargs: dict[str, Any], history: str, fmt_name: str
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
            "max_turns": getattr(episode.env, "max_turns", None),
            "history": history,
            "action_format": fmt_name,
        },
    )


def conversation_messages(trajectory: Trajectory) -> list[dict[str, str]]:
    """The chat of a trajectory collected by :func:`collect`, as the policy saw it, rebuilt.

    System message, then for each turn the user observation (formatted with the valid actions
    of the info that came with it) and the assistant output.
    """
    meta = trajectory.metadata
    messages = [{"role": "system", "content": str(meta.get("system_prompt", ""))}]
    fmt = action_format_of(str(meta.get("action_format", "plain")))
    info: Mapping[str, Any] = meta.get("reset_info", {})
    for turn in trajectory.turns:
        messages.append({"role": "user", "content": fmt.observation(turn.observation, info)})
        messages.append({"role": "assistant", "content": turn.output})
        info = turn.info
    return messages


__all__ = [
    "collect",
    "conversation_messages",
]
