"""One file -> pages of clean text: PDF (pypdf, page by page), plain text, Markdown, HTML.

``extract`` never raises for what a file contains: a file it cannot use comes back as an
``Extraction`` whose ``status`` names the problem (``empty``, ``encrypted``, ``corrupt``,
``unsupported``) and whose one-line ``message`` says what to do. Size caps and timeouts are
the indexer's job (it runs this in killable worker processes).
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PageElement, PreformattedString
from charset_normalizer import from_bytes
from markdown_it import MarkdownIt
from pypdf import PdfReader
from pypdf.errors import DependencyError, PyPdfError

from docqa import columns, ocr, office
from docqa.furniture import strip_furniture
from docqa.types import Extraction, OcrOptions

SUPPORTED: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".epub": "epub",
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
}

NEED_PASSWORD = "encrypted; pass --password or --passwords-file"
# markdown-it-py parses dense markup at ~0.3 MB/s; past this a file is indexed as plain text
# so a huge Markdown log does not run into the indexer's timeout.
MARKDOWN_PARSE_LIMIT = 4_000_000
# A "text" file with more control characters than this (after decoding) is binary.
BINARY_CONTROL_SHARE = 0.10

# Raised by the worker's own limits, not by bad content: let the indexer see them.
_PASS_THROUGH = (MemoryError, TimeoutError)


# The version of each kind's extraction: bump a kind's number when a change to how docqa reads
# it (or to docqa.split, for every kind) changes the pages or passages an index stores, so that
# existing indexes re-read those files on their next `docqa index` instead of keeping the old
# text until the files change. Kinds not listed are at 1.
# pdf 2: pages drawn row by row across columns are read column by column (docqa.columns).
# pdf 3, pptx 2: running heads and feet (a deck's footer) kept only where they first appear
# (docqa.furniture).
# pdf 4: columns set close together are no longer joined line by line (docqa.columns.CHAR_MARGIN).
EXTRACTION_VERSIONS = {"pdf": 4, "pptx": 2}


def extraction_version(kind: str) -> int:
    return EXTRACTION_VERSIONS.get(kind, 1)


def kind_of(path: Path) -> str | None:
    """The extractor kind for ``path`` by its suffix, or ``None`` when unsupported."""
    return SUPPORTED.get(path.suffix.lower())


def extract(path: Path, *, passwords: Sequence[str] = (), ocr: OcrOptions = OcrOptions(),
            deadline: float | None = None, data: bytes | None = None) -> Extraction:
    """Read ``path`` into cleaned pages; never raises for bad file content.

    ``ocr`` says when PDF pages are read with Tesseract; ``deadline`` (``time.monotonic()``) is
    when the file's time runs out: OCR stops short of it and keeps the pages read so far.
    ``data``: the file's bytes when they were read elsewhere (``path`` then only names its kind)."""
    kind = kind_of(path)
    if kind is None:
        suffix = path.suffix.lower() or "(no suffix)"
        return Extraction(
            "", status="unsupported", message=f"unsupported file type {suffix}; docqa reads "
            + ", ".join(sorted(SUPPORTED))
        )
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as err:
            return Extraction(kind, status="corrupt", message=f"cannot read: {err.strerror or err}")
    if kind == "pdf":
        return _extract_pdf(data, passwords, ocr, deadline)
    if kind in _PACKAGES:
        return _extract_package(kind, data)
    return _extract_text(kind, data)


# -- PDF -------------------------------------------------------------------------------------


