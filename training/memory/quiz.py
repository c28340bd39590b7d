"""Quizzes without context: does an adapter recall a fact, does it keep general answers?

Grading for user facts (no gold answer exists): the *answer words* of a probe are
the fact's content words that the question itself does not contain (for "What is
my cat's name?" about "My cat's name is Tofu", just "tofu"). A reply recalls the
fact when it contains at least half of them, after SQuAD-style normalisation.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from training.chat import ChatMessage, generate_batch, generate_text, with_system_prompt
from training.language.phrasing import (
    TITLE,
    fact_slot,
    probe_questions,
    question_key,
    split_sentences,
    strip_correction,
    topic_questions,
)
from training.language.wh_questions import clause_questions
from training.seal.self_edit import STOPWORDS, key_words, normalize


@dataclass(frozen=True)
class ProbeResult:
    question: str
    answer: str
    recalled: bool


def answer_words(fact: str, question: str) -> set[str]:
    words = key_words(fact) - key_words(question)
    return words or key_words(fact)


def recalls(fact: str, question: str, reply: str) -> bool:
    return _gives_half(answer_words(fact, question), reply)


def _gives_half(words: set[str], reply: str) -> bool:
    """Whether ``reply`` holds at least half of ``words`` (normalised; none: False)."""
    wanted = {normalize(w) for w in words}
    wanted.discard("")
    got = set(normalize(reply).split())
    # Tolerate the possessive/plural form the model chose ("tofu's" vs "tofu").
    got |= {w.removesuffix("s") for w in got}
    hits = sum(1 for w in wanted if w in got or w.removesuffix("s") in got)
    return bool(wanted) and hits * 2 >= len(wanted)


def quiz_without_context(model, tokenizer, fact: str, questions: list[str]) -> list[ProbeResult]:
    """Ask each question with no fact in the prompt and grade the reply."""
    replies = ask_many(model, tokenizer, questions, max_new_tokens=40)
    return [ProbeResult(q, reply, recalls(fact, q, reply)) for q, reply in zip(questions, replies, strict=True)]


def ask_many(model, tokenizer, prompts: Sequence[str], max_new_tokens: int = 40) -> list[str]:
    """Greedy replies to single-turn prompts (project system prompt), decoded in batches."""
    conversations = [with_system_prompt([ChatMessage("user", prompt)]) for prompt in prompts]
    return generate_batch(model, tokenizer, conversations, max_new_tokens=max_new_tokens)


def equivalent(reference: str, reply: str) -> bool:
    """Locality check: the reply keeps the content words of the base model's answer."""
    ref, got = key_words(reference), key_words(reply)
    if not ref:
        return normalize(reference) == normalize(reply)
    return len(ref & got) * 10 >= len(ref) * 7


