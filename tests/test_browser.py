"""The page of `docqa serve` in a real browser: headless Chromium driven by Playwright.

A user types a question, sees the right answer with its citation, opens the cited page and sees
the answer highlighted; for a PDF too (page 2, where offsets start after page 1). One document is
hostile (HTML and script in its text) and has characters outside the BMP before the answer, so
the page must escape text and map Python's code-point offsets onto JavaScript strings.
Screenshots go to ``artifacts/`` (printed; ``-s`` shows the paths).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("no /usr/bin/chromium: `apt-get install chromium` to run the browser test",
                allow_module_level=True)
pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'docqa[server]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from pdfgen import write_pdf  # noqa: E402
from tinymodels import Fact, FactGenerator  # noqa: E402

from docqa import DocQA  # noqa: E402
from docqa.server import create_app, running  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
HOSTILE = ('<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script> '
           "Field notes 𝔄𝔱𝔩𝔞𝔰 😀🦜 (marked with 𝑥).")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path) -> Iterator[tuple[str, Fact, Fact]]:
    """A served index of a hostile text file and a 2-page PDF; yields (url, text fact, PDF page-2 fact)."""
    folder = tmp_path_factory.mktemp("site")
    gen = FactGenerator(seed=5)
    notes = gen.passage(n_facts=3)
    (folder / "field notes.txt").write_text(HOSTILE + "\n\n" + notes.text, encoding="utf-8")
    pages = [gen.passage(n_facts=3) for _ in range(2)]
    write_pdf(folder / "atlas.pdf", [p.text for p in pages])
    with DocQA(tmp_path_factory.mktemp("idx") / "site.db", model=str(trained_model_dir)) as qa:
        assert qa.index([folder]).failed == 0
        right = [f for f in notes.facts if qa.ask(f.question).answers[0].text == f.value]
        on_page_2 = [f for f in pages[1].facts if qa.ask(f.question).answers[0].text == f.value]
        assert right and on_page_2, "the tiny model got every fact wrong"
        with running(create_app(qa)) as url:
            yield url, right[0], on_page_2[0]


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


def test_ask_see_the_answer_open_the_highlighted_page(site, browser) -> None:
    url, fact, pdf_fact = site
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(url)
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

    # A PDF's second page: the highlight maps through the page's start offset.
    page.fill("#question", pdf_fact.question)
    page.click("#ask-button")
    expect(page.locator(".answer-text").first).to_have_text(pdf_fact.value, timeout=30_000)
    page.locator(".answer").first.locator("button.cite").first.click()
    expect(page.locator("#viewer-title")).to_have_text("atlas.pdf, page 2 of 2")
    expect(page.locator("#viewer-text mark")).to_have_text(pdf_fact.value)
    page.click("#viewer-close")

    # Nothing matches: say so plainly.
    page.fill("#question", "What is the zzyzx of Qqxvvb?")
    page.keyboard.press("Enter")
    expect(page.locator(".abstain")).to_have_text("Not found in the indexed documents.", timeout=30_000)
    assert page.title() != "pwned" and problems == [], problems
    page.close()


def test_the_page_shows_the_error_of_an_empty_question(site, browser) -> None:
    url, _, _ = site
    page = browser.new_page()
    page.goto(url)
    page.fill("#question", "?!")
    page.keyboard.press("Enter")
    alert = page.locator("[role=alert]")
    sync_api.expect(alert).to_contain_text("nothing searchable", timeout=30_000)
    page.close()

