// The cost explorer's cost views (issue 16): the token waterfall with each kind's cost and
// the cache savings, unit economics, the attribution tree (levels in the URL, collapsible)
// and the provider × model table, each from its /api/v1/analytics route for the page's
// range and filters. Every figure is the API's (exact decimals on hover); shares are the
// only numbers computed here, for display.
import { fetchApi, formatCount, formatMoney, formatMs, formatRatio } from "./chart.js";
import { cell, message, moneyCell } from "./table.js";

const KIND_NAMES = {
  input: "Input, not cached",
  cache_read: "Cache reads",
  cache_write: "Cache writes",
  output: "Output, not reasoning",
  reasoning: "Reasoning",
  request: "Request fees",
  unattributed: "Unattributed (agent spans)",
};
const NONE = "(none)";

function share(part, whole) {
  return Number(whole) ? formatRatio(Number(part) / Number(whole)) : "—";
}

function exactSpan(value, currency, id = "") {
  const shown = formatMoney(value, currency);
  const span = document.createElement("span");
  span.textContent = shown.text;
  span.title = shown.title;
  span.dataset.exact = value;
  if (id) {
    span.id = id;
  }
  return span;
}

/** The Tokens panel: tokens and cost per kind, the token cost and the cache savings. */
function fillTokens(answer) {
  const currency = answer.currency || "USD";
  const body = document.querySelector("#tokens tbody");
  const note = document.getElementById("token-cost");
  const savings = document.getElementById("cache-savings");
  const spend = Number(answer.token_cost) + Number(answer.unattributed_cost);
  // request fees count calls, not tokens; a kind with neither tokens nor cost is left out
  const kinds = answer.kinds.filter((k) => k.kind !== "request" || Number(k.cost))
    .filter((k) => k.tokens || Number(k.cost) || ["input", "output"].includes(k.kind));
  const all = answer.input_tokens + answer.output_tokens
    + (answer.kinds.find((k) => k.kind === "unattributed")?.tokens || 0);
  if (all === 0 && spend === 0) {
    message(body, "No tokens in this range.", 4);
    note.textContent = "";
    savings.textContent = "";
    return;
  }
  body.replaceChildren();
  for (const kind of kinds) {
    const tr = document.createElement("tr");
    tr.dataset.kind = kind.kind;
    cell(tr, KIND_NAMES[kind.kind] || kind.kind);
    cell(tr, kind.kind === "request" ? `${formatCount(kind.tokens)} calls`
      : formatCount(kind.tokens), "num");
    moneyCell(tr, kind.cost, currency).dataset.exact = kind.cost;
    cell(tr, share(kind.cost, spend), "num wide-only");
    body.append(tr);
  }
  const tr = document.createElement("tr");
  tr.className = "total";
  cell(tr, "All tokens");
  cell(tr, formatCount(all), "num");
  const total = moneyCell(tr, String(spend), currency);
  total.title = `${answer.token_cost} + ${answer.unattributed_cost} ${currency}`;
  cell(tr, "", "num wide-only");
  body.append(tr);
  note.replaceChildren("Token cost ", exactSpan(answer.token_cost, currency, "token-cost-value"),
    Number(answer.unattributed_cost) ? ", plus " : ".");
  if (Number(answer.unattributed_cost)) {
    note.append(exactSpan(answer.unattributed_cost, currency),
      " reported by agent or workflow spans without an LLM call below them.");
  }
  savings.replaceChildren("Cache savings ",
    exactSpan(answer.cache_savings, currency, "cache-savings-value"),
    `: ${formatCount(answer.cache_read_tokens)} cache-read tokens at the uncached input `
    + "price, minus what they cost.");
}

