"""ALFWorld: household tasks in text, played on TextWorld's PDDL engine as ``alfworld`` runs it.

Description
    The text version of ALFWorld (Shridhar et al., ICLR 2021). An ALFRED floor plan (kitchen,
    living room, bedroom, bathroom) with receptacles and objects; the agent must reach a goal of
    one of six task types: ``pick_and_place_simple``, ``look_at_obj_in_light``,
    ``pick_clean_then_place_in_recep``, ``pick_heat_then_place_in_recep``,
    ``pick_cool_then_place_in_recep``, ``pick_two_obj_and_place``. Games are either generated
    offline from the alfworld wheel (:mod:`agentgym.envs.alfworld_gen`, cached on disk; a seed
    always gives the same game) or read from a real ALFWorld data folder (``data_dir``). The
    engine is alfworld's: TextWorld's ``PddlEnv`` with alfworld's name demangler, in its faster
    form (:mod:`agentgym.envs.alfworld_fast`) unless ``fast=False``.

Actions
    Free text, one command per turn, e.g. ``go to countertop 1``, ``open fridge 1``,
    ``take apple 1 from fridge 1``, ``move apple 1 to countertop 1``, ``heat apple 1 with
    microwave 1``, ``clean ...``, ``cool ...``, ``use desklamp 1``, ``examine ...``, ``look``,
    ``inventory``. The text is cleaned before it reaches the engine: control characters are
    dropped, whitespace collapsed, letters lower-cased, a trailing ``.`` removed, and it is cut at
    200 characters. ``info["admissible_actions"]`` lists the engine's admissible commands.

Observations
    The engine's text. On reset: the welcome line, the room ("You are in the middle of a room.
    Looking quickly around you, you see ...") and the task ("Your task is to: ..."). A command
    that is not admissible changes nothing and is answered as the real game answers it,
    "Nothing happens.", with ``info["invalid"] = True``.

Rewards
    1.0 on the step that completes the task, 0.0 otherwise (ALFWorld's score).

Episode end
    ``terminated`` when the task is done; ``truncated`` by the turn limit of ``make`` (50 by
    default for the registered ids, ALFWorld's usual budget).

Info
    Besides the contract keys: ``task_type`` (for per-type success in evaluation), ``game_file``
    and ``split``. ``progress``: which sub-goals of the task hold (e.g. ``seen``, ``held``,
    ``cleaned``, ``at_receptacle``, ``placed``; :mod:`agentgym.envs.alfworld_progress`) and
    ``progress_count``: how many (all of them when won); ``reward.progress`` shapes with it.
    ``state_key`` hashes the sorted PDDL facts that can change (where things are,
    what is open, held, clean, hot, cool or on); "Nothing happens." repeats across states, the
    key does not. Left out: facts that never change, the bookkeeping fact ``checked`` that look
    and examine add (no precondition or goal reads it) and the engine's ``not_*`` copies of
    negative effects (the positive facts already say it), so closing what was opened gives back
    the key from before.

Arguments
    ``split``: ``train`` | ``valid_seen`` (in distribution) | ``valid_unseen`` (out of
    distribution: generated games use ALFRED's held-out floor plans). ``expert``: what
    ``oracle_action`` plays: ``planner`` (default: a shortest plan, which knows where every
    object is) or ``handcoded`` (alfworld's searching expert, which acts on what it has seen;
    :mod:`agentgym.envs.alfworld_expert`). ``task_types``: one name or
    a list (default all six; short names like ``pick_and_place`` or ``heat`` work).
    ``data_dir``: a real ALFWorld data folder (the ``ALFWORLD_DATA`` that ``alfworld-download``
    fills, or its ``json_2.1.1``); ``$VARS`` expand, so ``data_dir="$ALFWORLD_DATA"`` reads the
    environment variable. ``num_games``: generated games per task type that seeds cycle over
    (default: every seed its own game). ``fast``: use the faster engine (default True).

    Seeds: for generated games, seed ``s`` plays game ``s // k`` of task type ``s % k`` (``k``
    task types); for real games, game ``s % n`` of the sorted list. ``options={"game_file":
    path}`` plays a given ``game.tw-pddl``.

Version history
    v0: first version.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import textworld
from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
from textworld.envs import PddlEnv

from agentgym.core import ADMISSIBLE, INVALID, STATE_KEY, TASK, TASK_ID, WON, TextEnv
from agentgym.envs.alfworld_expert import EXPERTS, HandcodedExpert
from agentgym.envs.alfworld_fast import FastPddlEnv
from agentgym.envs.alfworld_games import generated_game, real_games, task_type_of
from agentgym.envs.alfworld_gen import SPLITS, TASK_TYPES, canonical_task_type
from agentgym.envs.alfworld_plan import expert_plan
from agentgym.envs.alfworld_progress import ProgressTracker, progress_info

MAX_COMMAND = 200
KEY_EXCLUDED = frozenset(  # facts that never change, and the bookkeeping fact ``checked``
    "cancontain receptacletype objecttype receptacleatlocation pickupable openable cleanable "
    "heatable coolable toggleable sliceable isreceptacleobject moveable checked".split()
)
_SPACES = re.compile(r"\s+")


def clean_command(action: str) -> str:
    """The command an action text stands for (see the Actions section)."""
    text = "".join(
        ch if unicodedata.category(ch)[0] != "C" else " " for ch in action[: 4 * MAX_COMMAND]
    )
    text = _SPACES.sub(" ", text).strip().lower()
    return text[:MAX_COMMAND].rstrip(".").strip()


def facts_key(facts: Any) -> str:
    """A short stable hash of the changeable PDDL facts of a state."""
    parts = sorted(
        str(f) for f in facts if f.name not in KEY_EXCLUDED and not f.name.startswith("not_")
    )
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=12).hexdigest()


def _task_types(task_types: str | Sequence[str] | None) -> tuple[str, ...]:
    if task_types is None:
        return TASK_TYPES
    names = [task_types] if isinstance(task_types, str) else list(task_types)
    if not names:
        raise ValueError(f"task_types is empty; choose among {', '.join(TASK_TYPES)}.")
    return tuple(dict.fromkeys(canonical_task_type(n) for n in names))


class ALFWorldEnv(TextEnv):
    """ALFWorld text games (see the module docstring for the full description)."""

    def __init__(
        self,
        split: str = "train",
        task_types: str | Sequence[str] | None = None,
        data_dir: str | None = None,
        num_games: int | None = None,
        fast: bool = True,
        expert: str = "planner",
    ):
        if expert not in EXPERTS:
            raise ValueError(f"Unknown expert {expert!r}; choose one of {', '.join(EXPERTS)}.")
        self.expert = expert
        self._handcoded: HandcodedExpert | None = None
        self.task_types = _task_types(task_types)
        self.split = split
        self.num_games = num_games
        self.fast = fast
        self._real: list[Path] | None = None
        if data_dir is not None:
            self._real = real_games(data_dir, split, self.task_types)
            if not self._real:
                raise FileNotFoundError(
                    f"No solvable ALFWorld games of {self.task_types} in {data_dir}."
                )
        elif split not in SPLITS:
            raise ValueError(f"Unknown split {split!r}; known: {', '.join(SPLITS)}.")
        if num_games is not None and num_games < 1:
            raise ValueError(f"num_games must be at least 1, got {num_games}.")
        infos = textworld.EnvInfos(admissible_commands=True, won=True)
        self._engine = AlfredDemangler((FastPddlEnv if fast else PddlEnv)(infos), shuffle=False)
        self._loaded: Path | None = None
        self._state: Any = None
        self._traj: dict[str, Any] = {}
        self._plan: list[str] | None = None
        self._walkthrough: list[str] | None = None

    # -- choosing a game ----------------------------------------------------------------------
    def game_for_seed(self, seed: int) -> tuple[Path, str]:
        """The game file a seed plays and its task id."""
        if self._real is not None:
            path = self._real[seed % len(self._real)]
            return path, f"alfworld/real/{self.split}/{path.parent.parent.name}/{path.parent.name}"
        kinds = len(self.task_types)
        task_type, game = self.task_types[seed % kinds], seed // kinds
        if self.num_games is not None:
            game %= self.num_games
        path = generated_game(self.split, task_type, game)
        return path, f"alfworld/gen/{self.split}/{task_type}/{game:06d}"

    # -- TextEnv ------------------------------------------------------------------------------
    def _reset(self, seed: int | None, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if "game_file" in options:
            path = Path(options["game_file"])
            task_id = str(options.get(TASK_ID, path.parent))
        else:
            if seed is None:
                seed = int(self.np_random.integers(2**31 - 1))
            path, task_id = self.game_for_seed(int(seed))
        if path != self._loaded:
            self._engine.load(str(path))
            self._loaded = path
            self._traj = json.loads((path.parent / "traj_data.json").read_text())
            # A generated game's walkthrough is the planner's plan from the start; a real game's
            # comes from alfworld's hand-coded explorer, so the oracle replans instead.
            generated = bool(self._traj.get("generator"))
            self._walkthrough = (
                json.loads(path.read_text()).get("walkthrough") if generated else None
            )
        self._state = self._engine.reset()
        self._progress = ProgressTracker(self._traj.get("pddl_params", {}), self.task_type)
        self._plan = list(self._walkthrough) if self._walkthrough else None
        obs = self._state.feedback
        if self.expert == "handcoded":
            self._handcoded = HandcodedExpert(path, seed=int(seed or 0))
            self._handcoded.observe_reset(obs)
        match = re.search(r"Your task is to: (.*)", obs)
        info = {
            TASK: match.group(1).strip() if match else "",
            TASK_ID: task_id,
            **self._info(False),
        }
        return obs, info

    def _step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        command = clean_command(action)
        invalid = command not in self._state["admissible_commands"]
        self._state, _, done = self._engine.step(command)
        self._follow_plan(command, invalid)
        if self._handcoded is not None:
            self._handcoded.stepped(command)
        won = bool(self._state["won"])
        return self._state.feedback, float(won), bool(done and won), False, self._info(invalid)

    def _info(self, invalid: bool) -> dict[str, Any]:
        return {
            WON: bool(self._state["won"]),
            ADMISSIBLE: list(self._state["admissible_commands"]),
            INVALID: invalid,
            STATE_KEY: self._current_state_key(),
            "task_type": self.task_type,
            "game_file": str(self._loaded),
            "split": self.split,
            **progress_info(self._progress.update(self._engine.unwrapped._pddl_state.facts)),
        }

    def _current_state_key(self) -> str:
        return "alfworld:" + facts_key(self._engine.unwrapped._pddl_state.facts)

    @property
    def task_type(self) -> str:
        """Task type of the loaded game."""
        return str(self._traj.get("task_type", "")) or (
            task_type_of(self._loaded) if self._loaded else ""
        )

    # -- oracle -------------------------------------------------------------------------------
    def _follow_plan(self, command: str, invalid: bool) -> None:
        if invalid or self._plan is None:
            return
        if self._plan and command == self._plan[0]:
            self._plan.pop(0)
        else:
            self._plan = None  # off the plan: replan on the next oracle call

    def oracle_action(self) -> str | None:
        """Next command of the expert plan: the game's walkthrough while the agent follows it,
        else a plan from the current state by the engine's planner (Fast Downward) on the
        task's relevant part (:func:`agentgym.envs.alfworld_plan.expert_plan`)."""
        if self._state is None or self._state["won"]:
            return None
        if self._handcoded is not None:  # expert="handcoded": the searching expert
            return self._handcoded.action(self._state, self._engine)
        if self._plan is None:
            params = self._traj.get("pddl_params", {})
            self._plan = expert_plan(self._engine, params, self.task_type) or []
        return self._plan[0] if self._plan else None

    def close(self) -> None:
        """Drop the engine. Its copy of the planner library (about 34 MB) stays loaded until the
        process exits, as with textworld's own PDDL env: unloading copies with ``dlclose``
        crashes the interpreter at exit once several have been loaded."""
        self._engine = None  # type: ignore[assignment]
        super().close()
