"""The model work of a ReST-EM round (:class:`training.policy.rest_em.RoundWork`), on one :class:`AdapterHost`.

Passages (offline, SQuAD train): the policy writes a self-edit with a paper
prompt family; it is applied with the passage under the candidate's
self-chosen settings (the inner loop, replay mixed in) and the passage's gold
questions are asked without context.

Facts (online, what users taught): the samples are the product's recorded
candidates, already applied and quizzed by consolidation; only the model's
knowledge of the fact *before* any edit is measured here (the base model's
no-context recall). Held-out facts come with gold questions; a policy is
judged by learning each the way the product does and asking those questions.

The policy itself is trained on (request -> parsed self-edit) pairs, only the
self-edit's tokens learnt, from the current policy's weights: a chat turn, or
for a fact's self-QA the few-shot document the product continues as plain text
(``ScoredSample.chat``), so what is trained is the way it is used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from training.adapters import AdapterHost
from training.chat import ChatMessage
from training.lora import TrainConfig, TrainingExample, train_lora
from training.memory.learn import fact_examples, fact_recall, quiz_questions, training_examples
from training.memory.quiz import ask_and_grade
from training.policy.rest_em import RoundConfig, RoundWork, ScoredSample, StudyInput
from training.seal.candidates import DEFAULT_CHOICE, GRID, TrainingChoice, propose_candidates
from training.seal.inner_loop import applied, mix_replay, text_examples
from training.seal.policy import PolicyRef, activate
from training.seal.self_edit import (
    DOCUMENT_FAMILIES,
    PASSAGE_PROMPTS,
    SelfEdit,
    fact_prompt,
    generate_passage_self_edit,
    generate_self_edit,
)

TRAINING_ADAPTER = "policy-training"
# The product learns a fact with about this many passes over its examples.
FACT_EPOCHS = 5


def completion_of(edit: SelfEdit) -> str:
    """What the policy should have written: the parsed lines, in the prompt's own format."""
    if edit.family == "self_qa":
        return "\n".join(line.replace("Question: ", "Q: ", 1).replace("\nAnswer: ", "\nA: ", 1) for line in edit.lines)
    return "\n".join(edit.lines)


def _accuracy(graded) -> float:
    return sum(g.correct for g in graded) / len(graded) if graded else 0.0


class _Work:
    def __init__(self, host: AdapterHost, parent: PolicyRef | None, config: RoundConfig, replay) -> None:
        self.host, self.parent, self.config, self.replay = host, parent, config, list(replay)

    def _inner(self, examples: list[TrainingExample], choice: TrainingChoice, seed: int, questions) -> float:
        """Apply one self-edit to the base model (a fresh LoRA) and quiz without context."""
        examples = mix_replay(examples, self.replay, self.config.replay_ratio, seed)
        train = TrainConfig(
            learning_rate=choice.learning_rate, epochs=choice.epochs, max_steps=self.config.inner_max_steps, seed=seed
        )
        with applied(self.host, "rest-inner", examples, train):
            return _accuracy(ask_and_grade(self.host.peft, self.host.tokenizer, list(questions)))

    def baseline(self, item: StudyInput) -> float:
        with self.host.using(None):
            return _accuracy(ask_and_grade(self.host.peft, self.host.tokenizer, list(item.questions)))

    def train(self, kept: list[ScoredSample], out_dir: Path) -> list[float]:
        """Fine-tune the policy on the kept pairs, from the current policy's weights."""
        host = self.host
        host.unload(TRAINING_ADAPTER)
        if self.parent is not None:
            host.load(TRAINING_ADAPTER, self.parent.path, trainable=True)
        else:
            host.add_fresh(TRAINING_ADAPTER)
        try:
            host.make_trainable(TRAINING_ADAPTER)
            examples = [
                TrainingExample((ChatMessage("user", s.prompt),) if s.chat else s.prompt, s.completion, "self_edit")
                for s in kept
            ]
            config = TrainConfig(
                learning_rate=self.config.policy_learning_rate,
                epochs=self.config.policy_epochs,
                max_steps=self.config.policy_max_steps,
                batch_size=2,
                max_length=640,
                seed=self.config.seed,
            )
            losses = train_lora(host.peft, host.tokenizer, examples, config)
            host.save(TRAINING_ADAPTER, out_dir)
        finally:
            host.unload(TRAINING_ADAPTER)
        return losses

    @contextlib.contextmanager
    def _writing(self, policy: PolicyRef | None):
        """The host with ``policy`` active for writing self-edits; a non-live policy is unloaded after."""
        try:
            with self.host.using(activate(self.host, policy)) as model:
                yield model
        finally:
            if policy is not None and policy != self.parent:
                self.host.unload(policy.name)


