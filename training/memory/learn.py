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

import hashlib
import json
import logging
import math
import os
import pickle
import random
import re
import shutil
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from training import locality
from training.adapters import AdapterHost, sha256_file
from training.chat import ChatMessage, with_system_prompt
from training.language.phrasing import (
    GENERAL_RECALL_PROMPTS,
    fact_slot,
    probe_questions,
    question_key,
    strip_correction,
    to_second_person,
    topic_questions,
)
from training.language.wh_questions import clause_questions
from training.lora import TrainConfig, TrainingExample, planned_steps, train_lora
from training.memory.quiz import FactProbe, ask_many, fact_quiz, grade_fact_probe, model_written_probe
from training.replay import load_or_build
from training.seal.candidates import TrainingChoice
from training.seal.policy import PolicyRef, activate, label
from training.seal.self_edit import SelfEdit, generate_self_edit, key_words

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"

# Epochs for kept facts when an adapter is rebuilt from scratch: as many as a new
# fact's first choice in the grid. 4 lost 3 of 15 kept facts in heldout2's forget,
# 8 lost 1 (docs/BENCHMARKS.md).
REBUILD_EPOCHS = 8

# The self-edit the product writes: the model's own questions about each fact
# (``self_edit.FACT_QA_PROMPT``). On the dev sets at N=30, steps 20-30, recall of
# all facts 0.82 against 0.66 with "rewrite", served 0.73 against 0.56
# (docs/decisions/).
SELF_EDIT_FAMILY = "self_qa"

# At most this many epochs of a warm start's rehearsal (``rehearsal_examples``).
REHEARSAL_MAX_EPOCHS = 8

# Before it is written, the chosen adapter's update loses its attention layers when
# its quiz still recalls every fact without them (``shrink_update``): most of what an
# update changes in unrelated answers is there. On 12 dev facts (heldout2) the
# adapter's own locality went from 0.60 to 0.76 with recall of the benchmark's
# reworded questions unchanged (0.92). Scaling what remains down as well (these
# factors, smallest first, while the quiz holds) raised locality further (0.82 at
# 0.7x) but lost the reworded questions the quiz does not ask (0.58 at 0.7x): the
# quiz cannot see that loss, so the product does not scale (decision 017,
# ``benchmarks.update_scale``).
SHRINK_SCALES: tuple[float, ...] = (0.35, 0.5, 0.7)
ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")

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
    """A fact as the trainer sees it.

    ``examples`` is set for facts learnt before; ``recall`` is the latest measured
    self-quiz recall of such a fact (None: never measured), which rehearsal uses to
    put the weakest facts first.
    """

    fact_id: int
    text: str
    examples: tuple[QA, ...] = ()
    recall: float | None = None
    # A fact leaving the weights because a correction superseded it: the
    # correction's text (a quiz reply giving the new value does not recall this one).
    replaced_by: str | None = None


# Personal facts train with a stronger KL to the base model on replay than SQuAD
# passages do (TrainConfig's default, 4): measured by scripts/locality_experiment.py.
FACT_KL_WEIGHT = 16.0


