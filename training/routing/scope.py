"""Scope: is a chat turn about what the user taught? If not, the base model answers.

A user's adapter knows their facts but also moves the 135M model's answers to
unrelated prompts (locality 0.4-0.6 measured token for token, see
docs/BENCHMARKS.md). Serving the adapter only where it can help keeps general
answers exactly the base model's: the idea of a scope classifier in front of an
edited model (SERAC, Mitchell et al. 2022), here a transparent rule plus a
nearest-neighbour check, not a trained classifier.

A message is *in scope* when

- it names something from one of the user's facts ("When is Emma's birthday?"
  after "My daughter Emma turns 7 on March 3rd"), or asks about the user as a
  whole ("What do you remember about me?", "Remind me ..."); or
- it asks about the user's own state: "Where do I live?", "When was I born?",
  "Which film do I love?", "What kind of bird do we have?", "What is the food
  I love most?" (not "How do I boil an egg?", "Why do we dream?" or "What do I
  need to ...?"). Such a question asks for a fact whatever words the fact used
  ("I moved from Boston to Denver"); or
- it shares two content words with one fact and is not a why/how question:
  "Where is the spare key hidden?" after "I keep the spare key under the blue
  flowerpot", "What is the wifi password?"; or
- it speaks of the user ("my", "mine", "me", "our", or "I" asking about
  themselves: "Which languages can I speak?", not "How can I ...?") *and* is
  about the topic of one of their facts: it shares a content word with a fact
  ("the name of my cat"), or, where the wording differs ("Where does my mom
  come from?" for "My mother was born in Naples"), the base model's own
  sentence embedding puts it nearer to one of the facts than to every one of a
  fixed set of general requests (``TopicEmbedder``).

So "What is a healthy snack for my lunch?" goes to the base model unless the
user taught something about lunch or snacks: the adapter's drift on general
requests that merely say "my" never reaches them. A short follow-up ("And how
old is she?") inherits the scope of the user's previous message. Everything
else goes to the base model.

The rule errs towards the adapter: a general question that names something from
a fact ("Is March a good month for skiing?") is answered by the adapter, which is
what happens without routing. It misses personal questions with none of these
cues ("Which medicine must I avoid?", "When will the car be fixed?" after "My
car is in the garage until Tuesday"): those get the base model, which does not
know the fact. On facts written after the rule (``personal_facts_heldout.jsonl``)
it routes fewer questions than on the bundled set it was tuned on
(docs/BENCHMARKS.md, "Scope routing").
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import torch

from training.chat import ChatMessage
from training.replay import REPLAY_PROMPTS
from training.seal.self_edit import STOPWORDS

if TYPE_CHECKING:
    from training.adapters import AdapterHost

# The user speaking of themselves or their household ("our front door"), or
# asking as the subject ("which languages can I speak?", not "how do I ...?"):
# a personal cue, which still needs the topic of a fact. "We" and "us" are left
# out: "why do we dream?" speaks of people in general.
PERSONAL_WORDS = frozenset({"my", "mine", "myself", "me", "our", "ours", "ourselves"})
_I_AS_SUBJECT = frozenset({"i", "i'm", "i've"})
# "How do I ...?", "how can I ...?", "what do I need to ...?": a request for
# instructions, where "I" is anyone.
_NEED_TO = r"\s+(?:need|have|want)\s+to\b"  # "... I need to ...": a task, not a fact
_HOW_TO = re.compile(r"\bhow\s+(?:do|can|could|should|would|will|to)\s+i\b|\bi" + _NEED_TO)
# Requests about the user as a whole: in scope whatever the topic.
ABOUT_THE_USER = (
    "about me",
    "remind me",
    "remember",
    "do you know me",
    "who am i",
    "did i tell you",
    "i told you",
)
# Words that say how a fact is phrased, not what it is about: "a name for my
# blog" is not about "My dog's name is Pepper", "three tips" not about "three
# apple trees".
RELATION_WORDS = frozenset(
    """name names named called call favorite favourite favorites like likes liked love loves loved
    best most good new get got make made go goes want need use used know really much many thing things
    one two three four five six seven eight nine ten first second third""".split()
)
# "Where do I live?", "Which film do I love?", "When was I born?" ask about the
# user; "How do I boil an egg?" and "What do I need to make a sandwich?" ask
# for instructions.
_ABOUT_I = re.compile(r"(?<!\bhow )(?<!\bwhy )\b(?:do|did|am|are|was|were|have|had)\s+(?:i|we)\b(?!" + _NEED_TO + ")")
# "What is the food I love most?", "the city I grew up in", "the year I was born":
# a thing of the user's, named by a relative clause. Verbs of owning, liking,
# living and doing, not of needing or being able ("the best way I can ...").
_MY_THING = re.compile(
    r"\bthe\s+(?:[a-z]+\s+){1,2}i\s+(?:love|loved|like|liked|prefer|enjoy|hate|own|owned|live|lived|work|worked|"
    r"play|played|drive|drove|speak|study|studied|grew|was|am|eat|drink|support|follow|adopted|bought|married)\b"
)
# "Who is my physician?", "What is my biggest fear?", "When is our anniversary?": a
# short question whose whole subject is a thing of the user's. None of the 220
# general prompts (replay and locality) has this shape; 28 of the 165 benchmark
# questions do, several with no word of their fact ("my job" for "I work as a nurse").
_MY_ATTRIBUTE = re.compile(
    r"^(?:what|who|where|when|which)(?: is|'s| are| was| were) (?:my|our) (?:[a-z-]+ ){0,2}?[a-z-]+\?*$"
)
_WHY_OR_HOW = re.compile(r"(?:why|how)\b")
_FOLLOW_UP = re.compile(
    r"^(?:and|what about|how about)\b|\b(?:she|he|it|they|her|him|them|his|hers|its|their|that|there)\b"
)
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_NAME = re.compile(r"\b([A-Z][a-z][\w'-]*)")

# Does a message speak of one of these facts? (``TopicEmbedder.nearer_to_facts``)
Topical = Callable[[str, Sequence[str]], bool]


def _stem(word: str) -> str:
    return word.lower().removesuffix("'s").removesuffix("'")


def _fold(word: str) -> str:
    """A crude singular: "cats" and "cat", "friends" and "friend" meet."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def fact_terms(facts: Iterable[str]) -> frozenset[str]:
    """What identifies the user's facts in any question: the names in them.

    "Emma", "Biscotti", "Denver", "Acme": capitalised words that are not stop
    words ("My", "The" and "I" are not names). Attribute words ("color", "name",
    "city") and numbers are left out: they are as common in general questions
    ("What is 2 plus 3?"), and a question about the user's own attribute says
    "my" or "do I".
    """
    out: set[str] = set()
    for fact in facts:
        out |= {_stem(m.group(1)) for m in _NAME.finditer(fact.strip())}
    return frozenset(t for t in out if t and t not in STOPWORDS)


