"""Learned routing: who answers a chat turn, from sentence embeddings alone.

Three outcomes for the last user message, decided before any decoding:

- ``adapter``: the message is about one of the user's taught facts; the adapter
  of the group holding the nearest fact answers (``group``);
- ``unknown``: the message asks about the user, but nothing they taught is near
  it ("What size shoes do I wear?" when no fact says): the product answers "I
  don't know that about you yet" instead of letting an adapter guess;
- ``base``: anything else, answered by the unchanged base model.

Two learned pieces, both on all-MiniLM-L6-v2 vectors (``training.embeddings``):

- ``asks_about_user``: a logistic regression on the message's vector, fitted on
  labelled requests (``training/data/router_examples.jsonl``), the dev fact sets'
  questions (about the user) and the replay prompts (general);
- ``nearest``: the cosine similarity of the message to each taught fact, whose
  largest value says whether a fact answers it and whose argmax says which group.

Thresholds (``RouterThresholds``) were chosen on the dev sets only
(``benchmarks.routing``); no word list names anything from a facts file.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from training.embeddings import SentenceEmbedder

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "router_examples.jsonl"
REGULARISATION_C = 4.0
FACT_CACHE_SIZE = 20_000

Outcome = Literal["adapter", "unknown", "base"]


@dataclass(frozen=True)
class RouterThresholds:
    # A fact at least this near answers whatever the wording ("When is Emma's birthday?").
    near: float = 0.55
    # A question about the user goes to the adapters when a fact is at least this near.
    about: float = 0.35
    # The personal-question classifier's probability that counts as "about the user".
    personal: float = 0.5


@dataclass(frozen=True)
class Route:
    outcome: Outcome
    group: int | None  # the nearest fact's group (``adapter`` only)
    similarity: float  # to the nearest taught fact (0.0 with none)
    personal: float  # the classifier's probability that the message asks about the user


def load_examples(path: Path = EXAMPLES) -> list[tuple[str, bool]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["text"], bool(r["asks_about_user"])) for r in rows]


class Router:
    """The routing decision for one process: the embedder, the fitted classifier, a
    cache of fact vectors (a user's facts are embedded once)."""

    def __init__(
        self,
        embedder: SentenceEmbedder,
        training: Sequence[tuple[str, bool]],
        thresholds: RouterThresholds | None = None,
    ) -> None:
        from sklearn.linear_model import LogisticRegression

        self.embedder = embedder
        self.thresholds = thresholds or RouterThresholds()
        texts = [t for t, _ in training]
        labels = np.array([y for _, y in training], dtype=int)
        if len(set(labels)) < 2:
            raise ValueError("the personal-question classifier needs examples of both kinds")
        self._classifier = LogisticRegression(C=REGULARISATION_C, max_iter=2000)
        self._classifier.fit(self.embedder.encode(texts), labels)
        self._facts: OrderedDict[str, np.ndarray] = OrderedDict()

    def _fact_vectors(self, facts: Sequence[str]) -> np.ndarray:
        missing = [f for f in dict.fromkeys(facts) if f not in self._facts]
        if missing:
            for text, vector in zip(missing, self.embedder.encode(missing), strict=True):
                self._facts[text] = vector
        for text in facts:
            self._facts.move_to_end(text)
        while len(self._facts) > FACT_CACHE_SIZE:
            self._facts.popitem(last=False)
        return np.stack([self._facts[f] for f in facts])

    def personal(self, messages: Sequence[str]) -> np.ndarray:
        """The probability that each message asks about the user (no facts needed)."""
        return self._classifier.predict_proba(self.embedder.encode(messages))[:, 1]

    def route(self, message: str, facts: Sequence[str], groups: Sequence[int]) -> Route:
        """Who answers ``message`` for a user whose taught ``facts`` sit in ``groups``."""
        query = self.embedder.encode([message])
        personal = float(self._classifier.predict_proba(query)[0, 1])
        if not facts:
            outcome: Outcome = "unknown" if personal >= self.thresholds.personal else "base"
            return Route(outcome, None, 0.0, personal)
        similarities = self._fact_vectors(facts) @ query[0]
        best = int(similarities.argmax())
        nearest = float(similarities[best])
        t = self.thresholds
        if nearest >= t.near or (personal >= t.personal and nearest >= t.about):
            return Route("adapter", groups[best], nearest, personal)
        return Route("unknown" if personal >= t.personal else "base", None, nearest, personal)


def dev_training_examples(fact_sets: Sequence[Path], general: Sequence[str]) -> list[tuple[str, bool]]:
    """The classifier's training data: the labelled requests, every question of the
    given (dev) fact sets as about the user, and ``general`` prompts as not."""
    from training.memory.fact_sets import load_facts

    out = load_examples()
    for path in fact_sets:
        out += [(q, True) for fact in load_facts(path) for q, _ in fact.questions]
    out += [(p, False) for p in general]
    return out
