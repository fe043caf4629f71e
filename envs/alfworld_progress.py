"""Which sub-goals of an ALFWorld task hold, read from the engine's PDDL facts.

A sparse 0/1 reward says nothing until the task is done; the engine's facts say how far an
episode got. :class:`ProgressTracker` turns the facts of each state into named sub-goals, in
the order an expert reaches them, per task type (``T``: the target object type, ``R``: the
goal receptacle type, from the game's ``pddl_params``):

- ``seen``: an object of type ``T`` has been in view this episode: at the agent's location,
  in a receptacle that is open or has no door, or held (the one sub-goal with memory);
- ``held``: the agent holds an object of type ``T`` (or one is already in place);
- ``cleaned`` / ``heated`` / ``cooled`` (those task types): a held or placed ``T`` object
  is clean / hot / cool;
- ``at_receptacle``: the agent is at a receptacle of type ``R`` holding a ready ``T`` object
  (cleaned/heated/cooled as the task needs), or one is in place;
- ``placed``: a ready ``T`` object is in a receptacle of type ``R`` (the goal, for one object);
- pick two: ``held_second``, ``at_receptacle_second``, ``placed_second``: the same for a
  second ``T`` object once one is in place;
- look at an object in light: ``at_lamp`` (the agent is where a lamp of the task's type is) and
  ``lamp_on`` (that lamp is on there), instead of the receptacle steps.

Every sub-goal but ``seen`` is a function of the current facts, so the count can go down
(putting the object back). "Where" is the agent's location: receptacles that share one count
as reached together. The won state satisfies every sub-goal of its task type.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from textworld.logic import Proposition

READY = {  # task type -> (sub-goal, the fact that makes the object ready)
    "pick_clean_then_place_in_recep": ("cleaned", "isclean"),
    "pick_heat_then_place_in_recep": ("heated", "ishot"),
    "pick_cool_then_place_in_recep": ("cooled", "iscool"),
}


def subgoals(task_type: str) -> tuple[str, ...]:
    """The sub-goals of a task type, in the order an expert reaches them."""
    if task_type == "look_at_obj_in_light":
        return ("seen", "held", "at_lamp", "lamp_on")
    ready = (READY[task_type][0],) if task_type in READY else ()
    steps = ("seen", "held", *ready, "at_receptacle", "placed")
    if task_type == "pick_two_obj_and_place":
        steps += ("held_second", "at_receptacle_second", "placed_second")
    return steps


def _type_name(name: str | None) -> str:
    return f"{name}type".lower() if name else ""


class ProgressTracker:
    """Sub-goals of one episode (see the module docstring); ``update`` once per state."""

    def __init__(self, params: Mapping[str, Any], task_type: str) -> None:
        self.task_type = task_type
        self.names = subgoals(task_type)
        self.target = _type_name(params.get("object_target"))
        self.receptacle = _type_name(params.get("parent_target"))
        self.lamp = _type_name(params.get("toggle_target"))
        self.ready_fact = READY[task_type][1] if task_type in READY else None
        self.seen = False

    def update(self, facts: Iterable[Proposition]) -> dict[str, bool]:
        """The sub-goals that hold in the state of ``facts`` (after ``seen`` is updated)."""
        f: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        for fact in facts:
            f[fact.name].append(tuple(v.name for v in fact.arguments))
        here = {loc for _, loc in f["atlocation"]}
        otype = dict(f["objecttype"])
        targets = {o for o, t in otype.items() if t == self.target}
        held = {o for _, o in f["holds"]} & targets
        opened = {r for (r,) in f["opened"]}
        closed = {r for (r,) in f["openable"]} - opened
        at = {o for o, loc in f["objectatlocation"] if loc in here}
        inside = dict(f["inreceptacle"])  # object -> receptacle (one each)
        visible = {o for o in targets & at if inside.get(o) not in closed}
        self.seen = self.seen or bool(visible | held)
        if self.task_type == "look_at_obj_in_light":
            lamps = {o for o, t in otype.items() if t == self.lamp and o in at}
            on = {(o,) for o in lamps} & set(f["istoggled"])
            return {"seen": self.seen, "held": bool(held), "at_lamp": bool(lamps),
                    "lamp_on": bool(on)}  # fmt: skip
        ready = {o for (o,) in f[self.ready_fact]} if self.ready_fact else targets
        rtype = dict(f["receptacletype"])
        goal_here = any(
            rtype.get(r) == self.receptacle and loc in here for r, loc in f["receptacleatlocation"]
        )
        placed = {o for o in targets & ready if rtype.get(inside.get(o, "")) == self.receptacle}
        holding_ready = bool(held & ready)
        one, two = len(placed) >= 1, len(placed) >= 2
        out = {"seen": self.seen, "held": bool(held) or one}
        if self.ready_fact:
            out[READY[self.task_type][0]] = holding_ready or one
        out["at_receptacle"] = (holding_ready and goal_here) or one
        out["placed"] = one
        if self.task_type == "pick_two_obj_and_place":
            out["held_second"] = (one and bool(held)) or two
            out["at_receptacle_second"] = (one and holding_ready and goal_here) or two
            out["placed_second"] = two
        return out


def progress_info(progress: Mapping[str, bool]) -> dict[str, Any]:
    """The info entries: ``progress`` (sub-goal -> bool) and ``progress_count`` (how many hold)."""
    return {"progress": dict(progress), "progress_count": sum(map(bool, progress.values()))}
