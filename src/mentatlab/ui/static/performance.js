// The performance view: latency percentiles per group (/api/v1/analytics/latency) with the
// histogram of the chosen group, and each agent's percentile rank among its peers
// (/api/v1/analytics/peers). Numbers are the API's; the page only formats them.
import { drawHistogram, fetchApi, formatCount, formatMs } from "./chart.js";
import { cell, message, moneyCell } from "./table.js";

const view = document.getElementById("performance");
const { api, start, end, filter, by } = view.dataset;

function rankText(rank) {
  return rank === null || rank === undefined ? "—" : `${Math.round(rank)}`;
}

function rankCell(tr, metric) {
  const td = cell(tr, rankText(metric.percentile_rank), "num",
    metric.percentile_rank === null ? "" : `percentile rank ${metric.percentile_rank.toFixed(1)} among ${metric.num_peers}`);
  td.dataset.rank = metric.percentile_rank === null ? "" : String(metric.percentile_rank);
  return td;
}

function showHistogram(answer, group) {
  document.getElementById("histogram-of").textContent = `of ${group.key} (${formatCount(group.num_spans)} spans)`;
  drawHistogram(document.getElementById("histogram"), answer.histogram_bounds_ms, group.histogram);
  for (const button of view.querySelectorAll("#latency button")) {
    button.setAttribute("aria-pressed", String(button.dataset.key === group.key));
  }
}

function fillLatency(answer) {
  const body = view.querySelector("#latency tbody");
  document.getElementById("quantile-method").textContent =
    `Percentiles: ${answer.quantile_method}. ${formatCount(answer.num_groups)} groups.`;
  if (answer.groups.length === 0) {
    message(body, `No spans to group by ${by} in this range.`, 7);
    const chart = document.getElementById("histogram");
    chart.classList.add("chart-empty");
    chart.textContent = "Nothing to draw.";
    return;
  }
  body.replaceChildren();
  for (const g of answer.groups) {
    const tr = document.createElement("tr");
    const name = cell(tr, "", "name");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = g.key;
    button.dataset.key = g.key;
    button.title = `Show the histogram of ${g.key}`;
    button.addEventListener("click", () => showHistogram(answer, g));
    name.append(button);
    cell(tr, formatCount(g.num_spans), "num");
    cell(tr, formatMs(g.p50_ms), "num", `${g.p50_ms} ms`);
    cell(tr, formatMs(g.p90_ms), "num wide-only", `${g.p90_ms} ms`);
    cell(tr, formatMs(g.p95_ms), "num wide-only", `${g.p95_ms} ms`);
    cell(tr, formatMs(g.p99_ms), "num", `${g.p99_ms} ms`);
    cell(tr, formatMs(g.max_ms), "num wide-only", `${g.max_ms} ms`);
    body.append(tr);
  }
  showHistogram(answer, answer.groups[0]);
}

function fillPeers(answer) {
  const body = view.querySelector("#peers tbody");
  if (answer.agents.length === 0) {
    message(body, "No agent ran in this range.", 9);
    return;
  }
  body.replaceChildren();
  for (const a of answer.agents) {
    const tr = document.createElement("tr");
    cell(tr, a.agent_id, "name", a.agent_id);
    cell(tr, a.operation_type, "wide-only");
    cell(tr, `${formatCount(a.num_successes)} / ${formatCount(a.num_runs)}`, "num wide-only",
      "successful runs / runs");
    moneyCell(tr, a.cost_per_success.value, answer.currency, "num wide-only");
    rankCell(tr, a.cost_per_success);
    cell(tr, formatMs(a.latency_p50_ms.value), "num wide-only");
    rankCell(tr, a.latency_p50_ms);
    const tokens = a.tokens_per_success.value;
    cell(tr, tokens === null ? "—" : formatCount(Math.round(tokens)), "num wide-only");
    rankCell(tr, a.tokens_per_success);
    body.append(tr);
  }
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = `Could not load the performance view: ${error.message}`;
  box.hidden = false;
  for (const body of view.querySelectorAll("tbody")) {
    body.replaceChildren();
  }
}

async function load() {
  const [latency, peers] = await Promise.all([
    fetchApi(api, "/analytics/latency", { start, end, filter, group_by: by }),
    fetchApi(api, "/analytics/peers", { start, end, filter }),
  ]);
  document.getElementById("empty").hidden = latency.num_groups > 0 || peers.agents.length > 0;
  fillLatency(latency);
  fillPeers(peers);
}

load()
  .catch(showError)
  .finally(() => view.setAttribute("aria-busy", "false"));
