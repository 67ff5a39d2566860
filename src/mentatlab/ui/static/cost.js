// The cost explorer: spend by one dimension (sortable table), two dimensions crossed (a
// heat matrix whose cells open their traces), a stacked trend, an org → project → agent →
// model sunburst and infrastructure, all from /api/v1/cost for the range and
// filters the page was rendered with. The top N keys and "other" come from the API
// (top=N, Decimal sums); money totals are summed here as exact decimals (BigInt), never
// as floats. Chart sizes are the only floats.
import {
  fetchApi, formatCount, formatInstant, formatMoney, formatRatio, zonedTime, zonedTimeOption,
} from "./chart.js";
import { loadCostViews } from "./cost_views.js";
import { cell, message, moneyCell } from "./table.js";

const view = document.getElementById("cost");
const { api, start, end, filter, bucket, by, cross, top, byLabel, crossLabel } = view.dataset;
const range = { start, end, filter };
const traceParams = JSON.parse(view.dataset.traceParams);
const readSpans = view.dataset.readSpans === "yes";
const OTHER = "other";
const NONE = "(none)";
// what the shell's filter bar can carry unchanged (pages.py _VALUE)
const LINKABLE = /^[A-Za-z0-9._:/@ +-]{1,128}$/;
const charts = [];

// ---- exact decimals ----------------------------------------------------------------

/** A decimal string ("12.5", "-0.000001") as [BigInt of its digits, number of decimals]. */
function parseDecimal(text) {
  const match = /^(-?)(\d*)(?:\.(\d*))?$/.exec(String(text ?? "0").trim());
  if (!match) {
    throw new Error(`not a decimal: ${text}`);
  }
  const fraction = match[3] || "";
  const digits = BigInt(`${match[2] || "0"}${fraction}`);
  return [match[1] ? -digits : digits, fraction.length];
}

/** The exact sum of decimal strings, as a decimal string (no float on the way). */
export function sumDecimals(values) {
  const parsed = values.map(parseDecimal);
  const scale = Math.max(0, ...parsed.map(([, s]) => s));
  let total = 0n;
  for (const [digits, s] of parsed) {
    total += digits * 10n ** BigInt(scale - s);
  }
  const negative = total < 0n;
  const text = (negative ? -total : total).toString().padStart(scale + 1, "0");
  const whole = text.slice(0, text.length - scale);
  let fraction = scale ? text.slice(text.length - scale).replace(/0+$/, "") : "";
  fraction = fraction ? `.${fraction}` : "";
  return `${negative && (whole !== "0" || fraction) ? "-" : ""}${whole}${fraction}`;
}

function isZero(text) {
  return parseDecimal(text)[0] === 0n;
}

// ---- small helpers -----------------------------------------------------------------

function cssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function keyText(value) {
  if (value === null) {
    return OTHER;
  }
  return value === "" ? NONE : value;
}

function setMetric(name, text, title = "") {
  const element = view.querySelector(`[data-metric="${name}"]`);
  element.textContent = text;
  element.title = title;
}

function moneyText(value, currency) {
  return formatMoney(value, currency);
}

/** /traces for the page's range and filters plus `keys` (dimension → key), or null. */
function tracesHref(keys) {
  if (!readSpans) {
    return null;
  }
  const params = new URLSearchParams(view.dataset.state);
  for (const [dimension, key] of Object.entries(keys)) {
    if (key === null || !LINKABLE.test(key)) {
      return null; // "other", "(none)" or a key the filter bar cannot carry
    }
    params.set(traceParams[dimension] || dimension, key);
  }
  return `${view.dataset.traces}?${params}`;
}

/** The API's cost URL for `params` as CSV (the same numbers as on screen). */
function csvHref(params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries({ ...range, ...params, format: "csv" })) {
    if (value !== null && value !== undefined && value !== "") {
      query.set(name, value);
    }
  }
  return `${api}/cost?${query}`;
}

