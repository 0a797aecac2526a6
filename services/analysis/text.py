"""Text measures shared by the analysis modules: tokens, similarity and keywords.

Similarity is the cosine of bag-of-words term-count vectors (lower-cased word tokens of two or
more characters, English stop words removed): cheap enough to run on every prompt, and
good at what it is used for here (has the topic stayed the same?). Keywords come from YAKE
(Campos et al., 2020), an unsupervised single-document extractor, so no corpus-wide statistics
have to be kept; it is run on a bounded amount of text because its cost grows with the length.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

import yake

_WORD = re.compile(r"[a-z0-9][a-z0-9_.\-/]*[a-z0-9]|[a-z]{2,}")
# YAKE's cost grows with the text; beyond this many characters only the start and the end
# of the text are given to it.
KEYWORD_TEXT_LIMIT = 4000

# A small English stop-word list (YAKE ships its own for keywords; this one is for similarity).
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its itself
just let me more most my myself no nor not now of off on once only or other our ours ourselves
out over own please same she should so some such than that the their theirs them themselves
then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself yourselves ok okay also
""".split())


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens without stop words; paths and dotted names stay whole."""
    return [t for t in _WORD.findall(text.lower()) if t not in STOP_WORDS]


def term_vector(text: str) -> Counter:
    return Counter(tokens(text))


def cosine(a: Counter, b: Counter) -> float:
    """Cosine similarity of two term-count vectors, 0..1 (0 when either is empty)."""
    if not a or not b:
        return 0.0
    if len(a) > len(b):
        a, b = b, a
    dot = sum(count * b.get(term, 0) for term, count in a.items())
    if not dot:
        return 0.0
    norm = math.sqrt(sum(c * c for c in a.values())) * math.sqrt(sum(c * c for c in b.values()))
    return min(1.0, dot / norm)


def similarity(first: str, second: str) -> float:
    return cosine(term_vector(first), term_vector(second))


_extractor: yake.KeywordExtractor | None = None


def keywords(texts: Iterable[str], top: int = 8) -> list[str]:
    """YAKE keywords (one- and two-word phrases) of the texts joined, best first (top <= 20)."""
    text = "\n".join(t for t in texts if t)
    if len(text) > KEYWORD_TEXT_LIMIT:
        half = KEYWORD_TEXT_LIMIT // 2
        text = text[:half] + "\n" + text[-half:]
    if not text.strip():
        return []
    global _extractor
    if _extractor is None:
        _extractor = yake.KeywordExtractor(lan="en", n=2, top=20, dedupLim=0.7)
    try:
        found = _extractor.extract_keywords(text)
    except (ValueError, ZeroDivisionError, IndexError):  # YAKE on text with no usable words
        return []
    return [phrase for phrase, _score in found[:top]]


__all__ = ["KEYWORD_TEXT_LIMIT", "cosine", "keywords", "similarity", "term_vector", "tokens"]
