"""Quizzes without context: does an adapter recall a fact, does it keep general answers?

Grading for user facts (no gold answer exists): the *answer words* of a probe are
the fact's content words that the question itself does not contain (for "What is
my cat's name?" about "My cat's name is Tofu", just "tofu"). A reply recalls the
fact when it contains at least half of them, after SQuAD-style normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.chat import ChatMessage, generate_text, with_system_prompt
from training.self_edit import key_words, normalize


@dataclass(frozen=True)
class ProbeResult:
    question: str
    answer: str
    recalled: bool


def answer_words(fact: str, question: str) -> set[str]:
    words = key_words(fact) - key_words(question)
    return words or key_words(fact)


def recalls(fact: str, question: str, reply: str) -> bool:
    wanted = {normalize(w) for w in answer_words(fact, question)}
    wanted.discard("")
    got = set(normalize(reply).split())
    # Tolerate the possessive/plural form the model chose ("tofu's" vs "tofu").
    got |= {w.removesuffix("s") for w in got}
    hits = sum(1 for w in wanted if w in got or w.removesuffix("s") in got)
    return bool(wanted) and hits * 2 >= len(wanted)


def quiz_without_context(model, tokenizer, fact: str, questions: list[str]) -> list[ProbeResult]:
    """Ask each question with no fact in the prompt and grade the reply."""
    results = []
    for question in questions:
        reply = generate_text(model, tokenizer, with_system_prompt([ChatMessage("user", question)]), max_new_tokens=40)
        results.append(ProbeResult(question, reply, recalls(fact, question, reply)))
    return results


def equivalent(reference: str, reply: str) -> bool:
    """Locality check: the reply keeps the content words of the base model's answer."""
    ref, got = key_words(reference), key_words(reply)
    if not ref:
        return normalize(reference) == normalize(reply)
    return len(ref & got) * 10 >= len(ref) * 7
