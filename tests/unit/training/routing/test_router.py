"""The router decides who answers from sentence embeddings (the real all-MiniLM-L6-v2).

The facts here are written for these tests and appear in no data file the router
was fitted on; nothing in the router names them.
"""

from __future__ import annotations

import pytest

from training.routing.router import Route, Router, load_examples, served_locality

FACTS = [
    "My brother-in-law Anselm restores harpsichords in Ghent.",
    "I keep the spare bike lock key in the red enamel mug.",
    "Our neighbour's parrot is called Captain Biscuit.",
    "I'm training to run an ultramarathon across the Atacama.",
    "My dentist is Dr. Vasquez-Holm.",
    "I take my insulin at 7 in the evening.",
]
GROUPS = [0, 0, 0, 0, 0, 1]


@pytest.mark.parametrize(
    ("question", "group"),
    [
        ("What does my brother-in-law Anselm restore?", 0),
        ("Where is the key for my bike lock?", 0),
        ("Who looks after my teeth?", 0),
        ("When do I have my insulin shot?", 1),
    ],
)
def test_a_question_about_a_taught_fact_goes_to_its_group(router: Router, question: str, group: int):
    route = router.route(question, FACTS, GROUPS)
    assert (route.outcome, route.group) == ("adapter", group), route


@pytest.mark.parametrize(
    "message",
    [
        "What is the capital of Portugal?",
        "How do I make my sourdough rise more?",
        "Can you suggest a warm-up before my run?",
        "Write a haiku about the sea.",
    ],
)
def test_general_requests_go_to_the_base_model_even_when_they_say_my(router: Router, message: str):
    assert router.route(message, FACTS, GROUPS).outcome == "base"


def test_a_question_about_the_user_that_nothing_taught_answers_is_unknown(router: Router):
    route = router.route("What is my passport number?", FACTS, GROUPS)
    assert route.outcome == "unknown" and route.group is None and route.personal >= router.thresholds.personal


def test_without_facts_nothing_reaches_an_adapter(router: Router):
    assert router.route("What is my sister's name?", [], []).outcome == "unknown"
    assert router.route("What is 7 times 8?", [], []).outcome == "base"


def test_a_short_follow_up_is_read_with_the_message_before_it(router: Router):
    turns = ["Tell me about the parrot next door.", "What is it called?"]
    alone = router.route(turns[-1], FACTS, GROUPS)
    assert alone.outcome != "adapter"
    assert router.route_turn(turns, FACTS, GROUPS).outcome == "adapter"
    assert router.route_turn([], FACTS, GROUPS) == Route("base", None, 0.0, 0.0)
    # A new short question after a personal one is not a follow-up.
    switch = ["Who is my dentist?", "What is the capital of Italy?"]
    assert router.route_turn(switch, FACTS, GROUPS).outcome == "base"


def test_the_classifier_learns_from_examples_of_both_kinds(router: Router):
    examples = load_examples()
    assert {label for _, label in examples} == {True, False} and len(examples) >= 100
    with pytest.raises(ValueError, match="both kinds"):
        Router(router.embedder, [(text, True) for text, _ in examples[:5]])


def test_served_locality_counts_changed_prompts_that_reach_an_adapter_and_those_the_router_answers():
    routes = {"What is my dentist's name?": "adapter", "Suggest a name for my blog.": "unknown"}
    prompts = [*routes, "What is the capital of Peru?", *(f"general {i}" for i in range(47))]

    def outcome(prompt: str) -> str:
        return routes.get(prompt, "base")

    # Changed and sent to an adapter: lost. Changed but answered by the base model: kept.
    changed = ["What is my dentist's name?", "What is the capital of Peru?"]
    assert served_locality(prompts, changed, outcome) == pytest.approx(0.96)
    # "I don't know that about you yet" (or the fact list) replaces the base answer
    # whatever the adapters did.
    assert served_locality(prompts, [], outcome) == pytest.approx(0.98)
    routes["What is the capital of Peru?"] = "overview"
    assert served_locality(prompts, [], outcome) == pytest.approx(0.96)
    assert served_locality([], changed, outcome) == 1.0


def test_a_correction_is_found_by_what_it_says_not_by_its_opening(router: Router):
    route = router.route("Where do I live?", ["Actually, I moved from Boston to Denver."], [3])
    assert (route.outcome, route.group) == ("adapter", 3), route


def test_a_far_worded_question_reaches_the_one_fact_that_stands_out(router: Router):
    import copy
    from dataclasses import replace

    # Only the stand-out path may route here: "near" and "about" are out of reach.
    strict = copy.copy(router)
    strict.thresholds = replace(router.thresholds, near=2.0, about=2.0)
    question = "How far is the race I signed up for?"
    route = strict.route(question, FACTS, GROUPS)
    assert (route.outcome, route.group) == ("adapter", 0), route
    assert route.similarity < router.thresholds.near
    # Beside a second race fact, neither stands out: the router does not guess.
    two_races = [*FACTS, "I'm training to run a marathon in Berlin."]
    assert strict.route(question, two_races, [*GROUPS, 2]).outcome == "unknown"


def test_a_message_naming_someone_the_user_taught_reaches_that_fact(router: Router):
    # No "my", and with one fact nothing can stand out: the name decides.
    route = router.route("What does Anselm do for work?", FACTS[:1], [4])
    assert (route.outcome, route.group) == ("adapter", 4), route
    # A name the user never taught decides nothing; nor does a fact's opening word.
    assert router.route("What does Beatrix do for work?", FACTS[:1], [4]).outcome != "adapter"
    assert router.route("What is the capital of Portugal?", ["My cousin lives in Porto."], [0]).outcome == "base"


# Written for this test, none of them in overview_examples.jsonl.
OVERVIEW_REQUESTS = [
    "What do you know about me at this point?",
    "Tell me all the stuff you remember about me.",
    "What have I mentioned to you about myself?",
    "Is there anything you know about me?",
    "Could you recap the things I've taught you?",
    "What kind of things have you learnt about me?",
    "Please list what you know about me.",
    "What's your memory of me?",
]
NEAR_MISSES = [
    "What do you know about Lisbon?",
    "Tell me all you know about penguins.",
    "What do you know about my dentist?",
    "What did I tell you about the parrot?",
    "What do you remember from the books you read?",
    "Tell me about yourself.",
    "Please list the noble gases.",
    "How do you store what I tell you?",
]


def test_a_request_for_everything_taught_asks_for_the_overview_wherever_the_facts_are(router: Router):
    routed = {m: router.route(m, FACTS, GROUPS).outcome for m in OVERVIEW_REQUESTS}
    assert sum(o == "overview" for o in routed.values()) >= 7, routed
    # Without facts too: the answer is then that nothing was taught.
    assert router.route(OVERVIEW_REQUESTS[0], [], []).outcome == "overview"
    # A short follow-up is not read with the message before it when it already asks for the overview.
    assert router.route_turn(["Who is my dentist?", "What do you know about me?"], FACTS, GROUPS).outcome == "overview"


def test_near_misses_do_not_ask_for_the_overview(router: Router):
    routed = {m: router.route(m, FACTS, GROUPS) for m in NEAR_MISSES}
    assert not [m for m, r in routed.items() if r.outcome == "overview"], routed
    assert routed["What do you know about my dentist?"].outcome == "adapter"