@dataclass(frozen=True)
class LearnRequest:
    adapter_name: str
    new_facts: Sequence[FactToLearn]
    rehearsal: Sequence[FactToLearn]
    output_dir: Path
    replay_cache: Path
    init_adapter: Path | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    self_edit_family: str = SELF_EDIT_FAMILY
    # The self-edit policy that writes the self-edits (None: the base model itself).
    policy: PolicyRef | None = None
    k: int = 1
    grid: tuple[TrainingChoice, ...] = FACT_GRID
    temperature: float = 0.8
    # Bounded cost: at most this many earlier facts are rehearsed (a seeded
    # sample), each with its first few stored examples, and at most
    # ``verify_facts`` earlier facts are quizzed after training.
    max_rehearsal_facts: int = 24
    rehearsal_examples_per_fact: int = 4
    # Earlier facts' example visits per consolidation, as a share of the new facts'
    # (at least; the step cap bounds the total).
    rehearsal_weight: float = 0.5
    # Half of each pass is replay of the base model's own answers (KL to the base
    # model on them, FACT_KL_WEIGHT in consolidations): measured 0.47 -> 0.54
    # locality with KL 16, 60 replay prompts and this share vs KL 4, 28 prompts and 0.4.
    replay_share: float = 0.5
    verify_facts: int = 8
    # Facts that must leave the weights (forgotten or superseded): the adapter is
    # rebuilt from scratch (``init_adapter`` None) without them, so nothing of them
    # was ever trained into it, and the new version is quizzed on them. Linear in
    # the facts kept, which a fact group bounds.
    removed: Sequence[FactToLearn] = ()
    # Ablations for benchmarks and tests (the paper's setting: sequential edits with
    # neither): train without rehearsing ``rehearsal`` (still quizzed on it) or replay.
    rehearse: bool = True
    # Epochs of every kept fact's stored examples when the adapter is trained from
    # scratch (a rebuild to forget or correct).
    rebuild_epochs: int = REBUILD_EPOCHS
    # The chosen adapter's update is written without its attention layers when its
    # quiz allows (``drop_attention``), then scaled by the smallest of ``shrink_scales``
    # that the quiz allows (``shrink_update``); False and () write it as trained.
    drop_attention: bool = True
    shrink_scales: tuple[float, ...] = ()
    # Where finished candidates are kept while the run goes on (their outcomes and
    # the best one's weights): a rerun of the same request after a crash or a time
    # limit resumes after the last finished candidate instead of starting again.
    # None: a scratch directory, removed whatever happens.
    checkpoint_dir: Path | None = None


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
    locality_kl: float
    losses: list[float]
    seconds: float
    locality_changed: tuple[str, ...] = ()  # the general prompts whose answer it changed

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
            "locality_kl": round(self.locality_kl, 5),
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
    # The chosen version quizzed on a sample of earlier facts and on the removed ones.
    kept_recall: dict[int, float] = field(default_factory=dict)
    removed_recall: dict[int, float] = field(default_factory=dict)
    locality_changed: tuple[str, ...] = ()
    # The base model (which never learnt them) on the removed facts' quiz: what
    # "gone" means when a probe can be answered by a guess ("O negative").
    removed_base_recall: dict[int, float] = field(default_factory=dict)
    # The removed facts' quiz replies ({"question", "answer", "recalled"} each).
    removed_quiz: dict[int, list[dict]] = field(default_factory=dict)
    # How the chosen candidate's update was made smaller before it was written
    # (``shrink_update``), and the written version's locality (None: as scored).
    update_scale: float = 1.0
    attention_dropped: bool = False
    written_locality: locality.Locality | None = None

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
        """The written version's own locality."""
        return self.best.locality if self.written_locality is None else self.written_locality.kept

    @property
    def locality_kl(self) -> float:
        return self.best.locality_kl if self.written_locality is None else self.written_locality.kl

    @property
    def rehearsal_recall(self) -> float | None:
        return self.best.rehearsal_recall

    @property
    def recall(self) -> float:
        return self.best.recall


ProgressFn = Callable[[str, float], None]


def fact_examples(fact: str, self_edit: SelfEdit) -> tuple[QA, ...]:
    """Question/answer pairs teaching ``fact``: its own questions (slot, probes, clause,
    topics) and the self-edit; the questions every fact shares only for a fact with none."""
    fact = strip_correction(fact)
    statement = to_second_person(fact)
    slot = fact_slot(fact)
    pairs = [QA(slot.question, slot.answer)] if slot else []
    pairs += [QA(q, statement) for q in probe_questions(fact) if not slot or q != slot.question]
    # Plain questions about each part of the fact ("When are the swimming lessons?"),
    # early, so that rehearsal keeps them too.
    asked_already = {question_key(qa.question) for qa in pairs}
    pairs += [QA(q, statement) for q in clause_questions(fact) if question_key(q) not in asked_already]
    # Self-QA: the model's own questions about the fact answered with it, the first
    # two early so that rehearsal (a fact's first few examples) keeps them.
    asked = [QA(q, statement) for q in self_edit.lines] if self_edit.family == "self_qa" else []
    pairs += asked[:2]
    topics = [q for q in topic_questions(fact) if not slot or q != slot.question]
    pairs += [QA(q, statement) for q in topics]
    pairs += asked[2:]
    # No question that every fact shares ("What do you know about me?"), unless the fact
    # has no question of its own for the quiz to ask: trained towards each fact of a
    # group in turn, such a question became the adapter's answer to any question worded
    # unlike its own facts' ("What subject was Rosalind a teacher of?" answered with
    # the group's latest fact). The router never sends it to an adapter. (Dev
    # reworded set, 10 facts one at a time: 0.40 -> 0.70 recalled at step 10.)
    if len(pairs) == len(asked):  # no slot, probe, clause or topic question
        pairs += [QA(q, statement) for q in GENERAL_RECALL_PROMPTS]
    # Another family's lines (rewrites, implications) answer the fact's own questions
    # (never none: a fact without any has the general ones by now).
    prompts = topics or [qa.question for qa in pairs]
    for i, line in enumerate(self_edit.lines if not asked else ()):
        pairs.append(QA(prompts[i % len(prompts)], to_second_person(line)))
    return tuple(pairs)


