"""A faster TextWorld-PDDL engine for ALFWorld, with the same text, commands and outcomes.

Profiling the stock engine (``textworld.envs.PddlEnv``, which alfworld plays its text games on)
shows where a step goes: every admissible command and every feedback sentence is produced by
``ContextSensitiveGrammar.derive``, which re-parses its template text with tatsu on each call,
re-parses each rule's condition and each query with tatsu again, and deep-copies the
entity tables into every intermediate symbol. Loading or resetting a game translates the PDDL
to SAS with Fast Downward's translator twice (about a second for an ALFRED scene). None of that
text ever changes.

:class:`FastPddlEnv` is a subclass of the stock ``PddlEnv`` that changes only *how* the same
things are computed; no code of textworld, tatsu or fast_downward is patched, so the stock
engine stays available beside it (the identity test and the benchmark run both):

- :class:`~agentgym.envs.alfworld_grammar.FastGrammar` derives text from the game's own grammar
  rules over pre-parsed symbols: each template, rule condition and query is parsed once
  (memoized by its text, with the stock parsers), contexts are shared instead of deep-copied
  (derivation never mutates them), and query answers come from the same
  ``State.all_assignments`` in the same order, reused while the facts they read are unchanged
  (:class:`FastPddlState` stamps each predicate when its facts change). The text is identical.
- Translations of a (domain, problem) pair to SAS, and the initial facts the engine reads back,
  are memoized; a reset only reloads the SAS into the planner library.
- A command that is not admissible leaves the state untouched, so the state's infos are reused
  instead of recomputed; the feedback is the stock "Nothing happens.".

Memory: textworld interns every ``Proposition`` and ``Signature`` it creates in one
module-level dict (``mementos.core._memento_cache``, keyed by name and arguments) that is never
cleared. ALFRED object names are unique to a floor plan and its object positions, so every newly
loaded game left its few thousand facts (with their ``Variable`` objects) there for good: about
1-3 MB per new game, the whole of ALFWorld's growth over a training run. Importing this module
makes that table weak (:func:`weak_interning`): an interned fact lives as long as something
else holds it, and equal facts alive at the same time are still one object, so interning keeps
its meaning. The memos below are bounded and small (a few games), so memory stays flat.

``tests/envs/test_alfworld.py`` plays the same action sequences through this engine and the stock
one and requires identical observations, admissible commands, rewards and outcomes.
"""

from __future__ import annotations

import functools
import json
import sys
import weakref
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

import fast_downward
import mementos.core
import textworld
from textworld.core import GameState
from textworld.envs import PddlEnv
from textworld.envs.pddl import logic as pddl_logic
from textworld.envs.pddl.textgen import ContextSensitiveGrammar
from textworld.logic import Proposition, Variable

from agentgym.envs.alfworld_grammar import (
    CHANGES,
    AssignmentCache,
    DeriveContext,
    FastGrammar,
    parse_query,
    parse_symbols,
)


# -- memory -----------------------------------------------------------------------------------
def weak_interning() -> None:
    """Make textworld's table of interned facts hold them weakly (see the module docstring).

    ``mementos`` looks the table up as a module global on every construction, so swapping the
    dict for a ``WeakValueDictionary`` with the same entries changes only how long unused
    entries live. Idempotent.
    """
    table = mementos.core._memento_cache
    if not isinstance(table, weakref.WeakValueDictionary):
        mementos.core._memento_cache = weakref.WeakValueDictionary(table)


weak_interning()


# -- logic and state --------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _parsed_logic(domain: str, grammar: str) -> tuple[dict, ContextSensitiveGrammar, FastGrammar]:
    logic = pddl_logic.GameLogic(domain=domain, grammar=grammar)
    return logic.actions, logic.grammar, FastGrammar(logic.grammar)


def game_logic(domain: str, grammar: str) -> pddl_logic.GameLogic:
    """A ``GameLogic`` whose parsed actions and grammar are shared across loads (read-only);
    its type hierarchy is its own, as the state adds types to it."""
    logic = pddl_logic.GameLogic.__new__(pddl_logic.GameLogic)
    logic.actions, logic.grammar, logic.fast_grammar = _parsed_logic(domain, grammar)
    logic.domain = domain
    logic.types = textworld.logic.TypeHierarchy()
    return logic


def _pddl2sas(domain: str, problem: str, optimize: bool) -> tuple[Any, str]:
    argv = list(sys.argv)
    try:
        return fast_downward.pddl2sas(domain, problem, optimize=optimize)
    finally:
        sys.argv[:] = argv  # the translator overwrites sys.argv for its option parser


