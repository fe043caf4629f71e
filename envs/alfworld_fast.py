"""A faster TextWorld-PDDL engine for ALFWorld, with the same text, commands and outcomes.

Profiling the stock engine (``textworld.envs.PddlEnv``, which alfworld plays its text games on)
shows where a step goes: every admissible command and every feedback sentence is produced by
``ContextSensitiveGrammar.derive``, which re-parses its template text with tatsu on each call,
re-parses each rule's condition and each query with tatsu again, and deep-copies the
entity tables into every intermediate symbol. Loading or resetting a game translates the PDDL
to SAS with Fast Downward's translator twice (about a second for an ALFRED scene). None of that
text ever changes.

:class:`FastPddlEnv` is a subclass of the stock ``PddlEnv`` that changes only *how* the same
things are computed; nothing in textworld, tatsu or fast_downward is patched, so the stock
engine stays available beside it (the identity test and the benchmark run both):

- :class:`FastGrammar` derives text from the game's own grammar rules with a small interpreter
  over pre-parsed symbols: each template, rule condition and query is parsed once (memoized by
  its text, with the stock parsers) and contexts are shared instead of deep-copied (derivation
  never mutates them). Queries go to the same ``State.all_assignments`` in the same order, so
  the text is identical.
- Translations of a (domain, problem) pair to SAS, and the initial facts the engine reads back,
  are memoized; a reset only reloads the SAS into the planner library.
- A command that is not admissible leaves the state untouched, so the state's infos are reused
  instead of recomputed; the feedback is the stock "Nothing happens.".

``tests/envs/test_alfworld.py`` plays the same action sequences through this engine and the stock
one and requires identical observations, admissible commands, rewards and outcomes.
"""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

import fast_downward
import textworld
import textworld.envs.pddl.textgen as textgen
from textworld.core import GameState
from textworld.envs import PddlEnv
from textworld.envs.pddl import logic as pddl_logic
from textworld.logic import Proposition, Rule, State, Variable

# -- grammar ----------------------------------------------------------------------------------
# A parsed symbol is a tuple: ("t", text) terminal, ("n", name) nonterminal, ("e", code, source)
# expression, ("c", symbol, query-or-None) conditional, ("l", symbol) list.
Node = tuple
Ctx = tuple  # (variables: dict[str, EntityInfo], mapping: dict[Placeholder, Variable])


@functools.lru_cache(maxsize=4096)
def parse_query(expression: str) -> Rule:
    """``Rule.parse_conjunctive_query`` memoized by text (the Rule is only read)."""
    return Rule.parse_conjunctive_query(expression)


def _convert(symbol: textgen.Symbol) -> Node:
    """Turn one textworld grammar symbol into an immutable node."""
    if isinstance(symbol, textgen.TerminalSymbol):
        return ("t", str(symbol.symbol))
    if isinstance(symbol, textgen.NonterminalSymbol):
        return ("n", str(symbol.symbol))
    if isinstance(symbol, textgen.EvalSymbol):
        return ("e", compile(symbol.expression, "<grammar>", "eval"), symbol.expression)
    if isinstance(symbol, textgen.ConditionalSymbol):
        given = parse_query(symbol.given) if symbol.given else None
        return ("c", _convert(symbol.expression), given)
    if isinstance(symbol, textgen.ListSymbol):
        return ("l", _convert(symbol.symbol))
    raise NotImplementedError(f"Unknown grammar symbol: {type(symbol).__name__}")


@functools.lru_cache(maxsize=8192)
def parse_symbols(text: str) -> tuple[Node, ...]:
    """Parse grammar text with textworld's own parser, once per distinct text."""
    return tuple(_convert(s) for s in textgen._parse_and_convert(text, rule_name="symbols"))


