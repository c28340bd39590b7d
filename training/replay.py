"""General prompts and the base model's own answers to them.

Replay (self-distillation): mixing the base model's answers to unrelated prompts
into every fine-tune keeps general behaviour from drifting. A disjoint set of
locality prompts is never trained on and measures that drift afterwards.
Base answers are computed once per base model and cached as JSON.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from training.chat import ChatMessage, generate_text, with_system_prompt

log = logging.getLogger(__name__)

REPLAY_PROMPTS = (
    "What is the capital of France?",
    "How many days are there in a week?",
    "What color is the sky on a clear day?",
    "Name a fruit that is yellow.",
    "What is 2 plus 3?",
    "Who wrote Romeo and Juliet?",
    "What do bees make?",
    "What is the opposite of hot?",
    "Say hello in Spanish.",
    "What is water made of?",
    "How many legs does a spider have?",
    "What is the largest planet in our solar system?",
    "What sound does a dog make?",
    "What do plants need to grow?",
    "How many months are in a year?",
    "What is the freezing point of water in Celsius?",
    "Give me a synonym for happy.",
    "What is the main ingredient of bread?",
    "Which animal is known as the king of the jungle?",
    "What do you call a baby cat?",
    "What is the tallest mountain in the world?",
    "How do I boil an egg?",
    "Can you recommend a good habit for mornings?",
    "What language is spoken in Brazil?",
    "Hi! How are you today?",
    "Tell me a fun fact about the ocean.",
    "What is the square root of 16?",
    "Who painted the Mona Lisa?",
)

LOCALITY_PROMPTS = (
    "What is the capital of Italy?",
    "How many hours are in a day?",
    "What animal says moo?",
    "What is the boiling point of water in Celsius?",
    "What color are bananas?",
    "How many wheels does a bicycle have?",
    "What is the chemical symbol for gold?",
    "What do cows drink?",
)

ANSWER_TOKENS = 40


@dataclass(frozen=True)
class ReplayItem:
    prompt: str
    answer: str


def base_answers(model, tokenizer, prompts: tuple[str, ...]) -> list[ReplayItem]:
    return [
        ReplayItem(
            prompt,
            generate_text(model, tokenizer, with_system_prompt([ChatMessage("user", prompt)]), ANSWER_TOKENS),
        )
        for prompt in prompts
    ]


def load_or_build(model, tokenizer, cache_file: Path) -> dict[str, list[ReplayItem]]:
    """Return ``{"replay": [...], "locality": [...]}`` base answers, cached in ``cache_file``.

    ``model`` must be the plain base model (callers wrap it in ``disable_adapter``).
    """
    if cache_file.is_file():
        data = json.loads(cache_file.read_text())
        return {k: [ReplayItem(**item) for item in v] for k, v in data.items()}
    log.info("computing base-model replay answers into %s", cache_file)
    result = {
        "replay": base_answers(model, tokenizer, REPLAY_PROMPTS),
        "locality": base_answers(model, tokenizer, LOCALITY_PROMPTS),
    }
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: [vars(i) for i in v] for k, v in result.items()}, indent=1))
    os.replace(tmp, cache_file)
    return result
