"""The training loss against a reference computed from the model's full logits.

A tiny randomly initialised Llama (the real model's architecture) with a LoRA
adapter whose B matrices are not zero, so the adapted and base models differ.
"""

import pytest
import torch
from peft import get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from training.lora import IGNORE_INDEX, LORA_SHAPE, _step_loss


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    lora = LORA_SHAPE.peft_config()
    lora.init_lora_weights = False  # random B: the adapter changes the outputs
    return get_peft_model(LlamaForCausalLM(config), lora).eval()


def batch():
    torch.manual_seed(1)
    ids = torch.randint(3, 97, (3, 12))
    labels = ids.clone()
    labels[:, :5] = IGNORE_INDEX  # prompt
    labels[1, 9:] = IGNORE_INDEX  # padding of a shorter row
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def reference(model, inputs, kinds, kl_weight):
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits[:, :-1]
    labels = inputs["labels"][:, 1:]
    replay = torch.tensor([k == "replay" and kl_weight > 0 for k in kinds])[:, None]
    ce = (labels != IGNORE_INDEX) & ~replay
    kl = (labels != IGNORE_INDEX) & replay
    loss = torch.nn.functional.cross_entropy(logits[ce], labels[ce])
    if kl.any():
        with torch.no_grad(), model.disable_adapter():
            base = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits[:, :-1]
        b, a = torch.log_softmax(base[kl], -1), torch.log_softmax(logits[kl], -1)
        loss = loss + kl_weight * (b.exp() * (b - a)).sum(-1).mean()
    return loss


def test_cross_entropy_only_equals_the_models_own_loss(model):
    inputs = batch()
    loss = _step_loss(model, inputs, ["fact", "fact", "replay"], kl_weight=0.0)
    assert torch.allclose(loss, model(**inputs).loss, atol=1e-5)
    assert torch.allclose(loss, reference(model, inputs, ["fact"] * 3, 0.0), atol=1e-5)


def test_replay_rows_get_kl_to_the_base_model_instead_of_cross_entropy(model):
    inputs, kinds = batch(), ["fact", "replay", "replay"]
    loss = _step_loss(model, inputs, kinds, kl_weight=4.0)
    expected = reference(model, inputs, kinds, 4.0)
    assert torch.allclose(loss, expected, atol=1e-5)
    assert not torch.allclose(loss, model(**inputs).loss, atol=1e-3), "the KL term changes the loss"


def test_gradients_match_the_reference(model):
    inputs, kinds = batch(), ["replay", "fact", "fact"]
    params = [p for n, p in model.named_parameters() if "lora_" in n]
    ours = torch.autograd.grad(_step_loss(model, inputs, kinds, 2.0), params)
    theirs = torch.autograd.grad(reference(model, inputs, kinds, 2.0), params)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours, theirs, strict=True))


def test_a_batch_without_answer_tokens_still_backpropagates(model):
    inputs = batch()
    inputs["labels"][:] = IGNORE_INDEX  # every answer cut off by truncation
    loss = _step_loss(model, inputs, ["fact", "replay", "fact"], kl_weight=1.0)
    loss.backward()
    assert float(loss.detach()) == 0.0


def test_the_base_side_of_the_kl_is_cached_per_replay_example(model):
    inputs, kinds = batch(), ["replay", "fact", "replay"]
    keys = [tuple(row.tolist()) for row in inputs["input_ids"]]
    cache: dict = {}
    expected = reference(model, inputs, kinds, 3.0)
    first = _step_loss(model, inputs, kinds, 3.0, keys, cache)
    assert set(cache) == {keys[0], keys[2]}, "only replay rows are cached"

    calls = []
    hook = model.get_base_model().get_decoder().register_forward_hook(lambda *_: calls.append(1))
    try:
        second = _step_loss(model, inputs, kinds, 3.0, keys, cache)
    finally:
        hook.remove()
    assert len(calls) == 1, "one forward pass with the adapter; the base model's came from the cache"
    assert torch.allclose(first, expected, atol=1e-5) and torch.allclose(second, expected, atol=1e-5)