/** Unit economics cards. */
function fillUnits(answer) {
  const currency = answer.currency || "USD";
  const units = [
    ["trace", answer.cost_per_successful_trace,
      `${formatCount(answer.num_successful_traces)} of ${formatCount(answer.num_traces)} traces`],
    ["user", answer.cost_per_user, `${formatCount(answer.num_users)} users`],
    ["session", answer.cost_per_session, `${formatCount(answer.num_sessions)} sessions`],
  ];
  for (const [name, value, count] of units) {
    const element = document.querySelector(`[data-unit="${name}"]`);
    const shown = formatMoney(value, currency);
    element.textContent = shown.text;
    element.title = shown.title;
    element.dataset.exact = value ?? "";
    document.querySelector(`[data-unit-count="${name}"]`).textContent = count;
  }
}

function nodeLine(container, node, total, currency) {
  const key = document.createElement("span");
  key.className = "key";
  key.textContent = node.key === "" ? NONE : node.key;
  key.title = `${node.level}: ${key.textContent}`;
  const amount = exactSpan(node.total_cost, currency);
  amount.className = "amount";
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = `${share(node.total_cost, total)} · ${formatCount(node.requests)} requests`;
  container.append(key, amount, meta);
}

function growTree(parent, node, total, currency, depth) {
  for (const child of node.children) {
    if (child.children.length) {
      const details = document.createElement("details");
      details.open = depth < 2; // the first two levels open, the rest on demand
      details.dataset.level = child.level;
      const summary = document.createElement("summary");
      nodeLine(summary, child, total, currency);
      details.append(summary);
      growTree(details, child, total, currency, depth + 1);
      parent.append(details);
    } else {
      const leaf = document.createElement("div");
      leaf.className = "leaf";
      leaf.dataset.level = child.level;
      nodeLine(leaf, child, total, currency);
      parent.append(leaf);
    }
  }
}

/** The attribution tree: nested <details>, the first level open. */
function fillAttribution(answer) {
  const currency = answer.currency || "USD";
  const box = document.getElementById("attribution");
  const root = answer.tree;
  box.replaceChildren();
  if (root.num_spans === 0) {
    const empty = document.createElement("p");
    empty.className = "muted";
    empty.textContent = "No spend in this range.";
    box.append(empty);
    return;
  }
  const head = document.createElement("p");
  head.className = "small";
  head.append(`${answer.levels.join(" → ")}: `, exactSpan(root.total_cost, currency,
    "attribution-total"));
  box.append(head);
  growTree(box, root, root.total_cost, currency, 0);
}

/** The provider × model table, costliest first. */
function fillProviderModels(answer) {
  const currency = answer.currency || "USD";
  const body = document.querySelector("#provider-models tbody");
  if (answer.rows.length === 0) {
    message(body, "No LLM calls in this range.", 6);
    return;
  }
  body.replaceChildren();
  for (const row of answer.rows) {
    const tr = document.createElement("tr");
    cell(tr, row.provider || NONE, "name");
    cell(tr, row.model, "name");
    moneyCell(tr, row.total_cost, currency).dataset.exact = row.total_cost;
    cell(tr, formatCount(row.requests), "num");
    cell(tr, formatRatio(row.error_rate), "num", `${row.error_requests} of ${row.requests}`);
    cell(tr, formatMs(row.latency_p95_ms), "num", `p50 ${formatMs(row.latency_p50_ms)}`);
    body.append(tr);
  }
}

function panelError(selector, span, error) {
  const text = `Could not load: ${error.message}`;
  const target = document.querySelector(selector);
  if (target.tagName === "TBODY") {
    message(target, text, span);
  } else {
    target.textContent = text;
  }
}

/** Fetch and draw every cost view panel; each panel shows its own error. */
export async function loadCostViews(view) {
  const { api, start, end, filter, levels } = view.dataset;
  const range = { start, end, filter };
  const panels = [
    ["/analytics/tokens", range, fillTokens, "#tokens tbody", 4],
    ["/analytics/unit-economics", range, fillUnits, "#units", 1],
    ["/analytics/attribution", { ...range, levels }, fillAttribution, "#attribution", 1],
    ["/analytics/provider-models", range, fillProviderModels, "#provider-models tbody", 6],
  ];
  await Promise.all(panels.map(([path, params, fill, selector, span]) =>
    fetchApi(api, path, params).then(fill).catch((error) => panelError(selector, span, error))));
}
