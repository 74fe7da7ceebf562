"""OCR of scanned PDF pages with the real Tesseract: scans generated here (typeset text,
rasterised, skewed, noisy, image-only pages), mixed PDFs, time limits, settings changes, the
index's record of OCR'd pages and the citations that come from them."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from pdfgen import write_jbig2_pdf, write_pdf
from tinymodels import FactGenerator

from docqa import DocQA, ocr
from docqa.cli import cli
from docqa.errors import OcrUnavailable
from docqa.extract import extract
from docqa.store import Store
from docqa.types import OcrOptions

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="Tesseract is not installed (apt install tesseract-ocr tesseract-ocr-eng; .ci/run does)",
)

# Plain prose, as a letter or report would hold: the OCR'd words are compared with it.
PROSE = """The harbour commission met on the fourth of March to review the state of the northern pier.
The engineer reported that the winter storms had loosened nineteen granite blocks near the
lighthouse and that the timber fenders on the eastern side were rotten in several places.

Repairs were estimated at two thousand four hundred pounds, to be shared between the commission
and the fishing cooperative. The members agreed to begin work in May, when the sea is calmer, and
asked the secretary to write to the county council for a loan of the steam crane.

Mr. Anderson raised the question of the new signal lamp. The old paraffin lamp had failed twice
during the January gales, and the pilots had complained that it could not be seen beyond the
outer buoy. It was resolved that an electric lamp be ordered from the firm in Glasgow."""


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9]+", text)


def recall(expected: str, got: str) -> float:
    """Share of the expected words (with repeats) that the OCR'd text holds."""
    have = Counter(words(got))
    hit = 0
    for word in words(expected):
        if have[word] > 0:
            have[word] -= 1
            hit += 1
    return hit / len(words(expected))


pytestmark = needs_tesseract


def test_a_skewed_noisy_scan_is_read_with_97_percent_word_recall(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "scan.pdf", [PROSE], scanned={1}, skew=1.5, seed=3)
    result = extract(path)
    assert result.status == "ok" and result.ocr_pages == (1,) and result.ocr == "auto:eng"
    assert recall(PROSE, result.text) >= 0.97, result.text


def test_a_mixed_pdf_keeps_its_text_pages_and_reads_its_scanned_page(tmp_path: Path) -> None:
    pages = ["A typed first page about apples and pears.", PROSE.split("\n\n")[0], "A typed last page."]
    result = extract(write_pdf(tmp_path / "mixed.pdf", pages, scanned={2}))
    assert result.status == "ok" and result.ocr_pages == (2,)
    assert result.pages[0] == pages[0] and result.pages[2] == pages[2]  # pypdf's text, as written
    assert recall(pages[1], result.pages[1]) >= 0.97


def test_a_jbig2_scan_is_rendered_and_read(tmp_path: Path) -> None:
    text = PROSE.split("\n\n")[2]
    result = extract(write_jbig2_pdf(tmp_path / "jbig2.pdf", text))
    assert result.status == "ok" and result.ocr_pages == (1,)
    assert recall(text, result.text) >= 0.97, result.text


def test_ocr_writes_quotation_marks_in_ascii(tmp_path: Path) -> None:
    # Tesseract reads these curly marks as curly (and straight apostrophes often as curly too);
    # a question typed with "'" must match the OCR'd text either way.
    page = "The pilot\u2019s \u201cnew\u201d lamp and the engineer's \u2018old\u2019 crane stood by the pier."
    result = extract(write_pdf(tmp_path / "quotes.pdf", [page], scanned={1}, skew=0.0))
    assert result.ocr_pages == (1,)
    assert result.pages[0] == "The pilot's \"new\" lamp and the engineer's 'old' crane stood by the pier."


def test_ocr_keeps_a_sentence_in_one_paragraph(tmp_path: Path) -> None:
    # One paragraph, typeset ragged: Tesseract starts paragraphs inside its sentences ("steam\n\ncrane").
    paragraph = " ".join(PROSE.split())
    result = extract(write_pdf(tmp_path / "ragged.pdf", [paragraph], scanned={1}, skew=0.0))
    assert recall(paragraph, result.pages[0]) >= 0.97
    assert all(p.endswith((".", "!", "?", ":")) for p in result.pages[0].split("\n\n")[:-1]), result.pages[0]


