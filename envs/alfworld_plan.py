"""Expert plans for ALFWorld games with the engine's own planner, on the task's relevant part.

The planner inside TextWorld's PDDL engine (Fast Downward, called with a uniform-cost lazy
search) finds the plans behind ``policy_commands``. On a whole ALFRED kitchen it can take minutes:
with a dozen cabinets and drawers that open at cost 1, the states cheaper than the goal number
in the millions. Objects and receptacles the task never touches cannot shorten a plan (no action
depends on another object: hands hold one thing, receptacles have no capacity), so the plan is
searched on the *relevant* problem: the current facts restricted to the target objects (and the
lamp), the receptacles that hold them, the receptacles of the goal's type and of the appliance
(sink basin, microwave, fridge), and, when the agent holds something else, one receptacle where
it can be put down. A plan of that problem is a plan of the game; callers replay it on the full
game to check (the generator keeps a game only if the replay wins).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import fast_downward
from textworld.logic import Proposition

from agentgym.envs.alfworld_fast import translate_replan

APPLIANCE_TYPE = {
    "pick_clean_then_place_in_recep": "SinkBasin",
    "pick_heat_then_place_in_recep": "Microwave",
    "pick_cool_then_place_in_recep": "Fridge",
}
ALWAYS_KEPT = ("agent", "location", "otype", "rtype")


def goal_text(pddl_problem: str) -> str:
    """The ``(:goal ...)`` part of a problem, with the parenthesis that closes ``define``."""
    start = pddl_problem.find("(:goal")
    if start < 0:
        raise ValueError("The PDDL problem has no (:goal ...) section.")
    return pddl_problem[start:]


def relevant_types(params: Mapping[str, Any], task_type: str) -> tuple[set[str], set[str]]:
    """Object and receptacle type names (PDDL spelling, lower case) a task involves."""
    objs = {params.get("object_target") or "", params.get("toggle_target") or ""} - {""}
    receps = {params.get("parent_target") or "", APPLIANCE_TYPE.get(task_type, "")} - {""}
    return {f"{t}type".lower() for t in objs}, {f"{t}type".lower() for t in receps}


def _by_predicate(facts: Iterable[Proposition]) -> dict[str, list[tuple[str, ...]]]:
    table: dict[str, list[tuple[str, ...]]] = {}
    for fact in facts:
        table.setdefault(fact.name, []).append(tuple(v.name for v in fact.arguments))
    return table


def kept_entities(facts: list[Proposition], obj_types: set[str], rec_types: set[str]) -> set[str]:
    """Names of the objects and receptacles the relevant problem keeps."""
    table = _by_predicate(facts)
    held = {o for _, o in table.get("holds", [])}
    objs = {o for o, t in table.get("objecttype", []) if t in obj_types} | held
    recs = {r for r, t in table.get("receptacletype", []) if t in rec_types}
    recs |= {r for o, r in table.get("inreceptacle", []) if o in objs}
    rtype = dict(table.get("receptacletype", []))
    otype = dict(table.get("objecttype", []))
    can = set(table.get("cancontain", []))
    openable = {r for (r,) in table.get("openable", [])}
    for o in sorted(held):
        if not any((rtype.get(r), otype.get(o)) in can for r in recs):
            spots = sorted((r in openable, r) for r in rtype if (rtype[r], otype.get(o)) in can)
            recs |= {spots[0][1]} if spots else set()
    return objs | recs


def relevant_problem(facts: Iterable[Proposition], goal: str, keep: set[str]) -> str:
    """A PDDL problem with the given facts restricted to ``keep`` (plus agent, locations and
    types), and ``goal`` (as returned by :func:`goal_text`)."""
    objects: dict[str, str] = {}
    init = ["(= (total-cost) 0)"]
    for fact in facts:
        if "@" in fact.name:
            continue  # derived (axiom) atoms of the translator, not problem facts
        args = fact.arguments
        if all(v.type in ALWAYS_KEPT or v.name in keep for v in args):
            objects.update((v.name, v.type) for v in args)
            init.append(f"({fact.name} {' '.join(v.name for v in args)})")
    lines = ["(define (problem relevant)", "(:domain alfred)", "(:objects"]
    lines += [f"    {name} - {type_}" for name, type_ in sorted(objects.items())]
    lines += [")", "(:init"] + [f"    {f}" for f in sorted(set(init))] + [")"]
    return "\n".join(lines) + "\n" + goal


def expert_plan(env: Any, params: Mapping[str, Any], task_type: str) -> list[str] | None:
    """Commands of a cheapest plan from the current state of a loaded engine, or None.

    ``env`` is a (wrapped) TextWorld ``PddlEnv`` after ``reset``; ``params`` is the game's
    ``traj_data["pddl_params"]``. The plan is searched on the relevant problem with the planner
    library the engine holds, and written with the engine's own command templates.
    """
    engine = env.unwrapped if hasattr(env, "unwrapped") else env
    state = engine._pddl_state
    facts = list(state.facts)
    keep = kept_entities(facts, *relevant_types(params, task_type))
    problem = relevant_problem(facts, goal_text(engine._game_data["pddl_problem"]), keep)
    sas = translate_replan(engine._game_data["pddl_domain"], problem)
    lib = engine.downward_lib
    if not lib.solve_sas(sas.encode("utf-8"), False):
        return None
    operators = (fast_downward.Operator * lib.get_last_plan_length())()
    lib.get_last_plan(operators)
    return state.plan_to_templated_actions([op.name for op in operators], engine._entity_infos)
