"""Scope: is a chat turn about what the user taught? If not, the base model answers.

A user's adapter knows their facts but also moves the 135M model's answers to
unrelated prompts (locality 0.4-0.6 measured token for token, see
docs/BENCHMARKS.md). Serving the adapter only where it can help keeps general
answers exactly the base model's: the idea of a scope classifier in front of an
edited model (SERAC, Mitchell et al. 2022), here a transparent rule instead of a
trained classifier:

A message is *in scope* when it speaks of the user's own things ("my", "mine",
"myself", "about me", "remind me", "remember"), asks about the user ("Where do
I live?", "When was I born?", but not "How do I boil an egg?"), or names
something from one of their facts ("When is Emma's birthday?" after "My
daughter Emma turns 7 on March 3rd"). A short follow-up ("And how old is she?")
inherits the scope of the user's previous message. Everything else goes to the
base model.

The rule errs towards the adapter: a general question that names something from
a fact ("Is March a good month for skiing?") is answered by the adapter, which is
what happens without routing. It misses personal questions with none of these
cues ("Which medicine must I avoid?"): those get the base model, which does not
know the fact (4 of the 105 bundled facts' questions).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from training.chat import ChatMessage
from training.self_edit import STOPWORDS

PERSONAL_WORDS = frozenset({"my", "mine", "myself"})
PERSONAL_PHRASES = (
    "about me",
    "remind me",
    "remember",
    "do you know me",
    "who am i",
    "did i tell you",
    "i told you",
)
# "Where do I live?", "Which film do I love?", "When was I born?" ask about the
# user; "How do I boil an egg?" does not.
_ABOUT_I = re.compile(r"(?<!\bhow )\b(?:do|did|am|was|were|have|had)\s+i\b")
_FOLLOW_UP = re.compile(
    r"^(?:and|what about|how about)\b|\b(?:she|he|it|they|her|him|them|his|hers|its|their|that|there)\b"
)
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_NAME = re.compile(r"\b([A-Z][a-z][\w'-]*)")


def _stem(word: str) -> str:
    return word.lower().removesuffix("'s").removesuffix("'")


def fact_terms(facts: Iterable[str]) -> frozenset[str]:
    """What identifies the user's facts in a question: the names in them.

    "Emma", "Biscotti", "Denver", "Acme": capitalised words that are not stop
    words ("My", "The" and "I" are not names). Attribute words ("color", "name",
    "city") and numbers are left out: they are as common in general questions
    ("What is 2 plus 3?"), and a question about the user's own attribute says
    "my" or "do I".
    """
    out: set[str] = set()
    for fact in facts:
        out |= {_stem(m.group(1)) for m in _NAME.finditer(fact.strip())}
    return frozenset(t for t in out if t and t not in STOPWORDS)


def is_personal(message: str) -> bool:
    lowered = " ".join(message.lower().split())
    words = {_stem(w) for w in _WORD.findall(lowered)}
    return bool(words & PERSONAL_WORDS) or any(p in lowered for p in PERSONAL_PHRASES) or bool(_ABOUT_I.search(lowered))


def message_in_scope(message: str, known: frozenset[str]) -> bool:
    return is_personal(message) or bool({_stem(w) for w in _WORD.findall(message)} & known)


def is_follow_up(message: str) -> bool:
    """A short message that leans on the previous one: "And how old is she?"."""
    lowered = " ".join(message.lower().split())
    return len(lowered.split()) <= 8 and bool(_FOLLOW_UP.search(lowered))


def in_scope(history: Sequence[ChatMessage], facts: Iterable[str]) -> bool:
    """Whether the reply to ``history`` should come from the user's adapter.

    The last user message decides; a short follow-up ("How old is she?") takes
    the scope of the user message before it.
    """
    known = fact_terms(facts)
    users = [m.content for m in history if m.role == "user"]
    if not users:
        return False
    if message_in_scope(users[-1], known):
        return True
    return len(users) > 1 and is_follow_up(users[-1]) and message_in_scope(users[-2], known)


def served_locality(changed: Sequence[str], n_prompts: int, facts: Iterable[str]) -> float:
    """Locality of what users are served once routing applies.

    A general prompt whose answer the adapter changed (``changed``, from the
    locality quiz of ``n_prompts`` prompts) reaches a user only when it is routed
    to the adapter; the others are answered by the base model itself.
    """
    if n_prompts <= 0:
        return 1.0
    known = fact_terms(facts)
    routed = sum(1 for prompt in changed if message_in_scope(prompt, known))
    return 1.0 - routed / n_prompts
