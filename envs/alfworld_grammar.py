"""Text from TextWorld's PDDL grammar without re-parsing: the grammar half of the fast engine.

The stock ``ContextSensitiveGrammar.derive`` (``textworld.envs.pddl.textgen``) re-parses its start
text with tatsu on every call, re-parses each production's condition and each query, and
deep-copies the context (entity tables included) into every symbol. :class:`FastGrammar` walks
the same symbols in the same order but parses each text once (with textworld's own parsers),
shares contexts (a derivation never mutates one) and asks ``State.all_assignments`` for query
answers through an :class:`AssignmentCache`, which reuses an answer while the facts it reads are
unchanged. The output is the stock output; ``tests/envs/test_alfworld.py`` checks it.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import textworld.envs.pddl.textgen as textgen
from textworld.logic import Placeholder, Rule, State

# A parsed symbol is a tuple: ("t", text) terminal, ("n", name) nonterminal, ("e", code, source)
# expression, ("c", symbol, Query-or-None) conditional, ("l", symbol) list.
Node = tuple
Ctx = tuple  # (variables: dict[str, EntityInfo], mapping: dict[Placeholder, Variable])
CHANGES = itertools.count(1)
"""Stamps for fact changes; unique across states (see :class:`AssignmentCache`)."""


@dataclass(frozen=True)
class Query:
    """A parsed conjunctive query with what its answers depend on."""

    text: str
    rule: Rule
    predicates: tuple[str, ...]
    """Names of the predicates it reads: its answers change only when their facts change."""
    placeholders: tuple[Placeholder, ...]
    free: bool
    """Has placeholders no predicate constrains (answers then depend on all variables)."""


@functools.lru_cache(maxsize=4096)
def parse_query(text: str) -> Query:
    """``Rule.parse_conjunctive_query`` memoized by text (the Rule is only read)."""
    rule = Rule.parse_conjunctive_query(text)
    constrained = {ph for pred in rule.preconditions for ph in pred.parameters}
    names = tuple(sorted({pred.name for pred in rule.preconditions}))
    return Query(text, rule, names, rule.placeholders, bool(set(rule.placeholders) - constrained))


class AssignmentCache:
    """Memo of ``State.all_assignments`` answers for one loaded game.

    An answer is a function of the query, the mapping it starts from and the facts of the
    predicates the query reads. :class:`FastPddlState` stamps each predicate with the change that
    last touched its facts (0 = as loaded), so an answer is reused while those stamps are
    unchanged: e.g. "go to X" commands read only the static ``receptacleatlocation`` facts.
    When every placeholder of the query is already bound, the answer is the mapping itself or
    nothing, and only the bound values of the query's own placeholders matter.
    """

    MAX_ENTRIES = 50_000

    def __init__(self) -> None:
        self._memo: dict[tuple, Any] = {}

    def clear(self) -> None:
        self._memo.clear()

    def assignments(self, state: State, query: Query, mapping: dict) -> list[dict]:
        versions = getattr(state, "versions", None)
        if query.free or versions is None:
            return list(state.all_assignments(query.rule, mapping))
        stamp = tuple(versions.get(name, 0) for name in query.predicates)
        if all(ph in mapping for ph in query.placeholders):
            key = (query.text, stamp, tuple(mapping[ph] for ph in query.placeholders))
            found = self._memo.get(key)
            if found is None:
                found = next(iter(state.all_assignments(query.rule, mapping)), None) is not None
                self._store(key, found)
            return [dict(mapping)] if found else []
        key = (query.text, stamp, frozenset(mapping.items()))
        answers = self._memo.get(key)
        if answers is None:
            answers = list(state.all_assignments(query.rule, mapping))
            self._store(key, answers)
        return answers

    def _store(self, key: tuple, value: Any) -> None:
        if len(self._memo) >= self.MAX_ENTRIES:
            self._memo.clear()
        self._memo[key] = value


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
    Queries are answered by ``State.all_assignments`` (through an :class:`AssignmentCache`),
    so lists come out in the stock order.
    """

    def __init__(self, grammar: textgen.ContextSensitiveGrammar):
        self._rules: dict[str, list[tuple[Query | None, tuple[Node, ...]]]] = {
            lhs: [
                (parse_query(r.condition) if r.condition else None, tuple(map(_convert, r.rhs)))
                for r in rules
            ]
            for lhs, rules in grammar._rules.items()
        }

    def derive(self, start: str, context: DeriveContext) -> str:
        """Text of ``start`` (a template or ``#symbol#``) in ``context``."""
        out: list[str] = []
        ctx = (context.variables, context.mapping)
        stack: list[tuple[Node, Ctx]] = [(node, ctx) for node in reversed(parse_symbols(start))]
        while stack:
            node, ctx = stack.pop()
            kind = node[0]
            if kind == "t":
                out.append(node[1])
            elif kind == "e":
                out.append(str(eval(node[1], textgen.__dict__, dict(ctx[0]))))
            elif kind == "n":
                stack.extend((n, ctx) for n in reversed(self._expand(node[1], ctx, context)))
            elif kind == "c":
                answers = self._query(node[2], ctx, context)
                stack.extend(reversed([(node[1], c) for c in answers]))
            else:  # list
                stack.extend(reversed(self._list_items(node[1], ctx, context)))
        return "".join(out)

    def _expand(self, name: str, ctx: Ctx, context: DeriveContext) -> tuple[Node, ...]:
        rules = self._rules.get(name)
        if not rules:
            raise textgen.CSGUnknownSymbolError(textgen.NonterminalSymbol(name))
        for condition, rhs in rules:
            if condition is None or context.cache.assignments(context.state, condition, ctx[1]):
                return rhs
        raise IndexError(f"No applicable production for #{name}#")

    @staticmethod
    def _query(query: Query | None, ctx: Ctx, context: DeriveContext) -> list[Ctx]:
        if query is None:
            return [ctx]
        contexts = []
        for found in context.cache.assignments(context.state, query, ctx[1]):
            variables = dict(ctx[0])
            variables.update({ph.name: context.infos[var.name] for ph, var in found.items()})
            contexts.append((variables, {**ctx[1], **found}))
        return contexts

    def _list_items(self, inner: Node, ctx: Ctx, context: DeriveContext) -> list[tuple[Node, Ctx]]:
        if inner[0] == "c":
            items = [(inner[1], c) for c in self._query(inner[2], ctx, context)]
        elif inner[0] == "e":
            items = [(("t", str(eval(inner[1], textgen.__dict__, dict(ctx[0])))), ctx)]
        else:
            raise NotImplementedError(f"A list of {inner[0]!r} symbols cannot be derived.")
        if len(items) < 2:
            return items or [(("n", "list_empty"), ctx)]
        sep, last = (("n", "list_separator"), ctx), (("n", "list_last_separator"), ctx)
        joined: list[tuple[Node, Ctx]] = []
        for item in items[:-1]:
            joined += [item, sep]
        joined[-1] = last
        return joined + [items[-1]]


@dataclass
class DeriveContext:
    """What a derivation reads: the state, the entity table, the bindings, the answer memo."""

    state: State
    infos: Mapping
    variables: dict
    mapping: dict
    cache: AssignmentCache
