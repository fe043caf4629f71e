"""TextArena's single-player games as agentgym environments (``pip install 'agentgym[ecosystems]'``).

TextArena (``textarena`` 0.7.4) is a collection of text games with its own registry and a
turn-based API (``reset(num_players, seed)``, ``step(action) -> (done, info)``,
``get_observation()``). :class:`TextArenaEnv` plays one of its single-player games behind the
agentgym contract; ``agentgym.make("textarena/TowerOfHanoi-v0")`` builds one. Only the games
that run offline are registered (:data:`GAMES`); :data:`NETWORK_GAMES` names the others and why.

The helpers :func:`private_rng` and :func:`canonical_key` are shared with the GEM adapter
(:mod:`agentgym.envs.gem`): both collections draw from the global ``random`` and
``numpy.random`` generators, so each adapted env keeps its own generator states and swaps them in
around every call into the game.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import io
import itertools
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from agentgym.core import ADMISSIBLE, INVALID, STATE_KEY, TASK, TASK_ID, WON, TextEnv

INSTALL_HINT = "pip install 'agentgym[ecosystems]' (or `make setup`, which installs that extra)"

# -- shared helpers (also used by agentgym.envs.gem) ----------------------------------------------

_RNG_LOCK = threading.RLock()


class RngHolder:
    """The states of ``random`` and ``numpy.random`` that belong to one adapted env."""

    def __init__(self, seed: int = 0) -> None:
        self.py_state = random.Random(seed).getstate()
        self.np_state = np.random.RandomState(seed).get_state()


@contextmanager
def private_rng(holder: RngHolder, *, keep: bool = True) -> Iterator[None]:
    """Run the block with ``holder``'s generator states in ``random`` and ``numpy.random``.

    The previous global states come back afterwards; with ``keep=False`` the holder's states are
    not advanced either (for trial moves). A process-wide lock serializes the swap, so episodes
    in threads (``agentgym serve``, thread pools) neither share nor disturb each other's draws.
    What the game prints to stdout meanwhile (some games print debugging lines) is dropped.
    """
    with _RNG_LOCK, contextlib.redirect_stdout(io.StringIO()):
        saved = random.getstate(), np.random.get_state()
        random.setstate(holder.py_state)
        np.random.set_state(holder.np_state)
        try:
            yield
        finally:
            if keep:
                holder.py_state, holder.np_state = random.getstate(), np.random.get_state()
            random.setstate(saved[0])
            np.random.set_state(saved[1])


def _canonical(obj: Any, depth: int = 0) -> str:
    """A text form of ``obj`` that is the same for equal game states in any process
    (sets and dicts sorted, arrays by value, objects by their attributes, functions left out)."""
    if depth > 8:
        return type(obj).__name__
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return repr(obj)
    if isinstance(obj, np.ndarray):
        return f"a{obj.shape}{_canonical(obj.tolist(), depth + 1)}"
    if isinstance(obj, np.generic):
        return repr(obj.item())
    if isinstance(obj, dict):
        items = sorted(
            f"{_canonical(k, depth + 1)}:{_canonical(v, depth + 1)}" for k, v in obj.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(_canonical(v, depth + 1) for v in obj) + "]"
    if isinstance(obj, (set, frozenset)):
        return "s{" + ",".join(sorted(_canonical(v, depth + 1) for v in obj)) + "}"
    if callable(obj) or isinstance(obj, (random.Random, type(np))):
        return type(obj).__name__
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict):
        return type(obj).__name__ + _canonical(attrs, depth + 1)
    return type(obj).__name__


def canonical_key(prefix: str, *parts: Any) -> str:
    """``prefix#digest``: a short state key naming the game state ``parts`` describe."""
    digest = hashlib.sha1("|".join(_canonical(p) for p in parts).encode()).hexdigest()[:16]
    return f"{prefix}#{digest}"


def import_or_explain(module: str, collection: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"The {collection} environments need the '{module}' package ({exc}). "
            f"Install it with: {INSTALL_HINT}."
        ) from exc


