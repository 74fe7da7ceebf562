// docqa's page. No framework, no build step, nothing from the network but this server.
// Document text is hostile input: it is only ever set with textContent / text nodes.
// An ES module (strict by itself); pdf.js (vendored in /static/pdfjs/) loads on the first PDF page.
import { Alignment, markParts } from "/static/highlight.mjs";

const $ = (id) => document.getElementById(id);
const form = $("ask-form");
const input = $("question");
const button = $("ask-button");
const results = $("results");
const resultsBody = $("results-body");
const statusLine = $("status");
const viewer = $("viewer");

let modelState = "loading";
let pending = null; // AbortController of the question in flight
let opener = null; // the citation button that opened the viewer, to return focus to

// An element with text children; strings become text nodes, never HTML.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// Offsets from the server count Unicode code points (Python); JavaScript strings count UTF-16
// units, which differ after any character outside the BMP (emoji, math letters in PDFs).
function withMark(text, lo, hi) {
  const chars = Array.from(text);
  lo = Math.max(0, Math.min(lo, chars.length));
  hi = Math.max(lo, Math.min(hi, chars.length));
  const frag = document.createDocumentFragment();
  frag.append(chars.slice(0, lo).join(""));
  const mark = el("mark", { text: chars.slice(lo, hi).join("") });
  frag.append(mark, chars.slice(hi).join(""));
  return { frag, mark };
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.message ? body.message : `the server answered ${response.status}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

// -- status line --------------------------------------------------------------------------

function describeHealth(health) {
  const docs = health.index.documents;
  const counts = `${docs} document${docs === 1 ? "" : "s"}, ${health.index.pages} pages indexed`;
  if (docs === 0) return "The index is empty: run `docqa index FOLDER` first, then restart docqa serve.";
  if (health.status === "loading") return `${counts}. Loading the reader model…`;
  if (health.status === "failed") return `${counts}. The reader model could not be loaded: ${health.message}`;
  return `${counts}. Ready.`;
}

async function pollHealth() {
  let health;
  try {
    const response = await fetch("/health");
    health = await response.json();
  } catch (_) {
    statusLine.textContent = "Cannot reach the docqa server. Is `docqa serve` still running?";
    setTimeout(pollHealth, 3000);
    return;
  }
  modelState = health.status;
  statusLine.textContent = describeHealth(health);
  statusLine.classList.toggle("problem", health.status === "failed");
  if (health.status === "loading") setTimeout(pollHealth, 1000);
}

// -- asking -------------------------------------------------------------------------------

function showBusy(question) {
  results.setAttribute("aria-busy", "true");
  const waiting = modelState === "loading"
    ? "The reader model is still loading; your question will be answered as soon as it is ready…"
    : "Reading the documents…";
  resultsBody.replaceChildren(el("p", { class: "busy" }, el("span", { class: "spinner", "aria-hidden": "true" }), waiting));
  button.textContent = "Asking…";
  document.title = `${question} — docqa`;
}

function showError(message) {
  resultsBody.replaceChildren(el("p", { class: "error", role: "alert", text: message }));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = input.value.trim();
  if (!question) {
    showError("Type a question first, for example: who wrote the report?");
    input.focus();
    return;
  }
  if (pending) pending.abort();
  const controller = new AbortController();
  pending = controller;
  showBusy(question);
  try {
    const result = await getJSON("/ask", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ question }),
      signal: controller.signal,
    });
    if (pending === controller) showResult(result); // else a newer question replaced this one
  } catch (error) {
    if (error.name !== "AbortError" && pending === controller) showError(error.message);
  } finally {
    if (pending === controller) {
      pending = null;
      results.setAttribute("aria-busy", "false");
      button.textContent = "Ask";
    }
  }
});

function showResult(result) {
  const body = [];
  if (result.abstained) {
    const why = result.off_topic ? " None of them is about this question." : "";
    body.push(el("p", { class: "abstain", text: `Not found in the indexed documents.${why}` }));
    if (result.passages.length) {
      body.push(el("p", { text: "The closest passages:" }));
      body.push(el("ol", { class: "passages" }, ...result.passages.map(passageItem)));
    } else {
      body.push(el("p", { text: "No passage matches the question; try other words." }));
    }
  } else {
    const count = result.answers.length;
    body.push(el("p", { class: "summary", text: `${count} answer${count === 1 ? "" : "s"}, best first:` }));
    body.push(el("ol", { class: "answers" }, ...result.answers.map(answerItem)));
  }
  resultsBody.replaceChildren(...body);
}

function percent(x) {
  return `${Math.round(x * 100)}%`;
}

function answerItem(answer) {
  const [first] = answer.citations;
  const context = withMark(first.context, first.start - first.context_start, first.end - first.context_start);
  const fill = el("span");
  fill.style.width = percent(answer.confidence); // CSSOM, not a style attribute: the CSP forbids those
  const bar = el("span", { class: "bar", "aria-hidden": "true" }, fill);
  return el("li", { class: "answer" },
    el("p", { class: "answer-line" },
      el("strong", { class: "answer-text", text: answer.text }), " ",
      el("span", { class: "confidence", text: `${percent(answer.confidence)} confidence` }), bar),
    el("blockquote", { class: "context" }, first.context_start > 0 ? "…" : "", context.frag, "…"),
    el("p", { class: "cites" }, "Source: ",
      ...onePerPage(answer.citations).flatMap((c, i) => [i ? ", " : "", citeButton(c, answer.text)])),
  );
}

// Citations come best first; near-identical spans ("Lul" / "Lul.") would repeat a page's label.
function onePerPage(citations) {
  const seen = new Set();
  return citations.filter((c) => {
    const key = `${c.document_id}/${c.page}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function passageItem(hit) {
  return el("li", { class: "passage" },
    citeButton(hit, null),
    el("p", { class: "passage-text", text: hit.text }));
}

// A citation or a passage: both carry path, page, document_id, start and end (and `ocr` when
// the page's text was read by OCR).
function citeButton(source, answer) {
  const { path, page, start, end } = source;
  const label = `${path}, page ${page}${source.ocr ? " (OCR)" : ""}`;
  const b = el("button", { type: "button", class: "cite", text: label });
  b.setAttribute("aria-label", `Open ${label}${answer ? " with the answer highlighted" : ""}`);
  b.addEventListener("click", () => openPage(b, { path, page, documentId: source.document_id, start, end, answer }));
  return b;
}

// -- the page viewer ----------------------------------------------------------------------
// A PDF page is drawn by pdf.js on a canvas, with its text layer on top; the cited characters
// are <mark>s in that layer. Other kinds, and PDFs pdf.js cannot draw, show the stored text.
// Keys: ← → pages, + − zoom, 0 fit width, T text/page view.

const pdfBox = $("viewer-pdf");
const pageText = $("viewer-text");
const note = $("viewer-note");
const modeButton = $("viewer-mode");
const ZOOMS = [0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 3];
const view = { cite: null, page: null, number: 0, zoom: 3, textMode: false, token: 0, pdf: null };
let pdfjs = null;

async function loadPdfjs() {
  if (!pdfjs) {
    pdfjs = await import("/static/pdfjs/pdf.min.mjs");
    pdfjs.GlobalWorkerOptions.workerSrc = "/static/pdfjs/pdf.worker.min.mjs";
  }
  return pdfjs;
}

// One pdf.js document at a time: the one of the open citation.
async function pdfDocument(documentId) {
  if (view.pdf && view.pdf.documentId === documentId) return view.pdf.loading;
  if (view.pdf) view.pdf.task.destroy();
  const lib = await loadPdfjs();
  const task = lib.getDocument({ url: `/documents/${encodeURIComponent(documentId)}/file`,
                                 isEvalSupported: false, enableXfa: false });
  view.pdf = { documentId, task, loading: task.promise };
  view.pdf.loading.catch(() => { view.pdf = null; });
  return view.pdf.loading;
}

async function openPage(button, cite) {
  opener = button;
  view.cite = cite;
  view.textMode = false;
  // Nothing of the previous citation's page stays on screen under the new title.
  pdfBox.hidden = true;
  pdfBox.querySelector(".textLayer").replaceChildren();
  pageText.replaceChildren();
  if (!viewer.open) viewer.showModal();
  $("viewer-title").focus();
  await showPage(cite.page);
}

async function showPage(number) {
  const token = ++view.token; // a newer request (another page, zoom) makes this one stale
  const { cite } = view;
  note.textContent = "Loading the page…";
  let page;
  try {
    page = await getJSON(`/documents/${encodeURIComponent(cite.documentId)}/pages/${encodeURIComponent(number)}`);
  } catch (error) {
    if (token === view.token) note.textContent = `Cannot show this page: ${error.message}`;
    return;
  }
  if (token !== view.token) return;
  view.page = page;
  view.number = number;
  $("viewer-title").textContent = `${page.path}, page ${page.page} of ${page.pages}`;
  $("viewer-prev").disabled = number <= 1;
  $("viewer-next").disabled = number >= page.pages;
  // Citation offsets count from the document's start; the page text from the page's start.
  const range = number === cite.page ? [cite.start - page.start, cite.end - page.start] : null;
  const textMark = showText(page.text, range);
  const isPdf = page.kind === "pdf";
  modeButton.hidden = !isPdf;
  for (const id of ["viewer-zoom-in", "viewer-zoom-out"]) $(id).hidden = !isPdf;
  let problem = "";
  let marks = [];
  if (isPdf && !view.textMode) {
    try {
      marks = await drawPdfPage(page, range, token);
    } catch (error) {
      if (token !== view.token) return;
      problem = `The PDF page cannot be drawn (${await fileProblem(error)}); showing its text.`;
    }
    if (token !== view.token) return;
    if (range && !problem && !marks.length) {
      problem = "The highlight could not be placed on the drawn page; showing the page's text.";
    }
  }
  const pageMode = isPdf && !view.textMode && !problem;
  pdfBox.hidden = !pageMode;
  pageText.hidden = pageMode;
  modeButton.textContent = pageMode ? "Text view" : "Page view";
  modeButton.setAttribute("aria-pressed", String(!pageMode));
  const what = cite.answer ? "answer" : "passage";
  const keys = isPdf ? " Keys: ← → pages, + − zoom, T text view." : "";
  const ocr = page.ocr ? " This page's text was read by OCR from a scan and may hold recognition errors." : "";
  note.textContent = (problem ? problem + " " : "") + (range ? `The ${what} is highlighted.` : "") + ocr + keys;
  const target = pageMode ? marks[0] : textMark;
  if (target) target.scrollIntoView({ block: "center" });
}

function showText(text, range) {
  if (!range) {
    pageText.replaceChildren(text);
    return null;
  }
  const { frag, mark } = withMark(text, range[0], range[1]);
  mark.id = "highlight";
  pageText.replaceChildren(frag);
  return mark;
}

async function drawPdfPage(page, range, token) {
  const doc = await pdfDocument(page.document_id);
  const pdfPage = await doc.getPage(page.page);
  if (token !== view.token) return [];
  const fit = (viewer.clientWidth - 32) / pdfPage.getViewport({ scale: 1 }).width;
  const scale = Math.max(0.1, fit * ZOOMS[view.zoom]);
  const viewport = pdfPage.getViewport({ scale });
  const ratio = window.devicePixelRatio || 1;
  // Draw on a fresh canvas and swap it in, so a stale render never paints over a newer one.
  const fresh = document.createElement("canvas");
  fresh.width = Math.floor(viewport.width * ratio);
  fresh.height = Math.floor(viewport.height * ratio);
  await pdfPage.render({ canvasContext: fresh.getContext("2d"), viewport,
                         transform: ratio === 1 ? null : [ratio, 0, 0, ratio, 0, 0] }).promise;
  const textContent = await pdfPage.getTextContent();
  if (token !== view.token) return [];
  const target = $("viewer-canvas");
  target.width = fresh.width;
  target.height = fresh.height;
  target.style.width = `${viewport.width}px`;
  target.style.height = `${viewport.height}px`;
  target.getContext("2d").drawImage(fresh, 0, 0);
  target.setAttribute("aria-label", `Page ${page.page} of ${page.path}`);
  pdfBox.style.width = `${viewport.width}px`;
  pdfBox.style.height = `${viewport.height}px`;
  pdfBox.style.setProperty("--total-scale-factor", String(scale));
  // The text layer too is built aside and swapped in, for the same reason.
  const layer = el("div", { class: "textLayer" });
  const textLayer = new pdfjs.TextLayer({ textContentSource: textContent, container: layer, viewport });
  await textLayer.render();
  if (token !== view.token) return [];
  pdfBox.querySelector(".textLayer").replaceWith(layer);
  if (!range) return [];
  const parts = new Alignment(page.text, textLayer.textContentItemsStr).locate(range[0], range[1]);
  return parts ? markParts(textLayer.textDivs, parts) : [];
}

// pdf.js says only "Unexpected server response (409)"; the server's JSON says why.
async function fileProblem(error) {
  if (!error || !error.status) return error && error.message ? error.message : "unknown error";
  try {
    await getJSON(`/documents/${encodeURIComponent(view.cite.documentId)}/file`, { headers: { Range: "bytes=0-0" } });
  } catch (own) {
    return own.message;
  }
  return error.message;
}

function turn(delta) {
  const next = view.number + delta;
  if (view.page && next >= 1 && next <= view.page.pages) showPage(next);
}

function zoom(step) {
  const z = step === 0 ? ZOOMS.indexOf(1) : Math.max(0, Math.min(ZOOMS.length - 1, view.zoom + step));
  if (z === view.zoom || !view.page || view.page.kind !== "pdf" || view.textMode) return;
  view.zoom = z;
  showPage(view.number);
}

function toggleText() {
  if (!view.page || view.page.kind !== "pdf") return;
  view.textMode = !view.textMode;
  showPage(view.number);
}

$("viewer-prev").addEventListener("click", () => turn(-1));
$("viewer-next").addEventListener("click", () => turn(1));
$("viewer-zoom-in").addEventListener("click", () => zoom(1));
$("viewer-zoom-out").addEventListener("click", () => zoom(-1));
modeButton.addEventListener("click", toggleText);
viewer.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const action = {
    ArrowRight: () => turn(1), ArrowLeft: () => turn(-1), n: () => turn(1), p: () => turn(-1),
    "+": () => zoom(1), "=": () => zoom(1), "-": () => zoom(-1), 0: () => zoom(0),
    t: toggleText, T: toggleText,
  }[event.key];
  if (action) {
    event.preventDefault();
    action();
  }
});

function closeViewer() {
  if (viewer.open) viewer.close();
}

$("viewer-close").addEventListener("click", closeViewer);
viewer.addEventListener("close", () => {
  // "close" fires a moment after the dialog closes: if the user has already moved on (say,
  // to the question box), do not pull focus back to the citation.
  const active = document.activeElement;
  if (opener && (!active || active === document.body || viewer.contains(active))) opener.focus();
});
// A click on the backdrop (outside the dialog box) closes it, like Escape.
viewer.addEventListener("click", (event) => {
  if (event.target === viewer) closeViewer();
});

pollHealth();
