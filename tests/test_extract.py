"""extract.py: every shared real PDF gets its right status and text; hostile generated files
(random bytes, broken encodings, a 50 MB line, huge scripts) come back as a status, never an
exception."""

from __future__ import annotations

import codecs
import random
import re
import shutil
import time
import unicodedata
from functools import cache
from pathlib import Path

import pytest
from conftest import PDFS
from hypothesis import given, settings
from hypothesis import strategies as st
from pdfgen import write_pdf
from pypdf import PdfReader, PdfWriter

from docqa import columns
from docqa.furniture import strip_furniture
from docqa.extract import SUPPORTED, clean_text, extract, kind_of
from docqa.types import PAGE_BREAK, PROBLEM_STATUSES, Extraction, OcrOptions

# Passwords from SOURCES.md (the source repositories' own tests).
PASSWORDS = {
    "encrypted/r6-both-passwords.pdf": "foo",
    "encrypted/r2-user-password.pdf": "asdfzxcv",
    "encrypted/libreoffice-writer-password.pdf": "openpassword",
    "encrypted/encrypted-file.pdf": "test",
    "encrypted/password-example.pdf": "test",
}

# Every file under PDFS: (status without a password, what the text holds once opened, or what
# the message says for a problem).
EXPECTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "encrypted/dmca.pdf": ("ok", ("THE DIGITAL MILLENNIUM COPYRIGHT ACT OF 1998", "Copyright Office")),
    "encrypted/encrypted-file.pdf": ("encrypted", ("Example",)),
    "encrypted/libreoffice-writer-password.pdf": ("encrypted", ("Lorem ipsum dolor sit amet",)),
    "encrypted/password-example.pdf": ("encrypted", ("Backup4all", "network environment")),
    "encrypted/r2-user-password.pdf": ("encrypted", ("pdf encryption test",)),
    "encrypted/r6-both-passwords.pdf": ("encrypted", ("pdf encryption test",)),
    "encrypted/r6-owner-password.pdf": ("ok", ("pdf encryption test",)),
    "malformed/crazyones.truncated-6000B.pdf": ("corrupt", ("Stream has ended unexpectedly",)),
    "malformed/empty.pdf": ("corrupt", ("empty (0 bytes)",)),
    "malformed/issue-1061.truncated-half.pdf": ("corrupt", ("Invalid object in /Pages",)),
    # pypdf recovers both: the bad geometry does not matter, the broken stream yields a part.
    "malformed/malformed-from-issue-932.pdf": ("ok", ("2021 3 31",)),
    "malformed/zen_of_python_corrupted.pdf": ("ok", ("Beautiful is better than ugly.", "Readability counts.")),
    "malformed/simple1.pdf": ("corrupt", ("startxref not found",)),
    "multi_column/i1040nr.pdf": ("ok", ("Instructions for Form 1040NR", "Internal Revenue Service")),
    "multi_column/issue-1061-colour-space-stack.pdf": ("ok", ("Individual Differential Privacy", "differential privacy")),
    "multi_column/issue-982-example.pdf": ("ok", ("Creativity in Machine Learning", "Convolutional Neural Networks")),
    "multi_column/naacl06-shinyama.pdf": ("ok", ("Preemptive Information Extraction", "Unrestricted Relation Discovery")),
    "non_latin/issue-67-example.pdf": ("ok", ("东北电气发展股份有限公司", "第一季度报告")),
    "non_latin/jo.pdf": ("ok", ()),  # pypdf decodes its vertical Japanese font into mojibake
    "non_latin/multilang.pdf": ("ok", ("Hello World", "Привет, мир", "你好世界", "こんにちは世界")),
    "scanned/175.pdf": ("ok", ("ACCESSORY KIT NO. AK-120A", "Oversize Tire Accessory Kit", "cotter pins")),
    "scanned/Seige_of_Vicksburg_Sample_OCR.pdf": ("ok", ("THE SIEGE OF VICKSBURG", "Johnston is coming")),
    "text/2023-06-20-PV.pdf": ("ok", ("PROCÈS-VERBAL", "Séance publique", "démolition")),
    "text/GeoBase_NHNC1_Data_Model_UML_EN.pdf": ("ok", ("National Hydro Network", "Data Model")),
    "text/crazyones.pdf": ("ok", ("Here", "misfits", "differently")),
}

CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # anything but \n


def need_pdfs() -> None:
    if not PDFS.is_dir():
        pytest.skip(f"{PDFS} is absent (the shared test material sits beside the project)")


@cache
def shared(name: str) -> Extraction:
    """A shared PDF extracted without a password (once per test run)."""
    need_pdfs()
    return extract(PDFS / name)


def assert_clean_pages(pages: tuple[str, ...]) -> None:
    for page in pages:
        assert PAGE_BREAK not in page and not CONTROL.search(page)
        assert page == page.strip() and "  " not in page and "\n\n\n" not in page


# -- the shared real PDFs -------------------------------------------------------------------


def test_the_table_covers_every_shared_pdf() -> None:
    need_pdfs()
    assert {str(p.relative_to(PDFS)) for p in PDFS.rglob("*.pdf")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_pdf_gets_its_status_and_text(name: str) -> None:
    need_pdfs()
    status, says = EXPECTED[name]
    result = shared(name)
    assert (result.kind, result.status) == ("pdf", status), result.message
    if status == "encrypted":
        assert result.pages == () and "--password" in result.message
        result = extract(PDFS / name, passwords=["not it", PASSWORDS[name]])
        assert result.status == "ok", result.message
    if result.status == "ok":
        assert result.pages and any(result.pages)
        assert_clean_pages(result.pages)
        for phrase in says:
            assert phrase in result.text, phrase
    else:
        assert status in PROBLEM_STATUSES and result.pages == ()
        assert "\n" not in result.message
        for phrase in says:
            assert phrase in result.message


def test_wrong_passwords_are_reported() -> None:
    need_pdfs()
    one = extract(PDFS / "encrypted/r6-both-passwords.pdf", passwords=["bad"])
    two = extract(PDFS / "encrypted/r6-both-passwords.pdf", passwords=["bad", "worse"])
    assert one.status == two.status == "encrypted"
    assert "the password given" in one.message and "none of the 2 passwords" in two.message


def test_the_owner_password_opens_too() -> None:
    need_pdfs()
    result = extract(PDFS / "encrypted/r6-both-passwords.pdf", passwords=["bar"])
    assert result.status == "ok" and "pdf encryption test" in result.text


def test_crazyones_matches_its_expected_text_after_normalisation() -> None:
    need_pdfs()
    expected = (PDFS / "text/crazyones.expected.txt").read_text(encoding="utf-8")
    assert "\ufb01" in expected  # the raw pypdf text has the ligature...
    (page,) = shared("text/crazyones.pdf").pages
    assert page == clean_text(expected)
    assert "misfits" in page and "\ufb01" not in page  # ...the cleaned one does not


def test_ligatures_become_letters_in_a_real_paper() -> None:
    need_pdfs()
    text = shared("multi_column/issue-1061-colour-space-stack.pdf").text
    assert "\ufb00" not in text and "\ufb01" not in text
    assert "differential" in text and "significant" in text


def test_non_latin_text_survives() -> None:
    need_pdfs()
    chinese = shared("non_latin/issue-67-example.pdf").text
    assert sum("\u4e00" <= c <= "\u9fff" for c in chinese) > 3000
    multilang = shared("non_latin/multilang.pdf").text
    assert "สวัสดีชาวโลก" in multilang and "مرحبا بالعالم" in multilang


def test_the_shared_scan_is_read_by_ocr_into_its_own_pages() -> None:
    need_pdfs()
    if shutil.which("tesseract") is None:
        pytest.skip("Tesseract is not installed (apt install tesseract-ocr tesseract-ocr-eng; .ci/run does)")
    result = shared("scanned/175.pdf")  # a 1974 typewritten service bulletin, 200 dpi JPEG scans
    assert result.ocr_pages == (1, 2) and result.message == ""
    first, second = result.pages
    assert "Oversize Tire Accessory Kit" in first and "MODELS AFFECTED: All Model AA-1 and AA-1A" in first
    assert "Page 2 of 2" in second and "install one (1) 6.00X6 Type III 4 ply tire" in second
    assert "Page 2 of 2" not in first


def test_multi_column_paper_reads_one_column_at_a_time() -> None:
    need_pdfs()
    text = shared("multi_column/issue-982-example.pdf").text
    # Plain mode keeps each column's sentences whole (layout mode would interleave them).
    assert "Instead of learning the full connection between the input layer and the first hidden layer" in text


def test_a_manual_drawn_row_by_row_across_its_columns_reads_column_by_column() -> None:
    need_pdfs()
    pages = shared("multi_column/i1040nr.pdf").pages
    # pypdf alone: "...connected with a U.S. trade or 3. For each such item, a plan administrator
    # for more information.business, it may not be..." (three columns, one line of each in turn).
    assert ("Interest, for example, may be effectively connected with a U.S. trade or business, "
            "it may not be, or it may be tax-exempt.") in pages[9]
    assert "Only the U.S. source income is included on line 8 as effectively connected wages." in pages[9]
    # Columns set close together stay apart (the next column's heading used to join this line)...
    assert "counting all the days of physical presence in 2007, but only 1/3 the number of days" in " ".join(
        pages[1].split())
    assert "\n\nWho Must File\nFile Form 1040NR if any of the" in pages[1]
    # ... and a bold run-in heading stays at the start of its paragraph.
    assert "Exception. You do not have to complete Form" in " ".join(pages[19].split())
    # The tax table is drawn row by row too, and read best that way: its rows stay whole.
    assert "At But Single Qualifying Married At But Single Qualifying Married" in pages[42]


def test_generated_columns_drawn_row_by_row_come_back_in_reading_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paragraphs = [
        ("The committee met in the spring to review how the archive is organised, and it "
         "decided that every record older than ten years would move to the basement store."),
        ("Visitors who need an old record fill in a request at the front desk; the clerk "
         "fetches the box within two working days and keeps it aside for a week."),
        ("Photographs are an exception: they stay upstairs in the climate room, because damp "
         "air in the basement would curl the prints and fade the colours within months."),
        ("Digital copies of the most requested maps were made last year, so most questions "
         "about boundaries can now be answered without touching the paper originals at all."),
    ]
    text = "\n\n".join(f"Section {n}. {paragraph}" for n, paragraph in enumerate(paragraphs * 2, 1))
    path = write_pdf(tmp_path / "rows.pdf", [text], columns=2, row_by_row=True)
    raw = PdfReader(path).pages[0].extract_text()
    assert raw.startswith("Section 1. The committee") and raw.split() != text.split()  # interleaved
    assert extract(path).pages[0].split() == clean_text(text).split()
    # Past its time, or on a page too big to lay out safely, pypdf's text stands.
    assert extract(path, deadline=time.monotonic()).pages[0] == clean_text(raw)
    monkeypatch.setattr(columns, "MAX_PAGE_CHARS", len(raw) - 1)
    assert extract(path).pages[0] == clean_text(raw)


def test_reading_order_reads_columns_within_sections_and_indented_lists_stay_in_their_column() -> None:
    box = columns.Box
    boxes = [
        box(300, 540, 700, "right column, first"),
        box(300, 540, 500, "right column, second"),
        box(72, 540, 760, "a heading across both columns"),
        box(84, 280, 560, "  an indented list item"),
        box(72, 280, 700, "left column, first"),
        box(84, 280, 520, "  another list item"),
        box(72, 280, 480, "left column, after the list"),
        box(72, 540, 300, "a wide table below both columns"),
        box(72, 280, 200, "left column under the table"),
        box(300, 540, 200, "right column under the table"),
    ]
    assert [b.text.strip() for b in columns.reading_order(boxes)] == [
        "a heading across both columns",
        "left column, first", "an indented list item", "another list item", "left column, after the list",
        "right column, first", "right column, second",
        "a wide table below both columns",
        "left column under the table", "right column under the table",
    ]


def test_a_page_whose_media_box_cannot_be_read_keeps_pypdfs_order() -> None:
    class Broken:
        @property
        def mediabox(self) -> None:
            raise ValueError("hostile /MediaBox")

    class Letter:
        mediabox = PdfWriter().add_blank_page(612, 792).mediabox

    runs = columns.Runs()
    runs.xs = [72.0, 318.0] * columns.MIN_PROSE_RUNS  # alternating columns
    assert runs.interleaved(Letter()) is True
    assert runs.interleaved(Broken()) is False


def test_a_table_drawn_row_by_row_keeps_its_rows(tmp_path: Path) -> None:
    rows = [f"{n:,} {n + 50:,} {n // 7:,} {n // 6:,}" for n in range(40_000, 42_000, 50)]
    path = write_pdf(tmp_path / "table.pdf", ["\n".join(rows)], columns=3, row_by_row=True)
    raw = PdfReader(path).pages[0].extract_text()
    assert extract(path).pages[0] == clean_text(raw)


# -- generated PDFs --------------------------------------------------------------------------


def test_generated_pages_come_back_page_by_page(tmp_path: Path) -> None:
    pages = [
        "First page. It talks about apples, e.g. the Granny Smith.",
        "",
        "Third page: café – “quotes” Ελληνικά Привет 你好 and the ﬁnal word.\n\nA second paragraph.",
    ]
    result = extract(write_pdf(tmp_path / "known.pdf", pages))
    assert result.status == "ok" and len(result.pages) == 3
    for written, read in zip(pages, result.pages):
        assert read.split() == clean_text(written).split()


def test_an_encrypted_generated_pdf_needs_its_password(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "secret.pdf", ["the secret text"], password="s3cret")
    assert extract(path).status == "encrypted"
    assert extract(path, passwords=["s3cret"]).pages == ("the secret text",)


def _break_content(data: bytes, pages: list[int]) -> bytes:
    """Give the content streams of ``pages`` (1-based) a filter pypdf does not know."""
    for number in pages:
        obj = b"%d 0 obj\n<< /Length" % (2 * number + 1)  # pdfgen: page n's stream is object 2n+1
        data = data.replace(obj, obj.replace(b"<< /Length", b"<</Filter/Bogus/Length"))
    return data


def test_an_encryption_scheme_pypdf_lacks_is_reported(tmp_path: Path) -> None:
    data = write_pdf(tmp_path / "plain.pdf", ["certificate-protected text"]).read_bytes()
    path = tmp_path / "pubsec.pdf"
    path.write_bytes(data.replace(b"trailer\n<<", b"trailer\n<< /Encrypt << /Filter /Adobe.PubSec /V 4 >>"))
    result = extract(path)
    assert result.status == "encrypted" and "only Standard PDF encryption handler" in result.message


def test_a_broken_page_keeps_the_other_pages(tmp_path: Path) -> None:
    good = write_pdf(tmp_path / "good.pdf", ["page one", "page two", "page three"]).read_bytes()
    path = tmp_path / "one-bad-page.pdf"
    path.write_bytes(_break_content(good, [2]))
    result = extract(path, ocr=OcrOptions("off"))
    assert result.status == "ok" and result.pages == ("page one", "", "page three")
    assert result.message.startswith("page 2 could not be read: ") and "Bogus" in result.message
    if shutil.which("tesseract"):  # pdfium draws the page pypdf cannot parse, and OCR reads it
        read = extract(path)
        assert read.pages == ("page one", "page two", "page three") and read.ocr_pages == (2,)
        assert read.message == ""


def test_no_readable_page_is_corrupt(tmp_path: Path) -> None:
    good = write_pdf(tmp_path / "good.pdf", ["page one", "page two"]).read_bytes()
    path = tmp_path / "all-bad.pdf"
    path.write_bytes(_break_content(good, [1, 2]))
    result = extract(path)
    assert result.status == "corrupt" and "no page could be read" in result.message


def test_a_pdf_without_pages_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "no-pages.pdf"
    PdfWriter().write(path)
    result = extract(path)
    assert (result.status, result.message) == ("empty", "the PDF has no pages")


def test_blank_pages_are_empty(tmp_path: Path) -> None:
    result = extract(write_pdf(tmp_path / "blank.pdf", ["", "   "]))
    assert result.status == "empty" and "OCR" in result.message


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes_named_pdf_are_corrupt(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "random.pdf"
    path.write_bytes(rng.randbytes(rng.randrange(1, 20_000)))
    result = extract(path)
    assert result.status == "corrupt" and result.message.startswith("corrupt PDF: not a PDF")


@pytest.mark.parametrize("seed", range(6))
def test_truncated_or_garbled_pdfs_never_raise(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    data = bytearray(write_pdf(tmp_path / "g.pdf", ["alpha beta", "gamma delta", "epsilon"]).read_bytes())
    if seed % 2:
        del data[rng.randrange(20, len(data)) :]
    for _ in range(seed * 3):
        data[rng.randrange(len(data))] = rng.randrange(256)
    path = tmp_path / "bad.pdf"
    path.write_bytes(bytes(data))
    result = extract(path)
    assert result.status in ("ok", "empty", "corrupt") and "\n" not in result.message
    assert_clean_pages(result.pages)


def test_unreadable_and_vanished_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "folder.pdf").mkdir()
    assert extract(tmp_path / "folder.pdf").message == "cannot read: Is a directory"
    gone = extract(tmp_path / "gone.txt")
    assert (gone.status, gone.message) == ("corrupt", "cannot read: No such file or directory")


def test_kinds_by_suffix(tmp_path: Path) -> None:
    assert kind_of(Path("a/B.PDF")) == "pdf" and kind_of(Path("x.Markdown")) == "md"
    assert kind_of(Path("x.htm")) == "html" and kind_of(Path("notes.text")) == "txt"
    assert kind_of(Path("x.DOCX")) == "docx" and kind_of(Path("s.pptx")) == "pptx" and kind_of(Path("b.epub")) == "epub"
    assert kind_of(Path("x.doc")) is None and kind_of(Path("README")) is None
    assert set(SUPPORTED.values()) == {"pdf", "docx", "pptx", "epub", "txt", "md", "html"}
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    result = extract(tmp_path / "x.xlsx")
    assert result.status == "unsupported" and ".xlsx" in result.message


# -- text files -----------------------------------------------------------------------------


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_invalid_utf8_keeps_the_good_text(tmp_path: Path) -> None:
    result = extract(write(tmp_path, "bad.txt", "café déjà vu ".encode() * 20 + b"\xff\xfe\xc3 broken \x80 end"))
    assert result.status == "ok"
    assert "café déjà vu" in result.text and "broken" in result.text and "\ufffd" in result.text


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("latin-1", "Le conseil municipal s'est réuni à la mairie. Les élèves ont présenté leur thèse. " * 5),
        ("latin-1", "Crème brûlée"),
        ("cp1252", "Crème"),
        ("cp1252", "Café déjà vu – “quoted” in Smörgåsbord"),
        ("cp1250", "Příliš žluťoučký kůň úpěl ďábelské ódy. Zażółć gęślą jaźń w Szczebrzeszynie."),
        ("cp1251", "Привет, мир! Это простой текст на русском языке для проверки кодировки. " * 5),
        ("shift_jis", "これは日本語のテキストです。文字コードの判定をテストします。" * 5),
    ],
)
def test_legacy_encodings_are_guessed(tmp_path: Path, encoding: str, text: str) -> None:
    result = extract(write(tmp_path, "legacy.txt", text.encode(encoding)))
    assert result.pages == (clean_text(text),)