# -- the games -------------------------------------------------------------------------------------

# TextArena id -> agentgym max_turns (invalid moves do not count towards a game's own limit, so
# the agentgym limit stops an episode that keeps sending them). One registered id per game, the
# variant whose reset is fast; each resets and plays offline (docs/environments.md).
GAMES: dict[str, int] = {
    "2048-v0-ultra-easy": 300, "Bandit-v0": 30, "Blackjack-v0": 40, "Countdown-v0": 30,
    "Crosswords-v0": 45, "Cryptarithm-v0": 120, "FifteenPuzzle-v0": 250, "FrozenLake-v0": 40,
    "GuessTheNumber-v0": 20, "LightsOut-v0": 30, "LogicPuzzle-v0": 60, "Mastermind-v0": 30,
    "Minesweeper-v0-small": 60, "PegJump-v0": 40, "Secretary-v0": 15, "Slitherlink-v0": 250,
    "Sokoban-v0": 45, "Sudoku-v0-very-easy": 120, "ThreeCardMonte-v0": 5, "TowerOfHanoi-v0": 25,
}  # fmt: skip

# Other single-player variants that run offline: not registered (slow resets or more of the
# same); play one with the game= argument, e.g. make("textarena/Sokoban-v0",
# game="Sokoban-v0-medium", max_turns=70).
VARIANTS: tuple[str, ...] = (
    "2048-v0-mega-easy", "2048-v0-super-easy", "2048-v0-very-easy", "2048-v0-easy", "2048-v0",
    "2048-v0-hard", "2048-v0-very-hard", "2048-v0-extreme", "2048-v0-3x3", "2048-v0-5x5",
    "2048-v0-6x6", "2048-v0-8x8", "2048-v0-10x10", "Bandit-v0-hard", "Blackjack-v0-long",
    "Crosswords-v0-hardcore", "FrozenLake-v0-random", "FrozenLake-v0-hardcore",
    "GuessTheNumber-v0-hardcore", "LogicPuzzle-v0-hard", "Mastermind-v0-hard",
    "Mastermind-v0-extreme", "Minesweeper-v0", "Minesweeper-v0-medium", "Minesweeper-v0-hard",
    "RushHour-v0", "Secretary-v0-long", "Set-v0", "Sokoban-v0-medium", "Sudoku-v0-easy",
    "Sudoku-v0", "Sudoku-v0-medium", "Sudoku-v0-hard", "TowerOfHanoi-v0-medium",
    "TowerOfHanoi-v0-hard", "TowerOfHanoi-v0-hardcore", "TowerOfHanoi-v0-extreme",
)  # fmt: skip

# Single-player TextArena games that cannot run here, and why.
NETWORK_GAMES: dict[str, str] = {
    **{g: "downloads the nltk 'words' corpus at reset" for g in (
        "Hangman-v0", "Hangman-v0-hardcore", "Wordle-v0", "Wordle-v0-hardcore", "Wordle-v0-long",
        "Wordle-v0-long-hardcore", "WordLadder-v0", "WordLadder-v0-medium", "WordLadder-v0-hard",
        "WordSearch-v0", "WordSearch-v0-hardcore")},
    "GuessWho-v0": "its opponent is an LLM behind the OpenRouter API (needs a key and the network)",
    "TwentyQuestions-v0": "the answerer is an LLM behind the OpenRouter API",
    "TwentyQuestions-v0-hardcore": "the answerer is an LLM behind the OpenRouter API",
    "Klondike-v0": "does not import: SyntaxError in textarena 0.7.4's Klondike/env.py",
    "BabyAiText-v0": "needs the legacy 'gym' package and BabyAI (not installed)",
}  # fmt: skip

_DIRS = ("[up]", "[down]", "[left]", "[right]")

