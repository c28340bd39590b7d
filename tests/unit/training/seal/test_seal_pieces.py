"""SEAL pieces without the model: grading, cloze quizzes, candidate settings, QA parsing, SQuAD I/O."""

import argparse
import json

import pytest

from benchmarks.squad import _shard, _store, choose, extend_candidates, summarize
from benchmarks.stats import bootstrap_gain_and_ratio, mean_interval, wilson_interval
from training.language.phrasing import GENERAL_RECALL_PROMPTS
from training.memory.learn import (
    fact_examples,
    quiz_questions,
)
from training.memory.quiz import (
    cloze_probes,
    contains_answer,
    fact_quiz,
    grade_fact_probe,
    squad_f1,
)
from training.policy.squad import load_passages, sample_passages
from training.seal.candidates import GRID, assign
from training.seal.self_edit import SelfEdit, parse_qa_pairs, parse_questions


def test_containment_is_normalised_and_whole_word():
    assert contains_answer("It was the Denver Broncos, in 2016.", ["Denver Broncos"])
    assert contains_answer("the score was 24-10", ["24 10"]), "punctuation is normalised away"
    assert not contains_answer("Denverite", ["Denver"])
    assert contains_answer("In Paris.", ["paris"])


def test_squad_f1():
    assert squad_f1("The Denver Broncos", "Denver Broncos") == 1.0
    assert squad_f1("Broncos", "Denver Broncos") == pytest.approx(2 / 3)
    assert squad_f1("Panthers", "Denver Broncos") == 0.0


def test_cloze_masks_a_name_or_number_never_the_first_word():
    probes = cloze_probes("Marie Curie won the Nobel Prize in 1903. She was born in Warsaw.", n=4, seed=1)
    assert probes
    for question, answers in probes:
        assert "____" in question and answers[0] not in question
        assert not question.removeprefix("Fill in the blank: ").startswith("____")


def test_fact_quiz_is_kept_apart_from_training_prompts():
    fact = "My cat's name is Whiskerfield."
    trained = {qa.question for qa in fact_examples(fact, SelfEdit("rewrite", "", ("Your cat is Whiskerfield.",)))}
    quiz = fact_quiz(fact)
    assert quiz and all(p.question not in trained for p in quiz)
    cloze = [p for p in quiz if p.answers]
    assert cloze and grade_fact_probe(fact, cloze[0], f"It is {cloze[0].answers[0]}.")
    assert not grade_fact_probe(fact, quiz[0], "I don't know your cat.")


def test_candidates_span_the_grid_then_rotate_families():
    families = ("rewrite", "implications")
    assigned = [assign(i, families, GRID) for i in range(len(GRID) * 2)]
    assert [c for _, c in assigned[: len(GRID)]] == list(GRID)
    assert {f for f, _ in assigned[: len(GRID)]} == {"rewrite"}
    assert {f for f, _ in assigned[len(GRID) :]} == {"implications"}


def test_parse_qa_pairs_drops_loops_and_repeats():
    raw = "Q: When was it founded?\nA: In 1850.\nQ: When was it founded?\nA: 1850\nQ: Who?\nA: Who?\n"
    assert parse_qa_pairs(raw, "The club was founded in 1850.") == ("Question: When was it founded?\nAnswer: In 1850.",)


def test_parse_questions_keeps_the_facts_own_questions_only():
    fact = "The wifi password at home is sunflower88."
    raw = (
        "What is the password?\nHow do I access the wifi?\nWhat is the password?\n"  # a repeat
        "What is the wifi password at home sunflower88?\n"  # holds every word of the fact: asks nothing
        "What is your favourite colour?\n"  # off topic
        "I plan to visit the park.\n"  # not a question
        "Why?\n\nFact: My cat is Tom.\nQuestions:\nWhat is the password of my cat?"  # the next made-up example
    )
    assert parse_questions(raw, fact) == ("What is the password?", "How do I access the wifi?")
    assert parse_questions(raw, fact, avoid=["what is the password?"]) == ("How do I access the wifi?",)


