"""SQuAD answer normalisation: the text two answers are compared by.

Ranking merges candidates that are the same answer, evaluation scores predictions against gold
answers; both use this one definition (the official SQuAD v1.1 script's).
"""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NO_PUNCT = str.maketrans("", "", string.punctuation)  # str.translate: ~10x faster than a per-character join


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (SQuAD v1.1 script)."""
    s = s.lower()
    s = s.translate(_NO_PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())
