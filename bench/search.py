"""Retrieval quality and oracle success of the search environments.

    python bench/search.py [--questions 200] [--corpus-seed 0] [--n-people 1800]

For each registered variant (1-hop, multi-hop):

- recall@k (k = 1, 3, 5, 10) of the gold passages: for every hop of the first ``questions``
  questions, is the passage that states the hop's fact among the top k of the oracle's query
  (the subject's name and the relation's keyword)? Also recall@3 of the name alone, and the
  share of questions whose every gold passage is in the top 10 of one search with the whole
  question (why multi-hop needs a search per hop).
- oracle episodes: ``rollout.collect`` with the OraclePolicy and the ``tool`` action format over
  ``questions`` seeds; success rate, turns and searches per episode, gold passages found by
  the searches the episodes actually made, and searches the oracle had to widen to k = 10.
- timings: building the corpus and index (first ``make``), and queries per second.
"""

from __future__ import annotations

import argparse
import time

from agentgym.envs.search import SearchEnv, cached_index
from agentgym.envs.search_kb import build_kb, make_questions
from agentgym.policy.scripted import OraclePolicy
from agentgym.rollout import collect
from agentgym.tools import parse_tool_call

VARIANTS = {"agentgym/Search-1Hop-v0": (1,), "agentgym/Search-MultiHop-v0": (2, 3)}
KS = (1, 3, 5, 10)


def recall_table(index, questions) -> dict[str, float]:
    """Recall@k of the gold passages under the oracle's queries (and under the subject's name
    alone), and the share of questions whose gold passages one whole-question search finds."""
    hits = dict.fromkeys(KS, 0)
    name_hits = total = whole = 0
    for q in questions:
        for query, gold in zip(q.queries, q.gold, strict=True):
            ranked = [p.id for p, _ in index.search(query, max(KS))]
            for k in KS:
                hits[k] += gold in ranked[:k]
            name = query.rsplit(" ", 1)[0]  # the query without the relation keyword
            name_hits += gold in {p.id for p, _ in index.search(name, 3)}
            total += 1
        whole += set(q.gold) <= {p.id for p, _ in index.search(q.text, 10)}
    out = {f"recall@{k}": hits[k] / total for k in KS}
    out["recall@3, name-only queries"] = name_hits / total
    out["question as one query: all gold in top 10"] = whole / len(questions)
    return out


def oracle_episodes(env_id: str, n: int, env_kwargs: dict) -> dict[str, float]:
    """Play ``n`` oracle episodes through the rollout; success and what the searches found."""
    batch = collect(
        env_id, OraclePolicy(), tasks=n, group_size=1, action_format="tool", env_kwargs=env_kwargs
    )
    env = SearchEnv(**env_kwargs, multi_hop=VARIANTS[env_id] != (1,))
    gold_found = gold_total = searches = widened = 0
    for traj in batch.trajectories:
        env.reset(options={"task_id": traj.task_id})
        gold = set(env.task.data["gold"])
        found: set[str] = set()
        for turn in traj.turns:
            if turn.info.get("tool_call", {}).get("name") == "search":
                searches += 1
                widened += parse_tool_call(turn.action).arguments["k"] == SearchEnv.max_k
                found.update(turn.info.get("retrieved", []))
        gold_found += len(gold & found)
        gold_total += len(gold)
    trajs = batch.trajectories
    return {
        "success": sum(t.won for t in trajs) / len(trajs),
        "turns/episode": sum(len(t.turns) for t in trajs) / len(trajs),
        "searches/episode": searches / len(trajs),
        "gold passages its searches found": gold_found / gold_total,
        "widened searches": widened,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=200, help="questions per variant")
    parser.add_argument("--corpus-seed", type=int, default=0)
    parser.add_argument("--n-people", type=int, default=1800)
    args = parser.parse_args(argv)
    kwargs = {"corpus_seed": args.corpus_seed, "n_people": args.n_people}

    start = time.perf_counter()
    kb = build_kb(args.corpus_seed, args.n_people)
    built_kb = time.perf_counter() - start
    index = cached_index(("generated", args.corpus_seed, args.n_people), kb.passages)
    built = time.perf_counter() - start
    print(f"corpus: {len(kb.passages)} passages, {len(kb.types)} entities")
    print(f"build: knowledge base {built_kb:.2f} s, + BM25 index {built - built_kb:.2f} s")

    for env_id, hops in VARIANTS.items():
        questions = make_questions(args.corpus_seed, args.n_people, hops, max(1000, args.questions))
        questions = questions[: args.questions]
        start = time.perf_counter()
        table = recall_table(index, questions)
        queries = sum(len(q.queries) for q in questions) + len(questions)
        qps = queries / (time.perf_counter() - start)
        print(f"\n{env_id}: {len(questions)} questions, {sum(len(q.gold) for q in questions)} hops")
        for name, value in table.items():
            print(f"  {name:<44} {value:.3f}")
        for name, value in oracle_episodes(env_id, args.questions, kwargs).items():
            print(f"  oracle {name:<37} {value:.3f}" if isinstance(value, float) else
                  f"  oracle {name:<37} {value}")  # fmt: skip
        print(f"  {'queries/s (k=10)':<44} {qps:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
