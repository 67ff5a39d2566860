// The reliability view: /api/v1/analytics/reliability as rate cards, a failure heatmap
// (step × time), the failure taxonomy (class → category, each linking to the trace list
// filtered to it), the steps, and the loops and agent cycles linking to their traces.
// Every number shown is one the API answered.
import { drawFailureHeatmap, fetchApi, formatCount, formatRatio } from "./chart.js";
import { cell, message } from "./table.js";

const view = document.getElementById("reliability");
const { api, start, end, filter, traces, query } = view.dataset;

// "1 run", "3 runs"
function runs(count) {
  return `${formatCount(count)} run${count === 1 ? "" : "s"}`;
}

function setMetric(name, text) {
  const node = view.querySelector(`[data-metric="${name}"]`);
  if (node) {
    node.textContent = text;
  }
}

// the trace list with this view's range and filters, plus `extra` (field → value)
function traceListUrl(extra) {
  const params = new URLSearchParams(query);
  for (const [name, value] of Object.entries(extra)) {
    params.set(name, value);
  }
  return `${traces}?${params}`;
}

function traceUrl(traceId) {
  const params = new URLSearchParams(query);
  return `${traces}/${encodeURIComponent(traceId)}${params.toString() ? `?${params}` : ""}`;
}

function linkCell(row, text, href, className = "name") {
  const td = cell(row, "", className, text);
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  td.append(a);
  return td;
}

function fillCards(body) {
  const t = body.traces;
  setMetric("trace_success", formatRatio(t.success_rate));
  setMetric("trace_detail", `${formatCount(t.num_ok)} of ${runs(t.num_traces)}; `
    + `${formatCount(t.num_ended_in_timeout)} ended in a timeout`);
  setMetric("span_success", formatRatio(body.spans.success_rate));
  setMetric("span_detail", `${formatCount(body.spans.num_failed)} of `
    + `${formatCount(body.spans.num_spans)} spans failed`);
  setMetric("retry_rate", formatRatio(body.retries.retry_rate));
  setMetric("retry_detail", `${formatCount(body.retries.num_retries)} retries`);
  setMetric("retry_success", formatRatio(body.retries.retry_success_rate));
  setMetric("fallback_rate", formatRatio(body.fallbacks.activation_rate));
  setMetric("fallback_detail", runs(body.fallbacks.num_traces));
  const loops = body.loop_detected;
  setMetric("loop_rate", formatRatio(loops.rate));
  setMetric("loop_detail", runs(loops.num_traces));
  document.getElementById("loops-rule").textContent =
    `the same tool with the same arguments ${loops.min_calls}+ times in one run`;
}

function fillTaxonomy(errors) {
  const body = view.querySelector("#taxonomy tbody");
  if (errors.by_class.length === 0) {
    message(body, "No failed span in this range.", 4);
    return;
  }
  body.replaceChildren();
  for (const cls of errors.by_class) {
    const tr = document.createElement("tr");
    tr.className = "class-row";
    linkCell(tr, cls.error_class, traceListUrl({ error_class: cls.error_class }));
    cell(tr, formatCount(cls.num_failed), "num");
    cell(tr, formatRatio(cls.error_rate), "num");
    cell(tr, formatRatio(cls.share), "num wide-only");
    body.append(tr);
    for (const cat of errors.by_category.filter((c) => c.error_class === cls.error_class)) {
      const row = document.createElement("tr");
      row.className = "category-row";
      linkCell(row, cat.error_category, traceListUrl({
        error_class: cat.error_class, error_category: cat.error_category }));
      cell(row, formatCount(cat.num_failed), "num");
      cell(row, formatRatio(cat.error_rate), "num");
      cell(row, formatRatio(cat.share), "num wide-only");
      body.append(row);
    }
  }
}

function fillSteps(steps) {
  const body = view.querySelector("#steps tbody");
  if (steps.length === 0) {
    message(body, "No spans.", 5);
    return;
  }
  body.replaceChildren();
  for (const s of steps) {
    const tr = document.createElement("tr");
    cell(tr, s.operation);
    cell(tr, s.step, "name", s.step);
    cell(tr, formatCount(s.num_spans), "num wide-only");
    cell(tr, formatCount(s.num_failed), "num");
    cell(tr, formatRatio(s.success_rate), "num");
    body.append(tr);
  }
}

function fillLoops(loops) {
  const body = view.querySelector("#loops tbody");
  if (loops.loops.length === 0) {
    message(body, "No loop in this range.", 3);
    return;
  }
  body.replaceChildren();
  for (const loop of loops.loops) {
    const tr = document.createElement("tr");
    linkCell(tr, loop.trace_id, traceUrl(loop.trace_id));
    cell(tr, loop.tool_name, "name", `arguments hash ${loop.tool_args_hash}`);
    cell(tr, formatCount(loop.num_calls), "num");
    body.append(tr);
  }
}

function fillCycles(cycles, suspects) {
  setMetric("deadlock_detail", `${runs(cycles.num_traces)} with a cycle; `
    + `${formatCount(suspects.num_traces)} of them ended in a timeout (deadlock suspects)`
    + (cycles.truncated ? "; only the first runs were examined" : ""));
  const body = view.querySelector("#cycles tbody");
  if (cycles.traces.length === 0) {
    message(body, "No agent cycle in this range.", 3);
    return;
  }
  body.replaceChildren();
  // deadlock suspects first: they are the ones to look at
  const rows = [...cycles.traces].sort((a, b) => Number(b.timed_out) - Number(a.timed_out));
  for (const c of rows) {
    const tr = document.createElement("tr");
    linkCell(tr, c.trace_id, traceUrl(c.trace_id));
    cell(tr, c.agents.join(" → "), "path");
    cell(tr, c.timed_out ? "yes: timed out" : "no", c.timed_out ? "suspect" : "muted");
    body.append(tr);
  }
}

function fillHeatmap(heatmap) {
  const element = document.getElementById("heatmap");
  document.getElementById("heatmap-bucket").textContent = `per ${heatmap.bucket}`;
  if (heatmap.cells.length === 0) {
    element.classList.add("chart-empty");
    element.textContent = "No failed step in this range.";
    return;
  }
  drawFailureHeatmap(element, heatmap);
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = `Could not load reliability: ${error.message}`;
  box.hidden = false;
  for (const body of view.querySelectorAll("tbody")) {
    body.replaceChildren();
  }
  for (const node of view.querySelectorAll("[data-metric]")) {
    node.textContent = "";
  }
}

async function load() {
  const body = await fetchApi(api, "/analytics/reliability", { start, end, filter });
  document.getElementById("empty").hidden = body.spans.num_spans > 0;
  fillCards(body);
  fillHeatmap(body.heatmap);
  fillTaxonomy(body.errors);
  fillSteps(body.steps);
  fillLoops(body.loop_detected);
  fillCycles(body.cycles, body.deadlock_suspects);
}

load()
  .catch(showError)
  .finally(() => view.setAttribute("aria-busy", "false"));
