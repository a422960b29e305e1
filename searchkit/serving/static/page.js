// The search page: reads the form, calls GET /search, and builds the results as DOM nodes.
// Document text and the query are data: they only ever reach the page through textContent and text nodes.

const $ = (id) => document.getElementById(id);
const form = $("search"), q = $("q"), mode = $("mode"), k = $("k");
const alertBox = $("alert"), status = $("status"), timings = $("timings"), hits = $("hits"), results = $("results");

const STOP = new Set(("a an and are as at be by can do does for from how i if in into is it its me my of on or " +
  "the to what when where which with without you your").split(" "));
const WORD = "[\\p{L}\\p{N}_]";
let inFlight = null; // AbortController of the running search

/** Return the words of `query` worth highlighting: lower-cased, no stop words, longest first. */
export function queryWords(query) {
  const words = (query.toLowerCase().match(/[\p{L}\p{N}_]+/gu) || []).filter((w) => w.length > 1 && !STOP.has(w));
  return [...new Set(words)].sort((a, b) => b.length - a.length).slice(0, 32);
}

/** Return a regular expression matching words that start with one of `words` (null when there are none). */
export function highlightPattern(words) {
  if (!words.length) return null;
  const alternatives = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");
  return new RegExp(`(?<!${WORD})(?:${alternatives})${WORD}*`, "giu");
}

// Bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): shown as visible marks in titles and ids,
// so a name like "evil\u202Egnp.exe" cannot pose as "evilexe.png"
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;

/** Return `text` with each bidi control replaced by a visible mark naming it, e.g. "⟨U+202E⟩". */
export function showBidiControls(text) {
  return text.replace(BIDI_CONTROLS, (c) => `⟨U+${c.codePointAt(0).toString(16).toUpperCase()}⟩`);
}

/** Append `text` to `parent` as text nodes, with each match of `pattern` in a <mark>. */
export function appendHighlighted(parent, text, pattern) {
  let last = 0;
  for (const m of pattern ? text.matchAll(pattern) : []) {
    const mark = document.createElement("mark");
    mark.textContent = m[0];
    parent.append(text.slice(last, m.index), mark);
    last = m.index + m[0].length;
  }
  parent.append(text.slice(last));
}

/** Return about `width` characters of `text` around its first match of `pattern`, with ellipses. */
export function snippet(text, pattern, width = 240) {
  const flat = text.replace(/\s+/g, " ").trim();
  if (flat.length <= width) return flat;
  const at = pattern ? Math.max(flat.search(pattern), 0) : 0;
  let start = Math.max(0, Math.min(at - 60, flat.length - width));
  if (start > 0) start = flat.indexOf(" ", start) + 1;
  let end = Math.min(flat.length, start + width);
  if (end < flat.length) end = Math.max(flat.lastIndexOf(" ", end), start + 1);
  return `${start > 0 ? "… " : ""}${flat.slice(start, end)}${end < flat.length ? " …" : ""}`;
}

/** Return the API's error message from a 4xx/5xx body: FastAPI's `detail`, a string or a list of {msg}. */
export function problemMessage(body, code) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail) && detail.length) return detail.map((d) => String(d.msg ?? d)).join("; ");
  return `the server answered HTTP ${code}`;
}

function stateFromUrl() {
  const p = new URLSearchParams(location.search);
  return { q: p.get("q") || "", mode: p.get("mode") || "dense", k: p.get("k") || "10" };
}

function stateFromForm() {
  return { q: q.value.trim(), mode: mode.value, k: k.value.trim() || "10" };
}

function showForm(s) {
  q.value = s.q;
  mode.value = s.mode;
  k.value = s.k;
}

function urlFor(s) {
  return s.q ? `/?${new URLSearchParams({ q: s.q, mode: s.mode, k: s.k })}` : "/";
}

function clearResults() {
  alertBox.hidden = true;
  alertBox.textContent = "";
  timings.hidden = true;
  hits.replaceChildren();
  status.textContent = "";
  document.title = "searchkit";
}

function showError(message) {
  clearResults();
  results.removeAttribute("aria-busy");
  alertBox.textContent = message;
  alertBox.hidden = false;
}