class PassageWork(_Work):
    """SQuAD passages: K sampled self-edits per passage, gold questions as the reward."""

    def score(self, item: StudyInput, position: int) -> list[ScoredSample]:
        cfg = self.config
        baseline = self.baseline(item)
        with self._writing(self.parent) as model:
            candidates = propose_candidates(
                model,
                self.host.tokenizer,
                item.source,
                cfg.k,
                families=cfg.families,
                grid=GRID,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                seed=cfg.seed * 10_000 + position,
                max_new_tokens=cfg.max_new_tokens,
            )
        samples = []
        for c in candidates:
            accuracy = self._inner(text_examples(c.training_texts(item.source)), c.choice, c.seed, item.questions)
            samples.append(
                ScoredSample(
                    item.input_id,
                    c.index,
                    PASSAGE_PROMPTS[c.self_edit.family].format(text=item.source),
                    completion_of(c.self_edit),
                    accuracy,
                    baseline,
                    {"family": c.self_edit.family, "seed": c.seed, **c.choice.to_dict()},
                )
            )
        return samples

    def evaluate(self, policy: PolicyRef | None, item: StudyInput) -> float:
        seed = self.config.seed
        with self._writing(policy) as model:
            edit = generate_passage_self_edit(
                model,
                self.host.tokenizer,
                item.source,
                self.config.families[0],
                temperature=self.config.eval_temperature,
                max_new_tokens=self.config.max_new_tokens,
                seed=seed,
            )
        return self._inner(text_examples([item.source, *edit.lines]), DEFAULT_CHOICE, seed, item.questions)


def passage_work(host: AdapterHost, parent: PolicyRef | None, config: RoundConfig, replay) -> RoundWork:
    work = PassageWork(host, parent, config, replay)
    return RoundWork(score=work.score, train=work.train, evaluate=work.evaluate)


@dataclass(frozen=True)
class RecordedSelfEdit:
    """One consolidation candidate's self-edit for one fact, as the product recorded it."""

    input_id: str  # one per (fact, consolidation): the K candidates compete within it
    fact: str
    index: int
    family: str
    lines: tuple[str, ...]
    recall: float  # that candidate's no-context recall of the fact
    policy: str  # which policy version wrote it


class FactWork(_Work):
    """Recorded product candidates as the samples; held-out gold-question facts as the evaluation."""

    def __init__(self, host, parent, config, replay, records: Sequence[RecordedSelfEdit]) -> None:
        super().__init__(host, parent, config, replay)
        self.records: dict[str, list[RecordedSelfEdit]] = {}
        for record in records:
            self.records.setdefault(record.input_id, []).append(record)

    def score(self, item: StudyInput, position: int) -> list[ScoredSample]:
        with self.host.using(None):
            baseline = fact_recall(self.host.peft, self.host.tokenizer, item.source)
        return [
            ScoredSample(
                item.input_id,
                r.index,
                fact_prompt(r.family, r.fact),
                "\n".join(r.lines),
                r.recall,
                baseline,
                {"family": r.family, "written_by": r.policy},
                chat=r.family not in DOCUMENT_FAMILIES,  # asked as the product asks it
            )
            for r in self.records.get(item.input_id, [])
        ]

    def evaluate(self, policy: PolicyRef | None, item: StudyInput) -> float:
        with self._writing(policy) as model:
            edit = generate_self_edit(
                model,
                self.host.tokenizer,
                item.source,
                self.config.families[0],  # the family the product writes (the round's config)
                temperature=0.0,
                seed=self.config.seed,
                avoid=quiz_questions(item.source),
            )
        examples = training_examples(fact_examples(item.source, edit), "fact") * FACT_EPOCHS
        return self._inner(examples, TrainingChoice(1e-3, 1, True), self.config.seed, item.questions)


def fact_work(host, parent, config, replay, records: Sequence[RecordedSelfEdit]) -> RoundWork:
    work = FactWork(host, parent, config, replay, records)
    return RoundWork(score=work.score, train=work.train, evaluate=work.evaluate)
