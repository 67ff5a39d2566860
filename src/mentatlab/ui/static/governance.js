// The governance view: policy decisions over time (/governance/decisions), PII findings
// (/governance/pii), security signals (/governance/signals), the approval queue
// (/governance/approvals), retention and erasure receipts
// (/governance/retention, /audit?action=governance.erased), the audit timeline (/audit) and
// the simulation of a draft policy (POST /policies/simulate). Each panel loads on its own
// and shows its own error; every number is the API's.
import { drawCountSeries, fetchApi, formatCount, formatMs, formatRatio } from "./chart.js";
import { sendJson, showErrors, clearErrors } from "./apiform.js";
import { cell, message, when } from "./table.js";

const view = document.getElementById("governance");
const { api, start, end, filter, bucket, traces, query } = view.dataset;
const ACTIONS = ["block", "alert", "redact", "log"];
const ACTION_COLORS = { block: "--error", alert: "--focus", redact: "--accent", log: "--muted" };

function setMetric(name, text) {
  const node = view.querySelector(`[data-metric="${name}"]`);
  if (node) {
    node.textContent = text;
  }
}

function panelError(name, error) {
  const box = view.querySelector(`[data-error="${name}"]`);
  box.textContent = `Could not load: ${error.message}`;
  box.hidden = false;
}

function rows(table, items, colspan, empty, fill) {
  const body = document.querySelector(`#${table} tbody`);
  body.replaceChildren();
  if (items.length === 0) {
    message(body, empty, colspan);
    return;
  }
  for (const item of items) {
    fill(body.insertRow(), item);
  }
}

function traceLink(row, traceId) {
  const params = new URLSearchParams(query);
  const td = cell(row, "", "name");
  const a = document.createElement("a");
  a.href = `${traces}/${encodeURIComponent(traceId)}${params.toString() ? `?${params}` : ""}`;
  a.textContent = traceId.slice(0, 16);
  a.title = traceId;
  td.append(a);
  return td;
}

// policy id → name, from the policy list (ids only when it cannot be read)
async function policyNames() {
  try {
    const body = await fetchApi(api, "/policies", {});
    return new Map(body.policies.map((p) => [p.id, p.name]));
  } catch (error) {
    return new Map();
  }
}

async function loadDecisions() {
  const [body, names] = await Promise.all([
    fetchApi(api, "/governance/decisions", { start, end, filter, bucket }), policyNames()]);
  const total = Object.values(body.by_action).reduce((a, b) => a + b, 0);
  setMetric("num_decisions", formatCount(total));
  setMetric("decision_detail", ACTIONS.filter((a) => body.by_action[a])
    .map((a) => `${formatCount(body.by_action[a])} ${a}`).join(", ") || "no policy matched");
  setMetric("num_blocked", formatCount(body.num_blocked));
  const chart = document.getElementById("decisions-chart");
  if (body.buckets.length === 0) {
    chart.classList.add("chart-empty");
    chart.textContent = "No policy matched a span in this range.";
  } else {
    const kinds = ACTIONS.filter((a) => body.buckets.some((r) => r.action === a));
    drawCountSeries(chart, body.buckets, kinds,
      { kindKey: "action", countKey: "num_decisions", colors: ACTION_COLORS, bucket });
  }
  rows("policies", body.policies, 6, "No policy matched a span in this range.", (row, p) => {
    cell(row, names.get(p.policy_id) || p.policy_id, "name", p.policy_id);
    cell(row, p.action, `action ${p.action}`);
    cell(row, formatCount(p.num_decisions), "num");
    cell(row, formatCount(p.num_spans), "num wide-only");
    cell(row, `v${p.latest_version}`, "num wide-only");
    cell(row, when(p.last_seen));
  });
}

function countRows(table, items, key) {
  rows(table, items, 3, "None in this range.", (row, item) => {
    cell(row, item[key] || "—", "name");
    cell(row, formatCount(item.num_findings), "num");
    cell(row, formatCount(item.num_spans), "num wide-only");
  });
}

async function loadPii() {
  const body = await fetchApi(api, "/governance/pii", { start, end, filter });
  setMetric("num_pii", formatCount(body.num_findings));
  setMetric("pii_detail", `in ${formatCount(body.num_spans)} span${body.num_spans === 1 ? "" : "s"}; `
    + `mode ${body.pii_mode}`);
  countRows("pii-categories", body.by_category, "category");
  countRows("pii-projects", body.by_project, "project_id");
  countRows("pii-attributes", body.by_key, "key");
}

async function loadSignals() {
  const body = await fetchApi(api, "/governance/signals", { start, end, filter });
  const findings = body.findings; // highest severity first
  setMetric("num_signals", formatCount(findings.length));
  const high = findings.filter((f) => f.severity === "high").length;
  const unavailable = Object.keys(body.unavailable || {});
  const detail = findings.length ? `${formatCount(high)} high` : "none";
  setMetric("signal_detail", detail
    + (unavailable.length ? ` (${unavailable.length} kinds not available on this store)` : ""));
  rows("signals", findings, 6, "No security signal in this range.", (row, f) => {
    cell(row, f.severity, `severity ${f.severity}`);
    cell(row, f.kind.replace(/_/g, " "), "name wide-only");
    cell(row, f.summary, "summary");
    cell(row, formatCount(f.count), "num");
    cell(row, when(f.first_seen), "wide-only");
    cell(row, when(f.last_seen));
  });
}

