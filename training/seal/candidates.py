"""SEAL's self-edit candidates: K sampled self-edits, each with its own training settings.

A candidate carries *what* to learn (the lines of a sampled self-edit, and
whether to add the source text itself) and *how* (learning rate, epochs): the
self-chosen optimisation of the paper's few-shot setting, drawn from a small grid.
The reward (a quiz without context) then chooses among candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from training.seal.self_edit import SelfEdit, generate_passage_self_edit


@dataclass(frozen=True)
class TrainingChoice:
    """How a candidate asks to be learnt."""

    learning_rate: float
    epochs: int
    include_source: bool  # also train on the passage/fact itself

    def to_dict(self) -> dict:
        return asdict(self)


# A passage plus a self-edit is only a handful of examples (one or two steps an
# epoch), so the epochs are many; the step cap bounds the cost.
DEFAULT_CHOICE = TrainingChoice(1e-3, 10, True)
GRID: tuple[TrainingChoice, ...] = (
    DEFAULT_CHOICE,
    TrainingChoice(3e-4, 15, True),
    TrainingChoice(2e-3, 6, True),
    TrainingChoice(1e-3, 10, False),
)


@dataclass(frozen=True)
class Candidate:
    index: int
    self_edit: SelfEdit
    choice: TrainingChoice
    seed: int

    def training_texts(self, source: str) -> list[str]:
        texts = list(self.self_edit.lines)
        if self.choice.include_source or not texts:
            texts.insert(0, source)
        return texts


def assign(index: int, families: Sequence[str], grid: Sequence[TrainingChoice]) -> tuple[str, TrainingChoice]:
    """Candidate ``index`` gets grid entry ``index % len(grid)``; families rotate after each grid pass."""
    return families[(index // len(grid)) % len(families)], grid[index % len(grid)]


def propose_candidates(
    model,
    tokenizer,
    source: str,
    k: int,
    families: Sequence[str] = ("rewrite",),
    grid: Sequence[TrainingChoice] = GRID,
    temperature: float = 1.0,
    top_p: float = 0.95,
    seed: int = 0,
    max_new_tokens: int = 192,
    start: int = 0,
) -> list[Candidate]:
    """Sample self-edits ``start`` to ``k - 1`` for ``source`` (a passage), each paired with training settings.

    Candidate ``i`` depends only on ``i`` and ``seed``, so a larger ``k`` adds
    candidates without changing the first ones (``start`` skips those already made).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not 0 <= start <= k:
        raise ValueError(f"start must be between 0 and k={k}, got {start}")
    candidates = []
    for index in range(start, k):
        family, choice = assign(index, families, grid)
        edit = generate_passage_self_edit(
            model,
            tokenizer,
            source,
            family,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            seed=seed * 1000 + index,
        )
        candidates.append(Candidate(index, edit, choice, seed * 1000 + index))
    return candidates
