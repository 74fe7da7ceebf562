"""Word (.docx), PowerPoint (.pptx) and EPUB files -> pages of raw text.

What a page is: in a .docx, the text up to a hard page break (or a section break that starts a
new page); in a .pptx, one slide with its speaker notes; in an EPUB, one chapter: a document of
the spine, in reading order, that has text (the cover image and the navigation document are not
pages). The libraries (python-docx, python-pptx, ebooklib) are imported on the first such file,
in the indexer's worker. ``docqa.extract`` cleans the text and turns failures into statuses:
these functions raise ``Encrypted`` for a password- or DRM-protected file and let the
libraries' own errors through for a broken one.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

# An encrypted OOXML file is not a ZIP but an OLE compound file holding an "EncryptedPackage".
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
_FONT = re.compile(r"\.(otf|ttf|woff2?)$", re.I)
_PAGE = object()  # a hard page break, in the stream of a paragraph's text


class Encrypted(Exception):
    """The file is password- or DRM-protected; the message says what to do."""


def _check_ooxml(data: bytes, program: str, suffix: str) -> None:
    if data.startswith(_OLE_MAGIC):
        if _ENCRYPTED_PACKAGE in data:
            raise Encrypted(f"password-protected; open it in {program} and save a copy without a password")
        raise ValueError(f"an old binary {program} file, not {suffix}; save it again as {suffix}")


# -- Word --------------------------------------------------------------------------------------


def docx_pages(data: bytes) -> list[str]:
    """Paragraphs, headings and tables in reading order; a new page at each hard page break."""
    from docx import Document
    from docx.oxml.ns import qn

    _check_ooxml(data, "Word", ".docx")
    body = Document(io.BytesIO(data)).element.body
    w = _tags(qn)
    pages: list[list[str]] = [[]]

    def new_page(always: bool = True) -> None:
        # A hard break always makes a page (two in a row: a blank page, as in Word); "start on
        # a new page" (page break before, a section break) only when the current one has text.
        if always or any(pages[-1]):
            pages.append([])

    def paragraph(p: Any) -> None:
        ppr = p.find(w.pPr)
        if ppr is not None and _on(ppr.find(w.pageBreakBefore), w):
            new_page(always=False)
        text: list[str] = []
        for piece in _runs(p, w):
            if piece is _PAGE:
                pages[-1].append("".join(text))
                text = []
                new_page()
            else:
                text.append(piece)  # type: ignore[arg-type]
        pages[-1].append("".join(text))
        section = ppr.find(w.sectPr) if ppr is not None else None
        if section is not None:  # a section ends here: the next starts a page unless "continuous"
            kind = section.find(w.type)
            if kind is None or kind.get(w.val) != "continuous":
                new_page(always=False)

    def blocks(parent: Any) -> None:
        for child in parent.iterchildren():
            if child.tag == w.p:
                paragraph(child)
            elif child.tag == w.tbl:
                for row in child.iterchildren(w.tr):  # a row is one paragraph, cells side by side
                    pages[-1].append(" ".join(filter(None, (_cell_text(c, w) for c in row.iterchildren(w.tc)))))
            elif child.tag in (w.sdt, w.sdtContent):  # content controls wrap blocks
                blocks(child)

    blocks(body)
    if len(pages) > 1 and not any(pages[-1]):
        pages.pop()  # a break at the very end
    return ["\n\n".join(filter(None, page)) for page in pages]


def _tags(qn: Callable[[str], str]) -> Any:
    """WordprocessingML tag names in lxml's {namespace}name form: ``w.p`` is a paragraph."""
    names = ("p", "tbl", "tr", "tc", "t", "tab", "br", "cr", "noBreakHyphen", "pPr", "pageBreakBefore",
             "sectPr", "type", "val", "sdt", "sdtContent")
    return SimpleNamespace(**{name: qn(f"w:{name}") for name in names},
                           fallback="{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback")


def _on(toggle: Any, w: Any) -> bool:
    """A WordprocessingML on/off property: present and not switched off."""
    return toggle is not None and toggle.get(w.val) not in ("0", "false", "off")


def _runs(element: Any, w: Any) -> Iterator[str | object]:
    """The text of a paragraph in order, with ``_PAGE`` at hard page breaks. A text box's
    paragraphs come as lines; the fallback copy of a drawing (mc:Fallback) is skipped."""
    for child in element.iterchildren():
        tag = child.tag
        if tag == w.t:
            yield child.text or ""
        elif tag == w.tab:
            yield "\t"
        elif tag == w.noBreakHyphen:
            yield "-"
        elif tag == w.br and child.get(w.type) == "page":
            yield _PAGE
        elif tag in (w.br, w.cr):
            yield "\n"
        elif tag == w.p:
            yield "\n"
            yield from _runs(child, w)
        elif tag != w.fallback:
            yield from _runs(child, w)


def _cell_text(cell: Any, w: Any) -> str:
    lines = ("".join(p for p in _runs(paragraph, w) if p is not _PAGE) for paragraph in cell.iter(w.p))
    return " ".join(line for line in lines if line.strip())  # type: ignore[misc]


# -- PowerPoint --------------------------------------------------------------------------------


def pptx_pages(data: bytes) -> list[str]:
    """One page per slide: its text top to bottom, left to right (tables row by row, groups
    opened), then its speaker notes."""
    from pptx import Presentation
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    _check_ooxml(data, "PowerPoint", ".pptx")
    pages = []
    for slide in Presentation(io.BytesIO(data)).slides:
        texts = list(_shape_texts(slide.shapes, MSO_SHAPE_TYPE.GROUP))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            texts.append(slide.notes_slide.notes_text_frame.text)
        pages.append("\n\n".join(t for t in texts if t.strip()))
    return pages


def _shape_texts(shapes: Any, group: object) -> Iterator[str]:
    for shape in sorted(shapes, key=lambda s: (s.top or 0, s.left or 0)):
        if shape.shape_type == group:
            yield from _shape_texts(shape.shapes, group)
        elif getattr(shape, "has_table", False) and shape.has_table:
            for row in shape.table.rows:
                yield " ".join(cell.text for cell in row.cells if cell.text.strip())
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            yield shape.text_frame.text


# -- EPUB --------------------------------------------------------------------------------------


def epub_chapters(data: bytes) -> list[bytes]:
    """The (X)HTML of each chapter in spine order: the navigation document and the spine items
    that are not (X)HTML are left out."""
    import ebooklib
    from ebooklib import epub

    _check_epub_drm(data)
    book = epub.read_epub(io.BytesIO(data), options={"ignore_ncx": True})
    chapters = []
    for idref, _linear in book.spine:
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT or isinstance(item, epub.EpubNav):
            continue
        chapters.append(item.get_content())
    return chapters


def _check_epub_drm(data: bytes) -> None:
    """DRM (Adobe ADEPT, Readium LCP...) encrypts the chapters and lists them in
    META-INF/encryption.xml; font obfuscation lists only fonts there, and is fine."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        if "META-INF/rights.xml" in names or "META-INF/license.lcpl" in names:
            raise Encrypted("DRM-protected e-book; docqa can read only DRM-free EPUBs")
        if "META-INF/encryption.xml" not in names:
            return
        listing = archive.read("META-INF/encryption.xml").decode("utf-8", errors="replace")
    encrypted = re.findall(r"""URI\s*=\s*["']([^"']+)["']""", listing)
    if any(not _FONT.search(uri) for uri in encrypted):
        raise Encrypted("DRM-protected e-book (its chapters are encrypted); docqa can read only DRM-free EPUBs")
