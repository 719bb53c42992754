// The operations tab: readiness, the first-run bootstrap, models in service, training runs and traffic.
// Loaded after app.js, whose helpers it uses.
"use strict";

// --- operations -------------------------------------------------------------------------------
const traffic = [];  // [{t, counts}] of the last few minutes
// Ray exports counters every few seconds: rates over three polls (15 s) do not alternate between 0 and twice the rate.
const WINDOW = 3;
const COLORS = ["#2457c5", "#1f7a3f", "#a86200", "#b3261e", "#6b3fa0", "#0b7a88", "#5c6577"];

function progressText(progress) {
  if (!progress || !Object.keys(progress).length) return "";
  return Object.entries(progress).filter(([, v]) => typeof v !== "object").map(([k, v]) =>
    `${k} ${typeof v === "number" ? Math.round(v * 1000) / 1000 : v}`).join(", ");
}

function drawChart(rates) {
  const svg = $("#ops-chart");
  const pipelines = [...new Set(rates.flatMap((r) => Object.keys(r.rate)))];
  const peak = Math.max(0.1, ...rates.flatMap((r) => Object.values(r.rate)));
  const x = (i) => (rates.length < 2 ? 0 : (i / (rates.length - 1)) * 380 + 10);
  const y = (v) => 150 - (v / peak) * 130;
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  pipelines.forEach((p, n) => {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", rates.map((r, i) => `${x(i)},${y(r.rate[p] ?? 0)}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", COLORS[n % COLORS.length]);
    line.setAttribute("stroke-width", "2");
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", "12");
    label.setAttribute("y", String(14 + n * 13));
    label.setAttribute("fill", COLORS[n % COLORS.length]);
    label.setAttribute("font-size", "11");
    label.textContent = p;
    svg.append(line, label);
  });
  const top = document.createElementNS(ns, "text");
  top.setAttribute("x", "390");
  top.setAttribute("y", "14");
  top.setAttribute("text-anchor", "end");
  top.setAttribute("font-size", "11");
  top.textContent = `${peak.toFixed(2)} req/s`;
  svg.append(top);
}

async function refreshTraffic() {
  const counts = await api("/v1/metrics/pipelines");
  traffic.push({ t: Date.now() / 1000, counts });
  while (traffic.length > 60) traffic.shift();
  const rates = [];
  for (let i = 1; i < traffic.length; i++) {
    const [a, b] = [traffic[Math.max(0, i - WINDOW)], traffic[i]];
    const rate = {}, latency = {}, errors = {};
    for (const [p, c] of Object.entries(b.counts)) {
      const before = a.counts[p] ?? { requests: 0, seconds: 0, errors: 0 };
      const n = c.requests - before.requests;
      rate[p] = n / (b.t - a.t);
      latency[p] = n > 0 ? ((c.seconds - before.seconds) / n) * 1000 : null;
      errors[p] = c.errors - before.errors;
    }
    rates.push({ rate, latency, errors });
  }
  drawChart(rates);
  const last = rates[rates.length - 1];
  $("#ops-traffic tbody").replaceChildren(...Object.keys(traffic[traffic.length - 1].counts).map((p) =>
    el("tr", {}, el("td", {}, p), el("td", { class: "num" }, last ? fmt(last.rate[p] ?? 0, 2) : "–"),
      el("td", { class: "num" }, last && last.latency[p] != null ? String(Math.round(last.latency[p])) : "–"),
      el("td", { class: "num" }, last ? String(last.errors[p] ?? 0) : "–"))));
}

async function readiness() {
  const key = localStorage.getItem("tandem-api-key");
  const response = await fetch("/readyz", { headers: headers() });
  if (response.status !== 200 && response.status !== 503) throw await failure(response, key);
  return response.json();
}

function showBootstrap(boot) {
  const banner = $("#bootstrap-banner");
  banner.hidden = !boot || boot.status !== "running";
  if (boot && boot.status === "running") {
    const step = boot.steps.find((s) => s.status === "running");
    banner.textContent = `First run: loading data and training quick models${step ? ` (now: ${step.name})` : ""}, ` +
      `about ${Math.max(1, Math.round(boot.eta_s / 60))} min left. Pipelines answer meanwhile, from fallbacks.`;
  }
  $("#ops-bootstrap").hidden = !boot;
  if (boot) {
    $("#ops-bootstrap tbody").replaceChildren(...boot.steps.map((s) => el("tr", {}, el("td", {}, s.name),
      el("td", {}, badge(s.status)), el("td", {}, s.status === "failed" ? s.detail : progressText(s.progress)))));
  }
}

async function refreshOperations() {
  const section = $("#operations");
  try {
    const ready = await readiness();
    showBootstrap(ready.bootstrap);
    $("#ops-status").replaceChildren(badge(ready.status === "ready" ? "ready" : "degraded"));
    $("#ops-status").firstChild.textContent = ready.status;
    $("#ops-pipelines tbody").replaceChildren(...Object.entries(ready.pipelines).map(([name, p]) =>
      el("tr", {}, el("td", {}, name), el("td", {}, badge(p.status)), el("td", {}, p.bootstrapping
        ? `${p.bootstrapping.step}, about ${Math.max(1, Math.round(p.bootstrapping.eta_s / 60))} min`
        : p.reason ?? ""))));
    $("#ops-models tbody").replaceChildren(...Object.entries(ready.models).map(([m, v]) =>
      el("tr", {}, el("td", {}, m), el("td", {}, v ?? "– (none trained yet)"))));
    const runs = await api("/v1/train?limit=10");
    $("#ops-runs tbody").replaceChildren(...runs.map((r) => el("tr", {}, el("td", {}, String(r.id)),
      el("td", {}, r.pipeline), el("td", {}, badge(r.status)), el("td", {}, progressText(r.progress)),
      el("td", {}, r.error ?? r.model_version ?? ""))));
    await refreshTraffic();
    $(".error", section).hidden = true;
  } catch (exc) {
    $(".error", section).textContent = exc.message;
    $(".error", section).hidden = false;
  }
}

// The options box holds POST /v1/train's per-model options as JSON; the API checks their values.
function trainOptions() {
  const text = $("#train-options").value.trim();
  if (!text) return {};
  let options;
  try {
    options = JSON.parse(text);
  } catch (exc) {
    throw new Error(`Options are not JSON: ${exc.message}`);
  }
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new Error('Options must be a JSON object, e.g. {"lrurec": {"max_epochs": 2}}');
  }
  return options;
}

async function startTraining(event) {
  event.preventDefault();
  const section = $("#operations");
  try {
    const accepted = await api("/v1/train", { ...trainOptions(), pipeline: $("#train-pipeline").value,
      preset: $("#train-preset").value });
    $(".error", section).hidden = true;
    section.dataset.started = accepted.runs.map((r) => r.id).join(",");
    await refreshOperations();
  } catch (exc) {
    $(".error", section).textContent = exc.message;
    $(".error", section).hidden = false;
  }
}
