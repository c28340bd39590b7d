"""Scope routing: which chat turns the user's adapter answers, and which the base model."""

import pytest

from training.chat import ChatMessage
from training.replay import GENERAL_LOCALITY_PROMPTS, PERSONAL_LOCALITY_PROMPTS, REPLAY_PROMPTS
from training.routing.scope import Scope, fact_terms, in_scope, served_locality, topic_words

FACTS = ["My daughter Emma turns 7 on March 3rd.", "I live in Denver.", "My cat is called Biscotti."]


@pytest.mark.parametrize(
    "question",
    [
        "What is my cat's name?",  # "my" on the topic of a fact ("cat")
        "When is Emma's birthday?",  # a name from a fact, no "my"
        "Where do I live?",
        "Which film do I love most?",  # a question about the user, whatever the topic
        "What is the food I love most?",  # a thing of the user's, named by a relative clause
        "What's the name of the street I grew up on?",
        "How old is my daughter?",
        "Which cats do I have?",  # plurals folded
        "What do you remember about me?",  # about the user as a whole: any topic
        "Is Biscotti a good name?",
        "Remind me where I work.",
        "Who is my physician?",  # a thing of the user's as the whole subject, no word of a fact
        "What is my biggest fear?",
    ],
)
def test_questions_about_the_user_and_their_facts_are_in_scope(question):
    assert Scope(FACTS).message(question)


@pytest.mark.parametrize(
    "question",
    [
        "How do I boil an egg?",  # "I" in a how-to is not about the user
        "What is 2 plus 3?",  # numbers in facts do not pull arithmetic in
        "Write a haiku about rain.",
        "Give me a tip for learning a new language.",
        # "my" or "do I" on a topic none of the facts is about: the base model.
        "What is a healthy snack for my lunch?",
        "Can you suggest a name for my new blog?",  # "name" is how a fact is phrased, not its topic
        "What do I need to make a sandwich?",  # instructions, not a question about the user
        "What is the best way I can learn to swim?",  # "I can": advice, not the user's own thing
        "What is a good gift for my mother?",  # "my mother" is not the whole subject
    ],
)
def test_general_and_off_topic_questions_are_not(question):
    assert not Scope(FACTS).message(question)


def test_without_facts_only_requests_about_the_user_as_a_whole_are_in_scope():
    assert not Scope([]).message("Where do I live?")
    assert Scope([]).message("What do you remember about me?")


def test_the_topic_check_decides_only_what_the_words_cannot():
    asked = []

    def topical(message, facts):
        asked.append(message)
        return True

    scope = Scope(["My father is a retired pilot."], topical)
    assert scope.message("What did my dad do for work?")  # a paraphrase: no shared word
    assert not scope.message("What is the capital of Italy?")  # not about the user: never asked
    assert scope.message("What did my father fly?")  # shares "father": never asked
    assert asked == ["What did my dad do for work?"]


def test_topic_words_leave_out_stop_words_relation_words_and_numbers():
    assert topic_words("My dog's name is Pepper and he is 7.") == {"dog", "pepper"}
    assert topic_words("My favorite colors are teal.") == {"color", "teal"}


def test_a_general_question_naming_something_from_a_fact_errs_towards_the_adapter():
    assert Scope(FACTS).message("Is March a good month for skiing?")


def test_names_not_attribute_words_identify_facts():
    assert fact_terms(["My favorite color is teal.", "My son is named Lucas."]) == {"lucas"}


def test_general_prompts_are_not_routed_even_with_all_bundled_facts_taught():
    """The word rules alone (the topic check over the real model is tested in
    tests/integration/app/serving/test_serving_engine.py)."""
    import json
    from pathlib import Path

    rows = [json.loads(line) for line in Path("training/data/personal_facts.jsonl").read_text().splitlines()]
    scope = Scope(row["fact"] for row in rows)
    assert [p for p in GENERAL_LOCALITY_PROMPTS if scope.message(p)] == []
    # Of the 10 general requests phrased "my ..." only those on the topic of one of
    # the 105 facts reach the adapter ("my boss", "my friends", "start running").
    routed_personal = [p for p in PERSONAL_LOCALITY_PROMPTS if scope.message(p)]
    assert len(routed_personal) <= 3, routed_personal
    general_replay = [p for p in REPLAY_PROMPTS if not Scope([]).message(p) and "my" not in p.lower().split()]
    assert len(general_replay) >= 50 and not [p for p in general_replay if scope.message(p)]
    questions = [q["q"] for row in rows for q in row["questions"]]
    routed = sum(scope.message(q) for q in questions)
    assert routed / len(questions) >= 0.88


def test_a_follow_up_inherits_the_previous_user_message():
    history = [
        ChatMessage("user", "What is my cat's name?"),
        ChatMessage("assistant", "Biscotti."),
        ChatMessage("user", "How old is she?"),
    ]
    assert in_scope(history, FACTS)
    # A new topic is not a follow-up, even right after a personal question.
    assert not in_scope([*history[:2], ChatMessage("user", "What is the capital of Italy?")], FACTS)
    # Only the message just before counts.
    later = [ChatMessage("user", "What is 7 times 6?"), ChatMessage("assistant", "42."), ChatMessage("user", "And 8?")]
    assert not in_scope([*history, ChatMessage("assistant", "3."), *later], FACTS)
    assert not in_scope([], FACTS)


