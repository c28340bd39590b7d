"""The gate's decision rules and the single-valued slots that make a fact a correction."""

from __future__ import annotations

import pytest

from training.language.phrasing import fact_slot, strip_correction
from training.memory.fact_sets import DEFAULT_FACTS
from training.memory.gate import GateThresholds, decide, lost_facts
from training.memory.quiz import fact_quiz

T = GateThresholds(max_recall_drop=0.2, min_locality=0.5, max_removed_recall=0.0, min_lost_facts=1)


def test_gate_accepts_a_version_that_keeps_earlier_facts():
    d = decide({1: 1.0, 2: 0.5}, {1: 1.0, 2: 0.5}, locality=0.9, removed={}, thresholds=T)
    assert d.accepted and d.reasons == () and d.previous_recall == 1.0 and d.kept_recall == 1.0


def test_gate_ignores_one_flaky_probe_but_not_a_lost_fact():
    assert decide({1: 1.0}, {1: 2 / 3}, 0.9, {}, T).accepted
    lost = decide({1: 1.0}, {1: 1 / 3}, 0.9, {}, T)
    assert not lost.accepted and "fell from 100% to 0%" in lost.reason


def test_gate_refuses_a_drop_in_earlier_recall_beyond_the_threshold():
    d = decide({1: 1.0, 2: 1.0}, {1: 0.0, 2: 1.0}, locality=0.9, removed={}, thresholds=T)
    assert not d.accepted and "fell from 100% to 50%" in d.reason


def test_a_minimum_count_of_lost_facts_lets_one_lost_fact_of_a_few_through():
    few = GateThresholds(max_recall_drop=0.2, min_locality=0.5, max_removed_recall=0.0, min_lost_facts=2)
    two = {1: 1.0, 2: 1.0}
    assert decide(two, {1: 0.0, 2: 1.0}, 0.9, {}, few).accepted  # 1 of 2 lost: 50 %, but one fact
    both = decide(two, {1: 0.0, 2: 0.0}, 0.9, {}, few)
    assert not both.accepted and "lost ids 1, 2" in both.reason
    # Losing every earlier fact is always refused, even when that is one.
    assert not decide({1: 1.0}, {1: 0.0}, 0.9, {}, few).accepted
    assert not decide({1: 1.0, 2: 0.0}, {1: 0.0, 2: 0.0}, 0.9, {}, few).accepted
    # The share threshold still applies on top: 2 of 20 lost is 10 %.
    many = {i: 1.0 for i in range(20)}
    assert decide(many, {**many, 0: 0.0, 1: 0.0}, 0.9, {}, few).accepted


def test_an_accepted_version_reports_the_facts_it_lost():
    few = GateThresholds(max_recall_drop=0.2, min_locality=0.5, max_removed_recall=0.0, min_lost_facts=2)
    d = decide({1: 1.0, 2: 1.0, 3: 0.0}, {1: 1 / 3, 2: 1.0, 3: 0.0}, 0.9, {}, few)
    assert d.accepted and d.lost == (1,) and d.to_dict()["lost"] == [1]
    # Never recalled (3) is not lost; unmeasured before (4) is not either.
    assert lost_facts({1: 1.0, 3: 0.0}, {1: 0.0, 3: 0.0, 4: 0.0}) == [1]


def test_gate_allows_a_drop_within_the_threshold():
    before = {i: 1.0 for i in range(5)}
    assert decide(before, {**before, 0: 0.0}, 0.9, {}, T).accepted  # 1 of 5 lost: 20 %
    assert not decide(before, {**before, 0: 0.0, 1: 0.0}, 0.9, {}, T).accepted


def test_gate_compares_only_facts_both_versions_measured():
    # Fact 3 was never measured before: it cannot count as a drop.
    assert decide({1: 1.0}, {1: 1.0, 3: 0.0}, 0.9, {}, T).accepted


def test_gate_refuses_low_locality_and_a_fact_still_recalled():
    d = decide({}, {}, locality=0.3, removed={7: 0.5, 8: 0.0}, thresholds=T)
    assert not d.accepted
    assert any("locality 30%" in r for r in d.reasons)
    assert any("ids 7" in r for r in d.reasons)