// The shell's range links and forms know only range, filters and zone: carry the
// breakdown (by, cross, top, sort) too, so changing the range keeps what is shown.
function keepBreakdownInShell() {
  const here = new URLSearchParams(window.location.search);
  const mine = ["by", "cross", "top", "sort", "order"].filter((n) => here.get(n));
  for (const link of document.querySelectorAll(".bar .ranges a[href*='?'], .bar form a[href]")) {
    const url = new URL(link.href, window.location.href);
    for (const name of mine) {
      url.searchParams.set(name, here.get(name));
    }
    link.href = `${url.pathname}${url.search}${url.hash}`;
  }
  for (const form of document.querySelectorAll(".bar form")) {
    for (const name of mine) {
      if (!form.elements.namedItem(name)) {
        const input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        input.value = here.get(name);
        form.append(input);
      }
    }
  }
}

// ---- spend by one dimension ----------------------------------------------------------

const SORTS = {
  key: (a, b) => keyText(a.key).localeCompare(keyText(b.key)),
  total_cost: (a, b) => compareDecimal(a.row.total_cost, b.row.total_cost),
  share: (a, b) => compareDecimal(a.row.total_cost, b.row.total_cost),
  requests: (a, b) => a.row.requests - b.row.requests,
  tokens: (a, b) => a.tokens - b.tokens,
};

function compareDecimal(a, b) {
  const [x, xs] = parseDecimal(a);
  const [y, ys] = parseDecimal(b);
  const scale = Math.max(xs, ys);
  const left = x * 10n ** BigInt(scale - xs);
  const right = y * 10n ** BigInt(scale - ys);
  return left < right ? -1 : left > right ? 1 : 0;
}

function sortState() {
  const here = new URLSearchParams(window.location.search);
  const sort = SORTS[here.get("sort")] ? here.get("sort") : "total_cost";
  const order = here.get("order") === "asc" || here.get("order") === "desc"
    ? here.get("order") : (sort === "key" ? "asc" : "desc");
  return { sort, order };
}

function fillByTable(answer) {
  const currency = answer.currency || "USD";
  const table = document.getElementById("by-table");
  const body = table.querySelector("tbody");
  const items = answer.rows.map((row) => ({
    row, key: row[by], tokens: row.input_tokens + row.output_tokens,
  }));
  const total = sumDecimals(answer.rows.map((r) => r.total_cost));
  const shownTotal = moneyText(total, currency);
  const totalCell = document.getElementById("by-total");
  totalCell.textContent = shownTotal.text;
  totalCell.title = shownTotal.title;
  totalCell.dataset.exact = total;
  document.getElementById("by-requests").textContent =
    formatCount(items.reduce((n, i) => n + i.row.requests, 0));
  document.getElementById("by-tokens").textContent =
    formatCount(items.reduce((n, i) => n + i.tokens, 0));
  document.getElementById("by-csv").href = csvHref({ group_by: by });
  // the API answers at most 10,000 groups (its default limit): say so rather than show a
  // total that silently misses the rest
  document.getElementById("by-note").hidden = answer.rows.length < 10000;

  const draw = () => {
    const { sort, order } = sortState();
    const sorted = [...items].sort(SORTS[sort]);
    if (order === "desc") {
      sorted.reverse();
    }
    for (const th of table.querySelectorAll("thead th")) {
      const button = th.querySelector("button");
      th.setAttribute("aria-sort", button.dataset.sort === sort
        ? (order === "asc" ? "ascending" : "descending") : "none");
    }
    if (sorted.length === 0) {
      message(body, "No spend in this range.", 5);
      return;
    }
    body.replaceChildren();
    for (const item of sorted) {
      const tr = document.createElement("tr");
      const name = cell(tr, keyText(item.key), item.key === "" ? "name muted" : "name",
        keyText(item.key));
      const href = tracesHref({ [by]: item.key });
      if (href) {
        const link = document.createElement("a");
        link.href = href;
        link.textContent = keyText(item.key);
        name.replaceChildren(link);
      }
      moneyCell(tr, item.row.total_cost, currency);
      cell(tr, formatCount(item.row.requests), "num");
      cell(tr, formatCount(item.tokens), "num");
      const share = isZero(total) ? null : Number(item.row.total_cost) / Number(total);
      cell(tr, formatRatio(share), "num wide-only");
      body.append(tr);
    }
  };
  for (const button of table.querySelectorAll("thead button")) {
    button.addEventListener("click", () => {
      const current = sortState();
      const sort = button.dataset.sort;
      let order = sort === "key" ? "asc" : "desc";
      if (current.sort === sort) {
        order = current.order === "asc" ? "desc" : "asc";
      }
      const url = new URL(window.location.href);
      url.searchParams.set("sort", sort);
      url.searchParams.set("order", order);
      window.history.replaceState(null, "", url);
      keepBreakdownInShell();
      draw();
    });
  }
  draw();
  return total;
}