def test_self_qa_questions_are_trained_with_the_fact_and_never_the_quiz():
    fact = "The wifi password at home is sunflower88."
    asked = ("What is the password?", "How do I access the wifi?", "What is the wifi code?")
    pairs = fact_examples(fact, SelfEdit("self_qa", "", asked))
    trained = {qa.question: qa.answer for qa in pairs}
    assert all(trained[q] == "The wifi password at home is sunflower88." for q in asked)
    # The plain question read off the fact's clause first (training.language.wh_questions),
    # and no question every fact of a group shares ("What do you know about me?").
    assert [qa.question for qa in pairs] == ["What is the wifi password at home?", *asked]
    # The self-QA lines are questions, never answers to a general prompt.
    assert all(qa.answer not in asked for qa in pairs)
    assert not set(quiz_questions(fact)) & set(trained)


def test_wilson_interval_brackets_the_rate():
    lo, hi = wilson_interval(5, 10)
    assert lo < 0.5 < hi and 0 <= lo and hi <= 1
    assert wilson_interval(0, 0) == (0.0, 0.0)
    assert mean_interval([1.0, 1.0]) == (1.0, 1.0)


def test_the_squad_goal_is_resampled_by_passage():
    # 3 passages of 10 questions: best-of-K 5, 3, 4 correct; the passage alone 2, 3, 1; in context 5, 5, 5.
    passages = [(10, 5, 2, 5), (10, 3, 3, 5), (10, 4, 1, 5)]
    out = bootstrap_gain_and_ratio(passages, resamples=2000, seed=0)
    assert out["gain_points"] == pytest.approx(20.0) and out["ratio"] == pytest.approx(0.8)
    assert 0.0 <= out["gain_ci95"][0] <= 20.0 <= out["gain_ci95"][1] <= 40.0
    assert out["ratio_ci95"][0] >= 0.6 and out["ratio_ci95"][1] == pytest.approx(1.0)
    assert out == bootstrap_gain_and_ratio(passages, resamples=2000, seed=0), "seeded"


def test_squad_loading_and_seeded_sampling(tmp_path):
    data = {
        "data": [
            {
                "title": f"T{t}",
                "paragraphs": [
                    {
                        "context": f"Context {t}-{p}.",
                        "qas": [{"question": "q?", "answers": [{"text": "a"}, {"text": "a"}]}],
                    }
                    for p in range(3)
                ],
            }
            for t in range(4)
        ]
    }
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data))
    passages = load_passages(path)
    assert len(passages) == 12 and passages[0].questions[0].answers == ("a",)
    sample = sample_passages(passages, 4, seed=3)
    assert len({p.title for p in sample}) == 4, "one passage per article first"
    assert sample == sample_passages(passages, 4, seed=3)


def test_summary_rows_have_the_documented_fields():
    record = {
        "methods": {
            m: {"correct": [True, False], "f1": [1.0, 0.0]}
            for m in ("base", "passage", "self_edit:rewrite", "best_of_k", "best_of_k_cloze", "in_context")
        }
    }
    rows = summarize([record])
    assert [r["method"] for r in rows][:2] == ["base", "passage"] and rows[-1]["method"] == "in_context"
    assert set(rows[0]) >= {"method", "accuracy", "f1", "ci95", "n_questions"}
    assert rows[0]["accuracy"] == 0.5 and rows[0]["n_questions"] == 2


def _candidate(family: str, index: int, correct: list[bool], cloze: list[bool]) -> dict:
    return {
        "family": family,
        "settings": GRID[index % len(GRID)].to_dict(),
        "correct": correct,
        "f1": [1.0 if c else 0.0 for c in correct],
        "cloze": cloze,
    }


def test_best_of_k_takes_the_highest_reward_and_the_lower_index_on_ties():
    candidates = [
        _candidate("rewrite", 0, [True, False], [False]),
        _candidate("rewrite", 1, [True, True], [False]),
        _candidate("rewrite", 2, [True, True], [True]),
    ]
    chosen = choose(candidates)
    assert chosen["best_of_k"]["chosen"] == 1 and chosen["best_of_k_cloze"]["chosen"] == 2


