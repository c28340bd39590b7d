"""ReST-EM orchestration: selection keeps only positive gains, rounds resume, versions and the pointer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.policy.rest_em import RoundConfig, RoundWork, ScoredSample, StudyInput, run_round, select_best
from training.seal.policy import PolicyRef, PolicyStore, publish_version


def sample(
    input_id: str, index: int, accuracy: float, baseline: float = 0.25, completion: str = "a line"
) -> ScoredSample:
    return ScoredSample(input_id, index, f"prompt {input_id}", completion, accuracy, baseline)


def test_a_non_positive_gain_is_never_kept():
    kept = select_best(
        [
            sample("p1", 0, 0.25),  # gain 0
            sample("p1", 1, 0.0),  # gain < 0
            sample("p2", 0, 0.5),
            sample("p2", 1, 0.75),
        ]
    )
    assert [(s.input_id, s.index) for s in kept] == [("p2", 1)]
    assert all(s.gain > 0 for s in kept)


def test_selection_breaks_ties_by_lower_index_and_skips_empty_self_edits():
    kept = select_best([sample("p", 2, 0.75), sample("p", 1, 0.75), sample("p", 0, 1.0, completion=" ")])
    assert [s.index for s in kept] == [1]


def test_samples_survive_a_json_round_trip():
    s = ScoredSample("p", 3, "q", "c", 0.5, 0.25, {"lr": 1e-3})
    assert ScoredSample.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert s.to_dict()["gain"] == 0.25
    document = ScoredSample("f", 0, "Fact: ...\nQuestions:\n", "Where?", 1.0, 0.0, {"family": "self_qa"}, chat=False)
    assert ScoredSample.from_dict(json.loads(json.dumps(document.to_dict()))) == document


def test_samples_recorded_before_the_format_flag_are_chat_requests():
    old = {"input_id": "p", "index": 0, "prompt": "q", "completion": "c", "accuracy": 0.5, "baseline": 0.0}
    assert ScoredSample.from_dict({**old, "settings": {}, "gain": 0.5}).chat is True


class FakeWork:
    """Deterministic stand-in for the model work, counting calls; ``crash_at`` raises once."""

    def __init__(self, gains: dict[str, float], after: float, crash_at: str | None = None) -> None:
        self.gains, self.after, self.crash_at = gains, after, crash_at
        self.scored: list[str] = []
        self.trained = 0
        self.evaluated: list[tuple[str, str]] = []

    def score(self, item: StudyInput, position: int) -> list[ScoredSample]:
        if item.input_id == self.crash_at:
            self.crash_at = None
            raise RuntimeError("worker died")
        self.scored.append(item.input_id)
        return [sample(item.input_id, 0, 0.25 + self.gains[item.input_id]), sample(item.input_id, 1, 0.25)]

    def train(self, kept, out_dir: Path) -> list[float]:
        self.trained += 1
        out_dir.mkdir(parents=True)
        (out_dir / "adapter_model.safetensors").write_bytes(b"weights")
        (out_dir / "adapter_config.json").write_text("{}")
        return [2.0, 1.0]

    def evaluate(self, policy: PolicyRef | None, item: StudyInput) -> float:
        self.evaluated.append((policy.name if policy else "base", item.input_id))
        return self.after if policy is not None else 0.5

    def as_work(self) -> RoundWork:
        return RoundWork(self.score, self.train, self.evaluate)


INPUTS = [StudyInput(f"p{i}", f"passage {i}", (("q", ("a",)),)) for i in range(3)]
HELD_OUT = [StudyInput("h0", "held out", (("q", ("a",)),))]


def _round(store: PolicyStore, work: FakeWork):
    return run_round(
        store.root / "rounds" / "r1",
        store.version_dir(1),
        None,
        INPUTS,
        HELD_OUT,
        RoundConfig(k=2),
        work.as_work(),
        source="squad",
    )


def test_a_crashed_round_resumes_without_redoing_finished_inputs(tmp_path):
    store = PolicyStore(tmp_path)
    work = FakeWork({"p0": 0.5, "p1": 0.0, "p2": 0.25}, after=0.75, crash_at="p2")
    with pytest.raises(RuntimeError):
        _round(store, work)
    assert work.scored == ["p0", "p1"] and work.trained == 0

    outcome = _round(store, work)
    assert work.scored == ["p0", "p1", "p2"]  # p0 and p1 were not scored again
    assert work.trained == 1
    assert outcome.improved and outcome.version is not None
    assert outcome.metrics["n_kept"] == 2  # p1 had no positive gain
    assert outcome.metrics["eval_before"] == 0.5 and outcome.metrics["eval_after"] == 0.75
    manifest = json.loads((store.version_dir(1) / "manifest.json").read_text())
    assert manifest["name"] == "policy-v1" and manifest["metrics"]["improved"] is True

    # Running the finished round again trains and evaluates nothing new.
    evaluated = len(work.evaluated)
    again = _round(store, work)
    assert work.trained == 1 and len(work.evaluated) == evaluated
    assert again.version == outcome.version


def test_a_policy_that_does_not_improve_is_written_but_not_recommended(tmp_path):
    store = PolicyStore(tmp_path)
    outcome = _round(store, FakeWork({"p0": 0.5, "p1": 0.25, "p2": 0.25}, after=0.5))
    assert outcome.version is not None and (store.version_dir(1) / "manifest.json").is_file()
    assert not outcome.improved and "does not beat" in outcome.metrics["reason"]


def test_no_positive_gain_means_no_training_and_no_version(tmp_path):
    store = PolicyStore(tmp_path)
    work = FakeWork({"p0": 0.0, "p1": 0.0, "p2": -0.25}, after=1.0)
    outcome = _round(store, work)
    assert outcome.version is None and not outcome.improved and work.trained == 0
    assert not store.version_dir(1).exists()


def test_a_resumed_round_refuses_other_settings(tmp_path):
    store = PolicyStore(tmp_path)
    work = FakeWork({"p0": 0.5, "p1": 0.0, "p2": 0.25}, after=0.75, crash_at="p1")
    with pytest.raises(RuntimeError):
        _round(store, work)
    with pytest.raises(ValueError, match="other settings"):
        run_round(
            store.root / "rounds" / "r1",
            store.version_dir(1),
            None,
            INPUTS,
            HELD_OUT,
            RoundConfig(k=3),
            work.as_work(),
            source="squad",
        )


def test_held_out_inputs_must_not_be_trained_on(tmp_path):
    store = PolicyStore(tmp_path)
    with pytest.raises(ValueError, match="held-out"):
        run_round(
            tmp_path / "r",
            store.version_dir(1),
            None,
            INPUTS,
            INPUTS[:1],
            RoundConfig(),
            FakeWork({}, 0).as_work(),
            "squad",
        )


def _version(store: PolicyStore, number: int, parent: str) -> PolicyRef:
    trained = store.root / f"trained{number}"
    trained.mkdir(parents=True)
    (trained / "adapter_model.safetensors").write_bytes(b"w%d" % number)
    return publish_version(trained, store.version_dir(number), {"parent": parent, "metrics": {}})


def test_store_promotes_and_rolls_back_along_parents(tmp_path):
    store = PolicyStore(tmp_path)
    assert store.active() is None
    v1 = _version(store, 1, "base")
    v2 = _version(store, 2, "policy-v1")
    store.promote(v2.name)
    assert store.active() == v2
    assert store.rollback() == v1
    assert store.rollback() is None  # back to the untrained base model
    with pytest.raises(ValueError):
        store.rollback()
    with pytest.raises(FileExistsError):
        _version(store, 2, "base")
    assert store.next_number() == 3
