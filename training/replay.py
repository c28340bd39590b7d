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

from training.chat import ChatMessage, generate_batch, with_system_prompt

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
    # Added with scope routing: more variety, and requests that say "my" or "do I"
    # without being about a taught fact. Routing sends those to the adapter, so
    # replay must teach it to answer them as the base model does.
    "What is a good way to start the day?",
    "Can you help me write a short thank-you note?",
    "What should I pack for a weekend trip?",
    "Give me a quick recipe for pancakes.",
    "How can I stay focused while studying?",
    "What is the difference between weather and climate?",
    "Summarize the story of Cinderella in one sentence.",
    "What is 15 divided by 3?",
    "Explain what a noun is.",
    "What are the three states of matter?",
    "Name a famous scientist.",
    "How do airplanes stay in the air?",
    "What is the capital of Germany?",
    "Write a short poem about the sea.",
    "Give me three tips for saving money.",
    "How many bones are in the human body?",
    "What does a thermometer measure?",
    "Suggest a fun activity for a rainy day.",
    "Tell me a joke.",
    "What is the opposite of generous?",
    "What should I do when I feel stressed?",
    "Why is the sky blue?",
    "What is the capital of Spain?",
    "Is it better to exercise in the morning or in the evening?",
    "How do I reset my router?",
    "What is a good gift for my friend's birthday?",
    "Help me plan my week.",
    "What do I need to make a sandwich?",
    "Can you give me ideas for my garden?",
    "How should I prepare for my job interview?",
    "What can I do to improve my memory?",
    "Recommend a good book for my holiday.",
)

GENERAL_LOCALITY_PROMPTS = (
    "What is the capital of Italy?",
    "How many hours are in a day?",
    "What animal says moo?",
    "What is the boiling point of water in Celsius?",
    "What color are bananas?",
    "How many wheels does a bicycle have?",
    "What is the chemical symbol for gold?",
    "What do cows drink?",
    "What is the capital of Japan?",
    "How many minutes are in an hour?",
    "Who was the first person to walk on the moon?",
    "What gas do humans breathe in to live?",
    "Name three primary colors.",
    "What is 10 times 10?",
    "What is the largest ocean on Earth?",
    "How many continents are there?",
    "What do caterpillars turn into?",
    "Translate 'thank you' into French.",
    "What is the opposite of up?",
    "Which planet is known as the red planet?",
    "What is a healthy breakfast?",
    "How can I sleep better at night?",
    "Write one sentence about autumn.",
    "What is photosynthesis?",
    "Who invented the telephone?",
    "What is the currency of the United Kingdom?",
    "How many sides does a triangle have?",
    "What is the fastest land animal?",
    "Give me a tip for learning a new language.",
    "What is the plural of mouse?",
    "What is the capital of Canada?",
    "Why do we need to drink water?",
    "What is the main language spoken in Mexico?",
    "How many players are on a soccer team?",
    "What do you call frozen water?",
    "Suggest a name for a pet goldfish.",
    "What is the longest river in Africa?",
    "How do I make a cup of tea?",
    "What is the smallest prime number?",
    "Which season comes after winter?",
)

# General requests phrased about the user ("my lunch", "do I need"): scope routing
# sends these to the adapter, so they measure the drift routing cannot hide.
PERSONAL_LOCALITY_PROMPTS = (
    "What is a healthy snack for my lunch?",
    "Can you suggest a name for my new blog?",
    "What should I read to improve my writing?",
    "How can I make my room tidier?",
    "What do I need to start running?",
    "Give me a tip to improve my sleep.",
    "What is a good exercise for my back?",
    "How long should I boil my pasta?",
    "Help me write an email to my boss asking for a day off.",
    "What can I cook for my friends tonight?",
)

LOCALITY_PROMPTS = GENERAL_LOCALITY_PROMPTS + PERSONAL_LOCALITY_PROMPTS

ANSWER_TOKENS = 40


@dataclass(frozen=True)
class ReplayItem:
    prompt: str
    answer: str


def base_answers(model, tokenizer, prompts: tuple[str, ...]) -> list[ReplayItem]:
    conversations = [with_system_prompt([ChatMessage("user", prompt)]) for prompt in prompts]
    answers = generate_batch(model, tokenizer, conversations, max_new_tokens=ANSWER_TOKENS)
    return [ReplayItem(prompt, answer) for prompt, answer in zip(prompts, answers, strict=True)]


def is_complete(cache_file: Path) -> bool:
    """Whether ``cache_file`` holds base answers to every replay and locality prompt."""
    if not cache_file.is_file():
        return False
    data = json.loads(cache_file.read_text())
    cached = {item["prompt"] for items in data.values() for item in items}
    return set(REPLAY_PROMPTS) | set(LOCALITY_PROMPTS) <= cached


def load_or_build(model, tokenizer, cache_file: Path) -> dict[str, list[ReplayItem]]:
    """Return ``{"replay": [...], "locality": [...]}`` base answers, cached in ``cache_file``.

    ``model`` must be the plain base model (callers wrap it in ``disable_adapter``).
    Answers already cached are reused; prompts added since are answered and cached.
    """
    cached: dict[str, str] = {}
    if cache_file.is_file():
        data = json.loads(cache_file.read_text())
        cached = {item["prompt"]: item["answer"] for items in data.values() for item in items}
    wanted = {"replay": REPLAY_PROMPTS, "locality": LOCALITY_PROMPTS}
    missing = tuple(p for prompts in wanted.values() for p in prompts if p not in cached)
    if missing:
        log.info("computing base-model answers to %d prompt(s) into %s", len(missing), cache_file)
        cached.update({item.prompt: item.answer for item in base_answers(model, tokenizer, missing)})
    result = {name: [ReplayItem(p, cached[p]) for p in prompts] for name, prompts in wanted.items()}
    if missing:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: [vars(i) for i in v] for k, v in result.items()}, indent=1))
        os.replace(tmp, cache_file)
    return result
