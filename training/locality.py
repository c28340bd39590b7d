"""Locality: how far an adapter moved the model's answers to unrelated prompts.

Measured by teacher forcing, so it costs one batched forward pass per model
instead of a generation per prompt: the base model's own answer to each held-out
prompt is fed in, and the adapter *keeps* the answer when its greedy choice
agrees with the base model's greedy choice at each of the first ``n_tokens``
answer positions. That is the same as "greedy decoding gives the same first
``n_tokens`` tokens" wherever the cached answer is the base model's greedy
output, and it is stricter than any paraphrase-tolerant comparison. The mean
KL divergence from the base model over those positions is reported alongside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from training.chat import ChatMessage, encode_prompt, with_system_prompt
from training.replay import ReplayItem

N_TOKENS = 16


@dataclass(frozen=True)
class Locality:
    kept: float  # share of prompts whose first n answer tokens are unchanged
    kl: float  # mean KL(base || adapter) per answer position, in nats
    changed: tuple[str, ...]  # prompts whose answer changed

    def to_dict(self) -> dict:
        return {"kept": round(self.kept, 4), "kl": round(self.kl, 5), "changed": list(self.changed)}


def _batch(tokenizer, items: Sequence[ReplayItem], n_tokens: int):
    rows, spans = [], []
    for item in items:
        prompt = encode_prompt(tokenizer, with_system_prompt([ChatMessage("user", item.prompt)]))
        answer = tokenizer.encode(item.answer.strip(), add_special_tokens=False)[:n_tokens]
        rows.append(prompt + answer)
        spans.append((len(prompt) - 1, len(prompt) - 1 + len(answer)))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask, spans


@torch.no_grad()
def answer_logits(model, tokenizer, items: Sequence[ReplayItem], n_tokens: int = N_TOKENS) -> list[torch.Tensor]:
    """Log-probabilities at each of the first ``n_tokens`` answer positions, per item."""
    ids, mask, spans = _batch(tokenizer, items, n_tokens)
    logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
    return [torch.log_softmax(logits[i, a:b], dim=-1).cpu() for i, (a, b) in enumerate(spans)]


def compare(base: Sequence[torch.Tensor], adapted: Sequence[torch.Tensor], items: Sequence[ReplayItem]) -> Locality:
    """Compare per-position log-probabilities of the base model and an adapted one."""
    kept, kls, changed = 0, [], []
    for item, b, a in zip(items, base, adapted, strict=True):
        if torch.equal(b.argmax(-1), a.argmax(-1)):
            kept += 1
        else:
            changed.append(item.prompt)
        kls.append(float((b.exp() * (b - a)).sum(-1).mean()))
    return Locality(kept / len(items) if items else 1.0, sum(kls) / len(kls) if kls else 0.0, tuple(changed))
