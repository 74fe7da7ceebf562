"""docqa: ask questions of a folder of documents; get exact answer spans with citations."""

from docqa.api import DocQA
from docqa.errors import DocQAError
from docqa.types import Answer, AskResult, Citation, Hit, IndexInfo, IndexReport, SearchResult

__all__ = ["DocQA", "DocQAError", "Answer", "AskResult", "Citation", "Hit", "IndexInfo", "IndexReport", "SearchResult"]
