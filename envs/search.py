"""Search-R1-style question answering over a BM25 index (bm25s), with a search tool.

The data is either the generated knowledge base of :mod:`agentgym.envs.search_kb` (fictional
entities, so free of test contamination) or a user's own passages and questions in JSONL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import bm25s
from bm25s.tokenization import Tokenizer

from agentgym.envs.search_kb import Passage, build_kb, make_questions
from agentgym.tools import (
    Task,
    ToolCall,
    ToolEnv,
    ToolResult,
    format_answer,
    format_tool_call,
    tool,
)

RETRIEVED = "retrieved"
"""``info`` key of a search step: the ids of the passages it returned, best first."""


class SearchIndex:
    """A BM25 index (bm25s, English stopwords, no stemming) over passages ``title. text``."""

    def __init__(self, passages: Sequence[Passage]):
        if not passages:
            raise ValueError("SearchIndex needs at least one passage")
        self.passages = tuple(passages)
        self._tokenizer = Tokenizer(stopwords="en")
        corpus = [f"{p.title}. {p.text}" for p in self.passages]
        tokens = self._tokenizer.tokenize(corpus, return_as="tuple", show_progress=False)
        self._bm25 = bm25s.BM25()
        self._bm25.index(tokens, show_progress=False)
        self._lock = threading.Lock()

    def search(self, query: str, k: int) -> list[tuple[Passage, float]]:
        """The up to ``k`` best passages with a positive score, best first."""
        with self._lock:
            ids = self._tokenizer.tokenize(
                [query], update_vocab=False, return_as="ids", show_progress=False
            )
            k = min(k, len(self.passages))
            docs, scores = self._bm25.retrieve(ids, k=k, show_progress=False)
        return [
            (self.passages[d], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0
        ]


_INDEXES: dict[tuple, SearchIndex] = {}
_INDEX_LOCK = threading.Lock()


def cached_index(key: tuple, passages: Sequence[Passage]) -> SearchIndex:
    """The index of ``passages``, built once per process per ``key``."""
    with _INDEX_LOCK:
        if key not in _INDEXES:
            _INDEXES[key] = SearchIndex(passages)
        return _INDEXES[key]


def _read_jsonl(path: str | Path, what: str) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: each {what} line must be a JSON object")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no {what} found")
    return rows


def load_passages(path: str | Path) -> list[Passage]:
    """Passages from JSONL: ``{"id": str, "text": str, "title": str (optional)}`` per line."""
    out = []
    for i, row in enumerate(_read_jsonl(path, "passage")):
        if not isinstance(row.get("text"), str):
            raise ValueError(f"{path}: passage {i + 1} needs a string 'text'")
        out.append(Passage(str(row.get("id", i)), str(row.get("title", "")), row["text"]))
    if len({p.id for p in out}) != len(out):
        raise ValueError(f"{path}: passage ids must be unique")
    return out


def load_questions(path: str | Path) -> list[Task]:
    """Questions from JSONL, one object per line.

    Keys: ``question`` (str), ``answer`` (str) or ``answers`` (list of str), and optionally
    ``id``, ``queries`` (the oracle's searches; default: the question itself) and ``gold``
    (ids of the supporting passages, one per query, used for recall and by the oracle).
    """
    tasks = []
    for i, row in enumerate(_read_jsonl(path, "question")):
        answers = row.get("answers", [row["answer"]] if "answer" in row else [])
        if not isinstance(row.get("question"), str) or not answers:
            raise ValueError(f"{path}: question {i + 1} needs 'question' and 'answer'/'answers'")
        queries = [str(q) for q in row.get("queries", [row["question"]])]
        gold = tuple(str(g) for g in row.get("gold", ()))
        if gold and len(gold) != len(queries):
            raise ValueError(f"{path}: question {i + 1} needs one 'gold' id per query")
        tasks.append(
            Task(
                id=str(row.get("id", f"q{i}")),
                prompt=row["question"],
                answers=tuple(str(a) for a in answers),
                solution=tuple(ToolCall("search", {"query": q, "k": 3}) for q in queries),
                data={"gold": gold, "hops": len(queries)},
            )
        )
    return tasks


class SearchEnv(ToolEnv):
    """Answer a question by searching a passage collection; give the answer in a few words.

    ## Description

    Search-R1-style question answering. By default the passages describe fictional people,
    organisations, cities and countries generated from ``corpus_seed`` (about 4,450 passages
    for ``n_people=1800``); questions are 1-hop ("In which city was X born?") or chain 2-3
    relations ("In which country does the birthplace of the founder of X lie?"), each hop
    needing one search. ``corpus_path``/``questions_path`` load a user's own JSONL data
    instead (see :func:`load_passages` and :func:`load_questions`). The index is built once
    per process per corpus.

    ## Actions

    The ``agentgym.tools`` format: ``<tool_call>{"name": "search", "arguments": {"query":
    "...", "k": 3}}</tool_call>`` or ``<answer>...</answer>``. The system prompt (in the reset
    info under ``system_prompt``) lists the tools. A reply without a valid call, an unknown
    tool, wrong argument types or ``k`` outside 1..10 is answered with what was wrong and
    ``info["invalid"] = True``; the episode goes on.

    ## Observations

    The question after reset; after a search, the passages found as ``Doc i (Title: t) text``
    lines (``info["retrieved"]``: their ids); after the answer, whether it was correct.

    ## Rewards

    1 for an answer that matches the gold answer after normalization (lower case, no
    punctuation or articles), else 0; ``info["f1"]`` holds the token F1, ``info["exact_match"]``
    the match.

    ## Episode end

    Terminated by the answer. Truncated by the ``max_turns`` limit of :func:`agentgym.make`.
    ``state_key``: the task id and the canonical successful calls so far (see agentgym.tools).

    ## Arguments

    - ``multi_hop`` (bool): False for 1-hop questions, True for 2 and 3 hops (about half each).
    - ``corpus_seed`` (int), ``n_people`` (int), ``n_questions`` (int): the generated data.
    - ``split``: "train" (4 of every 5 questions), "test" (the fifth) or "all".
    - ``corpus_path``, ``questions_path``: JSONL files of a user's own data (both or neither).
    - ``reset(options={"task_id": ...})`` picks a question by id.

    ## Version history

    - v0: initial version.
    """

    instructions: ClassVar[str] = (
        "Answer the question with the help of a search engine over a collection of passages. "
        "Do not rely on memory: search for each fact the question depends on (one search per "
        "turn, following the chain of facts), then give the answer as a short name, year or "
        "phrase."
    )
    max_k: ClassVar[int] = 10

    def __init__(
        self,
        multi_hop: bool = False,
        *,
        corpus_seed: int = 0,
        n_people: int = 1800,
        n_questions: int = 1000,
        split: Literal["train", "test", "all"] = "all",
        corpus_path: str | None = None,
        questions_path: str | None = None,
    ):
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        if (corpus_path is None) != (questions_path is None):
            raise ValueError("give both corpus_path and questions_path, or neither")
        self.multi_hop, self.split = bool(multi_hop), split
        self.corpus_seed, self.n_people, self.n_questions = corpus_seed, n_people, n_questions
        self.questions_path = questions_path
        if corpus_path is not None:
            stat = Path(corpus_path).stat()
            key = ("file", str(Path(corpus_path).resolve()), stat.st_mtime_ns, stat.st_size)
            self.index = cached_index(key, load_passages(corpus_path))
        else:
            key = ("generated", corpus_seed, n_people)
            self.index = cached_index(key, build_kb(corpus_seed, n_people).passages)
        self._retrieved: set[str] = set()

    def load_tasks(self) -> Sequence[Task]:
        """The generated questions of this variant and split, or the user's questions."""
        if self.questions_path is not None:
            tasks = load_questions(self.questions_path)
        else:
            hop_counts = (2, 3) if self.multi_hop else (1,)
            questions = make_questions(
                self.corpus_seed, self.n_people, hop_counts, self.n_questions
            )
            tag = "multihop" if self.multi_hop else "1hop"
            tasks = [
                Task(
                    id=f"search-s{self.corpus_seed}-{tag}-{i:04d}",
                    prompt=q.text,
                    answers=(q.answer,),
                    solution=tuple(ToolCall("search", {"query": s, "k": 3}) for s in q.queries),
                    data={"gold": q.gold, "hops": len(q.queries)},
                )
                for i, q in enumerate(questions)
            ]
        if self.split == "all":
            return tasks
        return [t for i, t in enumerate(tasks) if (i % 5 == 4) == (self.split == "test")]

    def start_task(self, task: Task) -> str:
        self._retrieved = set()
        return f"Question: {task.prompt}"

    @tool
    def search(self, query: str, k: int = 3) -> ToolResult:
        """Search the passages with BM25; return the k best (k: 1 to 10), one per line, as
        "Doc i (Title: title) text"."""
        if not 1 <= k <= self.max_k:
            raise ValueError(f"k must be between 1 and {self.max_k}, got {k}")
        if not query.strip():
            raise ValueError("the query is empty")
        hits = self.index.search(query, k)
        self._retrieved.update(p.id for p, _ in hits)
        if not hits:
            return ToolResult("No passages found.", {RETRIEVED: []})
        lines = [f"Doc {i} (Title: {p.title}) {p.text}" for i, (p, _) in enumerate(hits, 1)]
        return ToolResult("\n".join(lines), {RETRIEVED: [p.id for p, _ in hits]})

    def oracle_action(self) -> str | None:
        """The gold searches, each hop until its gold passage was found (retrying once with
        ``k = max_k``), then the gold answer. Without gold ids: the task's searches, then answer."""
        task = self.task
        if not task.data.get("gold"):
            return super().oracle_action()
        made = {c.key() for c in self.calls}
        for call, gold in zip(task.solution, task.data["gold"], strict=True):
            if gold in self._retrieved:
                continue
            if call.key() not in made:
                return format_tool_call(call)
            wide = ToolCall(call.name, {**call.arguments, "k": self.max_k})
            if wide.key() not in made:
                return format_tool_call(wide)
        return format_answer(task.answers[0])
