"""Fact groups: where a new fact goes, which group a question is routed to, and the
benchmark's group learner state round trip."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.settings import Settings
from benchmarks.fact_groups import GroupLearner
from benchmarks.facts import Learner
from training.memory.learn import QA, FactToLearn
from training.memory.plan import DEFAULT_GROUP_SIZE, next_group, place_facts
from training.routing.groups import (
    DEFAULT_ROUTING_FLOOR,
    answering_group,
    candidate_groups,
    choose_group,
    grounded,
    routing_words,
)


def test_new_facts_fill_the_newest_group_then_open_another():
    assert place_facts({}, [1, 2, 3], size=2) == {0: [1, 2], 1: [3]}
    assert place_facts({0: [1, 2], 1: [3]}, [4, 5], size=2) == {1: [4], 2: [5]}


def test_a_correction_joins_the_group_of_the_fact_it_replaces():
    # Fact 9 replaces fact 2 (already taken out of group 0): group 0 is rebuilt with
    # the new value, so no other group still answers with the old one.
    assert place_facts({0: [1], 1: [3, 4]}, [9, 10], size=2, home={9: 0}) == {0: [9], 2: [10]}


def test_the_product_and_the_benchmarks_use_one_group_size_and_floor():
    assert Settings.model_fields["fact_group_size"].default == DEFAULT_GROUP_SIZE == 5
    assert Settings.model_fields["routing_floor"].default == DEFAULT_ROUTING_FLOOR == -0.5


def test_a_group_holds_at_least_one_fact():
    with pytest.raises(ValueError, match="size=0"):
        place_facts({}, [1], size=0)


def test_a_run_trains_the_lowest_touched_group_and_the_rest_waits():
    # Group 1 has room for one: fact 5 joins it, fact 6 opens group 2 and waits.
    assert next_group({0: [1, 2], 1: [3]}, [5, 6], {}, size=2) == (1, [5])
    # A forget in group 0 goes before new facts in group 1.
    assert next_group({0: [1], 1: [3]}, [5], {2: 0}, size=2) == (0, [])
    assert next_group({0: [1, 2]}, [], {}, size=2) is None


def test_a_fact_refused_again_and_again_opens_a_new_group():
    # Fact 7 keeps pushing group 1's only fact out: it starts group 2, and the
    # next new fact fills that group rather than group 1.
    assert next_group({0: [1, 2], 1: [3]}, [7], {}, size=2, fresh=[7]) == (2, [7])
    assert place_facts({0: [1, 2], 1: [3], 2: [7]}, [8], size=2) == {2: [8]}
    # A correction goes home even when it was refused before.
    assert next_group({0: [1], 1: [3]}, [9], {2: 0}, size=2, home={9: 0}, fresh=[9]) == (0, [9])


GROUPS = {
    0: ["My cat is called Biscotti.", "I live in Denver."],
    1: ["My mother was born in Naples.", "My sister lives in Lisbon."],
    2: ["My brother is called Biscotti too."],
}


def test_a_question_sharing_words_with_one_fact_goes_to_its_group():
    assert candidate_groups("What is the name of my cat?", GROUPS) == [0]
    assert candidate_groups("Where does my sister live?", GROUPS) == [1]


def test_a_name_counts_more_than_a_topic_word_and_ties_keep_every_group():
    assert candidate_groups("Who is Biscotti?", GROUPS) == [0, 2]


def test_a_question_sharing_no_word_leaves_every_group_to_the_adapters():
    assert candidate_groups("Where did I grow up?", GROUPS) == [0, 1, 2]


def test_everyday_synonyms_route_like_the_fact_s_own_word():
    # "mom" for "mother": before synonyms were merged this question shared no word.
    assert candidate_groups("Where does my mom come from?", GROUPS) == [1]
    assert routing_words("Which film does my dad like?") == routing_words("My father's favorite movie")


def test_the_adapters_decide_only_among_the_candidates():
    asked = []

    def confidence(groups):
        asked.append(list(groups))
        return {0: -2.0, 1: -0.3, 2: -0.1}

    assert choose_group("What is the name of my cat?", GROUPS, confidence) == 0
    assert asked == [], "one candidate: no adapter is run"
    assert choose_group("Where did I grow up?", GROUPS, confidence) == 2
    assert choose_group("Who is Biscotti?", GROUPS, confidence) == 2
    assert asked == [[0, 1, 2], [0, 2]]
    with pytest.raises(ValueError, match="no fact groups"):
        choose_group("Who am I?", {}, confidence)


def test_an_adapter_unsure_of_its_answer_leaves_the_question_to_the_base_model():
    asked = []

    def confidence(groups):
        asked.append(list(groups))
        return {g: {0: -0.9, 1: -0.3, 2: -0.1}[g] for g in groups}

    # One candidate: without a floor no adapter runs; with one, that adapter's
    # confidence decides (the cat's group is unsure: -0.9 < -0.5).
    assert answering_group("What is the name of my cat?", GROUPS, confidence, None) == 0
    assert asked == []
    assert answering_group("What is the name of my cat?", GROUPS, confidence, -0.5) is None
    assert asked == [[0]]
    assert answering_group("What is the name of my cat?", GROUPS, confidence, -1.0) == 0
    # Several candidates: the most confident one, scored once, then the floor.
    asked.clear()
    assert answering_group("Who is Biscotti?", GROUPS, confidence, -0.5) == 2
    assert answering_group("Who is Biscotti?", GROUPS, confidence, -0.05) is None
    assert asked == [[0, 2], [0, 2]], "the chosen group's score is not asked for twice"
    # A sole adapter (a version of one group) is checked too.
    assert answering_group("Where did I grow up?", {1: GROUPS[1]}, confidence, -0.5) == 1


def test_the_benchmark_grades_recall_as_served_with_the_routing_floor(tmp_path):
    from benchmarks.facts import BenchFact

    learner = GroupLearner(host=None, work=tmp_path, args=SimpleNamespace(group_size=2, routing_floor=-0.5))
    for group, (index, text) in enumerate([(0, "My cat is called Tofu."), (1, "I live in Oslo.")]):
        part = learner._part(group)
        part.live, part.versions = tmp_path / f"g{group}", 1
        part.known = {index: FactToLearn(index, text)}
    cat = BenchFact(0, "My cat is called Tofu.", (("What is my cat's name?", ("Tofu",)),))
    city = BenchFact(1, "I live in Oslo.", (("Which city is home?", ("Oslo",)),))
    # Each group's (reply, confidence) as decoded: already known, so no adapter runs.
    learner._answers = {
        (0, 1, "What is my cat's name?"): ("Your cat is Tofu.", -0.9),  # the only candidate, but unsure
        (0, 1, "Which city is home?"): ("Tofu.", -1.2),
        (1, 1, "Which city is home?"): ("You live in Oslo.", -0.2),  # no shared word: the surer adapter
    }
    assert learner.routed_recall([cat, city], None) == {0: 1.0, 1: 1.0}
    assert learner.recall_of([cat, city]) == {0: 0.0, 1: 1.0}, "under the floor the product says it does not know"
    # A confident reply that no taught fact grounds is not answered either.
    learner._answers[(1, 1, "Which city is home?")] = ("You live in Bergen.", -0.2)
    assert learner.routed_recall([city], None, grounding=False) == {1: 0.0}
    learner._answers[(1, 1, "Which city is home?")] = ("Oslo, in Norway.", -0.2)  # "norway": 1 of 2 own words
    assert learner.routed_recall([city], None, grounding=False) == {1: 1.0}
    assert learner.routed_recall([city], None, grounding=True) == {1: 0.0}
    assert GroupLearner(None, tmp_path, SimpleNamespace(group_size=2)).floor == DEFAULT_ROUTING_FLOOR


TAUGHT = ["My husband's name is Raj.", "My son Leo plays the violin.", "I live at 42 Elm Street."]


@pytest.mark.parametrize(
    ("question", "reply"),
    [
        ("What's my husband called?", "Your husband's name is Raj."),
        ("What instrument does Leo play?", "Your brother Leo plays the violin."),  # 2 of 3 own words known
        ("Where do I live?", "You live at 42 Elm Street. It is a nice street with many trees."),  # first sentence
        ("Is Raj my husband?", "Yes."),  # claims nothing of its own
    ],
)
def test_a_reply_grounded_in_the_taught_facts_is_answered(question, reply):
    assert grounded(reply, question, TAUGHT)


@pytest.mark.parametrize(
    ("question", "reply"),
    [
        # Confident guesses the routing floor let through (docs/BENCHMARKS.md, "A grounding check").
        ("What is my plate number?", "Your plate number is 1234."),
        ("What are my cats called?", "Your cat is called a Whisker."),
        ("What's my street address?", "Your street address is 123 Elm Street."),  # half: the number is invented
    ],
)
def test_a_reply_that_names_what_no_fact_holds_is_not(question, reply):
    assert not grounded(reply, question, TAUGHT)


def test_the_group_learner_state_round_trips(tmp_path):
    args = SimpleNamespace(group_size=2)
    before = GroupLearner(host=None, work=tmp_path / "work", args=args)
    for group, facts in {0: [(0, "My cat is called Tofu."), (1, "I live in Oslo.")], 1: [(2, "I am 40.")]}.items():
        part = before._part(group)
        live = tmp_path / "work" / f"g{group}" / "v1"
        live.mkdir(parents=True)
        (live / "adapter_model.safetensors").write_bytes(f"weights {group}".encode())
        part.live, part.versions = live, 1
        part.known = {i: FactToLearn(i, text, (QA("q", "a"),)) for i, text in facts}
    before.changed = {0: ("What is 2 plus 2?",), 1: ()}
    state = tmp_path / "out.state" / "groups"
    before.save_state(state, 3)

    after = GroupLearner(host=None, work=tmp_path / "elsewhere", args=args)
    assert after.restore(state) == 3
    assert sorted(after.parts) == [0, 1]
    assert after.known == before.known
    assert after.changed == before.changed
    assert after.locality_changed == ("What is 2 plus 2?",)
    assert (after.parts[1].live / "adapter_model.safetensors").read_bytes() == b"weights 1"
    with pytest.raises(ValueError, match="--group-size 2"):
        GroupLearner(None, tmp_path, SimpleNamespace(group_size=5)).restore(state)
    assert isinstance(after.parts[0], Learner) and after.parts[0].name == "g0"
