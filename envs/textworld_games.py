"""TextWorld game files: generation with TextWorld's own generator, and the on-disk cache.

A game is named by a :class:`GameSpec` (a family and its difficulty knobs) and a generation seed.
Families are the custom world of ``tw-make custom`` (``world_size``, ``nb_objects``,
``quest_length``, ``quest_breadth``) and the challenges TextWorld ships: ``simple``
(``rewards``, ``goal``, ``test``), ``coin_collector`` (``level`` 1-300), ``treasure_hunter``
(``level`` 1-30) and ``cooking`` (``recipe``, ``take``, ``go``, ``open``, ``cook``, ``cut``,
``drop``, ``recipe_seed``, ``split``).

Games are cached as ``<cache>/tw-<version>/<family>/<knobs>/seed-<n>/game.{z8,json}`` where
``<cache>`` is the ``cache_dir`` argument, else ``$AGENTGYM_CACHE/textworld``, else
``~/.cache/agentgym/textworld``. A game is generated in a fresh interpreter with
``PYTHONHASHSEED=0`` (TextWorld iterates over sets of strings while generating, so without a
fixed hash seed the same seed can give games that differ in their byte order), into a temporary
folder that is renamed into place: parallel processes never see a half-written game, and
whichever finishes first wins. If TextWorld cannot build a quest for a seed (possible with tight
custom knobs), generation retries with derived seeds ``seed + k * 1_000_003`` (k = 1..4); the game
is still cached under the requested seed, so a seed always gives the same game.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgym.hints import did_you_mean

TEXTWORLD_VERSION = "1.7.0"
"""The TextWorld release the cache layout and the registered games are made with."""

FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "custom": {"world_size": 5, "nb_objects": 10, "quest_length": 5, "quest_breadth": 1},
    "simple": {"rewards": "dense", "goal": "detailed", "test": False},
    "coin_collector": {"level": 5},
    "treasure_hunter": {"level": 5},
    "cooking": {
        "recipe": 1,
        "take": 1,
        "go": 1,
        "open": True,
        "cook": True,
        "cut": True,
        "drop": False,
        "recipe_seed": 0,
        "split": None,
    },
}
"""Every family and its knobs, with the values a knob takes when not given."""

RETRY_STRIDE = 1_000_003
MAX_ATTEMPTS = 5
GENERATION_TIMEOUT_S = (300, 120)
"""A generation child is stopped after ``300 + 120 * games`` seconds."""


@dataclass(frozen=True)
class GameSpec:
    """A family of generated games and its knobs (every knob present, defaults filled in)."""

    family: str
    settings: tuple[tuple[str, Any], ...]

    @classmethod
    def create(cls, family: str, **knobs: Any) -> GameSpec:
        """Validate ``knobs`` for ``family`` and fill in the defaults of the others."""
        if family not in FAMILY_DEFAULTS:
            hint = did_you_mean(family, FAMILY_DEFAULTS)
            raise ValueError(
                f"Unknown TextWorld family {family!r}.{hint} "
                f"Choose one of: {', '.join(FAMILY_DEFAULTS)}."
            )
        defaults = FAMILY_DEFAULTS[family]
        for name in knobs:
            if name not in defaults:
                hint = did_you_mean(name, defaults)
                raise ValueError(
                    f"TextWorld family {family!r} has no knob {name!r}.{hint} "
                    f"Its knobs: {', '.join(defaults)}."
                )
        _check_knobs(family, {**defaults, **knobs})
        return cls(family, tuple(sorted({**defaults, **knobs}.items())))

    @property
    def knobs(self) -> dict[str, Any]:
        return dict(self.settings)

    @property
    def slug(self) -> str:
        """The knobs as a folder name and task-id part, e.g. ``level5``."""
        return "-".join(f"{k}{_slug_value(v)}" for k, v in self.settings)

    def task_id(self, seed: int) -> str:
        return f"tw-{self.family}-{self.slug}-s{seed}"


def _slug_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    return "none" if value is None else str(value)


def _check_knobs(family: str, knobs: dict[str, Any]) -> None:
    """Reject knob values that TextWorld would refuse (or hang on) with a clear message."""
    problems = []
    if family == "custom":
        for name in ("world_size", "nb_objects", "quest_length", "quest_breadth"):
            value = knobs[name]
            if not (name == "quest_breadth" and value is None) and not _positive_int(value):
                problems.append(f"{name} must be a positive int, got {value!r}")
    elif family in ("coin_collector", "treasure_hunter"):
        top = 300 if family == "coin_collector" else 30
        if not (_positive_int(knobs["level"]) and knobs["level"] <= top):
            problems.append(f"level must be an int in 1..{top}, got {knobs['level']!r}")
    elif family == "simple":
        if knobs["rewards"] not in ("dense", "balanced", "sparse"):
            problems.append(f"rewards must be dense, balanced or sparse, got {knobs['rewards']!r}")
        if knobs["goal"] not in ("detailed", "brief", "none"):
            problems.append(f"goal must be detailed, brief or none, got {knobs['goal']!r}")
    elif family == "cooking":
        recipe, take = knobs["recipe"], knobs["take"]
        if not (_positive_int(recipe) and isinstance(take, int) and 0 <= take <= recipe):
            problems.append(
                f"recipe must be a positive int and take an int in 0..recipe, got "
                f"recipe={recipe!r}, take={take!r}"
            )
        if knobs["go"] not in (1, 6, 9, 12):
            problems.append(f"go must be 1, 6, 9 or 12, got {knobs['go']!r}")
        if knobs["split"] not in (None, "train", "valid", "test"):
            problems.append(f"split must be None, train, valid or test, got {knobs['split']!r}")
    if problems:
        raise ValueError(f"Invalid knobs for TextWorld family {family!r}: {'; '.join(problems)}.")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir``, else ``$AGENTGYM_CACHE/textworld``, else ``~/.cache/agentgym/textworld``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get("AGENTGYM_CACHE") or os.path.join("~", ".cache", "agentgym")
    return Path(root).expanduser() / "textworld"


def game_dir(spec: GameSpec, seed: int, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder of the cached game ``(spec, seed)``; it holds ``game.z8`` and ``game.json``."""
    return (
        cache_root(cache_dir) / f"tw-{TEXTWORLD_VERSION}" / spec.family / spec.slug / f"seed-{seed}"
    )


