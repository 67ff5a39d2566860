// One trace's waterfall: /api/v1/traces/{id}?view=timeline (compact columns, depth-first)
// drawn as a virtual tree — only the rows on screen are in the DOM, so a trace of 10,000
// spans scrolls like one of ten. Siblings sharing a name many times (an agent loop's steps,
// the API's `groups`) start collapsed into one row. A span's full detail is fetched only
// when it is opened (/api/v1/traces/{id}/spans/{span_id}). Rows on the API's
// `critical_path` are highlighted; the replay scrubber (/api/v1/traces/{id}/replay) fades
// the spans not started at the chosen instant and shows the checkpointed state then.
import { fetchApi, formatCount, formatMoney, formatMs } from "./chart.js";
import { when } from "./table.js";

const view = document.getElementById("trace");
const { api, traceId } = view.dataset;
const scroller = document.getElementById("wf-scroll");
const tree = document.getElementById("wf-rows");
const ROW_PX = 30;
const OVERSCAN = 8;
const MAX_INDENT = 24;
const CURRENCY = "USD";

let s = null; // the API's span columns
let total = 1; // the trace's duration, ms (bar scale)
let groups = []; // {parent, name, num, first, cost, start, end, members}
let entries = null; // per span position: its children as span positions or groups
let roots = [];
let folded = null; // Uint8Array: 1 = the span's children are hidden
const openGroups = new Set();
let rows = []; // what is drawn: {span} or {group}, with depth
let rowOf = null; // span position → row index, -1 when hidden
let active = 0; // row holding the keyboard focus
let selected = -1; // span position shown in the detail panel
const drawn = new Map(); // row index → element
const details = new Map(); // span_id → promise of the API's answer
let frame = 0;
let critical = null; // Uint8Array: 1 = the span is on the critical path
let replayed = null; // span_id → "running" | "finished" at the replay instant; null: none

function money(value) {
  return formatMoney(value, CURRENCY);
}

function build(answer) {
  s = answer.spans;
  total = Math.max(answer.duration_ms, 1e-6);
  const n = s.span_id.length;
  const g = answer.groups;
  const byKey = new Map();
  groups = g.name.map((name, i) => {
    const group = {
      parent: g.parent[i], name, num: g.num_spans[i], first: g.first[i],
      cost: g.subtree_cost[i], start: g.start_ms[i], end: g.end_ms[i], members: [], index: i,
    };
    byKey.set(`${g.parent[i]}\u0000${name}`, group);
    return group;
  });
  entries = new Array(n);
  roots = [];
  for (let i = 0; i < n; i += 1) {
    const parent = s.parent[i];
    const list = parent < 0 ? roots : (entries[parent] ||= []);
    const group = byKey.get(`${parent}\u0000${s.name[i]}`);
    if (group) {
      group.members.push(i);
      if (group.first === i) {
        list.push(group);
      }
    } else {
      list.push(i);
    }
  }
  folded = new Uint8Array(n);
  rowOf = new Int32Array(n);
  critical = new Uint8Array(n);
  const position = new Map(s.span_id.map((id, i) => [id, i]));
  for (const id of answer.critical_path || []) {
    if (position.has(id)) {
      critical[position.get(id)] = 1;
    }
  }
}

// The rows to draw: a depth-first walk of what is unfolded.
function flatten() {
  rows = [];
  rowOf.fill(-1);
  const stack = [{ list: roots, pos: 0, depth: 0 }];
  while (stack.length) {
    const top = stack[stack.length - 1];
    if (top.pos >= top.list.length) {
      stack.pop();
      continue;
    }
    const entry = top.list[top.pos];
    top.pos += 1;
    if (typeof entry === "number") {
      rowOf[entry] = rows.length;
      rows.push({ span: entry, depth: top.depth });
      if (!folded[entry] && entries[entry]) {
        stack.push({ list: entries[entry], pos: 0, depth: top.depth + 1 });
      }
    } else {
      rows.push({ group: entry, depth: top.depth });
      if (openGroups.has(entry.index)) {
        stack.push({ list: entry.members, pos: 0, depth: top.depth + 1 });
      }
    }
  }
  tree.style.height = `${rows.length * ROW_PX}px`;
  for (const element of drawn.values()) {
    element.remove();
  }
  drawn.clear();
  active = Math.min(active, rows.length - 1);
}

