// Where a citation's characters are in a PDF page's text layer.
//
// The index holds pypdf's text of the page (cleaned: NFKC, wrapped lines joined, words
// hyphenated at a line end rejoined); pdf.js's text layer holds its own text items, one <span>
// each, laid over the glyphs. Both read the same content stream, so apart from white space,
// ligatures and rejoined hyphens they are the same characters in the same order. We align the
// two character sequences (white space left out) and map the citation's range through the
// alignment, so the mark lands on the cited occurrence, also when the answer wraps a line,
// continues in the next column, or occurs several times on the page. docs/serve.md measures
// this against searching the text layer for the answer's words.

const SKIPPED = /[\s\u00ad\u200b-\u200d\u2060\ufeff]/u;
const NEAR = 24; // a local difference (a rejoined hyphen, a ligature) is resolved within this
const GRAM = 8; // characters that must agree to resume the alignment after a difference

// Non-white-space characters of ``text`` (NFKC, one entry per output character) with their
// position: the code point index in ``text`` (``at``) and the UTF-16 offset (``u16``).
export function characters(text) {
  const out = [];
  let at = 0;
  let u16 = 0;
  for (const ch of text) {
    if (!SKIPPED.test(ch)) {
      for (const c of ch.normalize("NFKC")) {
        if (!SKIPPED.test(c)) out.push({ c, at, u16, len: ch.length });
      }
    }
    at += 1;
    u16 += ch.length;
  }
  return out;
}

function agree(a, b, i, j, n) {
  if (i + n > a.length || j + n > b.length) return false;
  for (let k = 0; k < n; k++) if (a[i + k].c !== b[j + k].c) return false;
  return true;
}

// For each character of ``a``, the index of its partner in ``b``, or -1.
export function align(a, b) {
  const partner = new Int32Array(a.length).fill(-1);
  let grams = null; // GRAM-long substrings of b -> their positions, built on first need
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i].c === b[j].c) {
      partner[i++] = j++;
      continue;
    }
    const near = resyncNear(a, b, i, j);
    if (near) {
      [i, j] = near;
      continue;
    }
    grams ??= gramIndex(b);
    const far = resyncFar(a, b, i, j, grams);
    if (!far) break;
    [i, j] = far;
  }
  return partner;
}

function resyncNear(a, b, i, j) {
  for (let total = 1; total <= NEAR; total++) {
    for (let di = 0; di <= total; di++) {
      if (agree(a, b, i + di, j + total - di, GRAM)) return [i + di, j + total - di];
    }
  }
  return null;
}

function gramIndex(b) {
  const grams = new Map();
  for (let j = 0; j + GRAM <= b.length; j++) {
    let key = "";
    for (let k = 0; k < GRAM; k++) key += b[j + k].c;
    const list = grams.get(key);
    if (list) list.push(j);
    else grams.set(key, [j]);
  }
  return grams;
}

// Text in another order (columns read differently, a caption moved): the next stretch of ``a``
// found in ``b``, taking the occurrence closest after ``j`` (else the closest before).
function resyncFar(a, b, i, j, grams) {
  for (let s = i; s + GRAM <= a.length; s++) {
    let key = "";
    for (let k = 0; k < GRAM; k++) key += a[s + k].c;
    const at = grams.get(key);
    if (!at) continue;
    const after = at.find((p) => p >= j);
    return [s, after ?? at[at.length - 1]];
  }
  return null;
}

// A page's indexed text aligned with its text layer's items (strings, in the layer's order).
export class Alignment {
  constructor(pageText, items) {
    this.a = characters(pageText);
    this.b = [];
    items.forEach((str, item) => {
      for (const ch of characters(str)) this.b.push({ ...ch, item });
    });
    this.partner = align(this.a, this.b);
  }

  // The parts of the text layer to mark for characters [start, end) (code points) of the page
  // text: a list of {item, lo, hi} (UTF-16 offsets into that item), in reading order; null when
  // the range cannot be placed (no text layer, or a text layer that is not the page's text).
  locate(start, end) {
    const first = this.a.findIndex((ch) => ch.at >= start);
    if (first < 0 || this.a[first].at >= end) return null;
    let stop = first;
    while (stop < this.a.length && this.a[stop].at < end) stop++;
    const hits = [];
    for (let k = first; k < stop; k++) if (this.partner[k] >= 0) hits.push(this.partner[k]);
    const wanted = stop - first;
    if (hits.length < wanted * 0.8) return null;
    if (Math.max(...hits) - Math.min(...hits) + 1 > wanted * 1.5 + 4) return null; // scattered
    hits.sort((x, y) => x - y);
    const parts = [];
    let previous = -2;
    for (const k of hits) {
      const ch = this.b[k];
      const last = parts[parts.length - 1];
      // Only the partners of cited characters: a hyphen the index rejoined stays unmarked.
      if (last && last.item === ch.item && k === previous + 1) last.hi = ch.u16 + ch.len;
      else parts.push({ item: ch.item, lo: ch.u16, hi: ch.u16 + ch.len });
      previous = k;
    }
    return parts;
  }
}

// Wrap the located parts of the text layer's spans in <mark> elements; returns the marks.
export function markParts(spans, parts) {
  const marks = [];
  for (const { item, lo, hi } of parts) {
    const span = spans[item];
    const text = span.textContent;
    const mark = document.createElement("mark");
    mark.textContent = text.slice(lo, hi);
    span.replaceChildren(text.slice(0, lo), mark, text.slice(hi));
    marks.push(mark);
  }
  return marks;
}
