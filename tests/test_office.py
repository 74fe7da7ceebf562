"""Word, PowerPoint and EPUB files built here with their own libraries (python-docx, python-pptx,
ebooklib): text in reading order, pages where the issue says they are, answers that cite the
right page, slide or chapter, and a status for broken and protected files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from tinymodels import FactGenerator

from docqa import DocQA
from docqa.extract import extract

docx = pytest.importorskip("docx")
pptx = pytest.importorskip("pptx")
epub = pytest.importorskip("ebooklib.epub")


def write_docx(path: Path, pages: list[list[str]], *, table: list[list[str]] | None = None) -> Path:
    """One heading and its paragraphs per page, pages separated by hard page breaks; ``table``
    (rows of cells) goes after the first page's paragraphs."""
    from docx.enum.text import WD_BREAK

    document = docx.Document()
    for number, paragraphs in enumerate(pages, 1):
        if number > 1:
            document.paragraphs[-1].add_run().add_break(WD_BREAK.PAGE)
        document.add_heading(f"Part {number}", level=1)
        for text in paragraphs:
            document.add_paragraph(text)
        if number == 1 and table:
            grid = document.add_table(rows=len(table), cols=len(table[0]))
            for r, row in enumerate(table):
                for c, text in enumerate(row):
                    grid.cell(r, c).text = text
            document.add_paragraph("After the table.")
    document.save(path)
    return path


def write_pptx(path: Path, slides: list[tuple[str, str, str]]) -> Path:
    """(title, body, notes) per slide."""
    deck = pptx.Presentation()
    for title, body, notes in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    deck.save(path)
    return path


def test_a_footer_on_every_slide_is_kept_on_the_first_only(tmp_path: Path) -> None:
    topics = ["Why we are here", "What we sold", "What comes next", "Who to ask"]
    path = write_pptx(tmp_path / "deck.pptx", [(f"Part {n}", f"{topic}\nAcme Corp, internal use only", "")
                                               for n, topic in enumerate(topics, 1)])
    pages = extract(path).pages
    assert pages[0] == "Part 1\n\nWhy we are here\nAcme Corp, internal use only"
    assert list(pages[1:]) == [f"Part {n}\n\n{topic}" for n, topic in enumerate(topics[1:], 2)]


def write_epub(path: Path, chapters: list[str]) -> Path:
    book = epub.EpubBook()
    book.set_identifier("docqa-test")
    book.set_title("A test book")
    book.set_language("en")
    items = []
    for number, text in enumerate(chapters, 1):
        item = epub.EpubHtml(title=f"Chapter {number}", file_name=f"chap_{number}.xhtml", lang="en")
        paragraphs = "".join(f"<p>{p}</p>" for p in text.split("\n\n"))
        item.content = f"<html><body><h1>Chapter {number}</h1>{paragraphs}</body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]  # the navigation document first, as ebooklib's examples do
    epub.write_epub(str(path), book)
    return path


def test_docx_paragraphs_headings_and_tables_in_reading_order_split_at_page_breaks(tmp_path: Path) -> None:
    path = write_docx(tmp_path / "report.docx", [["First paragraph.", "Second paragraph."], ["Page two text."]],
                      table=[["Name", "Role"], ["Ada", "Engineer"]])
    result = extract(path)
    assert result.status == "ok" and result.kind == "docx"
    assert result.pages == (
        "Part 1\n\nFirst paragraph.\n\nSecond paragraph.\n\nName Role\n\nAda Engineer\n\nAfter the table.",
        "Part 2\n\nPage two text.",
    )


def test_a_page_break_inside_a_paragraph_splits_it_and_two_breaks_make_a_blank_page(tmp_path: Path) -> None:
    from docx.enum.text import WD_BREAK

    document = docx.Document()
    paragraph = document.add_paragraph("Before the break.")
    paragraph.add_run().add_break(WD_BREAK.PAGE)
    paragraph.add_run("After the break.")
    paragraph.add_run().add_break(WD_BREAK.PAGE)
    paragraph.add_run().add_break(WD_BREAK.PAGE)
    paragraph.add_run("After a blank page.")
    document.save(tmp_path / "breaks.docx")
    assert extract(tmp_path / "breaks.docx").pages == ("Before the break.", "After the break.", "", "After a blank page.")