function expandable(row) {
  return row.group ? true : Boolean(entries[row.span]);
}

function isOpen(row) {
  return row.group ? openGroups.has(row.group.index) : !folded[row.span];
}

function moneySpan(value, className = "num") {
  const span = document.createElement("span");
  span.className = className;
  if (value === null) {
    span.textContent = "—";
    return span;
  }
  const shown = money(value);
  span.textContent = shown.text;
  span.title = shown.title;
  return span;
}

function bar(start, duration, className) {
  const track = document.createElement("span");
  track.className = "wf-track";
  const fill = document.createElement("span");
  fill.className = `wf-bar ${className}`;
  fill.style.left = `${(100 * start) / total}%`;
  fill.style.width = `${Math.max((100 * duration) / total, 0.2)}%`;
  track.append(fill);
  return track;
}

function drawRow(index) {
  const row = rows[index];
  const element = document.createElement("div");
  element.setAttribute("role", "treeitem");
  element.className = "wf-row";
  element.dataset.row = String(index);
  element.style.top = `${index * ROW_PX}px`;
  element.setAttribute("aria-level", String(row.depth + 1));
  if (expandable(row)) {
    element.setAttribute("aria-expanded", String(isOpen(row)));
  }
  const name = document.createElement("span");
  name.className = "wf-name";
  name.style.paddingLeft = `${Math.min(row.depth, MAX_INDENT) * 14 + 4}px`;
  const caret = document.createElement("span");
  caret.className = "wf-caret";
  caret.setAttribute("aria-hidden", "true");
  caret.textContent = expandable(row) ? (isOpen(row) ? "▾" : "▸") : "";
  const label = document.createElement("span");
  label.className = "wf-label";
  if (row.group) {
    const g = row.group;
    element.classList.add("wf-group");
    label.textContent = `${g.name} × ${formatCount(g.num)}`;
    label.title = `${formatCount(g.num)} sibling spans named ${g.name} (repeated: collapsed)`;
    name.append(caret, label);
    element.append(name, moneySpan(null), moneySpan(g.cost), moneySpan(null),
      bar(g.start, g.end - g.start, "wf-bar-group"));
    element.setAttribute("aria-label", `${g.name}, ${formatCount(g.num)} repeated spans, ` +
      `subtree ${money(g.cost).text}, from ${formatMs(g.start)} to ${formatMs(g.end)}`);
    if (replayed && !g.members.some((m) => replayed.has(s.span_id[m]))) {
      element.classList.add("wf-future");
    }
  } else {
    const i = row.span;
    const status = s.status[i];
    element.dataset.spanId = s.span_id[i];
    label.textContent = s.name[i] || "(unnamed)";
    label.title = [s.name[i], s.model[i], status !== "ok" ? status : ""].filter(Boolean).join(" · ");
    name.append(caret, label);
    if (status !== "ok") {
      const badge = document.createElement("span");
      badge.className = `wf-status status-${status}`;
      badge.textContent = status;
      name.append(badge);
    }
    element.append(name, moneySpan(s.total_cost[i]), moneySpan(s.subtree_cost[i]),
      moneySpan(Number(s.unattributed_cost[i]) ? s.unattributed_cost[i] : null),
      bar(s.start_ms[i], s.duration_ms[i], `wf-bar-${status}`));
    const unattributed = Number(s.unattributed_cost[i]) ? money(s.unattributed_cost[i]).text : "none";
    const onPath = critical[i] === 1;
    const replayState = replayed ? (replayed.get(s.span_id[i]) || "not started") : "";
    element.setAttribute("aria-label", `${s.name[i] || "(unnamed)"}, ${status}, ` +
      `own ${money(s.total_cost[i]).text}, subtree ${money(s.subtree_cost[i]).text}, ` +
      `unattributed ${unattributed}, starts at ${formatMs(s.start_ms[i])}, ` +
      `lasts ${formatMs(s.duration_ms[i])}` + (onPath ? ", on the critical path" : "") +
      (replayState ? `, ${replayState} at the replay instant` : ""));
    if (onPath) {
      element.classList.add("wf-critical");
      element.dataset.critical = "true";
    }
    if (replayState === "not started") {
      element.classList.add("wf-future");
    } else if (replayState === "running") {
      element.classList.add("wf-running");
    }
    if (i === selected) {
      element.setAttribute("aria-selected", "true");
    }
  }
  element.tabIndex = index === active ? 0 : -1;
  return element;
}

