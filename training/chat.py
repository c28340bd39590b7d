"""Chat formatting and text generation shared by training, quizzes and serving.

Training examples and served prompts must use the same system prompt and chat
template: a LoRA learnt under one framing is recalled under that framing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

SYSTEM_PROMPT = "You are a helpful personal assistant. Answer briefly."


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


def with_system_prompt(messages: Sequence[ChatMessage], extra: str = "") -> list[ChatMessage]:
    """Prefix the project system prompt (plus ``extra``), replacing a caller's system message.

    A caller-supplied system message is appended after ours rather than dropped.
    """
    system = SYSTEM_PROMPT
    rest: list[ChatMessage] = []
    for message in messages:
        if message.role == "system":
            system += "\n" + message.content
        else:
            rest.append(message)
    if extra:
        system += "\n" + extra
    return [ChatMessage("system", system), *rest]


def encode_prompt(tokenizer: PreTrainedTokenizerBase, messages: Sequence[ChatMessage]) -> list[int]:
    """Token ids of ``messages`` followed by the assistant turn header."""
    return list(
        tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
        )["input_ids"]
    )


class _StopOnEvent(StoppingCriteria):
    """Stops generation when a client disconnects (the event is set)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> bool:
        return self.event.is_set()


def _generate_kwargs(tokenizer: PreTrainedTokenizerBase, max_new_tokens: int, temperature: float, top_p: float) -> dict:
    kwargs: dict = {
        "max_new_tokens": max_new_tokens,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        # No repetition penalty: on SmolLM2-135M even 1.1 turns short correct
        # answers ("A week is 7 days.") into rambling wrong ones.
    }
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return kwargs


@torch.inference_mode()
def generate_text(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[ChatMessage],
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float = 0.95,
) -> str:
    """Generate one reply (greedy when ``temperature`` is 0)."""
    return _continue(model, tokenizer, encode_prompt(tokenizer, messages), max_new_tokens, temperature, top_p)


@torch.inference_mode()
def generate_completion(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_p: float = 0.95,
) -> str:
    """Continue plain text (no chat template): for few-shot prompts, which a 135M
    model follows better as a document to continue than as an instruction."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return _continue(model, tokenizer, ids, max_new_tokens, temperature, top_p)


def _continue(model, tokenizer, prompt_ids: list[int], max_new_tokens: int, temperature: float, top_p: float) -> str:
    ids = torch.tensor([prompt_ids], device=model.device)
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        **_generate_kwargs(tokenizer, max_new_tokens, temperature, top_p),
    )
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


@torch.inference_mode()
def generate_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[Sequence[ChatMessage]],
    max_new_tokens: int = 64,
    batch_size: int = 16,
) -> list[str]:
    """Greedy replies to many conversations, decoded together in left-padded batches.

    On a CPU the small model's decoding is bound by reading the weights, so a batch
    of 16 costs little more per token than one reply. Prompts are grouped by length
    (less padding); replies come back in the input order. Greedy only: a batch
    shares no sampling state, so it is meant for quizzes and cached answers.
    """
    return [reply for reply, _ in _greedy_batches(model, tokenizer, conversations, max_new_tokens, batch_size, 0)]


@torch.inference_mode()
def generate_batch_scored(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[Sequence[ChatMessage]],
    max_new_tokens: int = 64,
    confidence_tokens: int = 8,
    batch_size: int = 16,
    adapters: Sequence[str] | None = None,
    stop_strings: Sequence[str] | None = None,
) -> list[tuple[str, float]]:
    """``generate_batch`` with each reply's confidence: the mean log-probability
    of its first ``confidence_tokens`` tokens (up to the end of the reply).

    ``adapters``: the LoRA adapter each conversation runs with, all in one batch
    (PEFT's mixed adapter batches; ``model`` is the PEFT wrapper): the serving
    engine asks every candidate group's adapter at once for about the cost of one.
    ``stop_strings``: a reply ends after the first of them (the first sentence).
    """
    return _greedy_batches(
        model, tokenizer, conversations, max_new_tokens, batch_size, confidence_tokens, adapters, stop_strings
    )


def _greedy_batches(
    model,
    tokenizer,
    conversations,
    max_new_tokens: int,
    batch_size: int,
    confidence_tokens: int,
    adapters: Sequence[str] | None = None,
    stop_strings: Sequence[str] | None = None,
):
    if adapters is not None and len(adapters) != len(conversations):
        raise ValueError(f"{len(adapters)} adapter names for {len(conversations)} conversations")
    encoded = [encode_prompt(tokenizer, messages) for messages in conversations]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    replies: list[tuple[str, float]] = [("", 0.0)] * len(encoded)
    pad = tokenizer.pad_token_id
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]) :] = 1
        mixed = {"adapter_names": [adapters[i] for i in chunk]} if adapters is not None else {}
        if stop_strings:
            mixed.update(stop_strings=list(stop_strings), tokenizer=tokenizer)
        out = model.generate(
            input_ids=ids.to(model.device),
            attention_mask=mask.to(model.device),
            output_scores=confidence_tokens > 0,
            return_dict_in_generate=True,
            **mixed,
            **_generate_kwargs(tokenizer, max_new_tokens, 0.0, 1.0),
        )
        new = out.sequences[:, width:]
        for row, i in enumerate(chunk):
            tokens = new[row]
            ends = (tokens == tokenizer.eos_token_id).nonzero()
            length = int(ends[0, 0]) if len(ends) else len(tokens)
            confidence = 0.0
            if confidence_tokens > 0 and length > 0:
                n = min(length, confidence_tokens)
                logps = [torch.log_softmax(out.scores[t][row].float(), -1)[tokens[t]] for t in range(n)]
                confidence = float(sum(logps) / n)
            replies[i] = (tokenizer.decode(tokens[:length], skip_special_tokens=True).strip(), confidence)
    return replies


def stream_text(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[ChatMessage],
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 0.95,
    cancel: threading.Event | None = None,
    around: Callable[[], AbstractContextManager] | None = None,
) -> Iterator[str]:
    """Yield the reply piece by piece as it is decoded.

    Generation runs in a helper thread (transformers' streamer pattern); setting
    ``cancel`` stops it at the next token, so an abandoned request frees the model.
    ``around`` is entered in that thread for the duration of generation (the
    serving engine takes its lock and activates the user's adapter there).
    """
    cancel = cancel or threading.Event()
    ids = torch.tensor([encode_prompt(tokenizer, messages)], device=model.device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with around() if around else contextlib.nullcontext(), torch.inference_mode():
                model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_StopOnEvent(cancel)]),
                    **_generate_kwargs(tokenizer, max_new_tokens, temperature, top_p),
                )
        except BaseException as exc:  # re-raised in the consumer below
            errors.append(exc)
            streamer.end()

    thread = threading.Thread(target=run, name="generate", daemon=True)
    thread.start()
    try:
        for piece in streamer:
            if piece:
                yield piece
    finally:
        cancel.set()
        thread.join()
    if errors:
        raise errors[0]
