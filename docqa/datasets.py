"""SQuAD-format QA datasets (v1.1 and v2.0 schema) as whole documents.

Each article becomes one document: its paragraphs joined with blank lines (the realistic "whole
documents" setting). Gold answers keep their offsets, shifted into the article's text, so the
gold paragraph of every question is known.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from docqa.errors import DatasetError

PARAGRAPH_JOIN = "\n\n"


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]  # empty for a v2.0 unanswerable question
    article: int  # index of the article in the dataset
    paragraph: str  # the gold paragraph's text
    paragraph_start: int  # its offset in the article's text

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(frozen=True)
class Article:
    index: int
    title: str
    text: str
    questions: tuple[Question, ...]


def load_squad(path: str | Path, articles: slice | None = None) -> list[Article]:
    """Read a SQuAD-format file; ``articles`` selects a range of article indices."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: no such file") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path} is not a readable JSON file: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DatasetError(f"{path} is not SQuAD-format: expected {{'data': [articles...]}}")
    out: list[Article] = []
    indices = range(len(data["data"]))
    if articles is not None:
        indices = indices[articles]
    for a in indices:
        try:
            out.append(_article(a, data["data"][a]))
        except (KeyError, TypeError) as err:
            raise DatasetError(
                f"{path}: article {a} is not SQuAD-format (missing {err}); "
                "each article needs 'paragraphs' with 'context' and 'qas'"
            ) from err
    return out


def _article(index: int, raw: dict) -> Article:
    texts: list[str] = []
    questions: list[Question] = []
    offset = 0
    for para in raw["paragraphs"]:
        context = para["context"]
        for qa in para["qas"]:
            impossible = bool(qa.get("is_impossible", False))
            answers = () if impossible else tuple(a["text"] for a in qa.get("answers", []))
            questions.append(
                Question(
                    id=str(qa["id"]),
                    question=qa["question"],
                    answers=answers,
                    article=index,
                    paragraph=context,
                    paragraph_start=offset,
                )
            )
        texts.append(context)
        offset += len(context) + len(PARAGRAPH_JOIN)
    return Article(
        index=index,
        title=str(raw.get("title", f"article-{index}")),
        text=PARAGRAPH_JOIN.join(texts),
        questions=tuple(questions),
    )


def parse_range(text: str) -> slice:
    """``"40:48"`` -> ``slice(40, 48)``; ``"40:"`` and ``":8"`` work too."""
    try:
        lo, _, hi = text.partition(":")
        return slice(int(lo) if lo else None, int(hi) if hi else None)
    except ValueError as err:
        raise DatasetError(f"--articles takes A:B (e.g. 40:48), not {text!r}") from err


def questions_of(articles: Sequence[Article]) -> list[Question]:
    return [q for a in articles for q in a.questions]
