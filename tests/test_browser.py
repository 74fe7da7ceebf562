"""The page of `docqa serve` in a real browser: headless Chromium driven by Playwright.

A user types a question, sees the right answer with its citation, opens the cited page and sees
the answer highlighted. A text file shows its text; a PDF page is drawn by pdf.js with the answer
marked in its text layer (page 2, where offsets start after page 1; and a two-column page where
the answer is hyphenated across a line end in the right column). One document is hostile (HTML
and script in its text) and has characters outside the BMP before the answer, so the page must
escape text and map Python's code-point offsets onto JavaScript strings.
Screenshots go to ``artifacts/`` (printed; ``-s`` shows the paths).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium: `apt-get install chromium` to run the browser test",
                allow_module_level=True)
pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'docqa[server]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from pdfgen import write_pdf  # noqa: E402
from pypdf import PdfReader, PdfWriter  # noqa: E402
from tinymodels import Fact, FactGenerator, FactPassage  # noqa: E402

from docqa import DocQA  # noqa: E402
from docqa.server import create_app, running  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
HOSTILE = ('<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script> '
           "Field notes 𝔄𝔱𝔩𝔞𝔰 😀🦜 (marked with 𝑥).")


def _hyphenated(passage: FactPassage, facts: list[Fact]) -> str:
    """The passage's text with each of ``facts``' values split at a line end: "Otter-\nvane"."""
    text = passage.text
    for fact in sorted(facts, key=passage.answer_start, reverse=True):
        cut = passage.answer_start(fact) + len(fact.value) // 2
        text = text[:cut] + "-\n" + text[cut:]
    return text


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path) -> Iterator[tuple[str, Fact, Fact, Fact, Fact, Fact]]:
    """A served index of a hostile text file, a 2-page PDF, a two-column PDF, a page turned
    90° and a two-column PDF drawn row by row; yields (url, text fact, PDF page-2 fact, fact
    hyphenated across a line in the right column, fact on the turned page, the same kind of
    fact on the page drawn row by row)."""
    folder = tmp_path_factory.mktemp("site")
    gen = FactGenerator(seed=5)
    notes = gen.passage(n_facts=3)
    (folder / "field notes.txt").write_text(HOSTILE + "\n\n" + notes.text, encoding="utf-8")
    pages = [gen.passage(n_facts=3) for _ in range(2)]
    write_pdf(folder / "atlas.pdf", [p.text for p in pages])
    paper = gen.passage(n_facts=12)
    late = [f for f in paper.facts if paper.answer_start(f) > len(paper.text) * 0.6][-2:]
    write_pdf(folder / "paper.pdf", [_hyphenated(paper, late)], columns=2)
    # The same kind of page drawn row by row: indexed column by column (docqa.columns), while
    # pdf.js's text layer still runs one line of each column in turn.
    rows = gen.passage(n_facts=12)
    rows_late = [f for f in rows.facts if rows.answer_start(f) > len(rows.text) * 0.6][-2:]
    write_pdf(folder / "rows.pdf", [_hyphenated(rows, rows_late)], columns=2, row_by_row=True)
    turned = gen.passage(n_facts=3)
    writer = PdfWriter(clone_from=PdfReader(write_pdf(tmp_path_factory.mktemp("flat") / "flat.pdf", [turned.text])))
    writer.pages[0].rotate(90)  # /Rotate 90: drawn sideways, text unchanged
    writer.write(folder / "turned.pdf")
    with DocQA(tmp_path_factory.mktemp("idx") / "site.db", model=str(trained_model_dir)) as qa:
        assert qa.index([folder]).failed == 0
        assert all(f.value in qa.document_text("paper.pdf") for f in late)  # the hyphen is rejoined
        assert all(f.value in qa.document_text("rows.pdf") for f in rows_late)  # ... and the columns untangled

        def right(facts: Iterable[Fact]) -> Fact:
            good = [f for f in facts if qa.ask(f.question).answers[0].text == f.value]
            assert good, "the tiny model got every fact wrong"
            return max(good, key=lambda f: len(f.value))  # long: its marks have a shape to check

        facts = right(notes.facts), right(pages[1].facts), right(late), right(turned.facts), right(rows_late)
        with running(create_app(qa)) as url:
            yield (url, *facts)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _shot(page: object, name: str, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=full_page)  # type: ignore[attr-defined]
    print(f"screenshot: {path}")
    return path


def _watched_page(browser: object, url: str, height: int) -> tuple[object, list[str]]:
    """A new page at ``url`` whose console errors, page errors and dialogs land in the list."""
    page = browser.new_page(viewport={"width": 1000, "height": height})  # type: ignore[attr-defined]
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(url)
    return page, problems


def test_ask_see_the_answer_open_the_highlighted_page(site, browser) -> None:
    url, fact, pdf_fact, _, _, _ = site
    page, problems = _watched_page(browser, url, 800)
    expect = sync_api.expect
    expect(page.locator("#status")).to_contain_text("Ready", timeout=30_000)
    assert page.evaluate("document.activeElement.id") == "question"

    # Type a question and press Enter: the right answer, its confidence and its citation.
    page.keyboard.type(fact.question)
    page.keyboard.press("Enter")
    first = page.locator(".answer").first
    expect(first.locator(".answer-text")).to_have_text(fact.value, timeout=30_000)
    expect(first.locator(".confidence")).to_contain_text("% confidence")
    expect(first.locator(".context mark")).to_have_text(fact.value)
    cite = first.locator("button.cite").first
    expect(cite).to_have_text("field notes.txt, page 1")
    _shot(page, "browser-answers.png")

    # Open the cited page: the highlight is exactly the answer, the hostile text stays text.
    cite.click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(page.locator("#viewer-text mark")).to_have_text(fact.value)
    expect(page.locator("#viewer-title")).to_have_text("field notes.txt, page 1 of 1")
    assert "<script>document.title" in page.locator("#viewer-text").inner_text()
    assert page.locator("#viewer-text img, #viewer-text script").count() == 0
    assert page.evaluate("document.activeElement.id") == "viewer-title"
    _shot(page, "browser-page.png", full_page=False)  # the modal's backdrop covers the viewport only

    # Escape closes it and gives focus back to the citation.
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    assert page.evaluate("document.activeElement.classList.contains('cite')")

    # A PDF's second page, drawn: the highlight maps through the page's start offset.
    _open_pdf_citation(page, pdf_fact, "atlas.pdf, page 2 of 2")
    _shot(page, "browser-pdf-page.png", full_page=False)
    # The text view is one click (or T) away; the keyboard turns pages and zooms.
    page.click("#viewer-mode")
    expect(page.locator("#viewer-text mark")).to_have_text(pdf_fact.value)
    expect(page.locator("#viewer-pdf")).to_be_hidden()
    page.keyboard.press("t")
    expect(page.locator("#viewer .textLayer mark")).to_have_text(pdf_fact.value)
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#viewer-title")).to_have_text("atlas.pdf, page 1 of 2")
    expect(page.locator("#viewer .textLayer mark")).to_have_count(0)
    page.keyboard.press("ArrowRight")
    expect(page.locator("#viewer .textLayer mark")).to_have_text(pdf_fact.value)
    width = page.locator("#viewer-canvas").bounding_box()["width"]
    page.keyboard.press("+")
    deadline = time.monotonic() + 10
    while page.locator("#viewer-canvas").bounding_box()["width"] < width * 1.1:  # CSP: no wait_for_function
        assert time.monotonic() < deadline, "+ did not zoom in"
        time.sleep(0.05)
    expect(page.locator("#viewer .textLayer mark")).to_have_text(pdf_fact.value)
    _marks_lie_on_the_glyphs(page)
    page.click("#viewer-close")

    # Nothing matches: say so plainly.
    page.fill("#question", "What is the zzyzx of Qqxvvb?")
    page.keyboard.press("Enter")
    expect(page.locator(".abstain")).to_have_text("Not found in the indexed documents.", timeout=30_000)
    assert page.title() != "pwned" and problems == [], problems
    page.close()


def _open_pdf_citation(page: object, fact: Fact, title: str) -> list[dict[str, float]]:
    """Ask ``fact``'s question, open its PDF citation; returns the marks' boxes (checked)."""
    expect = sync_api.expect
    page.fill("#question", fact.question)  # type: ignore[attr-defined]
    page.click("#ask-button")  # type: ignore[attr-defined]
    answer = page.locator(".answer").first  # type: ignore[attr-defined]
    expect(answer.locator(".answer-text")).to_have_text(fact.value, timeout=30_000)
    answer.locator("button.cite").first.click()
    expect(page.locator("#viewer-title")).to_have_text(title)  # type: ignore[attr-defined]
    marks = page.locator("#viewer .textLayer mark")  # type: ignore[attr-defined]
    expect(marks.first).to_be_visible(timeout=30_000)
    expect(page.locator("#viewer-text")).to_be_hidden()  # type: ignore[attr-defined]
    assert "".join(marks.all_text_contents()) == fact.value
    return _marks_lie_on_the_glyphs(page)


def _marks_lie_on_the_glyphs(page: object) -> list[dict[str, float]]:
    """Every mark is inside the drawn canvas, over ink (dark pixels of the glyphs), and the
    canvas is not blank; returns the marks' boxes relative to the canvas."""
    found = page.evaluate("""() => {
        const canvas = document.getElementById('viewer-canvas');
        const box = canvas.getBoundingClientRect();
        const ratio = canvas.width / box.width;
        const ctx = canvas.getContext('2d');
        const ink = (x, y, w, h) => {
            const d = ctx.getImageData(Math.round(x * ratio), Math.round(y * ratio),
                                       Math.max(1, Math.round(w * ratio)), Math.max(1, Math.round(h * ratio))).data;
            let dark = 0;
            for (let i = 0; i < d.length; i += 4) dark += d[i + 3] > 0 && d[i] + d[i + 1] + d[i + 2] < 384;
            return dark / (d.length / 4);
        };
        const marks = [...document.querySelectorAll('#viewer .textLayer mark')].map((m) => {
            const r = m.getBoundingClientRect();
            return {x: r.left - box.left, y: r.top - box.top, w: r.width, h: r.height,
                    ink: ink(r.left - box.left, r.top - box.top, r.width, r.height)};
        });
        return {width: box.width, height: box.height, page: ink(0, 0, box.width, box.height), marks};
    }""")
    assert found["marks"], "no mark on the page"
    assert 0 < found["page"] < 0.5, f"the canvas looks blank or black: {found['page']}"
    for m in found["marks"]:
        assert m["w"] > 2 and m["h"] > 2, m
        assert -1 <= m["x"] and m["x"] + m["w"] <= found["width"] + 1, (m, found["width"])
        assert -1 <= m["y"] and m["y"] + m["h"] <= found["height"] + 1, (m, found["height"])
        assert m["ink"] > 0.05, f"no glyphs under the mark: {m}"
    return [dict(m, page_width=found["width"]) for m in found["marks"]]


