"""Fact groups: a user's memory as several small adapters, one per group of facts.

One adapter holding all of a user's facts forgets: at 100 facts the first ten
fell to 0.60 of their recall just after learning, locality to 0.30, and every
consolidation or forget had to rehearse or rebuild from a growing set
(docs/BENCHMARKS.md). An adapter of at most ``size`` facts keeps them (recall
0.83-0.98 at ten facts). So facts are placed in groups of at most ``size``; a
consolidation trains only the groups it touches (its cost bounded by ``size``,
whatever the user's total), a forget rebuilds only the fact's own group from
scratch, and the groups nobody touched keep their weights bit for bit.

Which group answers a question (``choose_group``): the group of the fact that
shares most words with it, and where that leaves several groups (or none
shares a word), each candidate group's adapter starts an answer and the one
most sure of its own reply answers (``most_confident``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from training.language.phrasing import split_sentences
from training.routing.scope import fact_terms, question_words, topic_words
from training.seal.self_edit import key_words, normalize

# Routing among a user's fact groups compares each candidate adapter's confidence
# in the first tokens of its reply. At 100 bundled facts in 10 groups
# (scripts/group_routing.py) 4 tokens route exactly as well as 8 (right group
# 0.87, recall 0.75, first group 0.90) for half the decoding; 2 fall to 0.85.
ROUTING_TOKENS = 4

# Below this confidence no adapter answers (``answering_group``;
# ``SEALCHAT_ROUTING_FLOOR``). Measured with scripts/unknown_facts.py on held-out
# facts (docs/BENCHMARKS.md, "Questions about facts never taught"): every right
# answer an adapter gave scored -0.33 or more, and 25 of 63 questions about facts
# never taught that scope routing sent to the adapters scored below -0.5.
DEFAULT_ROUTING_FLOOR = -0.5

# The grounding check (``grounded``): the share of an adapter reply's own words
# (those the question does not already hold) that some fact the user taught must
# hold, and at most how many tokens of the reply the serving engine decodes to
# check it, stopping at the end of its first sentence (``SENTENCE_ENDS``): the
# first sentences of 82 adapter replies measured 9 tokens (median), 12 (p90).
GROUNDED_SHARE = 0.6
GROUNDING_TOKENS = 20
SENTENCE_ENDS = (".", "!", "?", "\n")
# Words that answer a yes-no question about the question's own words ("Is Raj my
# husband?" -> "Yes."): they name nothing a fact must hold.
_AFFIRMATIONS = frozenset({"yes", "yeah", "yep", "no", "nope", "not", "correct", "right"})


def grounded(reply: str, question: str, facts: Sequence[str]) -> bool:
    """Whether the first sentence of an adapter's reply about the user says what
    the user's facts say: at least ``GROUNDED_SHARE`` of its content words that the
    question does not already hold occur in ``facts`` (a plural "s" aside).

    The routing floor stops unsure guesses; a confident one passes it ("What is my
    plate number?" -> "Your plate number is 1234." at -0.18, "What are my cats
    called?" -> "Your cat is called a Whisker." at -0.17, when neither was taught).
    Such a reply names things no fact holds. A reply with no words of its own
    ("Yes.") claims nothing and passes. Measured with scripts/unknown_facts.py
    (docs/BENCHMARKS.md, "A grounding check").
    """
    first = (split_sentences(reply) or [""])[0]
    own = {normalize(w) for w in key_words(first) - key_words(question)} - {"", *_AFFIRMATIONS}
    if not own:
        return True
    known = {normalize(w) for fact in facts for w in key_words(fact)}
    known |= {w.removesuffix("s") for w in known}
    hits = sum(1 for w in own if w in known or w.removesuffix("s") in known)
    return hits >= GROUNDED_SHARE * len(own) - 1e-9


# Everyday words that name the same thing in a fact and in a question about it
# ("Where does my mom come from?" for "My mother was born in Naples."): each set
# is one routing word. Written from the routing misses on the bundled facts
# (docs/BENCHMARKS.md "Fact groups") and the family words of
# ``training.language.phrasing``; the held-out sets were not used, so they check it.
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("mother", "mom", "mum"),
    ("father", "dad"),
    ("grandmother", "grandma"),
    ("grandfather", "grandpa"),
    ("child", "children", "kid"),
    ("movie", "film"),
    ("book", "novel"),
    ("manager", "boss"),
    ("allergy", "allergic", "allergie"),
    ("boat", "sailboat"),
    ("painter", "artist"),
)
_CANONICAL = {word: words[0] for words in SYNONYMS for word in words}


def routing_words(text: str) -> frozenset[str]:
    """``scope.topic_words`` with synonyms merged: what a question and a fact share."""
    return frozenset(_CANONICAL.get(w, w) for w in topic_words(text))


def candidate_groups(
    question: str,
    groups: Mapping[int, Sequence[str]],
    words: Callable[[str], frozenset[str]] = routing_words,
) -> list[int]:
    """The groups that may hold the fact ``question`` asks about, by its words.

    Each fact scores its topic words shared with the question (synonyms merged:
    ``routing_words``), a name from it
    ("Emma", "Biscotti") twice; the groups holding a best-scoring fact are the
    candidates, or every group when no fact shares a word ("Where does my mom
    come from?" for "My mother was born in Naples"). Measured on the bundled
    facts in groups of ten (docs/BENCHMARKS.md): a unique best group is the right
    one 93 % of the time; ties and no match are left to the adapters
    (``choose_group``). ``words``: the topic words compared (``scope.topic_words``
    measures routing without synonyms).
    """
    asked, said = words(question), question_words(question)
    best, out = 0, []
    for group, facts in sorted(groups.items()):
        for fact in facts:
            score = len(asked & words(fact)) + 2 * len(said & fact_terms([fact]))
            if score > best:
                best, out = score, [group]
            elif score == best and score > 0 and group not in out:
                out.append(group)
    return out or sorted(groups)


def choose_group(
    question: str,
    groups: Mapping[int, Sequence[str]],
    confidence: Callable[[Sequence[int]], Mapping[int, float]],
    words: Callable[[str], frozenset[str]] = routing_words,
) -> int:
    """The group whose adapter answers ``question``: the only candidate by words
    (``candidate_groups``), or among several the one ``most_confident`` picks."""
    if not groups:
        raise ValueError("no fact groups to route to")
    return most_confident(candidate_groups(question, groups, words), confidence)


def most_confident(candidates: Sequence[int], confidence: Callable[[Sequence[int]], Mapping[int, float]]) -> int:
    """The candidate group whose adapter is most sure of its own reply
    (``confidence(groups)``: each group's mean log-probability of the first tokens
    of its greedy reply, ``chat.generate_batch_scored``); the lowest group on a
    tie. A single candidate is returned without running any adapter."""
    if len(candidates) == 1:
        return candidates[0]
    scores = confidence(candidates)
    return max(candidates, key=lambda g: (scores[g], -g))


def answering_group(
    question: str,
    groups: Mapping[int, Sequence[str]],
    confidence: Callable[[Sequence[int]], Mapping[int, float]],
    floor: float | None,
    words: Callable[[str], frozenset[str]] = routing_words,
) -> int | None:
    """``choose_group``, then a floor on the chosen adapter's confidence: None (no
    adapter answers; the product says it does not know) when it is below ``floor``.
    A question about the user that no taught fact answers ("Who is my manager?"
    when none was taught) otherwise gets an invented answer from whatever the
    adapter holds ("Your manager at work is Raj."). ``floor`` None: no floor, and
    a single candidate is chosen without running any adapter."""
    scores: dict[int, float] = {}

    def remembered(candidates: Sequence[int]) -> Mapping[int, float]:
        missing = [g for g in candidates if g not in scores]
        if missing:
            scores.update(confidence(missing))
        return scores

    group = choose_group(question, groups, remembered, words)
    if floor is None:
        return group
    return group if remembered([group])[group] >= floor else None
