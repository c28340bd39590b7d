"""Scope routing's sentence vectors: batched, they equal one text at a time.

A tiny randomly initialised Llama (the real model's architecture) and a word-level
tokenizer; sentences of different lengths, so a batch is padded.
"""

import contextlib

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from training.routing.scope import TopicEmbedder

WORDS = "[PAD] [UNK] my cat is called tofu i live in oslo what do you know about me how many days week".split()
GENERAL = ["how many days in a week", "what do you know", "i live", "my cat is called tofu and i live in oslo"]


@pytest.fixture(scope="module")
def embedder_parts():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]")
    tokenizer.padding_side = "left"  # as for generation: the embedder must pad on the right itself
    return model, tokenizer


def one_at_a_time(model, tokenizer, text: str) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return model(**ids, output_hidden_states=True).hidden_states[-1][0].mean(0)


def test_batched_vectors_equal_one_text_at_a_time(embedder_parts, monkeypatch):
    model, tokenizer = embedder_parts
    monkeypatch.setattr(TopicEmbedder, "BATCH", 3)  # two batches, each padded
    embedder = TopicEmbedder(lambda: contextlib.nullcontext(model), tokenizer, GENERAL)
    for text in GENERAL:
        assert torch.allclose(embedder._cache[text], one_at_a_time(model, tokenizer, text), atol=1e-5), text
    fact, question = "my cat is called tofu", "what is my cat called"
    similarity = embedder.similarities(question, [fact])
    query, known = (embedder._unit(torch.stack([one_at_a_time(model, tokenizer, t)])) for t in (question, fact))
    assert torch.allclose(similarity, known @ query[0], atol=1e-5)
    assert tokenizer.padding_side == "left", "the shared tokenizer's own setting is left alone"
