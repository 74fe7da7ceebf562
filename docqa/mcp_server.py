"""``docqa mcp``: the index as Model Context Protocol tools, over stdio (the official ``mcp`` SDK).

Tools: ``search``, ``ask``, ``read_page``, ``list_documents``. Each returns the JSON of the
CLI's ``--json`` (``search``, ``ask``) or of ``docqa serve``'s endpoint (a page, the document
list). Read-only by construction: the index is opened read-only, no tool indexes, removes or
writes anything, and pages come from the index (by document id or indexed path), never from a
file a client names. The reader model loads once, on the first ``ask``. Library errors become
MCP tool errors (``is_error`` results with the one-line message), never a crash.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from docqa.api import DocQA, document_json
from docqa.errors import DocQAError

INSTRUCTIONS = (
    "A local docqa index of the user's documents (PDF, text, Markdown, HTML). `ask` answers a "
    "question with exact quotes and citations (file, page, character offsets), or abstains; "
    "`search` returns the best-matching passages; `read_page` returns one page's text; "
    "`list_documents` lists what is indexed."
)

Paths = Annotated[list[Annotated[str, Field(max_length=1_000)]] | None,
                  Field(max_length=20, description="Only documents whose path matches one of these globs.")]
Question = Annotated[str, Field(min_length=1, max_length=2_000, description="The question, in plain words.")]


def create_server(qa: DocQA) -> MCPServer:
    """The MCP server over ``qa``'s index (opened read-only by ``qa.store``)."""
    server = MCPServer("docqa", instructions=INSTRUCTIONS)
    lock = threading.Lock()  # tools run in worker threads; one at a time on the index and model

    def run(call: Any) -> dict[str, Any]:
        try:
            with lock:
                return call()  # type: ignore[no-any-return]
        except DocQAError as err:
            raise ToolError(str(err)) from err

    @server.tool()
    def search(question: Question, k: Annotated[int, Field(ge=1, le=100)] = 10, paths: Paths = None,
               retriever: Literal["fts5", "hybrid"] = "fts5") -> dict[str, Any]:
        """The passages that best match the question (BM25; `hybrid` needs `docqa index --embed`),
        with path, page and character offsets: the JSON of `docqa search --json`."""
        return run(lambda: dataclasses.asdict(qa.search(question, k=k, paths=paths, retriever=retriever)))

    @server.tool()
    def ask(question: Question, top_k: Annotated[int, Field(ge=1, le=20)] = 3,
            passages: Annotated[int, Field(ge=1, le=50)] = 10, paths: Paths = None) -> dict[str, Any]:
        """Answer from the indexed documents: exact answer spans, best first, with confidence and
        citations (path, page, offsets, surrounding context). `abstained: true` means the answer
        is not in the documents (`off_topic: true`: they are not about the question at all);
        `passages` then holds the closest ones. The JSON of
        `docqa ask --json`. The first call loads the reader model (seconds)."""
        return run(lambda: dataclasses.asdict(qa.ask(question, top_k=top_k, passages=passages, paths=paths)))

    @server.tool()
    def read_page(document: Annotated[str, Field(min_length=1, max_length=4_096, description=(
                      "The document's id (as in citations' `document_id`) or its indexed path."))],
                  page: Annotated[int, Field(ge=1, description="1-based page number.")]) -> dict[str, Any]:
        """One page's text as indexed, with its offset in the document text (a citation's
        `start - page.start` indexes into `text`). Reads the index only, never the file."""
        return run(lambda: dataclasses.asdict(qa.read_page(int(document) if document.isdigit() else document, page)))

    @server.tool()
    def list_documents() -> dict[str, Any]:
        """Every indexed file, problem files included (see `status` and `message`)."""
        return run(lambda: {"documents": [document_json(d) for d in qa.store.documents()]})

    return server


def serve_stdio(qa: DocQA) -> None:
    """Answer MCP requests on stdin/stdout until the client closes them."""
    create_server(qa).run("stdio")
