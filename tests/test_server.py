"""`docqa serve`: the HTTP API with a tiny model trained in-test, so answers must be right.

Shapes are checked against the CLI's `--json`; errors, caps, the Host check, read-only use of
the index, model loading in the background, and many concurrent clients (batched reads).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'docqa[server]'")

import httpx
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pdfgen import write_pdf
from tinymodels import Fact, FactGenerator

from docqa import DocQA
from docqa.cli import cli
from docqa.server import MAX_QUESTION_CHARS, STATIC, create_app, exposure_warning, host_of, running

Where = dict[str, tuple[Fact, str, int]]  # question -> (fact, path, page)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Where]:
    """Three text files and a 3-page PDF; each fact is in exactly one place."""
    folder = tmp_path_factory.mktemp("corpus")
    gen = FactGenerator(seed=8)
    where: Where = {}
    for name in ("alpha.txt", "beta.txt", "notes/gamma.txt"):
        passage = gen.passage(n_facts=4)
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(passage.text, encoding="utf-8")
        where.update({f.question: (f, name, 1) for f in passage.facts})
    pages = [gen.passage(n_facts=3) for _ in range(3)]
    write_pdf(folder / "atlas.pdf", [p.text for p in pages])
    for number, passage in enumerate(pages, 1):
        where.update({f.question: (f, "atlas.pdf", number) for f in passage.facts})
    return folder, where


@pytest.fixture(scope="module")
def index(corpus: tuple[Path, Where], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("idx") / "facts.db"
    with DocQA(path) as qa:
        assert qa.index([corpus[0]]).failed == 0
    return path


@pytest.fixture(scope="module")
def client(index: Path, trained_model_dir: Path) -> Iterator[TestClient]:
    with DocQA(index, model=str(trained_model_dir)) as qa, \
            TestClient(create_app(qa), base_url="http://127.0.0.1") as c:
        _wait_ready(c)
        yield c


def _wait_ready(c: TestClient | httpx.Client, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (health := c.get("/health").json())["status"] == "loading":
        assert time.monotonic() < deadline, "the model did not load"
        time.sleep(0.05)
    return health


def _ask(c: TestClient | httpx.Client, question: str, **extra: Any) -> dict[str, Any]:
    response = c.post("/ask", json={"question": question, **extra})
    assert response.status_code == 200, response.text
    return response.json()


# -- answers, citations and pages --------------------------------------------------------------


def test_answers_are_right_and_citations_open_the_page_with_exact_offsets(client: TestClient, corpus) -> None:
    _, where = corpus
    right = 0
    for question, (fact, path, page) in where.items():
        result = _ask(client, question, top_k=2, passages=5)
        top = result["answers"][0]
        c = top["citations"][0]
        shown = client.get(f"/documents/{c['document_id']}/pages/{c['page']}").json()
        assert (shown["path"], shown["page"]) == (c["path"], c["page"])
        # What the page highlights is exactly the answer.
        assert shown["text"][c["start"] - shown["start"]:c["end"] - shown["start"]] == top["text"]
        right += (top["text"], c["path"], c["page"]) == (fact.value, path, page)
    assert right / len(where) >= 0.9, f"{right}/{len(where)} right"


def test_ask_json_is_the_cli_json(client: TestClient, index: Path, trained_model_dir: Path, corpus) -> None:
    question = next(q for q, (_, path, _) in corpus[1].items() if path == "atlas.pdf")
    served = _ask(client, question, top_k=2, passages=4, paths=["*.pdf"])
    out = CliRunner().invoke(cli, ["ask", question, "-i", str(index), "--model", str(trained_model_dir),
                                   "-n", "2", "-k", "4", "--path", "*.pdf", "--json"])
    assert out.exit_code == 0, out.output
    printed = json.loads(out.output)
    assert served.keys() == printed.keys()
    served.pop("timings"), printed.pop("timings")
    assert served == printed
    assert {c["path"] for a in served["answers"] for c in a["citations"]} == {"atlas.pdf"}


def test_search_and_health_json_are_the_cli_json(client: TestClient, index: Path, corpus) -> None:
    question = next(iter(corpus[1]))
    served = client.get("/search", params={"q": question, "k": 3}).json()
    out = CliRunner().invoke(cli, ["search", question, "-i", str(index), "-k", "3", "--json"])
    assert served == json.loads(out.output) and served["hits"]
    only = client.get("/search", params=[("q", question), ("path", "notes/*"), ("path", "nothing")]).json()
    assert {h["path"] for h in only["hits"]} <= {"notes/gamma.txt"}
    health = client.get("/health").json()
    info = CliRunner().invoke(cli, ["info", "-i", str(index), "--json"])
    assert health["status"] == "ready" and health["index"] == json.loads(info.output)


def test_documents_and_pages_come_from_the_index(client: TestClient, index: Path) -> None:
    docs = client.get("/documents").json()["documents"]
    assert [d["path"] for d in docs] == ["alpha.txt", "atlas.pdf", "beta.txt", "notes/gamma.txt"]
    atlas = next(d for d in docs if d["path"] == "atlas.pdf")
    assert atlas["pages"] == 3 and atlas["status"] == "indexed"
    with DocQA(index) as qa:
        text = qa.document_text("atlas.pdf")
    for n in (1, 2, 3):
        page = client.get(f"/documents/{atlas['id']}/pages/{n}").json()
        assert page["pages"] == 3 and text[page["start"]:page["start"] + len(page["text"])] == page["text"]
    assert page["start"] > 0


def test_abstaining_shows_the_closest_passages(index: Path, trained_model_dir: Path, corpus) -> None:
    with DocQA(index, model=str(trained_model_dir), threshold=1.01) as qa, \
            TestClient(create_app(qa), base_url="http://127.0.0.1") as c:
        result = _ask(c, next(iter(corpus[1])))
        assert result["abstained"] and result["answers"] == [] and result["passages"]
        assert _ask(c, "What is the zzyzx of qqxv?")["passages"] == []


# -- errors and caps ---------------------------------------------------------------------------


@pytest.mark.parametrize("method, url, body, status, words", [
    ("get", "/documents/9999/pages/1", None, 404, "no document 9999"),
    ("get", "/documents/1/pages/99", None, 404, "has no page 99"),
    ("get", "/documents/x/pages/1", None, 422, "document_id"),
    ("get", "/documents/..%2F..%2Fetc%2Fpasswd/pages/1", None, 404, "Not Found"),
    ("get", "/nowhere", None, 404, "Not Found"),
    ("post", "/ask", {"question": ""}, 400, "question is empty"),
    ("post", "/ask", {"question": "   "}, 400, "question is empty"),
    ("post", "/ask", {"question": "?! ..."}, 400, "nothing searchable"),
    ("post", "/ask", {"question": "x" * (MAX_QUESTION_CHARS + 1)}, 422, "question: String should have at most"),
    ("post", "/ask", {"question": "hi", "top_k": 0}, 422, "top_k"),
    ("post", "/ask", {"question": "hi", "topk": 2}, 422, "topk"),
    ("post", "/ask", {}, 422, "question: Field required"),
    ("get", "/search?q=", None, 400, "question is empty"),
    ("get", "/search?q=Zorbia&k=0", None, 422, "k:"),
])
def test_errors_are_json_with_a_message(client: TestClient, method: str, url: str, body: Any,
                                        status: int, words: str) -> None:
    response = client.request(method.upper(), url, json=body)
    assert response.status_code == status, response.text
    data = response.json()
    assert set(data) == {"error", "message"} and words in data["message"], data


def test_bad_json_and_big_bodies(client: TestClient) -> None:
    bad = client.post("/ask", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 422 and "JSON" in bad.json()["message"]
    big = json.dumps({"question": "x", "pad": "y" * 100_000}).encode()
    assert client.post("/ask", content=big, headers={"content-type": "application/json"}).status_code == 413
    # Without a Content-Length (chunked), the cap still holds.
    chunks = (big[i:i + 8192] for i in range(0, len(big), 8192))
    response = client.post("/ask", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "larger than 64 KB" in response.json()["message"]


def test_a_batch_with_a_bad_question_still_answers_the_others(index: Path, trained_model_dir: Path, corpus) -> None:
    good = list(corpus[1])[:3]
    # A long collection window puts all four questions in one batch.
    with DocQA(index, model=str(trained_model_dir)) as qa, \
            TestClient(create_app(qa, batch_wait_s=0.5), base_url="http://127.0.0.1") as c:
        _wait_ready(c)
        with ThreadPoolExecutor(4) as pool:
            bad = pool.submit(c.post, "/ask", json={"question": "?!"})
            answers = list(pool.map(lambda q: _ask(c, q), good))
        assert bad.result().status_code == 400
        assert [a["question"] for a in answers] == good and all(a["answers"] for a in answers)
        assert c.get("/health").json()["batching"]["largest"] == 4


def test_other_host_headers_are_refused(client: TestClient) -> None:
    """A web page the user visits could rebind its DNS name to 127.0.0.1 and read the documents."""
    response = client.get("/documents", headers={"host": "evil.example:8000"})
    assert response.status_code == 400 and "Host" in response.json()["message"]
    assert client.get("/health", headers={"host": "localhost:8000"}).status_code == 200
    assert [host_of(h) for h in ("[::1]:80", "LOCALHOST", "a.b:1")] == ["[::1]", "localhost", "a.b"]


# -- the page and the docs ---------------------------------------------------------------------


def test_page_is_self_contained_and_escapes_text(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<label for="question">' in page.text
    for asset in ("app.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    for file in (f for f in STATIC.iterdir() if f.is_file()):  # ours; pdfjs/ is vendored
        text = file.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, f"{file.name} loads something from the network"
    assert "innerHTML" not in (STATIC / "app.js").read_text(encoding="utf-8")
    schema = client.get("/openapi.json").json()
    assert {"/ask", "/search", "/documents", "/documents/{document_id}/pages/{number}", "/health"} <= set(schema["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()  # works offline
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/static-offline-docs/{asset}" in docs.text
        assert client.get(f"/static-offline-docs/{asset}").status_code == 200
    worker = client.get("/static/pdfjs/pdf.worker.min.mjs")
    assert worker.status_code == 200 and "javascript" in worker.headers["content-type"]


# -- the original file -------------------------------------------------------------------------


def test_the_original_file_is_streamed_by_id_with_ranges(client: TestClient, corpus) -> None:
    docs = {d["path"]: d for d in client.get("/documents").json()["documents"]}
    pdf = (corpus[0] / "atlas.pdf").read_bytes()
    whole = client.get(f"/documents/{docs['atlas.pdf']['id']}/file")
    assert whole.status_code == 200 and whole.content == pdf
    assert whole.headers["content-type"] == "application/pdf"
    assert whole.headers["content-disposition"].startswith("inline")
    assert whole.headers["x-content-type-options"] == "nosniff"
    assert "worker-src 'self'" in whole.headers["content-security-policy"]
    part = client.get(f"/documents/{docs['atlas.pdf']['id']}/file", headers={"range": "bytes=5-14"})
    assert part.status_code == 206 and part.content == pdf[5:15]
    assert part.headers["content-range"] == f"bytes 5-14/{len(pdf)}"
    text = client.get(f"/documents/{docs['alpha.txt']['id']}/file")
    assert text.headers["content-type"].startswith("text/plain") and text.content == (corpus[0] / "alpha.txt").read_bytes()
    page = client.get(f"/documents/{docs['atlas.pdf']['id']}/pages/1").json()
    assert page["kind"] == "pdf"


def test_a_file_changed_since_indexing_is_refused(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "docs"
    folder.mkdir()
    note = folder / "note.txt"
    note.write_text("The mascot of Brindleford is Ottervane.", encoding="utf-8")
    (folder / "page.html").write_text("<p>Hello <script>alert(1)</script></p>", encoding="utf-8")
    with DocQA(tmp_path / "f.db") as qa:
        qa.index([folder])
    with DocQA(tmp_path / "f.db") as qa, TestClient(create_app(qa), base_url="http://127.0.0.1") as c:
        ids = {d["path"]: d["id"] for d in c.get("/documents").json()["documents"]}
        url = f"/documents/{ids['note.txt']}/file"
        html = c.get(f"/documents/{ids['page.html']}/file")
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/plain")
        st = note.stat()
        os.utime(note, (st.st_atime, st.st_mtime + 5))  # touched: same bytes, still served
        assert c.get(url).status_code == 200
        note.write_text("The mascot of Brindleford is Ottervale.", encoding="utf-8")  # same size
        changed = c.get(url)
        assert changed.status_code == 409 and "has changed on disk" in changed.json()["message"]
        assert "\n" not in changed.json()["message"] and "docqa index" in changed.json()["message"]
        note.unlink()
        gone = c.get(url)
        assert gone.status_code == 409 and "no longer on disk" in gone.json()["message"]
        assert c.get("/documents/999/file").status_code == 404


# -- loading, failure, read-only ---------------------------------------------------------------


def test_questions_asked_while_the_model_loads_wait_for_it(index: Path, trained_model_dir: Path, corpus) -> None:
    question = next(iter(corpus[1]))
    gate = threading.Event()
    with DocQA(index, model=str(trained_model_dir)) as qa:
        reader = qa.reader
        load = reader.load
        reader.load = lambda: (gate.wait(30), load())[1]  # type: ignore[method-assign]
        with TestClient(create_app(qa), base_url="http://127.0.0.1") as c:
            health = c.get("/health").json()
            assert health["status"] == "loading" and "loading" in health["message"]
            with ThreadPoolExecutor(1) as pool:
                asked = pool.submit(_ask, c, question)
                time.sleep(0.3)
                assert not asked.done()
                assert c.get("/search", params={"q": question}).status_code == 200  # search does not wait
                gate.set()
                answered = asked.result(30)
                assert answered["question"] == question and answered["answers"]
            assert c.get("/health").json()["status"] == "ready"


def test_a_model_that_cannot_load_fails_asks_clearly_but_search_works(index: Path, tmp_path: Path) -> None:
    with DocQA(index, model=str(tmp_path / "no-such-model")) as qa, \
            TestClient(create_app(qa), base_url="http://127.0.0.1") as c:
        health = _wait_ready(c)
        assert health["status"] == "failed" and c.get("/health").status_code == 503
        response = c.post("/ask", json={"question": "What is the code of Zorbia?"})
        assert response.status_code == 503 and "no-such-model" in response.json()["message"]
        assert c.get("/search", params={"q": "code"}).status_code == 200


def test_the_server_never_writes_the_index(index: Path, trained_model_dir: Path, corpus) -> None:
    before = hashlib.sha256(index.read_bytes()).hexdigest()
    with DocQA(index, model=str(trained_model_dir)) as qa, \
            TestClient(create_app(qa), base_url="http://127.0.0.1") as c:
        _wait_ready(c)
        _ask(c, next(iter(corpus[1])))
        c.get("/documents")
        assert qa.store.readonly
    assert hashlib.sha256(index.read_bytes()).hexdigest() == before


def test_documents_indexed_while_serving_show_up(index: Path, tmp_path: Path) -> None:
    copy = tmp_path / "live.db"
    copy.write_bytes(index.read_bytes())
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "late.txt").write_text("The mascot of Brindleford is Ottervane.", encoding="utf-8")
    with DocQA(copy) as qa, TestClient(create_app(qa), base_url="http://127.0.0.1") as c:
        assert c.get("/search", params={"q": "Brindleford mascot"}).json()["hits"] == []
        with DocQA(copy) as writer:
            writer.index([tmp_path / "new"])
        hits = c.get("/search", params={"q": "Brindleford mascot"}).json()["hits"]
        # a second indexed folder: paths are shown relative to the folders' common parent
        assert len(hits) == 1 and hits[0]["path"].endswith("/new/late.txt")
        assert hits[0]["path"] in [d["path"] for d in c.get("/documents").json()["documents"]]


# -- many clients at once ----------------------------------------------------------------------


def test_load_200_requests_from_8_clients_all_right_and_batched(index: Path, trained_model_dir: Path, corpus) -> None:
    questions = list(corpus[1])
    with DocQA(index, model=str(trained_model_dir)) as qa, running(create_app(qa)) as url:
        with httpx.Client(base_url=url) as c:
            _wait_ready(c)
            expected = {q: _ask(c, q)["answers"][0]["text"] for q in questions}  # one at a time
        asked = [questions[i % len(questions)] for i in range(200)]

        def client(part: list[str]) -> list[tuple[str, int, str]]:
            with httpx.Client(base_url=url, timeout=60) as c:
                out = []
                for q in part:
                    r = c.post("/ask", json={"question": q})
                    out.append((q, r.status_code, r.json()["answers"][0]["text"] if r.status_code == 200 else r.text))
                return out

        with ThreadPoolExecutor(8) as pool:
            results = [r for part in pool.map(client, [asked[i::8] for i in range(8)]) for r in part]
        with httpx.Client(base_url=url) as c:
            batching = c.get("/health").json()["batching"]
    assert len(results) == 200 and all(status == 200 for _, status, _ in results), results
    assert all(text == expected[q] for q, _, text in results)
    # 8 clients in flight: the worker read several questions per batch.
    assert batching["largest"] > 1 and batching["batches"] < batching["questions"], batching


# -- the command -------------------------------------------------------------------------------


def test_serve_warns_loudly_when_not_on_loopback(index: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import uvicorn

    from docqa import server

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    with DocQA(index) as qa:
        server.serve(qa, host="0.0.0.0", port=8123)
    assert "WARNING" in capsys.readouterr().err and seen["host"] == "0.0.0.0" and seen["port"] == 8123
    assert TestClient(seen["app"]).get("/", headers={"host": "192.168.1.5"}).status_code == 200
    assert all(exposure_warning(h) is None for h in ("127.0.0.1", "localhost", "::1", "127.0.0.2"))
    assert "anyone" in (exposure_warning("192.168.1.5") or "")


def test_serve_command_help_missing_index_and_missing_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    help_text = runner.invoke(cli, ["serve", "--help"]).output
    assert "--host" in help_text and "--port" in help_text and "--model" in help_text
    missing = runner.invoke(cli, ["serve", "-i", str(tmp_path / "none.db")])
    assert missing.exit_code == 1 and "no index at" in missing.output
    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.delitem(sys.modules, "docqa.server")
    out = runner.invoke(cli, ["serve", "-i", str(tmp_path / "none.db")])
    assert out.exit_code == 1 and out.output.strip().count("\n") == 0
    assert "pip install 'docqa[server]'" in out.output


def test_docqa_help_imports_neither_fastapi_nor_torch() -> None:
    code = ("import sys; from click.testing import CliRunner; from docqa.cli import cli; "
            "assert CliRunner().invoke(cli, ['--help']).exit_code == 0; "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
