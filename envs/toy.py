"""Toy text environments for tests and demos: small, deterministic, with a BFS oracle.

:class:`FiniteTextEnv` is the shared machinery: a TextEnv over a small finite state machine whose
subclasses only say which actions a state admits and where each leads. It gives action parsing,
invalid-action observations, ``info`` keys and a shortest-path oracle. :class:`KeyDoorEnv` is the
key-and-door family; the maze lives in ``agentgym.envs.toy_maze``.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Hashable
from typing import Any, ClassVar

from agentgym.core import ADMISSIBLE, INVALID, STATE_KEY, TASK, TASK_ID, WON, TextEnv

DIRECTIONS = ("north", "south", "east", "west")

# Short forms accepted by every toy env, mapped to their canonical command.
ALIASES = {
    **{d: f"go {d}" for d in DIRECTIONS},
    **{d[0]: f"go {d}" for d in DIRECTIONS},
    "l": "look",
    "i": "inventory",
}


def normalize_action(action: str) -> str:
    """Canonical form of a command: lower case, single spaces, no trailing ``.`` or ``!``."""
    text = " ".join(action.lower().split()).rstrip(".!").strip()
    return ALIASES.get(text, text)


class FiniteTextEnv(TextEnv):
    """A TextEnv over a small deterministic state machine, with a breadth-first oracle.

    Subclasses implement ``_new_task`` (initial state, task text, task id), ``_admissible``
    (actions valid in a state; ``[]`` once the episode is over), ``_transition`` (next state,
    observation, reward, won) for an admissible action, ``_describe`` (what ``look`` shows) and
    ``_key`` (the state key). States must be hashable. An action is parsed with
    :func:`normalize_action`; one that is not admissible in the current state changes nothing,
    gets reward 0 and an observation naming the valid commands, and sets ``info["invalid"]``.
    """

    commands: ClassVar[tuple[str, ...]] = ()
    """Every command of the env's grammar, admissible or not (for the invalid-action message)."""

    _state: Hashable = None

    # -- to implement -------------------------------------------------------------------------
    def _new_task(self, options: dict[str, Any]) -> tuple[Hashable, str, str]:
        raise NotImplementedError

    def _admissible(self, state: Any) -> list[str]:
        raise NotImplementedError

    def _transition(self, state: Any, action: str) -> tuple[Hashable, str, float, bool]:
        raise NotImplementedError

    def _describe(self, state: Any) -> str:
        raise NotImplementedError

    def _key(self, state: Any) -> str:
        raise NotImplementedError

    # -- TextEnv ------------------------------------------------------------------------------
    def _reset(self, seed: int | None, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._state, task, task_id = self._new_task(options)
        return self._describe(self._state), {TASK: task, TASK_ID: task_id, **self._state_info()}

    def _step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        command = normalize_action(action)
        admissible = self._admissible(self._state)
        if command not in admissible:
            obs = self._invalid(command, admissible)
            return obs, 0.0, False, False, {INVALID: True, **self._state_info()}
        self._state, obs, reward, won = self._transition(self._state, command)
        return obs, reward, won, False, {WON: won, **self._state_info()}

    def _current_state_key(self) -> str:
        return self._key(self._state)

    def oracle_action(self) -> str | None:
        """First action of a shortest winning path from the current state (BFS), or None.

        Ties are broken by the order of the admissible actions, so the oracle is deterministic.
        """
        first: dict[Hashable, str] = {self._state: ""}
        queue = deque([self._state])
        while queue:
            state = queue.popleft()
            for action in self._admissible(state):
                nxt, _, _, won = self._transition(state, action)
                root_action = first[state] or action
                if won:
                    return root_action
                if nxt not in first:
                    first[nxt] = root_action
                    queue.append(nxt)
        return None

    # -- helpers ------------------------------------------------------------------------------
    def _state_info(self) -> dict[str, Any]:
        return {ADMISSIBLE: self._admissible(self._state), STATE_KEY: self._key(self._state)}

    def _invalid(self, command: str, admissible: list[str]) -> str:
        if command in self.commands:
            why = f'"{command}" is not possible here.'
        elif not command:
            why = "You did not give a command."
        else:
            shown = "".join(ch if ch.isprintable() else "?" for ch in command[:40])
            shown += "..." if len(command) > 40 else ""
            why = f'I don\'t understand "{shown}".'
        valid = ", ".join(admissible) if admissible else "(none)"
        return f"{why} Valid commands: {valid}."


class KeyDoorEnv(FiniteTextEnv):
    """Find a key in a row of rooms, unlock the iron door and escape through it.

    ## Description

    ``n_rooms`` rooms stand in a row from west to east. The easternmost room (the gatehouse) has
    a locked iron door leading north. A brass key lies in one room. The agent must fetch the key,
    open the door and go north through it. The seed picks the key's room and the start room
    (the layout); rooms other than the gatehouse look alike ("a dusty hallway"), and messages
    such as "You are carrying nothing." or "The iron door is locked. Nothing happens." repeat
    across different states, so ``info["state_key"]`` names the true state:
    ``"room={r};key={k};door={d}"`` with ``k`` the key's room or ``held`` and ``d`` ``locked`` or
    ``open`` (``"outside"`` once escaped).

    ## Actions

    Free text, parsed case- and whitespace-insensitively (a trailing ``.`` or ``!`` is ignored):
    ``look``, ``inventory``, ``go east``, ``go west``, ``take key``, ``open door``, ``go north``
    (through the open door). Short forms: ``east``/``e`` etc. for ``go east``, ``l`` for
    ``look``, ``i`` for ``inventory``. ``info["admissible_actions"]`` lists the commands valid in
    the current state. A malformed or impossible action (unknown text, a wall, no key here)
    changes nothing and is answered with what was wrong and the valid commands, e.g.
    ``'"go west" is not possible here. Valid commands: look, inventory, go east.'``, with
    ``info["invalid"] = True``; the episode goes on.

    ## Observations

    Plain text: the room after ``reset``, ``look`` and moves ("You are in a dusty hallway. A brass
    key lies on the floor. Exits: west, east."), or the outcome of the action.

    ## Rewards

    1 on the step that escapes through the door, 0 otherwise (invalid actions included).

    ## Episode end

    Terminated when the agent escapes (``info["won"] = True``). Truncation is left to the
    ``max_turns`` limit of :func:`agentgym.make`. The shortest solution takes at most
    ``2 * (n_rooms - 1) + 3`` steps.

    ## Arguments

    - ``n_rooms`` (int, >= 1): number of rooms. Registered: Small 3, Medium 5, Large 8.
    - ``reset(options={"task_id": "keydoor-5-k1-s3"})`` chooses the layout by task id (key in
      room 1, start in room 3, rooms numbered from 0 in the west).

    ## Version history

    - v0: initial version.
    """

    commands = (
        "look",
        "inventory",
        "go east",
        "go west",
        "go north",
        "go south",
        "take key",
        "open door",
    )
    _TASK_ID = re.compile(r"keydoor-(\d+)-k(\d+)-s(\d+)")

    def __init__(self, n_rooms: int = 3):
        if n_rooms < 1:
            raise ValueError(f"n_rooms must be at least 1, got {n_rooms}")
        self.n_rooms = int(n_rooms)
        self.key_room = 0

    # State: (room, holding the key, door open, escaped).
    def _new_task(self, options: dict[str, Any]) -> tuple[Hashable, str, str]:
        if "task_id" in options:
            key_room, start = self._parse_task_id(str(options["task_id"]))
        else:
            key_room, start = (int(x) for x in self.np_random.integers(self.n_rooms, size=2))
        self.key_room = key_room
        task = (
            f"You are in a row of {self.n_rooms} rooms. Find the brass key, unlock the iron door "
            "in the easternmost room and escape north through it."
        )
        return (start, False, False, False), task, f"keydoor-{self.n_rooms}-k{key_room}-s{start}"

    def _parse_task_id(self, task_id: str) -> tuple[int, int]:
        m = self._TASK_ID.fullmatch(task_id)
        if not m or int(m[1]) != self.n_rooms or max(int(m[2]), int(m[3])) >= self.n_rooms:
            raise ValueError(
                f"Task id {task_id!r} does not name a layout of this env; expected "
                f"'keydoor-{self.n_rooms}-k<key room>-s<start room>' with rooms "
                f"0..{self.n_rooms - 1}."
            )
        return int(m[2]), int(m[3])

    def _admissible(self, state: tuple[int, bool, bool, bool]) -> list[str]:
        room, held, door_open, escaped = state
        if escaped:
            return []
        actions = ["look", "inventory"]
        if room > 0:
            actions.append("go west")
        if room < self.n_rooms - 1:
            actions.append("go east")
        if room == self.key_room and not held:
            actions.append("take key")
        if room == self.n_rooms - 1:
            actions.append("go north" if door_open else "open door")
        return actions

    def _transition(
        self, state: tuple[int, bool, bool, bool], action: str
    ) -> tuple[Hashable, str, float, bool]:
        room, held, door_open, _ = state
        if action == "look":
            return state, self._describe(state), 0.0, False
        if action == "inventory":
            carried = "a brass key" if held else "nothing"
            return state, f"You are carrying {carried}.", 0.0, False
        if action in ("go east", "go west"):
            nxt = (room + (1 if action == "go east" else -1), held, door_open, False)
            return nxt, f"You {action}. {self._describe(nxt)}", 0.0, False
        if action == "take key":
            return (room, True, door_open, False), "You take the brass key.", 0.0, False
        if action == "open door" and not held:
            return state, "The iron door is locked. Nothing happens.", 0.0, False
        if action == "open door":
            obs = "You unlock the iron door with the brass key. It swings open to the north."
            return (room, held, True, False), obs, 0.0, False
        # "go north" through the open door.
        obs = "You step through the door into daylight. You escaped!"
        return (room, held, door_open, True), obs, 1.0, True

    def _describe(self, state: tuple[int, bool, bool, bool]) -> str:
        room, held, door_open, escaped = state
        if escaped:
            return "You are outside in the daylight."
        gatehouse = room == self.n_rooms - 1
        parts = ["You are in the gatehouse." if gatehouse else "You are in a dusty hallway."]
        if room == self.key_room and not held:
            parts.append("A brass key lies on the floor.")
        exits = [d for d, ok in (("west", room > 0), ("east", not gatehouse)) if ok]
        if gatehouse:
            parts.append(
                "The iron door to the north stands open."
                if door_open
                else "A locked iron door leads north."
            )
            exits += ["north"] if door_open else []
        parts.append(f"Exits: {', '.join(exits) or 'none'}.")
        return " ".join(parts)

    def _key(self, state: tuple[int, bool, bool, bool]) -> str:
        room, held, door_open, escaped = state
        if escaped:
            return "outside"
        key = "held" if held else str(self.key_room)
        return f"room={room};key={key};door={'open' if door_open else 'locked'}"
