// The page for people: each tab calls the same HTTP API as any client (see /docs).
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
};
const badge = (text) => el("span", { class: `badge ${text}` }, text);
const fmt = (x, digits = 3) => (typeof x === "number" ? x.toFixed(digits) : "–");

// --- the API, with the key when the service asks for one ------------------------------------
function headers() {
  const h = { "content-type": "application/json" };
  const key = localStorage.getItem("tandem-api-key");
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

// The form asks for a key when one the service refused is still the one in use: an answer to a request sent before
// a key was entered must not ask again for the key just given.
async function failure(response, sentWith = null) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    const detail = body.error?.message ?? body.detail;
    if (detail) message = typeof detail === "string" ? detail : JSON.stringify(detail);
  } catch { /* not JSON: the status says it */ }
  const current = localStorage.getItem("tandem-api-key");
  if ((response.status === 401 || response.status === 403) && sentWith === current) {
    $("#key-form").hidden = false;
    message += " — enter an API key above";
  }
  return new Error(message);
}

async function api(path, body) {
  const key = localStorage.getItem("tandem-api-key");
  const response = await fetch(path, body === undefined ? { headers: headers() }
    : { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (!response.ok) throw await failure(response, key);
  return response.json();
}

// A form's work with its error and progress shown in its tab; long waits count the seconds.
async function busy(section, label, work) {
  const error = $(".error", section), note = $(".busy", section), button = $("button[type=submit]", section);
  error.hidden = true;
  note.hidden = false;
  const started = Date.now();
  const tick = () => { note.textContent = `${label}… ${Math.round((Date.now() - started) / 1000)} s`; };
  tick();
  const timer = setInterval(tick, 1000);
  if (button) button.disabled = true;
  try {
    await work();
  } catch (exc) {
    error.textContent = exc.message;
    error.hidden = false;
  } finally {
    clearInterval(timer);
    note.hidden = true;
    if (button) button.disabled = false;
  }
}

// --- tabs -------------------------------------------------------------------------------------
function show(tab) {
  for (const button of document.querySelectorAll("nav button")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === tab));
  }
  for (const section of document.querySelectorAll("main section")) section.hidden = section.id !== tab;
  if (tab === "operations") refreshOperations();
}

// --- recommendations --------------------------------------------------------------------------
async function loadUsers() {
  try {
    const users = await api("/v1/users?limit=200");
    $("#rec-users").replaceChildren(...users.map((u) => el("option", { value: u.external_id })));
  } catch { /* the list only helps; typing an id works without it */ }
}

async function recommend(event) {
  event.preventDefault();
  const section = $("#recommendations");
  await busy(section, "ranking with the LLM", async () => {
    const k = Number($("#rec-k").value);
    const r = await api("/v1/recommendations", { user_id: $("#rec-user").value.trim(), k: 20 });
    const versions = Object.entries(r.model_versions).map(([m, v]) => `${m} ${v ?? "–"}`).join(", ");
    const timings = Object.entries(r.timings_ms).map(([s, ms]) => `${s} ${Math.round(ms)} ms`).join(", ");
    $("#rec-meta").replaceChildren(
      "ordered by ", badge(r.ordered_by), r.fallback ? ` (fallback: ${r.fallback_reason})` : "",
      r.candidates_fallback ? " · LRURec knew nothing of this user: popular items" : "",
      ` · adapter ${r.adapter ?? "none (base model)"}${r.adapter_served_as ? ` (${r.adapter_served_as})` : ""}`,
      r.prompt_tokens ? ` · ${r.prompt_tokens} prompt tokens` : "", ` · models: ${versions} · ${timings}`);
    $("#rec-history").replaceChildren(...r.history.map((h) => el("li", {}, h.title ?? h.item_id)));
    const lrurec = [...r.items].sort((a, b) => a.lrurec_rank - b.lrurec_rank);
    $("#rec-lrurec tbody").replaceChildren(...lrurec.map((i) => el("tr", {},
      el("td", {}, String(i.lrurec_rank + 1)), el("td", {}, i.title ?? i.item_id),
      el("td", { class: "num" }, fmt(i.lrurec_score)))));
    $("#rec-order-title").textContent = {
      fused: `LRURec and the LLM fused, the LLM's weight ${r.fusion_weight} (top ${k})`,
      llm: `The LLM's order (top ${k})`, lrurec: "LRURec's order (the LLM stage fell back)" }[r.ordered_by];
    $("#rec-llm tbody").replaceChildren(...r.items.slice(0, k).map((i, n) => {
      const moved = i.lrurec_rank > n ? "moved-up" : i.lrurec_rank < n ? "moved-down" : "";
      return el("tr", { class: moved }, el("td", {}, String(n + 1)), el("td", {}, i.title ?? i.item_id),
        el("td", { class: "num" }, fmt(i.score)), el("td", { class: "num" }, String(i.lrurec_rank + 1)));
    }));
    $("#rec-result").hidden = false;
  });
}

