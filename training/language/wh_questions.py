"""Wh-questions read off the clause of a first-person fact.

``phrasing.probe_questions`` knows a dozen sentence shapes ("My X is called Y",
"I live in Z"); facts outside them got only "What do you know about ...?" and
the model's own questions, and were then missed when asked plainly: "What is our
baby's name?" after "We named our baby Noor.", "When are the swimming lessons?"
after "The kids' swimming lessons are on Saturday mornings.". These rules split
the fact's first sentence into subject, verb group, object and prepositional
phrases, and ask one question per part, its wh-word chosen by what the part
holds (a weekday or a year: when; a place: where; "by bike": how; a duration:
how long; a titled name: who; an amount: how much / how old). Verbs and their
forms come from lemminflect's English lexicon; the only word lists here are
closed classes of English (auxiliaries, prepositions, determiners, weekdays,
months, units), none taken from a facts file. Unknown shapes give no question
rather than a wrong one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from lemminflect import getAllInflections, getAllLemmas

from training.language.phrasing import TITLES, split_sentences, strip_correction

_CONTRACTIONS = {
    "i'm": ("I", "am"),
    "we're": ("we", "are"),
    "i've": ("I", "have"),
    "we've": ("we", "have"),
    "i'll": ("I", "will"),
    "we'll": ("we", "will"),
}
_AUX = {
    "am": "am",
    "is": "is",
    "are": "are",
    "was": "was",
    "were": "were",
    "has": "has",
    "have": "have",
    "had": "had",
    "will": "will",
    "can": "can",
    "can't": "can't",
    "cannot": "can't",
    "could": "could",
    "won't": "won't",
    "don't": "don't",
    "doesn't": "doesn't",
    "didn't": "didn't",
    "been": "been",
    "be": "be",
}
_DETERMINERS = frozenset({"my", "our", "the", "a", "an", "his", "her", "their", "your"})
_COPULAS = frozenset({"am", "is", "are", "was", "were"})


@lru_cache(maxsize=8192)
def _verb_form(word: str) -> tuple[str, str] | None:
    """(lemma, "base" | "s" | "past") for a finite verb form in lemminflect's English
    lexicon ("repairs" -> ("repair", "s"), "bought" -> ("buy", "past")); None for a
    word that is no verb, or only a participle ("swimming")."""
    lower = word.lower()
    if lower in _FINITE:
        return _FINITE[lower]
    for lemma in getAllLemmas(lower, upos="VERB").get("VERB", ()):
        forms = getAllInflections(lemma, upos="VERB")
        for tag, form in (("VBZ", "s"), ("VBD", "past"), ("VBP", "base"), ("VB", "base")):
            if lower in forms.get(tag, ()):
                return lemma, form
    return None


def _is_verb(word: str, auxiliary_follows: bool, next_word: str = "") -> bool:
    """Whether ``word`` ends a subject as its verb. A word that is also a noun ("plot",
    "club") is the verb only when no auxiliary comes later and the next word is no
    verb: "Our allotment plot number is 37B" is about a plot, "My running club
    meets on Thursdays" about a club, "My wife works at the hospital" about work."""
    if _verb_form(word) is None:
        return False
    if not getAllLemmas(word.lower(), upos="NOUN"):
        return True
    return not auxiliary_follows and not (next_word and _verb_form(next_word))


_FINITE = {"does": ("do", "s"), "goes": ("go", "s"), "has": ("have", "s"), "had": ("have", "past")}

