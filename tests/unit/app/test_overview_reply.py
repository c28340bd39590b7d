"""The reply to "What do you know about me?": the user's facts, newest first, cut to fit."""

from __future__ import annotations

from app.chat.service import NOTHING_TAUGHT_REPLY, OVERVIEW_FACTS, overview_reply


def test_nothing_taught_says_so():
    assert overview_reply(()) == NOTHING_TAUGHT_REPLY


def test_facts_are_listed_newest_first_in_the_users_words_and_those_still_learning_are_marked():
    reply = overview_reply((("My cat is called Whiskerfield.", True), ("I work night shifts at the depot.", False)))
    assert reply.startswith("You have taught me 2 things:")
    lines = [line for line in reply.splitlines() if line.startswith("- ")]
    assert lines == ["- I work night shifts at the depot. *(still learning)*", "- My cat is called Whiskerfield."]
    assert overview_reply((("I am vegetarian.", True),)).startswith("You have taught me this about you:")


def test_a_long_memory_lists_the_newest_and_counts_the_rest():
    facts = tuple((f"Fact number {i} about me.", True) for i in range(OVERVIEW_FACTS + 7))
    reply = overview_reply(facts)
    listed = [line for line in reply.splitlines() if line.startswith("- ")]
    assert len(listed) == OVERVIEW_FACTS and listed[0] == f"- Fact number {OVERVIEW_FACTS + 6} about me."
    assert reply.endswith("…and 7 more, all listed on your Memory page.")


def test_the_list_is_cut_to_whole_facts_that_fit_and_never_below_one():
    facts = tuple((f"Fact {i}.", True) for i in range(5))
    reply = overview_reply(facts, fits=lambda text: text.count("\n- ") <= 2)
    assert [line for line in reply.splitlines() if line.startswith("- ")] == ["- Fact 4.", "- Fact 3."]
    assert reply.endswith("…and 3 more, all listed on your Memory page.")
    assert "- Fact 4." in overview_reply(facts, fits=lambda _text: False)