def topic_words(text: str) -> frozenset[str]:
    """Content words that say what a sentence is about: no stop words, relation
    words ("name", "favorite") or numbers; plurals folded."""
    out = set()
    for word in _WORD.findall(text):
        w = _stem(word)
        if len(w) > 2 and not w.isdigit() and w not in STOPWORDS and w not in RELATION_WORDS:
            out.add(_fold(w))
    return frozenset(out)


def _lowered(message: str) -> str:
    """Lower case, runs of whitespace as one space: what the phrase patterns match."""
    return " ".join(message.lower().split())


def question_words(message: str) -> set[str]:
    """Every word of ``message``, lower-cased, possessives folded: what names are matched in."""
    return {_stem(w) for w in _WORD.findall(message)}


def asks_about_the_user(message: str) -> bool:
    """A question about the user's own state: "Where do I live?", "When was I
    born?", "Which film do I love?", "What is the food I love most?", "Who is my
    physician?" (not "How do I ...?"). These ask for a fact, whatever words the fact used ("I moved to
    Denver"); "my ..." also occurs in general requests ("a snack for my lunch"),
    so it needs the topic of a fact."""
    lowered = _lowered(message)
    return bool(_ABOUT_I.search(lowered) or _MY_THING.search(lowered) or _MY_ATTRIBUTE.match(lowered))


def speaks_of_the_user(message: str) -> bool:
    """A personal cue: "my", "me", "our", or "I" as the one asking about
    themselves ("Which languages can I speak?"), not as anyone ("How do I boil
    an egg?")."""
    words = question_words(message)
    if words & PERSONAL_WORDS:
        return True
    return bool(words & _I_AS_SUBJECT) and not _HOW_TO.search(_lowered(message))


def about_the_user(message: str) -> bool:
    lowered = _lowered(message)
    return any(p in lowered for p in ABOUT_THE_USER)


class Scope:
    """The routing rule for one user's facts (see the module docstring)."""

    def __init__(self, facts: Iterable[str], topical: Topical | None = None) -> None:
        self.facts = [f for f in facts if f.strip()]
        self.names = fact_terms(self.facts)
        self.fact_words = [topic_words(f) for f in self.facts]
        self.words = frozenset().union(*self.fact_words)
        self.topical = topical

    def message(self, message: str) -> bool:
        words = question_words(message)
        if words & self.names or about_the_user(message):
            return True
        if not self.facts:
            return False
        if asks_about_the_user(message):
            return True
        topics = topic_words(message)
        if not _WHY_OR_HOW.match(_lowered(message)) and any(len(topics & mine) >= 2 for mine in self.fact_words):
            return True  # "Where is the spare key hidden?": two words of one fact, not "why do we drink water?"
        if not speaks_of_the_user(message):
            return False
        if topics & self.words:
            return True
        return self.topical is not None and self.topical(message, self.facts)

    def conversation(self, history: Sequence[ChatMessage]) -> bool:
        """Whether the reply to ``history`` should come from the user's adapter.

        The last user message decides; a short follow-up ("How old is she?") takes
        the scope of the user message before it.
        """
        users = [m.content for m in history if m.role == "user"]
        if not users:
            return False
        if self.message(users[-1]):
            return True
        return len(users) > 1 and is_follow_up(users[-1]) and self.message(users[-2])