_PREPOSITIONS = frozenset(
    "on in at to for from by with until till since before after during near about of into inside outside as under"
    " behind above below beside".split()
)
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday"
_MONTHS = "january february march april may june july august september october november december"
_TIME_WORDS = frozenset(
    (
        _WEEKDAYS
        + " "
        + _MONTHS
        + " mondays tuesdays wednesdays thursdays fridays saturdays sundays morning mornings afternoon afternoons"
        " evening evenings night nights weekend weekends tonight today tomorrow yesterday noon midnight christmas"
        " summer winter spring autumn birthday week month year"
    ).split()
)
_TIME = re.compile(r"\b(?:(?:19|20)\d\d|\d{1,2}:\d\d|\d{1,2}\s*(?:am|pm|a\.m\.|p\.m\.|o'clock))\b", re.I)
_UNITS = r"(?:years?|months?|weeks?|days?|hours?|minutes?|decades?)"
_NUMBER = r"(?:\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty)"
_DURATION = re.compile(rf"^(?:{_NUMBER}|a few|several|many) {_UNITS}\b", re.I)
_AGE = re.compile(rf"^{_NUMBER}(?:\.\d+)? {_UNITS} old$", re.I)
_AMOUNT = re.compile(r"^(?:[$€£]\s?\d|\d[\d,.]* (?:dollars|euros|pounds|bucks|francs|yen|rupees|pesos)\b)", re.I)
_FREQUENCY = re.compile(r"\b(?:every|each) (?:single )?(\w+)$", re.I)
_ADJECTIVE_PREPOSITIONS = frozenset({"of", "to", "at", "about", "with", "in"})
_NAME = re.compile(rf"^(?:(?:{'|'.join(TITLES)})\.? )?[A-Z][\w'-]*(?: [A-Z][\w'-]*)*$")
_APPOSITION = re.compile(r"\b(?P<p>[Mm]y|[Oo]ur) (?P<x>[a-z]+(?: [a-z]+)?) (?P<n>[A-Z][a-z]+)\b")
_PLACE_PREPOSITIONS = frozenset("in at to near on inside outside from under behind above below beside into".split())
_PARTICLES = frozenset({"up", "out", "off", "down", "away", "back", "over"})
_TOKEN = re.compile(r"(?:[A-Z][a-z]?\.)|[\w$€£][\w'.,:$€£-]*'?", re.UNICODE)


@dataclass(frozen=True)
class Phrase:
    preposition: str  # "" for the object / complement
    words: str

    @property
    def text(self) -> str:
        return f"{self.preposition} {self.words}".strip()


def _is_time(words: str) -> bool:
    return bool(_TIME.search(words)) or any(w.lower().strip(",.") in _TIME_WORDS for w in words.split()[-2:])


def _kind(phrase: Phrase) -> str:
    """What a prepositional phrase holds: time, duration, place, manner or other."""
    words = phrase.words
    if phrase.preposition == "for" and _DURATION.match(words):
        return "duration"
    if phrase.preposition not in {"of", "about", "as"} and _is_time(words):
        return "time"
    if phrase.preposition == "by" and not words.lower().startswith(("the ", "my ", "our ")):
        return "manner"
    if phrase.preposition in _PLACE_PREPOSITIONS and (
        re.search(r"\b[A-Z]", words) or words.lower().startswith(("the ", "a ", "an ", "my ", "our ", "home"))
    ):
        return "place"
    return "other"


def _tokens(sentence: str) -> list[str]:
    words = _TOKEN.findall(sentence.rstrip(".!? "))
    if words and words[0].lower() in _CONTRACTIONS:
        words = [*_CONTRACTIONS[words[0].lower()], *words[1:]]
    return [w.rstrip(",") for w in words]


def _third_person(word: str) -> str | None:
    """The lemma of a verb outside the lexicon in its "-s" form ("vlogs" -> "vlog")."""
    if re.search(r"[^aeiou]ies$", word):
        return word[:-3] + "y"
    if re.search(r"(?:sh|ch|x|ss)es$", word):
        return word[:-2]
    if re.search(r"[^su]s$", word) and len(word) > 3:
        return word[:-1]
    return None


def _subject_end(words: list[str]) -> int | None:
    if words[0].lower() in {"i", "we"}:
        return 1
    has_auxiliary = any(w.lower() in _AUX for w in words[1:])
    for i, word in enumerate(words[1:], start=1):
        lower, before = word.lower(), words[i - 1].lower()
        if lower in _AUX:
            return i
        # A verb's form after "my", "at" or "husband's", or just before "is", is a noun:
        # "My rent is", "My team at work is", "My husband's name is".
        noun_place = before in _DETERMINERS or before in _PREPOSITIONS or before.endswith("'s")
        noun_place = noun_place or (i + 1 < len(words) and words[i + 1].lower() in _AUX)
        # No auxiliary came before this word (the loop would have returned): one follows iff the clause has one.
        is_verb = _is_verb(lower, has_auxiliary, words[i + 1].lower() if i + 1 < len(words) else "")
        if not noun_place and (is_verb or (not has_auxiliary and i >= 2 and _third_person(lower))):
            return i
    return None


