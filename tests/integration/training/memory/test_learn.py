"""The SEAL library on the real model: best-of-K chooses the highest reward and
training touches only LoRA weights (the base model's weights stay bit-identical)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import pytest
import torch

from benchmarks.squad import run_passage
from tests.conftest import REPLAY_CACHE, ROOT, assert_base_unchanged, base_snapshot
from training.adapters import IDLE_ADAPTER, AdapterHost
from training.chat import ChatMessage, generate_batch, generate_batch_scored, with_system_prompt
from training.lora import TrainConfig
from training.memory.learn import FactToLearn, LearnRequest, checkpointed_candidates, learn_facts, quiz_questions
from training.model import load_model
from training.policy.squad import ensure_squad, load_passages, sample_passages
from training.replay import load_or_build
from training.seal.self_edit import generate_self_edit, key_words, kind_of

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
            replay_cache=REPLAY_CACHE,
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

    # The written update is the smallest the quiz allowed: if it was made smaller,
    # its quiz still recalls the fact as the full update did, and the file holds it.
    metrics = manifest["metrics"]
    assert metrics["update_scale"] in (1.0, *LearnRequest.shrink_scales)
    attention = [v for k, v in weights.items() if "self_attn" in k and k.endswith("lora_B.weight")]
    assert all(v.abs().sum() == 0 for v in attention) == metrics["attention_dropped"]
    if metrics["update_scale"] < 1.0 or metrics["attention_dropped"]:
        assert result.locality == metrics["locality"]["kept"]
        assert metrics["locality_as_trained"] == result.best.locality

    # Group routing asks several adapters in one batch (PEFT mixed adapter batches):
    # each row gets what its adapter alone gives.
    host.load("lib-mixed", tmp_path / "v1")
    prompt = with_system_prompt([ChatMessage("user", "What is my cat's name?")])
    alone = {}
    for name in ("lib-mixed", IDLE_ADAPTER):
        with host.using(name) as model:
            alone[name] = generate_batch_scored(model, host.tokenizer, [prompt], 12)[0]
    mixed = generate_batch_scored(host.peft, host.tokenizer, [prompt] * 2, 12, adapters=["lib-mixed", IDLE_ADAPTER])
    host.unload("lib-mixed")
    assert [reply for reply, _ in mixed] == [alone["lib-mixed"][0], alone[IDLE_ADAPTER][0]]
    assert alone["lib-mixed"][0] != alone[IDLE_ADAPTER][0], "the trained adapter answers differently"
    assert mixed[0][1] == pytest.approx(alone["lib-mixed"][1], abs=1e-3)


def test_self_qa_self_edit_asks_about_the_fact(host):
    """The self-QA family on the real model: its own questions about the fact, on
    topic, none of them a question the self-quiz will ask."""
    fact = "The wifi password at home is sunflower88."
    avoid = quiz_questions(fact)
    with host.using(None):
        edit = generate_self_edit(host.peft, host.tokenizer, fact, "self_qa", seed=0, avoid=avoid)
    assert edit.family == "self_qa" and edit.lines, edit.raw
    for question in edit.lines:
        assert question.endswith("?") and key_words(question) & key_words(fact)
        assert question not in avoid


def test_the_model_names_the_kind_a_clause_question_asks_for(host):
    """Kind questions on the real model: it completes "the cello is a kind of ..." and
    the self-edit's first question asks for an instrument, not for "what"."""
    fact = "I've been learning the cello for three years."
    with host.using(None):
        assert kind_of(host.peft, host.tokenizer, "the cello") == "instrument"
        edit = generate_self_edit(host.peft, host.tokenizer, fact, "self_qa", seed=0, avoid=quiz_questions(fact))
    assert edit.lines[0] == "Which instrument have I been learning?", edit.lines
    assert "the cello is a kind of instrument." in edit.raw


def test_best_of_k_on_a_real_squad_passage(host):
    passage = sample_passages(load_passages(ensure_squad(ROOT / ".cache" / "squad", "dev")), 1, seed=7)[0]
    before = base_snapshot(host)
    with host.using(None):
        replay = load_or_build(host.peft, host.tokenizer, REPLAY_CACHE)
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


def test_scored_replies_are_the_greedy_replies_with_their_confidence(host):
    """Group routing compares adapters by how sure each is of its own reply."""
    conversations = [
        with_system_prompt([ChatMessage("user", q)])
        for q in ("What is the capital of France?", "Name a colour.", "How many legs does a spider have?")
    ]
    with host.using(None) as model:
        plain = generate_batch(model, host.tokenizer, conversations, max_new_tokens=16)
        scored = generate_batch_scored(model, host.tokenizer, conversations, max_new_tokens=16, confidence_tokens=4)
    assert [reply for reply, _ in scored] == plain
    assert all(-30.0 < confidence <= 0.0 for _, confidence in scored), scored
    assert len({confidence for _, confidence in scored}) > 1, "confidence depends on the reply"


