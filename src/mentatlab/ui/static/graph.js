// The agent graph: /api/v1/analytics/graph drawn as a dependency graph (ECharts graph,
// circular layout: the same data always lands in the same place) and a Sankey of calls.
// A Sankey cannot draw a cycle, so it leaves out the links the API marks `back_edge`
// (docs/api.md) and says how many. Clicking a node, a link or a table row opens the
// trace list filtered to those calls.
import { fetchApi, formatCount, formatMs, formatRatio } from "./chart.js";
import { cell, message } from "./table.js";

const view = document.getElementById("graph");
const { api, start, end, filter, traces, shell } = view.dataset;
const TOOL_COLOR = "#b7791f";

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function nameOf(id) {
  return id.slice(id.indexOf(":") + 1);
}

// The trace list's URL for one node or one link (the shell's range and filters kept).
function tracesUrl(node, link) {
  const params = new URLSearchParams(shell.replace(/^\?/, ""));
  const target = link ? link.target : node.id;
  if (target.startsWith("agent:")) {
    params.set("agent", nameOf(target));
  } else {
    params.set("tool_name", nameOf(target));
    if (link) {
      params.set("agent", nameOf(link.source));
    } else {
      params.delete("agent");
    }
  }
  return `${traces}?${params}`;
}

function tooltip(item) {
  const lines = [`${escapeHtml(item.title)}`,
    `${formatCount(item.count)} calls · errors ${formatRatio(item.error_rate)}`,
    `p50 ${formatMs(item.p50_ms)} · p95 ${formatMs(item.p95_ms)} · mean ${formatMs(item.mean_ms)}`];
  return lines.join("<br>");
}

function nodeItem(n) {
  return { ...n, count: n.calls, title: `${n.kind} ${n.name}` };
}

function linkItem(l) {
  return { ...l, title: `${nameOf(l.source)} → ${nameOf(l.target)}` };
}

function drawDeps(element, answer) {
  const chart = window.echarts.init(element, null, { renderer: "canvas" });
  const most = Math.max(1, ...answer.nodes.map((n) => n.calls));
  const mostLink = Math.max(1, ...answer.links.map((l) => l.count));
  const option = () => ({
    animation: false,
    tooltip: { formatter: (p) => tooltip(p.data.item) },
    series: [{
      type: "graph",
      layout: "circular",
      circular: { rotateLabel: false },
      roam: true,
      // room on the right for the labels (drawn right of the nodes)
      left: 30, right: 110, top: 30, bottom: 30,
      edgeSymbol: ["none", "arrow"],
      edgeSymbolSize: 12,
      label: { show: true, position: "right", color: css("--text"), formatter: (p) => p.data.label },
      lineStyle: { color: css("--muted"), opacity: 0.8 },
      emphasis: { focus: "adjacency" },
      data: answer.nodes.map((n) => ({
        name: n.id, label: n.name, item: nodeItem(n),
        symbol: n.kind === "agent" ? "circle" : "roundRect",
        symbolSize: 12 + 28 * Math.sqrt(n.calls / most),
        itemStyle: { color: n.kind === "agent" ? css("--accent") : TOOL_COLOR,
          borderColor: n.error_rate > 0 ? css("--error") : "transparent", borderWidth: 2 },
      })),
      links: answer.links.map((l) => ({
        source: l.source, target: l.target, item: linkItem(l),
        // A → B and B → A bend to opposite sides, so both show
        lineStyle: { width: 1 + 6 * (l.count / mostLink), curveness: l.source < l.target ? 0.25 : -0.25,
          color: l.error_rate > 0 ? css("--error") : css("--muted") },
      })),
    }],
  });
  chart.setOption(option());
  chart.on("click", (p) => {
    const item = p.data && p.data.item;
    if (item) {
      location.assign(p.dataType === "edge" ? tracesUrl(null, item) : tracesUrl(item));
    }
  });
  return { chart, option };
}