def is_follow_up(message: str) -> bool:
    """A short message that leans on the previous one: "And how old is she?"."""
    lowered = _lowered(message)
    return len(lowered.split()) <= 8 and bool(_FOLLOW_UP.search(lowered))


def in_scope(history: Sequence[ChatMessage], facts: Iterable[str], topical: Topical | None = None) -> bool:
    return Scope(facts, topical).conversation(history)


def served_locality(changed: Sequence[str], n_prompts: int, scope: Scope) -> float:
    """Locality of what users are served once routing applies.

    A general prompt whose answer the adapter changed (``changed``, from the
    locality quiz of ``n_prompts`` prompts) reaches a user only when it is routed
    to the adapter; the others are answered by the base model itself.
    """
    if n_prompts <= 0:
        return 1.0
    routed = sum(1 for prompt in changed if scope.message(prompt))
    return 1.0 - routed / n_prompts


class TopicEmbedder:
    """Is a message nearer to one of the user's facts than to any general request?

    A sentence is embedded as the mean of the base model's last hidden states
    over its tokens, minus the mean over the general requests, normalised:
    centring removes what every short English request shares, which otherwise
    makes every pair of sentences look alike (cosine > 0.97). A message is about
    the facts when its nearest neighbour among the facts and the general requests
    (``general``: the replay prompts, several of them phrased "my ..." or "do
    I ...") is a fact. Measured on the bundled facts (docs/BENCHMARKS.md): it
    routes none of the 10 held-out "my ..." locality prompts and catches
    paraphrases word overlap misses ("my mom" for "My mother was born in Naples").

    ``base`` enters the plain base model (adapters off): ``host.using(None)``.
    Vectors are cached by text, so a user's facts are embedded once per process.
    """

    BATCH = 32

    def __init__(
        self,
        base: Callable[[], AbstractContextManager[torch.nn.Module]],
        tokenizer,
        general: Sequence[str],
        cache_size: int = 4096,
    ) -> None:
        self._base = base
        self._tokenizer = tokenizer
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._cache_size = cache_size
        raw = self._raw(general)
        self._centre = raw.mean(0)
        self._general = self._unit(raw)

    @torch.no_grad()
    def _raw(self, texts: Sequence[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            with self._base() as model:
                device = next(model.parameters()).device
                # In batches, padded on the right (the real tokens keep their positions)
                # and averaged over the real tokens only: the same vectors as one text
                # at a time (relative difference under 1e-5) in a quarter of the time
                # (the 60 general requests: 3.6 s against 14.9 s on one busy core).
                for start in range(0, len(missing), self.BATCH):
                    chunk = missing[start : start + self.BATCH]
                    ids = self._tokenizer(
                        chunk, return_tensors="pt", padding=True, padding_side="right", truncation=True, max_length=256
                    ).to(device)
                    hidden = model(**ids, output_hidden_states=True).hidden_states[-1]
                    mask = ids["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    means = (hidden * mask).sum(1) / mask.sum(1)
                    for text, vector in zip(chunk, means.float().cpu(), strict=True):
                        self._cache[text] = vector
        for text in texts:
            self._cache.move_to_end(text)
        out = torch.stack([self._cache[t] for t in texts])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    @classmethod
    def of_host(cls, host: AdapterHost) -> TopicEmbedder:
        """Over ``host``'s base model with its adapters off, against the replay prompts.

        The caller serialises use with whatever else runs on ``host``."""
        return cls(lambda: host.using(None), host.tokenizer, REPLAY_PROMPTS)

    def _unit(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(raw - self._centre, dim=-1)

    def _query_and_facts(self, message: str, facts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        vectors = self._unit(self._raw([message, *facts]))
        return vectors[0], vectors[1:]

    def similarities(self, message: str, facts: Sequence[str]) -> torch.Tensor:
        """The cosine similarity of ``message`` to each of ``facts``."""
        query, known = self._query_and_facts(message, facts)
        return known @ query

    def nearer_to_facts(self, message: str, facts: Sequence[str]) -> bool:
        if not facts:
            return False
        query, known = self._query_and_facts(message, facts)
        return bool((known @ query).max() > (self._general @ query).max())