def test_candidates_of_several_families_also_report_each_familys_best():
    candidates = [_candidate("rewrite", i, [i == 3, False], [False]) for i in range(4)]
    candidates += [_candidate("self_qa", i, [i == 1, i == 1], [False]) for i in range(4)]
    record = {"methods": {"passage": {"correct": [False, False], "f1": [0.0, 0.0]}, **choose(candidates)}}
    record["candidates"] = candidates
    rows = {r["method"]: r for r in summarize([record])}
    assert rows["best_of_k:rewrite"]["accuracy"] == 0.5 and rows["best_of_k:self_qa"]["accuracy"] == 1.0
    assert rows["best_of_k"]["accuracy"] == 1.0
    assert [rows[f"best_of_{j}"]["accuracy"] for j in (1, 2, 4)] == [0.0, 0.0, 0.5], "the first j candidates"
    best = [m for m in rows if m.startswith("best_of")]
    assert best == [
        "best_of_1",
        "best_of_2",
        "best_of_4",
        "best_of_k:rewrite",
        "best_of_k:self_qa",
        "best_of_k",
        "best_of_k_cloze",
    ]


def test_a_larger_k_extends_only_records_drawn_with_the_same_families():
    record = {"candidates": [_candidate("rewrite", i, [True], [True]) for i in range(4)], "methods": {}}
    same = argparse.Namespace(k=4, candidate_families=["rewrite", "self_qa"])
    assert extend_candidates(None, None, record, None, same) is False, "nothing is missing at K=4"
    other = argparse.Namespace(k=8, candidate_families=["self_qa", "rewrite"])
    passage = argparse.Namespace(passage_id="Amazon_rainforest#2")
    with pytest.raises(SystemExit, match="candidate 0 was rewrite"):
        extend_candidates(None, passage, record, None, other)
    assert len(record["candidates"]) == 4, "a refused extension changes nothing"


def test_shards_share_one_per_passage_file(tmp_path):
    path = tmp_path / "bench.passages.jsonl"
    _store(path, {"passage_id": "A#0", "seconds": 1})
    _store(path, {"passage_id": "B#1", "seconds": 2})
    _store(path, {"passage_id": "A#0", "seconds": 3})
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"passage_id": "A#0", "seconds": 3},
        {"passage_id": "B#1", "seconds": 2},
    ]
    assert _shard("1/2") == (1, 2)
    for bad in ("2/2", "x/2", "1"):
        with pytest.raises(argparse.ArgumentTypeError):
            _shard(bad)


def test_no_question_every_fact_shares_is_trained_when_the_fact_has_its_own():
    # Trained towards each fact of a group in turn, "What do you know about me?" became
    # the adapter's answer to any question worded unlike its facts' own.
    shared = set(GENERAL_RECALL_PROMPTS)
    for fact in ("My grandmother Rosalind taught chemistry in Cork.", "Our recycling is collected on Thursdays."):
        trained = [qa.question for qa in fact_examples(fact, SelfEdit("self_qa", "", ("When is the bin day?",)))]
        assert trained and not shared & set(trained), trained


def test_a_fact_without_a_question_of_its_own_keeps_the_general_ones_its_quiz_asks():
    fact = "I am vegetarian."
    pairs = fact_examples(fact, SelfEdit("self_qa", "", ("Do I eat meat?",)))
    assert [qa.question for qa in pairs] == ["Do I eat meat?", *GENERAL_RECALL_PROMPTS]
    assert [p.question for p in fact_quiz(fact) if not p.answers] == ["Tell me what you remember about me."]


def test_another_familys_lines_answer_the_facts_own_questions():
    fact = "My grandmother Rosalind taught chemistry in Cork."
    lines = ("Your grandmother Rosalind was a chemistry teacher.", "Rosalind taught in Cork.")
    pairs = fact_examples(fact, SelfEdit("rewrite", "", lines))
    by_answer = {qa.answer: qa.question for qa in pairs}
    assert set(by_answer) >= set(lines)
    assert all(
        by_answer[line]
        in {
            "What do you know about my grandmother?",
            "What do you know about Rosalind?",
            "What do you know about Cork?",
        }
        for line in lines
    ), by_answer
    assert not set(GENERAL_RECALL_PROMPTS) & {qa.question for qa in pairs}
