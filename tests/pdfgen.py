"""A tiny test-only PDF writer: ``write_pdf(path, pages)``, one PDF page per string.

Why not fpdf2 or reportlab: their built-in Helvetica takes Latin-1 only, so SQuAD text (en
dashes, Greek, CJK...) would need an embedded TrueType font found somewhere on the machine,
and the glyphs it lacks (CJK in DejaVu) are dropped: the words would not come back as written.

What it writes: US Letter pages, text at 10 pt (smaller when a page's text would not fit),
lines wrapped at spaces only (never inside a word or at a hyphen, so nothing is dehyphenated
on the way back), a blank line between paragraphs ("\\n\\n"). Characters that Windows-1252
covers use the standard Type1 Helvetica (renders as written in any viewer); any other
character goes through a small Type0 font whose ToUnicode map gives it back exactly to text
extractors (viewers draw a substitute glyph, or nothing: the page shows less than its text layer
holds). ``unicode_font=`` a TrueType file (e.g. DejaVu Sans) embeds that font for those
characters, so the page shows them as its text layer holds them (the ones the font lacks still
draw nothing). ``docqa.extract`` of the file gives every page
back with the same words in the same order (``page.split() == clean_text(text).split()``);
only white space differs (wrapped lines, paragraph breaks). Two exceptions: right-to-left words
(Arabic, Hebrew) come back reversed, as pypdf takes PDF text for visual order, and U+FEFF is
left out.

``write_pdf(..., scanned={2})`` turns page 2 into a scan: the typeset page rasterised (pypdfium2)
at ``dpi``, skewed by ``skew`` degrees, sprinkled with noise and stored as a grayscale JPEG on an
image-only page (Pillow), as a flatbed scanner would. Only OCR gets its text back.
"""

from __future__ import annotations

import io
import random
import textwrap
from collections.abc import Callable, Collection, Sequence
from itertools import groupby
from pathlib import Path

from pypdf import PdfReader, PdfWriter

PAGE_WIDTH, PAGE_HEIGHT, MARGIN = 612, 792, 72
FONT_SIZE = 10.0
LEADING = 1.4  # line height as a multiple of the font size


def write_pdf(path: str | Path, pages: Sequence[str], *, password: str | None = None,
              scanned: Collection[int] = (), dpi: int = 300, skew: float = 1.0, seed: int = 0,
              columns: int = 1, row_by_row: bool = False, unicode_font: str | Path | None = None) -> Path:
    """Write ``pages`` (one string per page; "" gives a blank page) as a PDF at ``path``.

    Pages numbered (1-based) in ``scanned`` become image-only scans (see the module doc). With
    ``password`` the file is AES-256 encrypted with that user password (pypdf). With
    ``columns=2`` the text runs down a left column, then a right one (as in a paper); with
    ``row_by_row`` the content stream draws the columns' first lines, then their second lines...
    (as some typesetters do: the page looks the same, stream order alternates between columns).
    ``unicode_font``: a TrueType file embedded for the characters outside Windows-1252.
    Returns ``path`` as a ``Path``."""
    path = Path(path)
    data = _pdf_bytes(pages, columns, row_by_row, unicode_font)
    if scanned:
        data = _scan(data, scanned, dpi, skew, seed)
    if password is not None:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
        writer.encrypt(user_password=password, owner_password=None, algorithm="AES-256")
        buffer = io.BytesIO()
        writer.write(buffer)
        data = buffer.getvalue()
    path.write_bytes(data)
    return path


def _scan(data: bytes, scanned: Collection[int], dpi: int, skew: float, seed: int) -> bytes:
    import pypdfium2 as pdfium
    from PIL import Image

    rng = random.Random(seed)
    source = pdfium.PdfDocument(data)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    for number in sorted(scanned):
        image = source[number - 1].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
        image = image.rotate(skew, resample=Image.Resampling.BICUBIC, fillcolor=255)
        pixels = image.load()
        for _ in range(image.width * image.height // 500):  # 0.2% specks, dark and light
            pixels[rng.randrange(image.width), rng.randrange(image.height)] = rng.choice((0, 90, 255))
        buffer = io.BytesIO()
        image.save(buffer, "PDF", resolution=dpi, quality=75)
        writer.insert_page(PdfReader(buffer).pages[0], number - 1)
        writer.remove_page(number)
    source.close()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _pdf_bytes(pages: Sequence[str], columns: int = 1, row_by_row: bool = False,
               unicode_font: str | Path | None = None) -> bytes:
    cids: dict[str, int] = {}  # character outside Windows-1252 -> its code in the Type0 font
    streams = [_content(page, cids, columns, row_by_row) for page in pages]
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)  # object number

    catalog = add(b"")  # filled in below, once the page tree's number is known
    helvetica = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    fonts = f"/F1 {helvetica} 0 R".encode()
    if cids:
        fonts += f" /F2 {_add_unicode_font(add, cids, unicode_font)} 0 R".encode()
    tree = len(objects) + 1 + 2 * len(pages)  # after every page and its content stream
    kids = []
    for stream in streams:
        content = add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R "
                b"/Resources << /Font << %s >> >> >>" % (tree, PAGE_WIDTH, PAGE_HEIGHT, content, fonts)
            )
        )
    refs = " ".join(f"{k} 0 R" for k in kids).encode()
    add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (refs, len(kids)))
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % tree
    return _serialise(objects, catalog)