@pytest.mark.parametrize(
    ("bom", "encoding"),
    [(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
     (b"", "utf-16-le"), (b"", "utf-16-be")],
)
def test_unicode_files_with_and_without_bom(tmp_path: Path, bom: bytes, encoding: str) -> None:
    text = "Grüße aus München. A plain English sentence follows, 你好世界. " * 10
    result = extract(write(tmp_path, "u.txt", bom + text.encode(encoding)))
    assert result.pages == (clean_text(text),)


def test_nul_bytes_are_dropped(tmp_path: Path) -> None:
    result = extract(write(tmp_path, "nul.txt", b"hello\x00world, a line\x00\x00 with NULs\nand more text"))
    assert result.status == "ok" and "\x00" not in result.text
    assert "helloworld" in result.text and "with NULs" in result.text


def test_binary_content_named_txt_is_unsupported(tmp_path: Path) -> None:
    result = extract(write(tmp_path, "blob.txt", random.Random(1).randbytes(50_000)))
    assert result.status == "unsupported" and "binary" in result.message


def test_whitespace_only_text_is_empty(tmp_path: Path) -> None:
    assert extract(write(tmp_path, "blank.txt", b" \n\t\r\n  \f")).status == "empty"


def test_a_50_mb_single_line_is_fast(tmp_path: Path) -> None:
    path = write(tmp_path, "line.txt", b"word " * 10_000_000)
    started = time.perf_counter()
    result = extract(path)
    elapsed = time.perf_counter() - started
    assert result.status == "ok" and len(result.pages[0]) == 50_000_000 - 1
    assert elapsed < 20, f"{elapsed:.1f} s"


# -- HTML and Markdown ----------------------------------------------------------------------

PAGE = """<!DOCTYPE html><html><head><title>Head title</title><meta name="x" content="meta text">
<style>body { color: red } .style-text {}</style><script>var inHead = "script text";</script></head>
<body><h1>Main heading</h1><p>First &amp; foremost,&nbsp;a <b>bold</b> <a href="http://x.y">link</a>.</p>
<p>Second paragraph
   spread over source lines.</p>
<!-- a comment --><noscript>noscript text</noscript><template>template text</template>
<div hidden>hidden text</div><span style="display: none">invisible text</span>
<table><tr><td>cell one</td><td>cell two</td></tr><tr><td>row two</td></tr></table>
<ul><li>item one</li><li>item two</li></ul>Line<br>break<pre>code line 1
code line 2</pre></body></html>"""


def test_html_keeps_only_visible_text(tmp_path: Path) -> None:
    text = extract(write(tmp_path, "page.html", PAGE.encode())).text
    for gone in ("Head title", "meta text", "style-text", "script text", "a comment", "noscript text",
                 "template text", "hidden text", "invisible text", "<", "&amp;"):
        assert gone not in text
    assert text.startswith("Main heading\n\nFirst & foremost, a bold link.\n\n")
    assert "Second paragraph spread over source lines." in text
    assert "cell one cell two\n\nrow two" in text and "item one\n\nitem two" in text
    assert "Line\n\nbreak" in text and "code line 1" in text and "code line 2" in text


ARTICLE = [
    "Why the river froze",
    "The river that runs through the old town froze from bank to bank last week, for the first time "
    "since the winter of 1963. Engineers at the water board said the cold had lasted eleven days.",
    "Skaters came out on the second morning. The police asked them to stay near the harbour steps, "
    "where the ice was thickest, and closed the stretch below the railway bridge.",
    "A warmer wind is expected on Sunday, and the board expects the ice to break up within days.",
]
CHROME = ["Accept all cookies", "Home | News | Sport | Weather", "Sign in to your account",
          "Most read this week", "Subscribe to our newsletter", "Copyright 2026 The Gazette"]


def test_html_article_is_indexed_without_the_pages_chrome(tmp_path: Path) -> None:
    """A news page built the way real ones are: the article amid a cookie banner, a header with
    navigation, a sidebar of teasers and a footer. Only the article is indexed."""
    teasers = "".join(f"<li><a href='/t{i}'>Teaser headline number {i} about the town council</a></li>"
                      for i in range(8))
    page = f"""<!DOCTYPE html><html><head><title>The Gazette</title></head><body>
<div id="cookie-banner"><p>We use cookies to improve your experience.</p><button>{CHROME[0]}</button></div>
<header class="site-header"><a href="/">The Gazette</a><nav><a href="/">Home</a> | <a href="/news">News</a> |
<a href="/sport">Sport</a> | <a href="/weather">Weather</a></nav><a href="/login">{CHROME[2]}</a></header>
<div class="layout"><div class="content"><h1>{ARTICLE[0]}</h1><p class="byline">By A. Reporter</p>
{"".join(f"<p>{p}</p>" for p in ARTICLE[1:])}</div>
<div class="sidebar"><h3>{CHROME[3]}</h3><ul>{teasers}</ul><p>{CHROME[4]}</p></div></div>
<footer><p>{CHROME[5]}</p><a href="/privacy">Privacy</a> <a href="/terms">Terms</a></footer></body></html>"""
    text = extract(write(tmp_path, "news.html", page.encode())).text
    for paragraph in ARTICLE:
        assert paragraph in text
    for chrome in (*CHROME, "Teaser headline", "We use cookies", "Privacy"):
        assert chrome not in text, chrome


def test_html_with_a_huge_script_is_fast_and_drops_it(tmp_path: Path) -> None:
    script = "var s = '<p>SCRIPT_ONLY</p>'; if (a < b && c > d) { x(); }\n" * 150_000  # ~8 MB
    page = f"<html><body><p>Visible start.</p><script>{script}</script><p>Visible end.</p></body></html>"
    started = time.perf_counter()
    result = extract(write(tmp_path, "big.htm", page.encode()))
    assert time.perf_counter() - started < 10
    assert result.pages == ("Visible start.\n\nVisible end.",)


def test_html_with_an_unclosed_head_keeps_its_body(tmp_path: Path) -> None:
    page = "<html><head><title>Tab title</title><body><p>Body text.</p></body></html>"
    assert extract(write(tmp_path, "sloppy.html", page.encode())).text == "Body text."


def test_html_declared_charset_is_used(tmp_path: Path) -> None:
    page = '<html><head><meta charset="iso-8859-1"></head><body><p>Réunion à Montréal</p></body></html>'
    assert extract(write(tmp_path, "latin.html", page.encode("latin-1"))).text == "Réunion à Montréal"


def test_deeply_nested_html_does_not_recurse(tmp_path: Path) -> None:
    page = "<div>" * 20_000 + "deep text" + "</div>" * 20_000
    assert extract(write(tmp_path, "deep.html", page.encode())).text == "deep text"


def test_html_without_visible_text_is_empty(tmp_path: Path) -> None:
    assert extract(write(tmp_path, "s.html", b"<script>x()</script><style>a{}</style>")).status == "empty"


MARKDOWN = """---
# Project *Title*

Some *emphasis*, __strong__ and `inline code` with a [link text](http://example.com/page "t")
and an image ![alt words](pic.png) and a [reference][ref].

[ref]: http://example.com/ref

```python
print("code kept")
```

> A quoted line.

- first item
- second item

| col a | col b |
|-------|-------|
| one   | two   |

<div class="x">inline <b>html</b></div>

Setext heading
==============
"""


def test_markdown_keeps_text_and_drops_markup(tmp_path: Path) -> None:
    text = extract(write(tmp_path, "notes.md", MARKDOWN.encode())).text
    for noise in ("#", "*", "__", "`", "](", "![", "http://", "[ref]", "<div", "<b>", "|", "==", "---"):
        assert noise not in text, noise
    for kept in ("Project Title", "Some emphasis, strong and inline code with a link text",
                 "and a reference.", 'print("code kept")', "A quoted line.", "first item\n\nsecond item",
                 "col a col b", "one two", "inline html", "Setext heading"):
        assert kept in text, kept
    assert "alt words" not in text


def test_a_huge_markdown_file_is_indexed_as_text(tmp_path: Path) -> None:
    result = extract(write(tmp_path, "log.markdown", b"*entry* line\n" * 400_000))
    assert result.status == "ok" and "plain text" in result.message and "*entry* line" in result.text


# -- clean_text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("the ﬁrst ﬂoor", "the first floor"),
        ("infor-\nmation and a well-known fact", "information and a well-known fact"),
        ("Form 1040-\nES and non-\nEnglish", "Form 1040-ES and non-English"),
        ("soft\u00ad\nhyphen and in\u00advisible", "softhyphen and invisible"),
        ("tabs\tand   spaces\u00a0and\u2003em\u3000ideographic", "tabs and spaces and em ideographic"),
        ("nul\x00 bell\x07 esc\x1b del\x7f", "nul bell esc del"),
        ("page one\fpage two", "page one\n\npage two"),
        ("crlf\r\nline\rend\u2028sep", "crlf line end sep"),
        ("one.\n\n\n\n  two.", "one.\n\ntwo."),
        ("  \n\t  ", ""),
        ("lone \ud800 surrogate \ufeff bom", "lone surrogate bom"),
        ("你好世界，我们走吧。这是一行很长的中文文本\n继续", "你好世界,我们走吧。这是一行很长的中文文本继续"),
    ],
)
def test_clean_text_examples(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_clean_text_joins_wrapped_lines_but_keeps_headings_and_lists() -> None:
    raw = (
        "1 Introduction\n"
        "This paragraph was wrapped by a typesetter at about sixty\n"
        "characters per line, so its lines should be joined back into\n"
        "one flowing paragraph by the cleaner.\n"
        "• a bullet item\n"
        "• another bullet item"
    )
    assert clean_text(raw) == (
        "1 Introduction\nThis paragraph was wrapped by a typesetter at about sixty characters per line, "
        "so its lines should be joined back into one flowing paragraph by the cleaner.\n"
        "• a bullet item\n• another bullet item"
    )


def test_every_kind_of_white_space_becomes_a_space_or_newline() -> None:
    spaces = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
    out = clean_text(f"a{spaces}b" + "".join(f" {s}x" for s in spaces))
    assert {c for c in out if c.isspace()} <= {" ", "\n"}


@pytest.mark.parametrize(
    "text", ["a-\n" * 1_000_000, "\n" * 3_000_000, " " * 3_000_000, "\u00ad \n" * 1_000_000, "x\ufb01 " * 1_000_000]
)
def test_clean_text_is_linear_on_pathological_input(text: str) -> None:
    started = time.process_time()  # CPU time: a busy machine must not fail it, a quadratic loop will
    clean_text(text)
    assert time.process_time() - started < 5


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.one_of(st.characters(exclude_categories=()), st.sampled_from("\n\f\r\t -\u00ad\ufb01\u3000")), max_size=300))
def test_clean_text_invariants(text: str) -> None:
    out = clean_text(text)
    assert out == out.strip() and PAGE_BREAK not in out and not CONTROL.search(out)
    assert "  " not in out and "\n\n\n" not in out and " \n" not in out and "\n " not in out
    assert not any(unicodedata.category(c) == "Cs" for c in out)
    out.encode("utf-8")  # storable in SQLite


