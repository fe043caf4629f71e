"""GEM's games and reasoning tasks as agentgym environments (``pip install 'agentgym[ecosystems]'``).

GEM (``gem-llm`` 0.1.0, "a gym for generalist LLMs") has Gymnasium-style envs
(``reset(seed) -> (obs, info)``, ``step(action) -> 5-tuple``) whose actions are answers in
``\\boxed{...}``. :class:`GEMEnv` plays one of them behind the agentgym contract;
``agentgym.make("gem/TowerofHanoi-v0-easy")`` builds a game and
``agentgym.make("gem/rg-basic_arithmetic-v0")`` a Reasoning Gym task. Only what runs offline is
registered (:data:`GAMES`, :data:`REASONING_GYM`); :data:`NETWORK_ENVS` says why the rest
cannot run here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from agentgym.core import ADMISSIBLE, INVALID, STATE_KEY, TASK, TASK_ID, WON, TextEnv
from agentgym.envs.textarena import RngHolder, canonical_key, import_or_explain, private_rng

# GEM game id (without "game:") -> agentgym max_turns (above the game's own limit, which ends
# the episode as GEM defines it; agentgym's limit stops a run of invalid replies). One registered
# id per game, the easy variant; the -hard and -random ones run offline too (give gem_id=).
GAMES: dict[str, int] = {
    "GuessTheNumber-v0-easy": 10, "Mastermind-v0-easy": 20, "Minesweeper-v0-easy": 40,
    "FifteenPuzzle-v0-easy": 20, "Sudoku-v0-easy": 25, "TowerofHanoi-v0-easy": 20,
    "Game2048-v0-easy": 60, "Sokoban-v0-easy": 30,
}  # fmt: skip
# game:Crosswords-v0-easy and -hard run offline too but take ~2 s per reset; make one with
# make("gem/Sudoku-v0-easy", gem_id="game:Crosswords-v0-easy", max_turns=40).

# A few of the Reasoning Gym tasks GEM registers as rg:<name> (single turn: one boxed answer,
# scored by reasoning_gym). All but rg:composite reset offline; give gem_id="rg:<name>" for the
# others.
REASONING_GYM: tuple[str, ...] = ("basic_arithmetic", "chain_sum", "gcd", "leg_counting")

# GEM envs that cannot run here, and why.
NETWORK_ENVS: dict[str, str] = {
    **{f"game:{g}": "downloads the nltk 'words' corpus at reset" for g in (
        "Wordle-v0-easy", "Wordle-v0-hard", "Wordle-v0-random", "Hangman-v0-easy",
        "Hangman-v0-hard", "Hangman-v0-random", "WordSearch-v0-easy", "WordSearch-v0-hard",
        "WordSearch-v0-random")},
    "game:FifteenPuzzle-v0-random": "fails at reset in gem-llm 0.1.0 (TypeError: None ** int)",
    "game:Crosswords-v0-random": "fails at reset in gem-llm 0.1.0 (no words for hardcore=None)",
    "math:*, code:*, qa:*, logic:*, eval:*": "load Hugging Face datasets at run time "
    "(and need the 'datasets' package)",
    "rg:composite": "needs a list of datasets to compose (no default)",
}  # fmt: skip

# attributes that do not tell game states apart (anchor states ignore the turn, as in GiGPO)
_NOT_STATE = frozenset({"turn_count", "env_id", "entry_point"})
_BOXED = re.compile(r"\\boxed\{")
_DIRS = ("up", "down", "left", "right")


_LAST_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def _move_of(reply: str) -> str | None:
    """The last boxed answer of a reply, lower case with single spaces (None if none)."""
    found = _LAST_BOXED.findall(reply)
    return " ".join(found[-1].lower().split()) if found else None


def _box(move: str) -> str:
    return "\\boxed{" + move + "}"


def _hanoi(e: Any) -> list[str]:
    b = e.board
    return [
        _box(f"{s} {d}")
        for s in "ABC"
        for d in "ABC"
        if s != d and b[s] and (not b[d] or b[d][-1] > b[s][-1])
    ]


# Game class -> its legal moves in the current state; games not listed give None.
ADMISSIBLE_MOVES: dict[str, Callable[[Any], list[str]]] = {
    "TowerofHanoiEnv": _hanoi,
    "GuessTheNumberEnv": lambda e: [_box(str(n)) for n in range(e.min_number, e.max_number + 1)],
    "FifteenPuzzleEnv": lambda e: [_box(d) for d in _DIRS],
    "Game2048Env": lambda e: [_box(d) for d in _DIRS],
    "SokobanEnv": lambda e: [_box(d) for d in _DIRS],
    "MinesweeperEnv": lambda e: [
        _box(f"reveal {r} {c}")
        for r in range(e.rows)
        for c in range(e.cols)
        if not e.revealed[r][c]
    ],
}


def build_gem(env_id: str, **kwargs: Any) -> Any:
    """A GEM env for the GEM id ``env_id`` (e.g. ``game:TowerofHanoi-v0-easy``)."""
    import logging

    gem = import_or_explain("gem", "GEM")
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    from gem.envs.registration import ENV_REGISTRY

    if env_id not in ENV_REGISTRY:
        raise KeyError(f"GEM has no environment {env_id!r}; offline here: {sorted(GAMES)}")
    return gem.make(env_id, **kwargs)


class GEMEnv(TextEnv):
    """One GEM environment: a multi-turn game (``game:...``) or a single-turn Reasoning Gym task.

    ## Description

    Plays ``gem.make(env_id)``. GEM's reset observation (the rules) is ``info["task"]``; the
    observations are GEM's, followed by the game's current board (GEM's ``info["suffix"]``).

    ## Actions

    GEM's answers in ``\\boxed{...}``: ``\\boxed{A C}`` (Tower of Hanoi), ``\\boxed{up}``,
    ``\\boxed{reveal 3 2}``, ``\\boxed{42}``. For the games in :data:`ADMISSIBLE_MOVES`,
    ``info["admissible_actions"]`` lists the legal moves (exact strings). A reply without a
    ``\\boxed{}``, or one GEM rejects as a format error (where GEM ends the episode with reward
    -0.1), is answered by the adapter with what is expected, changes nothing and sets
    ``info["invalid"] = True``; the episode goes on. A boxed move that is illegal in the current
    state goes to the game, which answers it, and is also flagged invalid when the game lists
    its moves.

    ## Observations

    GEM's text for the move, then the board. Single-turn tasks end after the answer.

    ## Rewards

    GEM's rewards unchanged (per-step shaping where GEM gives it; 1 for success).
    ``info["won"]`` is True when the episode ends with reward 1 or more.

    ## Episode end

    ``terminated`` when GEM ends the episode (solved, lost, or its own turn limit, which GEM
    reports as both terminated and truncated: here it is ``truncated``); agentgym's ``max_turns``
    truncates too.

    ## Arguments

    ``gem_id``: a GEM id (``game:TowerofHanoi-v0-easy``, ``rg:basic_arithmetic``); other keyword
    arguments go to the GEM env. (Not ``env_id``: that name is ``agentgym.make``'s own.)

    ## State key

    ``"<env_id>#<hash>"`` of the game's attributes (board, hidden answer, turn count); for
    single-turn tasks, of the question.

    ## Version history

    - v0: gem-llm 0.1.0.
    """

    def __init__(self, gem_id: str, **env_kwargs: Any) -> None:
        self.env_id = gem_id
        self._single_turn = gem_id.startswith("rg:")
        self._rng = RngHolder()
        with private_rng(self._rng):
            self._env = build_gem(gem_id, **env_kwargs)
        self._done = False
        self._obs_head = ""

    # -- TextEnv ------------------------------------------------------------------------------
    def _reset(self, seed: int | None, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        game_seed = int(self.np_random.integers(2**31 - 1))
        self._rng = RngHolder(game_seed)
        with private_rng(self._rng):
            obs, info = self._env.reset(seed=game_seed)
        self._done = False
        suffix = str(info.get("suffix", "")).strip()
        if self._single_turn:
            task, shown = "Answer the question; put the final answer in \\boxed{}.", str(obs)
        else:
            task, shown = str(obs).strip(), suffix or "The game begins."
        self._question = str(obs)
        info = {TASK: task, TASK_ID: f"{self.env_id}#{game_seed}", **self._state_info()}
        return shown, info

    def _step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if not _BOXED.search(action):
            return self._invalid("Your reply has no \\boxed{...} answer.")
        admissible = self._admissible()
        legal = admissible is not None and _move_of(action) in {_move_of(a) for a in admissible}
        # a snapshot to undo a format error; a listed move always parses, a task has no such error
        undo = None
        if not (legal or self._single_turn):
            undo = copy.deepcopy(self._env), self._rng.py_state, self._rng.np_state
        with private_rng(self._rng):
            try:
                obs, reward, terminated, truncated, info = self._env.step(action)
            except Exception as exc:  # noqa: BLE001 - a game bug on odd input is an invalid move
                if undo is not None:
                    self._env, self._rng.py_state, self._rng.np_state = undo
                return self._invalid(f"The game could not process this move ({exc!r:.200}).")
        reward = float(reward)
        if undo is not None and terminated and reward == self._format_error_reward():
            # GEM ends the episode on a move it cannot parse; agentgym answers it instead
            self._env, self._rng.py_state, self._rng.np_state = undo
            return self._invalid(f"The game could not parse this move: {obs}")
        self._done = bool(terminated or truncated)
        suffix = str((info or {}).get("suffix", "")).strip()
        text = str(obs).strip()
        if suffix and not self._done:
            text = f"{text}\n{suffix}"
        out = {WON: self._done and reward >= 1.0, INVALID: admissible is not None and not legal}
        out.update(self._state_info())
        # GEM reports its own turn limit as terminated and truncated: that is a truncation
        return text or "Done.", reward, bool(terminated and not truncated), bool(truncated), out

    def _current_state_key(self) -> str:
        return self._state_info()[STATE_KEY]

    # -- helpers ------------------------------------------------------------------------------
    def _invalid(self, why: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        adm = self._admissible()
        hint = f" Valid moves: {', '.join(adm[:20])}." if adm else ""
        obs = f"{why} Reply with your move inside \\boxed{{}}, e.g. \\boxed{{...}}.{hint}"
        return obs, 0.0, False, False, {INVALID: True, **self._state_info()}

    def _admissible(self) -> list[str] | None:
        moves = ADMISSIBLE_MOVES.get(type(self._env).__name__)
        if moves is None:
            return None
        return [] if self._done else moves(self._env)

    def _state_info(self) -> dict[str, Any]:
        if self._single_turn:
            key = canonical_key(self.env_id, self._question, self._done)
        else:
            attrs = {k: v for k, v in vars(self._env).items() if k not in _NOT_STATE}
            key = canonical_key(self.env_id, attrs, self._done)
        return {ADMISSIBLE: self._admissible(), STATE_KEY: key}

    @staticmethod
    def _format_error_reward() -> float:
        from gem.utils.constants import LanguageGameReward

        return float(LanguageGameReward.format_error_reward)

    def close(self) -> None:
        self._done = True
