"""Generate ALFWorld text games from what the ``alfworld`` wheel ships.

ALFWorld's own games come from ``alfworld-download`` (a network fetch). This module writes
games of the same form offline: a ``game.tw-pddl`` (JSON with ``pddl_domain``, ``pddl_problem``,
``grammar`` with the task sentence, ``solvable`` and ``walkthrough``) next to a
``traj_data.json`` carrying the task type, so both alfworld's env classes and ours load them.

Ingredients, all from the wheel: the PDDL domain and the text grammar (``alfworld/data``), the
120 ALFRED floor plans (``alfworld/gen/layouts``: receptacle instances with their positions and
the object types of each scene), the affordance tables (``alfworld/gen/constants.py``: which
receptacle type holds which object type, what is cleanable, heatable, coolable, toggleable,
openable) and the goal library (``alfworld/gen/goal_library.py``: goal formulas and task
sentences). A game is sampled from a seed: a floor plan of the split, the task parameters, how
many of each object there are and where they lie, where the agent stands. The problem lists the
``canContain`` facts (without them PutObject never applies). Every game is checked with the
planner the engine uses (Fast Downward): its plan is replayed and must win; an unsolvable
sample is dropped and the next attempt of the same seed is drawn, so a seed always names the
same game. Splits: ``train`` and ``valid_seen`` use ALFRED's training floor plans,
``valid_unseen`` its held-out ones (disjoint, so it is out of distribution).
"""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import alfworld.gen.constants as C
import numpy as np
from alfworld.gen.goal_library import gdict

GEN_VERSION = 1
"""Bumped whenever the same seed would give a different game (it names the cache folder)."""

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
"""The six ALFWorld task types, named as in ALFWorld's ``traj_data.json``."""

TASK_ALIASES = {
    "pick_and_place": "pick_and_place_simple",
    "look_at_obj": "look_at_obj_in_light",
    "pick_clean_then_place": "pick_clean_then_place_in_recep",
    "pick_heat_then_place": "pick_heat_then_place_in_recep",
    "pick_cool_then_place": "pick_cool_then_place_in_recep",
    "pick_two_obj": "pick_two_obj_and_place",
    "clean": "pick_clean_then_place_in_recep",
    "heat": "pick_heat_then_place_in_recep",
    "cool": "pick_cool_then_place_in_recep",
}

SPLITS = ("train", "valid_seen", "valid_unseen")
SPLIT_SCENES = {
    "train": tuple(sorted(C.TRAIN_SCENE_NUMBERS)),
    "valid_seen": tuple(sorted(C.TRAIN_SCENE_NUMBERS)),
    "valid_unseen": tuple(sorted(C.TEST_SCENE_NUMBERS)),
}

ALFWORLD_DIR = Path(C.__file__).resolve().parents[1]
LAYOUT_DIR = ALFWORLD_DIR / "gen" / "layouts"
DOMAIN_PATH = ALFWORLD_DIR / "data" / "alfred.pddl"
GRAMMAR_PATH = ALFWORLD_DIR / "data" / "alfred.twl2"

MOVABLE = set(C.MOVABLE_RECEPTACLES)
STATIC_RECEPTACLES = set(C.VAL_RECEPTACLE_OBJECTS) - MOVABLE
PICKUPABLE = {o for objs in C.VAL_RECEPTACLE_OBJECTS.values() for o in objs if "Sliced" not in o}
LAMPS = ("DeskLamp", "FloorLamp")
LAMP_HOSTS = ("Desk", "SideTable", "Dresser", "Shelf", "CoffeeTable", "DiningTable", "TVStand")
APPLIANCE = {
    "pick_clean_then_place_in_recep": ("SinkBasin", "Cleanable"),
    "pick_heat_then_place_in_recep": ("Microwave", "Heatable"),
    "pick_cool_then_place_in_recep": ("Fridge", "Coolable"),
}
MAX_INSTANCES = C.MAX_NUM_OF_OBJ_INSTANCES


def canonical_task_type(name: str) -> str:
    """The ALFWorld name of a task type, accepting the short names of :data:`TASK_ALIASES`."""
    name = TASK_ALIASES.get(name, name)
    if name not in TASK_TYPES:
        raise ValueError(f"Unknown ALFWorld task type {name!r}; known: {', '.join(TASK_TYPES)}.")
    return name


