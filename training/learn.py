"""Learn a user's facts into a new, immutable LoRA adapter version: SEAL best-of-K.

This is the interface the web product calls (from a Celery task):

    result = learn_facts(host, LearnRequest(...), progress=callback)

For each of K candidates: the model writes a self-edit for every new fact
(candidate 0 greedy, the others sampled), the candidate picks its training
settings from a small grid, and an adapter is trained on chat-formatted examples
(the fact, its rephrasings and the self-edit), rehearsal of earlier facts'
stored examples and replay of the base model's answers, warm-started from the
previous version when there is one. Each candidate is quizzed without the facts
in context on questions it was not trained on; the one with the highest recall
(ties: locality, then earlier facts' recall) wins and is written, with a
manifest recording every candidate, to a directory that appears atomically.
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
from training.candidates import TrainingChoice
from training.chat import ChatMessage, generate_text, with_system_prompt
from training.lora import LORA_SHAPE, TrainConfig, TrainingExample, planned_steps, train_lora
from training.phrasing import GENERAL_RECALL_PROMPTS, probe_questions, to_second_person, topic_questions
from training.quiz import equivalent, fact_quiz, grade_fact_probe
from training.replay import load_or_build
from training.self_edit import SelfEdit, generate_self_edit

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"

# Training settings a fact candidate may choose (learning rate, epochs; capped by max_steps).
FACT_GRID: tuple[TrainingChoice, ...] = (
    TrainingChoice(5e-4, 8, True),
    TrainingChoice(1e-3, 5, True),
    TrainingChoice(3e-4, 12, True),
)


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
    k: int = 1
    grid: tuple[TrainingChoice, ...] = FACT_GRID
    temperature: float = 0.8
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
class CandidateOutcome:
    index: int
    settings: dict
    facts: list[FactOutcome]
    recall: float
    rehearsal_recall: float | None
    locality: float
    losses: list[float]
    seconds: float

    @property
    def reward(self) -> tuple[float, float, float]:
        return (self.recall, self.locality, self.rehearsal_recall or 0.0)

    def summary(self) -> dict:
        return {
            "index": self.index,
            "settings": self.settings,
            "reward": self.recall,
            "recall_new": self.recall,
            "recall_rehearsed": self.rehearsal_recall,
            "locality": self.locality,
            "loss_first_last": [round(self.losses[0], 4), round(self.losses[-1], 4)],
            "seconds": round(self.seconds, 1),
            "self_edits": [
                {
                    "fact_id": f.fact_id,
                    "family": f.self_edit.family,
                    "raw": f.self_edit.raw,
                    "lines": list(f.self_edit.lines),
                    "quiz": f.quiz,
                }
                for f in self.facts
            ],
        }


@dataclass(frozen=True)
class LearnResult:
    output_dir: Path
    weights_sha256: str
    chosen: int
    candidates: list[CandidateOutcome]
    seconds: dict[str, float]

    @property
    def best(self) -> CandidateOutcome:
        return self.candidates[self.chosen]

    @property
    def facts(self) -> list[FactOutcome]:
        return self.best.facts

    @property
    def losses(self) -> list[float]:
        return self.best.losses

    @property
    def locality(self) -> float:
        return self.best.locality

    @property
    def rehearsal_recall(self) -> float | None:
        return self.best.rehearsal_recall

    @property
    def recall(self) -> float:
        return self.best.recall


ProgressFn = Callable[[str, float], None]


def fact_examples(fact: str, self_edit: SelfEdit) -> tuple[QA, ...]:
    """Question/answer pairs teaching ``fact``: probes, general recall, and the self-edit."""
    statement = to_second_person(fact)
    pairs = [QA(q, statement) for q in [*probe_questions(fact), *topic_questions(fact)]]
    pairs += [QA(q, statement) for q in GENERAL_RECALL_PROMPTS]
    for i, line in enumerate(self_edit.lines):
        prompt = GENERAL_RECALL_PROMPTS[i % len(GENERAL_RECALL_PROMPTS)]
        pairs.append(QA(prompt, to_second_person(line)))
    return tuple(pairs)


def _as_training(pairs: Sequence[QA], kind: str) -> list[TrainingExample]:
    return [
        TrainingExample(tuple(with_system_prompt([ChatMessage("user", p.question)])), p.answer, kind) for p in pairs
    ]


def _ask(model, tokenizer, question: str) -> str:
    return generate_text(model, tokenizer, with_system_prompt([ChatMessage("user", question)]), max_new_tokens=40)


def _quiz_fact(model, tokenizer, fact: str, seed: int) -> list[dict]:
    results = []
    for probe in fact_quiz(fact, seed):
        reply = _ask(model, tokenizer, probe.question)
        results.append({"question": probe.question, "answer": reply, "recalled": grade_fact_probe(fact, probe, reply)})
    return results


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


class _Progress:
    """Maps (candidate, stage, fraction within stage) onto one 0..1 bar."""

    def __init__(self, report: ProgressFn, k: int) -> None:
        self.report, self.k = report, k

    def __call__(self, index: int, stage: str, within: float) -> None:
        label = f"candidate {index + 1}/{self.k}: {stage}" if self.k > 1 else stage
        self.report(label, min(0.99, 0.02 + 0.95 * (index + within) / self.k))


def learn_facts(host: AdapterHost, request: LearnRequest, progress: ProgressFn | None = None) -> LearnResult:
    """Build and write a new adapter version; see the module docstring."""
    if request.output_dir.exists():
        raise FileExistsError(f"adapter version directory already exists: {request.output_dir}")
    if not request.new_facts and not request.rehearsal:
        raise ValueError("learn_facts needs at least one fact to learn or keep")
    if request.k < 1:
        raise ValueError(f"k must be at least 1, got {request.k}")
    model, tokenizer = host.peft, host.tokenizer
    report = _Progress(progress or (lambda stage, fraction: None), request.k)
    started = time.perf_counter()
    with host.using(None):
        replay = load_or_build(model, tokenizer, request.replay_cache)

    rng = random.Random(request.train.seed)
    rehearsed = list(request.rehearsal)
    if len(rehearsed) > request.max_rehearsal_facts:
        # Bounded cost: rehearse a seeded sample, not every earlier fact.
        rehearsed = rng.sample(rehearsed, request.max_rehearsal_facts)
    rehearsal_examples = [e for fact in rehearsed for e in _as_training(fact.examples, "rehearsal")]
    rehearsal_probes = rng.sample(rehearsed, min(4, len(rehearsed)))
    n_facts = len(request.new_facts) + len(rehearsed)
    replay_items = rng.sample(replay["replay"], min(len(replay["replay"]), request.replay_per_fact * n_facts))
    replay_examples = _as_training([QA(r.prompt, r.answer) for r in replay_items], "replay")

    work = request.output_dir.with_name(f".tmp-{request.output_dir.name}-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    candidates: list[CandidateOutcome] = []
    best: CandidateOutcome | None = None
    try:
        for index in range(request.k):
            outcome = _run_candidate(
                host, request, index, rehearsal_examples, rehearsal_probes, replay_examples, replay["locality"], report
            )
            candidates.append(outcome)
            if best is None or outcome.reward > best.reward:
                best = outcome
                report(index, "saving", 0.98)
                shutil.rmtree(work / "best", ignore_errors=True)
                host.save(_candidate_name(request, index), work / "best")
            host.unload(_candidate_name(request, index))
        assert best is not None
        weights = work / "best" / "adapter_model.safetensors"
        digest = sha256_file(weights)
        seconds = {"total": time.perf_counter() - started}
        manifest = {
            "adapter_name": request.adapter_name,
            "base_model": host.loaded.model_id,
            "lora": {**asdict(LORA_SHAPE), "target_modules": list(LORA_SHAPE.target_modules)},
            "train": request.train.to_dict(),
            "seed": request.train.seed,
            "k": request.k,
            "chosen_candidate": best.index,
            "candidates": [c.summary() for c in candidates],
            "init_adapter": str(request.init_adapter) if request.init_adapter else None,
            "facts": [{"id": f.fact_id, "text": f.text} for f in request.new_facts],
            "rehearsed_facts": [{"id": f.fact_id, "text": f.text} for f in rehearsed],
            "kept_facts": [f.fact_id for f in request.rehearsal],
            "self_edits": best.summary()["self_edits"],
            "metrics": {
                "losses": best.losses,
                "recall_new": best.recall if request.new_facts else None,
                "recall_rehearsed": best.rehearsal_recall,
                "locality": best.locality,
                "seconds": seconds,
            },
            "weights_sha256": digest,
        }
        (work / "best" / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
        os.replace(work / "best", request.output_dir)
    finally:
        for index in range(request.k):
            host.unload(_candidate_name(request, index))
        shutil.rmtree(work, ignore_errors=True)
    report(request.k - 1, "done", 1.0)
    return LearnResult(request.output_dir, digest, best.index, candidates, seconds)


def _candidate_name(request: LearnRequest, index: int) -> str:
    return f"{request.adapter_name}-c{index}"


def _run_candidate(
    host: AdapterHost,
    request: LearnRequest,
    index: int,
    rehearsal_examples: list[TrainingExample],
    rehearsal_probes: list[FactToLearn],
    replay_examples: list[TrainingExample],
    locality_items,
    report: _Progress,
) -> CandidateOutcome:
    model, tokenizer = host.peft, host.tokenizer
    started = time.perf_counter()
    seed = request.train.seed * 100 + index
    choice = request.grid[index % len(request.grid)]
    temperature = 0.0 if index == 0 else request.temperature

    report(index, "writing self-edits", 0.0)
    drafts: list[tuple[FactToLearn, SelfEdit, tuple[QA, ...]]] = []
    with host.using(None):
        for fact in request.new_facts:
            edit = generate_self_edit(
                model, tokenizer, fact.text, request.self_edit_family, temperature=temperature, seed=seed
            )
            drafts.append((fact, edit, fact_examples(fact.text, edit)))
    examples = [e for _, _, pairs in drafts for e in _as_training(pairs, "fact")]
    examples += rehearsal_examples + replay_examples

    name = _candidate_name(request, index)
    if request.init_adapter is not None:
        host.load(name, request.init_adapter, trainable=True)
    else:
        host.add_fresh(name)
    host.make_trainable(name)
    config = TrainConfig(
        learning_rate=choice.learning_rate,
        epochs=choice.epochs,
        max_steps=request.train.max_steps,
        batch_size=request.train.batch_size,
        max_length=request.train.max_length,
        seed=seed,
    )
    total = planned_steps(len(examples), config)
    losses = train_lora(
        model,
        tokenizer,
        examples,
        config,
        progress=lambda step, _t, _l: report(index, "training", 0.1 + 0.7 * step / total),
    )

    report(index, "quizzing", 0.85)
    with host.using(name):
        facts = []
        for fact, edit, pairs in drafts:
            quiz = _quiz_fact(model, tokenizer, fact.text, seed)
            facts.append(FactOutcome(fact.fact_id, edit, pairs, quiz, _share([q["recalled"] for q in quiz])))
        rehearsal_recall = None
        if rehearsal_probes:
            rehearsal_recall = _share(
                [q["recalled"] for fact in rehearsal_probes for q in _quiz_fact(model, tokenizer, fact.text, seed)]
            )
        locality = _share([equivalent(item.answer, _ask(model, tokenizer, item.prompt)) for item in locality_items])
    recall = sum(f.recall for f in facts) / len(facts) if facts else (rehearsal_recall or 0.0)
    return CandidateOutcome(
        index=index,
        settings={
            **choice.to_dict(),
            "temperature": temperature,
            "seed": seed,
            "steps": len(losses),
            "family": request.self_edit_family,
        },
        facts=facts,
        recall=recall,
        rehearsal_recall=rehearsal_recall,
        locality=locality,
        losses=losses,
        seconds=time.perf_counter() - started,
    )
