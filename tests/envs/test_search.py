"""The search environment: generated data, BM25 retrieval, oracle, grading, user JSONL data."""

from __future__ import annotations

import json

import pytest

import agentgym
from agentgym.core import GARBAGE_ACTIONS
from agentgym.envs.search import SearchEnv, load_questions
from agentgym.envs.search_kb import RELATIONS, build_kb, make_questions
from agentgym.policy.scripted import OraclePolicy
from agentgym.rollout import collect
from agentgym.tools import format_answer, format_tool_call

SEARCH_IDS = ["agentgym/Search-1Hop-v0", "agentgym/Search-MultiHop-v0"]


def play_oracle(env, seed: int) -> list[tuple]:
    obs, info = env.reset(seed=seed)
    steps = []
    while True:
        out = env.step(env.unwrapped.oracle_action())
        steps.append(out)
        if out[2] or out[3]:
            return steps


def recall_at(index, questions, k: int) -> float:
    """Fraction of gold passages among the top k of their hop's oracle query."""
    hits = total = 0
    for q in questions:
        for query, gold in zip(q.queries, q.gold, strict=True):
            hits += gold in {p.id for p, _ in index.search(query, k)}
            total += 1
    return hits / total


def test_generation_is_deterministic_and_seeded():
    a, b = build_kb.__wrapped__(0, 1800), build_kb(0, 1800)
    assert a.passages == b.passages and a.facts == b.facts
    assert build_kb.__wrapped__(1, 1800).passages != a.passages
    assert len(a.passages) > 4000 and len({p.id for p in a.passages}) == len(a.passages)
    assert make_questions.__wrapped__(0, 1800, (2, 3), 50) == make_questions(0, 1800, (2, 3), 50)


@pytest.mark.parametrize("env_id", SEARCH_IDS)
def test_same_seed_same_task_and_episode(env_id):
    env = agentgym.make(env_id)
    assert play_oracle(env, 11) == play_oracle(env, 11)
    assert len({env.reset(seed=s)[1]["task_id"] for s in range(20)}) > 15


def test_every_fact_is_written_in_its_gold_passage():
    kb = build_kb(0, 1800)
    text = {p.id: f"{p.title}. {p.text}" for p in kb.passages}
    for (entity, relation), pid in kb.gold.items():
        keyword = RELATIONS[kb.types[entity]][relation][2]
        passage = text[pid]
        assert kb.names[entity] in passage and keyword in passage.lower()
        assert kb.value_text(entity, relation) in passage, (entity, relation, passage)


def test_questions_chain_the_hops():
    kb = build_kb(0, 1800)
    for q in make_questions(0, 1800, (2, 3), 1000)[:200]:
        entity, *relations = q.chain
        assert len(relations) == len(q.queries) == len(q.gold) in (2, 3)
        for relation, gold in zip(relations, q.gold, strict=True):
            assert kb.gold[(entity, relation)] == gold
            value = kb.facts[entity][relation]
            entity = value
        assert kb.names.get(value, value) == q.answer


@pytest.mark.parametrize(("env_id", "hops"), [(SEARCH_IDS[0], {1}), (SEARCH_IDS[1], {2, 3})])
def test_oracle_solves_with_one_search_per_hop(env_id, hops):
    env = agentgym.make(env_id)
    seen_hops = set()
    for seed in range(40):
        steps = play_oracle(env, seed)
        *searches, (obs, reward, terminated, truncated, info) = steps
        assert (reward, terminated, truncated, info["won"]) == (1.0, True, False, True)
        assert all(s[4]["tool_call"]["name"] == "search" and s[4]["retrieved"] for s in searches)
        gold = env.unwrapped.task.data["gold"]
        assert all(g in s[4]["retrieved"] for g, s in zip(gold, searches, strict=False))
        seen_hops.add(len(searches))
    assert seen_hops == hops


def test_oracle_widens_a_search_that_missed_its_gold_passage(tmp_path):
    distractors = [{"id": f"d{i}", "text": f"The river river {i} is a river."} for i in range(5)]
    gold = {
        "id": "g",
        "text": "Far to the north, past many hills and woods, the Nellow river runs.",
    }
    corpus = write_jsonl(tmp_path / "p.jsonl", [*distractors, gold])
    question = {"question": "Which river runs in the north?", "answer": "Nellow"}
    questions = write_jsonl(
        tmp_path / "q.jsonl", [{**question, "queries": ["river"], "gold": ["g"]}]
    )
    env = SearchEnv(corpus_path=corpus, questions_path=questions)
    env.reset(seed=0)
    assert env.oracle_action() == format_tool_call("search", query="river", k=3)
    assert "g" not in env.step(env.oracle_action())[4]["retrieved"]
    assert env.oracle_action() == format_tool_call("search", query="river", k=10)
    assert "g" in env.step(env.oracle_action())[4]["retrieved"]
    assert env.oracle_action() == format_answer("Nellow")


def test_rollout_with_the_oracle_and_the_tool_format():
    batch = collect(SEARCH_IDS[1], OraclePolicy(), tasks=4, group_size=2, action_format="tool")
    assert all(t.won for t in batch.trajectories)
    prompts = {t.metadata["system_prompt"] for t in batch.trajectories}
    assert len(prompts) == 1 and "search(query: str, k: int = 3) -> str" in prompts.pop()