def _extract_pdf(data: bytes, passwords: Sequence[str], options: OcrOptions, deadline: float | None) -> Extraction:
    if not data:
        return _corrupt_pdf("the file is empty (0 bytes)")
    password: str | None = None
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            problem, password = _unlock(reader, passwords)
            if problem:
                return Extraction("pdf", status="encrypted", message=problem)
        pages = reader.pages
        count = len(pages)
    except _PASS_THROUGH:
        raise
    except Exception as err:  # pypdf raises arbitrary types (KeyError, RecursionError...) on hostile files
        if isinstance(err, NotImplementedError) and b"/Encrypt" in data:
            return Extraction(
                "pdf", status="encrypted",
                message=f"encrypted in a way pypdf cannot open ({_reason(err)}); decrypt it first, e.g. with qpdf",
            )
        reason = _reason(err)
        if b"%PDF" not in data[:1024]:
            reason = f"not a PDF (no %PDF header; {reason})"
        return _corrupt_pdf(reason)
    if count == 0:
        return Extraction("pdf", status="empty", message="the PDF has no pages")
    raws: list[str] = []
    failed: list[tuple[int, str]] = []
    interleaved: list[int] = []
    for number in range(1, count + 1):
        if options.mode == "force":
            raws.append("")  # every page is read by OCR; its text layer is not even parsed
            continue
        try:
            # Plain (content-stream order) mode, not "layout": on the shared multi-column
            # papers (pdfTeX/Distiller) plain yields each column in reading order, while layout
            # mode interleaves the two columns line by line and drops rotated text (GeoBase
            # report: 22.7k -> 14.6k chars). Pages drawn row by row across their columns
            # (i1040nr) are re-read below by a layout engine.
            runs = columns.Runs()
            page = pages[number - 1]
            raws.append(page.extract_text(visitor_text=runs))
            if runs.interleaved(page):
                interleaved.append(number)
        except _PASS_THROUGH:
            raise
        except Exception as err:  # one bad page must not cost the others
            failed.append((number, _reason(err)))
            raws.append("")
    if len(failed) == count:
        return _corrupt_pdf(f"no page could be read ({failed[0][1]})")
    scanned = [n for n, raw in enumerate(raws, 1) if options.mode == "force" or ocr.needs_ocr(raw)]
    if interleaved:
        in_columns = columns.read_in_columns(data, interleaved, {n: raws[n - 1] for n in interleaved},
                                             password=password, deadline=deadline)
        for number, text in in_columns.items():
            raws[number - 1] = text
    if not scanned:
        message = _page_failures(failed)
        if not any(texts := _page_texts(raws)):  # text that cleaning removes entirely (zero-width characters)
            return Extraction("pdf", status="empty", message=message or "no text on any page")
        return Extraction("pdf", pages=texts, message=message)
    ocr_pages: list[int] = []
    unread: list[ocr.PageText] = []
    if options.mode == "off":
        note = f"{len(scanned)} of {count} pages have no text layer (scanned?) and --ocr is off; use --ocr auto to read them"
    elif not ocr.available():
        note = f"{len(scanned)} of {count} pages have no text layer (scanned?); {ocr.install_hint(options.lang)}"
    else:
        note = ""
        for page in ocr.read_pages(data, scanned, options, password=password, deadline=deadline):
            if page.problem:
                unread.append(page)
            elif clean_text(page.text):
                raws[page.number - 1] = page.text
                ocr_pages.append(page.number)
    failed = [(n, reason) for n, reason in failed if n not in ocr_pages]  # OCR read what pypdf could not
    message = "; ".join(filter(None, [_page_failures(failed), note, _ocr_failures(unread)]))
    # Pages a time limit left unread are read again under other limits (see the indexer).
    key = ocr.key(options) + (ocr.PARTIAL if any(p.late or p.slow for p in unread) else "")
    if not any(texts := _page_texts(raws)):
        message = message if note or unread else "no text found on any page, even by OCR"
        return Extraction("pdf", status="empty", message=message, ocr=key)
    return Extraction("pdf", pages=texts, message=message, ocr_pages=tuple(ocr_pages), ocr=key)


def _page_texts(raws: list[str]) -> tuple[str, ...]:
    # Furniture is found on the raw lines: cleaning may join a running foot to the line above.
    return tuple(clean_text(raw) for raw in strip_furniture(raws))


def _ocr_failures(unread: list[ocr.PageText]) -> str:
    """One line for the pages OCR could not read: over the page's time limit, past the file's,
    or not renderable. Pages stopped by a time limit are read again by a run with other limits."""
    late = [p.number for p in unread if p.late]
    parts = [_page_failures([(p.number, p.problem) for p in unread if not p.late], "could not be read by OCR")]
    if any(p.slow for p in unread):
        parts.append("raise --ocr-timeout to read dense pages (the next run with another limit does)")
    if late:
        pages = "1 page" if len(late) == 1 else f"{len(late)} pages"
        parts.append(f"{pages} from page {late[0]} on were not OCR'd: the file's time limit ran out; "
                     "raise --timeout for long scans (the next run with another limit reads them)")
    return "; ".join(filter(None, parts))


