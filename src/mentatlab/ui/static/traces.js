// The trace list: /api/v1/traces with the shell's range and filters, the page's search
// (root span name, min cost, min duration), order and page. Each row links to the trace's
// waterfall with this URL's parameters, so the way back finds the same list.
import { fetchApi, formatCount, formatMs } from "./chart.js";
import { cell, message, moneyCell, when } from "./table.js";

const view = document.getElementById("traces");
const d = view.dataset;
const limit = Number(d.limit);
const offset = Number(d.offset);
const COLUMNS = 8;

function fill(traces) {
  const body = view.querySelector("#trace-list tbody");
  const shown = traces.slice(0, limit);
  // one more than a page was asked for: its presence says there is a next page
  document.getElementById("next-page").hidden = traces.length <= limit;
  document.getElementById("page-info").textContent = shown.length
    ? `Traces ${formatCount(offset + 1)}–${formatCount(offset + shown.length)}` : "";
  if (shown.length === 0) {
    message(body, offset > 0 ? "No more traces." : "No traces match.", COLUMNS);
    document.getElementById("empty").hidden = offset > 0;
    return;
  }
  body.replaceChildren();
  for (const t of shown) {
    const tr = document.createElement("tr");
    cell(tr, when(t.start_time), "wide-only");
    const name = cell(tr, "", "name");
    const link = document.createElement("a");
    link.href = `traces/${encodeURIComponent(t.trace_id)}${d.linkQuery ? `?${d.linkQuery}` : ""}`;
    link.textContent = t.root_name || `(root not received) ${t.trace_id.slice(0, 8)}`;
    link.title = `${t.root_name || "trace"} · ${t.trace_id}`;
    name.append(link);
    if (t.status !== "ok") { // the status column is hidden on a phone: say it here
      const badge = document.createElement("span");
      badge.className = `phone-only status-${t.status}`;
      badge.textContent = ` ${t.status}`;
      name.append(badge);
    }
    cell(tr, t.service_name || "—", "name wide-only");
    cell(tr, formatCount(t.num_spans), "num wide-only");
    cell(tr, formatMs(t.duration_ms), "num");
    cell(tr, t.status, `wide-only status-${t.status}`);
    moneyCell(tr, t.total_cost, "USD");
    const models = (t.models || []).join(", ");
    cell(tr, models || "—", "name wide-only", models);
    body.append(tr);
  }
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = `Could not load the traces: ${error.message}`;
  box.hidden = false;
  view.querySelector("#trace-list tbody").replaceChildren();
}

async function load() {
  const answer = await fetchApi(d.api, "/traces", {
    start: d.start, end: d.end, filter: d.filter, status: d.status, q: d.q, sort: d.sort,
    min_cost: d.minCost, min_duration_ms: d.minDurationMs, limit: limit + 1, offset,
  });
  fill(answer.traces);
}

load()
  .catch(showError)
  .finally(() => view.setAttribute("aria-busy", "false"));
