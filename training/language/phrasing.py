"""Deterministic rephrasings of a user's fact: second person and probe questions.

A user says "My sister lives in Lisbon"; the assistant must later answer "Your
sister lives in Lisbon". These rules turn a first-person fact into the
assistant's voice and derive the questions a person would most likely ask about
it. They complement the model's own self-edits, which a 135M model writes
unreliably.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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

# A title's full stop is not a sentence's end: "My vet is called Dr. Moreau." is one
# sentence, and its name is "Dr. Moreau", not "Dr".
TITLES = ("Dr", "Mr", "Mrs", "Ms", "Mx", "Prof", "St", "Mt", "Jr", "Sr")
TITLE = r"(?:" + "|".join(TITLES) + r")\."
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])" + "".join(rf"(?<!\b{t}\.)" for t in TITLES) + r"\s+(?![a-z])")


def split_sentences(text: str) -> list[str]:
    """``text`` cut into sentences: after ".", "!" or "?", never after a title ("Dr.")
    and never before a lowercase word."""
    return [s for s in _SENTENCE_BREAK.split(text.strip()) if s]


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


# "Our dog" is the user's household's: asked about as "our dog", taught like "my dog".
_MY = r"(?P<p>my|our)"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"^{_MY} (?P<x>[\w' -]+?)(?:'s name is| is called| is named) ", re.I), "What is {p} {x}'s name?"),
    (re.compile(rf"^{_MY} (?P<x>[\w' -]+?) (?P<v>is|are|was|were) ", re.I), "What {v} {p} {x}?"),
    (re.compile(rf"^{_MY} (?P<x>[\w' -]+?) (?P<v>lives?|works?) (?:in|at|for) ", re.I), "Where does {p} {x} {v0}?"),
    (re.compile(r"^i (?:live|moved|grew up)\b", re.I), "Where do I live?"),
    (re.compile(r"^we (?:live|moved)\b", re.I), "Where do we live?"),
    (re.compile(r"^i (?:work|am employed)\b", re.I), "Where do I work?"),
    (re.compile(r"^i (?:work as|am an?|'m an?)\b", re.I), "What is my job?"),
    (re.compile(r"^i was born\b", re.I), "When and where was I born?"),
)


def probe_questions(fact: str) -> list[str]:
    """Questions a person would ask about ``fact``, most specific first."""
    first = (split_sentences(fact) or [""])[0]
    questions: list[str] = []
    for pattern, template in _PATTERNS:
        match = pattern.search(first)
        if not match:
            continue
        groups = {k: v.strip() for k, v in match.groupdict().items() if v}
        if "p" in groups:
            groups["p"] = groups["p"].lower()
        if "v" in groups:
            groups["v0"] = groups["v"].rstrip("s")
        question = template.format(**groups) if groups else template
        if question not in questions:
            questions.append(question)
    return questions


_MY_NOUN = re.compile(rf"\b{_MY} ([a-z]+)", re.IGNORECASE)
_NAME = re.compile(rf"\b((?:{TITLE} )?[A-Z][a-z]+)\b")
NOT_TOPICS = frozenset({"name", "favorite", "favourite", "own", "first", "last", "best", "new", "old"})


def topic_questions(fact: str, limit: int = 3) -> list[str]:
    """Open questions about what the fact mentions ("my daughter", "Emma").

    Where no pattern of :func:`probe_questions` fits ("My daughter Emma turns 7 on
    March 3rd."), these still tie the fact to its topics, so a differently worded
    question about the same topic finds it.
    """
    questions: list[str] = []
    for mine, noun in _MY_NOUN.findall(fact):
        if noun.lower() not in NOT_TOPICS:
            questions.append(f"What do you know about {mine.lower()} {noun.lower()}?")
    for sentence in split_sentences(fact):
        for match in _NAME.finditer(sentence):
            name = match[1]
            # A sentence's first word is capitalised anyway: a name there only with a title.
            if (match.start() > 0 or " " in name) and name.lower() not in _PERSON:
                questions.append(f"What do you know about {name}?")
    return list(dict.fromkeys(questions))[:limit]


# --- Single-valued slots: what a correction replaces -------------------------------

_CORRECTION_PREFIX = re.compile(r"^(?:actually|correction|update|no|sorry|in fact|now)\s*[,:;-]?\s+", re.I)
# An attribute of the user's ("my X") holds one value at a time when the value is a
# number or code ("My locker is 12B", "My shoe size is 42") or when the fact says it
# changed ("... is now ..."): no list of attribute names decides.
_CODE = r"(?=[^ ]*\d)[\w./+#-]+(?: [\w./+#-]+)?"


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


_MOVED = r"(?:now )?(?:live in|lives in|moved (?:from .+? )?to|has moved (?:from .+? )?to|have moved (?:from .+? )?to)"
# (pattern, slot key, question, answer in the assistant's voice)
_SLOT_PATTERNS: tuple[tuple[re.Pattern[str], str, str, str], ...] = (
    (
        _rx(rf"^{_MY} (?P<x>[\w' -]+?)(?:'s name is| is called| is named| is now called) (?P<y>.+)$"),
        "name of {x}",
        "What is {p} {x}'s name?",
        "Your {x}'s name is {y}.",
    ),
    (
        _rx(rf"^{_MY} (?P<x>favou?rite [\w' -]+?) is (?:now )?(?P<y>.+)$"),
        "{x}",
        "What is {p} {x}?",
        "Your {x} is {y}.",
    ),
    (_rx(rf"^{_MY} (?P<x>[a-z][\w -]*?) is (?:now )?(?P<y>{_CODE})$"), "{x}", "What is {p} {x}?", "Your {x} is {y}."),
    (_rx(rf"^{_MY} (?P<x>[a-z][\w -]*?) is now (?P<y>.+)$"), "{x}", "What is {p} {x}?", "Your {x} is {y}."),
    (
        _rx(rf"^{_MY} (?P<x>[\w' -]+?) {_MOVED} (?P<y>.+)$"),
        "home of {x}",
        "Where does {p} {x} live?",
        "Your {x} lives in {y}.",
    ),
    (_rx(rf"^i {_MOVED} (?P<y>.+)$"), "my home", "Where do I live?", "You live in {y}."),
    (_rx(rf"^we {_MOVED} (?P<y>.+)$"), "my home", "Where do we live?", "You live in {y}."),
    (_rx(r"^i (?:now )?work (?:at|for) (?P<y>.+)$"), "my employer", "Where do I work?", "You work at {y}."),
    (_rx(r"^i (?:now )?work as (?:an? )?(?P<y>.+)$"), "my job", "What is my job?", "You work as {y}."),
    (_rx(r"^i(?: am|'m) (?:now )?(?P<y>\d+) years old$"), "age", "How old am I?", "You are {y} years old."),
)


@dataclass(frozen=True)
class Slot:
    """A single-valued attribute a fact sets: a later fact on the same key replaces it."""

    key: str
    value: str
    question: str
    answer: str


def strip_correction(fact: str) -> str:
    """Drop a leading "Actually," / "Correction:" so the fact reads as a plain statement."""
    return _CORRECTION_PREFIX.sub("", fact.strip())


def fact_slot(fact: str) -> Slot | None:
    """The single-valued slot ``fact`` sets, if it sets one ("my cat is called X" -> name of cat).

    Only attributes a person has one of at a time count (a name, where someone
    lives, an employer, a favourite, an age): "I like jazz" and "I like hiking"
    are two facts, "I live in Boston" and "I moved to Denver" are one corrected.
    """
    first = (split_sentences(strip_correction(fact)) or [""])[0].rstrip(".!? ")
    for pattern, key, question, answer in _SLOT_PATTERNS:
        match = pattern.match(first)
        if match:
            x = re.sub(r"\bfavourite\b", "favorite", (match.groupdict().get("x") or "").strip().lower())
            y = re.sub(r"\s+now$", "", match["y"].strip(), flags=re.I)
            p = (match.groupdict().get("p") or "my").lower()
            return Slot(key.format(x=x), y, question.format(x=x, p=p), answer.format(x=x, y=y))
    return None


def question_key(question: str) -> str:
    """What two wordings of one question share ("favourite" / "favorite", case)."""
    return re.sub(r"\bfavourite\b", "favorite", " ".join(question.lower().split()))
