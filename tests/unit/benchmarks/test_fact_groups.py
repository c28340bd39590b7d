"""The facts benchmark's groups method: its state round trip, and recall graded as served."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from benchmarks.fact_groups import GroupLearner
from benchmarks.facts import Learner
from training.memory.fact_sets import BenchFact
from training.memory.learn import QA, FactToLearn


def test_the_benchmark_grades_recall_as_served_by_the_router(tmp_path, router):
    learner = GroupLearner(host=None, work=tmp_path, args=SimpleNamespace(group_size=1), router=router)
    for group, (index, text) in enumerate([(0, "My cat is called Tofu."), (1, "I live in Oslo.")]):
        part = learner._part(group)
        part.live, part.versions = tmp_path / f"g{group}", 1
        part.known = {index: FactToLearn(index, text)}
    cat = BenchFact(0, "My cat is called Tofu.", (("What is my cat's name?", ("Tofu",)),))
    city = BenchFact(1, "I live in Oslo.", (("Which city is home for me?", ("Oslo",)),))
    shoes = BenchFact(2, "I wear size 44 shoes.", (("What size shoes do I wear?", ("44",)),))
    # Each group's replies as decoded: already known, so no adapter runs.
    learner._answers = {
        (0, 1, "What is my cat's name?"): "Your cat is Tofu.",
        (1, 1, "What is my cat's name?"): "Oslo.",
        (1, 1, "Which city is home for me?"): "You live in Oslo.",
        (0, 1, "Which city is home for me?"): "Tofu.",
    }
    assert learner.recall_of([cat, city, shoes]) == {0: 1.0, 1: 1.0, 2: 0.0}, "routed to each fact's own group"
    assert learner.adapter_recall([cat, city]) == {0: 1.0, 1: 1.0}
    with pytest.raises(ValueError, match="router"):
        GroupLearner(None, tmp_path, SimpleNamespace(group_size=1)).recall_of([cat])


def test_the_group_learner_state_round_trips(tmp_path):
    args = SimpleNamespace(group_size=2)
    before = GroupLearner(host=None, work=tmp_path / "work", args=args)
    for group, facts in {0: [(0, "My cat is called Tofu."), (1, "I live in Oslo.")], 1: [(2, "I am 40.")]}.items():
        part = before._part(group)
        live = tmp_path / "work" / f"g{group}" / "v1"
        live.mkdir(parents=True)
        (live / "adapter_model.safetensors").write_bytes(f"weights {group}".encode())
        part.live, part.versions = live, 1
        part.known = {i: FactToLearn(i, text, (QA("q", "a"),)) for i, text in facts}
    before.changed = {0: ("What is 2 plus 2?",), 1: ()}
    state = tmp_path / "out.state" / "groups"
    before.save_state(state, 3)

    after = GroupLearner(host=None, work=tmp_path / "elsewhere", args=args)
    assert after.restore(state) == 3
    assert sorted(after.parts) == [0, 1]
    assert after.known == before.known
    assert after.changed == before.changed
    assert after.locality_changed == ("What is 2 plus 2?",)
    assert (after.parts[1].live / "adapter_model.safetensors").read_bytes() == b"weights 1"
    with pytest.raises(ValueError, match="--group-size 2"):
        GroupLearner(None, tmp_path, SimpleNamespace(group_size=5)).restore(state)
    assert isinstance(after.parts[0], Learner) and after.parts[0].name == "g0"
