// The alerts view: budgets and threshold rules with their state (/api/v1/alert-rules) and
// the alert history with each delivery's status (/api/v1/alerts). Roles that may write
// rules (manage_alerts) also get forms to create and edit budgets and threshold rules,
// and buttons to disable, enable and delete them (POST, PATCH, DELETE /api/v1/alert-rules),
// with the API's validation errors next to the field they name.
import { fetchApi, formatCount, formatMoney } from "./chart.js";
import { cell, message, when } from "./table.js";
import { clearErrors, confirmAction, sendJson, showErrors } from "./apiform.js";

const view = document.getElementById("alerts");
const { api, readUsage } = view.dataset;
const canManage = view.dataset.canManage === "yes";
const ACTIONS = canManage ? 1 : 0;
const rulesById = new Map();
const HISTORY_LIMIT = 50;

function scope(rule) {
  const filters = Object.entries(rule.filters || {}).map(([k, v]) => `${k}=${v}`);
  return filters.length ? filters.join(", ") : "everything";
}

function stateCell(tr, rule) {
  const state = rule.enabled === false ? "disabled" : rule.state || "—";
  const since = rule.state_since ? `since ${when(rule.state_since)}` : "";
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
    message(body, "No budget.", 7 + ACTIONS);
    return;
  }
  body.replaceChildren();
  for (const rule of rules) {
    const tr = document.createElement("tr");
    cell(tr, rule.name, "name", rule.id);
    stateCell(tr, rule);
    const spend = formatMoney(rule.last_value, currency);
    cell(tr, spend.text, "num", rule.last_evaluated_at
      ? `${spend.title} (at ${when(rule.last_evaluated_at)})` : spend.title);
    const limit = formatMoney(rule.limit_amount, currency);
    const thresholds = (rule.thresholds || []).map((t) => `${Number(t) * 100} %`).join(", ");
    cell(tr, limit.text, "num", `${limit.title}; notifies at ${thresholds}`);
    cell(tr, rule.period, "wide-only");
    cell(tr, scope(rule), "name wide-only");
    cell(tr, (rule.channels || []).join(", "), "name wide-only");
    addActions(tr, rule);
    body.append(tr);
  }
}