// ---- two dimensions crossed ----------------------------------------------------------

/** Keys of `dimension` in an answer with top=N: costliest first, "other" (null) last. */
function rankedKeys(rows, dimension) {
  const totals = new Map();
  for (const row of rows) {
    const key = row[dimension];
    totals.set(key, [...(totals.get(key) || []), row.total_cost]);
  }
  const keys = [...totals.keys()].map((key) => ({ key, total: sumDecimals(totals.get(key)) }));
  keys.sort((a, b) => {
    if ((a.key === null) !== (b.key === null)) {
      return a.key === null ? 1 : -1;
    }
    return compareDecimal(b.total, a.total) || keyText(a.key).localeCompare(keyText(b.key));
  });
  return keys;
}

function headerCell(row, text, scope, className = "") {
  const th = document.createElement("th");
  th.scope = scope;
  th.textContent = text;
  th.title = text;
  if (className) {
    th.className = className;
  }
  row.append(th);
  return th;
}

function fillMatrix(answer) {
  const currency = answer.currency || "USD";
  const table = document.getElementById("matrix");
  const head = table.querySelector("thead tr");
  const body = table.querySelector("tbody");
  document.getElementById("matrix-csv").href = csvHref({ group_by: `${by},${cross}`, top });
  const rowsKeys = rankedKeys(answer.rows, by);
  const colsKeys = rankedKeys(answer.rows, cross);
  const cells = new Map(answer.rows.map((r) => [JSON.stringify([r[by], r[cross]]), r]));
  const other = answer.num_other || {};
  const note = document.getElementById("matrix-note");
  const lumped = (other[by] || 0) + (other[cross] || 0) > 0
    ? `“other” holds ${formatCount(other[by] || 0)} more ${byLabel.toLowerCase()} and `
      + `${formatCount(other[cross] || 0)} more ${crossLabel.toLowerCase()} keys.`
    : "Every key fits: nothing is lumped into “other”.";
  note.textContent = `${readSpans ? "Each named cell opens the traces behind it. " : ""}${lumped}`;
  head.replaceChildren(head.firstElementChild);
  if (answer.rows.length === 0) {
    note.textContent = "";
    message(body, "No spend in this range.", 1);
    return;
  }
  let most = 0;
  for (const row of answer.rows) {
    most = Math.max(most, Number(row.total_cost));
  }
  for (const col of colsKeys) {
    headerCell(head, keyText(col.key), "col", `num${col.key === null ? " other" : ""}`);
  }
  headerCell(head, "Total", "col", "num");
  body.replaceChildren();
  for (const rowKey of rowsKeys) {
    const tr = document.createElement("tr");
    headerCell(tr, keyText(rowKey.key), "row", `name${rowKey.key === null ? " other" : ""}`);
    for (const col of colsKeys) {
      const found = cells.get(JSON.stringify([rowKey.key, col.key]));
      const td = document.createElement("td");
      td.className = "num heat";
      if (found && !isZero(found.total_cost)) {
        const money = moneyText(found.total_cost, currency);
        const href = tracesHref({ [by]: rowKey.key, [cross]: col.key });
        const where = `${keyText(rowKey.key)} × ${keyText(col.key)}`;
        td.dataset.exact = found.total_cost;
        td.style.setProperty("--heat", `${Math.round(8 + 40 * Number(found.total_cost) / most)}%`);
        if (href) {
          const link = document.createElement("a");
          link.href = href;
          link.textContent = money.text;
          link.title = `${money.title}: ${where}, open its traces`;
          td.append(link);
        } else {
          td.textContent = money.text;
          td.title = `${money.title}: ${where}`;
        }
      } else if (found) {
        td.textContent = moneyText(found.total_cost, currency).text;
        td.dataset.exact = found.total_cost;
      } else {
        td.textContent = "·";
        td.classList.add("muted");
      }
      tr.append(td);
    }
    const rowTotal = moneyText(rowKey.total, currency);
    const total = cell(tr, rowTotal.text, "num total", rowTotal.title);
    total.dataset.exact = rowKey.total;
    body.append(tr);
  }
  const foot = document.createElement("tr");
  headerCell(foot, "Total", "row", "total");
  for (const col of colsKeys) {
    const shown = moneyText(col.total, currency);
    cell(foot, shown.text, "num total", shown.title).dataset.exact = col.total;
  }
  const grand = sumDecimals(answer.rows.map((r) => r.total_cost));
  const shown = moneyText(grand, currency);
  const grandCell = cell(foot, shown.text, "num total", shown.title);
  grandCell.dataset.exact = grand;
  grandCell.id = "matrix-total";
  body.append(foot);
}