# Game class -> the moves it understands in any state; the admissible actions are those the game
# accepts from the current state (each tried on a copy). Games not listed give None.
CANDIDATES: dict[str, Callable[[Any], list[str]]] = {
    "TowerOfHanoiEnv": lambda e: [f"[{a} {b}]" for a, b in itertools.permutations("ABC", 2)],
    "FrozenLakeEnv": lambda e: list(_DIRS),
    "SokobanEnv": lambda e: list(_DIRS),
    "FifteenPuzzleEnv": lambda e: list(_DIRS),
    "Game2048Env": lambda e: list(_DIRS),
    "GuessTheNumberEnv": lambda e: [f"[{n}]" for n in range(e.min_number, e.max_number + 1)],
    "MinesweeperEnv": lambda e: [
        f"[{r} {c}]" for r in range(e.rows) for c in range(e.cols) if not e.revealed[r][c]
    ],
    "LightsOutEnv": lambda e: [f"[{r} {c}]" for r in range(e.size) for c in range(e.size)],
    "SecretaryEnv": lambda e: ["[accept]", "[continue]"],
    "BanditEnv": lambda e: [f"[{b}]" for b in e.buttons],
    "BlackjackEnv": lambda e: ["[hit]", "[stand]"],
    "ThreeCardMonteEnv": lambda e: [f"[{k}]" for k in range(e.num_cups)],
}


# Games whose candidate moves are listed without trying them: trying would reveal hidden state
# (a Minesweeper reveal that hits a mine is, for TextArena, an invalid move).
UNTRIED: frozenset[str] = frozenset({"MinesweeperEnv"})

# Invalid moves that end the game here (TextArena lets one pass with a warning; with the error
# allowance raised they would never end it): Minesweeper's mine.
FATAL: dict[str, str] = {"MinesweeperEnv": "You hit a mine"}


def build_game(game: str, **kwargs: Any) -> Any:
    """A raw TextArena env (no TextArena wrappers) for the registered id ``game``."""
    import_or_explain("textarena", "TextArena")
    from textarena.envs.registration import ENV_REGISTRY

    if game not in ENV_REGISTRY:
        raise KeyError(
            f"TextArena has no game {game!r}; single-player games that run here: "
            f"{sorted(GAMES) + sorted(VARIANTS)}"
        )
    spec = ENV_REGISTRY[game]
    module, _, name = spec.entry_point.partition(":")
    return getattr(importlib.import_module(module), name)(**{**spec.kwargs, **kwargs})


