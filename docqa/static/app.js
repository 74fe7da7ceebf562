// docqa's page. No framework, no build step, nothing from the network but this server.
// Document text is hostile input: it is only ever set with textContent / text nodes.
"use strict";

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
    body.push(el("p", { class: "abstain", text: "Not found in the indexed documents." }));
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
      ...onePerPage(answer.citations).flatMap((c, i) => [i ? ", " : "", citeButton(c.path, c.page, c.document_id, c.start, c.end, answer.text, c.ocr)])),
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
    citeButton(hit.path, hit.page, hit.document_id, hit.start, hit.end, null),
    el("p", { class: "passage-text", text: hit.text }));
}

function citeButton(path, page, documentId, start, end, answer, ocr = false) {
  // A page read by OCR says so: its text may hold recognition errors.
  const label = `${path}, page ${page}${ocr ? " (OCR)" : ""}`;
  const b = el("button", { type: "button", class: "cite", text: label });
  b.setAttribute("aria-label", `Open ${label}${answer ? " with the answer highlighted" : ""}`);
  b.addEventListener("click", () => openPage(b, { path, page, documentId, start, end, answer }));
  return b;
}

// -- the page viewer ----------------------------------------------------------------------

async function openPage(button, cite) {
  opener = button;
  const title = $("viewer-title");
  const text = $("viewer-text");
  const note = $("viewer-note");
  title.textContent = `${cite.path}, page ${cite.page}`;
  note.textContent = "Loading the page…";
  text.replaceChildren();
  if (!viewer.open) viewer.showModal();
  title.focus();
  let page;
  try {
    page = await getJSON(`/documents/${encodeURIComponent(cite.documentId)}/pages/${encodeURIComponent(cite.page)}`);
  } catch (error) {
    note.textContent = `Cannot show this page: ${error.message}`;
    return;
  }
  title.textContent = `${page.path}, page ${page.page} of ${page.pages}`;
  // Citation offsets count from the document's start; the page text from the page's start.
  const { frag, mark } = withMark(page.text, cite.start - page.start, cite.end - page.start);
  mark.id = "highlight";
  text.replaceChildren(frag);
  note.textContent = (cite.answer
    ? "The answer is highlighted."
    : "The passage is highlighted.")
    + (page.ocr ? " This page's text was read by OCR from a scan and may hold recognition errors." : "");
  mark.scrollIntoView({ block: "center" });
}

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
