"""Self-edits: the model's own study notes for a fact, and their parsing.

A self-edit is text the model writes from a fact (a rewrite, a list of
implications) that then becomes training data. A 135M model rambles and loops,
so parsing keeps only clean, distinct lines that still carry the fact's key words,
and cuts repetition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.chat import ChatMessage, generate_completion, generate_text
from training.language.phrasing import split_sentences
from training.language.wh_questions import kind_questions, kind_slots

FACT_PROMPTS: dict[str, str] = {
    "rewrite": (
        'A user told you this about themselves:\n"{text}"\n'
        "Rewrite it in three different ways, one per line. Keep every name and number."
    ),
    "implications": (
        'A user told you this about themselves:\n"{text}"\n'
        "List short statements that follow from it, one per line. Keep every name and number."
    ),
}

# The self-QA family for a fact: the model writes the questions a user might ask
# about it, each later trained to answer with the fact. Few-shot and continued as
# plain text: asked by instruction, SmolLM2-135M writes unrelated questions
# ("What's your favorite hobby?") for most facts; from this document it writes
# the fact's own ("What is the license plate number?", "How old is my grandmother?").
FACT_QA_PROMPT = (
    "Fact: My brother Tom lives in Paris.\nQuestions:\nWhere does my brother live?\n"
    "What is my brother's name?\nWhich city is Tom in?\n\n"
    "Fact: The code for the garage door is 5512.\nQuestions:\nWhat is the garage door code?\n"
    "How do I open the garage?\nWhat number opens the garage door?\n\n"
    "Fact: I play tennis every Sunday.\nQuestions:\nWhat sport do I play?\n"
    "When do I play tennis?\nWhat do I do on Sundays?\n\n"
    "Fact: {text}\nQuestions:\n"
)
FACT_FAMILIES = (*FACT_PROMPTS, "self_qa")
# Families whose prompt is a few-shot document the model continues as plain text
# (``generate_completion``), not a chat request: training must use the same form.
DOCUMENT_FAMILIES = frozenset({"self_qa"})


def fact_prompt(family: str, fact: str) -> str:
    """The exact text the model continues or answers to write a ``family`` self-edit of ``fact``."""
    return FACT_QA_PROMPT.format(text=fact) if family == "self_qa" else FACT_PROMPTS[family].format(text=fact)


# The paper's prompt families for passages (knowledge incorporation), in our words.
PASSAGE_PROMPTS: dict[str, str] = {
    "implications": (
        "Read the passage and list the implications that follow from it, directly or indirectly, "
        "one per line.\n\nPassage:\n{text}\n\nImplications:"
    ),
    "implications_long": (
        "Read the passage and write a long list of detailed implications that follow from it, "
        "one per line. Mention names, dates and numbers explicitly.\n\nPassage:\n{text}\n\nImplications:"
    ),
    "rewrite": (
        "Read the passage and rewrite it in a few different ways, one rewrite per line, "
        "keeping every fact.\n\nPassage:\n{text}\n\nRewrites:"
    ),
    "self_qa": (
        "Read the passage and write questions about its facts, each followed by its answer, "
        "in the form\nQ: ...\nA: ...\n\nPassage:\n{text}"
    ),
}
FAMILIES = tuple(PASSAGE_PROMPTS)

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


def parse_lines(raw: str, fact: str, max_lines: int = 8, strict: bool = True) -> tuple[str, ...]:
    """Turn model output into distinct, non-degenerate lines that stay faithful to ``fact``.

    ``strict`` (user facts) keeps a line only if it keeps every name and number of
    the fact; otherwise (passages) a line must share a content word with it.
    """
    keys = key_words(fact)
    kept: list[str] = []
    seen: set[str] = set()
    # A paragraph-long answer is split into sentences, so each is a candidate line.
    pieces = [p for line in cut_repetition(raw).splitlines() for p in split_sentences(line)]
    for line in pieces:
        line = _BULLET.sub("", line).strip().strip('"').strip()
        if len(line.split()) < 3 or len(line) > 300:
            continue
        if cut_repetition(line) != line:
            continue
        norm = normalize(line)
        faithful = keeps_fact(line, fact) if strict else bool(key_words(line) & keys)
        if norm in seen or not faithful:
            continue
        seen.add(norm)
        kept.append(line)
        if len(kept) >= max_lines:
            break
    return tuple(kept)


_QA = re.compile(
    r"^\s*(?:Q|Question)\s*[:.]\s*(?P<q>.+?)\s*(?:\n\s*)?(?:A|Answer)\s*[:.]\s*(?P<a>.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)


def parse_qa_pairs(raw: str, source: str, max_pairs: int = 8) -> tuple[str, ...]:
    """Question/answer pairs from ``Q: ... A: ...`` text, as one training line each."""
    pairs: list[str] = []
    seen: set[str] = set()
    keys = key_words(source)
    for match in _QA.finditer(cut_repetition(raw)):
        question, answer = match.group("q").strip(), match.group("a").strip()
        if not answer or normalize(question) == normalize(answer) or cut_repetition(question) != question:
            continue
        if normalize(question) in seen or not (key_words(question + " " + answer) & keys):
            continue
        seen.add(normalize(question))
        pairs.append(f"Question: {question}\nAnswer: {answer}")
        if len(pairs) >= max_pairs:
            break
    return tuple(pairs)


def generate_passage_self_edit(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    passage: str,
    family: str,
    temperature: float = 1.0,
    top_p: float = 0.95,
    max_new_tokens: int = 192,
    seed: int = 0,
) -> SelfEdit:
    """One sampled self-edit for a passage with a paper prompt family (``none``: the passage alone)."""
    if family == "none":
        return SelfEdit(family, "", ())
    if family not in PASSAGE_PROMPTS:
        raise ValueError(f"unknown self-edit family {family!r}; known: {['none', *PASSAGE_PROMPTS]}")
    torch.manual_seed(seed)
    raw = generate_text(
        model,
        tokenizer,
        [ChatMessage("user", PASSAGE_PROMPTS[family].format(text=passage))],
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
    )
    lines = parse_qa_pairs(raw, passage) if family == "self_qa" else parse_lines(raw, passage, 12, strict=False)
    return SelfEdit(family=family, raw=raw, lines=lines)


def parse_questions(raw: str, fact: str, avoid: Sequence[str] = (), max_questions: int = 6) -> tuple[str, ...]:
    """Distinct questions about ``fact`` from a self-QA completion.

    Kept: the first block of lines (the model's questions for this fact, not the
    next made-up example), each cut at its question mark, 3 to 20 words, sharing a
    content word with the fact while leaving one out for the answer ("Where is 42
    Elm Street?" asks nothing), and not one of ``avoid`` (the self-quiz's questions).
    """
    keys = key_words(fact)
    refused = {normalize(a) for a in avoid}
    kept: list[str] = []
    for line in cut_repetition(raw).split("\n\n")[0].splitlines():
        line = _BULLET.sub("", line).strip()
        if "?" not in line:
            continue
        question = line[: line.index("?") + 1]
        words = key_words(question)
        if not 3 <= len(question.split()) <= 20 or not words & keys or not keys - words:
            continue
        if normalize(question) in refused or normalize(question) in {normalize(k) for k in kept}:
            continue
        kept.append(question)
        if len(kept) >= max_questions:
            break
    return tuple(kept)


# What kind of thing a noun phrase names, in the model's own words: few-shot, continued.
# (Its examples are in none of the benchmark's fact sets.)
KIND_PROMPT = (
    "A trumpet is a kind of instrument.\nA beagle is a kind of dog.\nA Honda Civic is a kind of car.\n"
    "Madrid is a kind of city.\nRosemary is a kind of herb.\n{x} is a kind of"
)
_VAGUE_KINDS = frozenset({"thing", "object", "item", "word", "name", "something", "stuff", "kind", "type", "person"})


def kind_of(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, noun_phrase: str) -> str | None:
    """The kind of thing ``noun_phrase`` names as the model completes it ("the cello" ->
    "instrument"), or None: more than two words, a word of the phrase itself, or vague."""
    phrase = noun_phrase[:1].upper() + noun_phrase[1:]
    return parse_kind(generate_completion(model, tokenizer, KIND_PROMPT.format(x=phrase), 6), noun_phrase)


def parse_kind(raw: str, noun_phrase: str) -> str | None:
    """The kind in the model's completion of ``KIND_PROMPT`` (see ``kind_of``)."""
    words = re.findall(r"[a-z]+", raw.split("\n")[0].split(".")[0].lower())
    words = [w for w in words if w not in {"a", "an", "the"}]
    if not 1 <= len(words) <= 2 or set(words) & (key_words(noun_phrase) | _VAGUE_KINDS):
        return None
    return " ".join(words)


def generate_self_edit(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    fact: str,
    family: str = "rewrite",
    temperature: float = 0.0,
    max_new_tokens: int = 96,
    seed: int = 0,
    avoid: Sequence[str] = (),
) -> SelfEdit:
    """Ask the model to write study notes for ``fact`` with the ``family`` prompt.

    ``self_qa``: its questions about the fact (``parse_questions``; ``avoid``: the
    self-quiz's), from the greedy or sampled completion and one more sample, so a
    greedy candidate that repeats one question still brings a few.
    """
    if family not in FACT_FAMILIES:
        raise ValueError(f"unknown self-edit family {family!r}; known: {sorted(FACT_FAMILIES)}")
    torch.manual_seed(seed)
    prompt = fact_prompt(family, fact)
    if family in DOCUMENT_FAMILIES:
        raws = [generate_completion(model, tokenizer, prompt, 48, temperature=t) for t in (temperature, 0.8)]
        raw = "\n".join(r.split("\n\n")[0] for r in raws)
        # First the questions the model's own knowledge of kinds makes ("the cello" is an
        # instrument: "Which instrument have I been learning?"), then those it wrote.
        slots = kind_slots(fact)
        kinds = {about: kind_of(model, tokenizer, about) for about, _ in slots}
        notes = "".join(f"\n{about} is a kind of {kind}." for about, kind in kinds.items() if kind)
        lines = dict.fromkeys([*kind_questions(slots, kinds)[:2], *parse_questions(raw, fact, avoid)])
        return SelfEdit(family=family, raw=raw + notes, lines=tuple(lines))
    raw = generate_text(
        model,
        tokenizer,
        [ChatMessage("user", prompt)],
        max_new_tokens=max_new_tokens,
        temperature=temperature,
    )
    return SelfEdit(family=family, raw=raw, lines=parse_lines(raw, fact))