def _add_unicode_font(add: Callable[[bytes], int], cids: dict[str, int], truetype: str | Path | None) -> int:
    embedded = b""
    if truetype is not None:
        font_file, cid_to_gid, widths = _embed(truetype, cids)
        embedded = b"/FontFile2 %d 0 R" % add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(font_file), font_file))
        gid_map = b"%d 0 R" % add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(cid_to_gid), cid_to_gid))
        metrics = b"/W [1 [%s]]" % " ".join(map(str, widths)).encode()
    else:
        gid_map, metrics = b"/Identity", b"/DW 1000"
    descriptor = add(
        b"<< /Type /FontDescriptor /FontName /DocqaUnicode /Flags 32 /FontBBox [0 -200 1000 900] "
        b"/ItalicAngle 0 /Ascent 900 /Descent -200 /CapHeight 700 /StemV 80 %s >>" % embedded
    )
    cid_font = add(
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /DocqaUnicode /CIDToGIDMap %s "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
        b"/FontDescriptor %d 0 R %s >>" % (gid_map, descriptor, metrics)
    )
    cmap = _to_unicode(cids)
    to_unicode = add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(cmap), cmap))
    return add(
        b"<< /Type /Font /Subtype /Type0 /BaseFont /DocqaUnicode /Encoding /Identity-H "
        b"/DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>" % (cid_font, to_unicode)
    )