# -- floor plans ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Receptacle:
    """A receptacle instance: THOR-style id, type and the ALFRED location it is seen from."""

    id: str
    rtype: str
    loc: str


@dataclass(frozen=True)
class Layout:
    """What one ALFRED floor plan offers."""

    scene: int
    receptacles: tuple[Receptacle, ...]
    object_types: tuple[str, ...]
    """Pickupable object types of the scene that some receptacle of the scene can hold."""
    lamps: tuple[str, ...]
    free_locs: tuple[str, ...]
    """Reachable standing points with no receptacle, where the agent may start."""

    @property
    def rtypes(self) -> set[str]:
        return {r.rtype for r in self.receptacles}

    def holders(self, otype: str) -> list[Receptacle]:
        """Receptacles of the scene that may contain ``otype``."""
        return [r for r in self.receptacles if otype in C.VAL_RECEPTACLE_OBJECTS[r.rtype]]


def _loc_name(x: float, z: float, rotation: int, horizon: int) -> str:
    return f"loc|{round(x / 0.25)}|{round(z / 0.25)}|{rotation // 90 % 4}|{horizon}"


def _rtype_of(thor_id: str) -> str:
    parts = thor_id.split("|")
    return parts[-1] if len(parts) > 4 else parts[0]


def _own_locations(recs: list[Receptacle]) -> list[Receptacle]:
    """Give receptacles that share a standing point a location each, so that acting on a
    receptacle always means going to it first (locations never appear in the text)."""
    seen: dict[str, int] = {}
    out = []
    for r in recs:
        n = seen[r.loc] = seen.get(r.loc, 0) + 1
        out.append(r if n == 1 else Receptacle(r.id, r.rtype, f"{r.loc}|{n}"))
    return out


@functools.cache
def load_layout(scene: int) -> Layout:
    """Read ``FloorPlan{scene}``'s receptacles, object types and reachable points."""
    base = LAYOUT_DIR / f"FloorPlan{scene}"
    placed = json.loads(Path(f"{base}-openable.json").read_text())
    types_here = json.loads(Path(f"{base}-objects.json").read_text())
    points = np.load(f"{base}-layout.npy")
    recs = [
        Receptacle(rid, _rtype_of(rid), _loc_name(x, z, int(rot), int(hor)))
        for rid, (x, z, rot, hor) in sorted(placed.items())
        if _rtype_of(rid) in STATIC_RECEPTACLES
    ]
    rng = random.Random(f"layout/{scene}")
    for rtype in sorted(set(types_here) & STATIC_RECEPTACLES - {r.rtype for r in recs}):
        # Receptacles the layout lists by type only (coffee machine, toaster, ...): give them
        # an id and a standing point of their own.
        for _ in range(4 if rtype == "StoveBurner" else 1):
            x, z = points[rng.randrange(len(points))]
            rid = f"{x:+06.2f}|{rng.uniform(0.5, 1.5):+06.2f}|{z:+06.2f}"
            rid = f"{rtype[:-5]}|{rid}|{rtype}" if rtype.endswith("Basin") else f"{rtype}|{rid}"
            recs.append(Receptacle(rid, rtype, _loc_name(x, z, 90 * rng.randrange(4), 30)))
    recs = _own_locations(recs)
    taken = {r.loc for r in recs}
    free = sorted({_loc_name(x, z, rot, 30) for x, z in points for rot in (0, 90, 180, 270)})
    kinds = {r.rtype for r in recs}
    objects = sorted(
        t
        for t in set(types_here) & PICKUPABLE
        if any(t in C.VAL_RECEPTACLE_OBJECTS[k] for k in kinds)
    )
    lamps = tuple(sorted(set(types_here) & set(LAMPS))) if kinds & set(LAMP_HOSTS) else ()
    return Layout(
        scene, tuple(recs), tuple(objects), lamps, tuple(f for f in free if f not in taken)
    )


# -- task sampling ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskParams:
    """What a task asks: ALFRED's ``pddl_params`` (empty strings where unused)."""

    task_type: str
    obj: str
    recep: str = ""
    toggle: str = ""


