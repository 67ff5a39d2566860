// The dashboard's one chart and number wrapper: turns REST API answers into text and
// ECharts options, so every view formats money, counts and charts the same way.
// Money stays a decimal string: it is formatted for display, and the exact value goes in
// the title attribute (shown on hover). Chart bar heights are the only floats.

const dash = "—";

/** Display text and exact title of a decimal money string, e.g. "12.3456789", "USD". */
export function formatMoney(value, currency) {
  if (value === null || value === undefined || value === "") {
    return { text: dash, title: "" };
  }
  const small = Math.abs(Number(value)) < 1 && Number(value) !== 0;
  const format = new Intl.NumberFormat(undefined, {
    style: "currency",
    currency,
    minimumFractionDigits: 2,
    maximumFractionDigits: small ? 4 : 2,
  });
  return { text: format.format(value), title: `${value} ${currency}` };
}

/** A count with thousands separators. */
export function formatCount(value) {
  return value === null || value === undefined ? dash : new Intl.NumberFormat().format(value);
}

/** A fraction in [0, 1] as a percentage with one decimal. */
export function formatRatio(value) {
  if (value === null || value === undefined) {
    return dash;
  }
  return new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 })
    .format(value);
}

/** A duration in ms: "840 ms" or "2.35 s". */
export function formatMs(value) {
  if (value === null || value === undefined) {
    return dash;
  }
  if (value >= 1000) {
    return `${new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 }).format(value / 1000)} s`;
  }
  return `${new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 }).format(value)} ms`;
}

/** A size in bytes with binary units: "512 B", "3.2 MiB", "1 GiB". */
export function formatBytes(value) {
  if (value === null || value === undefined) {
    return dash;
  }
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let size = Number(value);
  let unit = 0;
  while (Math.abs(size) >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || size >= 100 ? 0 : 1;
  return `${new Intl.NumberFormat(undefined, { maximumFractionDigits: digits }).format(size)} ${units[unit]}`;
}

// ---- Display time zone -------------------------------------------------------------
// One zone for every instant on screen: <html data-tz="Asia/Kolkata"> (set by base.html
// from the view state, "UTC" when absent). Tables format with when()/formatInstant,
// ECharts time axes with zonedTime() values and zonedTimeOption(), the API gets ?tz=.

/** The display time zone: an IANA name such as "UTC", "Europe/Berlin", "Asia/Kolkata". */
export function displayZone() {
  const zone = document.documentElement.dataset.tz || "UTC";
  if (!wallFormats.has(zone)) {
    try {
      wallFormat(zone);
    } catch (e) {
      return "UTC"; // a zone this browser does not know: UTC rather than a broken page
    }
  }
  return zone;
}

const wallFormats = new Map();

function wallFormat(zone) {
  let format = wallFormats.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    wallFormats.set(zone, format);
  }
  return format;
}

function wallParts(ms, zone) {
  const parts = {};
  for (const part of wallFormat(zone).formatToParts(new Date(ms))) {
    parts[part.type] = part.value;
  }
  return parts;
}

function toMs(instant) {
  return typeof instant === "number" ? instant : Date.parse(instant);
}

/** Offset of `zone` from UTC at an instant (ISO string or epoch ms), in ms (+19800000 for Kolkata). */
export function zoneOffsetMs(instant, zone = displayZone()) {
  const ms = toMs(instant);
  const p = wallParts(ms, zone);
  const wall = Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour),
    Number(p.minute), Number(p.second));
  return wall - Math.floor(ms / 1000) * 1000;
}

/**
 * An instant (ISO-8601 string or epoch ms) as "YYYY-MM-DD HH:MM" (":SS" with `seconds`)
 * on the wall clock of the display zone (or `zone`). Invalid input is returned unchanged.
 */
