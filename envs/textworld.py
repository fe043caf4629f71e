"""TextWorld games (Microsoft TextWorld 1.7) as agentgym environments.

Games come from TextWorld's own generator (no downloads), cached on disk by
:mod:`agentgym.envs.textworld_games`, or from the user's own TextWorld game files.
"""

from __future__ import annotations

import os
import re
import unicodedata
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import textworld

from agentgym.core import ADMISSIBLE, INVALID, STATE_KEY, TASK, TASK_ID, WON, TextEnv
from agentgym.envs.textworld_games import GameSpec, ensure_games

LOST = "lost"
"""``info`` key: True once the game is lost (e.g. a ruined meal in the cooking games)."""
SCORE = "score"
"""``info`` key: the game's running score."""
MAX_SCORE = "max_score"
"""``info`` key: the highest score the game can give."""

MAX_ACTION_BYTES = 190
"""Longer actions are cut to this many UTF-8 bytes (Jericho truncates input at 198 bytes)."""
META_VERBS = frozenset(
    {"restart", "quit", "q", "save", "restore", "script", "unscript", "transcript"}
    | {"noscript", "again", "g", "undo"}
)
"""Interpreter commands that would leave the game waiting for a yes/no answer, write files,
repeat TextWorld's hidden tracing command, or rewind the game behind the state tracker."""
ENGINE_INFOS = dict(admissible_commands=True, won=True, lost=True, score=True, max_score=True)
"""What the engine computes per step (``objective`` comes with every TextWorld game)."""
DEFAULT_TASK = "Play the game and score as many points as you can."

_PROMPT_TAIL = re.compile(r"\n>[^\n]*\Z")
_END_QUESTION = "Would you like to RESTART, RESTORE a saved game, QUIT or UNDO the last command?"
_CLAUSE = re.compile(r"[.,;!?]|\bthen\b")
_BLANK_LINES = re.compile(r"\n{3,}")
_AMBIGUOUS = re.compile(r"\s*(Which|Who) do you mean")
_TAKE_FROM = re.compile(r"take (.+) from .+")
_FACT_NAMES: dict[Any, str] = {}


def clean_feedback(text: str) -> str:
    """The game's text without the ASCII-art banner, the prompt, the status line and the
    post-game "Would you like to RESTART ..." question; runs of blank lines squeezed to one."""
    text = _PROMPT_TAIL.sub("", text.replace(_END_QUESTION, ""))
    lines = text.split("\n")
    start = 0
    while start < len(lines) and not any(ch.isalnum() for ch in lines[start]):
        start += 1
    return _BLANK_LINES.sub("\n\n", "\n".join(line.rstrip() for line in lines[start:])).strip()


def sanitize_action(action: str) -> str:
    """The command sent to the game: whitespace runs (newlines included) become one space,
    other control, format, surrogate and private-use characters are dropped, and the result is
    cut to :data:`MAX_ACTION_BYTES`. The Z-machine hangs on a NUL and a newline would queue a
    second command, so neither may reach it."""
    action = action[: 4 * MAX_ACTION_BYTES]
    action = action.replace("\\", " ")  # dumb-frotz reads "\\..." as its own escapes
    if not (action.isascii() and action.isprintable()):
        action = "".join(
            " " if ch.isspace() else ch
            for ch in action
            if ch.isspace() or unicodedata.category(ch)[0] != "C"
        )
    action = " ".join(action.split())
    if len(action) > MAX_ACTION_BYTES // 4:
        action = action.encode()[:MAX_ACTION_BYTES].decode("utf-8", "ignore")
    return action.strip()


def is_meta_command(command: str) -> bool:
    """True if any clause of ``command`` starts with an interpreter verb of :data:`META_VERBS`
    or any word is one of TextWorld's hidden ``tw-...`` commands."""
    lowered = command.lower()
    if "tw-" in lowered:
        return True
    return any(
        clause.split()[0] in META_VERBS for clause in _CLAUSE.split(lowered) if clause.split()
    )


def _normalize(command: str) -> str:
    return " ".join(command.lower().split()).rstrip(".!").strip()


def state_key_of(facts: Any) -> str:
    """Canonical state key: the engine's world facts (propositions) as text, sorted, joined by
    ``"; "``. Propositions compare by name and arguments, so their text is memoized."""
    names = []
    for fact in facts:
        name = _FACT_NAMES.get(fact)
        if name is None:
            if len(_FACT_NAMES) > 200_000:
                _FACT_NAMES.clear()
            name = _FACT_NAMES[fact] = str(fact)
        names.append(name)
    names.sort()
    return "; ".join(names)


