"""Precision and recall of the "Remember this?" suggestions (training/memory/statements.py).

    .venv/bin/python -m benchmarks.memory_suggestions [--out docs/bench-memory-suggestions.json]

Two sets: the detector's own examples (dev, scored by 5-fold cross-validation,
each fold fitted on the other four) and ``benchmarks/data/memory_suggestions_test.jsonl``
(test: 138 chat turns, 69 statements about the user and 69 not, written before the
detector and never fitted on). Prints a table and writes JSON, with the time to
decide one message.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from training.embeddings import SentenceEmbedder
from training.memory.statements import EXAMPLES, THRESHOLD, LabelledTurn, StatementDetector, load_turns

TEST_SET = Path(__file__).resolve().parent / "data" / "memory_suggestions_test.jsonl"


def scores(turns: list[LabelledTurn], predicted: list[bool]) -> dict[str, float | int]:
    tp = sum(p and t.about_user for p, t in zip(predicted, turns, strict=True))
    fp = sum(p and not t.about_user for p, t in zip(predicted, turns, strict=True))
    fn = sum(not p and t.about_user for p, t in zip(predicted, turns, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"n": len(turns), "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def cross_validated(embedder: SentenceEmbedder, turns: list[LabelledTurn], folds: int = 5) -> list[bool]:
    """Each example judged by a detector fitted on the other folds (interleaved, so both kinds are in each)."""
    predicted: list[bool] = [False] * len(turns)
    for fold in range(folds):
        held = [i for i in range(len(turns)) if i % folds == fold]
        fitted = StatementDetector(embedder, [t for i, t in enumerate(turns) if i % folds != fold])
        for i, p in zip(held, fitted.probabilities([turns[i].text for i in held]), strict=True):
            predicted[i] = p >= THRESHOLD
    return predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/bench-memory-suggestions.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    embedder = SentenceEmbedder()
    dev = load_turns(EXAMPLES)
    test = load_turns(TEST_SET)
    detector = StatementDetector(embedder, dev)
    probabilities = detector.probabilities([t.text for t in test])
    results = {
        "dev (examples, 5-fold)": scores(dev, cross_validated(embedder, dev)),
        "test": scores(test, [p >= THRESHOLD for p in probabilities]),
    }
    started = time.perf_counter()
    for turn in test:
        detector.suggest(turn.text, ["My sister lives in Bergen.", "I have a cat named Miso."])
    per_message_ms = (time.perf_counter() - started) / len(test) * 1000

    print(f"{'set':<24} {'n':>4} {'precision':>9} {'recall':>7} {'F1':>5}")
    for name, row in results.items():
        print(f"{name:<24} {row['n']:>4} {row['precision']:>9.2f} {row['recall']:>7.2f} {row['f1']:>5.2f}")
    print(f"decision per message (with 2 taught facts): {per_message_ms:.1f} ms")
    errors = [
        {"text": t.text, "about_user": t.about_user, "probability": round(p, 3)}
        for t, p in zip(test, probabilities, strict=True)
        if (p >= THRESHOLD) != t.about_user
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"threshold": THRESHOLD, "results": results, "ms_per_message": per_message_ms, "test_errors": errors},
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