export function formatInstant(instant, seconds = false, zone = displayZone()) {
  const ms = toMs(instant);
  if (Number.isNaN(ms)) {
    return String(instant);
  }
  const p = wallParts(ms, zone);
  const text = `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
  return seconds ? `${text}:${p.second}` : text;
}

/**
 * A value for an ECharts time axis that reads as the display zone's wall clock: epoch ms
 * shifted by the zone's offset at that instant. Use with zonedTimeOption() (useUTC), so
 * ticks fall on local midnights and hours; zonedTimeToIso() undoes it for tooltips.
 */
export function zonedTime(instant, zone = displayZone()) {
  const ms = toMs(instant);
  return ms + zoneOffsetMs(ms, zone);
}

/** The top-level ECharts option part that makes a zonedTime() axis label correctly. */
export function zonedTimeOption() {
  return { useUTC: true };
}

/** The wall-clock text of a zonedTime() value (an axis pointer or tooltip value). */
export function formatZonedTime(value, seconds = false) {
  return formatInstant(value, seconds, "UTC");
}

/** Fetch a JSON answer of the REST API; throws Error with the API's error shape text. */
export async function fetchApi(base, path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    // empty values are left out, except group_by: "" asks for no grouping (the cost
    // API's default groups by project and model)
    if (value !== null && value !== undefined && (value !== "" || name === "group_by")) {
      query.set(name, value);
    }
  }
  if (!query.has("tz")) {
    // day and hour buckets and "today" follow the display time zone (routes without
    // buckets ignore it)
    query.set("tz", displayZone());
  }
  const answer = await fetch(`${base}${path}?${query}`, {
    credentials: "same-origin",
    headers: { accept: "application/json" },
  });
  let body = null;
  try {
    body = await answer.json();
  } catch (e) {
    body = null;
  }
  if (!answer.ok || !body || body.ok === false) {
    const reasons = ((body && body.errors) || []).map((e) => `${e.field}: ${e.reason}`);
    const error = (body && body.error) || `HTTP ${answer.status}`;
    throw new Error(`${path}: ${error}${reasons.length ? ` (${reasons.join("; ")})` : ""}`);
  }
  return body;
}

function cssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Draw a money trend: rows of the cost API with `bucket` and `total_cost`, as bars on a
 * time axis labelled in the display time zone. Redraws in the new colours when the theme changes; returns the chart.
 */
export function drawMoneyTrend(element, rows, currency, bucket) {
  const echarts = window.echarts;
  const chart = echarts.init(element, null, { renderer: "canvas" });
  const data = rows.map((r) => [zonedTime(r.bucket), Number(r.total_cost), r.total_cost,
    r.bucket]);
  const zone = displayZone();
  const option = () => {
    const text = cssColor("--muted");
    return {
      ...zonedTimeOption(),
      animation: false,
      grid: { left: 8, right: 16, top: 16, bottom: 8, containLabel: true },
      tooltip: {
        trigger: "axis",
        formatter: (params) => {
          const point = params[0].data;
          const money = formatMoney(point[2], currency);
          const when = formatInstant(point[3], false, zone);
          return `${escapeHtml(when)} ${escapeHtml(zone)} (${escapeHtml(bucket)})<br>`
            + escapeHtml(money.title);
        },
      },
      xAxis: {
        type: "time",
        axisLabel: { color: text, hideOverlap: true },
        axisLine: { lineStyle: { color: cssColor("--border") } },
      },
      yAxis: {
        type: "value",
        axisLabel: { color: text, formatter: (v) => formatMoney(String(v), currency).text },
        splitLine: { lineStyle: { color: cssColor("--border") } },
      },
      series: [{
        type: "bar",
        name: "Spend",
        data,
        barMaxWidth: 32,
        itemStyle: { color: cssColor("--accent") },
      }],
    };
  };
  chart.setOption(option());
  window.addEventListener("resize", () => chart.resize());
  document.addEventListener("mentat:theme", () => chart.setOption(option()));
  return chart;
}

// A histogram bound exactly: "2.5 ms", "1 s", "300 s" (formatMs rounds 2.5 ms to 3 ms).
function boundText(ms) {
  return ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`;
}

/** A bucket of a latency histogram as text: "<1 ms", "1 ms–2.5 ms", "≥300 s". */
export function bucketLabel(bounds, index) {
  if (index === 0) {
    return `<${boundText(bounds[0])}`;
  }
  if (index >= bounds.length) {
    return `≥${boundText(bounds[bounds.length - 1])}`;
  }
  return `${boundText(bounds[index - 1])}–${boundText(bounds[index])}`;
}

/**
 * Draw a latency histogram: `counts[i]` spans in bucket i of `bounds` (ms; the latency
 * API's `histogram_bounds_ms` and a group's `histogram`), as bars on a category axis.
 * Reuses the chart of `element` when there is one; returns it.
 */
export function drawHistogram(element, bounds, counts) {
  const echarts = window.echarts;
  const chart = echarts.getInstanceByDom(element) || echarts.init(element, null, { renderer: "canvas" });
  const labels = counts.map((_, i) => bucketLabel(bounds, i));
  const option = () => ({
    animation: false,
    grid: { left: 8, right: 16, top: 16, bottom: 8, containLabel: true },
    tooltip: {
      trigger: "axis",
      formatter: (params) => `${escapeHtml(params[0].name)}<br>${escapeHtml(formatCount(params[0].value))} spans`,
    },
    xAxis: {
      type: "category",
      data: labels,
      axisLabel: { color: cssColor("--muted"), hideOverlap: true, rotate: 30 },
      axisLine: { lineStyle: { color: cssColor("--border") } },
    },
    yAxis: {
      type: "value",
      minInterval: 1,
      axisLabel: { color: cssColor("--muted") },
      splitLine: { lineStyle: { color: cssColor("--border") } },
    },
    series: [{ type: "bar", name: "Spans", data: counts, barMaxWidth: 32,
      itemStyle: { color: cssColor("--accent") } }],
  });
  chart.setOption(option(), true);
  element.histogramOption = option; // the theme handler redraws the histogram shown now
  if (!element.dataset.bound) {
    element.dataset.bound = "yes";
    window.addEventListener("resize", () => chart.resize());
    document.addEventListener("mentat:theme", () => chart.setOption(element.histogramOption()));
  }
  return chart;
}

