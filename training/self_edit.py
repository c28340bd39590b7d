"""Self-edits: the model's own study notes for a fact, and their parsing.

A self-edit is text the model writes from a fact (a rewrite, a list of
implications) that then becomes training data. A 135M model rambles and loops,
so parsing keeps only clean, distinct lines that still carry the fact's key words,
and cuts repetition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.chat import ChatMessage, generate_text

PROMPTS: dict[str, str] = {
    "rewrite": (
        'A user told you this about themselves:\n"{fact}"\n'
        "Rewrite it in three different ways, one per line. Keep every name and number."
    ),
    "implications": (
        'A user told you this about themselves:\n"{fact}"\n'
        "List short statements that follow from it, one per line. Keep every name and number."
    ),
}

STOPWORDS = frozenset(
    """a an the and or but if of at by for with about to from in on into over under is are was
    were be been being am i me my mine myself you your yours we our us he she it they them his
    her its their this that these those have has had do does did not no so as than then there
    here what which who whom when where why how all any some very just also can will would
    should could may might must shall im ive id dont""".split()
)

_BULLET = re.compile(r"^\s*(?:[-*•]+|\d+[.)]|[a-z][.)])\s*", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9']+")


@dataclass(frozen=True)
class SelfEdit:
    """One generated self-edit: the raw model text and the lines kept for training."""

    family: str
    raw: str
    lines: tuple[str, ...]


def normalize(text: str) -> str:
    """Lower-case, drop punctuation and articles, squeeze spaces (SQuAD-style)."""
    text = re.sub(r"[^a-z0-9 ]", " ", text.lower())
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def key_words(text: str) -> set[str]:
    """Content words: what a line must keep to still be about the fact."""
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in STOPWORDS and len(w) > 1}


def cut_repetition(text: str, ngram: int = 4, max_repeats: int = 2) -> str:
    """Truncate ``text`` where a word n-gram appears for the (max_repeats+1)-th time."""
    words = text.split()
    seen: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - ngram + 1):
        gram = tuple(w.lower() for w in words[i : i + ngram])
        seen[gram] = seen.get(gram, 0) + 1
        if seen[gram] > max_repeats:
            return " ".join(words[:i]).rstrip()
    return text


def anchor_words(text: str) -> set[str]:
    """Names and numbers: words a faithful restatement must keep verbatim."""
    words = _WORD.findall(text)
    return {
        w.lower().removesuffix("'s")
        for i, w in enumerate(words)
        if any(ch.isdigit() for ch in w) or (i > 0 and w[0].isupper() and w.lower() not in STOPWORDS)
    }


def keeps_fact(line: str, fact: str) -> bool:
    """A line is faithful if it keeps every name/number, and half the content words."""
    line_words = {w.removesuffix("'s") for w in key_words(line)}
    if not anchor_words(fact) <= line_words:
        return False
    keys = {w.removesuffix("'s") for w in key_words(fact)}
    return len(keys & line_words) * 2 >= len(keys)


def parse_lines(raw: str, fact: str, max_lines: int = 8) -> tuple[str, ...]:
    """Turn model output into distinct, non-degenerate lines that stay faithful to ``fact``."""
    kept: list[str] = []
    seen: set[str] = set()
    for line in cut_repetition(raw).splitlines():
        line = _BULLET.sub("", line).strip().strip('"').strip()
        if len(line.split()) < 3 or len(line) > 300:
            continue
        if cut_repetition(line) != line:
            continue
        norm = normalize(line)
        if norm in seen or not keeps_fact(line, fact):
            continue
        seen.add(norm)
        kept.append(line)
        if len(kept) >= max_lines:
            break
    return tuple(kept)


def generate_self_edit(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    fact: str,
    family: str = "rewrite",
    temperature: float = 0.0,
    max_new_tokens: int = 96,
) -> SelfEdit:
    """Ask the model to write study notes for ``fact`` with the ``family`` prompt."""
    if family not in PROMPTS:
        raise ValueError(f"unknown self-edit family {family!r}; known: {sorted(PROMPTS)}")
    prompt = PROMPTS[family].format(fact=fact)
    raw = generate_text(
        model,
        tokenizer,
        [ChatMessage("user", prompt)],
        max_new_tokens=max_new_tokens,
        temperature=temperature,
    )
    return SelfEdit(family=family, raw=raw, lines=parse_lines(raw, fact))
