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
const NEAR = 8; // a local difference (a rejoined hyphen, a ligature) is skipped within this
const GRAM = 8; // characters that must agree to resume the alignment after a difference
const CONTEXT = 30; // characters each side that pick an occurrence when the alignment cannot

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

// For each character of ``a``, the index of its partner in ``b``, or -1. Mostly a walk along
// both; where they differ, a small skip on either side (a hyphen, a ligature) or else a jump to
// where the next stretch of ``a`` is in ``b``: text may come in another order (a running head
// drawn last, columns read in another order), so jumps go backwards as well as forwards.
export function align(a, b) {
  const partner = new Int32Array(a.length).fill(-1);
  const used = new Uint8Array(b.length); // each character of b is the partner of one of a at most
  let grams = null; // GRAM-long substrings of b -> their positions, built on first need
  let i = 0;
  let j = 0; // where in b the next character of a is expected
  while (i < a.length) {
    if (j < b.length && !used[j] && a[i].c === b[j].c) {
      partner[i++] = j;
      used[j++] = 1;
      continue;
    }
    const near = resyncNear(a, b, i, j);
    if (near) {
      [i, j] = near;
      continue;
    }
    grams ??= gramIndex(b);
    const far = jump(a, b, i, j, grams, used);
    if (far < 0) i++; // this character of a is not in b (e.g. text pdf.js does not show)
    else j = far;
  }
  return partner;
}

// GRAM characters agree, or all that are left of a (a short page, the end of one).
function resyncNear(a, b, i, j) {
  for (let total = 1; total <= NEAR; total++) {
    for (let di = 0; di <= total && i + di < a.length; di++) {
      if (agree(a, b, i + di, j + total - di, Math.min(GRAM, a.length - i - di))) return [i + di, j + total - di];
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

// Where in b the stretch of a at i is: of the free places where its next GRAM characters are,
// the one that agrees longest with what follows, then the nearest after j; -1 if none.
function jump(a, b, i, j, grams, used) {
  const n = Math.min(GRAM, a.length - i);
  let places;
  if (n === GRAM) {
    let key = "";
    for (let k = 0; k < GRAM; k++) key += a[i + k].c;
    places = (grams.get(key) || []).slice(0, 64);
  } else { // the last few characters of a: look for them everywhere
    places = [];
    for (let p = 0; p + n <= b.length && places.length < 64; p++) if (agree(a, b, i, p, n)) places.push(p);
  }
  let best = -1;
  let bestScore = -1;
  for (const p of places) {
    if (used[p]) continue;
    let score = n;
    while (score < 64 && i + score < a.length && p + score < b.length && a[i + score].c === b[p + score].c) score++;
    const better = score > bestScore
      || (score === bestScore && distance(p, j) < distance(best, j));
    if (better) {
      best = p;
      bestScore = score;
    }
  }
  return best;
}

// Forward from j is nearer than backward: text usually goes on where it left off.
function distance(p, j) {
  return p >= j ? p - j : 2 * (j - p) + 1;
}

// How many stretches of the layer the partners of a range lie in. A range that continues on the
// next line of its column is two stretches where the layer draws the columns line by line
// (one line of each in turn); scattered partners (many short stretches) are not trusted.
function stretches(hits) {
  let count = 1;
  for (let k = 1; k < hits.length; k++) if (hits[k] <= hits[k - 1] || hits[k] > hits[k - 1] + NEAR) count++;
  return count;
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
    const whole = hits.length === wanted && stretches(hits) <= 2 + wanted / 10;
    return this.parts(whole ? hits : this.search(first, stop));
  }

  // Where the alignment lost part of the range: the layer's occurrence of the range's text whose
  // surroundings (CONTEXT characters each side) agree best with the page text's.
  search(first, stop) {
    const text = (from, to) => this.a.slice(Math.max(0, from), to).map((ch) => ch.c).join("");
    const want = text(first, stop);
    const before = text(first - CONTEXT, first);
    const after = text(stop, stop + CONTEXT);
    this.flat ??= this.b.map((ch) => ch.c).join("");
    let best = -1;
    let bestScore = -1;
    for (let i = this.flat.indexOf(want); i >= 0; i = this.flat.indexOf(want, i + 1)) {
      let score = 0;
      while (score < before.length && this.flat[i - 1 - score] === before[before.length - 1 - score]) score++;
      for (let t = 0; t < after.length && this.flat[i + want.length + t] === after[t]; t++) score++;
      if (score > bestScore) [best, bestScore] = [i, score];
    }
    return best < 0 ? [] : Array.from({ length: want.length }, (_, k) => best + k);
  }

  // Characters of the layer (indices into b) as marks: one part per run within one item, in the
  // order of the page text (a range that goes on in the next column may come earlier in the
  // layer). Only the partners of cited characters: a hyphen the index rejoined stays unmarked.
  parts(positions) {
    if (!positions.length) return null;
    const parts = [];
    let previous = -2;
    for (const k of positions) {
      const ch = this.b[k];
      const last = parts[parts.length - 1];
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