class TextArenaEnv(TextEnv):
    """One single-player TextArena game.

    ## Description

    Plays ``textarena.make(game)``'s underlying env for one player, without TextArena's
    observation wrappers: agentgym keeps the conversation, so each observation is only what the
    game said since the last move.

    ## Actions

    TextArena's bracketed moves, e.g. ``[A C]`` (Tower of Hanoi) or ``[up]`` (FrozenLake). A reply
    without ``[`` is wrapped in brackets first (what TextArena's ``ActionFormattingWrapper``
    does), so ``up`` means ``[up]``. ``info["admissible_actions"]`` lists the moves the game
    accepts in the current state for the games in :data:`CANDIDATES` (each candidate is tried on a
    copy of the game), else None.

    ## Observations

    The game's messages: the board after ``reset``; after a move, its outcome and the new board.
    The game's rules (its player prompt) are ``info["task"]``.

    ## Rewards

    The game's own final reward when it ends (1 for a solved puzzle; a partial score such as the
    share of disks placed when it ends unsolved); 0 on other steps. ``info["won"]`` is True when
    the final reward is 1 or more.

    ## Episode end

    ``terminated`` when the game ends (solved, lost, or its own turn limit); ``truncated`` by
    agentgym's ``max_turns``. A move the game rejects (unparseable or illegal) is answered with
    the game's explanation and ``info["invalid"] = True``; unlike in TextArena, where a second
    invalid move in a row loses the game, the episode goes on.

    ## Arguments

    ``game``: a TextArena id (see :data:`GAMES`); other keyword arguments go to the game.

    ## State key

    ``info["state_key"]`` is ``"<game>#<hash>"`` of the game's attributes and its ``game_state``
    (board, hidden answer and history), so equal boards with different hidden answers differ.

    ## Version history

    - v0: textarena 0.7.4.
    """

    def __init__(self, game: str, **game_kwargs: Any) -> None:
        self.game = game
        self._game_kwargs = game_kwargs
        self._env = build_game(game, **game_kwargs)
        self._rng = RngHolder()
        self._done = False
        self._admissible: list[str] | None = None

    def _reset(self, seed: int | None, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        from textarena import ObservationType

        game_seed = int(self.np_random.integers(2**31 - 1))
        self._rng = RngHolder(game_seed)
        # a fresh game object: some games keep attributes of the last episode that reset leaves
        self._env = build_game(self.game, **self._game_kwargs)
        with private_rng(self._rng):
            self._env.reset(num_players=1, seed=game_seed)
            self._env.state.error_allowance = 1 << 60  # invalid moves never end the episode
            _, messages = self._env.get_observation()
        self._done = False
        task = "\n".join(str(m) for _, m, kind in messages if kind == ObservationType.PROMPT)
        obs = "\n".join(str(m) for _, m, kind in messages if kind != ObservationType.PROMPT)
        info = {TASK: task.strip(), TASK_ID: f"{self.game}#{game_seed}", **self._state_info()}
        return obs.strip() or "The game begins.", info

    def _step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        from textarena import ObservationType

        move = action if "[" in action else f"[{action.strip()}]"
        with private_rng(self._rng):
            try:
                done, _ = self._env.step(move)
            except Exception as exc:  # noqa: BLE001 - a game bug on odd input is an invalid move
                obs = f"The game could not process this move ({type(exc).__name__}: {exc})."
                return obs, 0.0, False, False, {INVALID: True, **self._state_info()}
            _, messages = self._env.get_observation()
        state = self._env.state
        invalid = bool(getattr(state, "error_count", 0))
        lines = [str(m) for _, m, kind in messages if kind != ObservationType.PLAYER_ACTION]
        reward, won = 0.0, False
        fatal = FATAL.get(type(self._env).__name__)
        if invalid and fatal and any(fatal in line for line in lines):
            done, invalid = True, False  # a legal move that loses: the game's progress score
            score = getattr(self._env, "_get_percentage_completion", lambda: 0.0)()
            state.rewards, state.done = {0: float(score)}, True
            state.game_info[0]["reason"] = f"Game over: {fatal.lower()}."
        if done:
            self._done = True
            reward = float((state.rewards or {}).get(0, 0.0))
            won = reward >= 1.0
            reason = state.game_info.get(0, {}).get("reason")
            if reason and reason not in lines:
                lines.append(str(reason))
        obs = "\n".join(lines).strip() or "Nothing happens."
        return obs, reward, bool(done), False, {WON: won, INVALID: invalid, **self._state_info()}

    def _current_state_key(self) -> str:
        return self._key()

    def _key(self) -> str:
        attrs = {k: v for k, v in vars(self._env).items() if k != "state"}
        state = getattr(self._env, "state", None)
        return canonical_key(self.game, attrs, getattr(state, "game_state", None), self._done)

    def _state_info(self) -> dict[str, Any]:
        return {ADMISSIBLE: self._admissible_actions(), STATE_KEY: self._key()}

    def _admissible_actions(self) -> list[str] | None:
        candidates = CANDIDATES.get(type(self._env).__name__)
        if candidates is None:
            return None
        if self._done:
            return []
        if type(self._env).__name__ in UNTRIED:
            return candidates(self._env)
        accepted = []
        with private_rng(self._rng, keep=False):
            snapshot = random.getstate(), np.random.get_state()
            for move in candidates(self._env):
                trial = copy.deepcopy(self._env)
                try:
                    trial.step(move)
                except Exception:  # noqa: BLE001 - a move that crashes the game is not offered
                    continue
                finally:
                    random.setstate(snapshot[0])
                    np.random.set_state(snapshot[1])
                if not getattr(trial.state, "error_count", 0):
                    accepted.append(move)
        return accepted

    def close(self) -> None:
        self._done = True
