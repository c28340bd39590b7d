"""The LoRA inner loop: project-wide adapter shape, example tokenisation, training.

Every adapter in the project has the same rank, alpha and target modules
(:data:`LORA_SHAPE`), so any version can be hot-swapped for any other and the
serving engine never needs to re-shape a layer.

Label masking: loss is taken only on the assistant's answer tokens and its
end-of-turn token. Prompt tokens (system + user turn) are masked with -100 because
we want the adapter to learn *what to answer*, not to model the user's questions,
and padding is always masked.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from peft import LoraConfig
from transformers import PreTrainedTokenizerBase

from training.chat import ChatMessage, encode_prompt

log = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass(frozen=True)
class LoraShape:
    """Adapter geometry fixed for the whole project (hot-swap needs it identical)."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )

    def peft_config(self) -> LoraConfig:
        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            task_type="CAUSAL_LM",
        )


LORA_SHAPE = LoraShape()


@dataclass(frozen=True)
class TrainConfig:
    """How one adapter version is trained; recorded in its manifest."""

    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate"})
    epochs: int = field(default=3, metadata={"help": "passes over the example set"})
    max_steps: int = field(default=60, metadata={"help": "hard cap on optimiser steps"})
    batch_size: int = field(default=4, metadata={"help": "examples per step"})
    max_length: int = field(default=256, metadata={"help": "tokens per example, longer ones are cut"})
    seed: int = field(default=0, metadata={"help": "seeds example order and dropout"})
    kl_weight: float = field(
        default=4.0, metadata={"help": "replay examples: weight of KL(base || adapter) instead of cross-entropy"}
    )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainingExample:
    """One chat turn to learn: ``prompt`` messages, then the assistant ``answer``.

    A ``prompt`` given as a string is a document the model continues as plain text
    (no chat template), as few-shot prompts are used (``chat.generate_completion``).
    """

    prompt: tuple[ChatMessage, ...] | str
    answer: str
    kind: str  # "fact" | "self_edit" | "rehearsal" | "replay" | "text"


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]


def tokenize_example(tokenizer: PreTrainedTokenizerBase, example: TrainingExample, max_length: int) -> TokenizedExample:
    """Tokenise prompt + answer + end-of-turn, masking every prompt token.

    An example with no prompt is plain text (continued pre-training, as the paper
    trains on passages and self-edits): every token is learnt. A string prompt is
    encoded as ``generate_completion`` encodes it, so training sees the same tokens.
    """
    if isinstance(example.prompt, str):
        prompt_ids = tokenizer.encode(example.prompt, add_special_tokens=False)
    else:
        prompt_ids = encode_prompt(tokenizer, example.prompt) if example.prompt else []
    answer_ids = tokenizer.encode(example.answer.strip(), add_special_tokens=False)
    answer_ids.append(tokenizer.eos_token_id)
    input_ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + answer_ids)[:max_length]
    return TokenizedExample(input_ids=input_ids, labels=labels)