/**
 * Draw a failure heatmap: the reliability API's `heatmap` (`steps`, `cells` with
 * `bucket`, `step`, `num_spans`, `num_failed`) as steps (rows) × time buckets (columns,
 * in the display time zone), coloured by failed spans. Returns the chart.
 */
export function drawFailureHeatmap(element, heatmap) {
  const echarts = window.echarts;
  const chart = echarts.init(element, null, { renderer: "canvas" });
  const zone = displayZone();
  const buckets = [...new Set(heatmap.cells.map((c) => c.bucket))].sort();
  const steps = [...heatmap.steps].reverse(); // most failures on top
  const seconds = false;
  const label = (iso) => formatInstant(iso, seconds, zone);
  const data = heatmap.cells.map((c) => [buckets.indexOf(c.bucket), steps.indexOf(c.step),
    c.num_failed, c.num_spans]);
  const most = Math.max(1, ...heatmap.cells.map((c) => c.num_failed));
  const option = () => {
    const text = cssColor("--muted");
    return {
      animation: false,
      grid: { left: 8, right: 16, top: 8, bottom: 56, containLabel: true },
      tooltip: {
        formatter: (p) => `${escapeHtml(steps[p.data[1]])}<br>${escapeHtml(label(buckets[p.data[0]]))}`
          + ` ${escapeHtml(zone)} (${escapeHtml(heatmap.bucket)})<br>`
          + `${formatCount(p.data[2])} failed of ${formatCount(p.data[3])} spans`,
      },
      xAxis: {
        type: "category",
        data: buckets.map(label),
        axisLabel: { color: text, hideOverlap: true },
        axisLine: { lineStyle: { color: cssColor("--border") } },
      },
      yAxis: {
        type: "category",
        data: steps,
        axisLabel: { color: text, width: 140, overflow: "truncate" },
      },
      visualMap: {
        dimension: 2, // failed spans (3 is the spans of the cell, for the tooltip)
        min: 0,
        max: most,
        text: [`${formatCount(most)} failed`, "0"],
        calculable: false,
        orient: "horizontal",
        left: "center",
        bottom: 0,
        itemHeight: 120,
        textStyle: { color: text },
        inRange: { color: [cssColor("--surface"), cssColor("--error")] },
      },
      series: [{
        type: "heatmap",
        name: "Failed spans",
        data,
        emphasis: { itemStyle: { borderColor: cssColor("--text"), borderWidth: 1 } },
      }],
    };
  };
  chart.setOption(option());
  window.addEventListener("resize", () => chart.resize());
  document.addEventListener("mentat:theme", () => chart.setOption(option()));
  return chart;
}

/**
 * Draw counts over time by kind: `rows` of `{bucket, [kindKey], [countKey]}` as stacked bars
 * (one series per kind, in `kinds` order) on a time axis in the display time zone. Series
 * colours come from `colors` (kind → CSS variable name), else the accent. Returns the chart.
 */
export function drawCountSeries(element, rows, kinds, { kindKey, countKey, colors = {}, bucket }) {
  const echarts = window.echarts;
  const chart = echarts.getInstanceByDom(element) || echarts.init(element, null, { renderer: "canvas" });
  const zone = displayZone();
  const option = () => {
    const text = cssColor("--muted");
    return {
      ...zonedTimeOption(),
      animation: false,
      grid: { left: 8, right: 16, top: 32, bottom: 8, containLabel: true },
      legend: { top: 0, textStyle: { color: text } },
      tooltip: {
        trigger: "axis",
        formatter: (params) => {
          const when = formatInstant(params[0].data[2], false, zone);
          const lines = params.filter((p) => p.data[1] > 0)
            .map((p) => `${escapeHtml(p.seriesName)}: ${formatCount(p.data[1])}`);
          return `${escapeHtml(when)} ${escapeHtml(zone)} (${escapeHtml(bucket)})<br>${lines.join("<br>")}`;
        },
      },
      xAxis: {
        type: "time",
        axisLabel: { color: text, hideOverlap: true },
        axisLine: { lineStyle: { color: cssColor("--border") } },
      },
      yAxis: {
        type: "value",
        minInterval: 1,
        axisLabel: { color: text, formatter: (v) => formatCount(v) },
        splitLine: { lineStyle: { color: cssColor("--border") } },
      },
      series: kinds.map((kind) => ({
        type: "bar",
        name: kind,
        stack: "total",
        barMaxWidth: 32,
        data: rows.filter((r) => r[kindKey] === kind)
          .map((r) => [zonedTime(r.bucket), r[countKey], r.bucket]),
        itemStyle: { color: cssColor(colors[kind] || "--accent") },
      })),
    };
  };
  chart.setOption(option(), true);
  window.addEventListener("resize", () => chart.resize());
  document.addEventListener("mentat:theme", () => chart.setOption(option(), true));
  return chart;
}
