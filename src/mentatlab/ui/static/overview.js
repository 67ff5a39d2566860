// The overview view: headline numbers, spend today and this month, budgets and firing
// alerts, spend trend, top agents, workflows and traces, all from the REST API
// (/api/v1/overview, /cost, /traces, /alert-rules, /alerts) for the range, filters and
// display time zone the page was rendered with.
import { drawMoneyTrend, fetchApi, formatCount, formatMoney, formatMs, formatRatio }
  from "./chart.js";
import { cell, message, moneyCell, when } from "./table.js";

const view = document.getElementById("overview");
const { api, start, end, filter, bucket, readSpans, readAlerts } = view.dataset;
const range = { start, end, filter };

function setMetric(name, text, title = "") {
  const element = view.querySelector(`[data-metric="${name}"]`);
  element.textContent = text;
  if (title) {
    element.title = title;
  }
}

// One "top 5 by spend" table: rows of the cost API grouped by `key` (agent_id,
// workflow_id), each name linking to its traces (the `param` filter of the bar).
function fillTop(tableId, rows, currency, key, param, none) {
  const body = view.querySelector(`#${tableId} tbody`);
  body.replaceChildren();
  // The cost API answers every key of the range; the view keeps the 5 costliest.
  const top = [...rows].sort((a, b) => Number(b.total_cost) - Number(a.total_cost)).slice(0, 5);
  if (top.length === 0) {
    message(body, "No spend in this range.", 4);
    return;
  }
  for (const row of top) {
    const here = new URLSearchParams(window.location.search);
    const tr = document.createElement("tr");
    const name = cell(tr, "", "name");
    if (row[key]) {
      const link = document.createElement("a");
      here.set(param, row[key]);
      link.href = `traces?${here}`;
      link.textContent = row[key];
      link.title = row[key];
      name.append(link);
    } else {
      name.textContent = none;
      name.className = "name muted";
    }
    moneyCell(tr, row.total_cost, currency);
    cell(tr, formatCount(row.requests), "num");
    cell(tr, formatCount(row.error_spans), "num");
    body.append(tr);
  }
}

// Budgets: the most used one (spend in its period / its limit, as last evaluated).
function showBudgets(rules) {
  const budgets = rules.filter((r) => r.kind === "budget" && r.enabled !== false
    && r.limit_amount && Number(r.limit_amount) > 0);
  if (budgets.length === 0) {
    setMetric("budget_use", "—");
    setMetric("budget_detail", "No budget yet: add one in Alerts.");
    return;
  }
  const use = (r) => (r.last_value === null || r.last_value === undefined
    ? null : Number(r.last_value) / Number(r.limit_amount));
  const ranked = [...budgets].sort((a, b) => (use(b) ?? -1) - (use(a) ?? -1));
  const top = ranked[0];
  const ratio = use(top);
  setMetric("budget_use", ratio === null ? "not evaluated" : formatRatio(ratio),
    `${top.last_value ?? "—"} of ${top.limit_amount} (${top.period})`);
  const more = budgets.length > 1 ? ` (highest of ${budgets.length})` : "";
  setMetric("budget_detail", `${top.name}, ${top.period}${more}`);
}

// Firing now: rules whose state is "firing" (an alert record is an event and stays
// "firing" after its rule resolves); the newest firing event says when it last fired.
function showFiring(rules, latest) {
  const firing = rules.filter((r) => r.state === "firing" && r.enabled !== false);
  setMetric("firing", formatCount(firing.length));
  const names = firing.map((r) => r.name);
  let detail = names.slice(0, 2).join(", ") + (names.length > 2 ? ` and ${names.length - 2} more` : "");
  if (firing.length === 0) {
    detail = "Nothing firing.";
  }
  if (firing.length > 0) {
    detail += ".";
  }
  if (latest) {
    const who = names.includes(latest.rule_name) ? "" : ` (${latest.rule_name})`;
    detail += ` Last fired ${when(latest.created_at)}${who}.`;
  }
  setMetric("firing_detail", detail);
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
  const alerts = readAlerts === "yes";
  const [overview, trend, agents, workflows, traces, today, month, rules, firing] =
    await Promise.all([
      fetchApi(api, "/overview", range),
      fetchApi(api, "/cost", { ...range, group_by: "", bucket }),
      fetchApi(api, "/cost", { ...range, group_by: "agent_id" }),
      fetchApi(api, "/cost", { ...range, group_by: "workflow_id" }),
      // only for roles that may read traces (the page says so otherwise)
      readSpans === "yes" ? fetchApi(api, "/traces", { ...range, sort: "cost", limit: 5 }) : null,
      // today and month to date in the display zone (fetchApi sends tz)
      fetchApi(api, "/overview", { filter, period: "today" }),
      fetchApi(api, "/overview", { filter, period: "month" }),
      alerts ? fetchApi(api, "/alert-rules", {}) : null,
      alerts ? fetchApi(api, "/alerts", { state: "firing", limit: 1 }) : null,
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
  for (const [name, answer] of [["spend_today", today], ["spend_month", month]]) {
    const shown = formatMoney(answer.spend, currency);
    setMetric(name, shown.text, shown.title);
  }
  if (rules) {
    showBudgets(rules.rules || []);
    showFiring(rules.rules || [], (firing.alerts || [])[0]);
  }
  fillTop("top-agents", agents.rows, currency, "agent_id", "agent", "(no agent)");
  fillTop("top-workflows", workflows.rows, currency, "workflow_id", "workflow", "(no workflow)");
  if (traces) {
    fillTopTraces(traces.traces, currency);
  }
}

load()
  .catch(showError)
  .finally(() => view.setAttribute("aria-busy", "false"));