function fillRules(rules, currency) {
  const body = view.querySelector("#rules tbody");
  if (rules.length === 0) {
    message(body, "No threshold rule.", 6 + ACTIONS);
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
    addActions(tr, rule);
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
  rulesById.clear();
  for (const rule of rules.rules) {
    rulesById.set(rule.id, rule);
  }
  const budgets = rules.rules.filter((r) => r.kind === "budget");
  fillBudgets(budgets, currency);
  fillRules(rules.rules.filter((r) => r.kind !== "budget"), currency);
  fillHistory(alerts.alerts, currency);
  document.getElementById("empty").hidden = rules.rules.length > 0;
}

// --- forms (manage_alerts) -------------------------------------------------------------

function actionButton(text, label, onClick, className = "small") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function addActions(tr, rule) {
  if (!canManage) {
    return;
  }
  const td = cell(tr, "", "actions");
  const what = rule.kind === "budget" ? "budget" : "rule";
  td.append(
    actionButton("Edit", `Edit ${what} ${rule.name}`, () => editRule(rule.id)),
    actionButton(rule.enabled === false ? "Enable" : "Disable",
      `${rule.enabled === false ? "Enable" : "Disable"} ${what} ${rule.name}`,
      () => setEnabled(rule, rule.enabled === false)),
    actionButton("Delete", `Delete ${what} ${rule.name}`, () => deleteRule(rule), "small danger"),
  );
}

function say(text) {
  document.getElementById("rule-status").textContent = text;
}

async function refresh() {
  try {
    await load();
    document.getElementById("error").hidden = true;
  } catch (e) {
    showError(e);
  }
}

async function setEnabled(rule, enabled) {
  const answer = await sendJson(api, `/alert-rules/${encodeURIComponent(rule.id)}`, "PATCH",
    { enabled });
  if (!answer.ok) {
    showError(new Error(`${answer.body.error} (${rule.name})`));
    return;
  }
  await refresh();
  say(`“${rule.name}” ${enabled ? "enabled" : "disabled"}.`);
}

async function deleteRule(rule) {
  const yes = await confirmAction(`Delete “${rule.name}” with its alert history? This cannot ` +
    "be undone; disabling keeps it.", "Delete");
  if (!yes) {
    return;
  }
  const answer = await sendJson(api, `/alert-rules/${encodeURIComponent(rule.id)}`, "DELETE");
  if (!answer.ok) {
    showError(new Error(`${answer.body.error} (${rule.name})`));
    return;
  }
  await refresh();
  say(`“${rule.name}” deleted.`);
}

function splitList(text, separator) {
  return text.split(separator).map((t) => t.trim()).filter((t) => t !== "");
}

// "project_id=acme, model=gpt-4o" → {project_id: "acme", model: "gpt-4o"}; an item without
// "=" is sent with an empty value, so the API names it
function parseFilters(text) {
  const filters = {};
  for (const item of splitList(text, ",")) {
    const at = item.indexOf("=");
    filters[at < 0 ? item : item.slice(0, at).trim()] = at < 0 ? "" : item.slice(at + 1).trim();
  }
  return filters;
}

function ruleBody(form, editing) {
  const get = (name) => (form.elements[name] ? form.elements[name].value.trim() : "");
  const body = { name: get("name"), filters: parseFilters(get("filters")),
    enabled: form.elements.enabled.checked };
  const channels = splitList(get("channels"), "\n");
  if (!editing || channels.length) {
    body.channels = channels;
  }
  if (form.dataset.kind === "budget") {
    body.period = get("period");
    body.limit_amount = get("limit_amount") || null;
    const thresholds = splitList(get("thresholds"), ",");
    if (thresholds.length) {
      body.thresholds = thresholds;
    }
  } else {
    body.metric = get("metric");
    body.op = get("op");
    body.threshold = get("threshold") || null;
    const windowS = get("window_s");
    if (windowS) {
      body.window_s = /^\d+$/.test(windowS) ? Number(windowS) : windowS;
    }
  }
  if (!editing) {
    body.kind = form.dataset.kind;
  }
  return body;
}

function resetForm(form) {
  form.reset();
  clearErrors(form);
  form.elements.rule_id.value = "";
  const kind = form.dataset.kind === "budget" ? "budget" : "rule";
  form.querySelector(".save").textContent = `Create ${kind}`;
  form.querySelector(".cancel-edit").hidden = true;
  form.elements.channels.placeholder = form.elements.channels.dataset.placeholder
    || form.elements.channels.placeholder;
}

async function submitRule(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const ruleId = form.elements.rule_id.value;
  const body = ruleBody(form, Boolean(ruleId));
  const answer = ruleId
    ? await sendJson(api, `/alert-rules/${encodeURIComponent(ruleId)}`, "PATCH", body)
    : await sendJson(api, "/alert-rules", "POST", body);
  if (!answer.ok) {
    showErrors(form, answer);
    return;
  }
  resetForm(form);
  form.closest("details").open = false;
  await refresh();
  say(`“${answer.body.rule.name}” ${ruleId ? "saved" : "created"}.`);
}

function editRule(ruleId) {
  const rule = rulesById.get(ruleId);
  const form = document.getElementById(rule.kind === "budget" ? "budget-form" : "threshold-form");
  resetForm(form);
  const set = (name, value) => {
    if (form.elements[name]) {
      form.elements[name].value = value === null || value === undefined ? "" : String(value);
    }
  };
  set("rule_id", rule.id);
  set("name", rule.name);
  const filters = Object.entries(rule.filters || {})
    .filter(([k, v]) => !(k === "org_id" && v === rule.org_id));
  set("filters", filters.map(([k, v]) => `${k}=${v}`).join(", "));
  const channels = form.elements.channels;
  channels.dataset.placeholder = channels.dataset.placeholder || channels.placeholder;
  channels.placeholder = `unchanged: ${(rule.channels || []).join(", ")} (shown without secrets;` +
    " type new ones to replace them)";
  form.elements.enabled.checked = rule.enabled !== false;
  if (rule.kind === "budget") {
    set("period", rule.period);
    set("limit_amount", rule.limit_amount);
    set("thresholds", (rule.thresholds || []).join(", "));
  } else {
    set("metric", rule.metric);
    set("op", rule.op);
    set("threshold", rule.threshold);
    set("window_s", rule.window_s);
  }
  form.querySelector(".save").textContent = "Save changes";
  form.querySelector(".cancel-edit").hidden = false;
  const details = form.closest("details");
  details.open = true;
  details.scrollIntoView({ block: "start" });
  form.elements.name.focus();
  say(`Editing “${rule.name}”.`);
}

function wireForms() {
  if (!canManage) {
    return;
  }
  for (const form of view.querySelectorAll(".rule-form")) {
    form.addEventListener("submit", submitRule);
    form.querySelector(".cancel-edit").addEventListener("click", () => {
      resetForm(form);
      say("");
    });
  }
}

wireForms();
load()
  .catch(showError)
  .finally(() => view.setAttribute("aria-busy", "false"));