function render() {
  frame = 0;
  const offset = tree.offsetTop;
  const top = Math.max(scroller.scrollTop - offset, 0);
  const first = Math.max(Math.floor(top / ROW_PX) - OVERSCAN, 0);
  const last = Math.min(Math.ceil((top + scroller.clientHeight) / ROW_PX) + OVERSCAN,
    rows.length - 1);
  for (const [index, element] of drawn) {
    if ((index < first || index > last) && index !== active) {
      element.remove();
      drawn.delete(index);
    }
  }
  for (let index = first; index <= last; index += 1) {
    if (!drawn.has(index)) {
      const element = drawRow(index);
      drawn.set(index, element);
      tree.append(element);
    }
  }
  if (rows.length && !drawn.has(active)) { // the focused row stays, even off screen
    const element = drawRow(active);
    drawn.set(active, element);
    tree.append(element);
  }
}

function schedule() {
  if (!frame) {
    frame = requestAnimationFrame(render);
  }
}

function scrollToRow(index) {
  const offset = tree.offsetTop;
  const head = offset; // the sticky header covers the top of the scroller
  const top = index * ROW_PX + offset;
  if (top - head < scroller.scrollTop) {
    scroller.scrollTop = top - head;
  } else if (top + ROW_PX > scroller.scrollTop + scroller.clientHeight) {
    scroller.scrollTop = top + ROW_PX - scroller.clientHeight;
  }
}

function focusRow(index) {
  if (!rows.length) {
    return;
  }
  const previous = drawn.get(active);
  if (previous) {
    previous.tabIndex = -1;
  }
  active = Math.max(0, Math.min(index, rows.length - 1));
  scrollToRow(active);
  render();
  const element = drawn.get(active);
  element.tabIndex = 0;
  element.focus({ preventScroll: true });
}

function redraw(keepSpan) {
  flatten();
  if (keepSpan !== undefined && keepSpan >= 0 && rowOf[keepSpan] >= 0) {
    active = rowOf[keepSpan];
  }
  render();
}

function toggle(index, open) {
  const row = rows[index];
  if (!row || !expandable(row) || isOpen(row) === open) {
    return;
  }
  if (row.group) {
    if (open) {
      openGroups.add(row.group.index);
    } else {
      openGroups.delete(row.group.index);
    }
  } else {
    folded[row.span] = open ? 0 : 1;
  }
  const focused = document.activeElement && tree.contains(document.activeElement);
  flatten();
  active = index;
  render();
  if (focused) {
    focusRow(index);
  }
}

function parentRow(index) {
  const depth = rows[index].depth;
  for (let i = index - 1; i >= 0; i -= 1) {
    if (rows[i].depth < depth) {
      return i;
    }
  }
  return index;
}

const KEYS = {
  ArrowDown: (i) => focusRow(i + 1),
  ArrowUp: (i) => focusRow(i - 1),
  Home: () => focusRow(0),
  End: () => focusRow(rows.length - 1),
  PageDown: (i) => focusRow(i + Math.floor(scroller.clientHeight / ROW_PX) - 1),
  PageUp: (i) => focusRow(i - Math.floor(scroller.clientHeight / ROW_PX) + 1),
  ArrowRight: (i) => (expandable(rows[i]) && !isOpen(rows[i]) ? toggle(i, true)
    : expandable(rows[i]) ? focusRow(i + 1) : null),
  ArrowLeft: (i) => (expandable(rows[i]) && isOpen(rows[i]) ? toggle(i, false)
    : focusRow(parentRow(i))),
  Enter: (i) => (rows[i].group ? toggle(i, !isOpen(rows[i])) : openSpan(rows[i].span)),
  " ": (i) => toggle(i, !isOpen(rows[i])),
};

tree.addEventListener("keydown", (event) => {
  const element = event.target.closest(".wf-row");
  const action = KEYS[event.key];
  if (!element || !action) {
    return;
  }
  event.preventDefault();
  action(Number(element.dataset.row));
});