def test_running_heads_and_feet_are_kept_only_where_they_first_appear(tmp_path: Path) -> None:
    bodies = [f"Step {n}: the {part} is checked before the pump starts, every {n + 1} weeks."
              for n, part in enumerate(["inlet", "valve", "seal", "filter", "motor"], 1)]
    pages = [f"Acme Pump Manual (revised 2024)\n\n{body}\n\nAcme pumps, page {n} of 5" for n, body in enumerate(bodies, 1)]
    ex = extract(write_pdf(tmp_path / "manual.pdf", pages))
    assert ex.pages[0].split() == pages[0].split()  # the title stays searchable, once
    assert list(ex.pages[1:]) == bodies[1:]
    two = extract(write_pdf(tmp_path / "two.pdf", pages[:2]))  # too few pages to tell furniture
    assert [p.split() for p in two.pages] == [p.split() for p in pages[:2]]


def test_furniture_is_a_line_repeated_at_the_edges_of_a_quarter_of_the_pages() -> None:
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
    body = [f"The {word} valve opens first.\nThen the {word} pump starts." for word in words]
    heads = [f"Chapter 2 Maintenance {n + 10}\n{b}" if n < 3 else b for n, b in enumerate(body)]
    assert strip_furniture(heads) == [heads[0], *body[1:3], *body[3:]]  # 3 of 12 pages: furniture
    rare = [f"Chapter 2 Maintenance\n{b}" if n < 2 else b for n, b in enumerate(body)]
    assert strip_furniture(rare) == rare  # on 2 pages only: left alone
    moved = [*heads[:3], f"{body[3]}\nChapter 2 Maintenance 99\nMore body."]  # mid-page, as columns may put it
    assert strip_furniture(moved)[3] == f"{body[3]}\nMore body."
    titles = [f"Part {n}\n{b}" for n, b in enumerate(body)]  # numbered titles: content, not a running head
    assert strip_furniture(titles) == titles
    stamp = [f"7:48 - 6-DEC-2007\n{b}" for b in body]  # the same on every page: furniture
    assert strip_furniture(stamp) == [stamp[0], *body[1:]]


LINES = ["Acme Pump Manual", "Page 3 of 9 Acme pumps", "Page 4 of 9 Acme pumps", "The seal is checked daily.",
         "Rinse the filter.", "7", "", "Part 2", "Chapter 2 Maintenance"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(LINES), max_size=8), max_size=12))
def test_furniture_only_drops_lines_the_document_keeps_elsewhere(pages: list[list[str]]) -> None:
    texts = ["\n".join(page) for page in pages]
    out = strip_furniture(texts)
    assert len(out) == len(texts)
    kept_anywhere = {line for page in out for line in page.split("\n")}
    masked = {re.sub(r"\d+", "#", line) for line in kept_anywhere}
    for before, after in zip(texts, out):
        lines = [line for line in before.split("\n") if line]
        # what is left of a page is its lines in order, some taken out ...
        rest = iter(lines)
        assert all(any(line == other for other in rest) for line in after.split("\n") if line)
        # ... and every line taken out still stands on some page, the same up to its numbers
        assert all(re.sub(r"\d+", "#", line) in masked for line in lines)
