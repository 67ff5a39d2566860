// The alerts view: budgets and threshold rules with their state (/api/v1/alert-rules) and
// the alert history with each delivery's status (/api/v1/alerts). Read-only.
import { fetchApi, formatCount, formatMoney } from "./chart.js";
import { cell, message, when } from "./table.js";

const view = document.getElementById("alerts");
const { api, readUsage } = view.dataset;
const HISTORY_LIMIT = 50;

function scope(rule) {
  const filters = Object.entries(rule.filters || {}).map(([k, v]) => `${k}=${v}`);
  return filters.length ? filters.join(", ") : "everything";
}

function stateCell(tr, rule) {
  const state = rule.enabled === false ? "disabled" : rule.state || "—";
  const since = rule.state_since ? `since ${when(rule.state_since)} UTC` : "";
  cell(tr, state, `state state-${state}`, since);
}

// a metric's value: money for cost, a ratio for error_rate, ms for latency, else a count
function metricText(metric, value, currency) {
  if (value === null || value === undefined) {
    return { text: "—", title: "" };
  }
  if (metric === "cost") {
    return formatMoney(value, currency);
  }
  if (metric === "error_rate" || metric.startsWith("latency")) {
    const unit = metric.startsWith("latency") ? " ms" : "";
    return { text: `${value}${unit}`, title: `${value}${unit}` };
  }
  return { text: formatCount(Number(value)), title: String(value) };
}

function fillBudgets(rules, currency) {
  const body = view.querySelector("#budgets tbody");
  if (rules.length === 0) {
    message(body, "No budget.", 7);
    return;
  }
  body.replaceChildren();
  for (const rule of rules) {
    const tr = document.createElement("tr");
    cell(tr, rule.name, "name", rule.id);
    stateCell(tr, rule);
    const spend = formatMoney(rule.last_value, currency);
    cell(tr, spend.text, "num", rule.last_evaluated_at
      ? `${spend.title} (at ${when(rule.last_evaluated_at)} UTC)` : spend.title);
    const limit = formatMoney(rule.limit_amount, currency);
    const thresholds = (rule.thresholds || []).map((t) => `${Number(t) * 100} %`).join(", ");
    cell(tr, limit.text, "num", `${limit.title}; notifies at ${thresholds}`);
    cell(tr, rule.period, "wide-only");
    cell(tr, scope(rule), "name wide-only");
    cell(tr, (rule.channels || []).join(", "), "name wide-only");
    body.append(tr);
  }
}

function fillRules(rules, currency) {
  const body = view.querySelector("#rules tbody");
  if (rules.length === 0) {
    message(body, "No threshold rule.", 6);
    return;
  }
  body.replaceChildren();
  for (const rule of rules) {
    const tr = document.createElement("tr");
    cell(tr, rule.name, "name", rule.id);
    stateCell(tr, rule);
    const threshold = metricText(rule.metric, rule.threshold, currency);
    cell(tr, `${rule.metric} ${rule.op} ${threshold.text} over ${formatCount(rule.window_s)} s`,
      "wrap", threshold.title);
    const last = metricText(rule.metric, rule.last_value, currency);
    cell(tr, last.text, "num", last.title);
    cell(tr, scope(rule), "name wide-only");
    cell(tr, (rule.channels || []).join(", "), "name wide-only");
    body.append(tr);
  }
}

function deliveryText(deliveries) {
  if (!deliveries || deliveries.length === 0) {
    // The evaluator notifies only the highest threshold one run crosses (docs/alerting.md).
    return { text: "not sent", title: "No delivery: a higher threshold crossed in the same " +
      "evaluation was notified instead, or the rule has no channel" };
  }
  const text = deliveries.map((d) => `${d.status}`).join(", ");
  const title = deliveries.map((d) => `${d.channel}: ${d.status}, ${d.attempts} attempt(s)` +
    (d.last_error ? `, ${d.last_error}` : "") + (d.sent_at ? `, sent ${when(d.sent_at)}` : ""))
    .join("\n");
  return { text, title };
}

function fillHistory(alerts, currency) {
  const body = view.querySelector("#history tbody");
  if (alerts.length === 0) {
    message(body, "No alert has fired yet.", 6);
    return;
  }
  body.replaceChildren();
  for (const alert of alerts) {
    const tr = document.createElement("tr");
    cell(tr, when(alert.created_at));
    // The rule with what it crossed, visible at every width (the phone hides the columns
    // after it): two alerts of one budget differ only there.
    const crossed = metricText(alert.metric, alert.threshold, currency);
    const rule = cell(tr, alert.rule_name, "name");
    const detail = document.createElement("small");
    detail.className = "muted crossed";
    detail.textContent = alert.rule_kind === "budget"
      ? `reached ${crossed.text}` : `${alert.state} (${alert.metric} ${crossed.text})`;
    rule.append(document.createElement("br"), detail);
    cell(tr, alert.state, `state state-${alert.state} wide-only`);
    const value = metricText(alert.metric, alert.value, currency);
    cell(tr, value.text, "num wide-only", value.title);
    cell(tr, alert.message, "name wide-only", alert.message);
    const delivery = deliveryText(alert.deliveries);
    const failed = (alert.deliveries || []).some((d) => d.status === "failed");
    cell(tr, delivery.text, failed ? "name status-error" : "name", delivery.title);
    body.append(tr);
  }
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = `Could not load the alerts: ${error.message}`;
  box.hidden = false;
  for (const body of view.querySelectorAll("tbody")) {
    body.replaceChildren();
  }
}

async function load() {
  const [rules, alerts, prices] = await Promise.all([
    fetchApi(api, "/alert-rules", {}),
    fetchApi(api, "/alerts", { limit: HISTORY_LIMIT }),
    readUsage === "yes" ? fetchApi(api, "/prices", {}) : null,
  ]);
  const currency = (prices && prices.currency && prices.currency.code) || "USD";
  const budgets = rules.rules.filter((r) => r.kind === "budget");
  fillBudgets(budgets, currency);
  fillRules(rules.rules.filter((r) => r.kind !== "budget"), currency);
  fillHistory(alerts.alerts, currency);
  document.getElementById("empty").hidden = rules.rules.length > 0;
}

load()
  .catch(showError)
  .finally(() => view.setAttribute("aria-busy", "false"));