def test_tidy_turns_tesseracts_breaks_inside_a_sentence_into_line_breaks() -> None:
    raw = "the river\u2019s natural\n\ncourse, \u201cit\u201d said\n \n\nand so on.\n\nThe end:\n\nnext.\n\nlower after a stop"
    assert ocr.tidy(raw) == "the river's natural\ncourse, \"it\" said\nand so on.\n\nThe end:\n\nnext.\n\nlower after a stop"


@pytest.mark.skipif(not Path(DEJAVU).is_file(), reason=f"no {DEJAVU} (apt install fonts-dejavu-core)")
def test_a_scan_shows_characters_outside_windows_1252_when_a_font_is_embedded(tmp_path: Path) -> None:
    import pypdfium2 as pdfium

    page = "\u2212 \u2261"  # minus, identical to: the typesetter's own font has no glyph for them

    def ink(path: Path) -> int:  # dark pixels of the page as a viewer (and the scanner) draws it
        image = pdfium.PdfDocument(path)[0].render(scale=6, grayscale=True).to_pil().convert("L")
        return sum(image.histogram()[:128])

    bare = write_pdf(tmp_path / "bare.pdf", [page])
    embedded = write_pdf(tmp_path / "embedded.pdf", [page], unicode_font=DEJAVU)
    assert extract(bare).pages == extract(embedded).pages == (page,)  # the same text layer
    # Without a font, pdfium draws the codes with glyphs of its stand-in font that happen to sit
    # at those numbers (here one short stroke); with DejaVu embedded, "−" and the three bars of "≡".
    assert ink(bare) * 2 < ink(embedded), (ink(bare), ink(embedded))


def test_force_reads_every_page_and_off_none(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "mixed.pdf", ["Typed words on the first page.", "Scanned words here."], scanned={2})
    forced = extract(path, ocr=OcrOptions("force"))
    assert forced.ocr_pages == (1, 2) and "Typed words" in forced.pages[0] and forced.ocr == "force:eng"
    off = extract(path, ocr=OcrOptions("off"))
    assert off.pages == ("Typed words on the first page.", "") and off.ocr_pages == () and off.ocr == "off"
    assert off.message == "1 of 2 pages have no text layer (scanned?) and --ocr is off; use --ocr auto to read them"


def test_a_page_over_its_time_limit_is_reported_and_the_rest_kept(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "slow.pdf", ["Typed page one.", PROSE, "Typed page three."], scanned={2})
    result = extract(path, ocr=OcrOptions(page_timeout_s=0.2))
    assert result.status == "ok" and result.pages == ("Typed page one.", "", "Typed page three.")
    assert result.message.startswith("page 2 could not be read by OCR: OCR took over 0.2 s")
    assert "--ocr-timeout" in result.message and "\n" not in result.message
    assert result.ocr.endswith(":partial")  # read again under other limits


def test_ocr_stops_before_the_files_time_limit_and_keeps_what_it_has(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "long.pdf", ["Typed page one.", "Scan two.", "Scan three."], scanned={2, 3})
    result = extract(path, deadline=time.monotonic() + 0.5)
    assert result.status == "ok" and result.pages == ("Typed page one.", "", "")
    assert "2 pages from page 2 on were not OCR'd: the file's time limit ran out" in result.message
    assert "--timeout" in result.message and result.ocr.endswith(":partial")


