// The overview view: headline numbers, spend trend and top agents, all from the REST API
// (/api/v1/overview, /api/v1/cost) for the range and filters the page was rendered with.
import { drawMoneyTrend, fetchApi, formatCount, formatMoney, formatMs, formatRatio }
  from "./chart.js";
import { cell, message, moneyCell, when } from "./table.js";

const view = document.getElementById("overview");
const { api, start, end, filter, bucket, readSpans } = view.dataset;
const range = { start, end, filter };

function setMetric(name, text, title = "") {
  const element = view.querySelector(`[data-metric="${name}"]`);
  element.textContent = text;
  if (title) {
    element.title = title;
  }
}

function fillTopAgents(rows, currency) {
  const body = view.querySelector("#top-agents tbody");
  body.replaceChildren();
  // The cost API answers every agent of the range; the view keeps the 5 costliest.
  const top = [...rows].sort((a, b) => Number(b.total_cost) - Number(a.total_cost)).slice(0, 5);
  if (top.length === 0) {
    message(body, "No spend in this range.", 4);
    return;
  }
  const here = new URLSearchParams(window.location.search);
  for (const row of top) {
    const tr = document.createElement("tr");
    const name = cell(tr, "");
    if (row.agent_id) {
      const link = document.createElement("a");
      here.set("agent", row.agent_id);
      link.href = `traces?${here}`;
      link.textContent = row.agent_id;
      name.append(link);
    } else {
      name.textContent = "(no agent)";
      name.className = "muted";
    }
    moneyCell(tr, row.total_cost, currency);
    cell(tr, formatCount(row.requests), "num");
    cell(tr, formatCount(row.error_spans), "num");
    body.append(tr);
  }
}

function fillTopTraces(traces, currency) {
  const body = view.querySelector("#top-traces tbody");
  body.replaceChildren();
  if (traces.length === 0) {
    message(body, "No traces in this range.", 5);
    return;
  }
  for (const trace of traces) {
    const tr = document.createElement("tr");
    const link = document.createElement("a");
    link.href = `traces/${encodeURIComponent(trace.trace_id)}`;
    link.textContent = trace.root_name || trace.trace_id.slice(0, 16);
    link.title = trace.trace_id;
    cell(tr, "", "name").append(link);
    cell(tr, when(trace.start_time, true));
    moneyCell(tr, trace.total_cost, currency);
    cell(tr, formatCount(trace.num_spans), "num wide-only");
    cell(tr, trace.status, `status-${trace.status} wide-only`);
    body.append(tr);
  }
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = `Could not load the overview: ${error.message}`;
  box.hidden = false;
  for (const element of view.querySelectorAll("[data-metric]")) {
    element.textContent = "—";
  }
  for (const body of view.querySelectorAll("tbody")) {
    body.replaceChildren();
  }
  document.getElementById("trend").textContent = "No data (see the error above).";
}

async function load() {
  const [overview, trend, agents, traces] = await Promise.all([
    fetchApi(api, "/overview", range),
    fetchApi(api, "/cost", { ...range, group_by: "", bucket }),
    fetchApi(api, "/cost", { ...range, group_by: "agent_id" }),
    // only for roles that may read traces (the page says so otherwise)
    readSpans === "yes" ? fetchApi(api, "/traces", { ...range, sort: "cost", limit: 5 }) : null,
  ]);
  const currency = trend.currency || "USD";
  const spend = formatMoney(overview.spend, currency);
  setMetric("spend", spend.text, spend.title);
  setMetric("requests", formatCount(overview.requests));
  const none = overview.num_spans === 0;
  setMetric("success_rate", none ? "—" : formatRatio(overview.success_rate));
  setMetric("latency_p95_ms", none ? "—" : formatMs(overview.latency_p95_ms));
  document.getElementById("empty").hidden = !none;
  const chart = document.getElementById("trend");
  if (trend.rows.length === 0) {
    chart.textContent = "No spend in this range.";
    chart.classList.add("chart-empty");
  } else {
    drawMoneyTrend(chart, trend.rows, currency, bucket);
  }
  fillTopAgents(agents.rows, currency);
  if (traces) {
    fillTopTraces(traces.traces, currency);
  }
}

load()
  .catch(showError)
  .finally(() => view.setAttribute("aria-busy", "false"));
