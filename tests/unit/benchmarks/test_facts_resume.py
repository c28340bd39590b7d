"""The facts benchmark can stop and resume: a method's state round-trips, torn steps are redone."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from benchmarks.facts import Learner, recorded_steps
from training.memory.learn import QA, FactToLearn


def learner_with_history(tmp_path) -> Learner:
    learner = Learner(host=None, method="memory", work=tmp_path / "work", args=SimpleNamespace())
    live = tmp_path / "work" / "memory" / "v3"
    live.mkdir(parents=True)
    (live / "adapter_model.safetensors").write_bytes(b"weights")
    learner.live, learner.versions, learner.refused = live, 3, 1
    learner.known = {
        0: FactToLearn(0, "My cat is called Tofu.", (QA("What is my cat called?", "Tofu"),)),
        1: FactToLearn(1, "I was born in Oslo.", (QA("Where was I born?", "Oslo"), QA("My birthplace?", "Oslo"))),
    }
    learner.recall = {0: 1.0, 1: 0.5}
    return learner


def test_a_learners_state_round_trips(tmp_path):
    before = learner_with_history(tmp_path)
    state = tmp_path / "out.state" / "memory"
    before.save_state(state, 2)

    after = Learner(host=None, method="memory", work=tmp_path / "elsewhere", args=SimpleNamespace())
    assert after.restore(state) == 2
    assert (after.versions, after.refused, after.recall) == (3, 1, {0: 1.0, 1: 0.5})
    assert after.known == before.known
    assert (after.live / "adapter_model.safetensors").read_bytes() == b"weights"
    assert after.live.parent == state, "the live adapter is a copy kept with the state"


def test_a_newer_state_replaces_the_older_adapter_copy(tmp_path):
    learner = learner_with_history(tmp_path)
    state = tmp_path / "out.state" / "memory"
    learner.save_state(state, 2)
    learner.save_state(state, 3)
    assert sorted(p.name for p in state.glob("adapter-*")) == ["adapter-3"]
    assert Learner(None, "memory", tmp_path, SimpleNamespace()).restore(state) == 3


def test_no_state_means_a_fresh_start(tmp_path):
    assert Learner(None, "memory", tmp_path, SimpleNamespace()).restore(tmp_path / "missing") == 0


def test_a_step_recorded_after_the_last_saved_state_is_dropped(tmp_path):
    learner = learner_with_history(tmp_path)
    state = tmp_path / "out.state"
    learner.save_state(state / "memory", 2)
    steps_file = tmp_path / "out.steps.jsonl"
    rows = [{"method": "memory", "n": n} for n in (1, 2, 3)] + [{"method": "sequential", "n": 1}]
    steps_file.write_text("".join(json.dumps(r) + "\n" for r in rows))

    kept = recorded_steps(steps_file, state)
    assert [s["n"] for s in kept["memory"]] == [1, 2], "step 3 has no saved state: it is taught again"
    assert kept["sequential"] == [], "a method with no saved state starts over"
    assert [json.loads(line)["n"] for line in steps_file.read_text().splitlines()] == [1, 2]


def test_a_resumed_run_whose_next_fact_is_refused_still_has_its_live_adapter(tmp_path):
    state = tmp_path / "out.state" / "memory"
    learner_with_history(tmp_path).save_state(state, 2)
    resumed = Learner(host=None, method="memory", work=tmp_path / "work2", args=SimpleNamespace())
    resumed.restore(state)
    assert resumed.live == state / "adapter-2"
    # Fact 3 refused on every try: the live adapter is still the restored one.
    resumed.save_state(state, 3)
    assert resumed.live == state / "adapter-3"
    assert (resumed.live / "adapter_model.safetensors").read_bytes() == b"weights"
    assert sorted(p.name for p in state.iterdir()) == ["adapter-3", "state.json"]
    resumed.save_state(state, 4)
    assert (resumed.live / "adapter_model.safetensors").is_file()


def test_a_state_resumes_only_with_the_self_edit_family_it_was_written_with(tmp_path):
    state = tmp_path / "out.state" / "memory"
    learner = learner_with_history(tmp_path)
    learner.args = SimpleNamespace(family="self_qa")
    learner.save_state(state, 2)
    with pytest.raises(ValueError, match="--family self_qa"):
        Learner(None, "memory", tmp_path, SimpleNamespace(family="rewrite")).restore(state)
    assert Learner(None, "memory", tmp_path, SimpleNamespace(family="self_qa")).restore(state) == 2
    # A state from before the setting was written with the rewrite family.
    saved = json.loads((state / "state.json").read_text())
    del saved["family"]
    (state / "state.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="--family rewrite"):
        Learner(None, "memory", tmp_path, SimpleNamespace(family="self_qa")).restore(state)
    assert Learner(None, "memory", tmp_path, SimpleNamespace(family="rewrite")).restore(state) == 2


def test_a_groups_run_resumes_from_its_own_state_file(tmp_path):
    """The groups method saves groups.json, not state.json: a resumed groups run keeps
    its steps (it used to see no saved state and empty the steps file)."""
    from benchmarks.fact_groups import STATE_FILE

    state = tmp_path / "out.state"
    (state / "groups").mkdir(parents=True)
    (state / "groups" / STATE_FILE).write_text(json.dumps({"n": 2}))
    steps_file = tmp_path / "out.steps.jsonl"
    steps_file.write_text("".join(json.dumps({"method": "groups", "n": n}) + "\n" for n in (1, 2, 3)))
    kept = recorded_steps(steps_file, state)
    assert [s["n"] for s in kept["groups"]] == [1, 2]
    assert len(steps_file.read_text().splitlines()) == 2


def test_a_summary_is_rebuilt_from_its_own_steps_when_their_file_is_gone(tmp_path):
    """``--report-only`` on a summary kept in docs/ (its steps file stayed on the machine
    that ran it): the steps it holds are re-served with the current router, and the
    in-context reference it recorded is kept."""
    from benchmarks.facts import report_only

    facts = tmp_path / "facts.jsonl"
    question = {"q": "What is my cat called?", "answers": ["Tofu"]}
    facts.write_text(json.dumps({"fact": "My cat is called Tofu.", "questions": [question]}) + "\n")
    step = {"method": "groups", "n": 1, "fact": "My cat is called Tofu.", "recall_new": 1.0, "recall_first10": 1.0}
    step |= {"recall_all": 1.0, "locality": 0.7, "locality_changed": [], "locality_n": 50, "seconds": 60.0}
    step |= {"recall_by_fact": {"0": 1.0}}
    out = tmp_path / "bench.json"
    reference = {"in_context_recall": 1.0, "in_context_first10": 1.0, "in_context_by_fact": {"0": 1.0}}
    summary = {"config": {"model": "m", "n": 1}, "base_recall": 0.0, **reference, "methods": {"groups": [step]}}
    out.write_text(json.dumps(summary))

    args = SimpleNamespace(out=out, facts_file=facts, n=1, plot=tmp_path / "curve.png")
    assert report_only(args) == 0
    rebuilt = json.loads(out.read_text())
    assert [s["n"] for s in rebuilt["steps"]] == [1]
    assert rebuilt["steps"][0]["routed_questions"] == 1.0, "the taught question is routed to its adapter"
    assert {k: rebuilt[k] for k in reference} == reference
    assert (tmp_path / "curve.png").stat().st_size > 0