def test_a_pdf_cut_short_by_a_time_limit_is_read_again_only_under_other_limits(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "dense.pdf", ["Typed page one.", PROSE], scanned={2})
    with DocQA(tmp_path / "i.db") as qa:
        (first,) = qa.index([docs], ocr=OcrOptions(page_timeout_s=0.2)).files
        assert (first.status, first.pages, first.ocr_pages) == ("indexed", 2, 0)
        assert first.message.startswith("page 2 could not be read by OCR")
        (same,) = qa.index([docs], ocr=OcrOptions(page_timeout_s=0.2)).files
        assert same.status == "unchanged"  # the same limit would stop it again
        (raised,) = qa.index([docs]).files
        assert (raised.status, raised.ocr_pages, raised.message) == ("updated", 1, "")


def test_a_blank_page_is_not_sent_to_tesseract(tmp_path: Path) -> None:
    result = extract(write_pdf(tmp_path / "blank.pdf", ["", " "]))
    assert result.status == "empty" and result.message == "no text found on any page, even by OCR"


def test_text_of_mostly_private_use_characters_needs_ocr() -> None:
    assert ocr.needs_ocr("") and ocr.needs_ocr(" \n ")
    assert ocr.needs_ocr("\ue000\ue001\ue002 \ufffd\ufffd a")  # a font without a Unicode map
    assert not ocr.needs_ocr("Plain words, with one odd \ue000 glyph.")


def test_without_tesseract_auto_keeps_empty_with_how_to_install_and_force_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "docs").mkdir()
    scan = write_pdf(tmp_path / "docs" / "scan.pdf", ["Scanned words."], scanned={1})
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    ocr._installed_languages.cache_clear()
    try:
        result = extract(scan)
        assert result.status == "empty" and result.ocr == "auto:unavailable"
        assert result.message == ("1 of 1 pages have no text layer (scanned?); Tesseract is not installed, so "
                                  "scanned pages cannot be read; install it (Debian/Ubuntu: sudo apt install "
                                  "tesseract-ocr tesseract-ocr-eng; macOS: brew install tesseract)")
        run = CliRunner().invoke(cli, ["index", str(tmp_path / "docs"), "-i", str(tmp_path / "i.db"), "--ocr", "force"])
        assert run.exit_code == 1 and run.output.count("\n") == 1
        assert "Error: Tesseract is not installed" in run.output and "apt install tesseract-ocr" in run.output
        assert not (tmp_path / "i.db").exists() or Store(tmp_path / "i.db").info().documents == 0
    finally:
        ocr._installed_languages.cache_clear()


def test_a_missing_language_pack_is_one_line_naming_the_package(tmp_path: Path) -> None:
    with pytest.raises(OcrUnavailable, match=r"no language data for qqq .*sudo apt install tesseract-ocr-qqq"):
        ocr.check("eng+qqq")
    (tmp_path / "note.txt").write_text("words")
    run = CliRunner().invoke(cli, ["index", str(tmp_path), "-i", str(tmp_path / "i.db"), "--ocr-lang", "eng+qqq"])
    assert run.exit_code == 1 and run.output.count("\n") == 1 and "tesseract-ocr-qqq" in run.output
    assert ocr.install_hint("eng+chi_sim").endswith("sudo apt install tesseract-ocr tesseract-ocr-eng "
                                                     "tesseract-ocr-chi-sim; macOS: brew install tesseract)")


def statuses(report) -> dict[str, str]:
    return {f.path: f.status for f in report.files}


def test_changing_ocr_settings_re_extracts_only_the_documents_they_affect(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "typed.pdf", ["A typed page about the harbour."])
    write_pdf(docs / "scan.pdf", ["Nineteen granite blocks were loose."], scanned={1})
    (docs / "notes.txt").write_text("Plain notes.")
    with DocQA(tmp_path / "i.db") as qa:
        first = qa.index([docs])
        assert first.added == 3 and {f.path: f.ocr_pages for f in first.files}["scan.pdf"] == 1
        assert set(statuses(qa.index([docs])).values()) == {"unchanged"}
        assert statuses(qa.index([docs], ocr=OcrOptions("off"))) == {
            "notes.txt": "unchanged", "scan.pdf": "empty", "typed.pdf": "unchanged"}
        assert statuses(qa.index([docs], ocr=OcrOptions("off")))["scan.pdf"] == "empty"  # not re-done
        assert statuses(qa.index([docs])) == {"notes.txt": "unchanged", "scan.pdf": "indexed", "typed.pdf": "unchanged"}
        forced = qa.index([docs], ocr=OcrOptions("force"))
        assert statuses(forced) == {"notes.txt": "unchanged", "scan.pdf": "updated", "typed.pdf": "updated"}
        assert qa.info().ocr_pages == 2
        assert statuses(qa.index([docs])) == {"notes.txt": "unchanged", "scan.pdf": "updated", "typed.pdf": "updated"}
        assert qa.info().ocr_pages == 1


