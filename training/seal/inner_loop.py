"""The inner loop: apply one self-edit by training a fresh LoRA adapter, then use it.

``applied(...)`` is a context manager: inside it the trained adapter is active
on the host model (for quizzing); on exit it is deleted, so the base model is
never wrapped twice and candidates never leak into each other.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence

from training.adapters import AdapterHost
from training.chat import ChatMessage, with_system_prompt
from training.lora import TrainConfig, TrainingExample, train_lora
from training.replay import ReplayItem


def text_examples(texts: Sequence[str]) -> list[TrainingExample]:
    return [TrainingExample((), text, "text") for text in texts if text.strip()]


def replay_examples(items: Sequence[ReplayItem]) -> list[TrainingExample]:
    return [
        TrainingExample(tuple(with_system_prompt([ChatMessage("user", i.prompt)])), i.answer, "replay") for i in items
    ]


def mix_replay(examples: list[TrainingExample], replay: Sequence[ReplayItem], ratio: float, seed: int):
    """Add ``ratio`` replay examples per training example (at least one) from the base model's answers."""
    if not replay or ratio <= 0:
        return examples
    count = min(len(replay), max(1, round(len(examples) * ratio)))
    return examples + replay_examples(random.Random(seed).sample(list(replay), count))


@contextlib.contextmanager
def applied(
    host: AdapterHost, name: str, examples: Sequence[TrainingExample], config: TrainConfig
) -> Iterator[list[float]]:
    """Train a fresh adapter ``name`` on ``examples``; yield its losses with it active; delete it."""
    host.add_fresh(name)
    try:
        host.make_trainable(name)
        losses = train_lora(host.peft, host.tokenizer, examples, config, base_cache=host.replay_hidden_cache)
        with host.using(name):
            yield losses
    finally:
        host.unload(name)