tree.addEventListener("click", (event) => {
  const element = event.target.closest(".wf-row");
  if (!element) {
    return;
  }
  const index = Number(element.dataset.row);
  focusRow(index);
  if (event.target.closest(".wf-caret") || rows[index].group) {
    toggle(index, !isOpen(rows[index]));
  } else {
    openSpan(rows[index].span);
  }
});

scroller.addEventListener("scroll", schedule, { passive: true });
window.addEventListener("resize", schedule);

function setGroups(open) {
  for (const group of groups) {
    if (open) {
      openGroups.add(group.index);
    } else {
      openGroups.delete(group.index);
    }
  }
  redraw(rows[active] && rows[active].span);
}

document.getElementById("expand-groups").addEventListener("click", () => setGroups(true));
document.getElementById("collapse-groups").addEventListener("click", () => setGroups(false));

// Unfold what hides span `pos` (its ancestors, and the groups it or they are in).
function reveal(pos) {
  for (let i = pos; i >= 0; i = s.parent[i]) {
    if (i !== pos) {
      folded[i] = 0;
    }
    const group = groups.find((g) => g.parent === s.parent[i] && g.name === s.name[i]);
    if (group) {
      openGroups.add(group.index);
    }
  }
  flatten();
}

function selectSpanId(spanId, focus = true) {
  const pos = s.span_id.indexOf(spanId);
  if (pos < 0) {
    return;
  }
  if (rowOf[pos] < 0) {
    reveal(pos);
  }
  active = rowOf[pos];
  if (focus) {
    focusRow(active);
  } else {
    scrollToRow(active);
    render();
  }
  openSpan(pos);
}

// ---- the detail panel ----

function section(parent, title) {
  const h3 = document.createElement("h3");
  h3.textContent = title;
  parent.append(h3);
}

function table(parent, rowsOfPairs, headers) {
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  const t = document.createElement("table");
  t.className = "kv";
  if (headers) {
    const head = t.createTHead().insertRow();
    for (const text of headers) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = text;
      head.append(th);
    }
  }
  const body = t.createTBody();
  for (const [label, ...values] of rowsOfPairs) {
    const tr = body.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = label;
    tr.append(th);
    for (const value of values) {
      const td = tr.insertCell();
      if (value && typeof value === "object" && "text" in value) {
        td.textContent = value.text;
        td.title = value.title || "";
        td.className = value.className || "";
      } else {
        td.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
      }
    }
  }
  wrap.append(t);
  parent.append(wrap);
}

function spanLink(link) {
  const a = document.createElement("a");
  a.href = `#span-${link.span_id}`;
  a.textContent = link.name || link.span_id;
  const cost = money(link.subtree_cost);
  a.title = `${link.span_id} · subtree ${cost.title}`;
  return a;
}

