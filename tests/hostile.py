"""Hostile files for the reliability tests, generated in milliseconds.

The PDFs are written object by object with a correct xref table, so each one gets past
pypdf's parser and attacks what comes after: the page tree, the content streams, memory.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from pathlib import Path

FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def pdf(objects: Sequence[bytes], root: int = 1) -> bytes:
    """A PDF whose object ``i + 1`` is ``objects[i]``, with a valid xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref)
    return bytes(out)


def stream(data: bytes, *, compress: bool = False, level: int = 9) -> bytes:
    if compress:
        data = zlib.compress(data, level)
        return b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + data + b"\nendstream"
    return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def text_pdf(texts: Sequence[str]) -> bytes:
    """One page per text, Helvetica: a well-formed PDF to compare the hostile ones with."""
    n = len(texts)
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(n))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n), FONT]
    for i, text in enumerate(texts):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 3 0 R >> >> >>" % (5 + 2 * i))
        objects.append(stream(b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text.encode("latin-1")))
    return pdf(objects)


def many_pages_pdf(pages: int) -> bytes:
    """``pages`` pages that all draw one shared content stream: big to read, small on disk."""
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages), FONT,
               stream(b"BT /F1 12 Tf 72 720 Td (The same line on every page of a long file.) Tj ET")]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
                b"/Resources << /Font << /F1 3 0 R >> >> >>"] * pages
    return pdf(objects)


def nested_pdf(depth: int) -> bytes:
    """A page whose dictionary holds arrays nested ``depth`` deep (recursive parsers overflow)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Nest "
               + b"[" * depth + b"]" * depth + b" >>",
               stream(b"BT /F1 12 Tf 72 720 Td (Deep) Tj ET")]
    return pdf(objects)


def cyclic_pdf() -> bytes:
    """A page tree whose node is its own kid and its own parent."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 /Parent 2 0 R >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               stream(b"BT /F1 12 Tf 72 720 Td (Loop) Tj ET"), FONT]
    return pdf(objects)


def self_drawing_pdf() -> bytes:
    """A page whose form XObject draws itself: endless recursion for a naive extractor."""
    form = b"BT /F1 12 Tf (again) Tj ET /X0 Do"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /XObject << /X0 5 0 R >> /Font << /F1 6 0 R >> >> >>",
               stream(b"BT /F1 12 Tf 72 720 Td (Loop) Tj ET /X0 Do"),
               b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Length %d "
               b"/Resources << /XObject << /X0 5 0 R >> /Font << /F1 6 0 R >> >> >>\nstream\n" % len(form)
               + form + b"\nendstream",
               FONT]
    return pdf(objects)


def slow_pdf(operators: int = 300_000, pages: int = 1) -> bytes:
    """``pages`` pages that draw one content stream of ``operators`` text-showing operators.

    Small on disk (Flate packs the repetition), about 15 s of pure-Python parsing per page in
    pypdf (under its 2M-token budget per stream, so it would finish): a real input that only
    the per-file timeout stops."""
    content = b"BT /F1 12 Tf 72 720 Td " + b"(x) Tj 1 0 Td " * operators + b"ET"
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages), FONT,
               stream(content, compress=True)]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
                b"/Resources << /Font << /F1 3 0 R >> >> >>"] * pages
    return pdf(objects)


def bomb_pdf(pages: int = 60, stream_mb: int = 70) -> bytes:
    """A decompression bomb that passes pypdf's per-stream limit (75 MB): each page object sits
    in its own object stream padded to ``stream_mb`` MB, and pypdf keeps every decoded
    object stream, so opening the file holds pages x stream_mb MB (4.2 GB by default) of a
    file of a few MB."""
    padding = b"x" * (stream_mb << 20)  # not whitespace: pypdf stops right after the object
    tail = zlib.compressobj(9, wbits=-15)
    tail_deflate = tail.compress(padding) + tail.flush()
    page_numbers = range(5, 5 + 2 * pages, 2)  # page i is object 5 + 2i, its stream 6 + 2i
    kids = b" ".join(b"%d 0 R" % n for n in page_numbers)
    direct = [b"<< /Type /Catalog /Pages 2 0 R >>",
              b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages), FONT,
              stream(b"BT /F1 12 Tf 72 720 Td (Boom) Tj ET")]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    entries: dict[int, tuple[int, int, int]] = {}  # object -> (type, field 2, field 3) of the xref stream

    def put(number: int, body: bytes) -> None:
        entries[number] = (1, len(out), 0)
        out.extend(b"%d 0 obj\n" % number + body + b"\nendobj\n")

    for number, body in enumerate(direct, 1):
        put(number, body)
    for page in page_numbers:
        page_dict = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
                     b"/Resources << /Font << /F1 3 0 R >> >> >>")
        index = b"%d 0 " % page
        head = index + page_dict
        # zlib header + the head as its own flushed deflate block + the shared padding blocks
        # + the checksum of the whole: one compression of the padding serves every page.
        deflate = zlib.compressobj(9, wbits=-15)
        data = (b"\x78\xda" + deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH) + tail_deflate
                + zlib.adler32(padding, zlib.adler32(head)).to_bytes(4, "big"))
        put(page + 1, b"<< /Type /ObjStm /N 1 /First %d /Length %d /Filter /FlateDecode >>\nstream\n"
            % (len(index), len(data)) + data + b"\nendstream")
        entries[page] = (2, page + 1, 0)
    size = max(entries) + 2
    xref_number = size - 1
    entries[xref_number] = (1, len(out), 0)
    rows = b"".join(bytes([t]) + a.to_bytes(4, "big") + b.to_bytes(2, "big")
                    for t, a, b in (entries.get(i, (0, 0, 0)) for i in range(size)))
    xref = len(out)
    out.extend(b"%d 0 obj\n<< /Type /XRef /Size %d /Root 1 0 R /W [1 4 2] /Length %d >>\nstream\n"
               % (xref_number, size, len(rows)) + rows + b"\nendstream\nendobj\n")
    out.extend(b"startxref\n%d\n%%%%EOF\n" % xref)
    return bytes(out)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def random_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def sparse_file(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space (for size caps)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path

