"""Learned routing: who answers a chat turn, from sentence embeddings alone.

Four outcomes for the last user message, decided before any decoding:

- ``adapter``: the message is about one of the user's taught facts; the adapter
  of the group holding the nearest fact answers (``group``);
- ``unknown``: the message asks about the user, but nothing they taught answers
  it ("What size shoes do I wear?" when no fact says): the product answers "I
  don't know that about you yet" instead of letting an adapter guess;
- ``overview``: the message asks what the assistant knows about the user as a
  whole ("What do you remember about me?"): no one fact answers it, and the
  product lists what the user taught;
- ``base``: anything else, answered by the unchanged base model.

Three learned pieces, on all-MiniLM-L6-v2 vectors (``training.embeddings``); no
word list names anything from a facts file:

- ``personal``: a logistic regression on the message's vector: does it ask about
  the user? Fitted on labelled requests (``training/data/router_examples.jsonl``),
  the dev fact sets' questions (about the user) and the replay prompts (general).
- ``overview``: a second logistic regression, fitted on labelled requests for
  everything the assistant knows (``training/data/overview_examples.jsonl``,
  positives and near misses such as "What do you know about Paris?"), with every
  example of the first as a negative;
- the cosine similarity of the message to each taught fact: the largest says
  whether a fact answers it, and its fact's group answers.

A message goes to an adapter when a fact is very near it, when it asks about the
user and a fact is near enough, when it may ask about the user and one fact
stands out from the user's other facts, or when it names someone or something
of the nearest fact (``RouterThresholds``). The thresholds were
chosen on the dev sets, each scored with a router fitted without it
(``benchmarks.routing``); a learned combination of the same numbers was measured
and routed fewer taught questions there. The test set is only scored.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from training.embeddings import SentenceEmbedder
from training.language.phrasing import strip_correction

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "router_examples.jsonl"
OVERVIEW_EXAMPLES = EXAMPLES.with_name("overview_examples.jsonl")
REGULARISATION_C = 4.0
FACT_CACHE_SIZE = 20_000
# A short message that points back ("And how old is she?", "What about his job?")
# leans on the one before it: English function words, nothing from any fact.
FOLLOW_UP_WORDS = 8
_FOLLOW_UP = re.compile(
    r"^(?:and|what about|how about)\b|\b(?:she|he|it|they|her|him|them|his|hers|its|their|that|there)\b", re.IGNORECASE
)

Outcome = Literal["adapter", "unknown", "overview", "base"]


@dataclass(frozen=True)
class RouterThresholds:
    # A fact at least this near answers, whatever the wording ("When is Emma's birthday?").
    near: float = 0.55
    # A message that asks about the user goes to the adapters when a fact is at least this near.
    about: float = 0.35
    # The probability above which a message asks about the user.
    personal: float = 0.7
    # A message that may ask about the user (``maybe_personal``) goes to the adapters
    # when its nearest fact stands out from the user's other facts by ``margin`` and
    # is at least ``floor`` near: a question worded far from its fact ("Where should
    # I look for my travel document?") is still nearer its own fact than the rest.
    # A message that names someone or something of the nearest fact ("What does
    # Ansgar do?") goes to its group when that fact is at least ``floor`` near, even
    # with one fact taught and even when the message does not say "my".
    maybe_personal: float = 0.45
    margin: float = 0.1
    floor: float = 0.3
    # The probability above which a message asks for everything the user taught.
    overview: float = 0.5


@dataclass(frozen=True)
class Route:
    outcome: Outcome
    group: int | None  # the nearest fact's group (``adapter`` only)
    similarity: float  # to the nearest taught fact (0.0 with none)
    personal: float  # the probability that the message asks about the user


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_examples(path: Path = EXAMPLES) -> list[tuple[str, bool]]:
    return [(r["text"], bool(r["asks_about_user"])) for r in _rows(path)]


def load_overview_examples(path: Path = OVERVIEW_EXAMPLES) -> list[tuple[str, bool]]:
    return [(r["text"], bool(r["overview"])) for r in _rows(path)]


def _fit(features: np.ndarray, labels: Sequence[bool]):
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(labels, dtype=int)
    if len(set(y.tolist())) < 2:
        raise ValueError("a routing classifier needs examples of both kinds")
    return LogisticRegression(C=REGULARISATION_C, max_iter=2000).fit(features, y)


class Router:
    """The routing decision for one process: the embedder, the fitted classifier and
    a cache of fact vectors (a user's facts are embedded once)."""

    def __init__(
        self,
        embedder: SentenceEmbedder,
        examples: Sequence[tuple[str, bool]],
        thresholds: RouterThresholds | None = None,
        overview_examples: Sequence[tuple[str, bool]] = (),
    ) -> None:
        """``overview_examples``: labelled requests for everything the user taught
        (none: the router never answers ``overview``)."""
        self.embedder = embedder
        self.thresholds = thresholds or RouterThresholds()
        vectors = embedder.encode([t for t, _ in examples])
        self._personal = _fit(vectors, [y for _, y in examples])
        self._overview = None
        if overview_examples:
            labelled = embedder.encode([t for t, _ in overview_examples])
            self._overview = _fit(
                np.concatenate([labelled, vectors]), [y for _, y in overview_examples] + [False] * len(examples)
            )
        self._facts: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # request threads share the fact cache

    def _fact_vectors(self, facts: Sequence[str]) -> np.ndarray:
        missing = [f for f in dict.fromkeys(facts) if f not in self._facts]
        if missing:
            # A correction's opening ("Actually, ...") says how it was told, not what it
            # is about: "Where do I live?" must find "Actually, I moved to Denver.".
            vectors = self.embedder.encode([strip_correction(f) for f in missing])
            for text, vector in zip(missing, vectors, strict=True):
                self._facts[text] = vector
        for text in facts:
            self._facts.move_to_end(text)
        while len(self._facts) > FACT_CACHE_SIZE:
            self._facts.popitem(last=False)
        return np.stack([self._facts[f] for f in facts])

    def route(self, message: str, facts: Sequence[str], groups: Sequence[int]) -> Route:
        """Who answers ``message`` for a user whose taught ``facts`` sit in ``groups``."""
        with self._lock:
            query = self.embedder.encode([message])
            known = self._fact_vectors(facts) if facts else None
        personal = float(self._personal.predict_proba(query)[0, 1])
        overview = float(self._overview.predict_proba(query)[0, 1]) if self._overview is not None else 0.0
        t = self.thresholds
        if overview >= t.overview:
            return Route("overview", None, 0.0, personal)
        if known is not None:
            similarities = known @ query[0]
            best = int(similarities.argmax())
            nearest = float(similarities[best])
            # With one fact there is nothing for it to stand out from.
            runner_up = float(np.partition(similarities, -2)[-2]) if len(similarities) > 1 else nearest
            stands_out = personal >= t.maybe_personal and nearest >= t.floor and nearest - runner_up >= t.margin
            names_it = nearest >= t.floor and bool(_names(message) & _names(facts[best], first=True))
            if nearest >= t.near or (personal >= t.personal and nearest >= t.about) or stands_out or names_it:
                return Route("adapter", groups[best], nearest, personal)
        else:
            nearest = 0.0
        return Route("unknown" if personal >= t.personal else "base", None, nearest, personal)

    def route_turn(self, user_messages: Sequence[str], facts: Sequence[str], groups: Sequence[int]) -> Route:
        """Who answers a conversation's last user message. A short follow-up that
        points back ("And how old is she?") and alone reaches no adapter is read with
        the message before it; a new short question ("What is the capital of
        Italy?") is not."""
        if not user_messages:
            return Route("base", None, 0.0, 0.0)
        route = self.route(user_messages[-1], facts, groups)
        if route.outcome in ("unknown", "base") and len(user_messages) > 1 and is_follow_up(user_messages[-1]):
            joined = self.route(f"{user_messages[-2]} {user_messages[-1]}", facts, groups)
            if joined.outcome == "adapter":
                return joined
        return route


_CAPITALISED = re.compile(r"\b[A-Z][a-z][\w'-]*")
# A fact's first word is capitalised as a sentence's: a name only if it is no determiner or pronoun.
_OPENERS = frozenset("my our the a an we i his her their its this that these those".split())


def _names(text: str, first: bool = False) -> set[str]:
    """The capitalised words of ``text`` ("Ansgar", "Ghent"), without its first word
    unless ``first`` (a question's first word is capitalised anyway), without "I"."""
    words = _CAPITALISED.findall(strip_correction(text))
    if words and text.lstrip().startswith(words[0]) and (not first or words[0].lower() in _OPENERS):
        words = words[1:]
    return {w.removesuffix("'s") for w in words}


def is_follow_up(message: str) -> bool:
    """A short message that points back at the one before it."""
    return len(message.split()) <= FOLLOW_UP_WORDS and bool(_FOLLOW_UP.search(message))


def dev_router(embedder: SentenceEmbedder, fact_sets: Sequence[Path]) -> Router:
    """A router fitted on the labelled requests, the replay prompts (general) and
    the questions of ``fact_sets`` (about the user); and, for ``overview``, on the
    labelled overview requests with all of those as negatives."""
    from training.memory.fact_sets import load_facts
    from training.replay import REPLAY_PROMPTS

    examples = load_examples() + [(p, False) for p in REPLAY_PROMPTS]
    examples += [(q, True) for path in fact_sets for fact in load_facts(path) for q, _ in fact.questions]
    return Router(embedder, examples, overview_examples=load_overview_examples())


def product_router(embedder: SentenceEmbedder) -> Router:
    """The product's router: fitted on every dev set (never on the test set)."""
    from training.memory.fact_sets import DEV_FACT_SETS

    return dev_router(embedder, DEV_FACT_SETS)


def served_locality(prompts: Sequence[str], changed: Collection[str], outcome: Callable[[str], Outcome]) -> float:
    """Locality of what users are served, over the locality ``prompts`` (general
    requests, some worded about the user). A prompt keeps the base model's answer
    unless the router sends it to an adapter that changed it (``changed``) or answers
    it itself: "I don't know that about you yet" or the list of taught facts
    (``outcome(prompt)`` is ``unknown`` or ``overview``), whatever the adapters did."""
    if not prompts:
        return 1.0
    changed = set(changed)

    def lost(prompt: str) -> bool:
        routed = outcome(prompt)
        return routed in ("unknown", "overview") or (routed == "adapter" and prompt in changed)

    return 1.0 - sum(1 for prompt in prompts if lost(prompt)) / len(prompts)