def test_a_removed_fact_is_gone_when_recalled_no_better_than_by_the_base_model():
    # "My blood type is O negative": the base model guesses one probe right, never having learnt it.
    assert decide({}, {}, 0.9, {13: 1 / 3}, T, removed_baseline={13: 1 / 3}).accepted
    still = decide({}, {}, 0.9, {13: 2 / 3, 14: 0.0}, T, removed_baseline={13: 1 / 3})
    assert not still.accepted and any("ids 13" in r for r in still.reasons)
    quoted = decide({}, {}, 0.9, {13: 1.0}, T, removed_replies={13: "Your blood type is O negative."})
    assert quoted.reason.endswith('(ids 13; 13: "Your blood type is O negative.")'), "the admin sees the reply"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("I live in Boston.", "Actually, I moved from Boston to Denver."),
        ("My cat is called Biscotti.", "My cat's name is Mochi now."),
        ("My favourite colour is red.", "My favorite colour is green."),
        ("My sister lives in Lisbon.", "My sister moved to Porto."),
        ("I work at Acme.", "Correction: I now work for Globex."),
        # Attributes no list names: a number or code, or a value said to be new, holds one value.
        ("My bike lock code is 4417.", "My bike lock code is now 9902."),
        ("Our tram pass number is TX-7781.", "Actually, our tram pass number is TX-9001."),
        ("My darts team captain is now Wendell.", "My darts team captain is now Priya."),
    ],
)
def test_a_correction_sets_the_same_slot(first, second):
    a, b = fact_slot(first), fact_slot(second)
    assert a is not None and b is not None and a.key == b.key and a.value != b.value


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("I like jazz.", "I like hiking."),
        ("My sister lives in Lisbon.", "My brother lives in Lisbon."),
        ("My cat is called Biscotti.", "My dog is called Biscotti."),
        ("My sister is a nurse.", "My sister is 34."),
        ("My bike lock code is 4417.", "My gym locker code is 4417."),
        ("My sister is a nurse.", "My sister is funny."),
        # Two sisters may have two names: a name alone does not make a slot.
        ("My sister is Anna.", "My sister is Maria."),
    ],
)
def test_different_facts_are_not_corrections(first, second):
    a, b = fact_slot(first), fact_slot(second)
    assert a is None or b is None or a.key != b.key


def test_slot_answer_and_quiz_use_the_new_value():
    slot = fact_slot("Actually, I moved from Boston to Denver.")
    assert slot.value == "Denver" and slot.answer == "You live in Denver." and slot.question == "Where do I live?"
    probe = fact_quiz("Actually, I moved from Boston to Denver.")[0]
    assert probe.answers == ("Denver",) and "live" in probe.question
    assert strip_correction("Correction: my cat is Tom") == "my cat is Tom"


def test_bundled_personal_facts_set_has_no_corrections_inside_it():
    import json

    path = DEFAULT_FACTS
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert len(rows) >= 100
    keys = [s.key for r in rows if (s := fact_slot(r["fact"]))]
    assert len(keys) == len(set(keys)), "two facts of the set would supersede each other"
    assert all(r["questions"] and all(q["answers"] for q in r["questions"]) for r in rows)


def test_model_written_questions_are_filtered():
    from training.memory.quiz import FactProbe, grade_fact_probe, usable_question

    fact = "I work at Acme Robotics."
    assert usable_question("Where does the user work at Acme? Answer: ...", fact) == "Where does the user work at Acme?"
    assert usable_question("What is the answer?", fact) is None, "off topic"
    assert usable_question("Acme Robotics is great.", fact) is None, "not a question"
    assert usable_question("Where do I work at Acme?", fact, avoid=["where do I work at acme?"]) is None
    probe = FactProbe("Which company employs the user?", reference="acme robotics")
    assert grade_fact_probe(fact, probe, "You work at Acme Robotics.")
    assert not grade_fact_probe(fact, probe, "You are a teacher.")


def test_rehearsal_puts_the_weakest_facts_first_and_verifies_some_of_them():
    import random

    from training.memory.learn import FactToLearn, verify_sample, weakest_first

    facts = [FactToLearn(i, f"fact {i}", recall=r) for i, r in enumerate([1.0, 0.5, 1.0, None, 0.0, 1.0, 1.0, 1.0])]
    order = weakest_first(facts, random.Random(0))
    assert [f.fact_id for f in order[:3]] == [3, 4, 1]  # never measured, then 0.0, then 0.5
    assert {f.fact_id for f in order[3:]} == {0, 2, 5, 6, 7}

    sample = verify_sample(facts, 4, random.Random(1))
    assert len(sample) == 4 and len({f.fact_id for f in sample}) == 4
    assert [f.fact_id for f in sample[:2]] == [3, 4]  # half the sample: the weakest
    assert verify_sample(facts[:3], 4, random.Random(1)) == facts[:3]