def training_examples(pairs: Sequence[QA], kind: str) -> list[TrainingExample]:
    return [
        TrainingExample(tuple(with_system_prompt([ChatMessage("user", p.question)])), p.answer, kind) for p in pairs
    ]


def quiz_facts(
    model,
    tokenizer,
    facts: Sequence[str],
    extra: Sequence[FactProbe | None] | None = None,
    replaced_by: Sequence[str | None] | None = None,
) -> list[list[dict]]:
    """Ask each fact's held-out quiz (a fixed one per fact, so versions compare) and grade it.

    All facts' questions are decoded in one batched call. ``extra[i]``: a question
    the model wrote about fact ``i`` (a new fact's reward only).
    ``replaced_by[i]``: the correction that superseded fact ``i`` (``grade_fact_probe``).
    """
    extra = extra or [None] * len(facts)
    replaced_by = replaced_by or [None] * len(facts)
    probes = [[*fact_quiz(fact, seed=0), *([more] if more else [])] for fact, more in zip(facts, extra, strict=True)]
    replies = iter(ask_many(model, tokenizer, [p.question for mine in probes for p in mine], max_new_tokens=32))
    out = []
    for fact, mine, more, correction in zip(facts, probes, extra, replaced_by, strict=True):
        results = []
        for probe, reply in zip(mine, replies, strict=False):
            recalled = grade_fact_probe(fact, probe, reply, correction)
            result = {"question": probe.question, "answer": reply, "recalled": recalled}
            if probe is more:
                result["written_by_model"], result["reference"] = True, probe.reference
            results.append(result)
        out.append(results)
    return out


def quiz_questions(fact: str, written: FactProbe | None = None) -> list[str]:
    """Every question the self-quiz asks about ``fact``: what training must not see verbatim."""
    return [p.question for p in fact_quiz(fact, seed=0)] + ([written.question] if written else [])


def facts_recall(
    model,
    tokenizer,
    facts: Sequence[str],
    replaced_by: Sequence[str | None] | None = None,
) -> list[float]:
    """Each fact's share of quiz probes recalled without context (``replaced_by``: see ``quiz_facts``)."""
    quizzes = quiz_facts(model, tokenizer, facts, replaced_by=replaced_by)
    return [_share([q["recalled"] for q in quiz]) for quiz in quizzes]


def fact_recall(model, tokenizer, fact: str) -> float:
    return facts_recall(model, tokenizer, [fact])[0]


def _weak(fact: FactToLearn) -> bool:
    return fact.recall is None or fact.recall < 1.0


def weakest_first(facts: Sequence[FactToLearn], rng: random.Random) -> list[FactToLearn]:
    """Earlier facts ordered for rehearsal: lowest last-measured recall first (never
    measured counts as weakest), ties in a seeded random order."""
    shuffled = rng.sample(list(facts), len(facts))
    return sorted(shuffled, key=lambda f: -1.0 if f.recall is None else f.recall)