def _unlock(reader: PdfReader, passwords: Sequence[str]) -> tuple[str, str | None]:
    """Decrypt with "" (an owner-only password must just work) then each password.

    Returns ("", the password that worked) once decrypted, else (the message for an
    ``encrypted`` result, None)."""
    try:
        for password in ("", *passwords):
            if reader.decrypt(password):
                return "", password
    except DependencyError:
        return "encrypted with AES, which needs the cryptography package: pip install 'pypdf[crypto]'", None
    if not passwords:
        return NEED_PASSWORD, None
    tried = "the password given" if len(passwords) == 1 else f"none of the {len(passwords)} passwords given"
    return f"encrypted; {tried} opens it; pass the right one with --password or --passwords-file", None


def _corrupt_pdf(reason: str) -> Extraction:
    return Extraction(
        "pdf", status="corrupt", message=f"corrupt PDF: {reason}; re-download or repair it (e.g. with qpdf)"
    )


def _reason(err: BaseException) -> str:
    """One line naming what went wrong: pypdf's own messages stand alone, others keep the type."""
    text = " ".join(str(err).split())[:200]
    if isinstance(err, PyPdfError) and text:
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _page_failures(failed: list[tuple[int, str]], what: str = "could not be read") -> str:
    if not failed:
        return ""
    numbers = [str(n) for n, _ in failed[:5]]
    more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
    noun = "page" if len(failed) == 1 else "pages"
    return f"{noun} {', '.join(numbers)}{more} {what}: {failed[0][1]}"


# -- Word, PowerPoint, EPUB -------------------------------------------------------------------

# kind -> (what the file is called, the program to check it with)
_PACKAGES = {"docx": ("Word document", "Word or LibreOffice"),
             "pptx": ("PowerPoint presentation", "PowerPoint or LibreOffice"),
             "epub": ("EPUB e-book", "an e-book reader")}


def _extract_package(kind: str, data: bytes) -> Extraction:
    """A ZIP of XML parts (docx, pptx) or of XHTML chapters (epub) -> pages (``docqa.office``)."""
    name, program = _PACKAGES[kind]
    try:
        if kind == "epub":
            # A chapter is read like any HTML page, but whole: it holds no site chrome.
            pages = [clean_text(_html_text(_decode(chapter, html=True))) for chapter in office.epub_chapters(data)]
            pages = [page for page in pages if page]
        else:
            # A deck's footer ("Acme Corp - confidential") is on every slide, like a PDF's running foot.
            raw = office.docx_pages(data) if kind == "docx" else strip_furniture(office.pptx_pages(data))
            pages = [clean_text(page) for page in raw]
    except _PASS_THROUGH:
        raise
    except office.Encrypted as err:
        return Extraction(kind, status="encrypted", message=str(err))
    except Exception as err:  # the libraries raise what their parsers raise (zipfile, lxml, KeyError...)
        if not data:
            reason = "the file is empty (0 bytes)"
        elif isinstance(err, ValueError) or zipfile.is_zipfile(io.BytesIO(data)):
            reason = _reason(err)
        elif data.startswith(b"PK"):
            reason = "a truncated or damaged ZIP archive"
        else:
            reason = f"not a ZIP archive, as every .{kind} file is"
        return Extraction(kind, status="corrupt", message=f"corrupt {name}: {reason}; check that it opens in {program}")
    if not any(pages):
        return Extraction(kind, status="empty", message=f"no text in the {name}")
    return Extraction(kind, pages=tuple(pages))


# -- text, Markdown, HTML --------------------------------------------------------------------


def _extract_text(kind: str, data: bytes) -> Extraction:
    text = _decode(data, html=kind == "html")
    if _looks_binary(text):
        return Extraction(kind, status="unsupported", message="binary content, not text; not indexed")
    message = ""
    if kind == "html":
        text = _main_text(text)
    elif kind == "md":
        if len(text) > MARKDOWN_PARSE_LIMIT:
            message = f"over {MARKDOWN_PARSE_LIMIT // 1_000_000} MB: indexed as plain text, markup kept"
        else:
            text = _markdown_text(text)
    page = clean_text(text)
    if not page:
        return Extraction(kind, status="empty", message="no text in the file")
    return Extraction(kind, pages=(page,), message=message)


_BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
               (b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.I)
# A valid multi-byte UTF-8 sequence (no overlongs, no surrogates).
_UTF8_MULTI = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
_HIGH_BYTE = re.compile(rb"[\x80-\xff]")


def _decode(data: bytes, *, html: bool = False) -> str:
    """Bytes -> str: a BOM wins, then BOM-less UTF-16, UTF-8, a declared HTML charset,
    mostly-UTF-8 (bad bytes become U+FFFD), charset-normalizer's guess, Latin-1."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    utf16 = _bomless_utf16(data)
    if utf16:
        return data.decode(utf16, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = _META_CHARSET.search(data, 0, 4096) if html else None
    if declared:
        try:
            return data.decode(declared.group(1).decode("ascii"), errors="replace")
        except LookupError:
            pass  # an unknown charset name: guess instead
    if _mostly_utf8(data):
        return data.decode("utf-8", errors="replace")
    return _guess_legacy(data)


def _guess_legacy(data: bytes) -> str:
    """A legacy 8-bit encoding by charset-normalizer's guess, except that Windows-1252 (Latin-1's
    superset, by far the most common) wins every tie: in a short French or German text, cp1250
    or cp1251 read as cleanly by its measures, and "Crème" would become "Crčme"."""
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        return data.decode("latin-1")
    for match in matches:
        if ("cp1252" == match.encoding or "cp1252" in match.could_be_from_charset) and (
            match.chaos <= best.chaos + 0.01 and match.coherence >= best.coherence - 0.01
        ):
            return data.decode("cp1252", errors="replace")
    return str(best)


def _bomless_utf16(data: bytes) -> str:
    """"utf-16-le"/"-be" when NULs fill one byte of most pairs (ASCII-heavy UTF-16), else ""."""
    sample = data[:65536]
    if len(sample) < 4 or sample.count(0) < len(sample) // 4:
        return ""
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    pairs = len(sample) // 2
    if odd > 0.6 * pairs and even < 0.1 * pairs:
        return "utf-16-le"
    if even > 0.6 * pairs and odd < 0.1 * pairs:
        return "utf-16-be"
    return ""


def _mostly_utf8(data: bytes) -> bool:
    """True when most non-ASCII bytes form valid UTF-8 sequences: a UTF-8 file with a few bad
    bytes, not a legacy 8-bit encoding (where a lone é is never followed by a continuation)."""
    sample = data[:1_000_000]
    high = len(_HIGH_BYTE.findall(sample))
    valid = len(sample) - len(_UTF8_MULTI.sub(b"", sample))
    return valid * 2 >= high


_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")


def _looks_binary(text: str) -> bool:
    sample = text[:65536]
    return bool(sample) and len(_CONTROLS.findall(sample)) > BINARY_CONTROL_SHARE * len(sample)


_MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def _markdown_text(markdown: str) -> str:
    """Markdown -> its text: rendered by markdown-it-py (CommonMark: headings, emphasis, links,
    images, fences, inline HTML all handled by a real parser, not guessed by regexes), then
    read back like any HTML page."""
    return _html_text(_MARKDOWN.render(markdown))


# Subtrees that a reader never sees. Not <head> as a whole: html.parser does not close an
# unclosed <head>, so a sloppy page's whole <body> would sit inside it; its other children
# (meta, link, base) hold no text.
_INVISIBLE = frozenset(
    {"script", "style", "noscript", "template", "title", "svg", "iframe", "object", "embed", "canvas"}
)
# Elements that end a paragraph (and so a sentence) in the visible page.
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
        "h4", "h5", "h6", "header", "hgroup", "hr", "html", "legend", "li", "main", "nav", "ol",
        "p", "pre", "section", "summary", "table", "tbody", "thead", "tfoot", "tr", "ul",
    }
)
_CELLS = frozenset({"td", "th"})
_PARAGRAPH = "\n\n"
_WHITESPACE = re.compile(r"\s+")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


def _html_text(markup: str, *, main: bool = False) -> str:
    """The visible text of an HTML document; block elements become paragraph breaks. With
    ``main``, only the main content (``_main_roots``) and none of the page's chrome (``_chrome``).

    Parsed with the stdlib "html.parser" (no C dependency; a 20 MB page that is mostly one
    script parses in well under a second). The walk is iterative, so deep nesting is fine."""
    soup = BeautifulSoup(markup, "html.parser")
    parts: list[str] = []
    # (node, inside <pre>, inside a sectioning element); a plain str closes a block element.
    stack: list[tuple[PageElement | str, bool, bool]] = [(root, False, False) for root in reversed(
        _main_roots(soup) if main else [soup])]
    while stack:
        node, pre, sectioned = stack.pop()
        if isinstance(node, Tag):
            if node.name in _INVISIBLE or _hidden(node) or (main and _chrome(node, sectioned)):
                continue
            if node.name == "br":
                parts.append(_PARAGRAPH)
                continue
            edge = _PARAGRAPH if node.name in _BLOCKS else " " if node.name in _CELLS else ""
            pre = pre or node.name == "pre"
            sectioned = sectioned or node.name in _SECTIONING
            parts.append(edge)
            stack.append((edge, pre, sectioned))
            stack.extend((child, pre, sectioned) for child in reversed(node.contents))
        elif isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # comments, doctypes, CDATA...
                parts.append(str(node) if pre else _WHITESPACE.sub(" ", node))
        else:
            parts.append(node)
    return "".join(parts)


def _main_text(markup: str) -> str:
    """A web page's main content: its visible text (``_html_text``, so hidden text stays out and
    paragraphs, lists and tables keep their breaks), less the paragraphs that trafilatura, a
    main-content extractor, leaves out as boilerplate. Measured on 181 real pages
    (bench/webpages.py), trafilatura keeps the article far better than the page's semantic
    structure does; its own text output is not used because it breaks lines inside paragraphs
    and, on a small page with no chrome, falls back to keeping hidden text."""
    import trafilatura  # only workers that meet an HTML file load it

    main = trafilatura.extract(markup, favor_recall=True, include_tables=True, include_comments=False)
    left = Counter(_words(main or ""))
    kept = []
    for paragraph in _PARAGRAPHS.split(_html_text(markup)):
        words = _words(paragraph)
        found = Counter(words) & left
        if words and sum(found.values()) >= MAIN_SHARE * len(words):
            left -= found
            kept.append(paragraph)
    # Nothing it recognises as content among the visible paragraphs (it may have read hidden
    # text): the page's semantic structure decides.
    return "\n\n".join(kept) if kept else _html_text(markup, main=True)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


_WORD = re.compile(r"\w+")
_PARAGRAPHS = re.compile(r"\s*\n\s*\n\s*")
# A paragraph of the page is main content when this share of its words is in trafilatura's text.
MAIN_SHARE = 0.6


# A web page's chrome, by the page's own semantic structure (HTML elements and ARIA roles) and
# the names sites give it. A <header>/<footer> inside an article or section is the article's
# (its title, byline, notes), so only one directly in the page is chrome.
_SECTIONING = frozenset({"article", "section", "main"})
_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search", "dialog",
                           "alertdialog", "menu", "menubar"})
_CHROME_NAMES = re.compile(
    r"cookie|consent|gdpr|sidebar|breadcrumb|navbar|site-?(header|footer|nav)|social|share|newsletter"
    r"|subscribe|advert|related|popup|modal|skip-?link", re.I)


def _chrome(tag: Tag, sectioned: bool) -> bool:
    if tag.name in ("nav", "aside") or (tag.name in ("header", "footer") and not sectioned):
        return True
    role = tag.get("role")
    if isinstance(role, str) and role.strip().lower() in _CHROME_ROLES:
        return True
    names = " ".join(filter(None, [_attr(tag, "id"), _attr(tag, "class")]))
    return bool(names) and tag.name not in ("body", "html", "main", "article") and bool(_CHROME_NAMES.search(names))


def _attr(tag: Tag, name: str) -> str:
    value = tag.get(name)
    return " ".join(value) if isinstance(value, list) else value or ""


def _main_roots(soup: BeautifulSoup) -> list[Tag | BeautifulSoup]:
    """Where a page's main content is: its <main> (or role=main), else its outermost
    <article>s, else the whole page (from which ``_chrome`` still drops the chrome)."""
    found = soup.find("main") or soup.find(attrs={"role": "main"})
    if isinstance(found, Tag):
        return [found]
    articles = [a for a in soup.find_all("article") if a.find_parent("article") is None]
    return articles or [soup]


def _hidden(tag: Tag) -> bool:
    if tag.has_attr("hidden"):
        return True
    style = tag.get("style")
    return isinstance(style, str) and bool(_HIDDEN_STYLE.search(style))


# -- cleaning --------------------------------------------------------------------------------

# (old, new) pairs applied with str.replace, which is many times faster than re.sub on big text.
_LINE_ENDS = (("\r\n", "\n"), ("\r", "\n"), ("\x85", "\n"), ("\u2028", "\n"))
_PARAGRAPH_MARKS = (("\f", "\n\n"), ("\v", "\n\n"), ("\u2029", "\n\n"))
# The only white space NFKC leaves besides U+0020 and the line ends above.
_ODD_SPACES = (("\t", " "), ("\u1680", " "))
# Control characters (the page separator \f was turned into a paragraph break above), lone
# surrogates (SQLite cannot store them), and invisible characters that only split words.
_DROP = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u200b\u2060\ufeff\ud800-\udfff]")
_SOFT_HYPHEN_BREAK = re.compile("\u00ad *\n *(?=[^\n])")
_SPACE_RUNS = re.compile("  +")
_BLANK_LINE_RUNS = re.compile("\n\n\n+")
_LIST_ITEM = re.compile(r"(?:[•·▪◦‣*\-–—]|\d{1,3}[.)]|\(\w{1,3}\))\s")
_CJK = re.compile(r"[\u2e80-\u2fff\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
# Lines longer than this were not wrapped by a typesetter: their newline is meant.
_WRAPPED_LINE_MAX = 300
# A line shorter than this share of its paragraph's typical line ends a heading, list item or
# paragraph: its newline is kept (the sentence splitter breaks there).
_SHORT_LINE = 0.6


def clean_text(text: str) -> str:
    """Normalise extracted text (linear time).

    NFKC (ligatures such as U+FB01 become "fi"), control characters dropped (the page separator
    \\f never survives inside a page), runs of spaces collapsed, words hyphenated across a line
    end rejoined ("infor-\\nmation" -> "information"; "well-known" mid-line is kept), wrapped lines
    of a paragraph joined with spaces (a short line keeps its newline: a heading or the end of a
    paragraph), paragraph breaks kept as one blank line, stripped."""
    text = unicodedata.normalize("NFKC", text)
    for old, new in _LINE_ENDS + _PARAGRAPH_MARKS + _ODD_SPACES:
        text = text.replace(old, new)
    text = _DROP.sub("", text)
    if "\u00ad" in text:  # invisible; at a line end it marks a word the typesetter split
        text = _SOFT_HYPHEN_BREAK.sub("", text).replace("\u00ad", "")
    text = _SPACE_RUNS.sub(" ", text)
    text = text.replace(" \n", "\n").replace("\n ", "\n")
    text = _BLANK_LINE_RUNS.sub("\n\n", text)
    paragraphs = (_join_lines(p) for p in text.split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p).strip()


def _typical_width(lines: list[str]) -> int:
    """The paragraph's line width: its longest line, or with 5+ lines the 80th percentile, so
    one long header or table row does not make every body line look short."""
    lengths = sorted(map(len, lines))
    return lengths[-1] if len(lengths) < 5 else lengths[len(lengths) * 4 // 5]


def _join_lines(paragraph: str) -> str:
    lines = paragraph.split("\n")
    if len(lines) == 1:
        return paragraph
    short = _SHORT_LINE * _typical_width(lines)
    out = [lines[0]]
    for prev, line in zip(lines, lines[1:]):
        if not line:
            continue
        if prev.endswith(("-", "\u2010")) and prev[-2:-1].isalnum() and line[0].isalnum():
            # Hyphenated across the line end. A lowercase continuation is a word split by the
            # typesetter ("infor-\nmation"); otherwise ("1040-\nES") the hyphen is real.
            if line[0].islower():
                out[-1] = out[-1][:-1]
        elif len(prev) < short or len(prev) > _WRAPPED_LINE_MAX or _LIST_ITEM.match(line):
            out.append("\n")
        elif _CJK.match(prev[-1:]) and _CJK.match(line):
            pass  # CJK lines wrap without a space between characters
        else:
            out.append(" ")
        out.append(line)
    return "".join(out).strip()