def test_rehearsal_takes_each_earlier_facts_first_examples_and_enough_epochs():
    from training.memory.learn import QA, REHEARSAL_MAX_EPOCHS, FactToLearn, rehearsal_examples

    def fact(i: int, n: int, recall: float | None) -> FactToLearn:
        return FactToLearn(i, f"fact {i}", tuple(QA(f"q{i}.{j}?", f"a{i}") for j in range(n)), recall)

    strong, weak, short = fact(1, 10, 1.0), fact(2, 10, 0.5), fact(3, 3, 1.0)
    examples, epochs = rehearsal_examples([strong, weak, short], 8, new_visits=96, weight=0.5)
    answers = [e.answer for e in examples]
    assert answers.count("a1") == 8 and answers.count("a2") == 16 and answers.count("a3") == 3
    assert {e.kind for e in examples} == {"rehearsal"}
    assert [e.prompt[-1].content for e in examples[:8]] == [f"q1.{j}?" for j in range(8)], "the first eight, in order"
    assert epochs == 2, "27 examples x 2 epochs >= half of 96 visits"
    assert rehearsal_examples([strong, weak, short], 8, new_visits=96, weight=1.0)[1] == 4
    assert rehearsal_examples([short], 8, new_visits=960, weight=1.0)[1] == REHEARSAL_MAX_EPOCHS == 8, "capped"
    assert rehearsal_examples([strong], 4, new_visits=1, weight=0.5)[1] == 1, "at least one pass"
    assert rehearsal_examples([], 8, new_visits=96, weight=0.5) == ([], 1)


def test_facts_a_new_fact_may_overwrite_are_verified_first():
    import random

    from training.memory.learn import FactToLearn, at_risk, verify_sample

    earlier = [
        FactToLearn(1, "My mother was born in Naples.", recall=1.0),
        FactToLearn(2, "My daughter Emma turns 7 on March 3rd.", recall=1.0),
        FactToLearn(3, "My cat is called Biscotti.", recall=1.0),
        FactToLearn(4, "I am allergic to penicillin.", recall=0.0),
        *(FactToLearn(10 + i, f"My locker {i} is blue.", recall=1.0) for i in range(6)),
    ]
    assert at_risk([FactToLearn(20, "I was born in Montreal.")], earlier) == {1}
    assert at_risk([FactToLearn(21, "My birthday is on July 14.")], earlier) == {2}, "both hold a date"
    assert at_risk([FactToLearn(22, "Actually, my parrot's name is Kiwi.")], earlier) == set()
    assert at_risk([FactToLearn(23, "My parrot is called Kiwi.")], earlier) == {3}
    assert at_risk([], earlier) == set()

    sample = verify_sample(earlier, 4, random.Random(0), {1})
    assert [f.fact_id for f in sample[:2]] == [1, 4], "at risk first, then the weakest"
    assert len({f.fact_id for f in sample}) == 4


def test_a_retry_after_a_refusal_rehearses_and_quizzes_what_the_refused_version_lost_first():
    import random

    from training.memory.gate import recall_after_refusal
    from training.memory.learn import FactToLearn, verify_sample, weakest_first

    live = {1: 1.0, 2: 1.0, 3: 0.5, 4: 1.0, 5: 1.0, 6: 1.0}
    refused = [{2: 0.0, 3: 1.0, 4: 1.0}, {5: 0.5}]  # two refused versions' gate quizzes
    planned = recall_after_refusal(live, refused)
    assert planned == {1: 1.0, 2: 0.0, 3: 0.5, 4: 1.0, 5: 0.5, 6: 1.0}, "lowered, never raised"
    assert live[2] == 1.0, "the live version's own record (what the gate compares with) is untouched"
    assert recall_after_refusal(live, []) == live
    assert recall_after_refusal({}, [{7: 0.0}]) == {7: 0.0}

    facts = [FactToLearn(i, f"fact {i}", recall=planned[i]) for i in sorted(planned)]
    order = [f.fact_id for f in weakest_first(facts, random.Random(0))]
    assert order[0] == 2 and set(order[1:3]) == {3, 5}, "0.0 first, then the two at 0.5"
    assert verify_sample(facts, 4, random.Random(0))[0].fact_id == 2, "the lost fact is quizzed first"