def test_an_answer_wrapped_across_lines_in_the_right_column_or_on_a_turned_page_is_marked_on_its_glyphs(
        site, browser) -> None:
    url, _, _, wrapped, sideways, rows = site
    page, problems = _watched_page(browser, url, 900)
    sync_api.expect(page.locator("#status")).to_contain_text("Ready", timeout=30_000)
    marks = _open_pdf_citation(page, wrapped, "paper.pdf, page 1 of 1")
    assert len(marks) == 2, marks  # "Otter-" ends one line, "vane" starts the next
    assert marks[1]["y"] > marks[0]["y"] + marks[0]["h"] / 2, "the second half is on the next line"
    assert all(m["x"] > m["page_width"] / 2 for m in marks), "the answer is in the right column"
    _shot(page, "browser-pdf-two-columns.png", full_page=False)
    page.click("#viewer-close")
    (mark,) = _open_pdf_citation(page, sideways, "turned.pdf, page 1 of 1")
    assert mark["h"] > 2 * mark["w"], f"the text runs down the turned page: {mark}"
    _shot(page, "browser-pdf-turned.png", full_page=False)
    page.click("#viewer-close")
    # Drawn row by row: the two halves are far apart in the text layer, still both marked.
    marks = _open_pdf_citation(page, rows, "rows.pdf, page 1 of 1")
    assert len(marks) == 2 and marks[1]["y"] > marks[0]["y"] + marks[0]["h"] / 2, marks
    assert all(m["x"] > m["page_width"] / 2 for m in marks), "the answer is in the right column"
    assert problems == [], problems
    page.close()


def test_the_page_shows_the_error_of_an_empty_question(site, browser) -> None:
    url, _, _, _, _, _ = site
    page = browser.new_page()
    page.goto(url)
    page.fill("#question", "?!")
    page.keyboard.press("Enter")
    alert = page.locator("[role=alert]")
    sync_api.expect(alert).to_contain_text("nothing searchable", timeout=30_000)
    page.close()