function plain(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function attributeRows(object) {
  return Object.entries(object || {}).map(([k, v]) => [k, { text: plain(v), className: "wrap" }]);
}

function number(value, unit) {
  if (value === null || value === undefined) {
    return "—";
  }
  const text = new Intl.NumberFormat(undefined, { maximumFractionDigits: 4 }).format(value);
  return unit ? `${text} ${unit}` : text;
}

function fillDetail(answer, pos) {
  const span = answer.span;
  const body = document.getElementById("detail-body");
  body.replaceChildren();
  const inherited = new Set(span.inherited_groups || []);
  const attribution = ["agent_id", "workflow_id", "run_id", "session_id", "user_id",
    "customer_id", "prompt_version"].filter((k) => span[k])
    .map((k) => [k, { text: span[k], className: "wrap" },
      { text: inherited.has(k) ? "inherited from an ancestor" : "own", className: "wrap" }]);
  table(body, [
    ["Status", { text: span.status + (span.status_message ? `: ${span.status_message}` : ""),
      className: `status-${span.status} wrap` }],
    ["Start", when(span.start_time)],
    ["Duration", formatMs(span.duration_ms)],
    ["Self time", { text: number(s.self_time_ms[pos], "ms"),
      title: "Time no child of this span covers (parallel children count once)" }],
    ["Critical path", { text: `${number(s.critical_path_ms[pos], "ms")} · ` +
      (critical[pos] ? "on the critical path" : "off the critical path"),
    title: "This span's own share of the chain of spans that set the trace's duration" }],
    ["Operation", [...new Set([span.operation, span.operation_name, span.tool_name].filter(Boolean))].join(" · ")],
    ["Model", [span.provider, span.response_model || span.request_model].filter(Boolean).join(" / ")],
    ["Service", span.service_name],
    ["Org / project", [span.org_id, span.project_id].filter(Boolean).join(" / ")],
    ["Span id", span.span_id],
    ["Error", span.error_type],
  ]);
  const decisions = span.policy_decisions || [];
  if (decisions.length) {
    // guardrail policy decisions (docs/governance.md): one row per matched policy
    section(body, `Policy decisions (${formatCount(decisions.length)})`);
    table(body, decisions.map((d) => [
      d.policy_id,
      d.version ? `v${d.version}` : "producer",
      { text: d.action, className: `policy-${d.action}` },
    ]), ["Policy", "Version", "Action"]);
    if (decisions.some((d) => d.action === "block" || d.action === "redact")) {
      const note = document.createElement("p");
      note.className = "muted wrap-text";
      note.textContent = "A block policy dropped this span's payload attributes (messages, "
        + "inputs and outputs, tool arguments and results); a redact policy masked them.";
      body.append(note);
    }
  }
  const links = document.createElement("p");
  links.className = "detail-links";
  links.append("Parent: ");
  links.append(answer.parent ? spanLink(answer.parent) : "none (a root)");
  body.append(links);
  if (answer.num_children) {
    const kids = document.createElement("p");
    kids.className = "detail-links";
    kids.append(`Children (${formatCount(answer.num_children)}): `);
    answer.children.forEach((child, k) => {
      if (k) {
        kids.append(", ");
      }
      kids.append(spanLink(child));
    });
    if (answer.num_children > answer.children.length) {
      kids.append(` and ${formatCount(answer.num_children - answer.children.length)} more`);
    }
    body.append(kids);
  }
  section(body, "Cost");
  const c = (v) => { const m = money(v); return { text: m.text, title: m.title, className: "num" }; };
  table(body, [
    ["Tokens", c(span.token_cost)], ["CPU", c(span.cpu_cost)], ["Memory", c(span.memory_cost)],
    ["GPU", c(span.gpu_cost)], ["Network", c(span.network_cost)],
    ["Storage", c(span.storage_cost)], ["Unattributed", c(span.unattributed_cost)],
    ["Discount", c(span.discount)], ["Own total", c(span.total_cost)],
    ["Subtree total", c(span.subtree_cost)],
  ]);
  const source = document.createElement("p");
  source.className = "muted wrap-text";
  source.textContent = `Price source: ${span.price_source || "none (unpriced, or no usage)"}`;
  body.append(source);
  section(body, "Tokens");
  table(body, [
    ["Input", formatCount(span.input_tokens), formatCount(span.unattributed_input_tokens)],
    ["Output", formatCount(span.output_tokens), formatCount(span.unattributed_output_tokens)],
    ["Cache read", formatCount(span.cache_read_tokens), formatCount(span.unattributed_cache_read_tokens)],
    ["Cache write", formatCount(span.cache_write_tokens), formatCount(span.unattributed_cache_write_tokens)],
    ["Reasoning", formatCount(span.reasoning_tokens), "—"],
    ["Total", formatCount(span.total_tokens), "—"],
  ], ["", "Reported", "Unattributed"]);
  section(body, "Resource usage");
  table(body, [
    ["CPU", number(span.cpu_core_seconds, "core·s")],
    ["Memory", number(span.memory_gb_seconds, "GB·s")],
    ["GPU", number(span.gpu_seconds, "s")],
    ["Network in / out", `${formatCount(span.network_bytes_in)} B / ${formatCount(span.network_bytes_out)} B`],
    ["Storage", `${formatCount(span.storage_bytes)} B`],
  ]);
  if (attribution.length) {
    section(body, "Attribution");
    table(body, attribution, ["", "Value", "Where from"]);
  }
  section(body, "Attributes");
  const attributes = attributeRows(span.attributes);
  table(body, attributes.length ? attributes : [["(none)", ""]]);
  section(body, `Events (${formatCount((span.events || []).length)})`);
  const events = (span.events || []).map((e) => [e.name || "event",
    { text: [e.time || e.timestamp || "", plain(e.attributes || {})].filter(Boolean).join(" · "), className: "wrap" }]);
  table(body, events.length ? events : [["(none)", ""]]);
  section(body, "Resource");
  const resource = attributeRows(span.resource);
  table(body, resource.length ? resource : [["(none)", ""]]);
  body.hidden = false;
  document.getElementById("detail-title").textContent = `Span: ${span.name || span.span_id}`;
  if (pos === selected) {
    view.dataset.detail = span.span_id;
  }
}

function openSpan(pos) {
  const previous = selected;
  selected = pos;
  for (const element of drawn.values()) {
    if (element.dataset.spanId === s.span_id[pos]) {
      element.setAttribute("aria-selected", "true");
    } else {
      element.removeAttribute("aria-selected");
    }
  }
  const spanId = s.span_id[pos];
  if (location.hash !== `#span-${spanId}`) {
    history.replaceState(null, "", `#span-${spanId}`);
  }
  if (previous === pos && view.dataset.detail === spanId) {
    return;
  }
  document.getElementById("detail-hint").hidden = true;
  const error = document.getElementById("detail-error");
  error.hidden = true;
  document.getElementById("detail-title").textContent = `Span: ${s.name[pos]} (loading…)`;
  if (!details.has(spanId)) {
    details.set(spanId, fetchApi(api, `/traces/${encodeURIComponent(traceId)}/spans/${spanId}`, {}));
  }
  details.get(spanId).then((answer) => {
    if (selected === pos) {
      fillDetail(answer, pos);
    }
  }).catch((e) => {
    details.delete(spanId);
    error.textContent = `Could not load the span: ${e.message}`;
    error.hidden = false;
    document.getElementById("detail-title").textContent = "Span detail";
  });
}

window.addEventListener("hashchange", () => {
  const match = /^#span-([0-9a-f]{16})$/.exec(location.hash);
  if (match && s) {
    selectSpanId(match[1]);
  }
});

// ---- the page ----

function axis() {
  const element = document.getElementById("wf-axis");
  element.replaceChildren();
  for (const part of [0, 0.5, 1]) {
    const tick = document.createElement("span");
    tick.className = "wf-tick";
    tick.style.left = `${part * 100}%`;
    tick.textContent = formatMs(total * part);
    element.append(tick);
  }
}

function summary(answer) {
  const metric = (name) => view.querySelector(`[data-metric="${name}"]`);
  const root = s.name.length ? s.name[0] : "";
  metric("root").textContent = root || "(unnamed)";
  metric("root").title = root;
  const cost = money(answer.total_cost);
  metric("total_cost").textContent = cost.text;
  metric("total_cost").title = cost.title;
  metric("duration_ms").textContent = formatMs(answer.duration_ms);
  metric("num_spans").textContent = formatCount(answer.num_spans);
  metric("status").textContent = answer.status;
  metric("status").className = `value status-${answer.status}`;
  document.getElementById("summary").hidden = false;
  const collapsed = groups.length;
  document.getElementById("waterfall-note").textContent = `started ${when(answer.start_time)}` +
    (collapsed ? ` · ${formatCount(collapsed)} group${collapsed > 1 ? "s" : ""} of repeated spans` : "");
  document.getElementById("expand-groups").hidden = collapsed === 0;
  document.getElementById("collapse-groups").hidden = collapsed === 0;
  const path = answer.critical_path || [];
  const legend = document.getElementById("wf-legend");
  legend.hidden = path.length === 0;
  legend.title = `${formatCount(path.length)} span${path.length === 1 ? "" : "s"} set the ` +
    "trace's duration (highlighted)";
}

// ---- replay ----

const scrub = document.getElementById("scrub");
let replayStartUs = 0n; // the trace's first instant, µs since the epoch
let replayAnswer = null;
let replaySeq = 0;
let replayTimer = 0;

// An ISO-8601 instant of the API (to the µs) as µs since the epoch, exactly (BigInt).
function isoToUs(iso) {
  const fraction = /\.(\d{1,6})/.exec(iso);
  const seconds = Date.parse(iso.replace(/\.\d+/, ""));
  return BigInt(seconds) * 1000n + BigInt(fraction ? fraction[1].padEnd(6, "0") : 0);
}

function showReplay(answer) {
  replayAnswer = answer;
  replayed = new Map(answer.spans.span_id.map((id, k) => [id, answer.spans.state[k]]));
  const offsetMs = Number(isoToUs(answer.at) - replayStartUs) / 1000;
  document.getElementById("replay-at").textContent = `+${formatMs(offsetMs)} · ${when(answer.at, true)}`;
  document.getElementById("replay-counts").textContent = `${formatCount(answer.num_running)} running · ` +
    `${formatCount(answer.num_finished)} finished · ${formatCount(answer.num_not_started)} not started · ` +
    `${formatCount(answer.num_checkpoints)} checkpoint${answer.num_checkpoints === 1 ? "" : "s"} applied` +
    (answer.num_bad_checkpoints ? ` (${formatCount(answer.num_bad_checkpoints)} unreadable, skipped)` : "");
  const last = answer.last_checkpoint;
  document.getElementById("replay-checkpoint").textContent = last
    ? `after the checkpoint at ${when(last.time, true)} on span ${last.span_id}`
    : "(no checkpoint yet)";
  document.getElementById("replay-state").textContent = JSON.stringify(answer.state, null, 2);
  document.getElementById("replay-prev").disabled = answer.previous === null;
  document.getElementById("replay-next").disabled = answer.next === null;
  view.dataset.replayAt = answer.at;
  flatten();
  render();
}

async function replayAt(us) {
  const seq = ++replaySeq;
  const at = (replayStartUs + us) * 1000n;
  try {
    const answer = await fetchApi(api, `/traces/${encodeURIComponent(traceId)}/replay`,
      { at: at.toString() });
    if (seq === replaySeq) {
      document.getElementById("replay-error").hidden = true;
      showReplay(answer);
    }
    return answer;
  } catch (e) {
    if (seq === replaySeq) {
      const box = document.getElementById("replay-error");
      box.textContent = `Could not replay: ${e.message}`;
      box.hidden = false;
    }
    return null;
  }
}

scrub.addEventListener("input", () => {
  clearTimeout(replayTimer);
  replayTimer = setTimeout(() => replayAt(BigInt(scrub.value)), 120);
});

// Step to the previous or next event instant. The API gives instants to the µs; one
// recorded between two µs (a checkpoint in ns) is reached one µs later.
async function step(direction) {
  if (!replayAnswer || replayAnswer[direction] === null) {
    return;
  }
  const before = replayAnswer[direction];
  let us = isoToUs(before) - replayStartUs;
  scrub.value = String(us);
  let answer = await replayAt(us);
  if (answer && direction === "next" && answer.at === before && answer.next === before) {
    us += 1n;
    answer = await replayAt(us);
  }
  scrub.value = String(us);
}

document.getElementById("replay-prev").addEventListener("click", () => step("previous"));
document.getElementById("replay-next").addEventListener("click", () => step("next"));

async function startReplay() {
  const answer = await fetchApi(api, `/traces/${encodeURIComponent(traceId)}/replay`, {});
  replayStartUs = isoToUs(answer.start_time);
  const lengthUs = isoToUs(answer.end_time) - replayStartUs;
  const stepUs = lengthUs > 500n ? lengthUs / 500n : 1n;
  // a whole number of steps, so the thumb can reach the end (past it is the whole trace)
  scrub.max = String(((lengthUs + stepUs - 1n) / stepUs) * stepUs);
  scrub.step = String(stepUs);
  scrub.value = scrub.max;
  document.getElementById("replay").hidden = false;
  showReplay(answer);
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = `Could not load this trace: ${error.message}`;
  box.hidden = false;
  for (const hidden of view.querySelectorAll(".trace-layout, #summary")) {
    hidden.hidden = true;
  }
}

async function load() {
  const answer = await fetchApi(api, `/traces/${encodeURIComponent(traceId)}`, { view: "timeline" });
  build(answer);
  summary(answer);
  axis();
  flatten();
  render();
  const match = /^#span-([0-9a-f]{16})$/.exec(location.hash);
  if (match) {
    selectSpanId(match[1], false);
  }
  await startReplay().catch((e) => {
    const box = document.getElementById("replay-error");
    box.textContent = `Could not load the replay: ${e.message}`;
    box.hidden = false;
    document.getElementById("replay").hidden = false;
  });
}

load()
  .catch(showError)
  .finally(() => view.setAttribute("aria-busy", "false"));