// ---- stacked trend -------------------------------------------------------------------

function themeText() {
  return { color: cssColor("--text"), muted: cssColor("--muted"), border: cssColor("--border") };
}

function drawTrend(answer) {
  const element = document.getElementById("trend");
  const currency = answer.currency || "USD";
  if (answer.rows.length === 0) {
    element.textContent = "No spend in this range.";
    element.classList.add("chart-empty");
    return;
  }
  const keys = rankedKeys(answer.rows, by);
  const series = keys.map(({ key }) => ({
    type: "bar",
    stack: "spend",
    name: keyText(key),
    barMaxWidth: 32,
    data: answer.rows.filter((r) => r[by] === key)
      .map((r) => [zonedTime(r.bucket), Number(r.total_cost), r.total_cost, r.bucket]),
  }));
  const chart = window.echarts.init(element, null, { renderer: "canvas" });
  const option = () => {
    const colors = themeText();
    return {
      ...zonedTimeOption(),
      animation: false,
      legend: { type: "scroll", top: 0, textStyle: { color: colors.color },
        pageTextStyle: { color: colors.muted } },
      grid: { left: 8, right: 16, top: 36, bottom: 8, containLabel: true },
      tooltip: {
        trigger: "axis",
        formatter: (params) => {
          const lines = params.filter((p) => p.data)
            .map((p) => `${p.marker}${escapeHtml(p.seriesName)}: ${escapeHtml(p.data[2])} ${escapeHtml(currency)}`);
          const when = params.length ? formatInstant(params[0].data[3]) : "";
          return [`${escapeHtml(when)} (${escapeHtml(bucket)})`, ...lines].join("<br>");
        },
      },
      xAxis: { type: "time", axisLabel: { color: colors.muted, hideOverlap: true },
        axisLine: { lineStyle: { color: colors.border } } },
      yAxis: { type: "value",
        axisLabel: { color: colors.muted, formatter: (v) => formatMoney(String(v), currency).text },
        splitLine: { lineStyle: { color: colors.border } } },
      series,
    };
  };
  chart.setOption(option());
  document.addEventListener("mentat:theme", () => chart.setOption(option()));
  charts.push(chart);
}

// ---- sunburst ------------------------------------------------------------------------

const LEVELS = ["org_id", "project_id", "agent_id", "model"];

// Children take their parent's colour: colour the first ring with more than one node
// (a single org, or a single project, would paint the whole chart in one colour).
function paintFirstSplit(data) {
  let ring = data;
  while (ring.length === 1 && ring[0].children) {
    ring = ring[0].children;
  }
  const palette = ["#5470c6", "#91cc75", "#fac858", "#ee6666", "#73c0de", "#3ba272",
    "#fc8452", "#9a60b4", "#ea7ccc"];
  // ECharts passes a colour down from the first ring only: paint each subtree, lighter
  // with each ring below the split
  const paint = (node, color, depth) => {
    node.itemStyle = { color, opacity: Math.max(0.45, 1 - 0.18 * depth) };
    for (const child of node.children || []) {
      paint(child, color, depth + 1);
    }
  };
  ring.forEach((node, i) => paint(node, palette[i % palette.length], 0));
}