function drawSankey(element, answer) {
  const links = answer.links.filter((l) => !l.back_edge);
  const dropped = answer.links.length - links.length;
  const note = document.getElementById("sankey-note");
  note.hidden = dropped === 0;
  note.textContent = `${formatCount(dropped)} link${dropped === 1 ? "" : "s"} closing a cycle ` +
    "(an agent calling back up the chain, or itself) left out: a Sankey cannot draw a cycle. " +
    "The graph and the table show them.";
  if (links.length === 0) {
    element.classList.add("chart-empty");
    element.textContent = "No calls between agents and tools in this range.";
    return null;
  }
  const used = new Set(links.flatMap((l) => [l.source, l.target]));
  const chart = window.echarts.init(element, null, { renderer: "canvas" });
  const option = () => ({
    animation: false,
    tooltip: { formatter: (p) => tooltip(p.data.item) },
    series: [{
      type: "sankey",
      left: 8, right: 120, top: 10, bottom: 10,
      nodeAlign: "left",
      emphasis: { focus: "adjacency" },
      label: { color: css("--text"), formatter: (p) => nameOf(p.name) },
      lineStyle: { color: "gradient", opacity: 0.35 },
      data: answer.nodes.filter((n) => used.has(n.id)).map((n) => ({
        name: n.id, item: nodeItem(n),
        itemStyle: { color: n.kind === "agent" ? css("--accent") : TOOL_COLOR },
      })),
      links: links.map((l) => ({ source: l.source, target: l.target, value: l.count,
        item: linkItem(l) })),
    }],
  });
  chart.setOption(option());
  chart.on("click", (p) => {
    const item = p.data && p.data.item;
    if (item) {
      location.assign(p.dataType === "edge" ? tracesUrl(null, item) : tracesUrl(item));
    }
  });
  return { chart, option };
}

function linkCell(tr, text, href, className = "name") {
  const td = cell(tr, "", className, text);
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  td.append(a);
  return td;
}

function fillTables(answer) {
  const links = view.querySelector("#links tbody");
  if (answer.links.length === 0) {
    message(links, "No calls between agents and tools in this range.", 7);
  } else {
    links.replaceChildren();
    for (const l of answer.links) {
      const tr = document.createElement("tr");
      tr.dataset.source = l.source;
      tr.dataset.target = l.target;
      const href = tracesUrl(null, l);
      linkCell(tr, nameOf(l.source), href);
      cell(tr, `${nameOf(l.target)}${l.target.startsWith("tool:") ? " (tool)" : ""}` +
        (l.back_edge ? " ↺" : ""), "name",
        l.back_edge ? "Closes a cycle: left out of the Sankey" : l.target);
      cell(tr, formatCount(l.count), "num");
      cell(tr, formatRatio(l.error_rate), l.error_rate > 0 ? "num status-error" : "num");
      cell(tr, formatMs(l.p50_ms), "num");
      cell(tr, formatMs(l.p95_ms), "num wide-only");
      cell(tr, formatMs(l.mean_ms), "num wide-only");
      tr.addEventListener("click", (event) => {
        if (!event.target.closest("a")) {
          location.assign(href);
        }
      });
      links.append(tr);
    }
  }
  const nodes = view.querySelector("#nodes tbody");
  nodes.replaceChildren();
  for (const n of answer.nodes) {
    const tr = document.createElement("tr");
    tr.dataset.node = n.id;
    const href = tracesUrl(n);
    linkCell(tr, n.name, href);
    cell(tr, n.kind);
    cell(tr, formatCount(n.calls), "num", n.calls ? "" : "Only seen calling: outside the range or the limit");
    cell(tr, formatRatio(n.error_rate), n.error_rate > 0 ? "num status-error" : "num");
    cell(tr, formatMs(n.p50_ms), "num");
    cell(tr, formatMs(n.p95_ms), "num wide-only");
    tr.addEventListener("click", (event) => {
      if (!event.target.closest("a")) {
        location.assign(href);
      }
    });
    nodes.append(tr);
  }
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = `Could not load the agent graph: ${error.message}`;
  box.hidden = false;
  document.getElementById("graph-note").hidden = true;
  for (const hidden of view.querySelectorAll(".graph-layout, #links, #nodes")) {
    hidden.hidden = true;
  }
}

async function load() {
  const answer = await fetchApi(api, "/analytics/graph", { start, end, filter });
  const note = document.getElementById("graph-note");
  if (answer.nodes.length === 0) {
    document.getElementById("empty").hidden = false;
    note.hidden = true;
    view.querySelector(".graph-layout").hidden = true;
    message(view.querySelector("#links tbody"), "None.", 7);
    message(view.querySelector("#nodes tbody"), "None.", 6);
    return;
  }
  const more = answer.num_nodes > answer.nodes.filter((n) => n.calls > 0).length;
  note.textContent = `${formatCount(answer.num_nodes)} agents and tools, ` +
    `${formatCount(answer.num_links)} caller → callee pairs` +
    (more ? ` (the ${formatCount(answer.limit)} most called shown)` : "") +
    ". Latency is the called span's duration.";
  fillTables(answer);
  const drawn = [drawDeps(document.getElementById("deps"), answer),
    drawSankey(document.getElementById("sankey"), answer)].filter(Boolean);
  window.addEventListener("resize", () => drawn.forEach((d) => d.chart.resize()));
  document.addEventListener("mentat:theme", () => drawn.forEach((d) => d.chart.setOption(d.option())));
}

load()
  .catch(showError)
  .finally(() => view.setAttribute("aria-busy", "false"));
