// The ops view, live: request rate, error rate and latency percentiles from the aggregates
// the server pushes once per interval, with the earlier intervals late spans revised
// (WS /api/v1/live/stats; never derived here from the span feed, which drops spans under
// load), errors by type for the range
// (/api/v1/cost?group_by=error_category: the failure taxonomy), firing alerts (/api/v1/alerts?state=firing with the
// rules' current state), the live span feed (WS /api/v1/live), filtered on the server, and
// the ingest health of this server (/api/v1/system/ingest: rates, buffer, log, workers, RSS).
import {
  displayZone, fetchApi, formatBytes, formatCount, formatInstant, formatMoney, formatMs,
  formatRatio, zonedTime, zonedTimeOption,
} from "./chart.js";
import { cell, message, moneyCell, when } from "./table.js";

const view = document.getElementById("ops");
const {
  api, start, end, filter, interval, readUsage, readAlerts, feedRows, ingestRefresh,
} = view.dataset;
const MAX_POINTS = 120;
const FEED_ROWS = Number(feedRows) || 200;
const RETRY_MAX_MS = 30000;
const ALERTS_REFRESH_MS = 30000;

function setBusy(busy) {
  view.setAttribute("aria-busy", String(busy));
}

const errors = [];

// Every distinct failure of the page, one per line (the stats, a REST call, the feed).
function showError(text) {
  if (!errors.includes(text)) {
    errors.push(text);
  }
  const box = view.querySelector("#error");
  box.textContent = errors.join("\n");
  box.hidden = false;
  setBusy(false);
}

// The REST error shape of a refused subscription, as one line.
function refusalText(what, answer) {
  const reasons = (answer.errors || []).map((e) => `${e.field}: ${e.reason}`);
  return `${what}: ${answer.error || `status ${answer.status}`}`
    + (reasons.length ? ` (${reasons.join("; ")})` : "");
}

