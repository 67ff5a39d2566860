// The bottlenecks view: groups ranked by critical-path time of the settled traces
// (/api/v1/analytics/bottlenecks), with severity badges, share bars and trend arrows.
// Each row links to the traces view filtered on its key, longest first.
import { fetchApi, formatCount, formatMs } from "./chart.js";
import { cell, message } from "./table.js";

const view = document.getElementById("bottlenecks");
const { api, start, end, filter, groupBy, traceParam, traces } = view.dataset;
const COLUMNS = 8;

const percent = (value) =>
  `${new Intl.NumberFormat(undefined, { maximumFractionDigits: 1, minimumFractionDigits: 1 }).format(value)} %`;

function shareCell(tr, value) {
  const td = cell(tr, "", "share-col");
  const box = document.createElement("div");
  box.className = "share";
  const track = document.createElement("span");
  track.className = "share-track";
  const fill = document.createElement("span");
  fill.className = "share-fill";
  fill.style.width = `${Math.max(0, Math.min(100, value))}%`;
  track.append(fill);
  const text = document.createElement("span");
  text.className = "share-text";
  text.textContent = percent(value);
  box.append(track, text);
  td.append(box);
  td.setAttribute("data-share", String(value));
}

function trendCell(tr, row) {
  if (row.trend_pct === null || row.trend_pct === undefined) {
    const td = cell(tr, "new", "num trend-new",
      "No critical-path time in the previous period of the same length");
    td.setAttribute("data-trend", "");
    return;
  }
  const value = row.trend_pct;
  const arrow = value > 0 ? "▲" : value < 0 ? "▼" : "▶";
  const kind = value > 0 ? "trend-up" : value < 0 ? "trend-down" : "trend-new";
  const shown = `${arrow} ${value > 0 ? "+" : ""}${new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 }).format(value)} %`;
  const td = cell(tr, shown, `num ${kind}`,
    `Previous period: ${formatMs(row.previous_critical_path_ms)} on the critical path`);
  td.setAttribute("data-trend", String(value));
  td.setAttribute("aria-label", `${value > 0 ? "up" : value < 0 ? "down" : "flat"} ${Math.abs(value).toFixed(0)} percent`);
}

function fill(body) {
  const rows = body.rows || [];
  document.getElementById("summary").textContent = rows.length
    ? `${formatCount(body.num_traces)} settled traces, ${formatMs(body.total_critical_path_ms)} ` +
      `on their critical paths; ${formatCount(body.num_groups)} groups` +
      (body.num_groups > rows.length ? `, the top ${rows.length} shown.` : ".")
    : "";
  document.getElementById("empty").hidden = rows.length > 0;
  const tbody = view.querySelector("#ranking tbody");
  if (rows.length === 0) {
    message(tbody, "Nothing to rank.", COLUMNS);
    return;
  }
  tbody.replaceChildren();
  rows.forEach((row, index) => {
    const tr = document.createElement("tr");
    tr.setAttribute("data-key", row.key);
    cell(tr, String(index + 1), "num muted wide-only");
    const name = cell(tr, "", "name");
    const link = document.createElement("a");
    link.href = `${traces}&${traceParam}=${encodeURIComponent(row.key)}`;
    link.textContent = row.key;
    link.title = `Traces with ${traceParam} = ${row.key}, longest first`;
    name.append(link);
    const sev = cell(tr, "", "");
    const badge = document.createElement("span");
    badge.className = `sev sev-${row.severity}`;
    badge.textContent = row.severity;
    sev.append(badge);
    cell(tr, formatMs(row.critical_path_ms), "num", `${row.critical_path_ms} ms`)
      .setAttribute("data-ms", String(row.critical_path_ms));
    shareCell(tr, row.share_pct);
    trendCell(tr, row);
    cell(tr, new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 }).format(row.occurrences_per_hour),
      "num wide-only", `${formatCount(row.occurrences)} in the range`);
    cell(tr, `${formatCount(row.on_path)} / ${formatCount(row.occurrences)}`, "num wide-only",
      "Spans on their trace's critical path / all spans of the group");
    tbody.append(tr);
  });
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = `Could not load the bottlenecks: ${error.message}`;
  box.hidden = false;
  document.getElementById("summary").textContent = "";
  view.querySelector("#ranking tbody").replaceChildren();
}

fetchApi(api, "/analytics/bottlenecks", { start, end, filter, group_by: groupBy, limit: 50 })
  .then(fill)
  .catch(showError)
  .finally(() => view.setAttribute("aria-busy", "false"));
