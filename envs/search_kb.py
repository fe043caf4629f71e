"""A seeded knowledge base of fictional entities, its passages, and 1- to 3-hop questions.

Data for :mod:`agentgym.envs.search`, built offline and free of test contamination: every name
is made of random syllables, so no pretrained model has seen the facts. Entities and relations:

- person: ``birthplace`` (city), ``employer`` (organisation), ``birth_year``, ``occupation``
- organisation: ``founder`` (person), ``headquarters`` (city), ``founded``, ``industry``
- city: ``country``, ``mayor`` (person), ``river``, ``city_founded``
- country: ``capital`` (city), ``currency``

Each fact is written in exactly one passage, its *gold passage*: a person has an early-life
passage (birthplace, birth year, occupation) and a career passage (employer); every other
entity has one passage. Passages name other entities, so a search for a name also finds
passages that merely mention it. A question follows a chain of relations from a named entity
("In which city was the founder of Quorvane Partners born?"); each hop needs one search, whose
query (the subject's name and the relation's keyword, which its gold passage contains) is the
oracle's. Everything is a pure function of the seed.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr")
ONSETS += ("st", "th", "sh", "tr", "gl", "h", "j", "qu")
VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou", "ia")
CODAS = ("", "", "", "n", "r", "l", "s", "th", "k", "m", "v", "x")

OCCUPATIONS = (
    "glassblower", "cartographer", "shipwright", "archivist", "botanist", "clockmaker",
    "engineer", "physician", "weaver", "astronomer", "lawyer", "architect", "potter", "chemist",
    "surveyor", "librarian", "sculptor", "brewer", "printer", "teacher",
)  # fmt: skip
INDUSTRIES = (
    "textiles", "shipbuilding", "publishing", "banking", "pharmaceuticals", "mining",
    "brewing", "aviation", "telegraphy", "insurance", "glassmaking", "railways", "optics",
    "dyestuffs", "timber", "fisheries",
)  # fmt: skip
ORG_KINDS = ("Group", "Company", "Holdings", "Partners", "Consortium", "Collective", "Society")
CURRENCY_UNITS = ("crown", "mark", "florin", "thaler", "ducat", "shilling")
TRAITS = (
    "a patient mentor", "an avid chess player", "a collector of old maps", "a tireless walker",
    "a gifted violinist", "a keen gardener", "a famously punctual colleague", "a quiet reader",
)  # fmt: skip

# relation -> (type of its value or None for a literal, passage kind, query keyword)
RELATIONS: dict[str, dict[str, tuple[str | None, str, str]]] = {
    "person": {
        "birthplace": ("city", "life", "born"),
        "employer": ("org", "career", "works"),
        "birth_year": (None, "life", "born"),
        "occupation": (None, "life", "born"),
    },
    "org": {
        "founder": ("person", "main", "founded"),
        "headquarters": ("city", "main", "headquartered"),
        "founded": (None, "main", "founded"),
        "industry": (None, "main", "industry"),
    },
    "city": {
        "country": ("country", "main", "country"),
        "mayor": ("person", "main", "mayor"),
        "river": (None, "main", "river"),
        "city_founded": (None, "main", "founded"),
    },
    "country": {"capital": ("city", "main", "capital"), "currency": (None, "main", "currency")},
}
QUESTIONS = {  # the last hop asked about {np}
    "birthplace": "In which city was {np} born?",
    "employer": "Which organisation does {np} work for?",
    "birth_year": "In what year was {np} born?",
    "occupation": "What is the occupation of {np}?",
    "founder": "Who founded {np}?",
    "headquarters": "In which city is {np} headquartered?",
    "founded": "In what year was {np} founded?",
    "industry": "In which industry is {np} active?",
    "country": "In which country does {np} lie?",
    "mayor": "Who is the mayor of {np}?",
    "river": "Which river flows through {np}?",
    "city_founded": "In what year was {np} founded?",
    "capital": "What is the capital of {np}?",
    "currency": "Which currency is used in {np}?",
}
NOUN_PHRASES = {  # an intermediate hop, naming the entity it leads to
    "birthplace": "the birthplace of {np}",
    "employer": "the employer of {np}",
    "founder": "the founder of {np}",
    "headquarters": "the city where {np} is headquartered",
    "country": "the country in which {np} lies",
    "mayor": "the mayor of {np}",
    "capital": "the capital of {np}",
}
START_WEIGHTS = {"person": 0.4, "org": 0.25, "city": 0.25, "country": 0.1}


@dataclass(frozen=True)
class Passage:
    """One retrievable passage."""

    id: str
    title: str
    text: str


@dataclass(frozen=True)
class Question:
    """A question with its answer, the oracle's queries and each hop's gold passage id."""

    text: str
    answer: str
    queries: tuple[str, ...]
    gold: tuple[str, ...]
    chain: tuple[str, ...]
    """Start entity id, then the relations followed."""


@dataclass(frozen=True, eq=False)
class KnowledgeBase:
    """Entities (id -> type, name, facts), their passages, and where each fact is written."""

    types: dict[str, str]
    names: dict[str, str]
    facts: dict[str, dict[str, str]]
    """entity id -> relation -> entity id or literal text."""
    passages: tuple[Passage, ...]
    gold: dict[tuple[str, str], str]
    """(entity id, relation) -> id of the passage that states it."""

    def value_text(self, entity: str, relation: str) -> str:
        """The answer text of a fact: an entity's name or the literal."""
        value = self.facts[entity][relation]
        return self.names[value] if value in self.names else value


