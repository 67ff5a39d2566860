// The product view: adoption by workflow (runs and users per bucket), cost per successful
// outcome per workflow, the regressions list and a version comparison, all from the REST
// API (/api/v1/analytics/adoption, /analytics/regressions, /analytics/compare) for the
// range, filters and display time zone the page was rendered with. Numbers are the API's;
// the view only formats them.
import { fetchApi, formatCount, formatMoney, formatMs, formatRatio, formatZonedTime, zonedTime,
  zonedTimeOption } from "./chart.js";
import { cell, message, moneyCell, when } from "./table.js";

const view = document.getElementById("product");
const { api, start, end, filter, bucket, field, a, b } = view.dataset;
const range = { start, end, filter };
const NONE = "(no workflow)";

const METRIC_LABELS = {
  success_rate: "Success rate",
  latency_ms: "Latency p95",
  cost_per_success: "Cost per success",
  tokens_per_success: "Tokens per success",
};

function cssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// One bar series per workflow: `metric` (num_traces or num_users) of each bucket row.
function drawAdoption(element, answer, metric) {
  const echarts = window.echarts;
  const chart = echarts.getInstanceByDom(element) || echarts.init(element, null,
    { renderer: "canvas" });
  const names = answer.workflows.map((w) => w.workflow_id);
  const option = () => ({
    ...zonedTimeOption(),
    animation: false,
    grid: { left: 8, right: 16, top: 32, bottom: 8, containLabel: true },
    legend: { type: "scroll", top: 0, textStyle: { color: cssColor("--muted") } },
    tooltip: {
      trigger: "axis",
      valueFormatter: (v) => formatCount(v),
      axisPointer: { label: { formatter: (p) => formatZonedTime(p.value) } },
    },
    // the whole range, so a few points do not stretch over an axis of their own
    xAxis: { type: "time", min: zonedTime(start), max: zonedTime(end), axisLabel: { color: cssColor("--muted"), hideOverlap: true },
      axisLine: { lineStyle: { color: cssColor("--border") } } },
    yAxis: { type: "value", minInterval: 1, axisLabel: { color: cssColor("--muted") },
      splitLine: { lineStyle: { color: cssColor("--border") } } },
    // bars side by side, not stacked: users of two workflows may be the same people
    series: names.map((name) => ({
      type: "bar",
      name: name || NONE,
      barMaxWidth: 24,
      data: answer.buckets.filter((r) => r.workflow_id === name)
        .map((r) => [zonedTime(r.bucket), r[metric]]),
    })),
  });
  chart.setOption(option(), true);
  if (!element.dataset.bound) {
    element.dataset.bound = "yes";
    window.addEventListener("resize", () => chart.resize());
    document.addEventListener("mentat:theme", () => chart.setOption(option()));
  }
  return chart;
}

function fillOutcomes(answer) {
  const body = view.querySelector("#outcomes tbody");
  body.replaceChildren();
  if (answer.workflows.length === 0) {
    message(body, "No workflow runs in this range.", 6);
    return;
  }
  for (const w of answer.workflows) {
    const tr = document.createElement("tr");
    tr.dataset.workflow = w.workflow_id;
    cell(tr, w.workflow_id || NONE, w.workflow_id ? "name" : "name muted", w.workflow_id);
    cell(tr, formatCount(w.num_traces), "num");
    cell(tr, formatCount(w.num_users), "num");
    cell(tr, formatRatio(w.success_rate), "num wide-only");
    moneyCell(tr, w.total_cost, answer.currency, "num wide-only");
    if (w.cost_per_success === null) {
      cell(tr, "no success", "num muted");
    } else {
      moneyCell(tr, w.cost_per_success, answer.currency);
    }
    body.append(tr);
  }
}

function metricValue(metric, value, currency) {
  if (value === null || value === undefined) {
    return { text: "—", title: "" };
  }
  if (metric === "success_rate") {
    return { text: formatRatio(value), title: String(value) };
  }
  if (metric === "latency_ms") {
    return { text: formatMs(value), title: `${value} ms` };
  }
  if (metric === "cost_per_success") {
    return formatMoney(value, currency); // the dashboard's one money format
  }
  return { text: new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 }).format(value),
    title: String(value) };
}

function formatP(p) {
  if (p === null || p === undefined) {
    return "—";
  }
  return p < 0.0001 ? p.toExponential(1) : new Intl.NumberFormat(undefined,
    { maximumSignificantDigits: 2 }).format(p);
}

function formatEffect(name, value) {
  if (value === null || value === undefined) {
    return "—";
  }
  const sign = value > 0 ? "+" : "";
  return `${name} ${sign}${value.toFixed(2)}`;
}

function compareLink(row) {
  const here = new URLSearchParams(window.location.search);
  here.set("field", row.field);
  here.set("a", row.baseline);
  here.set("b", row.version);
  const link = document.createElement("a");
  link.href = `?${here}#compare-title`;
  link.textContent = "compare";
  link.title = `${row.field}: ${row.baseline} against ${row.version}`;
  return link;
}