def _phrases(words: list[str]) -> tuple[list[Phrase], str | None]:
    """The object / complement (preposition "") then each prepositional phrase; and a
    trailing frequency ("every day") cut off."""
    text = " ".join(words)
    frequency = None
    if match := _FREQUENCY.search(text):
        frequency, text = match[1].lower(), text[: match.start()].strip()
    phrases: list[Phrase] = []
    current: list[str] = []
    preposition = ""
    for word in text.split():
        # "of" stays in its phrase ("the University of Edinburgh") unless it opens one ("scared of").
        opens = word.lower() in _PREPOSITIONS and (word.lower() != "of" or not current)
        if opens and (current or preposition):
            phrases.append(Phrase(preposition, " ".join(current)))
            preposition, current = word.lower(), []
        elif opens and not phrases and not current:
            preposition = word.lower()
        else:
            current.append(word)
    if current or preposition:
        phrases.append(Phrase(preposition, " ".join(current)))
    if phrases and phrases[0].preposition:
        phrases.insert(0, Phrase("", ""))
    return phrases, frequency


def _subject(words: list[str]) -> str:
    first, *rest = words
    if first.lower() in {"my", "our", "the", "a", "an", "we", "your"}:
        first = first.lower()
    return " ".join([first, *rest])


def _has_title(name: str) -> bool:
    """Whether ``name`` opens with a person's title ("Dr. Okafor"): "who" asks for it."""
    return bool(re.match(rf"(?:{'|'.join(TITLES)})\.? ", name))


def _appositions(text: str) -> list[re.Match[str]]:
    """ "my cousin Aisha", "our baby Noor": a noun and the name it is given."""
    return [
        m
        for m in _APPOSITION.finditer(text)
        if m["n"] not in TITLES
        and not any(w in _AUX or _is_verb(w, auxiliary_follows=True) or w in _PREPOSITIONS for w in m["x"].split())
    ]


def _question(*parts: str) -> str:
    text = " ".join(p for p in parts if p)
    return text[0].upper() + text[1:] + "?"


def _verb_group(subject: str, rest: list[str]) -> tuple[str, str, str] | None:
    """(auxiliary for the question, the verb words after the subject, the main verb or "")
    taken off the front of ``rest``: "have been learning" -> ("have", "been learning",
    "learning"); "hates" -> ("does", "hate", "hate"); None where no verb is found."""
    chain: list[str] = []
    while rest and rest[0].lower() in _AUX:
        chain.append(_AUX[rest.pop(0).lower()])
    main = ""
    if rest:
        word = rest[0].lower()
        participle = chain and (word.endswith(("ing", "ed")) or word == "born")
        # After "is" a verb's form is a verb only before a preposition ("My gym is open
        # until 10", not "My dog's name is Pepper"), and a name never is one.
        after_copula = bool(chain) and chain[-1] in _COPULAS
        before_preposition = len(rest) > 1 and rest[1].lower() in _PREPOSITIONS
        finite = _verb_form(word) and not rest[0][0].isupper() and (not after_copula or before_preposition)
        if participle or finite or (not chain and subject in {"I", "we"} and not word.endswith("ed")):
            main = rest.pop(0).lower()
    # "We have a parrot": "have" is the verb itself, asked with do-support.
    if chain in (["have"], ["has"], ["had"]) and not main:
        chain, main = [], chain[0]
    if main and rest and rest[0].lower() in _PARTICLES:
        main = f"{main} {rest.pop(0).lower()}"
    if chain:
        return chain[0], " ".join([*chain[1:], main]), main
    if not main:
        return None
    head, _, particle = main.partition(" ")
    lemma, form = _verb_form(head) or (
        (_third_person(head), "s") if _third_person(head) and subject not in {"I", "we"} else (head, "base")
    )
    plural = subject in {"I", "we"} or subject.split()[-1].lower().endswith("s")
    auxiliary = "did" if form == "past" else ("do" if plural else "does")
    return auxiliary, f"{lemma} {particle}".strip(), main


def clause_questions(fact: str, limit: int = 3) -> list[str]:
    """Plain questions about each part of ``fact``'s first sentence, most specific first."""
    return list(_clause(fact))[:limit]


def kind_slots(fact: str) -> list[tuple[str, str]]:
    """(noun phrase, question) for each of ``fact``'s clause questions that asks "what"
    for a thing the verb takes: ("the cello", "What have I been learning?"). Knowing
    what kind of thing it is turns the question into "Which instrument have I been
    learning?" (``kind_questions``)."""
    return [(about, question) for question, about in _clause(fact).items() if about and question.startswith("What ")]


def kind_questions(slots: Sequence[tuple[str, str]], kinds: Mapping[str, str | None]) -> list[str]:
    """ "What have I been learning?" -> "Which instrument have I been learning?", for each
    slot whose noun phrase has a kind in ``kinds``."""
    return [f"Which {kinds[about]} {question[len('What ') :]}" for about, question in slots if kinds.get(about)]