function drawSunburst(answer) {
  const element = document.getElementById("sunburst");
  const currency = answer.currency || "USD";
  const rows = answer.rows.filter((r) => !isZero(r.total_cost));
  if (rows.length === 0) {
    element.textContent = "No spend in this range.";
    element.classList.add("chart-empty");
    return;
  }
  const root = { children: new Map() };
  for (const row of rows) {
    let node = root;
    for (const level of LEVELS) {
      const name = keyText(row[level]);
      if (!node.children.has(name)) {
        node.children.set(name, { name, children: new Map(), costs: [] });
      }
      node = node.children.get(name);
      node.costs.push(row.total_cost);
    }
  }
  const toData = (node) => [...node.children.values()].map((child) => {
    const exact = sumDecimals(child.costs);
    const item = { name: child.name, value: Number(exact), exact };
    if (child.children.size) {
      item.children = toData(child);
    }
    return item;
  });
  const data = toData(root);
  paintFirstSplit(data);
  const chart = window.echarts.init(element, null, { renderer: "canvas" });
  const option = () => {
    const colors = themeText();
    return {
      animation: false,
      tooltip: {
        formatter: (p) => {
          const path = (p.treePathInfo || []).slice(1).map((n) => n.name).join(" → ");
          return `${escapeHtml(path)}<br>${escapeHtml(p.data.exact)} ${escapeHtml(currency)}`;
        },
      },
      series: [{
        type: "sunburst",
        data,
        radius: ["10%", "95%"],
        sort: (a, b) => b.getValue() - a.getValue(),
        itemStyle: { borderColor: cssColor("--surface"), borderWidth: 1 },
        label: { color: colors.color, minAngle: 10, overflow: "truncate", width: 90,
          textBorderColor: cssColor("--surface"), textBorderWidth: 2 },
        emphasis: { focus: "ancestor" },
      }],
    };
  };
  chart.setOption(option());
  document.addEventListener("mentat:theme", () => chart.setOption(option()));
  charts.push(chart);
}

// ---- infrastructure (tokens, units, attribution, providers: cost_views.js) -----------

const INFRA = [["CPU", "cpu_cost"], ["Memory", "memory_cost"], ["GPU", "gpu_cost"],
  ["Network", "network_cost"], ["Storage", "storage_cost"]];

async function fillInfra(answer) {
  const currency = answer.currency || "USD";
  const row = answer.rows[0] || Object.fromEntries(INFRA.map(([, field]) => [field, "0"]));
  const body = document.querySelector("#infra tbody");
  body.replaceChildren();
  const parts = INFRA.map(([, field]) => row[field]);
  const total = sumDecimals(parts);
  for (const [name, field] of INFRA) {
    const tr = document.createElement("tr");
    cell(tr, name);
    moneyCell(tr, row[field], currency);
    body.append(tr);
  }
  const tr = document.createElement("tr");
  tr.className = "total";
  cell(tr, "Infrastructure");
  moneyCell(tr, total, currency).id = "infra-total";
  body.append(tr);
  const shown = moneyText(total, currency);
  setMetric("infra", shown.text, shown.title);
  const note = document.getElementById("infra-note");
  if (!isZero(total) || answer.rows.length === 0) {
    note.hidden = true;
    return;
  }
  let priced = true;
  try {
    const prices = await fetchApi(api, "/prices", {});
    priced = !(prices.infrastructure && prices.infrastructure.priced === false);
  } catch (e) {
    priced = true; // the reason below still holds; the rates are on the Models page
  }
  const link = document.createElement("a");
  link.href = view.dataset.models;
  link.textContent = "the Models page";
  const code = (text) => {
    const element = document.createElement("code");
    element.textContent = text;
    return element;
  };
  const why = priced
    ? ["All zero: no span in this range carries metered resources (the MentatLab SDK's "
      + "meters, or ", code("mentat.resource.*"), " attributes, record CPU, memory, GPU, "
      + "network and storage). "]
    : ["All zero: every infrastructure rate in force is 0 (the shipped defaults are off, or "
      + "the rates are set to \"0\"). Set them in ", code("pricing.toml [infrastructure]"),
      " (docs/pricing.md, \"Infrastructure\"), then ", code("mentatctl reprice"), ". "];
  note.replaceChildren(...why, "The rates in force are on ", link, " (",
    code("mentatctl prices show"), ").");
  note.hidden = false;
}