function fillRegressions(answer) {
  const body = view.querySelector("#regressions tbody");
  body.replaceChildren();
  const versions = answer.versions || [];
  const skipped = versions.filter((v) => v.skipped_reason).length;
  const untested = versions.flatMap((v) => v.checks).filter((c) => !c.computed).length;
  document.getElementById("regressions-summary").textContent =
    `${versions.length} new version${versions.length === 1 ? "" : "s"} in this range, `
    + `${answer.num_tests} test${answer.num_tests === 1 ? "" : "s"} (Benjamini–Hochberg, `
    + `α = ${answer.alpha}); ${skipped} without a baseline or not compared, `
    + `${untested} check${untested === 1 ? "" : "s"} not computed (too few traces or no variance).`;
  if (answer.regressions.length === 0) {
    message(body, "No significant regression in this range.", 9);
    return;
  }
  for (const r of answer.regressions) {
    const tr = document.createElement("tr");
    cell(tr, `${r.agent_id || "(no agent)"} / ${r.operation}`, "name");
    cell(tr, `${r.field} ${r.version} (${r.baseline})`, "name", r.version);
    cell(tr, when(r.first_seen), "wide-only");
    cell(tr, METRIC_LABELS[r.metric] || r.metric);
    const before = metricValue(r.metric, r.baseline_value, answer.currency);
    const after = metricValue(r.metric, r.version_value, answer.currency);
    cell(tr, `${before.text} → ${after.text}`, "num worse", `${before.title} → ${after.title}`);
    cell(tr, formatP(r.p_adjusted), "num", `p = ${r.p_value}, adjusted ${r.p_adjusted}`);
    cell(tr, formatEffect(r.effect_size_name, r.effect_size), "num wide-only");
    cell(tr, `${r.n_baseline} / ${r.n_version}`, "num wide-only");
    cell(tr, "").append(compareLink(r));
    body.append(tr);
  }
}

const COMPARE_ROWS = [
  ["success_rate", "Success rate", (s) => s.success_rate],
  ["latency_ms", "Latency p95", (s) => s.latency_p95_ms],
  ["cost_per_success", "Cost per success", (s) => s.cost_per_success],
  ["tokens_per_success", "Tokens per success", (s) => s.tokens_per_success],
];

function fillCompare(answer) {
  const table = document.getElementById("compare");
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const [metric, label, pick] of COMPARE_ROWS) {
    const test = answer.tests[metric];
    const tr = document.createElement("tr");
    tr.dataset.metric = metric;
    cell(tr, label);
    for (const side of [answer.a, answer.b]) {
      const shown = metricValue(metric, pick(side), answer.currency);
      cell(tr, shown.text, "num", shown.title);
    }
    if (!test.computed) {
      cell(tr, test.test);
      cell(tr, test.reason, "muted wrap").colSpan = 4;
    } else {
      cell(tr, test.test);
      cell(tr, formatP(test.p_value), "num", String(test.p_value));
      cell(tr, formatEffect(test.effect_size_name, test.effect_size), "num");
      cell(tr, `${test.n_a} / ${test.n_b}`, "num wide-only");
      cell(tr, test.significant ? "yes" : "no", test.significant ? "sig-yes" : "");
    }
    body.append(tr);
  }
  table.hidden = false;
  document.getElementById("compare-note").textContent =
    `${answer.field}: A = ${answer.a.value} (${formatCount(answer.a.num_units)} traces), `
    + `B = ${answer.b.value} (${formatCount(answer.b.num_units)} traces)`
    + (answer.num_mixed ? `; ${formatCount(answer.num_mixed)} traces with both left out` : "")
    + `. Significant: p < ${answer.alpha}, not corrected for multiple comparisons.`;
}

async function loadCompare() {
  if (!a || !b) {
    return;
  }
  try {
    fillCompare(await fetchApi(api, "/analytics/compare", { ...range, field, a, b }));
  } catch (error) {
    const note = document.getElementById("compare-note");
    note.textContent = `Could not compare: ${error.message}`;
    note.className = "error";
  }
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = `Could not load the product view: ${error.message}`;
  box.hidden = false;
  for (const id of ["outcomes", "regressions"]) {
    view.querySelector(`#${id} tbody`).replaceChildren();
  }
  document.getElementById("regressions-summary").textContent = "";
  document.getElementById("adoption-chart").textContent = "No data (see the error above).";
}

async function load() {
  const [adoption, regressions] = await Promise.all([
    fetchApi(api, "/analytics/adoption", { ...range, bucket }),
    fetchApi(api, "/analytics/regressions", range),
  ]);
  const none = adoption.workflows.length === 0;
  document.getElementById("empty").hidden = !none;
  const chart = document.getElementById("adoption-chart");
  if (none) {
    chart.textContent = "No runs in this range.";
    chart.classList.add("chart-empty");
  } else {
    const select = document.getElementById("adoption-metric");
    drawAdoption(chart, adoption, select.value);
    select.addEventListener("change", () => drawAdoption(chart, adoption, select.value));
  }
  if (adoption.num_other_workflows > 0) {
    const other = document.getElementById("adoption-other");
    other.textContent = `${adoption.num_other_workflows} more workflows with fewer runs not shown.`;
    other.hidden = false;
  }
  fillOutcomes(adoption);
  fillRegressions(regressions);
}

Promise.all([load().catch(showError), loadCompare()])
  .finally(() => view.setAttribute("aria-busy", "false"));