def squad_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1 between a reply and one gold answer (normalised)."""
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum(min(pred.count(w), ref.count(w)) for w in set(pred) & set(ref))
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def contains_answer(reply: str, answers: Sequence[str]) -> bool:
    """Accuracy as in the benchmark: a normalised gold answer occurs in the reply."""
    padded = f" {normalize(reply)} "
    return any(f" {normalize(a)} " in padded for a in answers if normalize(a))


@dataclass(frozen=True)
class Graded:
    question: str
    reply: str
    correct: bool
    f1: float


def ask_and_grade(
    model, tokenizer, questions: Sequence[tuple[str, Sequence[str]]], context: str = "", max_new_tokens: int = 64
) -> list[Graded]:
    """Ask each question (optionally with ``context`` in the prompt) and grade the reply."""
    prompts = [f"{context}\n\nQuestion: {question}" if context else question for question, _ in questions]
    replies = ask_many(model, tokenizer, prompts, max_new_tokens=max_new_tokens)
    return [
        Graded(question, reply, contains_answer(reply, answers), max(squad_f1(reply, a) for a in answers))
        for (question, answers), reply in zip(questions, replies, strict=True)
    ]


_SPAN = re.compile(rf"\b(?:\d[\d,.]*|(?:{TITLE}\s+)?[A-Z][\w'-]*(?:\s+(?:of\s+|the\s+)?[A-Z][\w'-]*)*)")


def cloze_probes(text: str, n: int = 4, seed: int = 0) -> list[tuple[str, list[str]]]:
    """Fill-in-the-blank questions built from ``text`` itself: a name or number masked.

    Used as a reward where no gold questions exist (a user's fact, or a passage
    when the gold questions must stay unseen). The span masked is never the
    sentence's first word, so the blank is a fact, not grammar.
    """
    rng = random.Random(seed)
    probes = []
    for sentence in split_sentences(text):
        spans = [m for m in _SPAN.finditer(sentence) if m.start() > 0 and m.group().lower() not in STOPWORDS]
        if not spans or len(sentence.split()) < 4:
            continue
        span = rng.choice(spans)
        blanked = sentence[: span.start()] + "____" + sentence[span.end() :]
        probes.append((f"Fill in the blank: {blanked}", [span.group().rstrip(".,")]))
    rng.shuffle(probes)
    return probes[:n]


@dataclass(frozen=True)
class FactProbe:
    """A held-out quiz question about a user's fact.

    Graded by containment of one of ``answers``; else by the content words of
    ``reference`` (the model's own answer with the fact in context); else by the
    fact's words.
    """

    question: str
    answers: tuple[str, ...] | None = None
    reference: str | None = None


def fact_quiz(fact: str, seed: int = 0) -> list[FactProbe]:
    """Quiz for a fact with no gold questions, kept apart from the training prompts.

    Probe questions are asked in a wording never trained on ("Can you remind
    me: what is ..."), plus a cloze probe built from the fact itself.
    """
    fact = strip_correction(fact)
    slot = fact_slot(fact)
    # A slot question ("Where do I live?") is graded by the slot's current value only.
    probes = [FactProbe(_reworded(slot.question), (slot.value,))] if slot else []
    # Then the fact's own questions, else its topics ("my daughter", "Emma"): a
    # question every fact shares ("what do you remember about me?") cannot tell
    # whether *this* fact is kept once the user has taught several.
    # (the clause's plain questions, "What can't I eat?", before the topics: a fact no
    # pattern fits is still quizzed on itself)
    taken = {question_key(slot.question)} if slot else set()
    others = []
    for question in [*probe_questions(fact), *clause_questions(fact), *topic_questions(fact)]:
        if question_key(question) not in taken:
            taken.add(question_key(question))
            others.append(question)
    probes += [FactProbe(_reworded(q)) for q in others[: 2 - len(probes)]]
    if not probes:
        probes.append(FactProbe("Tell me what you remember about me."))
    probes += [FactProbe(q, tuple(a)) for q, a in cloze_probes(fact, n=1, seed=seed)]
    return probes


def _reworded(question: str) -> str:
    return f"Can you remind me: {question[0].lower()}{question[1:]}"


def grade_fact_probe(fact: str, probe: FactProbe, reply: str, replaced_by: str | None = None) -> bool:
    """Whether ``reply`` gives ``fact``'s answer to ``probe``.

    ``replaced_by``: the correction that superseded ``fact``. A reply that gives the
    correction's value tells the new fact, even where it names the old value as
    history: "You moved from Boston to Denver." does not recall "I live in Boston."
    (the gate refused such rebuilds as still recalling the old city: docs/BENCHMARKS.md).
    """
    if probe.answers:
        recalled = contains_answer(reply, probe.answers)
    else:
        recalled = recalls(probe.reference or fact, probe.question, reply)
    return recalled and not (replaced_by and gives_correction(fact, replaced_by, probe.question, reply))


def gives_correction(old: str, correction: str, question: str, reply: str) -> bool:
    """Whether ``reply`` gives what ``correction`` changed about ``old``: the new slot
    value ("Denver" for "I live in Boston." -> "I moved from Boston to Denver."), or
    for a correction that sets no slot, at least half of its words that neither
    ``old`` nor the question has ("Max" for "My dog is Rex." -> "My dog is Max, not Rex.")."""
    slot = fact_slot(correction)
    if slot:
        return contains_answer(reply, (slot.value,))
    return _gives_half(key_words(strip_correction(correction)) - key_words(old) - key_words(question), reply)


_QUESTION_PROMPT = (
    "Here is something a user told you about themselves:\n{fact}\n\n"
    "Write one short question that checks whether someone remembers it. Write only the question."
)
_ANSWER_PROMPT = "What the user told you: {fact}\n\nQuestion: {question}"


def usable_question(raw: str, fact: str, avoid: Sequence[str] = ()) -> str | None:
    """The first question in ``raw`` if it is a usable quiz question about ``fact``, else None.

    Refused: no question mark, under 3 or over 25 words, a prompt trained on
    (``avoid``), or off topic (no content word shared with the fact: "What is the answer?").
    """
    question = raw.strip().split("\n")[0].strip().strip('"')
    if "?" not in question:
        return None
    question = question[: question.index("?") + 1]
    if not 3 <= len(question.split()) <= 25 or normalize(question) in {normalize(a) for a in avoid}:
        return None
    if not key_words(question) & key_words(fact):
        return None
    return question


def model_written_probe(
    model, tokenizer, fact: str, avoid: Sequence[str] = (), temperature: float = 0.0, seed: int = 0
) -> FactProbe | None:
    """A quiz question the model writes with the fact in context, and its in-context answer.

    The reply of the adapted model *without* the fact is later graded against that
    reference answer. Degenerate questions (no question mark, too short or long,
    containing the answer, or equal to a training prompt in ``avoid``) give None.
    """
    import torch

    torch.manual_seed(seed)
    raw = generate_text(
        model,
        tokenizer,
        with_system_prompt([ChatMessage("user", _QUESTION_PROMPT.format(fact=fact))]),
        max_new_tokens=32,
        temperature=temperature,
    )
    question = usable_question(raw, fact, avoid)
    if question is None:
        return None
    reference = generate_text(
        model,
        tokenizer,
        with_system_prompt([ChatMessage("user", _ANSWER_PROMPT.format(fact=fact, question=question))]),
        max_new_tokens=32,
    )
    wanted = answer_words(reference, question) & key_words(fact)
    if not wanted:
        return None  # the in-context answer says nothing of the fact: a useless probe
    return FactProbe(question, reference=" ".join(sorted(wanted)))