def _check_game_file(path: Path) -> Path:
    if path.suffix == ".ulx":
        raise ValueError(
            f"{path}: Glulx (.ulx) games are not supported by TextWorld 1.7, which agentgym "
            "uses; regenerate the game with `tw-make ... --format z8` (TextWorld >= 1.7)."
        )
    if not re.fullmatch(r"\.z[1-8]", path.suffix):
        raise ValueError(f"{path}: expected a TextWorld game file ending in .z8 (or .z1-.z7).")
    if not path.is_file():
        raise FileNotFoundError(f"TextWorld game file {path} does not exist.")
    if not path.with_suffix(".json").is_file():
        raise FileNotFoundError(
            f"{path.with_suffix('.json')} is missing: TextWorld writes it next to the game file "
            "and agentgym needs it for the admissible actions, the state key and the oracle. "
            "Use games made by TextWorld (tw-make) and keep the .json beside the game."
        )
    return path


def _start(path: Path, infos: textworld.EnvInfos) -> Any:
    """``textworld.start`` without Jericho's warning that TextWorld games are "not fully
    supported" (Jericho's own score tracking; TextWorld's wrappers track the score)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not fully supported")
        return textworld.start(str(path), infos)


class TextWorldEnv(TextEnv):
    """A TextWorld text adventure: generated (custom world or a TextWorld challenge) or a file.

    ## Description

    The agent plays a parser-based text game made by Microsoft TextWorld: move between rooms,
    take, open, unlock, cook... until the quest is done. Games are generated locally with
    TextWorld's generator for a ``family`` and its knobs (see
    :data:`agentgym.envs.textworld_games.FAMILY_DEFAULTS`) and cached on disk, so a second
    ``make`` is fast. The seed passed to ``reset`` picks the game: generation seed ``seed``, or
    ``seed % num_games`` with a fixed pool of ``num_games`` games; a game is generated (1-5 s,
    in a child process) the first time its seed is used. Unseeded resets draw the game from
    the env's RNG (over the pool, or over 0..65535). The task id is
    ``tw-<family>-<knobs>-s<generation seed>``, or the file name's stem for ``game_files``.

    ## Actions

    One free-text command per step, as typed at the game's prompt (``go north``, ``take key
    from chest``, ``open door``). Before it reaches the game, whitespace runs become one space,
    control characters and backslashes (the interpreter's own escapes, some of which hang it)
    are dropped and it is cut to 190 UTF-8 bytes. ``info["invalid"]`` is True when the command
    (lower-cased, whitespace collapsed, trailing ``.``/``!`` dropped) is not one of
    ``info["admissible_actions"]``, the engine's list of valid commands; such a command still
    goes to the game, which answers it as the real game would ("That's not a verb I
    recognise."), so a synonym the parser understands (``n``, ``get key``) still acts but is
    flagged. Two kinds never reach the game and get an explanation instead: a command that is
    empty after cleaning, and interpreter commands (``restart``, ``quit``, ``save``,
    ``restore``, ``undo``, ``again``, ``script``, TextWorld's ``tw-...``) that would stall the
    game or desynchronise its state tracking.

    ## Observations

    The game's text, without TextWorld's ASCII-art banner, the prompt and the status line. On
    reset: the objective (the task, also in ``info["task"]``) followed by the first room.

    ## Rewards

    The change of the game's score on each step (TextWorld games give points for quest
    milestones; most end with the final point). Winning is ``info["won"]``.

    ## Episode end

    Terminated when the game is won or lost (``info["won"]``, ``info["lost"]``). Truncation is
    the ``max_turns`` limit of :func:`agentgym.make`.

    ``info["state_key"]`` is the engine's set of world facts (``at(P, r_0: r); closed(c_0:
    c); ...``) sorted into one string, so states that print the same text ("You can't go that
    way.") keep distinct keys. Extra info keys: ``lost``, ``score``, ``max_score``.
    ``oracle_action()`` follows the game's walkthrough while the episode has followed it, and
    otherwise the first of the engine's policy commands from the current state (computed on
    demand in a second engine that replays the episode's commands). When the game answers a
    "take X from Y" with "Which do you mean ...?" (generated games may name one object with the
    words of another), the oracle says "take X".

    ## Arguments

    - ``family``: ``custom``, ``simple``, ``coin_collector``, ``treasure_hunter`` or ``cooking``.
    - ``**knobs``: the family's difficulty knobs, e.g. ``level=10`` or ``world_size=3,
      nb_objects=5, quest_length=3`` or ``recipe=2, take=2, go=6, open=True, cook=True``.
    - ``num_games``: size of a fixed pool of games (``None``: every seed is its own game).
    - ``game_files``: paths of TextWorld ``.z8`` games (each with its ``.json``) to play instead
      of generated ones; the seed picks ``game_files[seed % len(game_files)]``.
    - ``cache_dir``: where generated games live (default ``$AGENTGYM_CACHE/textworld`` or
      ``~/.cache/agentgym/textworld``).
    - ``max_loaded_games``: games kept loaded in memory (a reset of a loaded game takes ~10 ms,
      loading one ~30 ms).
    - ``reset(options={"task_id": ...})`` picks the game by task id.

    ## Version history

    - v0: initial version (TextWorld 1.7.0).
    """

    def __init__(
        self,
        family: str = "custom",
        *,
        num_games: int | None = None,
        game_files: str | os.PathLike[str] | list[str | os.PathLike[str]] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        max_loaded_games: int = 4,
        **knobs: Any,
    ):
        if num_games is not None and num_games < 1:
            raise ValueError(f"num_games must be a positive int or None, got {num_games!r}")
        if isinstance(game_files, (str, os.PathLike)):
            game_files = [game_files]
        self.files = [_check_game_file(Path(p).expanduser()) for p in game_files or []]
        self.game_spec = None if self.files else GameSpec.create(family, **knobs)
        self.num_games = num_games
        self.cache_dir = cache_dir
        self.max_loaded_games = max(1, int(max_loaded_games))
        self._engines: OrderedDict[Path, Any] = OrderedDict()
        self._oracle: tuple[Path, Any] | None = None
        self._oracle_steps = -1
        self._oracle_state: Any = None
        self._engine: Any = None
        self._path: Path | None = None
        self._state: Any = None
        self._sent: list[str] = []
        self._walkthrough: list[str] = []
        self._on_walkthrough = False
        self._ambiguous: str | None = None
        self._score = 0

    # -- choosing the game --------------------------------------------------------------------
    def _choose(self, seed: int | None, options: dict[str, Any]) -> tuple[Path, str]:
        """The game file and task id of this reset."""
        if "task_id" in options:
            return self._by_task_id(str(options["task_id"]))
        pool = len(self.files) if self.files else self.num_games
        if seed is None:
            index = int(self.np_random.integers(pool or 2**16))
        else:
            index = int(seed) % pool if pool else int(seed) % 2**32
        if self.files:
            return self.files[index], self.files[index].stem
        return self._generated(index), self.game_spec.task_id(index)

    def _by_task_id(self, task_id: str) -> tuple[Path, str]:
        if self.files:
            for path in self.files:
                if path.stem == task_id:
                    return path, task_id
            names = ", ".join(p.stem for p in self.files)
            raise ValueError(f"Unknown task id {task_id!r}; this env's games are: {names}.")
        prefix = self.game_spec.task_id(0)[:-1]
        if not (task_id.startswith(prefix) and task_id[len(prefix) :].isdigit()):
            raise ValueError(
                f"Task id {task_id!r} does not name a game of this env; expected "
                f"'{prefix}<seed>', e.g. {self.game_spec.task_id(0)!r}."
            )
        seed = int(task_id[len(prefix) :])
        return self._generated(seed), task_id

    def _generated(self, seed: int) -> Path:
        return ensure_games(self.game_spec, [seed], self.cache_dir)[0]

    def _load(self, path: Path) -> Any:
        """The engine playing ``path`` (kept loaded, least recently used ones closed)."""
        if path in self._engines:
            self._engines.move_to_end(path)
            return self._engines[path]
        engine = _start(path, textworld.EnvInfos(**ENGINE_INFOS))
        self._engines[path] = engine
        while len(self._engines) > self.max_loaded_games:
            _, old = self._engines.popitem(last=False)
            old.close()
        return engine

    # -- TextEnv ------------------------------------------------------------------------------
    def _reset(self, seed: int | None, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._path, task_id = self._choose(seed, options)
        self._engine = self._load(self._path)
        self._state = self._engine.reset()
        self._score = self._state["score"] or 0
        self._sent = []
        self._ambiguous = None
        self._oracle_steps = -1
        game = self._state["game"]
        self._walkthrough = list(game.walkthrough or [])
        self._on_walkthrough = bool(self._walkthrough)
        objective = (self._state["objective"] or "").strip()
        obs = clean_feedback(self._state["feedback"])
        if objective and objective not in obs:
            obs = f"{objective}\n\n{obs}"
        info = {TASK: objective or DEFAULT_TASK, TASK_ID: task_id, **self._state_info()}
        return obs, info

    def _step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        command = sanitize_action(action)
        if not command or is_meta_command(command):
            self._on_walkthrough = False
            why = (
                "You did not type a command."
                if not command
                else f'"{command[:60]}" is an interpreter command and is not available here.'
            )
            return f"{why} Type one game command, e.g. look.", 0.0, False, False, self._refusal()
        invalid = self._not_admissible(command)
        if self._on_walkthrough:
            n_sent = len(self._sent)
            expected = self._walkthrough[n_sent] if n_sent < len(self._walkthrough) else ""
            self._on_walkthrough = not invalid and _normalize(command) == _normalize(expected)
        self._sent.append(command)
        self._state, score, _ = self._engine.step(command)
        self._ambiguous = command if _AMBIGUOUS.match(self._state["feedback"]) else None
        if self._ambiguous:  # the command did not act: the walkthrough no longer fits
            self._on_walkthrough = False
        score = score or 0
        reward, self._score = float(score - self._score), score
        won, lost = bool(self._state["won"]), bool(self._state["lost"])
        info = {WON: won, LOST: lost, INVALID: invalid, **self._state_info()}
        return clean_feedback(self._state["feedback"]), reward, won or lost, False, info

    def _not_admissible(self, command: str) -> bool:
        admissible = self._state["admissible_commands"] or ()
        if command in admissible:  # the common case, without normalizing the whole list
            return False
        return _normalize(command) not in {_normalize(a) for a in admissible}

    def _state_info(self) -> dict[str, Any]:
        state = self._state
        return {
            ADMISSIBLE: list(state["admissible_commands"] or ()),
            STATE_KEY: state_key_of(state["_facts"]),
            SCORE: int(self._score),
            MAX_SCORE: int(state["max_score"] or 0),
        }

    def _refusal(self) -> dict[str, Any]:
        """Info of an action that never reached the game: nothing changed."""
        won, lost = bool(self._state["won"]), bool(self._state["lost"])
        return {WON: won, LOST: lost, INVALID: True, **self._state_info()}

    def _current_state_key(self) -> str:
        return state_key_of(self._state["_facts"]) if self._state is not None else ""

    # -- oracle -------------------------------------------------------------------------------
    def oracle_action(self) -> str | None:
        """The walkthrough's next command while the episode has followed the walkthrough;
        otherwise the first of TextWorld's policy commands from the current state (None when
        the game is over or cannot be won any more)."""
        if self._state is None or self._state["won"] or self._state["lost"]:
            return None
        if self._on_walkthrough and len(self._sent) < len(self._walkthrough):
            return self._walkthrough[len(self._sent)]
        commands = self._policy_commands()
        if not commands:
            return None
        # Some generated games name one object with words of another ("locker" and "type 0
        # locker"), so Inform asks "Which do you mean?" and no "... from locker" command can
        # name the container; "take X" alone is not ambiguous.
        match = _TAKE_FROM.fullmatch(commands[0])
        if commands[0] == self._ambiguous and match:
            return f"take {match[1]}"
        return commands[0]

    def _policy_commands(self) -> list[str]:
        """Policy commands from a second engine that tracks quests, synced by replaying."""
        if self._oracle is None or self._oracle[0] != self._path:
            if self._oracle is not None:
                self._oracle[1].close()
            infos = textworld.EnvInfos(policy_commands=True, won=True, lost=True)
            self._oracle = (self._path, _start(self._path, infos))
            self._oracle_steps = -1
        engine = self._oracle[1]
        if self._oracle_steps < 0:
            self._oracle_state = engine.reset()
            self._oracle_steps = 0
        for command in self._sent[self._oracle_steps :]:
            self._oracle_state, _, _ = engine.step(command)
        self._oracle_steps = len(self._sent)
        return list(self._oracle_state.get("policy_commands") or [])

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()
        if self._oracle is not None:
            self._oracle[1].close()
            self._oracle = None
        super().close()
