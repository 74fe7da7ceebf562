"""Scanned pages -> text: render a PDF page with pypdfium2, read it with Tesseract.

Runs inside the indexer's worker processes. Tesseract is a separate program: each page is one
``tesseract`` process with one thread (``OMP_THREAD_LIMIT=1``; the indexer already keeps every
core busy with one worker each), its own time limit, and the kernel's promise to kill it if
the worker dies (a worker stopped by the per-file limit takes its Tesseract with it).
pytesseract would add temporary files and could not give that promise.
"""

from __future__ import annotations

import ctypes
import math
import os
import re
import shutil
import signal
import subprocess
import time
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache

from docqa.errors import OcrUnavailable
from docqa.types import OcrOptions

# Scans are usually 200-300 dpi; Tesseract reads body text best at about 300.
DPI = 300
# A page is rendered at DPI unless that would exceed this many pixels (a poster-sized page):
# then at the largest scale that fits, so one page cannot take gigabytes.
MAX_PIXELS = 40_000_000
# Gray levels at or above this are paper: a page without a darker pixel is blank (no Tesseract).
_PAPER = bytes(range(160, 256))
# Below this many seconds left for the file, the remaining pages are not started.
MIN_PAGE_S = 1.0
_PR_SET_PDEATHSIG = 1
# Tesseract guesses between straight and curly quotes: on typeset SQuAD pages (bench/ocr.py) it
# read 30 of 256 straight apostrophes as ’ or ‘ ("Newton‘s"), while a text layer holds what the
# author typed. OCR'd text therefore writes quotation marks in ASCII, the form questions are
# typed in. (Dashes are left as read: a hyphen folded in would join words at line ends.)
_ASCII_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
# Tesseract starts a paragraph where its layout guess says so, often inside a sentence ("the
# river's natural\n\ncourse"; on the pages of bench/ocr.py, twice as many paragraphs as the
# text has), and passages and sentences end at paragraphs. A break after a line that ends no
# sentence, before a lowercase letter, is taken for a line break (clean_text then joins the
# lines): a real paragraph does not start in lowercase in the middle of a sentence.
_BROKEN_PARAGRAPH = re.compile(r"(?<=[^\s.!?:\"')\]])[ \t]*\n[ \t]*\n\s*(?=[a-z])")


def install_hint(lang: str = "eng") -> str:
    packages = " ".join(dict.fromkeys(["tesseract-ocr", *(_package(code) for code in lang.split("+"))]))
    return (f"Tesseract is not installed, so scanned pages cannot be read; install it "
            f"(Debian/Ubuntu: sudo apt install {packages}; macOS: brew install tesseract)")


def _package(code: str) -> str:
    """Debian's package for a Tesseract language code: chi_sim -> tesseract-ocr-chi-sim."""
    return "tesseract-ocr-" + code.lower().replace("_", "-")


@cache
def _installed_languages() -> frozenset[str] | None:
    """The language data Tesseract has, or None when it is not installed."""
    if shutil.which("tesseract") is None:
        return None
    try:
        run = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    # The first line is 'List of available languages in "...":'.
    return frozenset(line.strip() for line in run.stdout.splitlines()[1:] if line.strip())


def available() -> bool:
    return _installed_languages() is not None


def check(lang: str) -> None:
    """Raise ``OcrUnavailable`` (one line naming what to install) unless Tesseract can read ``lang``."""
    installed = _installed_languages()
    if installed is None:
        raise OcrUnavailable(install_hint(lang))
    missing = [code for code in lang.split("+") if code not in installed]
    if missing:
        packages = " ".join(_package(code) for code in missing)
        have = ", ".join(sorted(installed - {"osd"})) or "none"
        raise OcrUnavailable(f"Tesseract has no language data for {'+'.join(missing)} (installed: {have}); "
                             f"install it (Debian/Ubuntu: sudo apt install {packages}) or pass another --ocr-lang")


# Appended to ``key`` when a time limit left pages unread (the indexer adds the limits).
PARTIAL = ":partial"


def key(options: OcrOptions) -> str:
    """What the text of a PDF page that needs OCR depends on, recorded with each document that
    has one: a document whose key differs from the run's is extracted again."""
    if options.mode == "off":
        return "off"
    if not available():
        return f"{options.mode}:unavailable"
    return f"{options.mode}:{options.lang}"