async function loadApprovals() {
  const body = await fetchApi(api, "/governance/approvals", { start, end, filter });
  const total = body.total;
  setMetric("queue_length", formatCount(total.queue_length));
  setMetric("approval_detail", total.num_decided
    ? `${formatRatio(total.approval_rate)} approved; wait p95 ${formatMs(total.wait_ms_p95)}`
    : "none decided in this range");
}

function fact(list, name, text) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = text;
  list.append(dt, dd);
}

async function loadRetention() {
  const list = document.getElementById("retention");
  const [retention, erasures] = await Promise.all([
    fetchApi(api, "/governance/retention", {}),
    fetchApi(api, "/audit", { action: "governance.erased", since: start, until: end, limit: 100 }),
  ]);
  // the caller's org when it has one (its override over the settings), else the settings
  const values = retention.orgs.length === 1 ? retention.orgs[0].retention : retention.defaults;
  const kept = (n, unit) => (n ? `${formatCount(n)} ${unit}${n === 1 ? "" : "s"}` : "forever");
  list.replaceChildren();
  fact(list, "Spans", kept(values.span_days, "day"));
  fact(list, "Aggregates (cost history)", kept(values.aggregate_days, "day"));
  fact(list, "Audit log", kept(values.audit_years, "year"));
  const entries = erasures.entries;
  setMetric("num_erasures", formatCount(entries.length));
  setMetric("erasure_detail", entries.length ? "with receipts in the audit log" : "none in this range");
  rows("erasures", entries, 5, "No erasure in this range.", (row, e) => {
    const receipt = e.details || {};
    cell(row, when(e.at));
    cell(row, e.actor, "name wide-only");
    cell(row, `${receipt.field || "subject"} ${(e.target || "").slice(0, 12)}`, "name", e.target);
    cell(row, formatCount(receipt.total || 0), "num");
    cell(row, e.hash.slice(0, 12), "hash wide-only", e.hash);
  });
}

let auditCursor = null;

async function loadAudit(more = false) {
  const form = document.getElementById("audit-filter");
  const data = new FormData(form);
  const params = { since: start, until: end, limit: 50, cursor: more ? auditCursor : null };
  for (const name of ["actor", "action"]) {
    params[name] = String(data.get(name) || "").trim();
  }
  clearErrors(form);
  let body;
  try {
    body = await fetchApi(api, "/audit", params);
  } catch (error) {
    showErrors(form, { status: 0, body: { error: error.message, errors: [] } });
    return;
  }
  const tbody = document.querySelector("#audit tbody");
  if (!more) {
    tbody.replaceChildren();
  }
  if (!more && body.entries.length === 0) {
    message(tbody, "No audit entry matches in this range.", 5);
  }
  for (const e of body.entries) {
    const row = tbody.insertRow();
    cell(row, when(e.at, true));
    cell(row, e.actor, "name");
    cell(row, e.action, "name");
    cell(row, e.target || "—", "name wide-only");
    cell(row, e.hash.slice(0, 12), "hash wide-only", e.hash);
  }
  auditCursor = body.next_cursor;
  document.getElementById("audit-more").hidden = auditCursor === null;
}

function showSimulation(body) {
  const box = document.getElementById("simulation");
  box.replaceChildren();
  const list = document.createElement("dl");
  list.className = "facts";
  fact(list, "Spans read", formatCount(body.num_scanned) + (body.truncated ? " (stopped at the bound)" : ""));
  fact(list, "In the policy's scope", formatCount(body.num_in_scope));
  fact(list, "Would have matched", formatCount(body.num_matched));
  if (body.num_errors) {
    fact(list, "Evaluation errors", formatCount(body.num_errors));
  }
  box.append(list);
  if (body.sample_span_ids.length) {
    const samples = document.createElement("table");
    samples.id = "simulation-samples";
    const caption = samples.createCaption();
    caption.textContent = "Spans it would have matched";
    const head = samples.createTHead().insertRow();
    for (const name of ["Trace", "Span"]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = name;
      head.append(th);
    }
    const tbody = samples.createTBody();
    for (const [traceId, spanId] of body.sample_span_ids) {
      const row = tbody.insertRow();
      traceLink(row, traceId);
      cell(row, spanId, "hash");
    }
    box.append(samples);
  }
}

async function simulate(event) {
  event.preventDefault();
  const form = event.target;
  const data = new FormData(form);
  clearErrors(form);
  const answer = await sendJson(api, "/policies/simulate", "POST", {
    policy: {
      name: "draft",
      condition: String(data.get("condition") || ""),
      action: String(data.get("action")),
    },
    start,
    end,
  });
  if (!answer.ok) {
    showErrors(form, answer);
    return;
  }
  showSimulation(answer.body);
}

function guarded(name, load) {
  return load().catch((error) => panelError(name, error));
}

document.getElementById("audit-filter").addEventListener("submit", (event) => {
  event.preventDefault();
  loadAudit();
});
document.getElementById("audit-more").addEventListener("click", () => loadAudit(true));
const simulateForm = document.getElementById("simulate");
if (simulateForm) {
  simulateForm.addEventListener("submit", simulate);
}

Promise.all([
  guarded("decisions", loadDecisions),
  guarded("pii", loadPii),
  guarded("signals", loadSignals),
  guarded("approvals", loadApprovals),
  guarded("retention", loadRetention),
  loadAudit(),
]).finally(() => view.setAttribute("aria-busy", "false"));