@functools.lru_cache(maxsize=16)
def translate(domain: str, problem: str) -> tuple[Any, str]:
    """Fast Downward's plain PDDL -> SAS translation (the engine's state), memoized."""
    return _pddl2sas(domain, problem, optimize=False)


@functools.lru_cache(maxsize=16)
def translate_replan(domain: str, problem: str) -> str:
    """The optimized translation the planner searches (``replan``), memoized."""
    return _pddl2sas(domain, problem, optimize=True)[1]


_INITIAL_FACTS: dict[tuple[str, str], tuple] = {}
_INITIAL_FACTS_MAX = 16


def clear_caches() -> None:
    """Forget every memo: parsed grammars, symbols and queries, translations, initial facts
    (for cold-start measurements)."""
    _parsed_logic.cache_clear()
    parse_symbols.cache_clear()
    parse_query.cache_clear()
    translate.cache_clear()
    translate_replan.cache_clear()
    _INITIAL_FACTS.clear()


class FastPddlState(pddl_logic.PddlState):
    """``PddlState`` built from memoized translations; same facts, added in the same order."""

    def __init__(self, downward_lib: Any, pddl_problem: str, logic: pddl_logic.GameLogic):
        self._facts = defaultdict(set)
        self._vars_by_name = {}
        self._vars_by_type = defaultdict(set)
        self._var_counts = Counter()
        self._logic = logic
        self.downward_lib = downward_lib
        self.pddl_problem = pddl_problem
        self.task, self.sas = translate(logic.domain, pddl_problem)
        self._replan_loaded = False
        self._actions = {a.name: a for a in self.task.actions}
        for type_ in self.task.types:
            try:
                logic.types.add(textworld.logic.Type(type_.name, type_.supertype_names))
            except ValueError:
                pass  # already known (the stock constructor ignores it too)
        downward_lib.load_sas(self.sas.encode("utf-8"))
        self.name2type = {o.name: o.type_name for o in self.task.objects}
        key = (logic.domain, pddl_problem)
        if key not in _INITIAL_FACTS:
            if len(_INITIAL_FACTS) >= _INITIAL_FACTS_MAX:
                _INITIAL_FACTS.pop(next(iter(_INITIAL_FACTS)))
            _INITIAL_FACTS[key] = self._read_initial_facts()
        for facts in _INITIAL_FACTS[key]:
            self.add_facts(facts)
        self.versions: dict[str, int] = {}  # predicate -> last change touching it (0: as loaded)

    def add_fact(self, prop: Proposition) -> None:
        """Add a fact, stamping its predicate as changed (see :class:`AssignmentCache`)."""
        super().add_fact(prop)
        if hasattr(self, "versions"):
            self.versions[prop.name] = next(CHANGES)

    def remove_fact(self, prop: Proposition) -> None:
        """Remove a fact, stamping its predicate as changed."""
        super().remove_fact(prop)
        if hasattr(self, "versions"):
            self.versions[prop.name] = next(CHANGES)

    @property
    def sas_replan(self) -> str:
        """The optimized translation for the planner, made on first use."""
        return translate_replan(self._logic.domain, self.pddl_problem)

    def replan(self, infos: Mapping) -> list[str]:
        """The stock ``replan``, after loading the planner's translation on first use."""
        if not self._replan_loaded:
            self.downward_lib.load_sas_replan(self.sas_replan.encode("utf-8"))
            self._replan_loaded = True
        return super().replan(infos)

    def _read_initial_facts(self) -> tuple[tuple, tuple]:
        """Facts of the problem's ``:init``, then those the planner library reports true, read as
        the stock constructor reads them (once per problem)."""
        declared = [self._atom_fact(atom) for atom in self.task.init]
        atoms = (pddl_logic.Atom * self.downward_lib.get_state_size())()
        self.downward_lib.get_state(atoms)
        engine = [atom.get_fact(self.name2type) for atom in atoms]
        return tuple(f for f in declared if f is not None), tuple(
            f for f in engine if not f.is_negation
        )

    def _atom_fact(self, atom: Any) -> Proposition | None:
        pddl = fast_downward.translate.pddl
        if isinstance(atom, pddl.conditions.Atom):
            if atom.predicate == "=":
                return None
            return Proposition(atom.predicate, [Variable(a, self.name2type[a]) for a in atom.args])
        if isinstance(atom, pddl.f_expression.Assign):
            name = f"{atom.expression.value}"
            if atom.fluent.symbol == "total-cost" or str.isdigit(name):
                return None  # the cost counter and distances are not facts
            return Proposition(name, [Variable(a, self.name2type[a]) for a in atom.fluent.args])
        return None


