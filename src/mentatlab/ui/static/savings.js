// The savings view: GET /api/v1/recommendations drawn as cards, the monthly total on top.
// Every figure is the API's (money as its exact decimal on hover); nothing is computed here.
import { fetchApi, formatCount, formatMoney, formatRatio } from "./chart.js";

const view = document.getElementById("savings");
const { api, start, end, filter, traces, readSpans } = view.dataset;

function money(element, value, currency, suffix = "") {
  const shown = formatMoney(value, currency);
  element.textContent = shown.text + suffix;
  element.title = shown.title;
}

// one evidence value for people: money with its currency, rates as %, counts grouped
function evidenceText(name, value, currency) {
  if (value === null || value === undefined) {
    return "—";
  }
  if (typeof value === "string" && /(_cost|_per_call)$/.test(name)) {
    return formatMoney(value, currency).text;
  }
  if (typeof value === "string" && name.endsWith("_per_mtok")) {
    return `${formatMoney(value, currency).text}/Mtok`;
  }
  if (typeof value === "number" && /(_rate|_share)$/.test(name)) {
    return formatRatio(value);
  }
  if (Number.isInteger(value)) {
    return formatCount(value);
  }
  if (typeof value === "number") {
    return value.toPrecision(4).replace(/\.?0+$/, "");
  }
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) {
    return value.join(", ") || "—";
  }
  if (typeof value === "object") {
    return JSON.stringify(value);
  }
  return String(value);
}

function card(rec, currency) {
  const item = document.createElement("li");
  item.className = "recommendation";
  item.dataset.kind = rec.kind;
  const header = document.createElement("header");
  const title = document.createElement("h2");
  title.textContent = rec.title;
  const kind = document.createElement("span");
  kind.className = "kind";
  kind.textContent = rec.kind.replace(/_/g, " ");
  const saving = document.createElement("span");
  saving.className = "saving";
  saving.dataset.metric = "saving_per_month";
  money(saving, rec.saving_per_month, currency, " / month");
  const inWindow = document.createElement("span");
  inWindow.className = "window";
  const inRange = formatMoney(rec.saving_in_window, currency);
  inWindow.textContent = `${inRange.text} in the range`;
  inWindow.title = inRange.title;
  header.append(title, kind, saving, inWindow);

  const scope = document.createElement("ul");
  scope.className = "scope";
  scope.setAttribute("aria-label", "Scope");
  for (const [name, value] of Object.entries(rec.scope)) {
    if (value) {
      const chip = document.createElement("li");
      chip.textContent = `${name.replace(/_id$/, "")}: ${value}`;
      scope.append(chip);
    }
  }
  const basis = document.createElement("p");
  basis.className = "basis";
  basis.textContent = rec.saving_basis;

  const evidence = document.createElement("dl");
  evidence.setAttribute("aria-label", "Evidence");
  for (const [name, value] of Object.entries(rec.evidence)) {
    const row = document.createElement("div");
    const dt = document.createElement("dt");
    dt.textContent = name.replace(/_/g, " ");
    const dd = document.createElement("dd");
    dd.dataset.name = name;
    dd.textContent = evidenceText(name, value, currency);
    dd.title = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
    row.append(dt, dd);
    evidence.append(row);
  }

  const samples = document.createElement("p");
  samples.className = "samples";
  samples.append("Sample traces: ");
  for (const id of rec.sample_trace_ids) {
    if (readSpans === "yes") {
      const link = document.createElement("a");
      link.href = `${traces}${id}`;
      link.textContent = id.slice(0, 12);
      link.title = id;
      samples.append(link);
    } else {
      const code = document.createElement("code");
      code.textContent = id.slice(0, 12);
      code.title = id;
      samples.append(code, " ");
    }
  }
  item.append(header, scope, basis, evidence, samples);
  return item;
}

function fill(body) {
  const currency = body.currency || "USD";
  money(document.getElementById("total"), body.total_saving_per_month, currency);
  const count = body.recommendations.length;
  document.getElementById("basis").textContent =
    `${count} recommendation${count === 1 ? "" : "s"} over ${body.window_days.toFixed(1)} days; ` +
    `${body.extrapolation}. Recommendations can overlap: the total is an upper bound.`;
  document.getElementById("empty").hidden = count > 0;
  const list = document.getElementById("recommendations");
  list.replaceChildren(...body.recommendations.map((r) => card(r, currency)));
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = `Could not load the recommendations: ${error.message}`;
  box.hidden = false;
  document.getElementById("total").textContent = "—";
  document.getElementById("basis").textContent = "";
}

fetchApi(api, "/recommendations", { start, end, filter })
  .then(fill)
  .catch(showError)
  .finally(() => view.setAttribute("aria-busy", "false"));