def test_an_answer_from_a_scanned_page_cites_that_page_and_says_ocr(trained_model_dir: Path, tmp_path: Path) -> None:
    gen = FactGenerator(seed=11)
    passages = [gen.passage(n_facts=3) for _ in range(3)]
    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "atlas.pdf", [p.text for p in passages], scanned={2}, skew=0.8)
    index = tmp_path / "atlas.db"
    with DocQA(index, model=str(trained_model_dir)) as qa:
        assert qa.index([docs]).added == 1
        asked = [(number, fact) for number, passage in enumerate(passages, 1) for fact in passage.facts]
        results = qa.ask_batch([fact.question for _, fact in asked], top_k=1)
        for (number, fact), result in zip(asked, results):
            top = result.answers[0]
            citation = top.citations[0]
            assert (top.text, citation.page, citation.ocr) == (fact.value, number, number == 2)
        info = qa.info()
    assert (info.pages, info.ocr_pages, info.pages_by_kind) == (3, 1, {"pdf": 3})
    scanned = passages[1].facts[0]
    run = CliRunner().invoke(cli, ["ask", scanned.question, "-i", str(index), "--model", str(trained_model_dir),
                                   "-n", "1", "--json"])
    assert json.loads(run.output)["answers"][0]["citations"][0]["ocr"] is True
    run = CliRunner().invoke(cli, ["ask", scanned.question, "-i", str(index), "--model", str(trained_model_dir), "-n", "1"])
    assert "atlas.pdf, page 2 (OCR: may hold recognition errors)" in run.output
    run = CliRunner().invoke(cli, ["info", "-i", str(index)])
    assert "pages:     3 (1 read by OCR)" in run.output and "1 page = PDF page" in run.output
    pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'docqa[server]'")
    from fastapi.testclient import TestClient

    from docqa.server import create_app

    with DocQA(index, model=str(trained_model_dir)) as qa, \
            TestClient(create_app(qa), base_url="http://127.0.0.1") as client:
        (doc,) = client.get("/documents").json()["documents"]
        shown = [client.get(f"/documents/{doc['id']}/pages/{n}").json()["ocr"] for n in (1, 2, 3)]
    assert shown == [False, True, False]  # the page viewer says when the text came from OCR


def test_an_index_from_before_ocr_is_upgraded_in_place(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "scan.pdf", ["Scanned words."], scanned={1})
    write_pdf(docs / "typed.pdf", ["Typed words."])
    index = tmp_path / "old.db"
    with DocQA(index) as qa:
        qa.index([docs], ocr=OcrOptions("off"))
    conn = sqlite3.connect(index)  # make it what schema 1 wrote: no ocr columns
    conn.executescript("ALTER TABLE documents DROP COLUMN ocr; ALTER TABLE pages DROP COLUMN ocr; "
                       "ALTER TABLE documents DROP COLUMN extractor; "
                       "UPDATE meta SET value = '1' WHERE key = 'schema_version';")
    conn.close()
    with Store(index, readonly=True) as store:  # read as it is
        assert store.schema_version == 1 and store.info().ocr_pages == 0
    with DocQA(index) as qa:
        report = qa.index([docs])  # upgraded; the scan, read with OCR off before, is read now
        # (typed.pdf is read again too: its text came from an older PDF extraction)
        assert statuses(report) == {"scan.pdf": "indexed", "typed.pdf": "updated"}
        assert qa.info().schema_version == 3 and qa.info().ocr_pages == 1
