"""Grading replies against a fact without a gold answer."""

from training.memory.quiz import answer_words, equivalent, fact_quiz, gives_correction, grade_fact_probe, recalls


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


def test_a_reply_with_the_corrected_value_does_not_recall_the_superseded_fact():
    old, correction = "I live in Boston.", "Actually, I moved from Boston to Denver."
    slot, cloze = fact_quiz(old)[0], fact_quiz(old)[-1]
    history = "You moved from Boston to Denver."
    # Without the link the old city in the history counts as recalling it (the gate's false refusal).
    assert grade_fact_probe(old, slot, history)
    assert not grade_fact_probe(old, slot, history, replaced_by=correction)
    assert not grade_fact_probe(old, cloze, "Denver, after Boston.", replaced_by=correction)
    # The old value alone is still recalled, the correction notwithstanding.
    assert grade_fact_probe(old, slot, "You live in Boston.", replaced_by=correction)
    assert grade_fact_probe(old, cloze, "Boston", replaced_by=correction)


def test_a_correction_without_a_slot_is_told_by_its_new_words():
    old, correction = "My dog is a beagle named Rex.", "Correction: my dog is a poodle named Max, not Rex."
    question = "What is my dog?"
    assert gives_correction(old, correction, question, "Your dog is a poodle called Max.")
    assert not gives_correction(old, correction, question, "Your dog is a beagle named Rex.")
    assert not grade_fact_probe(
        old, fact_quiz(old)[0], "A poodle named Max, not Rex the beagle.", replaced_by=correction
    )