def _clause(fact: str) -> dict[str, str]:
    """Each clause question of ``fact``, mapped to the noun phrase it asks for ("" for none)."""
    sentence = (split_sentences(strip_correction(fact)) or [""])[0]
    out = {f"What is {m['p'].lower()} {m['x']}'s name?": "" for m in _appositions(sentence)}
    words = _tokens(sentence)
    end = _subject_end(words) if words else None
    if end is None:
        return out
    subject, rest = _subject(words[:end]), words[end:]
    group = _verb_group(subject, rest)
    if group is None:
        return out
    auxiliary, verb, main = group
    if subject == "I" and auxiliary in {"is", "are"}:
        auxiliary = "am"
    copula = not main and auxiliary in _COPULAS
    phrases, frequency = _phrases(rest)
    obj, preps = (phrases[0], phrases[1:]) if phrases else (Phrase("", ""), [])
    kinds = [_kind(p) for p in preps]

    def ask(wh: str, *tail: str, about: str = "") -> None:
        question = _question(wh, auxiliary, subject, verb, *tail)
        if question.lower() not in {q.lower() for q in out}:
            out[question] = about

    def others(skip: Phrase | None = None) -> list[str]:
        """The other phrases that are neither time nor place, for a question's context."""
        return [p.text for p, k in zip(preps, kinds, strict=True) if k == "other" and p is not skip]

    appositive_object = bool(_appositions(obj.words))
    adjective = (
        copula and re.fullmatch(r"[a-z-]+", obj.words) and preps and preps[0].preposition in _ADJECTIVE_PREPOSITIONS
    )
    favourite = re.search(r"\bfavou?rite\b", subject, re.I)
    if obj.words and not appositive_object:
        number = re.fullmatch(r"[\d.,]+", obj.words)
        if _AGE.match(obj.words) and copula:
            ask("How old")
        elif _AMOUNT.match(obj.words):
            ask("How much", *([] if copula else others()))
        elif _DURATION.match(obj.words):
            ask("How long", *([] if copula else others()))
        elif _is_time(obj.words) and not favourite:
            ask("When", *([] if copula else others()))
        elif adjective:
            # "I'm scared of heights" -> "What am I scared of?"
            ask("What", obj.words, preps[0].preposition)
        elif copula and _NAME.match(obj.words) and _has_title(obj.words):
            ask("Who")
        elif copula and subject in {"I", "we"} and not re.match(r"(?:a|an|the|my|our)\b|\d|[A-Z]", obj.words):
            pass  # "I am vegetarian": "What am I?" asks nothing
        elif not number and not (main and obj.words.endswith("ed") and " " not in obj.words):
            named = main in {"called", "named"}  # "My boss is called Margaret": a name has no kind
            ask("What", *([] if copula else others()), about="" if copula or named else obj.words)
    context = [] if copula or appositive_object else [obj.words]
    wh_words = {"time": "When", "duration": "How long", "place": "Where", "manner": "How"}
    for phrase, kind in zip(preps, kinds, strict=True):
        if adjective and phrase is preps[0]:
            continue
        places = [p.text for p, k in zip(preps, kinds, strict=True) if k == "place" and p is not phrase]
        if kind in wh_words:
            # "My car is in the garage until Tuesday" -> "When is my car in the garage?"
            where = places if copula and not obj.words and kind != "place" else []
            ask(
                wh_words[kind],
                *context,
                *where,
                *others(skip=phrase),
                *(["from"] if phrase.preposition == "from" else []),
            )
        elif phrase.words and (
            phrase.preposition in {"for", "with", "about", "as"}
            or (phrase is preps[0] and main and not obj.words and phrase.preposition in _ADJECTIVE_PREPOSITIONS)
        ):
            wh = "Who" if _NAME.match(phrase.words) and phrase.preposition == "with" else "What"
            earlier = [p.text for p, k in zip(preps[: preps.index(phrase)], kinds, strict=False) if k == "place"]
            ask(
                wh,
                *([obj.words] if obj.words and not appositive_object else []),
                *earlier,
                phrase.preposition,
                about=phrase.words if not obj.words and phrase.preposition == "for" else "",
            )
    if frequency in {"day", "week", "month", "year", "morning", "evening", "night"}:
        ask("How often", *context, *[p.text for p in preps])
    elif frequency:
        ask("When", *context)
    return out