// --- questions (the answer streams in) --------------------------------------------------------
function passageItem(p) {
  const scores = [`score ${fmt(p.score)}`, p.dense_score != null ? `dense ${fmt(p.dense_score)}` : null,
    p.sparse_score != null ? `BM25 ${fmt(p.sparse_score, 2)}` : null].filter(Boolean).join(" · ");
  return el("li", {}, el("strong", {}, p.title), el("div", { class: "meta" }, `${p.source ?? ""} · ${scores}`),
    el("div", { class: "text" }, p.text.length > 400 ? p.text.slice(0, 400) + "…" : p.text));
}

async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const data = buffer.slice(0, end).replace(/^data: /, "");
      buffer = buffer.slice(end + 2);
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

async function ask(event) {
  event.preventDefault();
  const section = $("#questions");
  const answer = $("#qa-answer");
  await busy(section, "retrieving and answering", async () => {
    answer.textContent = "";
    $("#qa-meta").textContent = "";
    $("#qa-passages").replaceChildren();
    $("#qa-result").hidden = false;
    const key = localStorage.getItem("tandem-api-key");
    const response = await fetch("/v1/qa", { method: "POST", headers: headers(), body: JSON.stringify({
      question: $("#qa-question").value, top_k: Number($("#qa-top-k").value), stream: true,
      mode: $("input[name=qa-mode]:checked").value }) });
    if (!response.ok) throw await failure(response, key);
    for await (const e of events(response)) {
      if (e.error) throw new Error(e.error.message);
      if (e.answered === false) {
        answer.textContent = e.answer;
        $("#qa-meta").textContent = `no relevant passage (${e.mode}${e.fallback ? `; ${e.fallback}` : ""})`;
      } else if (e.passages) {
        $("#qa-passages").replaceChildren(...e.passages.map(passageItem));
        $("#qa-meta").textContent = `retrieval: ${e.mode}${e.fallback ? ` (${e.fallback})` : ""}`;
      } else if (e.text !== undefined) {
        answer.textContent += e.text;
      } else if (e.model) {
        $("#qa-meta").textContent += ` · answered by ${e.model}${e.adapter_version ? ` ${e.adapter_version}` : ""}` +
          ` from ${e.passages_used} passage(s): ${e.sources.join(", ")}`;
      }
    }
  });
}

// --- keywords ---------------------------------------------------------------------------------
async function extract(event) {
  event.preventDefault();
  await busy($("#keywords"), "extracting", async () => {
    const r = await api("/v1/keywords", { text: $("#kw-text").value });
    $("#kw-list").replaceChildren(...r.results[0].keywords.map((k) => el("li", {}, k)));
    $("#kw-meta").textContent = r.model === "kobart" ? `KoBART, version ${r.model_version}`
      : "the morphological analyser (no keyword model trained yet)";
    $("#kw-result").hidden = false;
  });
}

// --- books ------------------------------------------------------------------------------------
async function loadQuestions() {
  try {
    const questions = await api("/v1/books/questions");
    $("#books-questions").replaceChildren(...questions.map((q) => el("label", {}, q.text,
      el("input", { name: q.key, list: `q-${q.key}`, required: "", value: q.examples[0]?.label ?? "" }),
      el("datalist", { id: `q-${q.key}` }, ...q.examples.map((o) => el("option", { value: o.label }))))));
  } catch (exc) {
    $("#books .error").textContent = exc.message;
    $("#books .error").hidden = false;
  }
}

async function recommendBooks(event) {
  event.preventDefault();
  await busy($("#books"), "searching the catalogue and asking the LLM", async () => {
    const answers = Object.fromEntries([...document.querySelectorAll("#books-questions input")]
      .map((input) => [input.name, input.value]));
    const user = $("#books-user").value.trim();
    const r = await api("/v1/books/recommendations", { answers, method: $("#books-method").value,
      n: Number($("#books-n").value), ...(user ? { user_id: user } : {}) });
    $("#books-meta").textContent = `query: ${r.query} · ${r.candidates} candidates (${r.mode})` +
      (r.model ? ` · chosen by ${r.model}` : "") + (r.fallback ? ` · ${r.fallback}` : "");
    $("#books-list").replaceChildren(...r.books.map((b) => el("li", {}, el("strong", {}, b.title), " ",
      el("span", { class: "meta" }, b.author ?? ""), " ", badge(b.chosen_by),
      b.reason ? el("p", {}, b.reason) : null)));
    $("#books-result").hidden = false;
  });
}

// --- start ------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("click", () => show(button.dataset.tab));
  }
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem("tandem-api-key", $("#api-key").value);
    $("#key-form").hidden = true;
    loadUsers();
    loadQuestions();
  });
  $("#rec-form").addEventListener("submit", recommend);
  $("#qa-form").addEventListener("submit", ask);
  $("#kw-form").addEventListener("submit", extract);
  $("#books-form").addEventListener("submit", recommendBooks);
  $("#train-form").addEventListener("submit", startTraining);
  loadUsers();
  loadQuestions();
  readiness().then((r) => showBootstrap(r.bootstrap)).catch(() => {});
  setInterval(() => {
    if (!$("#operations").hidden) refreshOperations();
    else readiness().then((r) => showBootstrap(r.bootstrap)).catch(() => {});
  }, 5000);
});
