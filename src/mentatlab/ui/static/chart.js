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

/** Fetch a JSON answer of the REST API; throws Error with the API's error shape text. */
export async function fetchApi(base, path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") {
      query.set(name, value);
    }
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
 * UTC time axis. Redraws in the new colours when the theme changes; returns the chart.
 */
export function drawMoneyTrend(element, rows, currency, bucket) {
  const echarts = window.echarts;
  const chart = echarts.init(element, null, { renderer: "canvas" });
  const data = rows.map((r) => [r.bucket, Number(r.total_cost), r.total_cost]);
  const option = () => {
    const text = cssColor("--muted");
    return {
      useUTC: true,
      animation: false,
      grid: { left: 8, right: 16, top: 16, bottom: 8, containLabel: true },
      tooltip: {
        trigger: "axis",
        formatter: (params) => {
          const point = params[0].data;
          const money = formatMoney(point[2], currency);
          const when = new Date(point[0]).toISOString().replace("T", " ").slice(0, 16);
          return `${escapeHtml(when)} UTC (${escapeHtml(bucket)})<br>${escapeHtml(money.title)}`;
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