def task_candidates(layout: Layout, task_type: str) -> list[TaskParams]:
    """Every task of ``task_type`` the floor plan supports (sorted, so sampling is stable)."""
    rtypes = layout.rtypes
    if task_type == "look_at_obj_in_light":
        return [
            TaskParams(task_type, o, toggle=lamp)
            for lamp in layout.lamps
            for o in layout.object_types
        ]
    out = []
    appliance, affordance = APPLIANCE.get(task_type, ("", ""))
    if appliance and appliance not in rtypes:
        return []
    for obj in layout.object_types:
        if affordance and obj not in C.VAL_ACTION_OBJECTS[affordance]:
            continue
        for recep in sorted(rtypes - {appliance, "BathtubBasin"} if appliance else rtypes):
            others = [r for r in layout.holders(obj) if r.rtype != recep]
            if obj in C.VAL_RECEPTACLE_OBJECTS[recep] and others:
                out.append(TaskParams(task_type, obj, recep=recep))
    return out


@functools.cache
def split_scenes(split: str, task_type: str) -> tuple[int, ...]:
    """Floor plans of ``split`` where ``task_type`` has at least one task."""
    if split not in SPLIT_SCENES:
        raise ValueError(f"Unknown split {split!r}; known: {', '.join(SPLITS)}.")
    return tuple(s for s in SPLIT_SCENES[split] if task_candidates(load_layout(s), task_type))


@dataclass(frozen=True)
class Placement:
    """One object instance: THOR-style id, type and the receptacle it starts in."""

    id: str
    otype: str
    receptacle: Receptacle


def _new_id(otype: str, rec: Receptacle, rng: random.Random, used: set[str]) -> str:
    _, x, y, z = (rec.id.split("|") + ["0", "0", "0"])[:4]
    while True:
        coords = [float(v) + rng.uniform(-0.4, 0.4) for v in (x, y, z)]
        oid = otype + "".join(f"|{c:+06.2f}" for c in coords)
        if oid not in used:
            used.add(oid)
            return oid


def place_objects(layout: Layout, task: TaskParams, rng: random.Random) -> list[Placement]:
    """Put 1-3 instances of every object type of the scene (2-3 of a pick-two target) in
    receptacles that can hold them; targets never start in the goal's receptacle type."""
    used: set[str] = set()
    placements = []
    for otype in layout.object_types:
        low = 2 if (otype == task.obj and task.task_type == "pick_two_obj_and_place") else 1
        holders = layout.holders(otype)
        if otype == task.obj and task.recep:
            holders = [r for r in holders if r.rtype != task.recep]
        for _ in range(rng.randint(low, MAX_INSTANCES)):
            rec = rng.choice(holders)
            placements.append(Placement(_new_id(otype, rec, rng, used), otype, rec))
    if task.toggle:
        hosts = [r for r in layout.receptacles if r.rtype in LAMP_HOSTS]
        rec = rng.choice(hosts)
        placements.append(Placement(_new_id(task.toggle, rec, rng, used), task.toggle, rec))
    return placements


# -- PDDL text --------------------------------------------------------------------------------
def mangle(name: str) -> str:
    """ALFRED's PDDL spelling of a THOR id (the inverse of alfworld's demangler)."""
    for old, new in (("|", "_bar_"), ("-", "_minus_"), ("+", "_plus_"), (".", "_dot_")):
        name = name.replace(old, new)
    return name.replace(",", "_comma_")


def _object_facts(p: Placement) -> list[str]:
    oid = mangle(p.id)
    facts = [f"(objectType {oid} {p.otype}Type)", f"(inReceptacle {oid} {mangle(p.receptacle.id)})"]
    facts.append(f"(objectAtLocation {oid} {mangle(p.receptacle.loc)})")
    if p.otype in PICKUPABLE:
        facts.append(f"(pickupable {oid})")
    if p.otype in MOVABLE:
        facts.append(f"(isReceptacleObject {oid})")
    for affordance, predicate in (
        ("Cleanable", "cleanable"),
        ("Heatable", "heatable"),
        ("Coolable", "coolable"),
        ("Toggleable", "toggleable"),
        ("Sliceable", "sliceable"),
    ):
        if p.otype in C.VAL_ACTION_OBJECTS[affordance]:
            facts.append(f"({predicate} {oid})")
    return facts


