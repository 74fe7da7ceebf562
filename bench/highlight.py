"""Where does `docqa serve`'s highlight land on a drawn PDF page? (issue 15)

    python bench/highlight.py                  # the shared PDFs, 20 spans per page
    python bench/highlight.py --spans 40 --seed 2 FOLDER...

Indexes the PDFs (``../shared/data/pdfs`` by default), serves them, and in headless Chromium
has pdf.js build each page's text layer, as the page does. For random spans of the indexed
page text (1-8 words, so many cross a line end or a column break) three ways of finding the
span's characters in the text layer are compared, all in the same run on the same spans:

- ``aligned``: the page's way (docqa/static/highlight.mjs): the whole indexed page text aligned
  character by character with the text layer, the span mapped through the alignment;
- ``context``: search the text layer for the span's text, picking the occurrence whose
  surrounding text best matches the citation's context (30 characters each side);
- ``first``: search the text layer for the span's text, first occurrence.

A placement is *exact* when the marked characters are the span's characters (white space
aside) and they are the cited occurrence: the span widened on both sides until it occurs once
in the index text occurs once in the text layer too, and the marks start where the span does
in it (when the widened span is not in the layer, only the marked text is checked). Prints a
markdown table per folder.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docqa import DocQA  # noqa: E402
from docqa.server import create_app, running  # noqa: E402

PDFS = ROOT.parent / "shared" / "data" / "pdfs"
CHROMIUM = "/usr/bin/chromium"
METHODS = ("aligned", "context", "first")

# Runs in the page: for each page of one document, the text layer's items, then each method's
# placement of each span: the marked characters (normalised) and where they start in the layer.
PLACE = """async ({documentId, pages}) => {
  const {Alignment, characters} = await import('/static/highlight.mjs');
  const pdfjs = await import('/static/pdfjs/pdf.min.mjs');
  pdfjs.GlobalWorkerOptions.workerSrc = '/static/pdfjs/pdf.worker.min.mjs';
  let doc;
  try {
    doc = await pdfjs.getDocument({url: `/documents/${documentId}/file`, isEvalSupported: false}).promise;
  } catch (e) {
    return {error: String(e)};
  }
  const norm = (s) => characters(s).map((c) => c.c).join('');
  const starts = (hay, needle) => {
    const out = [];
    for (let i = hay.indexOf(needle); needle && i >= 0; i = hay.indexOf(needle, i + 1)) out.push(i);
    return out;
  };
  const out = [];
  for (const {page, text, spans} of pages) {
    const items = (await (await doc.getPage(page)).getTextContent()).items
      .filter((i) => i.str !== undefined).map((i) => i.str);
    const alignment = new Alignment(text, items);
    const flatA = alignment.a.map((c) => c.c).join('');
    const flatB = alignment.b.map((c) => c.c).join('');
    for (const [start, end] of spans) {
      const from = alignment.a.findIndex((c) => c.at >= start);
      let to = from;
      while (to >= 0 && to < alignment.a.length && alignment.a[to].at < end) to++;
      if (from < 0 || to === from) continue;
      const want = flatA.slice(from, to);
      const before = flatA.slice(Math.max(0, from - 30), from);
      const after = flatA.slice(to, to + 30);
      // The truth: the span widened on both sides until it occurs once in the index text; if
      // that occurs once in the layer too, the span is there. Otherwise only the text is checked.
      const inB = starts(flatB, want);
      let truth = null;
      for (let w = 0; w <= 400; w += 4) {
        const left = Math.min(w, from);
        const window = flatA.slice(from - left, to + w);
        if (starts(flatA, window).length > 1) continue;
        const found = starts(flatB, window);
        if (found.length === 1) truth = found[0] + left;
        break;
      }
      const placed = {};
      const parts = alignment.locate(start, end);
      if (parts) {
        const marked = norm(parts.map((p) => items[p.item].slice(p.lo, p.hi)).join(''));
        const at = alignment.b.findIndex((c) => c.item === parts[0].item && c.u16 >= parts[0].lo);
        placed.aligned = {marked, at};
      }
      if (inB.length) {
        placed.first = {marked: want, at: inB[0]};
        const score = (i) => {
          let s = 0;
          while (s < before.length && flatB[i - 1 - s] === before[before.length - 1 - s]) s++;
          let t = 0;
          while (t < after.length && flatB[i + want.length + t] === after[t]) t++;
          return s + t;
        };
        placed.context = {marked: want, at: inB.reduce((x, y) => (score(y) > score(x) ? y : x))};
      }
      const exact = {};
      for (const m of ['aligned', 'context', 'first']) {
        const p = placed[m];
        exact[m] = !!p && p.marked === want && (truth === null || p.at === truth);
      }
      out.push({page, exact, ambiguous: truth === null && inB.length > 1, multiItem: !!parts && parts.length > 1});
    }
  }
  await doc.destroy();
  return {spans: out};
}"""


def sample_spans(text: str, n: int, rng: random.Random) -> list[tuple[int, int]]:
    """``n`` random spans of 1-8 whole words of ``text`` (code point offsets)."""
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    if not words:
        return []
    spans = []
    for _ in range(n):
        i = rng.randrange(len(words))
        j = min(len(words) - 1, i + rng.randrange(8))
        spans.append((words[i][0], words[j][1]))
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="*", type=Path, default=[PDFS])
    parser.add_argument("--spans", type=int, default=20, help="spans per page")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--by-document", action="store_true", help="a row per PDF, not per folder")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    rng = random.Random(args.seed)
    tally: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with tempfile.TemporaryDirectory() as tmp, DocQA(Path(tmp) / "h.db", model=str(Path(tmp) / "no-model")) as qa:
        report = qa.index(args.folders)
        docs = [d for d in qa.store.documents() if d.kind == "pdf" and d.status == "indexed"]
        skipped = [f"{f.path} ({f.status})" for f in report.files if f.status not in ("indexed", "unchanged")]
        with running(create_app(qa)) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
            page = browser.new_page()
            page.goto(url)
            for doc in docs:
                group = doc.path if args.by_document else Path(doc.abs_path).parent.name
                pages = []
                for number in range(1, doc.page_count + 1):
                    text = qa.store.page_text(doc.id, number) or ""
                    pages.append({"page": number, "text": text, "spans": sample_spans(text, args.spans, rng)})
                result = page.evaluate(PLACE, {"documentId": doc.id, "pages": pages})
                if "error" in result:
                    skipped.append(f"{doc.path} (pdf.js: {result['error'][:80]})")
                    continue
                for r in result["spans"]:
                    for t in (group, "all"):
                        tally[t]["spans"] += 1
                        tally[t]["ambiguous"] += r["ambiguous"]
                        tally[t]["several items"] += r["multiItem"]
                        for m in METHODS:
                            tally[t][m] += r["exact"][m]
            browser.close()
    print(f"{len(docs)} PDFs, {args.spans} spans per page, seed {args.seed}")
    print("| folder | spans | marked in 2+ text items | " + " | ".join(f"{m} exact" for m in METHODS) + " |")
    print("|---|---|---|" + "---|" * len(METHODS))
    for group in sorted(tally, key=lambda g: (g == "all", g)):
        t = tally[group]
        cells = " | ".join(f"{100 * t[m] / t['spans']:.1f}%" for m in METHODS)
        print(f"| {group} | {t['spans']} | {100 * t['several items'] / t['spans']:.0f}% | {cells} |")
    if skipped:
        print("not measured: " + "; ".join(skipped))


if __name__ == "__main__":
    main()