// ---- unpriced models -----------------------------------------------------------------

function fillUnpriced(answer) {
  const box = document.getElementById("unpriced");
  const models = answer.rows || [];
  if (models.length === 0) {
    box.hidden = true;
    return;
  }
  const named = models.slice(0, 3).map((m) => `${m.provider || "?"}/${m.model}`).join(", ");
  const more = models.length > 3 ? ` and ${models.length - 3} more` : "";
  const link = document.createElement("a");
  link.href = view.dataset.models;
  link.textContent = "how to price them";
  box.replaceChildren(`${formatCount(models.length)} model${models.length === 1 ? "" : "s"} `
    + `in this range ha${models.length === 1 ? "s" : "ve"} no price and count${models.length === 1 ? "s" : ""} as $0: `
    + `${named}${more}. See `, link, ".");
  box.hidden = false;
}

/** One row summing every row of an answer: money as exact decimals, counts as integers. */
function sumRows(rows) {
  const out = {};
  for (const [name, value] of Object.entries(rows[0])) {
    if (typeof value === "number") {
      out[name] = rows.reduce((n, r) => n + r[name], 0);
    } else if (/_cost$|^discount$/.test(name)) {
      out[name] = sumDecimals(rows.map((r) => r[name]));
    }
  }
  return out;
}

// ---- load ----------------------------------------------------------------------------

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = `Could not load the cost: ${error.message}`;
  box.hidden = false;
  for (const element of view.querySelectorAll("[data-metric]")) {
    element.textContent = "—";
  }
  for (const body of view.querySelectorAll("tbody")) {
    body.replaceChildren();
  }
  for (const id of ["trend", "sunburst"]) {
    const chart = document.getElementById(id);
    chart.textContent = "No data (see the error above).";
    chart.classList.add("chart-empty");
  }
}

async function load() {
  keepBreakdownInShell();
  const unpriced = fetchApi(api, "/unpriced", range); // in parallel, shown after the rest
  unpriced.catch(() => {}); // awaited below; not an unhandled rejection if the rest fails first
  const views = loadCostViews(view); // never rejects: each panel shows its own error
  const [table, matrix, trend, tree] = await Promise.all([
    fetchApi(api, "/cost", { ...range, group_by: by }),
    fetchApi(api, "/cost", { ...range, group_by: `${by},${cross}`, top }),
    fetchApi(api, "/cost", { ...range, group_by: by, bucket, top }),
    fetchApi(api, "/cost", { ...range, group_by: LEVELS.join(","), top }),
  ]);
  const totals = { currency: table.currency, rows: table.rows.length ? [sumRows(table.rows)] : [] };
  const currency = table.currency || "USD";
  const spend = moneyText(table.total_cost, currency);
  setMetric("spend", spend.text, spend.title);
  const row = totals.rows[0];
  setMetric("requests", formatCount(row ? row.requests : 0));
  setMetric("tokens", formatCount(row ? row.input_tokens + row.output_tokens : 0));
  document.getElementById("empty").hidden = table.rows.length > 0;
  fillByTable(table);
  fillMatrix(matrix);
  drawTrend(trend);
  drawSunburst(tree);
  window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
  await Promise.all([
    fillInfra(totals),
    unpriced.then(fillUnpriced),
    views,
  ]);
}

load()
  .catch(showError)
  .finally(() => view.setAttribute("aria-busy", "false"));
