"""Learn a user's facts into a new, immutable LoRA adapter version.

This is the interface the web product calls (from a Celery task):

    result = learn_facts(host, LearnRequest(...), progress=callback)

Steps: for each new fact, the model writes a self-edit (its own rewrite of the
fact); the fact, its rephrasings and the self-edit become chat-formatted training
examples; earlier facts are rehearsed from their stored examples; the base
model's own answers to general prompts are replayed; a LoRA adapter (fresh, or
warm-started from the previous version) is trained; the result is quizzed
without context and written, with a manifest, to a new directory that appears
atomically (a crash never leaves a half-written version).
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from training.adapters import AdapterHost, sha256_file
from training.chat import ChatMessage, generate_text, with_system_prompt
from training.lora import LORA_SHAPE, TrainConfig, TrainingExample, planned_steps, train_lora
from training.phrasing import GENERAL_RECALL_PROMPTS, probe_questions, to_second_person
from training.quiz import equivalent, quiz_without_context
from training.replay import load_or_build
from training.self_edit import SelfEdit, generate_self_edit

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class QA:
    question: str
    answer: str


@dataclass(frozen=True)
class FactToLearn:
    """A fact as the trainer sees it. ``examples`` is set for facts learnt before."""

    fact_id: int
    text: str
    examples: tuple[QA, ...] = ()


@dataclass(frozen=True)
class LearnRequest:
    adapter_name: str
    new_facts: Sequence[FactToLearn]
    rehearsal: Sequence[FactToLearn]
    output_dir: Path
    replay_cache: Path
    init_adapter: Path | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    self_edit_family: str = "rewrite"
    max_rehearsal_facts: int = 24
    replay_per_fact: int = 12


@dataclass(frozen=True)
class FactOutcome:
    fact_id: int
    self_edit: SelfEdit
    examples: tuple[QA, ...]
    quiz: list[dict]
    recall: float


@dataclass(frozen=True)
class LearnResult:
    output_dir: Path
    weights_sha256: str
    losses: list[float]
    facts: list[FactOutcome]
    rehearsal_recall: float | None
    locality: float
    seconds: dict[str, float]

    @property
    def recall(self) -> float:
        return sum(f.recall for f in self.facts) / len(self.facts) if self.facts else 0.0


ProgressFn = Callable[[str, float], None]


def fact_examples(fact: str, self_edit: SelfEdit) -> tuple[QA, ...]:
    """Question/answer pairs teaching ``fact``: probes, general recall, and the self-edit."""
    statement = to_second_person(fact)
    pairs = [QA(q, statement) for q in probe_questions(fact)]
    pairs += [QA(q, statement) for q in GENERAL_RECALL_PROMPTS]
    for i, line in enumerate(self_edit.lines):
        prompt = GENERAL_RECALL_PROMPTS[i % len(GENERAL_RECALL_PROMPTS)]
        pairs.append(QA(prompt, to_second_person(line)))
    return tuple(pairs)


def _as_training(pairs: Sequence[QA], kind: str) -> list[TrainingExample]:
    return [
        TrainingExample(tuple(with_system_prompt([ChatMessage("user", p.question)])), p.answer, kind) for p in pairs
    ]


def _quiz_questions(fact: str) -> list[str]:
    return (probe_questions(fact) or [GENERAL_RECALL_PROMPTS[0]])[:2]


def learn_facts(host: AdapterHost, request: LearnRequest, progress: ProgressFn | None = None) -> LearnResult:
    """Build and write a new adapter version; see the module docstring."""
    report = progress or (lambda stage, fraction: None)
    if request.output_dir.exists():
        raise FileExistsError(f"adapter version directory already exists: {request.output_dir}")
    if not request.new_facts and not request.rehearsal:
        raise ValueError("learn_facts needs at least one fact to learn or keep")
    model, tokenizer = host.peft, host.tokenizer
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    report("writing self-edits", 0.02)
    outcomes_partial: list[tuple[FactToLearn, SelfEdit, tuple[QA, ...]]] = []
    with host.using(None):
        for i, fact in enumerate(request.new_facts):
            edit = generate_self_edit(model, tokenizer, fact.text, request.self_edit_family)
            outcomes_partial.append((fact, edit, fact_examples(fact.text, edit)))
            report("writing self-edits", 0.02 + 0.2 * (i + 1) / len(request.new_facts))
        replay = load_or_build(model, tokenizer, request.replay_cache)
    seconds["self_edits"] = time.perf_counter() - started

    rng = random.Random(request.train.seed)
    rehearsed = list(request.rehearsal)
    if len(rehearsed) > request.max_rehearsal_facts:
        # Bounded cost: rehearse a seeded sample, not every earlier fact.
        rehearsed = rng.sample(rehearsed, request.max_rehearsal_facts)
    examples: list[TrainingExample] = []
    for _, _, pairs in outcomes_partial:
        examples += _as_training(pairs, "fact")
    for fact in rehearsed:
        examples += _as_training(fact.examples, "rehearsal")
    n_facts = len(outcomes_partial) + len(rehearsed)
    replay_items = replay["replay"]
    n_replay = min(len(replay_items), request.replay_per_fact * n_facts)
    examples += _as_training([QA(r.prompt, r.answer) for r in rng.sample(replay_items, n_replay)], "replay")

    t0 = time.perf_counter()
    name = request.adapter_name
    if request.init_adapter is not None:
        host.load(name, request.init_adapter, trainable=True)
    else:
        host.add_fresh(name)
    tmp_dir = request.output_dir.with_name(f".tmp-{request.output_dir.name}-{os.getpid()}")
    try:
        host.make_trainable(name)
        total = planned_steps(len(examples), request.train)
        losses = train_lora(
            model,
            tokenizer,
            examples,
            request.train,
            progress=lambda step, _total, _loss: report("training", 0.25 + 0.6 * step / total),
        )
        seconds["training"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        report("quizzing", 0.88)
        with host.using(name):
            outcomes = []
            for fact, edit, pairs in outcomes_partial:
                quiz = quiz_without_context(model, tokenizer, fact.text, _quiz_questions(fact.text))
                outcomes.append(
                    FactOutcome(
                        fact.fact_id,
                        edit,
                        pairs,
                        [asdict(q) for q in quiz],
                        sum(q.recalled for q in quiz) / len(quiz),
                    )
                )
            rehearsal_recall = None
            if rehearsed:
                probes = rng.sample(rehearsed, min(4, len(rehearsed)))
                hits = [
                    q.recalled
                    for fact in probes
                    for q in quiz_without_context(model, tokenizer, fact.text, _quiz_questions(fact.text)[:1])
                ]
                rehearsal_recall = sum(hits) / len(hits)
            kept = [
                equivalent(
                    item.answer,
                    generate_text(model, tokenizer, with_system_prompt([ChatMessage("user", item.prompt)]), 40),
                )
                for item in replay["locality"]
            ]
        locality = sum(kept) / len(kept)
        seconds["quiz"] = time.perf_counter() - t0

        report("saving", 0.97)
        tmp_dir.mkdir(parents=True)
        weights = host.save(name, tmp_dir)
        digest = sha256_file(weights)
        seconds["total"] = time.perf_counter() - started
        manifest = {
            "adapter_name": name,
            "base_model": host.loaded.model_id,
            "lora": {**asdict(LORA_SHAPE), "target_modules": list(LORA_SHAPE.target_modules)},
            "train": request.train.to_dict(),
            "seed": request.train.seed,
            "init_adapter": str(request.init_adapter) if request.init_adapter else None,
            "facts": [{"id": f.fact_id, "text": f.text} for f in request.new_facts],
            "rehearsed_facts": [{"id": f.fact_id, "text": f.text} for f in rehearsed],
            "kept_facts": [f.fact_id for f in request.rehearsal],
            "self_edits": [
                {
                    "fact_id": o.fact_id,
                    "family": o.self_edit.family,
                    "raw": o.self_edit.raw,
                    "lines": list(o.self_edit.lines),
                }
                for o in outcomes
            ],
            "n_examples": len(examples),
            "metrics": {
                "losses": losses,
                "recall_new": sum(o.recall for o in outcomes) / len(outcomes) if outcomes else None,
                "recall_rehearsed": rehearsal_recall,
                "locality": locality,
                "seconds": seconds,
            },
            "weights_sha256": digest,
        }
        (tmp_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
        os.replace(tmp_dir, request.output_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    finally:
        host.unload(name)
    report("done", 1.0)
    return LearnResult(
        output_dir=request.output_dir,
        weights_sha256=digest,
        losses=losses,
        facts=outcomes,
        rehearsal_recall=rehearsal_recall,
        locality=locality,
        seconds=seconds,
    )
