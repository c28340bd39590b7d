"""Wh-questions read off a fact's clause (training.language.wh_questions)."""

import pytest

from training.language.wh_questions import clause_questions


@pytest.mark.parametrize(
    ("fact", "expected"),
    [
        ("We named our baby Noor.", ["What is our baby's name?"]),
        ("The kids' swimming lessons are on Saturday mornings.", ["When are the kids' swimming lessons?"]),
        ("I'm scared of heights.", ["What am I scared of?"]),
        ("I can't eat gluten.", ["What can't I eat?"]),
        ("Our landlord is Mr. Petrov.", ["Who is our landlord?"]),
        ("My rent is 1400 dollars a month.", ["How much is my rent?"]),
        ("My tortoise Sheldon is 40 years old.", ["What is my tortoise's name?", "How old is my tortoise Sheldon?"]),
        ("I commute by bike every day.", ["How do I commute?", "How often do I commute by bike?"]),
        (
            "I've been learning the cello for three years.",
            ["What have I been learning?", "How long have I been learning the cello?"],
        ),
        (
            "We're going to Kyoto for our honeymoon.",
            ["Where are we going for our honeymoon?", "What are we going to Kyoto for?"],
        ),
        ("I studied physics at the University of Edinburgh.", ["What did I study?", "Where did I study physics?"]),
        ("My passport expires in 2029.", ["When does my passport expire?"]),
        # Verbs no list names, from the lexicon: "repairs", "soldered".
        (
            "My stepbrother Ansgar repairs harpsichords.",
            ["What is my stepbrother's name?", "What does my stepbrother Ansgar repair?"],
        ),
        ("I soldered the lamp in 2021.", ["What did I solder?", "When did I solder the lamp?"]),
        # A noun that is also a verb ("plot", "club") is read as a noun before a later "is" or a verb.
        ("My sailing club meets on Thursdays.", ["When does my sailing club meet?"]),
        ("Our allotment plot number is 37C.", ["What is our allotment plot number?"]),
        ("Our house has a red front door.", ["What does our house have?"]),
        ("My boyfriend is from Nairobi.", ["Where is my boyfriend from?"]),
        ("I get up at 6:30 every morning.", ["When do I get up?", "How often do I get up at 6:30?"]),
        ("My mother-in-law is visiting next week.", ["When is my mother-in-law visiting?"]),
    ],
)
def test_each_part_of_the_clause_gets_its_question(fact, expected):
    assert clause_questions(fact) == expected


def test_who_only_for_a_titled_name_and_nothing_for_a_shape_it_cannot_read():
    # A name without a title may be a person's or a thing's: no list of roles decides, "what" asks.
    assert clause_questions("My favorite band is Radiohead.") == ["What is my favorite band?"]
    assert clause_questions("My harbourmaster is Ingeborg.") == ["What is my harbourmaster?"]
    assert clause_questions("My dentist is Dr. Okafor.") == ["Who is my dentist?"]
    # A favourite is not asked "when", even when it is a season.
    assert clause_questions("My favorite season is autumn.") == ["What is my favorite season?"]
    # "I am vegetarian": "What am I?" would ask nothing.
    assert clause_questions("I am vegetarian.") == []
    assert clause_questions("Lovely weather.") == []
    assert clause_questions("") == []


def test_a_correction_is_asked_like_the_plain_fact_and_limit_caps_the_questions():
    assert clause_questions("Actually, my rent is 1500 dollars a month.") == ["How much is my rent?"]
    assert len(clause_questions("My car is in the garage for repairs until Tuesday.", limit=2)) == 2


def test_a_kind_the_model_names_turns_what_into_which():
    from training.language.wh_questions import kind_questions, kind_slots
    from training.seal.self_edit import parse_kind

    slots = kind_slots("I've been learning the cello for three years.")
    assert slots == [("the cello", "What have I been learning?")]
    assert kind_questions(slots, {"the cello": parse_kind(" instrument.\nA", "the cello")}) == [
        "Which instrument have I been learning?"
    ]
    assert kind_slots("I'm training for a triathlon in May.") == [("a triathlon", "What am I training for?")]
    # A name has no kind, nor does what a copula says the subject is.
    assert kind_slots("My boss is called Margaret.") == []
    assert kind_slots("My laptop is a ThinkPad X1.") == []
    # Vague, too long, or the phrase's own word: no kind, so no question.
    assert parse_kind(" thing.", "the cello") is None
    assert parse_kind(" cello.", "the cello") is None
    assert parse_kind(" very large old wooden box.", "the cello") is None
    assert kind_questions(slots, {"the cello": None}) == []
