"""Which chat messages state something about the user worth remembering?

The chat offers "Remember this?" under such a message ("My sister just moved to
Oslo", "I'm vegetarian now"), and never under a question, a request or small
talk. The decision is learnt, not written as phrases: a logistic regression on
the message's sentence embedding (``training.embeddings``) plus one generic cue,
whether the message ends as a question, fitted at start-up on the labelled
examples in ``training/data/statement_examples.jsonl`` (80 turns, half of each
kind). Those examples are the dev set; the test set that the benchmark reports
(``benchmarks/memory_suggestions.py``) was written before the detector and is
never fitted on.

A statement that is close in meaning to a fact the user already taught is
offered as a possible correction of it, with the choice to keep both: embedding
similarity finds the topic ("My sister lives in Bergen" → "My sister just moved
to Oslo", 0.61), not whether the new fact contradicts the old, so the user decides.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.embeddings import SentenceEmbedder

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "statement_examples.jsonl"
# Fitted on normalised embeddings; 5-fold cross-validation on the examples chose it
# (accuracy 0.89 against 0.86 at C=1 or without the question cue).
REGULARISATION_C = 10.0
THRESHOLD = 0.5
# Cosine similarity to a taught fact above which a statement may correct it, and
# above which it says the same thing again (nothing to offer).
CORRECTION_SIMILARITY = 0.5
SAME_SIMILARITY = 0.95
FACT_CACHE_SIZE = 20_000


@dataclass(frozen=True)
class LabelledTurn:
    text: str
    about_user: bool


@dataclass(frozen=True)
class Suggestion:
    """What the chat offers under a message: remember it, or correct ``replaces``
    (an index into the known facts it was given) with it."""

    probability: float
    replaces: int | None = None
    similarity: float | None = None

    @property
    def kind(self) -> str:
        return "correct" if self.replaces is not None else "remember"


def load_turns(path: Path) -> list[LabelledTurn]:
    turns = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("text"), str) or not isinstance(row.get("about_user"), bool):
            raise ValueError(f"{path}:{number}: expected {{'text': str, 'about_user': bool}}, got {row!r}")
        turns.append(LabelledTurn(row["text"], row["about_user"]))
    return turns


def _features(vectors: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    asks = np.array([[1.0 if text.rstrip().endswith("?") else 0.0] for text in texts], dtype=np.float32)
    return np.hstack([vectors, asks]) if len(texts) else np.zeros((0, vectors.shape[1] + 1), np.float32)


class StatementDetector:
    def __init__(self, embedder: SentenceEmbedder, examples: Sequence[LabelledTurn] | None = None) -> None:
        from sklearn.linear_model import LogisticRegression

        examples = list(examples) if examples is not None else load_turns(EXAMPLES)
        labels = {turn.about_user for turn in examples}
        if labels != {True, False}:
            raise ValueError(f"the examples need both kinds of turn, got only about_user={labels}")
        self.embedder = embedder
        self._facts: OrderedDict[str, np.ndarray] = OrderedDict()  # LRU of taught facts' vectors
        texts = [turn.text for turn in examples]
        self._classifier = LogisticRegression(C=REGULARISATION_C, max_iter=2000)
        self._classifier.fit(_features(embedder.encode(texts), texts), [turn.about_user for turn in examples])

    def _fact_vectors(self, facts: Sequence[str]) -> np.ndarray:
        """The facts' vectors, computed once per text (a user's facts change rarely)."""
        missing = [fact for fact in dict.fromkeys(facts) if fact not in self._facts]
        for fact, vector in zip(missing, self.embedder.encode(missing), strict=True):
            self._facts[fact] = vector
        for fact in facts:
            self._facts.move_to_end(fact)
        while len(self._facts) > FACT_CACHE_SIZE:
            self._facts.popitem(last=False)
        return np.stack([self._facts[fact] for fact in facts])

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        """For each text, the probability that it states something about the user."""
        if not texts:
            return []
        features = _features(self.embedder.encode(texts), texts)
        return [float(p) for p in self._classifier.predict_proba(features)[:, 1]]

    def suggest(self, text: str, known_facts: Sequence[str] = ()) -> Suggestion | None:
        """What to offer under ``text``: None (not a statement, or a fact already
        taught), remember it, or correct the most similar known fact with it."""
        vector = self.embedder.encode([text])
        probability = float(self._classifier.predict_proba(_features(vector, [text]))[0, 1])
        if probability < THRESHOLD:
            return None
        if not known_facts:
            return Suggestion(probability)
        similarities = self._fact_vectors(known_facts) @ vector[0]
        best = int(np.argmax(similarities))
        similarity = float(similarities[best])
        if similarity >= SAME_SIMILARITY:
            return None
        if similarity >= CORRECTION_SIMILARITY:
            return Suggestion(probability, best, similarity)
        return Suggestion(probability)