def collate(batch: Sequence[TokenizedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padded positions get label -100 and attention 0."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


ProgressCallback = Callable[[int, int, float], None]


def planned_steps(n_examples: int, config: TrainConfig) -> int:
    return min(config.max_steps, config.epochs * math.ceil(n_examples / config.batch_size))


def train_lora(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TrainingExample],
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    base_cache: dict | None = None,
) -> list[float]:
    """Train the *active* LoRA adapter of ``model`` on ``examples``; return per-step losses.

    Only parameters that require grad (the active adapter's LoRA matrices) are
    optimised; the caller asserts the base weights are untouched in tests.
    ``base_cache``: where the base model's hidden states on replay examples are
    kept between calls (see :func:`_step_loss`); it must live no longer than the
    base model's weights stay the same.
    """
    if not examples:
        raise ValueError("train_lora needs at least one example")
    tokenized = [tokenize_example(tokenizer, e, config.max_length) for e in examples]
    kinds_of = [e.kind for e in examples]
    keys_of = [tuple(t.input_ids) for t in tokenized]
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters: is a LoRA adapter active?")
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    total = planned_steps(len(tokenized), config)
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    order: list[int] = []
    losses: list[float] = []
    model.train()
    try:
        for step in range(total):
            if len(order) < config.batch_size:
                epoch = list(range(len(tokenized)))
                rng.shuffle(epoch)
                order.extend(epoch)
            order_batch = order[: config.batch_size]
            batch = [tokenized[i] for i in order_batch]
            del order[: config.batch_size]
            kinds = [kinds_of[i] for i in order_batch]
            inputs = {k: v.to(model.device) for k, v in collate(batch, tokenizer.pad_token_id).items()}
            keys = [keys_of[i] for i in order_batch]
            loss = _step_loss(model, inputs, kinds, config.kl_weight, keys, base_cache)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            if progress:
                progress(step + 1, total, losses[-1])
    finally:
        model.eval()
    return losses


def _decoder_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The transformer body (LoRA layers included) and the output projection."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def _step_loss(
    model: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    kinds: list[str],
    kl_weight: float,
    keys: Sequence[Hashable] | None = None,
    base_cache: dict | None = None,
):
    """Cross-entropy on the answer tokens; for replay rows, KL to the base model instead.

    Replay answers are the base model's own greedy answers, so cross-entropy on
    them only pins the top token. KL(base || adapter) over the whole next-token
    distribution at those positions (base logits from the same model with its
    adapter disabled) keeps general behaviour far closer to the base model.

    The output projection (a 49k-word vocabulary: a fifth of the small model's
    weights) is applied only at the answer positions, which are about a third of
    a batch's tokens; the loss is the same as the model's own (mean over answer
    tokens), and a training step takes about 10 % less time.

    The base model's side of the KL needs its hidden states on the replay rows. A
    replay example (a fixed prompt and the base model's cached answer) recurs in
    every candidate and every consolidation, so with ``base_cache`` they are
    computed once per example (``keys``: one hashable per row, its token ids) and
    kept: only the answer positions, 576 numbers each.
    """
    decoder, head = _decoder_and_head(model)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    labels = inputs["labels"][:, 1:]
    answer = labels != IGNORE_INDEX
    use_kl = kl_weight > 0 and hasattr(model, "disable_adapter")
    is_replay = torch.tensor([use_kl and kind == "replay" for kind in kinds], dtype=torch.bool, device=ids.device)
    hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    ce_mask = answer & ~is_replay[:, None]
    kl_mask = answer & is_replay[:, None]
    total = hidden.sum() * 0.0  # keeps the graph when a batch has no answer token left after truncation
    if ce_mask.any():
        total = total + torch.nn.functional.cross_entropy(head(hidden[ce_mask]).float(), labels[ce_mask])
    if kl_mask.any():
        rows = is_replay.nonzero().squeeze(1).tolist()
        row_keys = [keys[r] for r in rows] if keys is not None and base_cache is not None else None
        base_hidden = _base_answer_hidden(model, decoder, ids, mask, kl_mask, rows, row_keys, base_cache)
        with torch.no_grad():
            base_logp = torch.log_softmax(head(base_hidden).float(), dim=-1)
        logp = torch.log_softmax(head(hidden[kl_mask]).float(), dim=-1)
        kl = (base_logp.exp() * (base_logp - logp)).sum(-1).mean()
        total = total + kl_weight * kl
    return total


def _base_answer_hidden(model, decoder, ids, mask, answer, rows, keys, cache) -> torch.Tensor:
    """The base model's last hidden states at ``rows``' ``answer`` positions, in row order
    (the order ``hidden[answer]`` selects them); from ``cache`` where present."""
    missing = [r for i, r in enumerate(rows) if keys is None or keys[i] not in cache]
    computed: dict[int, torch.Tensor] = {}
    if missing:
        with torch.no_grad(), model.disable_adapter():
            hidden = decoder(input_ids=ids[missing], attention_mask=mask[missing]).last_hidden_state[:, :-1]
        for j, row in enumerate(missing):
            computed[row] = hidden[j][answer[row]]
    if keys is not None:
        for i, row in enumerate(rows):
            if row in computed:
                cache[keys[i]] = computed[row]
            else:
                computed[row] = cache[keys[i]]
    return torch.cat([computed[row] for row in rows])
