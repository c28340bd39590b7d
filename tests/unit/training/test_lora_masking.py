"""Label masking and batching for the LoRA inner loop (tokenizer only, no model)."""

import pytest

from training.chat import ChatMessage
from training.lora import IGNORE_INDEX, TrainConfig, TrainingExample, collate, planned_steps, tokenize_example


class TinyTokenizer:
    """A stand-in with the two calls tokenize_example makes: chat template and encode."""

    eos_token_id = 2

    def apply_chat_template(self, messages, add_generation_prompt, tokenize, return_dict):
        ids = [1] + [10 + len(m["content"]) for m in messages] + [3]
        return {"input_ids": ids}

    def encode(self, text, add_special_tokens=False):
        return [100 + len(word) for word in text.split()]


def test_prompt_tokens_are_masked_and_answer_plus_eos_are_learnt():
    example = TrainingExample((ChatMessage("user", "hi there"),), "Your cat is Tofu", "fact")
    tok = tokenize_example(TinyTokenizer(), example, max_length=64)
    n_prompt = 3
    assert tok.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert tok.labels[n_prompt:] == tok.input_ids[n_prompt:]
    assert tok.input_ids[-1] == TinyTokenizer.eos_token_id


def test_padding_is_never_trained_on():
    tokenizer = TinyTokenizer()
    short = tokenize_example(tokenizer, TrainingExample((ChatMessage("user", "a"),), "x", "fact"), 64)
    long = tokenize_example(tokenizer, TrainingExample((ChatMessage("user", "a"),), "x y z w", "fact"), 64)
    batch = collate([short, long], pad_id=0)
    pad = batch["attention_mask"] == 0
    assert pad.any()
    assert (batch["labels"][pad] == IGNORE_INDEX).all()


def test_truncation_keeps_ids_and_labels_aligned():
    example = TrainingExample((ChatMessage("user", "q"),), " ".join(["w"] * 50), "fact")
    tok = tokenize_example(TinyTokenizer(), example, max_length=10)
    assert len(tok.input_ids) == len(tok.labels) == 10


@pytest.mark.parametrize(("n", "epochs", "cap", "expected"), [(10, 3, 100, 9), (10, 3, 5, 5), (1, 2, 60, 2)])
def test_planned_steps(n, epochs, cap, expected):
    assert planned_steps(n, TrainConfig(epochs=epochs, max_steps=cap, batch_size=4)) == expected


def test_a_rebuild_trains_a_full_pass_past_the_step_cap():
    from training.memory.learn import rebuild_config

    config = TrainConfig(epochs=1, max_steps=40, batch_size=4)
    assert planned_steps(3400, rebuild_config(config, 3400)) == 850  # 25 facts: not cut to 40
    assert rebuild_config(config, 100).max_steps == 40  # never below the cap


def test_a_document_prompt_is_encoded_without_the_chat_template_and_masked():
    """A few-shot document (a fact's self-QA) is trained as ``generate_completion`` continues it."""
    tokenizer = TinyTokenizer()
    document = "Fact: I play tennis.\nQuestions:\n"
    tok = tokenize_example(tokenizer, TrainingExample(document, "What sport do I play?", "self_edit"), 64)
    prompt_ids = tokenizer.encode(document, add_special_tokens=False)
    assert tok.input_ids[: len(prompt_ids)] == prompt_ids, "no chat template around the document"
    assert tok.labels[: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
    assert tok.labels[len(prompt_ids) :] == tokenizer.encode("What sport do I play?") + [tokenizer.eos_token_id]