def _embed(truetype: str | Path, cids: dict[str, int]) -> tuple[bytes, bytes, list[int]]:
    """``truetype`` cut down to the glyphs of ``cids`` (fontTools; glyph ids kept), the
    CIDToGIDMap that draws each CID with its character's glyph (0, nothing, when the font has
    none) and each CID's width in thousandths of an em."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    font = TTFont(truetype)
    cmap, advances, em = font.getBestCmap(), font["hmtx"].metrics, font["head"].unitsPerEm
    by_cid = sorted(cids.items(), key=lambda item: item[1])
    names = [cmap.get(ord(char), ".notdef") for char, _ in by_cid]
    gids = [font.getGlyphID(name) for name in names]
    options = subset.Options(retain_gids=True, notdef_outline=True)
    options.drop_tables += ["FFTM"]  # FontForge's timestamps: fontTools would warn that it drops them
    subsetter = subset.Subsetter(options)
    subsetter.populate(gids=gids)
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    cid_to_gid = b"\0\0" + b"".join(gid.to_bytes(2, "big") for gid in gids)  # CID 0 is unused
    return out.getvalue(), cid_to_gid, [round(advances[name][0] * 1000 / em) for name in names]


def _to_unicode(cids: dict[str, int]) -> bytes:
    entries = [f"<{cid:04X}> <{char.encode('utf-16-be').hex().upper()}>" for char, cid in cids.items()]
    blocks = []
    for i in range(0, len(entries), 100):  # at most 100 entries per block
        chunk = entries[i : i + 100]
        blocks.append(f"{len(chunk)} beginbfchar\n" + "\n".join(chunk) + "\nendbfchar")
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /DocqaUnicode def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + "\n".join(blocks)
        + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend"
    ).encode("ascii")


COLUMN_GAP = 24


def _content(page: str, cids: dict[str, int], columns: int = 1, row_by_row: bool = False) -> bytes:
    # U+FEFF has no glyph, and pypdf takes it for a right-to-left character (it would move the
    # spaces next to it), so it is left out.
    width = (PAGE_WIDTH - 2 * MARGIN - (columns - 1) * COLUMN_GAP) / columns
    size, lines = _fit(page.replace("\ufeff", ""), width, columns)
    per_column = -(-len(lines) // columns) if lines else 0
    ops = []
    if row_by_row:
        for row in range(per_column):
            for column in range(columns):
                index = column * per_column + row
                if index < len(lines) and lines[index]:
                    x = MARGIN + column * (width + COLUMN_GAP)
                    y = PAGE_HEIGHT - MARGIN - row * size * LEADING
                    ops += [f"BT {x:.2f} {y:.2f} Td", *_show(lines[index], size, cids), "ET"]
        return "\n".join(ops).encode("ascii")
    for column in range(columns):
        x = MARGIN + column * (width + COLUMN_GAP)
        ops.append(f"BT {size * LEADING:.2f} TL {x:.2f} {PAGE_HEIGHT - MARGIN} Td")
        for line in lines[column * per_column:(column + 1) * per_column]:
            ops += [*_show(line, size, cids), "T*"]
        ops.append("ET")
    return "\n".join(ops).encode("ascii")


def _show(line: str, size: float, cids: dict[str, int]) -> list[str]:
    """The operators that draw ``line`` at the current position, one per font run."""
    ops = []
    for font, run in _runs(line):
        if font == "F1":
            hexed = run.encode("cp1252").hex()
        else:
            hexed = "".join(f"{cids.setdefault(c, len(cids) + 1):04x}" for c in run)
        ops.append(f"/{font} {size:.2f} Tf <{hexed}> Tj")
    return ops


def _fit(page: str, width: float, columns: int = 1) -> tuple[float, list[str]]:
    """The largest font size (at most ``FONT_SIZE``) whose wrapped lines fit on the page."""
    size = FONT_SIZE
    while True:
        # Helvetica averages about half an em per character.
        lines = _wrap(page, int(width / (0.5 * size)))
        if len(lines) * size * LEADING <= columns * (PAGE_HEIGHT - 2 * MARGIN) or size < 1:
            return size, lines
        size *= 0.8


def _wrap(page: str, width: int) -> list[str]:
    lines: list[str] = []
    for i, paragraph in enumerate(page.split("\n\n")):
        if i:
            lines.append("")
        for raw in paragraph.split("\n"):
            wrapped = textwrap.wrap(raw, width, break_long_words=False, break_on_hyphens=False)
            lines.extend(_no_trailing_hyphen(wrapped))
    return lines


def _no_trailing_hyphen(lines: list[str]) -> list[str]:
    """Move a word ending in "-" to the next line, so "pre- and post-war" is not read back as a
    hyphenated word ("preand")."""
    out = list(lines)
    for i in range(len(out) - 1):
        head, _, last = out[i].rpartition(" ")
        if last.endswith("-") and head:
            out[i], out[i + 1] = head, f"{last} {out[i + 1]}"
    return out


def _runs(line: str) -> list[tuple[str, str]]:
    """Split a line into (font, text) runs: "F1" for Windows-1252 characters, else "F2"."""
    return [(font, "".join(chars)) for font, chars in groupby(line, key=_font_of)]


def _font_of(char: str) -> str:
    try:
        char.encode("cp1252")
    except UnicodeEncodeError:
        return "F2"
    return "F1"


def _serialise(objects: list[bytes], root: int) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.write(b"".join(b"%010d 00000 n \n" % offset for offset in offsets))
    out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref))
    return out.getvalue()


def write_jbig2_pdf(path: str | Path, text: str, *, dpi: int = 300) -> Path:
    """One page of ``text``, typeset, rasterised to black and white at ``dpi`` and stored as a
    JBIG2 image, as office scanners and ocrmypdf/jbig2enc write them: an image-only page.

    The JBIG2 stream (ITU T.88, the embedded form PDF uses) is one page-information segment, one
    immediate generic region coded with MMR (the ITU T.6 fax code, which Pillow writes through
    libtiff as TIFF Group 4) and an end-of-page segment."""
    import struct

    import pypdfium2 as pdfium
    from PIL import Image, ImageOps

    gray = pdfium.PdfDocument(_pdf_bytes([text]))[0].render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
    ink = ImageOps.invert(gray).point(lambda v: 255 if v > 96 else 0).convert("1")  # 1 bits = ink
    tiff = io.BytesIO()
    ink.save(tiff, "TIFF", compression="group4", tiffinfo={278: ink.height})  # one strip
    tags = Image.open(io.BytesIO(tiff.getvalue())).tag_v2
    mmr = tiff.getvalue()[tags[273][0] : tags[273][0] + tags[279][0]]
    width, height = ink.size

    def segment(number: int, kind: int, data: bytes) -> bytes:  # page 1, refers to no segment
        return struct.pack(">IBBBI", number, kind, 0, 1, len(data)) + data

    jbig2 = (segment(0, 48, struct.pack(">IIIIBH", width, height, 0, 0, 0, 0))
             + segment(1, 38, struct.pack(">IIIIB", width, height, 0, 0, 0) + b"\x01" + mmr)
             + segment(2, 49, b""))
    w, h = width * 72 / dpi, height * 72 / dpi
    draw = b"q %.2f 0 0 %.2f 0 0 cm /Im0 Do Q" % (w, h)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.2f %.2f] /Contents 4 0 R "
        b"/Resources << /XObject << /Im0 5 0 R >> >> >>" % (w, h),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(draw), draw),
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 1 "
        b"/Filter /JBIG2Decode /Length %d >>\nstream\n%s\nendstream" % (width, height, len(jbig2), jbig2),
    ]
    path = Path(path)
    path.write_bytes(_serialise(objects, 1))
    return path