_MONTH = re.compile(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?\b", re.I)


def shared_words(text: str) -> set[str]:
    """What two facts must share to be about the same thing: a content word
    ("birthday", "born", "name"; possessives folded, "Emma's" -> "emma"), or both
    holding a date ("turns 7 on March 3rd", "my birthday is on July 14"), which
    the same "when" questions reach."""
    words = {w.removesuffix("'s").removesuffix("'") for w in key_words(strip_correction(text))} - {""}
    return words | ({"<date>"} if _MONTH.search(text) else set())


def at_risk(new_facts: Sequence[FactToLearn], earlier: Sequence[FactToLearn]) -> set[int]:
    """Earlier facts a new one most likely overwrites (``shared_words``). Measured at
    N=30 (docs/BENCHMARKS.md): "My daughter Emma turns 7 on March 3rd" was lost to
    "My birthday is on July 14", "I was born in Montreal" to "My mother was born
    in Naples"."""
    words = set().union(*(shared_words(f.text) for f in new_facts)) if new_facts else set()
    return {f.fact_id for f in earlier if shared_words(f.text) & words}


def verify_sample(
    facts: Sequence[FactToLearn], n: int, rng: random.Random, risky: Collection[int] = ()
) -> list[FactToLearn]:
    """The earlier facts a new version is quizzed on: up to half those at risk from
    the new facts (``at_risk``: did they hold?), then the weakest (did they
    recover?), the rest at random (did a strong one slip?)."""
    if len(facts) <= n:
        return list(facts)
    risky_first = sorted(weakest_first(facts, rng), key=lambda f: f.fact_id not in risky)
    first = [f for f in risky_first if f.fact_id in risky or _weak(f)][: n // 2]
    rest = [f for f in facts if f not in first]
    return first + rng.sample(rest, n - len(first))


def rehearsal_examples(
    rehearsed: Sequence[FactToLearn], per_fact: int, new_visits: int, weight: float
) -> tuple[list[TrainingExample], int]:
    """A warm start's rehearsal: each earlier fact's first ``per_fact`` stored
    examples (twice for a fact not fully recalled at its last quiz), and how many
    epochs of them, so that they get at least ``weight`` times ``new_visits`` (the
    new facts' example visits; a single pass over a few examples lets a similar new
    fact overwrite them: "my dog's name" displacing "my cat's name"). At most
    ``REHEARSAL_MAX_EPOCHS`` epochs; the step cap bounds the total."""
    earlier = [
        e
        for fact in rehearsed
        for e in training_examples(fact.examples[:per_fact], "rehearsal") * (2 if _weak(fact) else 1)
    ]
    if not earlier:
        return [], 1
    return earlier, max(1, min(REHEARSAL_MAX_EPOCHS, math.ceil(new_visits * weight / len(earlier))))


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
    if request.removed and request.init_adapter is not None:
        raise ValueError("removed facts leave by a rebuild from scratch: init_adapter must be None")
    model, tokenizer = host.peft, host.tokenizer
    report = _Progress(progress or (lambda stage, fraction: None), request.k)
    # Reported before any model work, so a caller that stops runs from its progress
    # callback (a fact corrected right after it was taught) stops this one at once.
    report.report("reading the facts", 0.0)
    started = time.perf_counter()
    rng = random.Random(request.train.seed)
    with host.using(None):
        replay = load_or_build(model, tokenizer, request.replay_cache)
        base_locality = host.base_memo(
            ("locality", tuple(replay["locality"])),
            lambda: locality.answer_logits(model, tokenizer, replay["locality"]),
        )
        written = {f.fact_id: written_probe(model, tokenizer, f.text) for f in request.new_facts}
        # The base model (which never learnt them) on the removed facts' quiz.
        base_recalled = facts_recall(
            model, tokenizer, [f.text for f in request.removed], replaced_by=[f.replaced_by for f in request.removed]
        )
        removed_base = {f.fact_id: r for f, r in zip(request.removed, base_recalled, strict=True)}

    rehearsed = list(request.rehearsal) if request.rehearse else []
    risky = at_risk(request.new_facts, request.rehearsal)
    if request.init_adapter is None:
        # A fresh adapter (first version, or a rebuild without removed facts) must
        # learn every kept fact in full: all its examples, for as many epochs as new
        # facts get, with the step budget grown to match. Linear in the facts kept,
        # which only forgetting and corrections pay.
        earlier = [e for fact in rehearsed for e in training_examples(fact.examples, "rehearsal")]
        earlier_epochs = request.rebuild_epochs
    else:
        # Bounded cost: rehearse at most max_rehearsal_facts earlier facts, the
        # weakest first; a fact not fully recalled at its last quiz gets twice the
        # visits. (Putting the facts at risk first as well was measured at N=30 and
        # gained nothing: docs/BENCHMARKS.md.)
        rehearsed = weakest_first(rehearsed, rng)[: request.max_rehearsal_facts]
        n_new = sum(len(f.examples) or 8 for f in request.new_facts) * max(c.epochs for c in request.grid)
        earlier, earlier_epochs = rehearsal_examples(
            rehearsed, request.rehearsal_examples_per_fact, n_new, request.rehearsal_weight
        )
    # Each candidate's reward also quizzes up to 4 earlier facts, those at risk first.
    shuffled = rng.sample(list(request.rehearsal), len(request.rehearsal))
    rehearsal_probes = sorted(shuffled, key=lambda f: f.fact_id not in risky)[:4]
    verify = verify_sample(request.rehearsal, request.verify_facts, rng, risky)
    replay_pool = [QA(r.prompt, r.answer) for r in replay["replay"]]

    work, candidates, best_dir = _open_checkpoint(request)
    best = max(candidates, key=lambda c: c.reward) if candidates else None
    finished = False
    try:
        for index in range(len(candidates), request.k):
            outcome = _run_candidate(
                host,
                request,
                index,
                earlier,
                earlier_epochs,
                written,
                rehearsal_probes,
                replay_pool,
                (replay["locality"], base_locality),
                report,
            )
            candidates.append(outcome)
            if best is None or outcome.reward > best.reward:
                best = outcome
                report(index, "saving", 0.98)
                # A new directory, then the checkpoint names it: a crash in between
                # leaves the previous best and its checkpoint intact.
                previous, best_dir = best_dir, f"best-{index}"
                host.save(_candidate_name(request, index), work / best_dir)
                _save_checkpoint(request, work, candidates, best_dir)
                if previous:
                    shutil.rmtree(work / previous, ignore_errors=True)
            else:
                _save_checkpoint(request, work, candidates, best_dir)
            host.unload(_candidate_name(request, index))
        assert best is not None and best_dir is not None

        report(request.k - 1, "checking earlier facts", 0.99)
        host.load("verify", work / best_dir)
        try:
            with host.using("verify"):
                # Earlier facts, then the removed ones, quizzed in one batched call.
                quizzed = [f.text for f in [*verify, *request.removed]]
                replaced = [None] * len(verify) + [f.replaced_by for f in request.removed]
                quizzes = quiz_facts(model, tokenizer, quizzed, replaced_by=replaced)
                kept_recall, removed_quiz, removed_recall = _kept_and_removed(quizzes, verify, request.removed)
                report(request.k - 1, "making the update smaller", 0.99)
                shrink = shrink_update(
                    host,
                    "verify",
                    request.drop_attention,
                    request.shrink_scales,
                    request.new_facts,
                    best,
                    written,
                    verify,
                    kept_recall,
                    request.removed,
                )
                if shrink.changed:
                    kept_recall, removed_quiz, removed_recall = _kept_and_removed(
                        shrink.quizzes[len(request.new_facts) :], verify, request.removed
                    )
                    local = locality.compare(
                        base_locality, locality.answer_logits(model, tokenizer, replay["locality"]), replay["locality"]
                    )
                    # Beside the checkpointed best, which a rerun after a crash here resumes from.
                    host.save("verify", work / "shrunk")
                    best_dir = "shrunk"
                else:
                    # Measured on these very weights when the candidate was scored (the
                    # saved file holds them bit for bit): not measured twice.
                    local = locality.Locality(best.locality, best.locality_kl, best.locality_changed)
        finally:
            host.unload("verify")
        weights = work / best_dir / "adapter_model.safetensors"
        digest = sha256_file(weights)
        seconds = {"total": time.perf_counter() - started}
        manifest = {
            "adapter_name": request.adapter_name,
            "base_model": host.loaded.model_id,
            "lora": {**asdict(host.shape), "target_modules": list(host.shape.target_modules)},
            "train": request.train.to_dict(),
            "seed": request.train.seed,
            "k": request.k,
            "chosen_candidate": best.index,
            "candidates": [c.summary() for c in candidates],
            "init_adapter": str(request.init_adapter) if request.init_adapter else None,
            "facts": [{"id": f.fact_id, "text": f.text} for f in request.new_facts],
            "rehearsed_facts": [{"id": f.fact_id, "text": f.text} for f in rehearsed],
            "at_risk_facts": sorted(risky),
            "kept_facts": [f.fact_id for f in request.rehearsal],
            "removed_facts": [{"id": f.fact_id, "text": f.text} for f in request.removed],
            "self_edits": best.summary()["self_edits"],
            "metrics": {
                "losses": best.losses,
                "recall_new": best.recall if request.new_facts else None,
                "recall_rehearsed": best.rehearsal_recall,
                "kept_recall": kept_recall,
                "removed_recall": removed_recall,
                "removed_quiz": removed_quiz,
                "removed_base_recall": removed_base,
                "locality": local.to_dict(),
                "update_scale": shrink.scale,
                "attention_dropped": shrink.attention_dropped,
                "locality_as_trained": best.locality,
                "seconds": seconds,
            },
            "weights_sha256": digest,
        }
        (work / best_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
        request.output_dir.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / best_dir, request.output_dir)
        finished = True
    finally:
        for index in range(request.k):
            host.unload(_candidate_name(request, index))
        if finished or request.checkpoint_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    report(request.k - 1, "done", 1.0)
    return LearnResult(
        request.output_dir,
        digest,
        best.index,
        candidates,
        seconds,
        kept_recall,
        removed_recall,
        local.changed,
        removed_base,
        removed_quiz,
        shrink.scale,
        shrink.attention_dropped,
        local if shrink.changed else None,
    )


CHECKPOINT_FILE = "checkpoint.pkl"


def _request_key(request: LearnRequest) -> str:
    """Identifies what a checkpoint was made for: the whole request but where it is kept."""
    return hashlib.sha256(repr(replace(request, checkpoint_dir=None)).encode()).hexdigest()


def _open_checkpoint(request: LearnRequest) -> tuple[Path, list[CandidateOutcome], str | None]:
    """The run's working directory, with the candidates a previous run of the same
    request finished (and the directory of the best one's weights), if any."""
    if request.checkpoint_dir is None:
        work = request.output_dir.with_name(f".tmp-{request.output_dir.name}-{os.getpid()}")
    else:
        work = request.checkpoint_dir
        try:
            saved = pickle.loads((work / CHECKPOINT_FILE).read_bytes())
            if saved["key"] == _request_key(request) and (work / saved["best_dir"]).is_dir():
                log.info("%s: resuming after %d finished candidate(s)", request.adapter_name, len(saved["candidates"]))
                return work, list(saved["candidates"]), saved["best_dir"]
        except FileNotFoundError:
            pass
        except Exception:  # noqa: BLE001 - a checkpoint from other code or a torn write: start afresh
            log.warning("%s: checkpoint at %s unreadable; starting afresh", request.adapter_name, work, exc_info=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work, [], None


def checkpointed_candidates(checkpoint_dir: Path) -> int:
    """How many self-edit candidates the checkpoint at ``checkpoint_dir`` holds
    (0 if there is none, or it cannot be read)."""
    try:
        return len(pickle.loads((checkpoint_dir / CHECKPOINT_FILE).read_bytes())["candidates"])
    except Exception:  # noqa: BLE001 - missing, torn or from other code: no progress to show
        return 0


def _save_checkpoint(
    request: LearnRequest, work: Path, candidates: list[CandidateOutcome], best_dir: str | None
) -> None:
    if request.checkpoint_dir is None or best_dir is None:
        return
    state = {"key": _request_key(request), "candidates": candidates, "best_dir": best_dir}
    partial = work / (CHECKPOINT_FILE + ".partial")
    partial.write_bytes(pickle.dumps(state))
    os.replace(partial, work / CHECKPOINT_FILE)


def _kept_and_removed(
    quizzes: Sequence[list[dict]], verify: Sequence[FactToLearn], removed: Sequence[FactToLearn]
) -> tuple[dict[int, float], dict[int, list[dict]], dict[int, float]]:
    """Split the quizzes of ``verify`` then ``removed`` (in that order) into the kept
    facts' recall, the removed facts' replies (kept: an admin reading "still recalls"
    sees what the version answered) and their recall."""
    rest = iter(quizzes)
    kept_recall = {f.fact_id: _share([q["recalled"] for q in next(rest)]) for f in verify}
    removed_quiz = {f.fact_id: next(rest) for f in removed}
    removed_recall = {i: _share([q["recalled"] for q in quiz]) for i, quiz in removed_quiz.items()}
    return kept_recall, removed_quiz, removed_recall


def written_probe(model, tokenizer, fact: str) -> FactProbe | None:
    """The model's own quiz question for ``fact``, never one of the prompts trained on."""
    trained = [qa.question for qa in fact_examples(fact, SelfEdit("none", "", ()))]
    for attempt in range(3):  # greedy first, then two samples: a 135M model often writes none usable
        probe = model_written_probe(
            model, tokenizer, strip_correction(fact), trained, temperature=0.0 if attempt == 0 else 0.8, seed=attempt
        )
        if probe is not None:
            return probe
    return None


@dataclass(frozen=True)
class Shrink:
    """How ``shrink_update`` left an adapter: its update times ``scale``, without
    its attention layers if ``attention_dropped``, and the quizzes at that setting
    (new facts, then the verified earlier ones, then the removed ones; empty when
    the adapter is as trained)."""

    scale: float = 1.0
    attention_dropped: bool = False
    quizzes: tuple[list[dict], ...] = ()

    @property
    def changed(self) -> bool:
        return self.scale < 1.0 or self.attention_dropped


def shrink_update(
    host: AdapterHost,
    name: str,
    drop_attention: bool,
    scales: Sequence[float],
    new_facts: Sequence[FactToLearn],
    best: CandidateOutcome,
    written: dict[int, FactProbe | None],
    verify: Sequence[FactToLearn],
    kept_recall: dict[int, float],
    removed: Sequence[FactToLearn] = (),
) -> Shrink:
    """Make the loaded adapter ``name``'s update as small as its quiz allows: drop its
    attention layers (``drop_attention``), then scale the rest by the smallest of
    ``scales``, each step kept only if every new fact (``best``'s recall) and every
    verified earlier fact (``kept_recall``) is still recalled at least as well.
    Neither: the adapter is left as trained."""
    model, tokenizer = host.peft, host.tokenizer
    texts = [f.text for f in [*new_facts, *verify, *removed]]
    extra = [written.get(f.fact_id) for f in new_facts] + [None] * (len(verify) + len(removed))
    replaced = [None] * (len(new_facts) + len(verify)) + [f.replaced_by for f in removed]
    wanted = [f.recall for f in best.facts] + [kept_recall[f.fact_id] for f in verify]
    if not wanted or not (drop_attention or scales):
        return Shrink()

    def holds(factor: float, per_module: dict[str, float]) -> list[list[dict]] | None:
        host.rescale(name, factor, per_module)
        quizzes = quiz_facts(model, tokenizer, texts, extra, replaced)
        got = [_share([q["recalled"] for q in quiz]) for quiz in quizzes[: len(wanted)]]
        return quizzes if all(g >= w - 1e-9 for g, w in zip(got, wanted, strict=True)) else None

    no_attention = dict.fromkeys(ATTENTION_MODULES, 0.0)
    kept = Shrink()
    if drop_attention and (quizzes := holds(1.0, no_attention)):
        kept = Shrink(1.0, True, tuple(quizzes))
    per_module = no_attention if kept.attention_dropped else {}
    for factor in sorted(s for s in scales if 0.0 < s < 1.0):
        if quizzes := holds(factor, per_module):
            return Shrink(factor, kept.attention_dropped, tuple(quizzes))
    host.rescale(name, 1.0, per_module)
    return kept


def rebuild_config(config: TrainConfig, n_examples: int) -> TrainConfig:
    """A rebuild from scratch trains one full pass over its examples (every kept
    fact's, repeated for their epochs), however far past the step cap that goes."""
    full_pass = math.ceil(n_examples / config.batch_size) * config.epochs
    return replace(config, max_steps=max(config.max_steps, full_pass))


def _candidate_name(request: LearnRequest, index: int) -> str:
    return f"{request.adapter_name}-c{index}"


def _mix(body: list[TrainingExample], replay_pool: list[QA], share: float, rng: random.Random):
    """One pass of training data: ``body`` plus replay making up ``share`` of the whole."""
    if share <= 0 or not replay_pool:
        return body
    n_replay = round(len(body) * share / (1 - share)) if share < 1 else len(body)
    replay = [replay_pool[i % len(replay_pool)] for i in rng.sample(range(max(n_replay, len(replay_pool))), n_replay)]
    return body + training_examples(replay, "replay")


def _run_candidate(
    host: AdapterHost,
    request: LearnRequest,
    index: int,
    earlier_examples: list[TrainingExample],
    earlier_epochs: int,
    written: dict[int, FactProbe | None],
    rehearsal_probes: list[FactToLearn],
    replay_pool: list[QA],
    locality_base,
    report: _Progress,
) -> CandidateOutcome:
    model, tokenizer = host.peft, host.tokenizer
    started = time.perf_counter()
    seed = request.train.seed * 100 + index
    choice = request.grid[index % len(request.grid)]
    temperature = 0.0 if index == 0 else request.temperature

    report(index, "writing self-edits", 0.0)
    drafts: list[tuple[FactToLearn, SelfEdit, tuple[QA, ...]]] = []
    with host.using(activate(host, request.policy)):
        for fact in request.new_facts:
            edit = generate_self_edit(
                model,
                tokenizer,
                fact.text,
                request.self_edit_family,
                temperature=temperature,
                seed=seed,
                avoid=quiz_questions(fact.text, written.get(fact.fact_id)),
            )
            drafts.append((fact, edit, fact_examples(fact.text, edit)))
    new_examples = [e for _, _, pairs in drafts for e in training_examples(pairs, "fact")]
    examples = _mix(
        new_examples * choice.epochs + earlier_examples * earlier_epochs,
        replay_pool,
        request.replay_share,
        random.Random(seed),
    )

    name = _candidate_name(request, index)
    if request.init_adapter is not None:
        host.load(name, request.init_adapter, trainable=True)
    else:
        host.add_fresh(name)
    host.make_trainable(name)
    config = replace(request.train, learning_rate=choice.learning_rate, epochs=1, seed=seed)
    if request.init_adapter is None and earlier_examples:
        config = rebuild_config(config, len(examples))
    total = planned_steps(len(examples), config)
    losses = train_lora(
        model,
        tokenizer,
        examples,
        config,
        progress=lambda step, _t, _l: report(index, "training", 0.1 + 0.7 * step / total),
        base_cache=host.replay_hidden_cache,
    )

    report(index, "quizzing", 0.85)
    locality_items, base_logits = locality_base
    with host.using(name):
        quizzes = quiz_facts(
            model,
            tokenizer,
            [fact.text for fact, _, _ in drafts] + [fact.text for fact in rehearsal_probes],
            [written.get(fact.fact_id) for fact, _, _ in drafts] + [None] * len(rehearsal_probes),
        )
        facts = [
            FactOutcome(fact.fact_id, edit, pairs, quiz, _share([q["recalled"] for q in quiz]))
            for (fact, edit, pairs), quiz in zip(drafts, quizzes[: len(drafts)], strict=True)
        ]
        rehearsed = [_share([q["recalled"] for q in quiz]) for quiz in quizzes[len(drafts) :]]
        rehearsal_recall = _share([r > 0.5 for r in rehearsed]) if rehearsed else None
        local = locality.compare(base_logits, locality.answer_logits(model, tokenizer, locality_items), locality_items)
    recall = sum(f.recall for f in facts) / len(facts) if facts else (rehearsal_recall or 0.0)
    return CandidateOutcome(
        index=index,
        settings={
            **choice.to_dict(),
            "temperature": temperature,
            "seed": seed,
            "steps": len(losses),
            "family": request.self_edit_family,
            "policy": label(request.policy),
        },
        facts=facts,
        recall=recall,
        rehearsal_recall=rehearsal_recall,
        locality=local.kept,
        locality_kl=local.kl,
        losses=losses,
        seconds=time.perf_counter() - started,
        locality_changed=local.changed,
    )
