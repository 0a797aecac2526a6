"""Text measures shared by the analysis modules: tokens, similarity and keywords.

Similarity is the cosine of bag-of-words term-count vectors (lower-cased word tokens of two or
more characters, English stop words removed): cheap enough to run on every prompt, and
good at what it is used for here (has the topic stayed the same?). Keywords are TF-IDF
(term frequency times smoothed inverse document frequency) over such term counts, the
documents being a session's segments: incremental and cheap enough to refresh at every
prompt. YAKE was tried first; at 5-30 ms per run it cost more than the rest of the analysis.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping

_WORD = re.compile(r"[a-z0-9][a-z0-9_.\-/]*[a-z0-9]|[a-z]{2,}")

# A small English stop-word list, for similarity and keywords.
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


def tfidf_keywords(counts: Mapping[str, int], frequency: Mapping[str, int], documents: int,
                   top: int = 8) -> list[str]:
    """The terms of one document ranked by TF-IDF, best first (ties in first-seen order).

    `counts` are the document's term counts; `frequency[t]` is how many of the `documents`
    other documents hold t. The weight is count * idf with the smoothed idf of scikit-learn's
    TfidfVectorizer, ln((1 + n) / (1 + df)) + 1, counting the document itself in n and df, so
    a term every document shares still weighs something (a session of one segment ranks its
    terms by frequency)."""
    n = documents + 1
    weights = {term: count * (math.log((1 + n) / (2 + frequency.get(term, 0))) + 1)
               for term, count in counts.items()}
    ranked = sorted(weights, key=lambda t: -weights[t])  # stable: first-seen order on ties
    return ranked[:top]


__all__ = ["cosine", "similarity", "term_vector", "tfidf_keywords", "tokens"]