def test_exact_match_reward_and_f1():
    env = SearchEnv(multi_hop=False)
    env.reset(options={"task_id": "search-s0-1hop-0000"})
    gold = env.task.answers[0]
    assert env.step(format_answer(f"  the {gold.upper()}! "))[1] == 1.0
    env.reset(options={"task_id": "search-s0-1hop-0000"})
    _, reward, terminated, _, info = env.step(format_answer(f"{gold} probably"))
    assert (reward, terminated, info["won"]) == (0.0, True, False)
    assert 0.0 < info["f1"] < 1.0


def test_search_results_and_bad_searches():
    env = SearchEnv(multi_hop=True)
    obs, info = env.reset(seed=2)
    assert obs.startswith("Question: ") and info["admissible_actions"] is None
    obs, *_, info = env.step(format_tool_call("search", query="founded industry", k=5))
    assert obs.count("\nDoc ") == 4 and obs.startswith("Doc 1 (Title: ")
    assert len(info["retrieved"]) == 5
    for bad, why in [({"query": "x", "k": 0}, "k must be between"), ({"query": " "}, "empty")]:
        obs, *_, info = env.step(format_tool_call("search", **bad))
        assert why in obs and info["invalid"]
    obs, *_, info = env.step(format_tool_call("search", query="qqqxxyz"))
    assert obs == "No passages found." and not info["invalid"] and info["retrieved"] == []


@pytest.mark.parametrize("env_id", SEARCH_IDS)
def test_garbage_actions_are_invalid(env_id):
    env = agentgym.make(env_id, max_turns=len(GARBAGE_ACTIONS) + 1)
    env.reset(seed=0)
    for action in GARBAGE_ACTIONS:
        obs, _, terminated, truncated, info = env.step(action)
        assert info["invalid"] and not terminated and not truncated and obs, action


def test_splits_are_disjoint():
    train = {t.id for t in SearchEnv(split="train").task_list()}
    test = {t.id for t in SearchEnv(split="test").task_list()}
    every = {t.id for t in SearchEnv(split="all").task_list()}
    assert not train & test and train | test == every and len(test) == len(every) // 5


@pytest.mark.parametrize(("hops", "floor"), [((1,), 0.97), ((2, 3), 0.97)])
def test_recall_at_3_of_the_gold_passages(hops, floor):
    env = SearchEnv()
    questions = make_questions(0, 1800, hops, 1000)[:100]
    assert recall_at(env.index, questions, 3) >= floor
    assert recall_at(env.index, questions, 10) >= recall_at(env.index, questions, 1)


def test_one_search_with_the_whole_question_misses_multi_hop_evidence():
    env = SearchEnv()
    questions = make_questions(0, 1800, (2, 3), 1000)[:100]
    found_all = sum(
        set(q.gold) <= {p.id for p, _ in env.index.search(q.text, 10)} for q in questions
    )
    assert found_all < 30  # the chain needs a search per hop


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def user_data(tmp_path):
    passages = [
        {
            "id": "m1",
            "title": "Mount Orvel",
            "text": "Mount Orvel rises 4,210 metres above Lake Tesk.",
        },
        {"id": "l1", "title": "Lake Tesk", "text": "Lake Tesk is drained by the river Ambrel."},
        {"id": "x1", "title": "Ambrel", "text": "The Ambrel flows into the Sea of Quill."},
    ]
    questions = [
        {"id": "qa", "question": "How high is Mount Orvel?", "answers": ["4,210 metres", "4210 m"]},
        {
            "question": "Which river drains the lake below Mount Orvel?",
            "answer": "Ambrel",
            "queries": ["Mount Orvel lake", "Lake Tesk river"],
            "gold": ["m1", "l1"],
        },
    ]
    return write_jsonl(tmp_path / "p.jsonl", passages), write_jsonl(tmp_path / "q.jsonl", questions)


def test_user_jsonl_corpus_and_questions(user_data):
    corpus, questions = user_data
    env = agentgym.make(SEARCH_IDS[0], corpus_path=corpus, questions_path=questions)
    agentgym.check_env(env)
    assert [t.id for t in env.unwrapped.task_list()] == ["qa", "q1"]
    for task_id in ("qa", "q1"):
        env.reset(options={"task_id": task_id})
        while True:
            out = env.step(env.unwrapped.oracle_action())
            if out[2]:
                break
        assert out[4]["won"]
    env.reset(options={"task_id": "qa"})
    obs = env.step(format_tool_call("search", query="Orvel", k=1))[0]
    assert obs == "Doc 1 (Title: Mount Orvel) Mount Orvel rises 4,210 metres above Lake Tesk."
    assert env.step(format_answer("4210 m"))[1] == 1.0


def test_user_data_errors_say_what_is_wrong(tmp_path, user_data):
    corpus, questions = user_data
    with pytest.raises(ValueError, match="both corpus_path and questions_path"):
        SearchEnv(corpus_path=corpus)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:2: not valid JSON"):
        load_questions(bad)
    wrong = write_jsonl(
        tmp_path / "w.jsonl", [{"question": "q", "answer": "a", "gold": ["1", "2"]}]
    )
    with pytest.raises(ValueError, match="one 'gold' id per query"):
        load_questions(wrong)
