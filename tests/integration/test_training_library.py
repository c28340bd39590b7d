"""The SEAL library on the real model: best-of-K chooses the highest reward and
training touches only LoRA weights (the base model's weights stay bit-identical)."""

from __future__ import annotations

import argparse
import json

import pytest

from tests.conftest import ROOT, assert_base_unchanged, base_snapshot
from training.adapters import AdapterHost
from training.bench.squad import run_passage
from training.learn import FactToLearn, LearnRequest, learn_facts
from training.lora import TrainConfig
from training.model import load_model
from training.replay import load_or_build
from training.squad import ensure_squad, load_passages, sample_passages

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def host(base_model_folder):
    return AdapterHost(load_model(base_model_folder))


def test_learn_facts_best_of_k_picks_the_highest_reward(host, tmp_path):
    before = base_snapshot(host)
    result = learn_facts(
        host,
        LearnRequest(
            adapter_name="lib-v1",
            new_facts=[FactToLearn(1, "My cat's name is Whiskerfield.")],
            rehearsal=[],
            output_dir=tmp_path / "v1",
            replay_cache=ROOT / ".cache" / "replay" / "test-base-answers.json",
            train=TrainConfig(max_steps=12, seed=1),
            k=2,
        ),
    )
    rewards = [c.reward for c in result.candidates]
    assert len(rewards) == 2 and result.best.reward == max(rewards)
    manifest = json.loads((tmp_path / "v1" / "manifest.json").read_text())
    assert manifest["chosen_candidate"] == result.chosen and len(manifest["candidates"]) == 2
    assert {c["settings"]["learning_rate"] for c in manifest["candidates"]} != {None}
    assert not list(tmp_path.glob(".tmp-*")), "no half-written directory is left behind"
    assert_base_unchanged(host, before)

    # The saved adapter has trained (non-zero) LoRA B matrices: training changed the adapter.
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "v1" / "adapter_model.safetensors"))
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in weights.items())


def test_a_version_that_misses_an_earlier_fact_is_repaired_and_the_repair_is_what_is_written(host, tmp_path):
    """The check after training finds earlier facts not recalled (none is rehearsed
    here, and one was never trained at all), trains the chosen candidate a few
    steps more on them, keeps the repair because the facts' recall rose, and
    writes the repaired weights."""
    from safetensors.torch import load_file

    from training.learn import fact_examples
    from training.self_edit import SelfEdit

    replay_cache = ROOT / ".cache" / "replay" / "test-base-answers.json"
    first = learn_facts(
        host,
        LearnRequest(
            adapter_name="rep-v1",
            new_facts=[FactToLearn(1, "My dog's name is Pepper.")],
            rehearsal=[],
            output_dir=tmp_path / "v1",
            replay_cache=replay_cache,
            train=TrainConfig(max_steps=12, seed=1),
        ),
    )
    assert first.repair is None  # no earlier facts: nothing to check or repair
    unknown = "My horse is called Thunderquill."
    before = base_snapshot(host)
    result = learn_facts(
        host,
        LearnRequest(
            adapter_name="rep-v2",
            new_facts=[FactToLearn(2, "I live in Denver.")],
            # Fact 3 was never trained into v1 and is not rehearsed (max 0): it is missed.
            rehearsal=[
                FactToLearn(1, "My dog's name is Pepper.", first.facts[0].examples, 1.0),
                FactToLearn(3, unknown, fact_examples(unknown, SelfEdit("none", "", ())), 1.0),
            ],
            output_dir=tmp_path / "v2",
            replay_cache=replay_cache,
            init_adapter=tmp_path / "v1",
            train=TrainConfig(max_steps=12, seed=1),
            max_rehearsal_facts=0,
            repair_steps=24,
        ),
    )
    repair = result.repair
    assert repair is not None and 3 in repair.fact_ids and repair.before.kept[3] < 1.0
    assert 0 < repair.steps <= 24
    assert repair.accepted, repair.to_dict()
    assert repair.after.kept[3] > repair.before.kept[3]
    total = sum(repair.after.kept.values()) + sum(repair.after.new.values())
    assert total > sum(repair.before.kept.values()) + sum(repair.before.new.values())
    assert result.kept_recall == repair.after.kept and result.locality == repair.after.locality.kept
    manifest = json.loads((tmp_path / "v2" / "manifest.json").read_text())
    assert manifest["metrics"]["repair"]["accepted"] and manifest["metrics"]["kept_recall"]["3"] > 0
    # What is written is the repaired adapter: the saved file recalls the fact better than the candidate did.
    host.load("rep-check", tmp_path / "v2")
    try:
        from training.learn import facts_recall

        with host.using("rep-check"):
            assert facts_recall(host.peft, host.tokenizer, [unknown])[0] > repair.before.kept[3]
    finally:
        host.unload("rep-check")
    weights = load_file(str(tmp_path / "v2" / "adapter_model.safetensors"))
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in weights.items())
    assert not list(tmp_path.glob(".tmp-*"))
    assert_base_unchanged(host, before)


def test_best_of_k_on_a_real_squad_passage(host):
    passage = sample_passages(load_passages(ensure_squad(ROOT / ".cache" / "squad", "dev")), 1, seed=7)[0]
    before = base_snapshot(host)
    with host.using(None):
        replay = load_or_build(host.peft, host.tokenizer, ROOT / ".cache" / "replay" / "test-base-answers.json")
    args = argparse.Namespace(
        seed=7,
        k=2,
        families=["implications"],
        candidate_families=["rewrite"],
        temperature=1.0,
        top_p=0.95,
        max_steps=6,
        replay_ratio=0.5,
    )
    record = run_passage(host, passage, replay["replay"], args)
    gold = [sum(c["correct"]) / len(c["correct"]) for c in record["candidates"]]
    chosen = record["methods"]["best_of_k"]["chosen"]
    assert gold[chosen] == max(gold)
    assert set(record["methods"]) == {
        "base",
        "in_context",
        "passage",
        "self_edit:implications",
        "best_of_k",
        "best_of_k_cloze",
    }
    assert all(len(m["correct"]) == len(passage.questions) for m in record["methods"].values())
    assert_base_unchanged(host, before)