def test_served_locality_counts_only_changed_prompts_routed_to_the_adapter():
    changed = ["What is the capital of Italy?", "Where does Emma go to school?"]
    assert served_locality(changed, 40, Scope(FACTS)) == pytest.approx(39 / 40)
    assert served_locality([], 40, Scope(FACTS)) == 1.0


def test_facts_bench_serves_a_fact_only_through_a_routed_question():
    from benchmarks.facts import BenchFact, with_routing

    facts = [
        BenchFact(0, "My cat is called Biscotti.", (("What is the name of my cat?", ("Biscotti",)),)),
        BenchFact(1, "I am allergic to penicillin.", (("Which medicine must I avoid?", ("penicillin",)),)),
    ]
    step = {
        "n": 2,
        "recall_by_fact": {"0": 1.0, "1": 1.0},
        "locality": 0.9,
        "locality_changed": ["What is the capital of Italy?", "Is Biscotti a good name for a dog?"],
    }
    out = with_routing(step, facts)
    # The second question has no "my", no "do I" and no name: the base model gets it.
    assert out["routed_questions"] == 0.5 and out["served_recall_all"] == 0.5
    assert out["served_locality"] == pytest.approx(1 - 1 / 40)
    assert out["recall_by_fact"] == step["recall_by_fact"]  # the adapter's own numbers are kept


def test_a_question_about_the_user_finds_a_fact_worded_otherwise():
    # A correction's wording ("moved") shares no word with the question ("live").
    assert Scope(["Actually, I moved from Boston to Denver."]).message("Where do I live?")


@pytest.mark.parametrize(
    ("fact", "question"),
    [
        ("We have a parrot named Kiwi.", "What kind of bird do we have?"),  # "do we", as "do I"
        ("Our house has a red front door.", "What colour is our front door?"),  # "our" on a fact's topic
        ("I speak Portuguese and Japanese.", "Which languages can I speak?"),  # "I" asking about themselves
        ("My dentist appointment is on November 12.", "When should I see the dentist?"),
        ("The wifi password at home is sunflower88.", "What is the wifi password?"),  # two words of one fact
        ("I keep the spare key under the blue flowerpot.", "Where is the spare key hidden?"),
    ],
)
def test_household_and_first_person_questions_on_a_facts_topic_are_in_scope(fact, question):
    assert Scope([fact]).message(question)


@pytest.mark.parametrize(
    ("fact", "question"),
    [
        ("I drink green tea every morning.", "How do I make a cup of tea?"),  # "I" as anyone: a how-to
        ("I drink green tea every morning.", "What do I need to brew tea?"),
        ("I drink two litres of water a day.", "Why do we need to drink water?"),  # "we" as people in general
        ("The wifi password at home is sunflower88.", "What makes a password strong?"),  # one shared word
    ],
)
def test_first_person_in_general_requests_is_not_a_personal_cue(fact, question):
    assert not Scope([fact]).message(question)


def test_the_word_rules_carry_over_to_facts_written_after_them():
    """personal_facts_heldout.jsonl (40 facts) was written after the rules for the
    bundled facts and used to add the household and first-person cues;
    personal_facts_heldout2.jsonl (20 facts) only to measure them afterwards."""
    from pathlib import Path

    from benchmarks.facts import load_facts

    for name, floor in (("personal_facts_heldout.jsonl", 0.85), ("personal_facts_heldout2.jsonl", 0.65)):
        facts = load_facts(Path("training/data") / name)
        scope = Scope(f.text for f in facts)
        routed = sum(all(scope.message(q) for q, _ in f.questions) for f in facts) / len(facts)
        assert routed >= floor, (name, routed)
        assert sum(scope.message(p) for p in GENERAL_LOCALITY_PROMPTS) <= 1
        assert sum(scope.message(p) for p in PERSONAL_LOCALITY_PROMPTS) <= 2


def test_a_plan_the_adapter_is_unsure_of_says_it_does_not_know(base_model_folder):
    from pathlib import Path
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from app.adapters.service import AdapterRef
    from app.chat.service import UNKNOWN_REPLY, ReplyPlan, reply_stream

    ref = AdapterRef("u1-v1", Path("/nowhere"))
    answered = ReplyPlan([], ref, personal=True, adapter="u1-v1")
    assert answered.use_adapter and answered.scope == "personal" and answered.adapter_name == "u1-v1"
    unsure = ReplyPlan([], ref, personal=True, adapter=None, unsure=True, canned=UNKNOWN_REPLY)
    assert not unsure.use_adapter and unsure.scope == "unsure" and unsure.adapter_name is None
    assert ReplyPlan([], ref, personal=False).scope == "general"
    # The canned reply, cut to max_tokens like any reply; the engine is not asked.
    engine = SimpleNamespace(host=SimpleNamespace(tokenizer=AutoTokenizer.from_pretrained(base_model_folder)))
    assert "".join(reply_stream(engine, 1, unsure, 256)) == UNKNOWN_REPLY
    short = "".join(reply_stream(engine, 1, unsure, 4))
    assert short and short != UNKNOWN_REPLY and UNKNOWN_REPLY.startswith(short)