# -- environment ------------------------------------------------------------------------------
class FastPddlEnv(PddlEnv):
    """The stock ``PddlEnv`` with memoized parsing and translation (see the module docstring).

    Same constructor, ``load``, ``reset`` and ``step`` as the stock engine, and the same game
    states out of them.
    """

    def load(self, filename_or_data: str | Mapping) -> None:
        if isinstance(filename_or_data, Mapping):
            data, self._game_file = filename_or_data, None
        else:
            with open(filename_or_data) as f:
                data = json.load(f)
            self._game_file = filename_or_data
        self._game_data = data
        self.walkthrough = data.get("walkthrough", None)
        self._logic = game_logic(data["pddl_domain"], data["grammar"])
        self._answers = AssignmentCache()
        self._pddl_state = self._new_state()
        self._entity_infos = self._get_entity_infos()

    def _derive(self, start: str, variables: dict, mapping: dict) -> str:
        context = DeriveContext(
            self._pddl_state, self._entity_infos, variables, mapping, self._answers
        )
        return self._logic.fast_grammar.derive(start, context)

    def _new_state(self) -> FastPddlState:
        return FastPddlState(self.downward_lib, self._game_data["pddl_problem"], self._logic)

    def _gather_infos(self) -> None:
        state, pddl = self.state, self._pddl_state
        state["command_templates"] = sorted({a.template for a in self._logic.actions.values()})
        state["won"] = pddl.check_goal()
        state["lost"] = False
        state["_entity_infos"] = dict(self._entity_infos)
        state["_facts"] = list(pddl.facts)
        if self.request_infos.facts:
            state["facts"] = list(map(self._get_human_readable_fact, state["_facts"]))
        state["last_action"] = None
        state["_last_action"] = self._last_action
        state["_valid_actions"] = list(pddl.all_applicable_actions())
        names = {k: info.name for k, info in self._entity_infos.items()}
        commands = []
        for action in state["_valid_actions"]:
            variables = {
                ph.name: self._entity_infos[var.name] for ph, var in action.mapping.items()
            }
            action.command_template = self._derive(
                action.command_template, variables, action.mapping
            )
            commands.append(action.format_command(names))
        state["_valid_commands"] = commands
        state["admissible_commands"] = sorted(set(commands))
        if self.request_infos.moves:
            state["moves"] = self._moves
        if self.request_infos.policy_commands:
            state["policy_commands"] = pddl.replan(self._entity_infos)

    def reset(self) -> GameState:
        self._pddl_state = self._new_state()
        self.prev_state = None
        self.state = GameState()
        self._last_action = None
        self._moves = 0
        self.state.feedback = self._derive("#intro#", {}, {})
        self.state.raw = self.state.feedback
        self._gather_infos()
        if "walkthrough" in self.request_infos.extras:
            self.state["extra.walkthrough"] = self.walkthrough or self._pddl_state.replan(
                self._entity_infos
            )
        return self.state

    def step(self, command: str) -> tuple[GameState, int, bool]:
        command = command.strip()
        self.prev_state = self.state
        self.state = GameState()
        self.state.last_command = command
        self._last_action = None
        try:
            index = self.prev_state["_valid_commands"].index(command)
        except ValueError:
            index = None
        if index is None:
            self.state.feedback = "Nothing happens."
            self._reuse_infos()
        else:
            self._last_action = self.prev_state["_valid_actions"][index]
            self._pddl_state.apply(self._last_action)
            variables = {
                ph.name: self._entity_infos[v.name] for ph, v in self._last_action.mapping.items()
            }
            self.state.feedback = self._derive(
                self._last_action.feedback_rule, variables, self._last_action.mapping
            )
            self._moves += 1
            self._gather_infos()
        self.state.raw = self.state.feedback
        if "walkthrough" in self.request_infos.extras:
            self.state["extra.walkthrough"] = self.prev_state["extra.walkthrough"]
        self.state["score"] = 1 if self.state["won"] else 0
        self.state["done"] = self.state["won"] or self.state["lost"]
        return self.state, self.state["score"], self.state["done"]

    def _reuse_infos(self) -> None:
        """Infos after a command that changed nothing: the previous ones (the state is the same)."""
        for key, value in self.prev_state.items():
            if key not in ("feedback", "raw", "last_command", "score", "done", "extra.walkthrough"):
                self.state[key] = list(value) if isinstance(value, list) else value
        self.state["_last_action"] = None
        if self.request_infos.moves:
            self.state["moves"] = self._moves
