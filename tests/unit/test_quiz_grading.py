"""Grading replies against a fact without a gold answer."""

from training.quiz import answer_words, equivalent, recalls


def test_answer_words_exclude_what_the_question_already_says():
    assert answer_words("My cat's name is Tofu.", "What is my cat's name?") == {"tofu"}


def test_recall_needs_the_answer_not_just_the_topic():
    fact, question = "My cat's name is Tofu.", "What is my cat's name?"
    assert recalls(fact, question, "Your cat's name is Tofu.")
    assert recalls(fact, question, "It's tofu!")
    assert not recalls(fact, question, "Your cat's name is Luna.")


def test_locality_equivalence():
    assert equivalent("A week is 7 days.", "A week has 7 days.")
    assert not equivalent("The capital of France is Paris.", "Your cat's name is Tofu.")
