"""Deterministic rephrasings of a user's fact: second person and probe questions.

A user says "My sister lives in Lisbon"; the assistant must later answer "Your
sister lives in Lisbon". These rules turn a first-person fact into the
assistant's voice and derive the questions a person would most likely ask about
it. They complement the model's own self-edits, which a 135M model writes
unreliably.
"""

from __future__ import annotations

import re

_PERSON = {
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "am": "are",
    "i'm": "you're",
    "im": "you're",
    "i've": "you've",
    "i'd": "you'd",
    "i'll": "you'll",
    "we": "you",
    "our": "your",
    "ours": "yours",
    "us": "you",
    "was": "was",
}
_TOKEN = re.compile(r"[A-Za-z']+|[^A-Za-z']+")

GENERAL_RECALL_PROMPTS = (
    "What do you know about me?",
    "What did I tell you about myself?",
    "Remind me what I told you.",
)


def to_second_person(fact: str) -> str:
    """Rewrite a first-person statement in the second person ("my" -> "your")."""
    out: list[str] = []
    previous_word = ""
    for token in _TOKEN.findall(fact.strip()):
        lower = token.lower()
        if lower in _PERSON and re.match(r"[A-Za-z']+$", token):
            new = _PERSON[lower]
            # "I was" -> "you were"
            if lower == "was" and previous_word == "i":
                new = "were"
            if token[0].isupper() and out and re.search(r"[.!?]\s*$", "".join(out)) or not out:
                new = new[0].upper() + new[1:]
            out.append(new)
        else:
            out.append(token)
        if re.match(r"[A-Za-z']+$", token):
            previous_word = lower
    text = "".join(out)
    return text[0].upper() + text[1:] if text else text


_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^my (?P<x>[\w' -]+?)(?:'s name is| is called| is named) ", re.I), "What is my {x}'s name?"),
    (re.compile(r"^my (?P<x>[\w' -]+?) (?P<v>is|are|was|were) ", re.I), "What {v} my {x}?"),
    (re.compile(r"^my (?P<x>[\w' -]+?) (?P<v>lives?|works?) (?:in|at|for) ", re.I), "Where does my {x} {v0}?"),
    (re.compile(r"^i (?:live|moved|grew up)\b", re.I), "Where do I live?"),
    (re.compile(r"^i (?:work|am employed)\b", re.I), "Where do I work?"),
    (re.compile(r"^i (?:work as|am an?|'m an?)\b", re.I), "What is my job?"),
    (re.compile(r"^i was born\b", re.I), "When and where was I born?"),
    (
        re.compile(r"^i (?P<v>like|love|enjoy|prefer|hate|dislike|own|have|drive|play|speak|study|use)\b", re.I),
        "What do I {v}?",
    ),
    (re.compile(r"^i(?: am|'m) allergic\b", re.I), "What am I allergic to?"),
)


def probe_questions(fact: str) -> list[str]:
    """Questions a person would ask about ``fact``, most specific first."""
    first = re.split(r"(?<=[.!?])\s+", fact.strip())[0]
    questions: list[str] = []
    for pattern, template in _PATTERNS:
        match = pattern.search(first)
        if not match:
            continue
        groups = {k: v.strip() for k, v in match.groupdict().items() if v}
        if "v" in groups:
            groups["v0"] = groups["v"].rstrip("s")
        question = template.format(**groups) if groups else template
        if question not in questions:
            questions.append(question)
    return questions


_MY_NOUN = re.compile(r"\bmy ([a-z]+)", re.IGNORECASE)
_NAME = re.compile(r"(?<!^)(?<![.!?] )\b([A-Z][a-z]+)\b")
NOT_TOPICS = frozenset({"name", "favorite", "favourite", "own", "first", "last", "best", "new", "old"})


def topic_questions(fact: str, limit: int = 3) -> list[str]:
    """Open questions about what the fact mentions ("my daughter", "Emma").

    Where no pattern of :func:`probe_questions` fits ("My daughter Emma turns 7 on
    March 3rd."), these still tie the fact to its topics, so a differently worded
    question about the same topic finds it.
    """
    questions: list[str] = []
    for noun in _MY_NOUN.findall(fact):
        if noun.lower() not in NOT_TOPICS:
            questions.append(f"What do you know about my {noun.lower()}?")
    for name in _NAME.findall(fact.strip()):
        if name.lower() not in _PERSON:
            questions.append(f"What do you know about {name}?")
    return list(dict.fromkeys(questions))[:limit]