def pddl_problem(
    name: str, layout: Layout, task: TaskParams, placements: list[Placement], start: str
) -> str:
    """The PDDL problem of a game: objects, initial facts (with ``canContain``) and goal."""
    recs = layout.receptacles
    otypes = sorted({p.otype for p in placements} | {task.obj} | ({task.toggle} - {""}))
    rtypes = sorted(layout.rtypes | ({task.recep} - {""}))
    locs = sorted({r.loc for r in recs} | {start})
    objects = ["agent1 - agent"]
    objects += [f"{t}Type - otype" for t in otypes] + [f"{t}Type - rtype" for t in rtypes]
    objects += [f"{mangle(p.id)} - object" for p in placements]
    objects += [f"{mangle(r.id)} - receptacle" for r in recs]
    objects += [f"{mangle(loc)} - location" for loc in locs]
    init = [f"(atLocation agent1 {mangle(start)})", "(= (total-cost) 0)"]
    for r in recs:
        rid = mangle(r.id)
        init += [
            f"(receptacleType {rid} {r.rtype}Type)",
            f"(receptacleAtLocation {rid} {mangle(r.loc)})",
        ]
        if r.rtype in C.OPENABLE_CLASS_SET:
            init.append(f"(openable {rid})")
    for p in placements:
        init += _object_facts(p)
    init += [
        f"(canContain {rt}Type {ot}Type)"
        for rt in rtypes
        for ot in otypes
        if ot in C.VAL_RECEPTACLE_OBJECTS.get(rt, ())
    ]
    goal = gdict[task.task_type]["pddl"].replace("#", "-")
    goal = goal.format(obj=task.obj, recep=task.recep, toggle=task.toggle, mrecep="")
    lines = [f"(define (problem {name})", "(:domain alfred)", "(:objects"]
    lines += [f"    {o}" for o in objects] + [")", "(:init"] + [f"    {f}" for f in init] + [")"]
    return "\n".join(lines) + "\n" + goal.strip() + "\n"


def task_sentence(task: TaskParams, rng: random.Random) -> str:
    """The task in words, from the goal library's templates (as ``alfworld-generate`` does)."""
    template = rng.choice(gdict[task.task_type]["templates"])
    return template.format(
        obj=task.obj.lower(), recep=task.recep.lower(), toggle=task.toggle.lower(), mrecep=""
    )


@functools.cache
def game_logic() -> tuple[str, str]:
    """ALFWorld's PDDL domain and text grammar, as shipped in the wheel."""
    return DOMAIN_PATH.read_text(), GRAMMAR_PATH.read_text()


def sample_game(split: str, task_type: str, seed: int, attempt: int = 0) -> tuple[dict, dict]:
    """Draw one candidate game: ``(game_data, traj_data)``; not yet checked for solvability."""
    task_type = canonical_task_type(task_type)
    rng = random.Random(f"alfworld-gen-v{GEN_VERSION}/{split}/{task_type}/{seed}/{attempt}")
    scenes = split_scenes(split, task_type)
    if not scenes:
        raise ValueError(f"No floor plan of split {split!r} supports {task_type!r}.")
    layout = load_layout(rng.choice(scenes))
    task = rng.choice(task_candidates(layout, task_type))
    placements = place_objects(layout, task, rng)
    start = rng.choice(layout.free_locs)
    name = f"gen_{split}_{task_type}_{seed}_{attempt}"
    domain, grammar = game_logic()
    sentence = task_sentence(task, rng)
    game = {
        "pddl_domain": domain,
        "grammar": grammar.replace("UNKNOWN GOAL", sentence),
        "pddl_problem": pddl_problem(name, layout, task, placements, start),
        "solvable": None,
        "walkthrough": None,
    }
    traj = {
        "task_type": task_type,
        "task_id": name,
        "scene": {"floor_plan": f"FloorPlan{layout.scene}", "scene_num": layout.scene},
        "pddl_params": {
            "object_target": task.obj,
            "parent_target": task.recep,
            "toggle_target": task.toggle,
            "mrecep_target": "",
            "object_sliced": False,
        },
        "turk_annotations": {"anns": [{"task_desc": sentence[0].upper() + sentence[1:] + "."}]},
        "generator": {"version": GEN_VERSION, "split": split, "seed": seed, "attempt": attempt},
    }
    return game, traj


def describe(traj: dict[str, Any]) -> str:
    """Short name of a generated game, e.g. ``pick_heat_then_place_in_recep-Apple-CounterTop-12``."""
    p = traj["pddl_params"]
    return f"{traj['task_type']}-{p['object_target']}-{p['parent_target'] or p['toggle_target']}-{traj['scene']['scene_num']}"