def test_a_run_that_dies_resumes_after_its_last_finished_candidate(host, tmp_path):
    """A crash (or time limit) after candidate 1 of 2: the rerun of the same request
    trains only candidate 2, and its result holds candidate 1 as it was."""
    request = LearnRequest(
        adapter_name="resume-v1",
        new_facts=[FactToLearn(7, "My bicycle is called Rocinante.")],
        rehearsal=[],
        output_dir=tmp_path / "v1",
        replay_cache=REPLAY_CACHE,
        train=TrainConfig(max_steps=6, seed=3),
        k=2,
        checkpoint_dir=tmp_path / ".checkpoint-v1",
    )

    class WorkerDied(Exception):
        pass

    def die_at_the_second_candidate(stage: str, _fraction: float) -> None:
        if stage.startswith("candidate 2/2"):
            raise WorkerDied(stage)

    with pytest.raises(WorkerDied):
        learn_facts(host, request, progress=die_at_the_second_candidate)
    assert not (tmp_path / "v1").exists(), "nothing half-written at the version's path"
    assert (tmp_path / ".checkpoint-v1" / "checkpoint.pkl").is_file()
    assert checkpointed_candidates(tmp_path / ".checkpoint-v1") == 1, "the progress a crash is judged by"
    assert checkpointed_candidates(tmp_path / ".checkpoint-none") == 0

    stages: list[str] = []
    result = learn_facts(host, request, progress=lambda stage, _f: stages.append(stage))
    assert not any(s.startswith("candidate 1/2: training") for s in stages), "candidate 1 was not trained again"
    assert any(s.startswith("candidate 2/2: training") for s in stages)
    assert [c.index for c in result.candidates] == [0, 1]
    assert (tmp_path / "v1" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / ".checkpoint-v1").exists(), "the checkpoint goes once the version is written"

    # A different request (another seed) does not take that checkpoint's candidates.
    other = replace(request, output_dir=tmp_path / "v2", train=TrainConfig(max_steps=6, seed=4))
    with pytest.raises(WorkerDied):
        learn_facts(host, other, progress=die_at_the_second_candidate)
    stages.clear()
    learn_facts(host, replace(other, train=TrainConfig(max_steps=6, seed=5)), progress=lambda s, _f: stages.append(s))
    assert any(s.startswith("candidate 1/2: training") for s in stages), "a changed plan starts afresh"


def test_rescale_sets_an_adapters_update_without_compounding(host):
    host.add_fresh("lib-scaled")
    try:
        torch.manual_seed(0)
        b_params = {n: p for n, p in host.peft.named_parameters() if ".lora_B.lib-scaled." in n}
        with torch.no_grad():
            for p in b_params.values():
                p.normal_()
        trained = {n: p.detach().clone() for n, p in b_params.items()}
        host.rescale("lib-scaled", 0.5)
        host.rescale("lib-scaled", 0.5)  # the same setting twice: not a quarter
        assert all(torch.equal(p, trained[n] * 0.5) for n, p in b_params.items())
        host.rescale("lib-scaled", 0.7, {"q_proj": 0.0})
        for n, p in b_params.items():
            assert torch.equal(p, trained[n] * (0.0 if ".q_proj." in n else 0.7))
        host.rescale("lib-scaled", 1.0)
        assert all(torch.equal(p, trained[n]) for n, p in b_params.items())
        with pytest.raises(KeyError):
            host.rescale(IDLE_ADAPTER, 0.5)
    finally:
        host.unload("lib-scaled")


def test_the_in_context_reference_reads_the_fact_from_the_prompt(host):
    """The facts benchmark's in-context reference: the base model answers a fact it never learnt
    when the fact is in its prompt, and not without it."""
    from benchmarks.facts import in_context_recall, recall_of
    from training.memory.fact_sets import BenchFact

    facts = [
        BenchFact(0, "My cat's name is Whiskerfield.", (("What is my cat's name?", ("Whiskerfield",)),)),
        BenchFact(1, "My sister Marta lives in Lisbon.", (("Where does my sister Marta live?", ("Lisbon",)),)),
    ]
    assert in_context_recall(host, facts) == {0: 1.0, 1: 1.0}
    assert recall_of(host, None, facts) == {0: 0.0, 1: 0.0}