function socketUrl(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value) {
      query.set(name, value);
    }
  }
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${api}${path}?${query}`;
}

// A WebSocket that reconnects with backoff, except after a refusal (close code 1008).
function liveSocket(path, params, onMessage, onState) {
  let retryMs = 1000;
  const open = () => {
    const socket = new WebSocket(socketUrl(path, params));
    socket.addEventListener("message", (event) => {
      retryMs = 1000;
      onMessage(JSON.parse(event.data));
    });
    socket.addEventListener("close", (event) => {
      if (event.code === 1008) {
        return;
      }
      onState(`reconnecting in ${Math.round(retryMs / 1000)} s`);
      window.setTimeout(open, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    });
  };
  open();
}

const connection = { stats: "connecting", feed: "connecting" };

function showConnection(which, state) {
  connection[which] = state;
  const parts = [];
  if (readUsage === "yes") {
    parts.push(`charts ${connection.stats}`);
  }
  parts.push(`feed ${connection.feed}`);
  view.querySelector("#connection").textContent = `Live: ${parts.join(", ")}`;
}

// ---- empty state: no span in the range, the backfill or the feed (once the range and
// the backfill have answered, so it does not flash while they load)
const seen = { stats: false, feed: false, range: false };
const answered = { stats: readUsage !== "yes", range: readUsage !== "yes" };

function updateEmpty() {
  const empty = view.querySelector("#empty");
  const done = answered.stats && answered.range;
  empty.hidden = seen.stats || seen.feed || seen.range || !done;
}

// ---- charts
function cssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// Time-axis labels by level: the date only where a day starts.
const TIME_LABELS = {
  year: "{yyyy}", month: "{MM}-{dd}", day: "{MM}-{dd}", hour: "{HH}:{mm}",
  minute: "{HH}:{mm}", second: "{HH}:{mm}:{ss}", millisecond: "{HH}:{mm}:{ss}",
};

function lineChart(element, series, formatValue, minInterval = 0) {
  const chart = window.echarts.init(element, null, { renderer: "canvas" });
  const zone = displayZone();
  let points = [];
  const option = () => {
    const text = cssColor("--muted");
    return {
      ...zonedTimeOption(),
      animation: false,
      color: series.map((s) => cssColor(s.color)),
      grid: { left: 8, right: 32, top: 32, bottom: 8, containLabel: true },
      legend: { top: 0, textStyle: { color: text } },
      tooltip: {
        trigger: "axis",
        formatter: (params) => {
          const point = points[params[0].dataIndex];
          const lines = params.map((p) => `${escapeHtml(p.seriesName)}: `
            + escapeHtml(formatValue(p.data[1])));
          return `${escapeHtml(formatInstant(point.start, true, zone))} ${escapeHtml(zone)}`
            + ` (${escapeHtml(interval)} s)<br>${lines.join("<br>")}`;
        },
      },
      xAxis: {
        type: "time",
        axisLabel: { color: text, hideOverlap: true, formatter: TIME_LABELS },
        axisLine: { lineStyle: { color: cssColor("--border") } },
      },
      yAxis: {
        type: "value",
        min: 0,
        minInterval,
        axisLabel: { color: text, formatter: (v) => formatValue(v) },
        splitLine: { lineStyle: { color: cssColor("--border") } },
      },
      series: series.map((s) => ({
        type: "line",
        name: s.name,
        showSymbol: false,
        lineStyle: { type: s.dash || "solid", width: 2 },
        data: points.map((p) => [zonedTime(p.start), p[s.field]]),
      })),
    };
  };
  window.addEventListener("resize", () => chart.resize());
  document.addEventListener("mentat:theme", () => chart.setOption(option()));
  return (next) => {
    points = next;
    chart.setOption(option());
  };
}

function perSecond(value) {
  return `${new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 }).format(value)}/s`;
}

function setMetric(name, text, title) {
  const element = view.querySelector(`[data-metric="${name}"]`);
  element.textContent = text;
  element.title = title;
}

function startStats() {
  const draw = [
    lineChart(view.querySelector("#rate-chart"), [
      { name: "Requests", field: "requests_per_s", color: "--ops-series-1" },
      { name: "Spans", field: "spans_per_s", color: "--ops-series-2", dash: "dashed" },
    ], perSecond),
    lineChart(view.querySelector("#errors-chart"), [
      { name: "Error rate", field: "error_rate", color: "--ops-series-error" },
    ], formatRatio),
    lineChart(view.querySelector("#latency-chart"), [
      { name: "p50", field: "latency_p50_ms", color: "--ops-series-1" },
      { name: "p95", field: "latency_p95_ms", color: "--ops-series-2", dash: "dashed" },
      { name: "p99", field: "latency_p99_ms", color: "--ops-series-3", dash: "dotted" },
    ], formatMs, 1),
  ];
  let points = [];
  const redraw = () => {
    for (const chart of draw) {
      chart(points);
    }
    const last = points[points.length - 1];
    if (last) {
      const span = `${formatInstant(last.start, true)} – ${formatInstant(last.end, true)}`;
      setMetric("requests", formatCount(last.requests), `${last.requests} LLM calls, ${span}`);
      setMetric("num_spans", formatCount(last.num_spans), `${last.num_spans} spans, ${span}`);
      setMetric("error_rate", formatRatio(last.error_rate),
        `${last.error_spans} of ${last.num_spans} spans failed, ${span}`);
      setMetric("latency_p95_ms", formatMs(last.latency_p95_ms), `p95 of ${span}`);
      const spend = formatMoney(last.spend, last.currency);
      setMetric("spend", spend.text, `${spend.title}, ${span}`);
    }
    if (points.some((p) => p.num_spans > 0)) {
      seen.stats = true;
    }
  };
  liveSocket("/live/stats", { filter, interval_s: interval }, (answer) => {
    if (answer.ok === false) {
      showError(refusalText("Live stats", answer));
      showConnection("stats", "refused");
      return;
    }
    if (answer.type === "backfill") {
      points = answer.intervals;
    } else {
      // late spans revise intervals already drawn: replace those points, add the new one
      const byStart = new Map(points.map((p) => [p.start, p]));
      for (const interval of [...(answer.revised || []), answer]) {
        byStart.set(interval.start, interval);
      }
      points = [...byStart.values()].sort((a, b) => Date.parse(a.start) - Date.parse(b.start))
        .slice(-MAX_POINTS);
    }
    redraw();
    showConnection("stats", "on");
    answered.stats = true;
    updateEmpty();
    setBusy(false);
  }, (state) => showConnection("stats", state));
}

// ---- errors by type, for the range
async function fillErrorTypes() {
  const body = view.querySelector("#error-types tbody");
  try {
    const answer = await fetchApi(api, "/cost", { start, end, filter, group_by: "error_category" });
    // one row per taxonomy type of every span of the range ("" for spans without one)
    seen.range = answer.rows.length > 0;
    answered.range = true;
    updateEmpty();
    const rows = answer.rows.filter((r) => r.error_spans > 0)
      .sort((a, b) => b.error_spans - a.error_spans);
    if (rows.length === 0) {
      message(body, "No errors in this range.", 3);
      return;
    }
    body.replaceChildren();
    for (const row of rows) {
      const tr = document.createElement("tr");
      const name = row.error_category || "(no error type)";
      cell(tr, name, row.error_category ? "name" : "name muted");
      cell(tr, formatCount(row.error_spans), "num", `${row.error_spans} of ${row.num_spans} spans`);
      cell(tr, formatCount(row.num_spans), "num");
      body.append(tr);
    }
  } catch (error) {
    message(body, "Could not load the errors.", 3);
    showError(error.message);
  }
}

// ---- firing alerts: the newest firing alert of each rule that is firing now
function metricText(metric, value) {
  if (metric === "error_rate") {
    return formatRatio(Number(value));
  }
  if (metric && metric.startsWith("latency")) {
    return formatMs(Number(value));
  }
  return String(value);
}

async function fillFiring() {
  const body = view.querySelector("#firing tbody");
  try {
    const [alerts, rules] = await Promise.all([
      fetchApi(api, "/alerts", { state: "firing", limit: 100 }),
      fetchApi(api, "/alert-rules", {}),
    ]);
    const firing = new Set(rules.rules.filter((r) => r.state === "firing").map((r) => r.id));
    const shown = new Set();
    const rows = alerts.alerts.filter((a) => {
      if (!firing.has(a.rule_id) || shown.has(a.rule_id)) {
        return false;
      }
      shown.add(a.rule_id);
      return true;
    });
    if (rows.length === 0) {
      message(body, "No alert is firing.", 4);
      return;
    }
    body.replaceChildren();
    for (const alert of rows) {
      const tr = document.createElement("tr");
      cell(tr, when(alert.created_at));
      cell(tr, alert.rule_name, "name state-firing", alert.rule_kind);
      const value = metricText(alert.metric, alert.value);
      cell(tr, value, "num", `${alert.value} (threshold ${alert.threshold})`);
      cell(tr, alert.message, "name wide-only", alert.message);
      body.append(tr);
    }
  } catch (error) {
    message(body, "Could not load the alerts.", 4);
    showError(error.message);
  }
}

// ---- ingest health of this server process, refreshed every few seconds; rates over the
// window the API measured (twice the refresh, shorter right after start)
const INGEST_REFRESH_MS = (Number(ingestRefresh) || 5) * 1000;

function setIngest(name, text, title = "") {
  const element = view.querySelector(`[data-ingest="${name}"]`);
  element.textContent = text;
  element.title = title;
}

function ofLimit(value, limit, format) {
  return limit ? `${format(value)} of ${format(limit)}` : `${format(value)} (no limit)`;
}

function showIngest(health) {
  const { spans, commit, buffer, wal, live, workers, memory } = health;
  setIngest("accepted", perSecond(spans.accepted_per_s),
    `${formatCount(spans.accepted_total)} spans accepted since the server started`);
  const reasons = Object.keys(spans.rejected_per_s);
  const rejected = reasons.reduce((sum, r) => sum + spans.rejected_per_s[r], 0);
  setIngest("rejected", `${perSecond(rejected)} (${reasons.map(
    (r) => `${r} ${perSecond(spans.rejected_per_s[r])}`).join(", ")})`,
  reasons.map((r) => `${r}: ${formatCount(spans.rejected_total[r])} since start`).join("; "));
  setIngest("window", `last ${Math.round(health.window_s)} s`,
    `up ${Math.round(health.uptime_s)} s`);
  setIngest("buffer_spans", ofLimit(buffer.spans, buffer.max_spans, formatCount));
  setIngest("buffer_bytes", ofLimit(buffer.bytes, buffer.max_bytes, formatBytes));
  setIngest("commit_wait", formatMs(commit.wait_mean_ms),
    `${formatCount(commit.num_commits)} commits in the window (hand-over to acknowledgement)`);
  setIngest("last_insert", formatMs(commit.last_insert_ms), "the writer's newest store insert");
  if (wal.enabled) {
    setIngest("wal", wal.fsync ? "on, fsync per commit" : "on");
    setIngest("wal_memory", ofLimit(wal.memory_bytes, wal.max_memory_bytes, formatBytes),
      "logged, not yet inserted");
    setIngest("wal_disk", ofLimit(wal.disk_bytes, wal.max_disk_bytes, formatBytes));
    setIngest("wal_failures", formatCount(wal.insert_failures_total),
      "failed inserts of logged spans since start (each retried)");
  } else {
    setIngest("wal", "off", "every request waits for its insert");
    for (const name of ["wal_memory", "wal_disk", "wal_failures"]) {
      setIngest(name, "—", "the write-ahead log is off");
    }
  }
  setIngest("workers", workers.configured
    ? `${workers.running} of ${workers.configured} running`
    : "none (in the server process)",
  workers.configured ? `they start on the first body and stop after ${workers.idle_stop_s} s idle`
    : "");
  // a total beside the rates: the API gives no rate of it, so the text says so
  setIngest("live_dropped", `${formatCount(live.dropped_spans_total)} since start`,
    `spans the live tail dropped since start; ${live.clients} live clients now`);
  setIngest("rss", formatBytes(memory.rss_bytes),
    `${memory.num_processes} processes; the server alone ${formatBytes(memory.server_rss_bytes)}`);
}

async function fillIngest() {
  try {
    const windowS = Math.min(60, Math.max(1, (INGEST_REFRESH_MS / 1000) * 2));
    showIngest(await fetchApi(api, "/system/ingest", { window_s: windowS }));
  } catch (error) {
    for (const element of view.querySelectorAll("[data-ingest]")) {
      element.textContent = "—";
    }
    showError(error.message);
  }
}

// ---- the live span feed: newest first, bounded, pausable; a new version of a span
// (the resolver's attribution or a reprice) replaces its row
const feedBody = view.querySelector("#feed tbody");
const pauseButton = view.querySelector("#pause");
const feedNote = view.querySelector("#feed-note");
const rowsById = new Map();
let pending = [];
let paused = false;
let flushScheduled = false;

function spanRow(span) {
  const tr = document.createElement("tr");
  tr.dataset.spanId = span.span_id;
  // the date part is left out on a phone: the feed is about the last minutes
  const started = when(span.start_time, true);
  const [day, clock] = started.split(" ");
  const at = cell(tr, "", "", started);
  const date = document.createElement("span");
  date.className = "wide-only";
  date.textContent = `${day} `;
  at.append(date, clock || "");
  const name = cell(tr, "", "name");
  const link = document.createElement("a");
  link.href = `traces/${encodeURIComponent(span.trace_id)}`;
  link.textContent = span.name || span.span_id;
  link.title = `${span.name} (trace ${span.trace_id})`;
  name.append(link);
  cell(tr, span.service_name || "—", "name wide-only");
  cell(tr, span.response_model || span.request_model || "—", "name wide-only");
  cell(tr, span.status, `status-${span.status}`);
  cell(tr, formatMs(span.duration_ms), "num");
  moneyCell(tr, span.total_cost, span.currency || "USD", "num wide-only");
  return tr;
}

function flush() {
  flushScheduled = false;
  if (paused || pending.length === 0) {
    return;
  }
  const batch = pending.slice(-FEED_ROWS);
  pending = [];
  if (rowsById.size === 0) {
    feedBody.replaceChildren();
  }
  for (const span of batch) {
    const row = spanRow(span);
    const old = rowsById.get(span.span_id);
    if (old) {
      old.remove();
    }
    rowsById.set(span.span_id, row);
    feedBody.prepend(row);
  }
  while (rowsById.size > FEED_ROWS) {
    const last = feedBody.lastElementChild;
    rowsById.delete(last.dataset.spanId);
    last.remove();
  }
}

function offer(span) {
  pending.push(span);
  if (pending.length > FEED_ROWS * 2) {
    pending = pending.slice(-FEED_ROWS);
  }
  if (paused) {
    feedNote.textContent = `Paused: ${formatCount(pending.length)} new spans waiting`
      + (pending.length >= FEED_ROWS ? " (older ones dropped)" : "");
    return;
  }
  if (!flushScheduled) {
    flushScheduled = true;
    window.requestAnimationFrame(flush);
  }
}

pauseButton.addEventListener("click", () => {
  paused = !paused;
  pauseButton.setAttribute("aria-pressed", String(paused));
  pauseButton.textContent = paused ? "Resume" : "Pause";
  feedNote.textContent = paused ? "Paused" : "";
  if (!paused) {
    flush();
  }
});

function startFeed() {
  liveSocket("/live", { filter }, (answer) => {
    if (answer.ok === false) {
      message(feedBody, "The live feed was refused.", 7);
      showError(refusalText("Live spans", answer));
      showConnection("feed", "refused");
      return;
    }
    if (answer.ok === true) {
      showConnection("feed", "on");
      if (readUsage !== "yes") {
        updateEmpty();
        setBusy(false);
      }
      return;
    }
    seen.feed = true;
    updateEmpty();
    offer(answer);
  }, (state) => showConnection("feed", state));
}

if (readUsage === "yes") {
  startStats();
  fillErrorTypes();
}
if (readAlerts === "yes") {
  fillFiring();
  window.setInterval(fillFiring, ALERTS_REFRESH_MS); // rules start and stop firing meanwhile
}
startFeed();
fillIngest();
window.setInterval(fillIngest, INGEST_REFRESH_MS);