def is_cached(folder: Path) -> bool:
    return (folder / "game.z8").is_file() and (folder / "game.json").is_file()


def ensure_games(
    spec: GameSpec,
    seeds: list[int],
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    workers: int = 1,
) -> list[Path]:
    """Paths of the ``game.z8`` files of ``seeds``, generating the missing ones.

    Missing games are generated in ``workers`` child interpreters (each takes a share of the
    seeds, paying TextWorld's import once). Raises RuntimeError with the child's error output
    if generation fails.
    """
    if any(not isinstance(s, int) or s < 0 or s >= 2**32 for s in seeds):
        raise ValueError(f"TextWorld generation seeds must be ints in [0, 2**32), got {seeds!r}")
    folders = [game_dir(spec, s, cache_dir) for s in seeds]
    missing = sorted({s for s, f in zip(seeds, folders, strict=True) if not is_cached(f)})
    if missing:
        shares = [missing[i :: max(1, workers)] for i in range(max(1, workers))]
        shares = [share for share in shares if share]
        procs = [_spawn(spec, share, cache_root(cache_dir)) for share in shares]
        for proc, share in zip(procs, shares, strict=True):
            base, per_game = GENERATION_TIMEOUT_S
            _wait(proc, base + per_game * len(share))
    return [f / "game.z8" for f in folders]


def _spawn(spec: GameSpec, seeds: list[int], root: Path) -> subprocess.Popen:
    request = {"family": spec.family, "knobs": spec.knobs, "seeds": seeds, "root": str(root)}
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, "-m", "agentgym.envs.textworld_games", json.dumps(request)]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def _wait(proc: subprocess.Popen, timeout: float) -> None:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(
            f"TextWorld game generation took over {timeout:.0f} s and was stopped; "
            "choose smaller knobs (world size, quest length, level)."
        ) from None
    if proc.returncode != 0:
        raise RuntimeError(
            f"TextWorld game generation failed (exit {proc.returncode}):\n{err[-3000:]}"
        )


# -- the child side: runs with PYTHONHASHSEED=0 ---------------------------------------------------
def generate_game(spec: GameSpec, seed: int, root: Path) -> Path:
    """Generate game ``(spec, seed)`` into the cache under ``root`` (atomic); return its folder."""
    import textworld.generator
    from textworld.generator import QuestGenerationError

    final = game_dir(spec, seed, root)
    if is_cached(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-seed-{seed}-", dir=final.parent))
    try:
        for attempt in range(MAX_ATTEMPTS):
            try:
                game = _make_game(spec, (seed + attempt * RETRY_STRIDE) % 2**32, tmp)
                break
            except QuestGenerationError:
                if attempt == MAX_ATTEMPTS - 1:
                    raise ValueError(
                        f"TextWorld could not build a quest for {spec.task_id(seed)} in "
                        f"{MAX_ATTEMPTS} attempts; relax the knobs (e.g. a shorter quest_length "
                        "or a larger world_size)."
                    ) from None
        options = textworld.GameOptions()
        options.path = str(tmp / "game.z8")
        options.force_recompile = True
        textworld.generator.compile_game(game, options)
        (tmp / "game.ni").unlink(missing_ok=True)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished this game first
            if not is_cached(final):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _make_game(spec: GameSpec, seed: int, folder: Path) -> Any:
    """Build (not compile) the textworld.Game of ``spec`` with generation seed ``seed``."""
    import textworld
    import textworld.challenges
    import textworld.generator

    options = textworld.GameOptions()
    options.seeds = seed
    options.path = str(folder / "game.z8")
    knobs = spec.knobs
    if spec.family == "custom":
        options.nb_rooms = knobs["world_size"]
        options.nb_objects = knobs["nb_objects"]
        options.quest_length = knobs["quest_length"]
        if knobs["quest_breadth"] is not None:
            options.quest_breadth = knobs["quest_breadth"]
        return textworld.generator.make_game(options)
    _, make, _ = textworld.challenges.CHALLENGES[f"tw-{spec.family}"]
    return make(settings=knobs, options=options)


def _main(argv: list[str]) -> int:
    """Child entry point: ``python -m agentgym.envs.textworld_games '<json request>'``."""
    request = json.loads(argv[0])
    spec = GameSpec.create(request["family"], **request["knobs"])
    for seed in request["seeds"]:
        generate_game(spec, int(seed), Path(request["root"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