class FastGrammar:
    """Derives text from a ``ContextSensitiveGrammar`` exactly as its ``derive`` does.

    The stock derivation keeps a stack of symbols, expands the top one and appends terminals to
    the output; this does the same walk over pre-parsed nodes. Rules are applied in the stock
    order: the first rule of a nonterminal whose condition has an assignment in the state.
    """

    def __init__(self, grammar: textgen.ContextSensitiveGrammar):
        self._rules: dict[str, list[tuple[Rule | None, tuple[Node, ...]]]] = {
            lhs: [
                (parse_query(r.condition) if r.condition else None, tuple(map(_convert, r.rhs)))
                for r in rules
            ]
            for lhs, rules in grammar._rules.items()
        }

    def derive(
        self, start: str, state: State, variables: dict, mapping: dict, infos: Mapping
    ) -> str:
        """Text of ``start`` in a context (the arguments of the stock ``derive``'s context)."""
        out: list[str] = []
        ctx = (variables, mapping)
        stack: list[tuple[Node, Ctx]] = [(node, ctx) for node in reversed(parse_symbols(start))]
        while stack:
            node, ctx = stack.pop()
            kind = node[0]
            if kind == "t":
                out.append(node[1])
            elif kind == "e":
                out.append(str(eval(node[1], textgen.__dict__, dict(ctx[0]))))
            elif kind == "n":
                stack.extend((n, ctx) for n in reversed(self._expand(node[1], state, ctx)))
            elif kind == "c":
                stack.extend(
                    reversed([(node[1], c) for c in self._query(node[2], state, ctx, infos)])
                )
            else:  # list
                stack.extend(reversed(self._list_items(node[1], state, ctx, infos)))
        return "".join(out)

    def _expand(self, name: str, state: State, ctx: Ctx) -> tuple[Node, ...]:
        rules = self._rules.get(name)
        if not rules:
            raise textgen.CSGUnknownSymbolError(textgen.NonterminalSymbol(name))
        for condition, rhs in rules:
            if (
                condition is None
                or next(iter(state.all_assignments(condition, ctx[1])), None) is not None
            ):
                return rhs
        raise IndexError(f"No applicable production for #{name}#")

    @staticmethod
    def _query(rule: Rule | None, state: State, ctx: Ctx, infos: Mapping) -> list[Ctx]:
        if rule is None:
            return [ctx]
        contexts = []
        for found in state.all_assignments(rule, ctx[1]):
            variables = dict(ctx[0])
            variables.update({ph.name: infos[var.name] for ph, var in found.items()})
            contexts.append((variables, {**ctx[1], **found}))
        return contexts

    def _list_items(
        self, inner: Node, state: State, ctx: Ctx, infos: Mapping
    ) -> list[tuple[Node, Ctx]]:
        if inner[0] == "c":
            items = [(inner[1], c) for c in self._query(inner[2], state, ctx, infos)]
        elif inner[0] == "e":
            items = [(("t", str(eval(inner[1], textgen.__dict__, dict(ctx[0])))), ctx)]
        else:
            raise NotImplementedError(f"A list of {inner[0]!r} symbols cannot be derived.")
        if not items:
            return [(("n", "list_empty"), ctx)]
        if len(items) == 1:
            return items
        sep, last = (("n", "list_separator"), ctx), (("n", "list_last_separator"), ctx)
        joined: list[tuple[Node, Ctx]] = []
        for item in items[:-1]:
            joined += [item, sep]
        joined[-1] = last
        return joined + [items[-1]]


# -- logic and state --------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _parsed_logic(
    domain: str, grammar: str
) -> tuple[dict, textgen.ContextSensitiveGrammar, FastGrammar]:
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


@functools.lru_cache(maxsize=256)
def _translate(domain: str, problem: str) -> tuple[Any, str, str]:
    """Fast Downward's PDDL -> SAS translation (plain and optimized for replanning), memoized.

    The translator overwrites ``sys.argv`` for its option parser; it is restored here.
    """
    argv = list(sys.argv)
    try:
        task, sas = fast_downward.pddl2sas(domain, problem)
        _, sas_replan = fast_downward.pddl2sas(domain, problem, optimize=True)
    finally:
        sys.argv[:] = argv
    return task, sas, sas_replan


_INITIAL_FACTS: dict[tuple[str, str], tuple] = {}


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
        self.task, self.sas, self.sas_replan = _translate(logic.domain, pddl_problem)
        self._actions = {a.name: a for a in self.task.actions}
        for type_ in self.task.types:
            try:
                logic.types.add(textworld.logic.Type(type_.name, type_.supertype_names))
            except ValueError:
                pass  # already known (the stock constructor ignores it too)
        downward_lib.load_sas(self.sas.encode("utf-8"))
        downward_lib.load_sas_replan(self.sas_replan.encode("utf-8"))
        self.name2type = {o.name: o.type_name for o in self.task.objects}
        key = (logic.domain, pddl_problem)
        if key not in _INITIAL_FACTS:
            _INITIAL_FACTS[key] = self._read_initial_facts()
        for facts in _INITIAL_FACTS[key]:
            self.add_facts(facts)

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
        self._pddl_state = self._new_state()
        self._entity_infos = self._get_entity_infos()

    def _derive(self, start: str, variables: dict, mapping: dict) -> str:
        grammar: FastGrammar = self._logic.fast_grammar
        return grammar.derive(start, self._pddl_state, variables, mapping, self._entity_infos)

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