async function search(s) {
  inFlight?.abort();
  const controller = (inFlight = new AbortController());
  clearResults();
  document.title = `${s.q} · searchkit`;
  results.setAttribute("aria-busy", "true");
  status.textContent = `Searching for “${s.q}”…`;
  status.classList.add("loading");
  let response, body;
  try {
    // POST with JSON: the request a page on another site cannot send, so only it counts in an experiment
    const topK = /^[0-9]{1,20}$/.test(s.k) ? Number(s.k) : s.k; // not a number: the API's message says so
    response = await fetch("/search", {
      method: "POST",
      signal: controller.signal,
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify({ query: s.q, mode: s.mode, top_k: topK }),
    });
    body = await response.json();
  } catch (e) {
    if (e.name !== "AbortError") showError(`could not get an answer from the server (${e.message}): is it running?`);
    return;
  } finally {
    if (inFlight === controller) status.classList.remove("loading");
  }
  if (inFlight !== controller) return; // a newer search replaced this one
  if (!response.ok) return showError(problemMessage(body, response.status));
  showAnswer(s, body);
}

function showAnswer(s, answer) {
  results.removeAttribute("aria-busy");
  const n = answer.results.length;
  status.textContent = n
    ? `${n} result${n === 1 ? "" : "s"} for “${answer.query}” (${answer.mode})`
    : `No results for “${answer.query}” (${answer.mode}): try other words or another mode.`;
  const t = answer.timings_ms;
  timings.textContent = `embed ${t.embed.toFixed(1)} ms · search ${t.search.toFixed(1)} ms · total ` +
    `${t.total.toFixed(1)} ms · ` + (answer.result_cached ? "answer from the result cache"
      : `query vector ${answer.cached ? "cached" : "not cached"}`);
  timings.hidden = false;
  const pattern = highlightPattern(queryWords(answer.query));
  hits.replaceChildren(...answer.results.map((hit, i) => hitItem(hit, i + 1, pattern, answer)));
}

function hitItem(hit, rank, pattern, answer) {
  const li = document.createElement("li");
  li.className = "hit";
  const head = document.createElement("div");
  head.className = "hit-head";
  const rankEl = Object.assign(document.createElement("span"), { className: "rank", textContent: String(rank) });
  const heading = document.createElement("h2");
  const title = Object.assign(document.createElement("button"), { type: "button", className: "title" });
  title.dir = "auto"; // isolated: its direction never reorders the rank and score beside it
  appendHighlighted(title, showBidiControls(hit.title || hit.id), pattern);
  heading.append(title);
  const score = Object.assign(document.createElement("span"), { className: "score", textContent: hit.score.toFixed(3) });
  score.title = "score";
  head.append(rankEl, heading, score);
  const id = Object.assign(document.createElement("code"), { className: "doc-id", textContent: showBidiControls(hit.id) });
  const text = Object.assign(document.createElement("p"), { className: "snippet", id: `hit-${rank}-text` });
  id.dir = text.dir = "auto";
  appendHighlighted(text, snippet(hit.text, pattern), pattern);
  title.setAttribute("aria-expanded", "false");
  title.setAttribute("aria-controls", text.id);
  title.addEventListener("click", () => {
    const open = title.getAttribute("aria-expanded") !== "true";
    title.setAttribute("aria-expanded", String(open));
    text.classList.toggle("full", open);
    text.replaceChildren();
    appendHighlighted(text, open ? hit.text : snippet(hit.text, pattern), pattern);
    if (open) reportClick(answer, hit.id);
  });
  li.append(head, id, text);
  return li;
}

/** Tell the server a result was opened, when the answer came from an online experiment (it has impression_id). */
function reportClick(answer, id) {
  if (answer.impression_id === undefined || answer.impression_id === null) return;
  fetch("/click", {
    method: "POST",
    keepalive: true,
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ impression_id: answer.impression_id, id }),
  }).catch(() => {}); // a lost click must never disturb the page
}

function submit(event) {
  event?.preventDefault();
  const s = stateFromForm();
  if (urlFor(s) !== location.pathname + location.search) history.pushState(null, "", urlFor(s));
  if (s.q) search(s);
  else clearResults();
}

function restore() {
  const s = stateFromUrl();
  showForm(s);
  if (s.q) search(s);
  else clearResults();
}

form.addEventListener("submit", submit);
mode.addEventListener("change", () => q.value.trim() && submit());
k.addEventListener("change", () => q.value.trim() && submit());
window.addEventListener("popstate", restore);
document.addEventListener("keydown", (e) => {
  if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target.closest?.("input, textarea, select, [contenteditable]")) return; // a "/" typed into a field
  e.preventDefault();
  q.focus();
  q.select();
});

/** Name the corpus size and disable the modes this server lacks (e.g. no BM25 index), as /health reports them. */
async function describeServer() {
  const health = await (await fetch("/health")).json();
  if (health.documents) $("corpus").textContent = `${health.documents.toLocaleString("en")} documents`;
  for (const option of mode.options) option.disabled = !(health.modes || [option.value]).includes(option.value);
}

restore();
q.focus();
describeServer().catch(() => {}); // the page works without it
