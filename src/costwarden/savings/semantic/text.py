"""Lexical features of a pair of queries, for the semantic cache's second-stage check.

Cosine between sentence embeddings is blind to the words that change an answer while barely
moving the vector: a different number ("15 % of 80" / "15 % of 90"), a flipped negation, a
swapped name ("Monday" / "Thursday"), a question turned into a statement, "I" for "you". Each
feature here measures one such difference cheaply (pure Python, microseconds per pair); the
check combines them with the cosine in a small logistic model (``semantic_check``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z]+|\d+(?:[.,/:]\d+)*")


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_STOP = frozenset(
    _words(
        "a an the is are was were be been being am of to in on at for with by from and or but as "
        "it its this that these those there here he she they we you i me my your his her their "
        "our them him us do does did has have had will would can could should shall may might "
        "must so than then just very also into onto over under up down out about s"
    )
)
_NEGATIONS = frozenset(
    _words("not no never none nobody nothing neither nor without cannot nowhere")
)
# Number words count as numbers: "three men" vs "two men" is a number mismatch.
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        _words("zero one two three four five six seven eight nine ten eleven twelve")
    )
}
# Days and months are values too: an answer about Monday's close is wrong for Thursday's.
_CALENDAR_WORDS = {
    **{w: f"day{i}" for i, w in enumerate(_words("monday tuesday wednesday thursday friday"))},
    **{w: f"day{i + 5}" for i, w in enumerate(_words("saturday sunday"))},
    **{w: f"rel{i}" for i, w in enumerate(_words("yesterday today tomorrow tonight"))},
    # "march" and "may" are left out: far more often a verb than a month.
    **{
        w: f"month{i}"
        for i, w in enumerate(
            _words("january february april june july august september october november december")
        )
    },
}
# Grammatical person: "I" against "you" is the same sentence about someone else.
_PERSON = {
    **dict.fromkeys(("i", "me", "my", "mine"), "1s"),
    **dict.fromkeys(("we", "us", "our", "ours"), "1p"),
    **dict.fromkeys(("you", "your", "yours"), "2"),
    **dict.fromkeys(("he", "him", "his"), "3m"),
    **dict.fromkeys(("she", "her", "hers"), "3f"),
    **dict.fromkeys(("they", "them", "their", "theirs"), "3p"),
}
_SUFFIXES = ("ing", "es", "ed", "s", "ly")
# A text that opens with one of these is a question even without its "?": users skip it.
_QUESTION_OPENERS = frozenset(
    _words(
        "how what why when where who whom whose which is are was were do does did can could "
        "will would should shall may might must have has had"
    )
)

FEATURE_NAMES: tuple[str, ...] = (
    "cosine",
    "content_jaccard",
    "token_jaccard",
    "max_unmatched",
    "min_unmatched",
    "number_mismatch",
    "negation_mismatch",
    "entity_mismatch",
    "length_ratio",
    "cosine_x_jaccard",
    "log_vocabulary",
    "question_mismatch",
    "person_swap",
    "entity_swap",
)


@dataclass(frozen=True, slots=True)
class Profile:
    """What the features need from one text, computed once per text."""

    tokens: tuple[str, ...]
    words: frozenset[str]  # the tokens lowercased
    stems: frozenset[str]
    content: frozenset[str]
    numbers: frozenset[str]
    negation_parity: int
    entities: frozenset[str]
    persons: frozenset[str]
    question: bool


def _stem(word: str) -> str:
    word = word.lower()
    for suffix in _SUFFIXES:
        if len(word) > 4 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _number(token: str) -> str | None:
    if token[0].isdigit():
        return token.replace(",", "")
    lowered = token.lower()
    return _NUMBER_WORDS.get(lowered) or _CALENDAR_WORDS.get(lowered)


def profile(text: str) -> Profile:
    tokens = tuple(_WORD.findall(text.replace("n't", " not")))
    stems = [_stem(t) for t in tokens]
    numbers = {n for n in map(_number, tokens) if n is not None}
    lowered = [t.lower() for t in tokens]
    return Profile(
        tokens=tokens,
        words=frozenset(lowered),
        stems=frozenset(stems),
        content=frozenset(
            s for s, t in zip(stems, tokens, strict=True) if s not in _STOP and _number(t) is None
        ),
        numbers=frozenset(numbers),
        negation_parity=sum(t in _NEGATIONS for t in lowered) % 2,
        # Capitalised words after the first are (mostly) names; the first is capitalised anyway,
        # and so is the pronoun "I".
        entities=frozenset(t.lower() for t in tokens[1:] if t[0].isupper() and t != "I"),
        persons=frozenset(_PERSON[t] for t in lowered if t in _PERSON),
        question=text.rstrip().endswith("?") or bool(lowered and lowered[0] in _QUESTION_OPENERS),
    )


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / max(1, len(a | b))


def _swapped(a: frozenset[str], b: frozenset[str]) -> float:
    """1 when each side has something the other lacks: a substitution, not an addition."""
    return float(bool(a - b) and bool(b - a))


def numbers_differ(a: Profile, b: Profile) -> bool:
    return a.numbers != b.numbers


def _unshared_entities(a: Profile, b: Profile) -> tuple[frozenset[str], frozenset[str]]:
    """Names on one side whose word is nowhere on the other, in any case: "paris" typed in
    lowercase is the same word as "Paris"."""
    return a.entities - b.words, b.entities - a.words


def pair_features(a: Profile, b: Profile, cosine: float) -> list[float]:
    """The features of ``FEATURE_NAMES``, in that order."""
    jaccard = _jaccard(a.content, b.content)
    unmatched_a = len(a.content - b.content)
    unmatched_b = len(b.content - a.content)
    longest = max(len(a.tokens), len(b.tokens), 1)
    only_a, only_b = _unshared_entities(a, b)
    return [
        cosine,
        jaccard,
        _jaccard(a.stems, b.stems),
        float(max(unmatched_a, unmatched_b)),
        float(min(unmatched_a, unmatched_b)),
        float(numbers_differ(a, b)),
        float(a.negation_parity != b.negation_parity),
        len(only_a | only_b) / max(1, len(a.entities | b.entities)),
        min(len(a.tokens), len(b.tokens)) / longest,
        cosine * jaccard,
        math.log1p(len(a.content | b.content)),
        float(a.question != b.question),
        _swapped(a.persons, b.persons),
        float(bool(only_a) and bool(only_b)),
    ]
