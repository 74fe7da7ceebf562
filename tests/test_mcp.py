"""`docqa mcp` driven by the MCP SDK's own client over stdio, as an AI assistant would use it.

One server process for the whole session: list the tools, call each, compare with the CLI's
`--json`, send bad arguments (MCP errors, and the server keeps answering), and check the index
was not written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed: pip install 'docqa[mcp]'")

from click.testing import CliRunner
from mcp import Client, StdioServerParameters
from pdfgen import write_pdf
from tinymodels import FactGenerator

from docqa import DocQA
from docqa.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def _params(index: Path, model: Path) -> StdioServerParameters:
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return StdioServerParameters(command=sys.executable, args=["-m", "docqa", "mcp", "-i", str(index), "--model", str(model)],
                                 env=env, cwd=str(ROOT))


def _cli_json(*args: str) -> dict[str, Any]:
    out = CliRunner().invoke(cli, [*args, "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)  # type: ignore[no-any-return]


def test_mcp_tools_over_stdio(tmp_path: Path, trained_model_dir: Path) -> None:
    gen = FactGenerator(seed=21)
    notes, page1, page2 = (gen.passage(n_facts=3) for _ in range(3))
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "notes.txt").write_text(notes.text, encoding="utf-8")
    write_pdf(folder / "atlas.pdf", [page1.text, page2.text])
    index = tmp_path / "mcp.db"
    with DocQA(index, model=str(trained_model_dir)) as qa:
        qa.index([folder])
        fact = next(f for f in page2.facts if qa.ask(f.question).answers[0].text == f.value)
    before = hashlib.sha256(index.read_bytes()).hexdigest()

    async def session() -> dict[str, Any]:
        got: dict[str, Any] = {}
        async with Client(_params(index, trained_model_dir), read_timeout_seconds=120) as client:
            got["tools"] = sorted(t.name for t in (await client.list_tools()).tools)

            async def call(name: str, args: dict[str, Any]) -> Any:
                result = await client.call_tool(name, args)
                return ("error", result.content[0].text) if result.is_error else result.structured_content

            got["documents"] = await call("list_documents", {})
            got["search"] = await call("search", {"question": fact.question, "k": 3})
            got["ask"] = await call("ask", {"question": fact.question, "top_k": 2, "passages": 4})
            got["abstain"] = await call("ask", {"question": "What is the zzyzx of Qqxvvb?"})
            got["again"] = await call("ask", {"question": fact.question})
            cite = got["ask"]["answers"][0]["citations"][0]
            got["page_by_id"] = await call("read_page", {"document": str(cite["document_id"]), "page": cite["page"]})
            got["page_by_path"] = await call("read_page", {"document": "atlas.pdf", "page": 1})
            got["bad"] = [
                await call("search", {"question": "x", "k": 0}),
                await call("ask", {}),
                await call("ask", {"question": "?!"}),
                await call("read_page", {"document": "atlas.pdf", "page": 9}),
                await call("read_page", {"document": "/etc/passwd", "page": 1}),
                await call("index", {"paths": ["/"]}),
            ]
            got["after"] = await call("search", {"question": fact.question, "k": 1})  # still serving
        return got

    got = asyncio.run(session())
    assert got["tools"] == ["ask", "list_documents", "read_page", "search"]
    assert [d["path"] for d in got["documents"]["documents"]] == ["atlas.pdf", "notes.txt"]
    assert got["search"] == _cli_json("search", fact.question, "-i", str(index), "-k", "3")
    answered = got["ask"]
    assert answered["answers"][0]["text"] == fact.value and not answered["abstained"]
    printed = _cli_json("ask", fact.question, "-i", str(index), "--model", str(trained_model_dir), "-n", "2", "-k", "4")
    # The model loads once, on the first ask (not at start-up, not again).
    assert answered["timings"]["load_s"] > 0 and got["again"]["timings"]["load_s"] == 0
    assert got["again"]["answers"][0]["text"] == fact.value
    answered.pop("timings"), printed.pop("timings")
    assert answered == printed
    assert got["abstain"]["abstained"] and got["abstain"]["answers"] == []
    page = got["page_by_id"]
    cite = answered["answers"][0]["citations"][0]
    assert (page["path"], page["page"], page["kind"]) == ("atlas.pdf", 2, "pdf")
    assert page["text"][cite["start"] - page["start"]:cite["end"] - page["start"]] == fact.value
    assert got["page_by_path"]["page"] == 1 and got["page_by_path"]["start"] == 0
    errors = got["bad"]
    assert all(e[0] == "error" for e in errors), errors
    assert "k" in errors[0][1] and "question" in errors[1][1] and "nothing searchable" in errors[2][1]
    assert "has no page 9" in errors[3][1] and "no document /etc/passwd" in errors[4][1]
    assert "Unknown tool" in errors[5][1]
    assert got["after"]["hits"]
    assert hashlib.sha256(index.read_bytes()).hexdigest() == before  # read-only


def test_mcp_command_without_an_index_says_so(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["mcp", "-i", str(tmp_path / "none.db")])
    assert out.exit_code == 1 and "no index at" in out.output
