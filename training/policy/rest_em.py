"""ReST-EM, SEAL's outer loop: the self-edit policy learns from the self-edits that taught best.

One round (:func:`run_round`):

1. **score**: for each training input, K self-edits sampled from the current
   policy, each applied by the inner loop (a fresh LoRA on the base model) and
   quizzed without context; gain = accuracy after the edit minus the base
   model's accuracy before it;
2. **select**: the best sample per input, kept only if its gain is positive
   (the paper's code keeps the best even when it taught nothing; we do not);
3. **train**: fine-tune the policy, from the current policy's weights, on the
   kept (prompt -> self-edit) pairs;
4. **evaluate**: current and new policy on held-out inputs, same seeds;
5. **publish**: the new version is written either way, with its metrics; it is
   recommended for promotion only if its held-out score beats the current one's.

The model work is passed in as three functions (:class:`RoundWork`), so the
same orchestration serves SQuAD passages (:mod:`training.policy.rest_em_work`), a
product's recorded candidates, and tests of the orchestration itself.

Resumable: each scored input and each evaluation is appended to a JSONL file in
the round directory as soon as it is done, and the trained policy appears
atomically; re-running a crashed round with the same directory skips all that.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from training.seal.policy import PolicyRef, label, publish_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyInput:
    """Something to learn (a passage, a user's fact) with the quiz that measures it."""

    input_id: str
    source: str
    questions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    kind: str = "passage"  # "passage" | "fact"


@dataclass(frozen=True)
class ScoredSample:
    """One sampled self-edit, what it taught, and what the policy would learn from it."""

    input_id: str
    index: int
    prompt: str  # the exact request the policy answered
    completion: str  # the parsed self-edit, one example per line: the policy's target
    accuracy: float  # no-context quiz accuracy after applying it
    baseline: float  # the same quiz on the model before the edit
    settings: dict = field(default_factory=dict)
    # False: ``prompt`` is a few-shot document the policy continues as plain text
    # (a fact's self-QA), not a chat request; the SFT trains it the same way.
    chat: bool = True

    @property
    def gain(self) -> float:
        return self.accuracy - self.baseline

    def to_dict(self) -> dict:
        return {**asdict(self), "gain": round(self.gain, 4)}

    @classmethod
    def from_dict(cls, data: dict) -> ScoredSample:
        return cls(**{k: v for k, v in data.items() if k != "gain"})


def select_best(samples: Sequence[ScoredSample]) -> list[ScoredSample]:
    """The best sample per input by gain (ties: the lower index), kept only if its gain is positive.

    A sample with nothing to learn from (an empty completion) is never kept.
    """
    best: dict[str, ScoredSample] = {}
    for sample in samples:
        if not sample.completion.strip():
            continue
        current = best.get(sample.input_id)
        if current is None or (sample.gain, -sample.index) > (current.gain, -current.index):
            best[sample.input_id] = sample
    return [s for s in best.values() if s.gain > 0]


@dataclass(frozen=True)
class RoundConfig:
    """One round's settings; recorded in the round directory and the version's manifest."""

    k: int = field(default=4, metadata={"help": "self-edits sampled per training input"})
    families: tuple[str, ...] = field(default=("implications",), metadata={"help": "prompt families sampled"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature for training samples"})
    top_p: float = 0.95
    max_new_tokens: int = field(default=192, metadata={"help": "tokens per self-edit"})
    inner_max_steps: int = field(default=20, metadata={"help": "LoRA steps cap per applied self-edit"})
    replay_ratio: float = field(default=0.5, metadata={"help": "replay examples per inner-loop example"})
    policy_learning_rate: float = field(default=3e-4, metadata={"help": "policy fine-tune learning rate"})
    policy_epochs: int = field(default=3, metadata={"help": "passes over the kept pairs"})
    policy_max_steps: int = field(default=60, metadata={"help": "policy fine-tune steps cap"})
    eval_temperature: float = field(default=0.0, metadata={"help": "0: greedy self-edits in the held-out eval"})
    min_improvement: float = field(default=0.0, metadata={"help": "held-out gain required to recommend promotion"})
    seed: int = 0

    def to_dict(self) -> dict:
        return {**asdict(self), "families": list(self.families)}


@dataclass
class RoundWork:
    """The model work of a round, as functions of plain values.

    ``score(input, index)`` returns that input's samples; ``train(kept, out_dir)``
    writes the new policy adapter to ``out_dir`` and returns its losses;
    ``evaluate(policy, input)`` returns the held-out accuracy of ``policy``
    (``None`` = the untrained base model) on one input.
    """

    score: Callable[[StudyInput, int], list[ScoredSample]]
    train: Callable[[list[ScoredSample], Path], list[float]]
    evaluate: Callable[[PolicyRef | None, StudyInput], float]


@dataclass(frozen=True)
class RoundOutcome:
    version: PolicyRef | None  # None when no sample had a positive gain (nothing trained)
    improved: bool
    metrics: dict


ProgressFn = Callable[[str, float], None]


class _Clock:
    """Wall and CPU time of this round, carried across resumptions in ``clock.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        saved = json.loads(path.read_text()) if path.is_file() else {}
        self.wall, self.cpu = saved.get("wall_s", 0.0), saved.get("cpu_s", 0.0)
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()

    def save(self) -> dict:
        now_wall, now_cpu = time.perf_counter(), time.process_time()
        self.wall += now_wall - self._wall0
        self.cpu += now_cpu - self._cpu0
        self._wall0, self._cpu0 = now_wall, now_cpu
        self.path.write_text(json.dumps({"wall_s": self.wall, "cpu_s": self.cpu}))
        return {"wall_s": round(self.wall, 1), "cpu_s": round(self.cpu, 1)}


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a crash: it and anything after are redone
    return rows


def _append_jsonl(path: Path, row: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _check_config(round_dir: Path, config: dict) -> None:
    """A round resumes only with the configuration it started with."""
    path = round_dir / "config.json"
    if not path.is_file():
        round_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=1))
        return
    saved = json.loads(path.read_text())
    clashes = {k: (saved.get(k), v) for k, v in config.items() if saved.get(k) != v}
    if clashes:
        raise ValueError(f"round {round_dir} started with other settings (saved, now): {clashes}")


def run_round(
    round_dir: Path,
    version_dir: Path,
    parent: PolicyRef | None,
    train_inputs: Sequence[StudyInput],
    eval_inputs: Sequence[StudyInput],
    config: RoundConfig,
    work: RoundWork,
    source: str,
    progress: ProgressFn | None = None,
) -> RoundOutcome:
    """Run (or resume) one ReST-EM round; see the module docstring."""
    if not train_inputs or not eval_inputs:
        raise ValueError(f"a round needs training and held-out inputs (got {len(train_inputs)}, {len(eval_inputs)})")
    overlap = {i.input_id for i in train_inputs} & {i.input_id for i in eval_inputs}
    if overlap:
        raise ValueError(f"held-out inputs must not be trained on; both sets hold {sorted(overlap)[:5]}")
    report = progress or (lambda stage, fraction: None)
    _check_config(
        round_dir,
        {
            "parent": label(parent),
            "version_dir": str(version_dir),
            "version": int(version_dir.name[1:]),
            "source": source,
            "train_inputs": [i.input_id for i in train_inputs],
            "eval_inputs": [i.input_id for i in eval_inputs],
            "round": config.to_dict(),
        },
    )
    clock = _Clock(round_dir / "clock.json")
    phases: dict[str, float] = {}

    # 1. score (resumable per input)
    started = time.perf_counter()
    samples_file = round_dir / "samples.jsonl"
    done = {row["input_id"]: row for row in _read_jsonl(samples_file)}
    for position, item in enumerate(train_inputs):
        if item.input_id in done:
            continue
        report(f"sampling {position + 1}/{len(train_inputs)}", 0.6 * position / len(train_inputs))
        scored = work.score(item, position)
        done[item.input_id] = {"input_id": item.input_id, "samples": [s.to_dict() for s in scored]}
        _append_jsonl(samples_file, done[item.input_id])
        clock.save()
    samples = [ScoredSample.from_dict(s) for i in train_inputs for s in done[i.input_id]["samples"]]
    phases["score_s"] = time.perf_counter() - started

    # 2. select
    kept = select_best(samples)
    log.info("round %s: %d samples, %d input(s) with a positive gain", round_dir.name, len(samples), len(kept))
    metrics: dict = {
        "source": source,
        "parent": label(parent),
        "n_inputs": len(train_inputs),
        "n_samples": len(samples),
        "n_kept": len(kept),
        "reward_mean": _mean([s.accuracy for s in samples]),
        "baseline_mean": _mean([s.baseline for s in samples]),
        "kept_gain_mean": _mean([s.gain for s in kept]),
        "kept": [{"input_id": s.input_id, "index": s.index, "gain": round(s.gain, 4)} for s in kept],
        "config": config.to_dict(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    if not kept:
        metrics.update(improved=False, reason="no self-edit taught more than the model knew before it")
        return _finish(round_dir, clock, phases, metrics, None, False)

    # 3. train (the adapter appears atomically; a finished one is reused on resume)
    started = time.perf_counter()
    trained = round_dir / "policy"
    losses_file = round_dir / "policy_losses.json"
    if not trained.is_dir():
        report("training the policy", 0.6)
        tmp = round_dir / f".tmp-policy-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        losses = work.train(kept, tmp)
        losses_file.write_text(json.dumps(losses))
        os.replace(tmp, trained)
        clock.save()
    metrics["policy_losses"] = [round(x, 4) for x in json.loads(losses_file.read_text())]
    phases["train_s"] = time.perf_counter() - started

    # 4. evaluate both policies on the held-out inputs (resumable per evaluation)
    started = time.perf_counter()
    new_policy = PolicyRef(f"candidate-{round_dir.name}", trained)
    eval_file = round_dir / "eval.jsonl"
    scores = {(row["policy"], row["input_id"]): row["accuracy"] for row in _read_jsonl(eval_file)}
    jobs = [(who, policy, item) for item in eval_inputs for who, policy in (("before", parent), ("after", new_policy))]
    for position, (who, policy, item) in enumerate(jobs):
        if (who, item.input_id) in scores:
            continue
        report(f"held-out evaluation {position + 1}/{len(jobs)}", 0.65 + 0.33 * position / len(jobs))
        scores[(who, item.input_id)] = work.evaluate(policy, item)
        _append_jsonl(eval_file, {"policy": who, "input_id": item.input_id, "accuracy": scores[(who, item.input_id)]})
        clock.save()
    before = _mean([scores[("before", i.input_id)] for i in eval_inputs])
    after = _mean([scores[("after", i.input_id)] for i in eval_inputs])
    phases["eval_s"] = time.perf_counter() - started
    improved = after > before + config.min_improvement
    metrics.update(eval_before=before, eval_after=after, eval_n=len(eval_inputs), improved=improved)
    if not improved:
        metrics["reason"] = f"held-out score {after:.3f} does not beat the current policy's {before:.3f}"

    # 5. publish (the version is written either way; only an improvement is recommended)
    version = None
    if version_dir.is_dir():
        version = PolicyRef.from_dir(version_dir)
    outcome = _finish(round_dir, clock, phases, metrics, version, improved)
    if version is None:
        version = publish_version(
            trained,
            version_dir,
            {"parent": label(parent), "round": round_dir.name, "metrics": outcome.metrics},
        )
    report("done", 1.0)
    return RoundOutcome(version, improved, outcome.metrics)


def _finish(
    round_dir: Path, clock: _Clock, phases: dict, metrics: dict, version: PolicyRef | None, improved: bool
) -> RoundOutcome:
    times = clock.save()
    metrics.update(
        seconds={**{k: round(v, 1) for k, v in phases.items()}, "total": times["wall_s"]},
        cpu_hours=round(times["cpu_s"] / 3600, 4),
        gpu_minutes=round(times["wall_s"] / 60, 2) if metrics.get("device") == "cuda" else None,
    )
    (round_dir / "result.json").write_text(json.dumps(metrics, indent=1))
    return RoundOutcome(version, improved, metrics)


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0