class _Names:
    """Unique fictional names from syllables; every word is used by one kind of name only."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: tuple[int, int] = (2, 3)) -> str:
        while True:
            n = self.rng.randint(*syllables)
            parts = [
                self.rng.choice(ONSETS) + self.rng.choice(VOWELS) + self.rng.choice(CODAS)
                for _ in range(n)
            ]
            word = "".join(parts).capitalize()
            if word.lower() not in self.used and len(word) >= 4:
                self.used.add(word.lower())
                return word


def _entities(rng: random.Random, n_people: int) -> tuple[dict, dict, dict]:
    """Types, names and facts of all entities (ids ``P0``, ``O0``, ``C0``, ``N0``)."""
    names = _Names(rng)
    first = [names.word((1, 2)) for _ in range(max(20, n_people // 6))]
    counts = {"person": n_people, "org": n_people // 3, "city": n_people // 8}
    counts["country"] = max(4, n_people // 75)
    prefix = {"person": "P", "org": "O", "city": "C", "country": "N"}
    types = {f"{prefix[t]}{i}": t for t, n in counts.items() for i in range(n)}
    ids = {t: [e for e, et in types.items() if et == t] for t in counts}
    label = {
        "person": lambda: f"{rng.choice(first)} {names.word()}",
        "org": lambda: f"{names.word()} {rng.choice(ORG_KINDS)}",
        "city": names.word,
        "country": lambda: names.word((2, 2)) + rng.choice(("ia", "land", "mark", "ora")),
    }
    name_of = {e: label[t]() for e, t in types.items()}
    facts: dict[str, dict[str, str]] = {e: {} for e in types}
    for c in ids["country"]:
        facts[c]["currency"] = f"{names.word((2, 2))} {rng.choice(CURRENCY_UNITS)}"
    for i, c in enumerate(ids["city"]):  # every country gets cities; the first is the capital
        country = ids["country"][i % len(ids["country"])]
        facts[c] |= {"country": country, "mayor": rng.choice(ids["person"])}
        facts[c] |= {"river": f"{names.word()} River", "city_founded": str(rng.randint(800, 1700))}
        facts[country].setdefault("capital", c)
    for p in ids["person"]:
        facts[p] |= {"birthplace": rng.choice(ids["city"]), "employer": rng.choice(ids["org"])}
        facts[p] |= {"birth_year": str(rng.randint(1850, 1990))}
        facts[p]["occupation"] = rng.choice(OCCUPATIONS)
    for o in ids["org"]:
        founder = rng.choice(ids["person"])
        facts[o] |= {"founder": founder, "headquarters": rng.choice(ids["city"])}
        founded = int(facts[founder]["birth_year"]) + rng.randint(22, 60)
        facts[o] |= {"founded": str(founded), "industry": rng.choice(INDUSTRIES)}
    return types, name_of, facts


def _passages(rng: random.Random, types: dict, names: dict, facts: dict) -> tuple[list, dict]:
    """The passages (title = entity name) and the gold passage of every fact."""

    def v(e: str, r: str) -> str:
        value = facts[e][r]
        return names.get(value, value)

    passages: list[Passage] = []
    gold: dict[tuple[str, str], str] = {}
    for e, t in types.items():
        n, f = names[e], (lambda r, e=e: v(e, r))
        if t == "person":
            last, trait = n.split()[-1], rng.choice(TRAITS)
            life = rng.choice((
                f"{n} was born in {f('birthplace')} in {f('birth_year')}. {last} trained as a "
                f"{f('occupation')} and is remembered as {trait}.",
                f"Born in {f('birth_year')} in {f('birthplace')}, {n} became a {f('occupation')}. "
                f"Friends describe {last} as {trait}.",
            ))  # fmt: skip
            career = rng.choice((
                f"{n} works for {f('employer')}. Colleagues there call {last} {trait}.",
                f"These days {n} works at {f('employer')}, where {last} is known as {trait}.",
            ))  # fmt: skip
            kinds = {"life": life, "career": career}
        elif t == "org":
            kinds = {"main": rng.choice((
                f"{n} is an organisation in the {f('industry')} industry, founded in "
                f"{f('founded')} by {f('founder')} and headquartered in {f('headquarters')}.",
                f"{f('founder')} founded {n} in {f('founded')}. It belongs to the "
                f"{f('industry')} industry and is headquartered in {f('headquarters')}.",
            ))}  # fmt: skip
        elif t == "city":
            kinds = {"main": rng.choice((
                f"{n} is a town in the country of {f('country')}, founded in {f('city_founded')} "
                f"on the {f('river')}. The mayor of {n} is {f('mayor')}.",
                f"Founded in {f('city_founded')}, {n} lies on the {f('river')} in the country of "
                f"{f('country')}; its mayor is {f('mayor')}.",
            ))}  # fmt: skip
        else:
            kinds = {"main": rng.choice((
                f"{n} is a country whose capital is {f('capital')}. Its currency is the "
                f"{f('currency')}.",
                f"The capital of {n} is {f('capital')}, and the {f('currency')} is its currency.",
            ))}  # fmt: skip
        for kind, text in kinds.items():
            pid = f"{e}-{kind}"
            passages.append(Passage(pid, n, text))
            for relation, (_, rel_kind, _) in RELATIONS[t].items():
                if rel_kind == kind:
                    gold[(e, relation)] = pid
    return passages, gold


@functools.lru_cache(maxsize=8)
def build_kb(seed: int = 0, n_people: int = 1800) -> KnowledgeBase:
    """The knowledge base of ``seed`` (cached): ``n_people`` people, n/3 organisations, n/8
    cities, n/75 countries; about 2.5 passages per person."""
    if n_people < 16:
        raise ValueError(f"n_people must be at least 16, got {n_people}")
    rng = random.Random(f"search-kb:{seed}")
    types, names, facts = _entities(rng, n_people)
    passages, gold = _passages(rng, types, names, facts)
    return KnowledgeBase(types, names, facts, tuple(passages), gold)


def _chain(kb: KnowledgeBase, rng: random.Random, hops: int, by_type: dict) -> Question | None:
    """A random question of ``hops`` hops, or None if the chain visits an entity twice."""
    start_type = rng.choices(list(START_WEIGHTS), weights=list(START_WEIGHTS.values()))[0]
    entity = rng.choice(by_type[start_type])
    seen, relations, queries, gold = [entity], [], [], []
    np_text = kb.names[entity]
    for hop in range(hops):
        options = RELATIONS[kb.types[entity]]
        last = hop == hops - 1
        relation = rng.choice([r for r, (to, *_) in options.items() if last or to is not None])
        keyword = options[relation][2]
        queries.append(f"{kb.names[entity]} {keyword}")
        gold.append(kb.gold[(entity, relation)])
        relations.append(relation)
        if last:
            answer = kb.value_text(entity, relation)
            value = kb.facts[entity][relation]
            if value in seen:
                return None
            return Question(
                QUESTIONS[relation].format(np=np_text),
                answer,
                tuple(queries),
                tuple(gold),
                (seen[0], *relations),
            )
        entity = kb.facts[entity][relation]
        if entity in seen:
            return None
        seen.append(entity)
        np_text = NOUN_PHRASES[relation].format(np=np_text)
    return None


@functools.lru_cache(maxsize=16)
def make_questions(seed: int, n_people: int, hops: tuple[int, ...], n: int) -> tuple[Question, ...]:
    """``n`` distinct questions over ``build_kb(seed, n_people)``, hop counts drawn from ``hops``."""
    kb = build_kb(seed, n_people)
    rng = random.Random(f"search-questions:{seed}:{hops}")
    by_type: dict[str, list[str]] = {}
    for e, t in kb.types.items():
        by_type.setdefault(t, []).append(e)
    out: dict[str, Question] = {}
    for _ in range(50 * n):
        if len(out) == n:
            break
        q = _chain(kb, rng, rng.choice(hops), by_type)
        if q is not None and q.text not in out:
            out[q.text] = q
    if len(out) < n:
        raise ValueError(f"could only make {len(out)} distinct questions of {n}; enlarge the KB")
    return tuple(out.values())
