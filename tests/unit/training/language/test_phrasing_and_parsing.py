"""Pure text logic: second person, probe questions, self-edit parsing, repetition cutting."""

from training.language.phrasing import fact_slot, probe_questions, split_sentences, to_second_person, topic_questions
from training.memory.quiz import cloze_probes
from training.seal.self_edit import anchor_words, cut_repetition, parse_lines


def test_second_person_turns_the_users_voice_into_the_assistants():
    assert to_second_person("My cat's name is Tofu.") == "Your cat's name is Tofu."
    assert to_second_person("I was born in Lyon.") == "You were born in Lyon."
    assert to_second_person("I'm allergic to peanuts and my son is too.") == (
        "You're allergic to peanuts and your son is too."
    )


def test_probe_questions_cover_common_personal_facts():
    assert probe_questions("My cat's name is Tofu.")[0] == "What is my cat's name?"
    assert probe_questions("I live in Denver.") == ["Where do I live?"]
    assert "What is my job?" in probe_questions("I work as a nurse.")
    assert probe_questions("Bananas are yellow.") == []


def test_cut_repetition_stops_a_looping_model():
    looping = "What is the answer to the question: " * 5
    cut = cut_repetition(looping)
    assert cut.count("What is the answer") <= 2
    assert cut_repetition("A perfectly normal sentence.") == "A perfectly normal sentence."


def test_parse_lines_keeps_faithful_distinct_lines_only():
    fact = "My cat's name is Whiskerfield."
    raw = "\n".join(
        [
            "1. Your cat is called Whiskerfield.",
            "- Your cat is called Whiskerfield.",  # duplicate
            "I've been known as Whiskers for years.",  # drops the name: unfaithful
            "",
            "ok",  # too short
            "Whiskerfield is the name of your cat.",
        ]
    )
    assert parse_lines(raw, fact) == ("Your cat is called Whiskerfield.", "Whiskerfield is the name of your cat.")


def test_anchor_words_are_names_and_numbers():
    assert anchor_words("My dog Rex was born in 2019 in Ohio.") == {"rex", "2019", "ohio"}


def test_topic_questions_tie_a_patternless_fact_to_its_topics():
    fact = "My daughter Emma turns 7 on March 3rd."
    assert probe_questions(fact) == []
    assert topic_questions(fact) == [
        "What do you know about my daughter?",
        "What do you know about Emma?",
        "What do you know about March?",
    ]
    assert topic_questions("My cat's name is Tofu.") == [
        "What do you know about my cat?",
        "What do you know about Tofu?",
    ]


def test_a_title_is_part_of_the_name_not_a_sentence_end():
    # "Dr." once ended the sentence: the slot's answer was "Your vet's name is Dr." and
    # every doctor fact trained "What do you know about Dr?" with its own answer.
    assert split_sentences("My vet is called Dr. Moreau. He is kind.") == [
        "My vet is called Dr. Moreau.",
        "He is kind.",
    ]
    slot = fact_slot("My vet is called Dr. Moreau.")
    assert slot is not None and slot.value == "Dr. Moreau"
    assert slot.answer == "Your vet's name is Dr. Moreau."
    assert "What do you know about Dr. Okafor?" in topic_questions("My dentist is Dr. Okafor.")
    assert "What do you know about Dr?" not in topic_questions("My dentist is Dr. Okafor.")
    assert topic_questions("We moved to St. Louis in 2019.") == ["What do you know about St. Louis?"]
    assert cloze_probes("Our landlord is Mr. Petrov.", seed=0) == [
        ("Fill in the blank: Our landlord is ____.", ["Mr. Petrov"])
    ]


def test_sentences_split_only_before_a_new_sentence():
    assert split_sentences("I live in Denver. My sister lives in Lisbon!") == [
        "I live in Denver.",
        "My sister lives in Lisbon!",
    ]
    assert split_sentences("It costs approx. five euros.") == ["It costs approx. five euros."]
    assert split_sentences("  ") == []


def test_our_and_we_facts_are_asked_about_and_corrected_like_my_and_i():
    assert probe_questions("Our landlord is Mr. Petrov.") == ["What is our landlord?"]
    assert "What do you know about our landlord?" in topic_questions("Our landlord is Mr. Petrov.")
    ours, mine = fact_slot("Our dog's name is Rex."), fact_slot("My dog's name is Max.")
    assert ours is not None and mine is not None and ours.key == mine.key
    assert ours.question == "What is our dog's name?" and ours.answer == "Your dog's name is Rex."
    moved, lived = fact_slot("We moved to Denver."), fact_slot("I live in Boston.")
    assert moved is not None and lived is not None and moved.key == lived.key and moved.value == "Denver"
    assert probe_questions("We moved to Denver.") == ["Where do we live?"]
