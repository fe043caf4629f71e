"""ALFWorld's hand-coded expert, the one that searches: an oracle a student can imitate.

The planner's plan (:mod:`agentgym.envs.alfworld_plan`) knows where every object is: its first
command goes straight to the receptacle holding the target, which nothing in the observations
tells. A policy imitating it learns to guess. The ``alfworld`` package also ships the expert
ALFWorld's own agents were trained with (BUTLER's DAgger teacher,
``alfworld.agents.expert.HandCodedTWAgent``): it knows the task's parameters (the object and
receptacle types, as the goal text says) and otherwise acts on what it has seen: it visits the
receptacles where that kind of object is usually found (ALFRED's object-receptacle table),
opens closed ones, takes the object once it sees it, then goes to the target receptacle and
puts it there. Every command it gives follows from the observations so far, so full-history
imitation can learn it; it is not guaranteed to win or to be shortest.

:class:`HandcodedExpert` drives that agent from an :class:`~agentgym.envs.alfworld.ALFWorldEnv`
(``expert="handcoded"``): the env tells it each executed command and the new engine state, and
asks it for the next command. Its random choices (which of two equal objects to take) draw from
a stream of the episode's own, so a seed gives the same expert episode.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from alfworld.agents.expert.handcoded_expert import HandCodedAgentFailed, HandCodedAgentTimeout
from alfworld.agents.expert.handcoded_expert_tw import HandCodedTWAgent

EXPERTS = ("planner", "handcoded")


class HandcodedExpert:
    """ALFWorld's hand-coded searching expert for one episode of a loaded game.

    Args:
        game_file: the ``game.tw-pddl`` being played (its ``traj_data.json`` beside it names
            the task's parameters).
        seed: seeds the expert's own random choices.
        max_steps: the agent gives up (None) after this many commands.
    """

    def __init__(self, game_file: str | Path, seed: int = 0, max_steps: int = 200) -> None:
        self._agent = HandCodedTWAgent(max_steps=max_steps)
        self._agent.reset(str(game_file))
        self._rng = random.Random(seed)
        self._last = ""
        self._next: str | None = None
        self._asked = False
        self._failed = False

    def observe_reset(self, feedback: str) -> None:
        """The reset observation (it lists the receptacles of the room)."""
        self._agent.observe(feedback)
        self._next, self._asked = "look", True  # alfworld's expert starts with a look

    def stepped(self, command: str) -> None:
        """A command was executed (whoever chose it); the next :meth:`action` accounts for it."""
        self._last, self._asked = command, False

    def action(self, state: Any, engine: Any) -> str | None:
        """The expert's next command in the engine's current ``state`` (asked once per step;
        None when it gave up)."""
        if self._asked or self._failed:
            return self._next
        self._asked = True
        game_state = {
            "feedback": state.feedback,
            "admissible_commands": list(state["admissible_commands"]),
            "won": bool(state["won"]),
            "facts": named_facts(engine),
        }
        outer = random.getstate()
        random.setstate(self._rng.getstate())
        try:
            command = self._agent.act(game_state, 0, game_state["won"], self._last)
        except (HandCodedAgentFailed, HandCodedAgentTimeout, IndexError, KeyError):
            self._failed, command = True, None
        finally:
            self._rng.setstate(random.getstate())
            random.setstate(outer)
        self._next = command
        return command


def named_facts(engine: Any) -> list[SimpleNamespace]:
    """The engine's current PDDL facts with readable argument names (``book 1``), as the
    hand-coded agent reads them (``fact.name``, ``fact.names``)."""
    infos = engine._entity_infos  # the demangler's names (AlfredDemangler.load)
    facts = engine.unwrapped._pddl_state.facts
    return [
        SimpleNamespace(
            name=f.name,
            names=[infos[a.name].name if a.name in infos else a.name for a in f.arguments],
        )
        for f in facts
    ]


__all__ = ["EXPERTS", "HandcodedExpert", "named_facts"]