def needs_ocr(text: str) -> bool:
    """True for a page without a usable text layer: no text, or text that is mostly replacement,
    private-use or control characters (a font without a Unicode map)."""
    chars = [c for c in text if not c.isspace()]
    bad = sum(c == "\ufffd" or unicodedata.category(c) in ("Co", "Cc", "Cs") for c in chars)
    return bad * 2 >= len(chars)  # also true for no text at all


@dataclass(frozen=True)
class PageText:
    number: int  # 1-based
    text: str = ""
    problem: str = ""  # why there is no text: a time limit, a Tesseract error
    late: bool = False  # not started: the file's time limit was about to run out
    slow: bool = False  # stopped at the page's own time limit


def read_pages(data: bytes, numbers: Iterable[int], options: OcrOptions, *, password: str | None = None,
               deadline: float | None = None) -> Iterator[PageText]:
    """OCR pages ``numbers`` (1-based) of the PDF in ``data``, one at a time.

    Each page gets ``options.page_timeout_s`` seconds, less if the file's ``deadline``
    (``time.monotonic()``) comes first; once too little is left, the remaining pages come back
    with a problem and no text."""
    import pypdfium2 as pdfium  # only workers that meet a scanned page load it

    try:
        pdf = pdfium.PdfDocument(data, password=password)
    except pdfium.PdfiumError as err:  # pypdf repaired what pdfium will not open
        for number in numbers:
            yield PageText(number, problem=f"cannot render it ({err})")
        return
    try:
        for number in numbers:
            left = float("inf") if deadline is None else deadline - time.monotonic()
            if left < MIN_PAGE_S:
                yield PageText(number, problem="the file's time limit ran out", late=True)
                continue
            yield _read_page(pdf, number, options.lang, min(options.page_timeout_s, left))
    finally:
        pdf.close()


def _read_page(pdf: object, number: int, lang: str, timeout: float) -> PageText:
    import pypdfium2 as pdfium

    try:
        page = pdf[number - 1]  # type: ignore[index]
        width, height = page.get_size()  # points
        scale = min(DPI / 72, math.sqrt(MAX_PIXELS / max(1.0, width * height)))
        bitmap = page.render(scale=scale, grayscale=True)
    except pdfium.PdfiumError as err:
        return PageText(number, problem=f"cannot render it ({err})")
    pixels = _rows(bytes(bitmap.buffer), bitmap.width, bitmap.height, bitmap.stride)
    if not pixels.translate(None, _PAPER):
        return PageText(number)  # blank
    image = b"P5\n%d %d\n255\n" % (bitmap.width, bitmap.height) + pixels  # PGM: no encoding cost
    dpi = round(72 * scale)
    try:
        run = subprocess.run(
            ["tesseract", "stdin", "stdout", "-l", lang, "--dpi", str(dpi)],
            input=image, capture_output=True, timeout=timeout, preexec_fn=_die_with_worker,
            env={**os.environ, "OMP_THREAD_LIMIT": "1"},
        )
    except subprocess.TimeoutExpired:
        return PageText(number, problem=f"OCR took over {timeout:.3g} s", slow=True)
    except OSError as err:
        return PageText(number, problem=f"cannot run tesseract ({err.strerror or err})")
    if run.returncode != 0:
        lines = run.stderr.decode(errors="replace").strip().splitlines()
        return PageText(number, problem=f"tesseract failed ({lines[-1] if lines else f'exit code {run.returncode}'})")
    return PageText(number, tidy(run.stdout.decode("utf-8", errors="replace")))


def tidy(text: str) -> str:
    """Tesseract's text with ASCII quotation marks and its paragraph breaks inside a sentence
    turned into line breaks."""
    return _BROKEN_PARAGRAPH.sub("\n", text.translate(_ASCII_QUOTES))


def _rows(buffer: bytes, width: int, height: int, stride: int) -> bytes:
    if stride == width:
        return buffer
    return b"".join(buffer[row * stride : row * stride + width] for row in range(height))


def _die_with_worker() -> None:
    """In the Tesseract child, before exec: be killed when the worker that started it dies."""
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the page's own time limit still holds
        pass