def test_pptx_one_page_per_slide_with_its_notes(tmp_path: Path) -> None:
    path = write_pptx(tmp_path / "deck.pptx", [("Opening", "Why we are here", "Say hello first."),
                                               ("Empty", "", ""), ("Results", "Sales rose", "")])
    result = extract(path)
    assert result.status == "ok" and result.kind == "pptx"
    assert result.pages == ("Opening\n\nWhy we are here\n\nSay hello first.", "Empty", "Results\n\nSales rose")


def test_epub_one_page_per_chapter_in_spine_order_without_the_navigation(tmp_path: Path) -> None:
    path = write_epub(tmp_path / "book.epub", ["It was a dark night.\n\nThe wind rose.", "Morning came."])
    result = extract(path)
    assert result.status == "ok" and result.kind == "epub"
    assert result.pages == ("Chapter 1\n\nIt was a dark night.\n\nThe wind rose.", "Chapter 2\n\nMorning came.")


@pytest.mark.parametrize("suffix", [".docx", ".pptx", ".epub"])
def test_broken_files_are_corrupt_with_one_line(tmp_path: Path, suffix: str) -> None:
    good = {".docx": lambda p: write_docx(p, [["text"]]), ".pptx": lambda p: write_pptx(p, [("t", "b", "")]),
            ".epub": lambda p: write_epub(p, ["text"])}[suffix](tmp_path / f"good{suffix}")
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    not_zip = tmp_path / f"text{suffix}"
    not_zip.write_text("just some text, not a document")
    missing_part = tmp_path / f"hollow{suffix}"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(missing_part, "w") as dst:
        for item in src.infolist():
            if not item.filename.endswith((".xml", ".xhtml", ".opf")) or item.filename.startswith("[Content"):
                dst.writestr(item, src.read(item))
    for path in (truncated, not_zip, missing_part, tmp_path / f"empty{suffix}"):
        path.touch()
        result = extract(path)
        assert result.status == "corrupt", (path.name, result)
        assert result.message.startswith("corrupt ") and "\n" not in result.message and "check that it opens" in result.message
    assert "not a ZIP archive" in extract(not_zip).message


def test_password_protected_office_files_and_drm_epubs_are_encrypted(tmp_path: Path) -> None:
    # What Office writes for a password-protected file: an OLE compound file with an EncryptedPackage.
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100 + "EncryptedPackage".encode("utf-16-le") + b"\x00" * 100
    for suffix in (".docx", ".pptx"):
        (tmp_path / f"locked{suffix}").write_bytes(ole)
        result = extract(tmp_path / f"locked{suffix}")
        assert result.status == "encrypted" and "password-protected" in result.message
    book = write_epub(tmp_path / "drm.epub", ["Secret chapter."])
    with zipfile.ZipFile(book, "a") as archive:
        archive.writestr("META-INF/encryption.xml", '<encryption><EncryptedData><CipherData>'
                         '<CipherReference URI="EPUB/chap_1.xhtml"/></CipherData></EncryptedData></encryption>')
    result = extract(book)
    assert result.status == "encrypted" and "DRM" in result.message


def test_answers_cite_the_right_page_slide_and_chapter(trained_model_dir: Path, tmp_path: Path) -> None:
    gen = FactGenerator(seed=23)
    docs = tmp_path / "docs"
    docs.mkdir()
    texts = [[gen.passage(n_facts=2) for _ in range(2)] for _ in range(3)]
    write_docx(docs / "report.docx", [[p.text] for p in texts[0]])
    write_pptx(docs / "deck.pptx", [("Slide", texts[1][0].text, ""), ("Slide", "Nothing here", texts[1][1].text)])
    write_epub(docs / "book.epub", [p.text for p in texts[2]])
    where = {fact.question: (fact.value, name, number)
             for name, passages in zip(("report.docx", "deck.pptx", "book.epub"), texts)
             for number, passage in enumerate(passages, 1) for fact in passage.facts}
    with DocQA(tmp_path / "i.db", model=str(trained_model_dir)) as qa:
        report = qa.index([docs])
        assert report.added == 3 and report.failed == 0
        results = qa.ask_batch(list(where), top_k=1)
        for (value, name, number), result in zip(where.values(), results):
            citation = result.answers[0].citations[0]
            assert (result.answers[0].text, citation.path, citation.page) == (value, name, number)
        assert qa.info().pages_by_kind == {"docx": 2, "epub": 2, "pptx": 2}
